//! Health for operators: `/healthz`, `/readyz` and `/metrics` over HTTP on a loopback port, and
//! the systemd notify protocol (`READY=1`, `WATCHDOG=1`, `STATUS=...`).
//!
//! The HTTP side is deliberately tiny (one request per connection, GET only, bounded reads): it
//! serves probes and a Prometheus scrape, nothing else, and a bad request never affects the
//! daemon. The state it reports is written by the rest of giftd through [`Health`], with atomics
//! only, so reporting never blocks detection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::gift::classify::{Decision, HoldReason, IgnoreReason};

/// Counters and gauges, exported as Prometheus metrics named `giftd_<field>` (the names are in
/// [`Scalars::encode`]). Plain atomics, so every writer (the telegram module included) bumps
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

/// Telegram methods closed by a long FLOOD_WAIT: method -> unix seconds it opens again.
type FloodGates = Mutex<HashMap<String, i64>>;

/// What one deposit account is doing in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountState {
    /// Connecting, loading its items, reconciling.
    Starting,
    /// Its intake paths and withdrawal worker run here.
    Serving,
    /// Another giftd instance holds the account's lease; this one takes over if that one
    /// stops. Healthy: only one instance serves an account at a time.
    Standby,
    /// Another instance holds the account's lease but has not renewed it past its renewal
    /// period: it may be dead, and nobody serves the account until the lease runs out and
    /// this instance takes over. Not ready.
    HolderSilent {
        /// The holder as the lease row names it.
        holder: String,
        /// Unix ms (the database's clock) of its last renewal.
        since_ms: i64,
    },
    /// Not served, with why and what to do (retried in the background).
    Down(String),
}

impl AccountState {
    /// The `state` label of `giftd_account`.
    pub fn label(&self) -> &'static str {
        match self {
            AccountState::Starting => "starting",
            AccountState::Serving => "serving",
            AccountState::Standby | AccountState::HolderSilent { .. } => "standby",
            AccountState::Down(_) => "down",
        }
    }
}

/// One deposit account as `/readyz` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// The configured name (`[account.NAME]`).
    pub name: String,
    /// The Telegram user id, once a connection learned it.
    pub id: Option<i64>,
    pub state: AccountState,
}

impl AccountView {
    /// Down, counting a serving account whose polls went stale as down too, and a standby
    /// account whose holder stopped renewing (nobody serves it).
    pub fn is_down(&self) -> bool {
        matches!(
            self.state,
            AccountState::Down(_) | AccountState::HolderSilent { .. }
        )
    }
}

impl std::fmt::Display for AccountView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "account {}", self.name)?;
        if let Some(id) = self.id {
            write!(f, " ({id})")?;
        }
        match &self.state {
            AccountState::Starting => write!(f, ": starting"),
            AccountState::Serving => write!(f, ": serving"),
            AccountState::Standby => {
                write!(f, ": standby (another instance serves it; healthy)")
            }
            AccountState::HolderSilent { holder, since_ms } => {
                let ago = (unix_now() * 1000 - since_ms).max(0) / 1000;
                write!(
                    f,
                    ": standby, but its holder {holder} has not renewed the lease since unix \
                     {} ({ago} s ago, past its renewal period): nobody serves it until the lease \
                     runs out and this instance takes over",
                    since_ms / 1000
                )
            }
            AccountState::Down(why) => write!(f, ": down: {why}"),
        }
    }
}

type Accounts = Mutex<Vec<AccountView>>;

