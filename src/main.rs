//! The `giftd` binary: parses the command line, sets up tracing and runs the command. Everything
//! else lives in the library (`giftd::cli` and the modules it calls).

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = giftd::cli::Cli::parse();

    // One-shot commands report on stdout; logs go to stderr, quiet unless RUST_LOG asks.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    match runtime.block_on(giftd::cli::run(cli, &mut stdout)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
