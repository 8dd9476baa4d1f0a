//! What giftd counts and times: the [`Metrics`] counters and gauges (plain atomics any module
//! bumps), the latency histograms ([`Latency`]) and the withdrawal queue's gauges
//! ([`WithdrawalGauges`]), with their label sets. How they are exposed is in `exposition`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use crate::gift::classify::{Decision, HoldReason, IgnoreReason};

/// Counters and gauges, exported as Prometheus metrics named `giftd_<field>` (the names are in
/// the `exposition` collector). Plain atomics, so every writer (the telegram module included) bumps
/// them without knowing about Prometheus; the exporter reads them at each scrape.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Items credited, by the path that saw them first.
    pub deposits_update: AtomicU64,
    pub deposits_poll: AtomicU64,
    pub deposits_reconcile: AtomicU64,
    /// Items that left the account (converted, refunded, upgraded, gone).
    pub departures: AtomicU64,
    /// Regular gifts the house kept after buying one for their player, then refunded by
    /// Telegram: Stars lost, an operator must look.
    pub refunds_after_resend: AtomicU64,
    pub polls: AtomicU64,
    pub reconciliations: AtomicU64,
    /// Changes waiting for the store.
    pub mirror_backlog: AtomicU64,
    pub mirror_batches: AtomicU64,
    pub mirror_rows: AtomicU64,
    pub mirror_failures: AtomicU64,
    /// Changes the mirror did not write because this instance does not hold (or lost) the
    /// lease of their deposit account; the holder's reconciliation finds them again.
    pub mirror_fenced: AtomicU64,
    pub telegram_errors: AtomicU64,
    /// Unix seconds of the last successful poll.
    pub last_poll_unix: AtomicI64,
    /// Items in the live inventory.
    pub inventory_items: AtomicU64,
    /// Items recorded without a sender and credited later to the sender Telegram named.
    pub attributions: AtomicU64,
    /// Telegram updates dropped before giftd read them (its update buffer was full); polling
    /// finds their gifts. Counted by giftd itself, not from grammers' rate-limited warning.
    pub updates_dropped: AtomicU64,
    /// Telegram updates that reached giftd's update buffer.
    pub updates_received: AtomicU64,
    /// Times a FLOOD_WAIT longer than `telegram.flood_wait_max` closed a Telegram method.
    pub flood_closures: AtomicU64,
    /// Storms of "msg_id too high" resends (host clock ahead of Telegram's); each stops the
    /// daemon, so this is seen only when a scrape lands before the exit.
    pub clock_storms: AtomicU64,
    /// Unix seconds when this process started, so restarts show as changes.
    pub start_unix: AtomicI64,
    /// Gift-bearing messages and saved gifts that are not deposits, by
    /// [`IgnoreReason::index`]: counted on the update path and by reconciliations.
    pub gifts_ignored: [AtomicU64; IgnoreReason::ALL.len()],
    /// New items recorded without an owner for an operator, by [`HoldReason::index`].
    pub gifts_held: [AtomicU64; HoldReason::ALL.len()],
    /// Updates or answers Telegram sent that giftd could not decode (a constructor or flag
    /// newer than its TL layer): never credited, polling and reconciliation carry on.
    pub unreadable: AtomicU64,
}

impl Metrics {
    /// Counts what [`classify`](crate::gift::classify::classify) decided for one message or
    /// saved gift (deposits are counted when credited, fates when applied).
    pub fn count_decision(&self, decision: &Decision) {
        match decision {
            Decision::Ignore { reason } => {
                self.gifts_ignored[reason.index()].fetch_add(1, Ordering::Relaxed);
            }
            Decision::Hold { reason } => {
                self.gifts_held[reason.index()].fetch_add(1, Ordering::Relaxed);
            }
            Decision::Deposit { .. } | Decision::Fate { .. } => {}
        }
    }
}

/// The label of a distribution kept per deposit account.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabel {
    pub account: String,
}

/// The labels of the detection distribution: the account and the path that credited the gift
/// (`update`, `poll`, `reconcile`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DetectionLabels {
    pub account: String,
    pub path: String,
}

/// The labels of the withdrawal queue's gauge: the account and the request's state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WithdrawalLabels {
    pub account: String,
    pub state: String,
}

/// The withdrawal queue as the worker last saw it.
#[derive(Debug, Clone, Default)]
pub struct WithdrawalGauges {
    /// `giftd_withdrawals{account,state}`: open requests per state.
    pub open: Family<WithdrawalLabels, Gauge>,
    /// `giftd_stars_balance{account}`: the deposit account's Stars, read every minute.
    pub stars_balance: Family<AccountLabel, Gauge>,
    /// `giftd_withdrawal_stars_needed{account}`: Stars the requests waiting for Stars need.
    pub stars_needed: Family<AccountLabel, Gauge>,
    /// `giftd_withdrawal_passes_total{account}`: passes over the queue the worker finished
    /// (each poll, each wake-up).
    pub passes: Family<AccountLabel, Counter>,
}

/// The open states of a withdrawal request, as `giftd_withdrawals` labels them.
pub const OPEN_WITHDRAWAL_STATES: [&str; 6] = [
    "requested",
    "approval",
    "waiting",
    "claimed",
    "sending",
    "unknown",
];

/// A histogram per label set, all with the same buckets.
pub type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency distributions, in seconds, exported as Prometheus histograms.
#[derive(Debug, Clone)]
pub struct Latency {
    /// `giftd_detection_seconds{account,path}`: from the gift's message date (Telegram's,
    /// whole seconds) to its credit in the inventory.
    pub detection: Histograms<DetectionLabels>,
    /// `giftd_mirror_commit_seconds{account}`: from an item change queued for the store
    /// (deposit, departure, attribution) to the store acknowledging its batch.
    pub mirror_commit: Histograms<AccountLabel>,
    /// `giftd_bot_reply_seconds`: from a player's message or press reaching the companion bot
    /// to its answer sent. Not per account: the bot serves players, whichever account holds
    /// their gifts.
    pub bot_reply: Histogram,
    /// `giftd_withdrawal_seconds{account}`: from a withdrawal request to its outcome (sent or
    /// failed).
    pub withdrawal: Histograms<AccountLabel>,
}

fn detection_buckets() -> Histogram {
    // Whole-second message dates: under a second is "at once".
    Histogram::new([1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0])
}

fn commit_buckets() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

fn reply_buckets() -> Histogram {
    Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

fn withdrawal_buckets() -> Histogram {
    Histogram::new([
        1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0,
    ])
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            detection: Family::new_with_constructor(detection_buckets),
            mirror_commit: Family::new_with_constructor(commit_buckets),
            bot_reply: reply_buckets(),
            withdrawal: Family::new_with_constructor(withdrawal_buckets),
        }
    }
}
