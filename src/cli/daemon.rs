//! `giftd run`: the daemon under the process's signals. SIGTERM (systemd) or SIGINT (Ctrl-C)
//! cancels the root shutdown token; [`crate::app::Daemon`] does the rest.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use super::{Env, config_advice};
use crate::config::Config;

/// `giftd run`.
pub(super) async fn run(path: &Path, env: Env<'_>) -> anyhow::Result<ExitCode> {
    let config = Config::load(path, env.lookup).map_err(|e| anyhow::anyhow!(config_advice(&e)))?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let signals = tokio::spawn(stop_on_signal(shutdown.clone()));
    let result = crate::app::Daemon::new().run(&config, shutdown).await;
    signals.abort();
    result.context("giftd stopped")?;
    Ok(ExitCode::SUCCESS)
}

/// Cancels `shutdown` on SIGTERM (systemd) or SIGINT (Ctrl-C).
async fn stop_on_signal(shutdown: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install the SIGTERM/SIGINT handlers; stop giftd with SIGKILL");
        return;
    };
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = which,
        "stopping: intake first, then the queued changes"
    );
    shutdown.cancel();
}
