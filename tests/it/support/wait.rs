//! Awaiting a condition: polled until it holds or a deadline passes, then a failure that says
//! what was awaited and what was seen last; and the condition most tests await, a withdrawal
//! request reaching a state.

use std::fmt::Display;
use std::sync::Arc;
use std::time::{Duration, Instant};

use giftd::store::{RequestState, Store, Withdrawal};

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

/// Waits until request `id` is in one of `states`.
pub(crate) async fn withdrawal_in(
    store: &Arc<dyn Store>,
    id: i64,
    states: &[RequestState],
    within: Duration,
) -> Withdrawal {
    let deadline = Instant::now() + within;
    loop {
        let w = store
            .withdrawal(id)
            .await
            .expect("store readable")
            .expect("the request exists");
        if states.contains(&w.state) {
            return w;
        }
        assert!(
            Instant::now() < deadline,
            "withdrawal {id} is {} after {within:?} (reason {:?}), expected one of {states:?}",
            w.state,
            w.reason
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
