//! The `leadgraph` binary: parse the command line, set up logging, run.

use clap::Parser;

// glibc's allocator was about a third of a small request's instructions (callgrind, see
// docs/performance.md); mimalloc is much cheaper for the many short-lived allocations of
// parsing, executing and serializing a request (see `allocator.rs` for how it is called).
#[global_allocator]
static GLOBAL: leadgraph::allocator::MiMalloc = leadgraph::allocator::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // First, while nothing has touched SQLite yet (the runtime's threads are idle).
    let sqlite_heap = leadgraph::sqlite_heap::configure();
    // Before the runtime's threads allocate much: RSS then counts only pages in use.
    let small_pages = leadgraph::allocator::disable_transparent_huge_pages();
    let cli = leadgraph::config::Cli::parse();
    leadgraph::server::init_tracing(&cli.config);
    if !sqlite_heap {
        tracing::warn!("SQLite was initialized before its allocator could be set");
    }
    if !small_pages {
        tracing::warn!("could not turn transparent huge pages off; RSS may grow in 2 MiB steps");
    }
    match leadgraph::server::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
