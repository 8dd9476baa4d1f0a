//! The `giftd` binary: parses the command line, sets up tracing and runs the command. Everything
//! else lives in the library (`giftd::cli` and the modules it calls).

use std::process::ExitCode;

use clap::Parser as _;
use giftd::cli::{Cli, Command};
use giftd::config::{Config, LogFormat};
use tracing_subscriber::prelude::*;

fn main() -> ExitCode {
    // Reads FAILPOINTS when built with the `failpoints` feature (tests); nothing otherwise.
    let _failpoints = fail::FailScenario::setup();
    let cli = Cli::parse();
    init_tracing(&cli);

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

/// Logs go to stderr. `giftd run` logs at the configured level and format (`[log]`); the
/// one-shot commands and the demo report on stdout and log only warnings. RUST_LOG overrides
/// the level. The clock-storm counter is always installed: it is how giftd notices a host clock
/// far ahead of Telegram's.
fn init_tracing(cli: &Cli) {
    let (level, format) = match cli.command {
        // A configuration that does not load is reported by the command itself.
        Command::Run => Config::load(&cli.config, &|v| std::env::var(v).ok())
            .map(|c| (c.log.level, c.log.format))
            .unwrap_or_else(|_| ("info".to_owned(), LogFormat::Text)),
        _ => ("warn".to_owned(), LogFormat::Text),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&level));
    let clock = giftd::telegram::clock::layer().with_filter(
        tracing_subscriber::filter::Targets::new()
            .with_target("grammers_mtsender", tracing::Level::INFO),
    );
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt = match format {
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
        LogFormat::Text => fmt.with_filter(filter).boxed(),
    };
    tracing_subscriber::registry().with(clock).with(fmt).init();
}
