//! `giftd demo`: the whole daemon against an in-process tgsim (see [`crate::demo`]), in a state
//! directory of its own.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

/// `giftd demo`.
pub(super) async fn run(
    state_dir: Option<PathBuf>,
    burst: usize,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let state_dir = state_dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("giftd-demo-{}", std::process::id())));
    let opts = crate::demo::DemoOptions { state_dir, burst };
    crate::demo::run(&opts, out)
        .await
        .context("the demo failed")?;
    Ok(ExitCode::SUCCESS)
}
