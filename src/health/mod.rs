//! Health for operators: `/healthz`, `/readyz` and `/metrics` over HTTP on a loopback port, and
//! the systemd notify protocol (`READY=1`, `WATCHDOG=1`, `STATUS=...`).
//!
//! The state it reports is written by the rest of giftd through [`Health`], with atomics only,
//! so reporting never blocks detection. `/metrics` is encoded by the `prometheus-client` crate: a
//! collector reads the counters and gauges (plain `AtomicU64` fields any module bumps) at each
//! scrape, and the latency histograms (detection, mirror commit, bot reply, withdrawal) are
//! `prometheus-client` families labelled by deposit account. Each deposit account has a state in
//! [`Health`] (`starting`, `serving`, `standby`, `down` with the reason), shown as one line each
//! in `/readyz` and as `giftd_account{name,state}`; the daemon is ready when it has started and
//! no account is down (standby is healthy while the holder renews the account's lease; a holder
//! silent past its renewal period makes it [`AccountState::HolderSilent`], shown as `standby` in
//! the metric and not ready in `/readyz`, naming the holder and its last renewal). `/readyz` also
//! says whether the bot runs here, stands by (leases) or is not connected (and why; a bot that
//! cannot sign in makes the daemon not ready), and `giftd_bot_connected` exports it.
//!
//! Files: `mod.rs` ([`Health`], the handle every subsystem writes to: started/status, the
//! per-account series, FLOOD_WAIT closures), `metrics.rs` (what is counted and timed, with its
//! labels), `exposition.rs` (the `/metrics` collector and text format), `readiness.rs` (account
//! states, the bot link, the ready rule and the `/readyz` body), `http.rs` (the endpoints),
//! `systemd.rs` (notify protocol and watchdog interval).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::registry::Registry;

mod exposition;
mod http;
mod metrics;
mod readiness;
mod systemd;

pub use http::{bind, serve};
pub use metrics::{
    AccountLabel, DetectionLabels, Histograms, Latency, Metrics, OPEN_WITHDRAWAL_STATES,
    WithdrawalGauges, WithdrawalLabels,
};
pub use readiness::{AccountState, AccountView, BotLink};
pub use systemd::{sd_notify, watchdog_interval};

use exposition::Scalars;
use readiness::Accounts;

/// Telegram methods closed by a long FLOOD_WAIT: method -> unix seconds it opens again.
type FloodGates = Mutex<HashMap<String, i64>>;

/// What the daemon tells its supervisors.
#[derive(Debug)]
pub struct Health {
    ready: Arc<AtomicBool>,
    /// Why the daemon is not ready (or is degraded), for `/readyz` and `STATUS=`.
    status: Mutex<String>,
    pub metrics: Arc<Metrics>,
    pub latency: Latency,
    pub withdrawals: WithdrawalGauges,
    flood_gates: Arc<FloodGates>,
    /// The deposit accounts, in the configuration's order.
    accounts: Arc<Accounts>,
    /// With leases and a bot configured: whether this instance holds the `bot` lease.
    bot_lease: Mutex<Option<bool>>,
    /// The companion bot's connection in this process; `None` while it does not run here.
    bot_link: Arc<Mutex<Option<BotLink>>>,
    /// Everything `/metrics` shows: the histograms, and [`Scalars`] reading the atomics.
    registry: Registry,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    pub fn new() -> Self {
        let ready = Arc::new(AtomicBool::new(false));
        let metrics = Arc::new(Metrics::default());
        metrics.start_unix.store(unix_now(), Ordering::Relaxed);
        let flood_gates = Arc::new(FloodGates::default());
        let accounts = Arc::new(Accounts::default());
        let bot_link = Arc::new(Mutex::new(None));
        let latency = Latency::default();
        let withdrawals = WithdrawalGauges::default();
        let mut registry = Registry::with_prefix("giftd");
        registry.register_collector(Box::new(Scalars {
            ready: Arc::clone(&ready),
            metrics: Arc::clone(&metrics),
            flood_gates: Arc::clone(&flood_gates),
            accounts: Arc::clone(&accounts),
            bot_link: Arc::clone(&bot_link),
        }));
        registry.register(
            "detection_seconds",
            "seconds from a gift's message date (whole seconds) to its credit, by deposit account and path",
            latency.detection.clone(),
        );
        registry.register(
            "mirror_commit_seconds",
            "seconds from an item change queued for the store to its batch committed, by deposit account",
            latency.mirror_commit.clone(),
        );
        registry.register(
            "bot_reply_seconds",
            "seconds from a player's message or press reaching the bot to its answer sent",
            latency.bot_reply.clone(),
        );
        registry.register(
            "withdrawal_seconds",
            "seconds from a withdrawal request to its outcome (sent or failed), by deposit account",
            latency.withdrawal.clone(),
        );
        registry.register(
            "withdrawals",
            "open withdrawal requests by deposit account and state (approval: waiting for an operator; unknown: outcome not known yet)",
            withdrawals.open.clone(),
        );
        registry.register(
            "stars_balance",
            "the deposit account's Stars, read every minute by its withdrawal worker",
            withdrawals.stars_balance.clone(),
        );
        registry.register(
            "withdrawal_passes",
            "passes over the withdrawal queue the worker finished (each poll, each wake-up), by deposit account",
            withdrawals.passes.clone(),
        );
        registry.register(
            "withdrawal_stars_needed",
            "Stars the withdrawal requests waiting for Stars need (fees and prices Telegram quoted)",
            withdrawals.stars_needed.clone(),
        );
        Self {
            ready,
            status: Mutex::new("starting".to_owned()),
            metrics,
            latency,
            withdrawals,
            flood_gates,
            accounts,
            bot_lease: Mutex::new(None),
            bot_link,
            registry,
        }
    }

