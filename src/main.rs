//! The `leadgraph` binary: parse the command line, set up logging, run.

use clap::Parser;

// Request handling allocates many short-lived buffers on two threads at once, and SQLite copies
// every row through malloc: mimalloc serves both far better than glibc (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = leadgraph::config::Cli::parse();
    leadgraph::server::init_tracing(&cli.config);
    match leadgraph::server::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
