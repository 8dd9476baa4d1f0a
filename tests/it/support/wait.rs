//! Awaiting a condition: polled until it holds or a deadline passes, then a failure that says
//! what was awaited and what was seen last.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `probe` every `every` until it gives `Ok`; panics with its last `Err` when `within`
/// has passed.
pub(crate) async fn until<T, E: Display>(
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(every).await;
    }
}

/// [`until`] for a probe that awaits.
pub(crate) async fn until_async<T, E: Display, F: Future<Output = Result<T, E>>>(
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(every).await;
    }
}
