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
    let cli = leadgraph::config::Cli::parse();
    leadgraph::server::init_tracing(&cli.config);
    if !sqlite_heap {
        tracing::warn!("SQLite was initialized before its allocator could be set");
    }
    match leadgraph::server::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