    /// Marks the daemon ready (or not) with a human reason, and tells systemd.
    pub fn set_ready(&self, ready: bool, status: &str) {
        let was = self.ready.swap(ready, Ordering::Relaxed);
        self.set_status(status);
        if ready && !was {
            sd_notify("READY=1");
        }
    }

    pub fn set_status(&self, status: &str) {
        // The lock guards a String write; a poisoned lock still holds a valid String.
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if *s != status {
            s.clear();
            s.push_str(status);
            sd_notify(&format!("STATUS={status}"));
        }
    }

    pub fn status(&self) -> String {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Creates the per-account series of `account` (a deposit account giftd watches), so they
    /// are exposed, at zero, before the first gift: a rule or dashboard can rely on them.
    pub fn watch_account(&self, account: i64) {
        let account = account.to_string();
        for path in ["update", "poll", "reconcile"] {
            drop(self.latency.detection.get_or_create(&DetectionLabels {
                account: account.clone(),
                path: path.to_owned(),
            }));
        }
        for state in OPEN_WITHDRAWAL_STATES {
            drop(self.withdrawals.open.get_or_create(&WithdrawalLabels {
                account: account.clone(),
                state: state.to_owned(),
            }));
        }
        let label = AccountLabel { account };
        drop(self.latency.mirror_commit.get_or_create(&label));
        drop(self.latency.withdrawal.get_or_create(&label));
        drop(self.withdrawals.stars_needed.get_or_create(&label));
    }

    /// Records that Telegram closed `method` for `seconds` (a FLOOD_WAIT longer than
    /// `telegram.flood_wait_max`); `/metrics` shows it closed until then.
    pub fn flood_closed(&self, method: &str, seconds: u32) {
        let until = unix_now() + i64::from(seconds);
        let mut gates = self.flood_gates.lock().unwrap_or_else(|e| e.into_inner());
        let now = unix_now();
        // Counted once per closure, not once per call refused while it lasts.
        if gates.get(method).is_none_or(|&u| u <= now) {
            self.metrics.flood_closures.fetch_add(1, Ordering::Relaxed);
        }
        gates.insert(method.to_owned(), until);
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_flood_wait_shows_the_method_closed_once() {
        let h = Health::new();
        let closed = |h: &Health| {
            let text = h.render_metrics();
            let line = text
                .lines()
                .find(|l| l.starts_with("giftd_telegram_methods_closed "))
                .map(str::to_owned);
            (line, text)
        };
        assert_eq!(
            closed(&h).0.as_deref(),
            Some("giftd_telegram_methods_closed 0")
        );
        h.flood_closed("payments.getSavedStarGifts", 3600);
        h.flood_closed("payments.getSavedStarGifts", 3599); // a refused call while closed
        let (line, text) = closed(&h);
        assert_eq!(
            line.as_deref(),
            Some("giftd_telegram_methods_closed 1"),
            "{text}"
        );
        assert!(
            text.contains("giftd_telegram_flood_closures_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "giftd_telegram_method_closed_until_timestamp_seconds{method=\"payments.getSavedStarGifts\"} "
            ),
            "{text}"
        );
        h.flood_closed("messages.getMessages", 0); // already open again
        assert_eq!(
            closed(&h).0.as_deref(),
            Some("giftd_telegram_methods_closed 1")
        );
    }
}
