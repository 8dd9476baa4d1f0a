//! Noticing a host clock far ahead of Telegram's.
//!
//! grammers 0.11, when the host clock is minutes ahead, keeps resending every request after the
//! server's `bad_msg_notification` 17 ("msg_id too high"): requests never complete and a core
//! spins. grammers reports each resend as a tracing event, so giftd counts those events with a
//! tracing layer ([`layer`]) and a watchdog ([`ClockWatch`]) turns a storm of them into
//! [`super::TelegramError::ClockAhead`], after which the connection is closed instead of spinning.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

/// "msg_id too high" resends seen since the process started.
static TOO_HIGH: AtomicU64 = AtomicU64::new(0);

/// How many resends within [`WINDOW`] count as a storm rather than a passing correction
/// (grammers corrects its offset after one or two).
pub const STORM: u64 = 20;
/// The window the storm is counted in.
pub const WINDOW: Duration = Duration::from_secs(5);

/// The tracing layer that counts grammers' "msg_id too high" resends. Install it beside the
/// log output (see `main.rs`), filtered to `grammers_mtsender` at INFO.
pub fn layer<S: tracing::Subscriber>() -> impl Layer<S> {
    TooHighCounter
}

struct TooHighCounter;

struct MessageHas(bool);

impl Visit for MessageHas {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && format!("{value:?}").contains("msg_id too high") {
            self.0 = true;
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for TooHighCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if !event.metadata().target().starts_with("grammers_mtsender") {
            return;
        }
        let mut v = MessageHas(false);
        event.record(&mut v);
        if v.0 {
            TOO_HIGH.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Counts resends over a sliding window.
#[derive(Debug)]
pub struct ClockWatch {
    last: u64,
}

impl Default for ClockWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl ClockWatch {
    pub fn new() -> Self {
        Self {
            last: TOO_HIGH.load(Ordering::Relaxed),
        }
    }

    /// Call once per [`WINDOW`]: returns the number of resends in the window when it is a storm.
    pub fn check(&mut self) -> Option<u64> {
        let now = TOO_HIGH.load(Ordering::Relaxed);
        let delta = now - self.last;
        self.last = now;
        (delta >= STORM).then_some(delta)
    }
}

/// Resolves when a storm of "msg_id too high" resends is seen, with its size.
pub async fn storm() -> u64 {
    let mut watch = ClockWatch::new();
    loop {
        tokio::time::sleep(WINDOW).await;
        if let Some(count) = watch.check() {
            return count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn counts_only_grammers_too_high_resends() {
        let subscriber = tracing_subscriber::registry().with(layer());
        let mut watch = ClockWatch::new();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..STORM {
                tracing::info!(target: "grammers_mtsender::sender", request = 1, "msg_id too high; re-sending request");
            }
            tracing::info!(target: "giftd", "msg_id too high; not from grammers");
            tracing::info!(target: "grammers_mtsender::sender", "msg_id too low; re-sending request");
        });
        assert_eq!(watch.check(), Some(STORM));
        assert_eq!(watch.check(), None, "a quiet window is no storm");
    }
}
