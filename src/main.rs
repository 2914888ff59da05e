//! The `leadgraph` binary: parse the command line, set up logging, run.

use clap::Parser;

// Request handling allocates many short-lived buffers on two threads at once, and SQLite copies
// every row through malloc: mimalloc serves both far better than glibc (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let (command, config) = leadgraph::config::Cli::parse().resolve();
    leadgraph::server::init_tracing(&config);
    match leadgraph::cli::run(command, config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