/// Whether the companion bot is connected in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BotLink {
    /// Signing in or reconnecting to Telegram; retried in the background.
    Connecting,
    /// Signed in and answering.
    Connected,
    /// Cannot start until an operator acts (a refused token, an unusable session): why and
    /// what to do. Not ready.
    Failed(String),
}

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

    /// Ready: the daemon finished starting, no deposit account is down and the companion bot
    /// (when it runs here) has not failed. A standby account (served by another instance that
    /// renews its lease) is healthy.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
            && !self.accounts().iter().any(AccountView::is_down)
            && !self.bot_failed()
    }

    fn bot_failed(&self) -> bool {
        matches!(self.bot_link(), Some(BotLink::Failed(_)))
    }

    /// The companion bot's connection here (`None`: it does not run in this process).
    pub fn bot_link(&self) -> Option<BotLink> {
        self.bot_link
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records the companion bot's connection (`None`: it stopped running here).
    pub fn set_bot_link(&self, link: Option<BotLink>) {
        let mut now = self.bot_link.lock().unwrap_or_else(|e| e.into_inner());
        if *now != link {
            match &link {
                Some(BotLink::Failed(why)) => {
                    tracing::error!(reason = %why, "the companion bot is not connected")
                }
                Some(BotLink::Connected) => tracing::info!("the companion bot is connected"),
                _ => {}
            }
            *now = link;
        }
    }

    /// Whether the daemon finished starting (whatever its accounts are doing).
    pub fn is_ready_flag(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Adds a deposit account (state `starting`) or, when known, leaves it as it is.
    pub fn add_account(&self, name: &str) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if !accounts.iter().any(|a| a.name == name) {
            accounts.push(AccountView {
                name: name.to_owned(),
                id: None,
                state: AccountState::Starting,
            });
        }
    }

    /// Records what account `name` is doing now (and its Telegram id once known).
    pub fn set_account(&self, name: &str, id: Option<i64>, state: AccountState) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(a) = accounts.iter_mut().find(|a| a.name == name) else {
            return;
        };
        if id.is_some() {
            a.id = id;
        }
        if a.state != state {
            match &state {
                AccountState::Down(why) => {
                    tracing::error!(account = name, reason = %why, "deposit account down")
                }
                AccountState::HolderSilent { holder, since_ms } => tracing::warn!(
                    account = name,
                    holder,
                    last_renewal_unix_ms = since_ms,
                    "deposit account unserved: the instance holding its lease stopped renewing;                      taking over when the lease runs out"
                ),
                s => tracing::info!(account = name, state = s.label(), "deposit account"),
            }
            a.state = state;
        }
    }

    /// Records whether this instance holds the `bot` lease (it runs the bot only then).
    pub fn set_bot_lease(&self, held: bool) {
        *self.bot_lease.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
    }

    /// Every deposit account, in the configuration's order.
    pub fn accounts(&self) -> Vec<AccountView> {
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The `/readyz` body: the verdict and status, then one line per deposit account.
    pub fn readiness(&self) -> String {
        let accounts = self.accounts();
        let mut out = if self.is_ready() {
            format!("ready: {}\n", self.status())
        } else if !self.ready.load(Ordering::Relaxed) {
            format!("not ready: {}\n", self.status())
        } else {
            let down: Vec<&str> = accounts
                .iter()
                .filter(|a| a.is_down())
                .map(|a| a.name.as_str())
                .collect();
            if down.is_empty() {
                "not ready: the companion bot is not connected\n".to_owned()
            } else {
                format!("not ready: deposit account down: {}\n", down.join(", "))
            }
        };
        for a in &accounts {
            out.push_str(&a.to_string());
            out.push('\n');
        }
        let lease = *self.bot_lease.lock().unwrap_or_else(|e| e.into_inner());
        let holds = if lease == Some(true) {
            " (this instance holds the bot lease)"
        } else {
            ""
        };
        match (lease, self.bot_link()) {
            (Some(false), _) => {
                out.push_str("bot: standby (another instance runs it; healthy)\n");
            }
            (_, Some(BotLink::Failed(why))) => {
                out.push_str(&format!("bot: not connected: {why}\n"));
            }
            (_, Some(BotLink::Connected)) => out.push_str(&format!("bot: runs here{holds}\n")),
            (Some(true), None) | (_, Some(BotLink::Connecting)) => out.push_str(&format!(
                "bot: not connected yet: signing in to telegram (retried){holds}\n"
            )),
            (None, None) => {}
        }
        out
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

    /// The Prometheus text exposition (format 0.0.4) of everything giftd measures.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail, and the encoders fail only when the writer does.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Reads the atomics of [`Metrics`] at each scrape.
#[derive(Debug)]
struct Scalars {
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    flood_gates: Arc<FloodGates>,
    accounts: Arc<Accounts>,
    bot_link: Arc<Mutex<Option<BotLink>>>,
}

impl Collector for Scalars {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &*self.metrics;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // Counter names get `_total` from the encoder: `deposits_update` is exposed as
        // `giftd_deposits_update_total`, as it always was.
        let counters: [(&str, &str, u64); 14] = [
            (
                "deposits_update",
                "items credited from real-time updates",
                get(&m.deposits_update),
            ),
            (
                "deposits_poll",
                "items credited by polling",
                get(&m.deposits_poll),
            ),
            (
                "deposits_reconcile",
                "items credited by full reconciliation",
                get(&m.deposits_reconcile),
            ),
            (
                "departures",
                "items that left the deposit account",
                get(&m.departures),
            ),
            (
                "refunds_after_resend",
                "regular gifts kept by the house after a resend, then refunded by telegram",
                get(&m.refunds_after_resend),
            ),
            (
                "polls",
                "polls of payments.getSavedStarGifts",
                get(&m.polls),
            ),
            (
                "reconciliations",
                "full reconciliations",
                get(&m.reconciliations),
            ),
            (
                "mirror_batches",
                "batches written to the store",
                get(&m.mirror_batches),
            ),
            (
                "mirror_rows",
                "changes written to the store",
                get(&m.mirror_rows),
            ),
            (
                "mirror_failures",
                "failed store writes (retried)",
                get(&m.mirror_failures),
            ),
            (
                "telegram_errors",
                "failed Telegram calls",
                get(&m.telegram_errors),
            ),
            (
                "attributions",
                "items first recorded without a sender, credited later to the sender Telegram named",
                get(&m.attributions),
            ),
            (
                "updates_received",
                "telegram updates received into giftd's update buffer",
                get(&m.updates_received),
            ),
            (
                "updates_dropped",
                "telegram updates dropped because the update buffer was full (polling finds their gifts)",
                get(&m.updates_dropped),
            ),
        ];
        let more: [(&str, &str, u64); 4] = [
            (
                "telegram_unreadable",
                "updates or answers telegram sent that giftd could not decode (newer than its TL layer); nothing was credited",
                get(&m.unreadable),
            ),
            (
                "mirror_fenced",
                "changes not written because this instance does not hold the lease of their deposit account",
                get(&m.mirror_fenced),
            ),
            (
                "telegram_flood_closures",
                "times a FLOOD_WAIT longer than telegram.flood_wait_max closed a telegram method",
                get(&m.flood_closures),
            ),
            (
                "clock_storms",
                "storms of msg_id-too-high resends: the host clock is ahead of telegram's (each stops the daemon)",
                get(&m.clock_storms),
            ),
        ];
        for (name, help, value) in counters.into_iter().chain(more) {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let mut family = encoder.encode_descriptor(
            "gift_messages_ignored",
            "gift-bearing messages and saved gifts that are not deposits, by reason (update path and reconciliations)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for reason in IgnoreReason::ALL {
            let counter = ConstCounter::new(get(&m.gifts_ignored[reason.index()]));
            counter.encode(family.encode_family(&[("reason", reason.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "gifts_held",
            "new items recorded without an owner for an operator, by reason",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for reason in HoldReason::ALL {
            let counter = ConstCounter::new(get(&m.gifts_held[reason.index()]));
            counter.encode(family.encode_family(&[("reason", reason.as_str())])?)?;
        }
        let now = unix_now();
        let (closed, gates): (i64, Vec<(String, i64)>) = {
            let gates = self.flood_gates.lock().unwrap_or_else(|e| e.into_inner());
            let open: Vec<_> = gates
                .iter()
                .filter(|&(_, &until)| until > now)
                .map(|(method, &until)| (method.clone(), until))
                .collect();
            (open.len() as i64, open)
        };
        let accounts = self
            .accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let ready = self.ready.load(Ordering::Relaxed)
            && !accounts.iter().any(AccountView::is_down)
            && !matches!(
                *self.bot_link.lock().unwrap_or_else(|e| e.into_inner()),
                Some(BotLink::Failed(_))
            );
        let bot_connected = matches!(
            *self.bot_link.lock().unwrap_or_else(|e| e.into_inner()),
            Some(BotLink::Connected)
        );
        let gauges: [(&str, &str, i64); 7] = [
            (
                "bot_connected",
                "1 while the companion bot is signed in and answering in this instance",
                i64::from(bot_connected),
            ),
            (
                "ready",
                "1 when the daemon is ready (no deposit account down or left unserved by a silent lease holder, the bot not failed)",
                i64::from(ready),
            ),
            (
                "mirror_backlog",
                "changes waiting for the store",
                get(&m.mirror_backlog) as i64,
            ),
            (
                "last_poll_timestamp_seconds",
                "unix time of the last successful poll",
                m.last_poll_unix.load(Ordering::Relaxed),
            ),
            (
                "inventory_items",
                "items in the live inventory",
                get(&m.inventory_items) as i64,
            ),
            (
                "telegram_methods_closed",
                "telegram methods closed now by a FLOOD_WAIT longer than telegram.flood_wait_max",
                closed,
            ),
            (
                "start_time_seconds",
                "unix time this giftd process started",
                m.start_unix.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let family = encoder.encode_descriptor(
            "telegram_method_closed_until_timestamp_seconds",
            "unix time a telegram method closed by a long FLOOD_WAIT opens again",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        let mut family = family;
        for (method, until) in gates {
            let gauge = ConstGauge::new(until);
            gauge.encode(family.encode_family(&[("method", method)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "account",
            "1 for each deposit account's state in this instance (starting, serving, standby: \
             another instance serves it, down)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for a in accounts {
            for state in ["starting", "serving", "standby", "down"] {
                let gauge = ConstGauge::new(i64::from(a.state.label() == state));
                gauge.encode(
                    family.encode_family(&[("name", a.name.as_str()), ("state", state)])?,
                )?;
            }
        }
        Ok(())
    }
}

/// Serves `/healthz`, `/readyz` and `/metrics` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    health: std::sync::Arc<Health>,
    cancel: CancellationToken,
) {
    loop {
        let (mut stream, _) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "health endpoint: accept failed");
                    continue;
                }
            },
        };
        let health = std::sync::Arc::clone(&health);
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
                    .await;
            let n = match read {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("GET "))
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or("");
            let (code, body) = match path {
                "/healthz" => (200, "ok\n".to_owned()),
                "/readyz" if health.is_ready() => (200, health.readiness()),
                "/readyz" => (503, health.readiness()),
                "/metrics" => (200, health.render_metrics()),
                _ => (
                    404,
                    "not found: try /healthz, /readyz or /metrics\n".to_owned(),
                ),
            };
            let reason = match code {
                200 => "OK",
                503 => "Service Unavailable",
                _ => "Not Found",
            };
            let content_type = if path == "/metrics" {
                "text/plain; version=0.0.4; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            };
            let response = format!(
                "HTTP/1.1 {code} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

/// Sends a message to systemd when run under `Type=notify` (`NOTIFY_SOCKET` set); returns
/// whether it was sent.
pub fn sd_notify(message: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let socket = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return false,
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| socket.send_to_addr(message.as_bytes(), &addr))
    } else {
        socket.send_to(message.as_bytes(), &path)
    };
    sent.is_ok()
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`), halved as sd_watchdog_enabled(3)
/// recommends.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| std::time::Duration::from_micros(usec / 2))
}

/// Binds the health endpoint, with an error that says which address failed.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} for the health endpoint ([health] listen): {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_holder_and_a_failed_bot_are_not_ready() {
        let h = Health::new();
        h.add_account("alpha");
        h.set_ready(true, "watching");
        h.set_account("alpha", Some(7), AccountState::Standby);
        assert!(h.is_ready(), "{}", h.readiness());
        let since_ms = (unix_now() - 20) * 1000;
        h.set_account(
            "alpha",
            None,
            AccountState::HolderSilent {
                holder: "edge-1/host:12:ab".into(),
                since_ms,
            },
        );
        assert!(!h.is_ready());
        let body = h.readiness();
        assert!(
            body.contains(&format!(
                "account alpha (7): standby, but its holder edge-1/host:12:ab has not renewed \
                 the lease since unix {} (20 s ago",
                since_ms / 1000
            )),
            "{body}"
        );
        assert!(
            h.render_metrics()
                .contains("giftd_account{name=\"alpha\",state=\"standby\"} 1\n")
        );
        h.set_account("alpha", None, AccountState::Serving);
        h.set_bot_link(Some(BotLink::Connecting));
        assert!(h.is_ready());
        assert!(h.readiness().contains("bot: not connected yet: signing in"));
        h.set_bot_link(Some(BotLink::Failed(
            "bot token refused: check bot.token".into(),
        )));
        assert!(!h.is_ready());
        let body = h.readiness();
        assert!(
            body.starts_with("not ready: the companion bot is not connected\n")
                && body.contains("bot: not connected: bot token refused: check bot.token\n"),
            "{body}"
        );
        assert!(h.render_metrics().contains("giftd_ready 0\n"));
        h.set_bot_link(Some(BotLink::Connected));
        assert!(h.is_ready());
        assert!(h.readiness().contains("bot: runs here\n"));
        assert!(h.render_metrics().contains("giftd_bot_connected 1\n"));
    }

    #[test]
    fn metrics_render_every_counter() {
        let h = Health::new();
        h.watch_account(42);
        h.metrics.deposits_poll.store(3, Ordering::Relaxed);
        h.set_ready(true, "watching");
        let text = h.render_metrics();
        assert!(text.contains("giftd_deposits_poll_total 3\n"), "{text}");
        assert!(text.contains("giftd_ready 1\n"), "{text}");
        // The 17 metrics giftd always had, 4 added with issue 11, 4 histograms, the family, the
        // withdrawal queue's gauges created per account (the Stars balance appears once the
        // worker has read it), the fenced-changes counter of issue 10, the deposit accounts'
        // states, the refunds after resends, whether the bot is connected and the gift decisions
        // (ignored, held, unreadable).
        assert_eq!(text.matches("# TYPE").count(), 35, "{text}");
        assert!(text.contains("giftd_bot_connected 0\n"), "{text}");
        h.metrics.count_decision(&Decision::Ignore {
            reason: IgnoreReason::UpgradedByOtherSide,
        });
        h.metrics.count_decision(&Decision::Hold {
            reason: HoldReason::NoSender,
        });
        let text = h.render_metrics();
        assert!(
            text.contains(
                "giftd_gift_messages_ignored_total{reason=\"upgraded_by_other_side\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("giftd_gifts_held_total{reason=\"no_sender\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("giftd_telegram_unreadable_total 0\n"),
            "{text}"
        );
        for name in [
            "giftd_refunds_after_resend_total counter",
            "giftd_detection_seconds histogram",
            "giftd_mirror_commit_seconds histogram",
            "giftd_bot_reply_seconds histogram",
            "giftd_withdrawal_seconds histogram",
            "giftd_updates_dropped_total counter",
            "giftd_mirror_fenced_total counter",
            "giftd_mirror_backlog gauge",
            "giftd_withdrawals gauge",
            "giftd_withdrawal_stars_needed gauge",
        ] {
            assert!(text.contains(&format!("# TYPE {name}\n")), "{name}: {text}");
        }
    }

    #[test]
    fn histograms_are_labelled_by_account() {
        let h = Health::new();
        h.latency
            .mirror_commit
            .get_or_create(&AccountLabel {
                account: "42".to_owned(),
            })
            .observe(0.004);
        h.latency
            .detection
            .get_or_create(&DetectionLabels {
                account: "42".to_owned(),
                path: "update".to_owned(),
            })
            .observe(0.0);
        let text = h.render_metrics();
        for line in [
            "giftd_mirror_commit_seconds_bucket{account=\"42\",le=\"0.0025\"} 0\n",
            "giftd_mirror_commit_seconds_bucket{account=\"42\",le=\"0.005\"} 1\n",
            "giftd_mirror_commit_seconds_count{account=\"42\"} 1\n",
            "giftd_detection_seconds_bucket{account=\"42\",path=\"update\",le=\"1\"} 1\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
    }

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

    #[tokio::test]
    async fn endpoints_answer() {
        let h = std::sync::Arc::new(Health::new());
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        tokio::spawn(serve(listener, h.clone(), cancel.clone()));
        async fn get(addr: SocketAddr, path: &str) -> String {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        }
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        h.set_ready(true, "watching");
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        // One account down makes the daemon not ready, and says which.
        for name in ["alpha", "beta", "gamma"] {
            h.add_account(name);
        }
        h.set_account("alpha", Some(11), AccountState::Serving);
        h.set_account("gamma", None, AccountState::Standby);
        h.set_account(
            "beta",
            Some(22),
            AccountState::Down("session revoked: run `giftd login --account beta`".into()),
        );
        let body = get(addr, "/readyz").await;
        assert!(body.starts_with("HTTP/1.1 503"), "{body}");
        assert!(
            body.ends_with(
                "not ready: deposit account down: beta\n\
                 account alpha (11): serving\n\
                 account beta (22): down: session revoked: run `giftd login --account beta`\n\
                 account gamma: standby (another instance serves it; healthy)\n"
            ),
            "{body}"
        );
        let metrics = h.render_metrics();
        for line in [
            "giftd_account{name=\"beta\",state=\"down\"} 1\n",
            "giftd_account{name=\"beta\",state=\"serving\"} 0\n",
            "giftd_account{name=\"gamma\",state=\"standby\"} 1\n",
            "giftd_ready 0\n",
        ] {
            assert!(metrics.contains(line), "{line}: {metrics}");
        }
        h.set_account("beta", None, AccountState::Serving);
        let body = get(addr, "/readyz").await;
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("account beta (22): serving\n"), "{body}");
        assert!(get(addr, "/healthz").await.ends_with("ok\n"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        cancel.cancel();
    }
}
