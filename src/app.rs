//! The daemon: wires Telegram, the detector, the inventory, the mirror and health together and
//! runs them until shutdown (`giftd run`).
//!
//! Start: open the store and check its schema, connect to Telegram as the deposit account, load
//! what the store holds into the inventory, reconcile it with everything Telegram lists (gifts
//! that arrived while giftd was down are credited here), flush, and only then report ready.
//! Then three intake tasks feed one detector: the update stream (speed), a poll of the newest
//! saved gifts every `poll_interval` (safety net), and a full reconciliation every
//! `reconcile_interval` (also finds what left the account).
//!
//! Shutdown is one root [`CancellationToken`]: intake stops first, the mirror writes what is
//! queued within a deadline, the update state is saved, the session closed.
//!
//! Every credit goes through [`Applier::apply`], which inserts into the inventory first: the
//! insert is idempotent per item key, so a gift seen by two paths at once is credited once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, Notify, broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AccountConfig, Config};
use crate::detector::{Detector, GiftEvent, ObservedGift};
use crate::gift::{Item, ItemKey, Owner, Status, UserId, UserInfo};
use crate::health::{self, AccountState, DetectionLabels, Health};
use crate::inventory::Inventory;
use crate::lease::{Epochs, Keeper, LeaseHandle, LeaseState};
use crate::mirror::{self, Change, MirrorHandle};
use crate::store::{self, StoreError, SyncLog};
use crate::telegram::{self, ConnectOptions, GiftUpdates, Telegram, TelegramError};

/// How long shutdown waits for the intake tasks and then for the mirror, in total well under
/// the unit's `TimeoutStopSec` (30 s).
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Telegram(#[from] TelegramError),
    #[error("{0}")]
    Health(#[from] std::io::Error),
    #[error(
        "shutdown deadline passed with {backlog} changes not yet in the store; they will be found \
         again by the reconciliation at the next start"
    )]
    UnflushedAtShutdown { backlog: u64 },
}

/// Which path saw a gift first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Update,
    Poll,
    Reconcile,
}

/// What the daemon tells observers (the demo's progress display, tests).
#[derive(Debug, Clone)]
pub enum Notice {
    Credited {
        key: ItemKey,
        owner: Owner,
        gift_id: i64,
        unique: bool,
        path: Path,
    },
    Left {
        key: ItemKey,
        to: Status,
    },
    /// An item credited to nobody was credited to the sender Telegram named later.
    Attributed {
        key: ItemKey,
        owner: UserId,
        path: Path,
    },
    Ready {
        items: usize,
    },
    Reconciled {
        listed: usize,
        credited: usize,
        departed: usize,
    },
}

/// A daemon instance. Its parts can be read while it runs.
#[derive(Debug, Clone)]
pub struct Daemon {
    health: Arc<Health>,
    inventory: Arc<Inventory>,
    notices: broadcast::Sender<Notice>,
    commits: broadcast::Sender<mirror::Committed>,
    /// Wakes the withdrawal worker when this process creates a request.
    withdrawals_wake: Arc<Notify>,
    /// Whether the companion bot may run in this instance: true while it holds the `bot`
    /// lease (always, without leases). The bot starts and stops with it.
    bot_active: watch::Sender<bool>,
}

impl Default for Daemon {
    fn default() -> Self {
        Self::new()
    }
}

impl Daemon {
    pub fn new() -> Self {
        Self {
            health: Arc::new(Health::new()),
            inventory: Arc::new(Inventory::new()),
            notices: broadcast::channel(4096).0,
            commits: broadcast::channel(4096).0,
            withdrawals_wake: Arc::new(Notify::new()),
            bot_active: watch::channel(false).0,
        }
    }

    /// The bot's hook: true while this instance may run the companion bot (it holds the `bot`
    /// lease, or leases are off), false otherwise; the bot runs only while it is true and
    /// stops when it turns false. Only one instance sharing a store sees true at a time.
    pub fn bot_active(&self) -> watch::Receiver<bool> {
        self.bot_active.subscribe()
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    pub fn inventory(&self) -> &Arc<Inventory> {
        &self.inventory
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// Every batch the store acknowledged, with the new items it wrote.
    pub fn subscribe_commits(&self) -> broadcast::Receiver<mirror::Committed> {
        self.commits.subscribe()
    }

    /// Runs until `shutdown` is cancelled (Ok) or something fatal happens (Err): the host
    /// clock far ahead of Telegram's, or no deposit account left that a restart could serve
    /// (every one down with a session error such as a revoked or missing session).
    pub async fn run(&self, config: &Config, shutdown: CancellationToken) -> Result<(), AppError> {
        let store = store::open(&config.store).await?;
        store.check_schema().await?;
        tracing::info!(store = store.backend(), "store ready");

        let intake = shutdown.child_token();
        // Whatever way `run` returns, the tasks it started stop.
        let _stop_tasks = intake.clone().drop_guard();
        let tracker = TaskTracker::new();

        let listener = health::bind(config.health.listen).await?;
        tracing::info!(addr = %listener.local_addr()?, "health endpoint listening");
        let health_stop = CancellationToken::new();
        let _stop_health = health_stop.clone().drop_guard();
        let health_task = tokio::spawn(health::serve(
            listener,
            Arc::clone(&self.health),
            health_stop.clone(),
        ));
        for account in &config.accounts {
            self.health.add_account(&account.name);
        }

        // Leases when several instances may share the store (Supabase); the embedded store is
        // one daemon's alone (an OS lock), so its writes stay unfenced.
        let leases =
            matches!(config.store, crate::config::StoreConfig::Supabase(_)).then_some(config.lease);
        let epochs = if leases.is_some() {
            Epochs::leased()
        } else {
            Epochs::unfenced()
        };
        let holder = crate::lease::instance_id();
        let keepers: Arc<AsyncMutex<Vec<LeaseHandle>>> = Arc::default();
        if let Some(times) = leases {
            tracing::info!(
                instance = holder,
                ttl_ms = times.ttl.as_millis() as u64,
                renew_ms = times.renew_every.as_millis() as u64,
                "leases on: each deposit account is served by the instance holding its lease"
            );
        }
        self.start_bot_lease(config, &store, leases, &holder, &keepers, &intake)
            .await;

        let (mirror, mirror_task) = mirror::channel(
            Arc::clone(&store),
            config.mirror.clone(),
            Arc::clone(&self.health),
            self.commits.clone(),
        );
        let mirror_join = tokio::spawn(mirror_task.with_epochs(epochs.clone()).run());

        let (events_tx, mut events) = mpsc::channel::<AccountEvent>(64);
        let shared = Arc::new(Shared {
            config: config.clone(),
            several: config.accounts.len() > 1,
            store: Arc::clone(&store),
            inventory: Arc::clone(&self.inventory),
            health: Arc::clone(&self.health),
            notices: self.notices.clone(),
            mirror,
            withdrawals_wake: Arc::clone(&self.withdrawals_wake),
            events: events_tx,
            leases,
            epochs,
            holder,
            keepers: Arc::clone(&keepers),
        });
        self.health
            .set_status("connecting the deposit accounts to telegram");
        for account in &config.accounts {
            tracker.spawn(run_account(
                Arc::clone(&shared),
                account.clone(),
                intake.child_token(),
            ));
        }
        tracker.spawn(clock_watch(Arc::clone(&shared), intake.child_token()));
        tracker.spawn(watchdog(intake.child_token()));
        tracker.spawn(self_check(Arc::clone(&shared), intake.child_token()));

        let result = self.supervise(config, &mut events, &intake).await;

        // Shutdown, in order: intake stops (each account's tasks, then its session), the
        // mirror drains.
        self.health.set_ready(false, "stopping");
        intake.cancel();
        tracker.close();
        let deadline = tokio::time::Instant::now() + SHUTDOWN_DEADLINE;
        if tokio::time::timeout_at(deadline, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("intake tasks did not stop in time");
        }
        let backlog = shared.mirror.backlog();
        drop(shared);
        drop(events);
        let flushed = tokio::time::timeout_at(deadline, mirror_join).await.is_ok();
        // Only now, with every change written, another instance may take the accounts over:
        // releasing ends the terms in the store at once instead of after the TTL.
        let _ = self.bot_active.send(false);
        for keeper in std::mem::take(&mut *keepers.lock().await) {
            let name = keeper.name().to_owned();
            match tokio::time::timeout(Duration::from_secs(5), keeper.release()).await {
                Ok(Ok(true)) => {
                    tracing::info!(lease = name, "lease released for a quick take-over")
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(lease = name, error = %e, "could not release; it expires by itself")
                }
                Err(_) => tracing::warn!(lease = name, "release timed out; it expires by itself"),
            }
        }
        health_stop.cancel();
        let _ = health_task.await;
        match (result, flushed) {
            (Err(e), _) => Err(e),
            (Ok(()), false) => Err(AppError::UnflushedAtShutdown { backlog }),
            (Ok(()), true) => {
                tracing::info!("stopped cleanly; every change is in the store");
                Ok(())
            }
        }
    }

    /// Follows the accounts until shutdown: reports ready once each has started or failed,
    /// and returns an error when none is left that a restart could serve.
    async fn supervise(
        &self,
        config: &Config,
        events: &mut mpsc::Receiver<AccountEvent>,
        intake: &CancellationToken,
    ) -> Result<(), AppError> {
        let names: Vec<&str> = config.accounts.iter().map(|a| a.name.as_str()).collect();
        let mut reported: HashSet<String> = HashSet::new();
        // Accounts down with an error only an operator fixes (`giftd login`), in config order.
        let mut lost: Vec<(String, AppError)> = Vec::new();
        loop {
            let event = tokio::select! {
                () = intake.cancelled() => return Ok(()),
                event = events.recv() => match event {
                    Some(e) => e,
                    None => return Ok(()),
                },
            };
            match event {
                AccountEvent::Fatal(e) => return Err(e),
                AccountEvent::Up { name } | AccountEvent::Standby { name } => {
                    lost.retain(|(n, _)| *n != name);
                    reported.insert(name);
                }
                AccountEvent::Down { name, error } => {
                    let permanent = matches!(
                        &error,
                        AppError::Telegram(
                            TelegramError::NotAuthorised { .. } | TelegramError::Session { .. }
                        )
                    );
                    lost.retain(|(n, _)| *n != name);
                    if permanent {
                        lost.push((name.clone(), error));
                    }
                    reported.insert(name);
                }
            }
            if lost.len() == names.len() {
                let first = names
                    .iter()
                    .find_map(|n| lost.iter().position(|(l, _)| l == n))
                    .unwrap_or(0);
                let (name, error) = lost.swap_remove(first);
                if names.len() > 1 {
                    tracing::error!(
                        account = name,
                        "every deposit account is down with a session error; stopping"
                    );
                }
                return Err(error);
            }
            if reported.len() == names.len() && !self.health.is_ready_flag() {
                self.health.set_ready(true, "watching the deposit accounts");
                let _ = self.notices.send(Notice::Ready {
                    items: self.inventory.len(),
                });
                tracing::info!(items = self.inventory.len(), "ready");
            }
        }
    }
}

impl Daemon {
    /// Starts the `bot` lease's keeper when a bot is configured and leases are on, and keeps
    /// [`Daemon::bot_active`] following it; without leases the bot may always run.
    async fn start_bot_lease(
        &self,
        config: &Config,
        store: &Arc<dyn store::Store>,
        leases: Option<crate::lease::LeaseTimes>,
        holder: &str,
        keepers: &Arc<AsyncMutex<Vec<LeaseHandle>>>,
        intake: &CancellationToken,
    ) {
        let Some(times) = leases else {
            let _ = self.bot_active.send(config.bot.is_some());
            return;
        };
        if config.bot.is_none() {
            return;
        }
        let keeper = Keeper::new(
            Arc::clone(store),
            crate::store::BOT_LEASE,
            holder.to_owned(),
            times,
        )
        .spawn(intake.clone());
        let mut watch = keeper.watch();
        keepers.lock().await.push(keeper);
        let active = self.bot_active.clone();
        let cancel = intake.clone();
        tokio::spawn(async move {
            loop {
                let held = watch.borrow_and_update().epoch().is_some();
                if *active.borrow() != held {
                    tracing::info!(held, "the bot lease");
                    let _ = active.send(held);
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    changed = watch.changed() => if changed.is_err() { return },
                }
            }
        });
    }
}

/// What every account's task shares with the daemon.
#[derive(Debug)]
struct Shared {
    config: Config,
    /// More than one account is configured: messages name `--account NAME`.
    several: bool,
    store: Arc<dyn store::Store>,
    inventory: Arc<Inventory>,
    health: Arc<Health>,
    notices: broadcast::Sender<Notice>,
    /// One mirror for every account; it closes when the last task holding [`Shared`] ends.
    mirror: MirrorHandle,
    withdrawals_wake: Arc<Notify>,
    events: mpsc::Sender<AccountEvent>,
    /// Lease times when leases are on (the Supabase store), `None` for the embedded store.
    leases: Option<crate::lease::LeaseTimes>,
    /// Each account's epoch while this instance holds it; the mirror and the workers read it.
    epochs: Epochs,
    /// This instance's id in the lease rows.
    holder: String,
    /// Every keeper this instance runs, released at shutdown after the mirror's flush.
    keepers: Arc<AsyncMutex<Vec<LeaseHandle>>>,
}

/// What an account's task tells the daemon.
#[derive(Debug)]
enum AccountEvent {
    /// The account is served (after its start-up reconciliation).
    Up { name: String },
    /// Another instance holds the account's lease; this one waits.
    Standby { name: String },
    /// The account stopped being served; its task retries.
    Down { name: String, error: AppError },
    /// Something no account can work around (the host clock): the daemon stops.
    Fatal(AppError),
}

/// First wait before an account that failed is tried again; doubled up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Serves one deposit account until `cancel`, reconnecting with backoff after a failure; the
/// others are not affected by its failures. With leases it first learns the account's
/// Telegram id (its lease is named by it), keeps the account's lease, and serves only while
/// holding it: when the lease is lost the account's intake and worker stop at once (the epochs
/// the mirror and the worker write with are cleared first) and its items leave this instance's
/// inventory, so a later term starts again from the store.
async fn run_account(shared: Arc<Shared>, account: AccountConfig, cancel: CancellationToken) {
    let name = account.name.clone();
    let mut delay = RETRY_MIN;
    let mut lease: Option<watch::Receiver<LeaseState>> = None;
    let mut id: Option<UserId> = None;
    let mut first_answer_seen = false;
    loop {
        if let Some(times) = shared.leases {
            let known = match id {
                Some(id) => Ok(id),
                None => account_id(&shared, &account, &cancel).await,
            };
            match known {
                Ok(known) => {
                    if id.is_none() {
                        id = Some(known);
                        shared.health.watch_account(known);
                        let keeper = Keeper::for_account(
                            Arc::clone(&shared.store),
                            known,
                            shared.holder.clone(),
                            times,
                            &shared.epochs,
                        )
                        .spawn(cancel.clone());
                        lease = Some(keeper.watch());
                        shared.keepers.lock().await.push(keeper);
                    }
                }
                Err(e) => {
                    if account_failed(&shared, &name, e, &mut delay, &cancel).await {
                        return;
                    }
                    continue;
                }
            }
        }
        // Standby until this instance holds the account's lease. A new keeper's first answer
        // is awaited first, so a free lease is not reported as standby for a moment.
        if let (Some(watch), Some(times)) = (lease.as_mut(), shared.leases)
            && !first_answer_seen
        {
            first_answer_seen = true;
            if watch.borrow().epoch().is_none() {
                let _ = tokio::time::timeout(times.ttl, watch.changed()).await;
            }
        }
        if let Some(watch) = lease.as_mut()
            && watch.borrow().epoch().is_none()
        {
            shared.health.set_account(&name, id, AccountState::Standby);
            let _ = shared
                .events
                .send(AccountEvent::Standby { name: name.clone() })
                .await;
            tokio::select! {
                () = cancel.cancelled() => return,
                held = watch.wait_for(|s| s.epoch().is_some()) => {
                    if held.is_err() {
                        return; // the keeper ended: shutting down
                    }
                }
            }
            tracing::info!(account = name, "took the account's lease; serving it");
        }
        shared.health.set_account(&name, id, AccountState::Starting);
        let session = cancel.child_token();
        let lost = lease.clone().map(|mut watch| {
            let session = session.clone();
            tokio::spawn(async move {
                let _ = watch.wait_for(|s| s.epoch().is_none()).await;
                session.cancel();
            })
        });
        let result = serve_account(&shared, &account, &session).await;
        if let Some(lost) = lost {
            lost.abort();
        }
        if cancel.is_cancelled() {
            return;
        }
        if session.is_cancelled() {
            // The lease went to another instance (or could not be renewed in time).
            let forgot = id.map_or(0, |id| shared.inventory.forget_account(id));
            tracing::warn!(
                account = name,
                items_forgotten = forgot,
                "lost the account's lease: stopped its intake and withdrawals; standing by"
            );
            delay = RETRY_MIN;
            continue;
        }
        let error = match result {
            Ok(()) => continue,
            Err(e) => e,
        };
        if account_failed(&shared, &name, error, &mut delay, &cancel).await {
            return;
        }
    }
}

/// Records an account's failure (down, with what to do), tells the daemon, and waits before the
/// next try. Returns true when the task should end (shutdown, or a fatal error for the daemon).
async fn account_failed(
    shared: &Shared,
    name: &str,
    error: AppError,
    delay: &mut Duration,
    cancel: &CancellationToken,
) -> bool {
    if cancel.is_cancelled() {
        return true;
    }
    if let AppError::Telegram(TelegramError::ClockAhead { .. }) = &error {
        let _ = shared.events.send(AccountEvent::Fatal(error)).await;
        return true;
    }
    let mut why = error.to_string();
    if shared.several {
        why = why.replace(
            "run `giftd login`",
            &format!("run `giftd login --account {name}`"),
        );
    }
    let why = format!("{why} (retrying in {} s)", delay.as_secs());
    shared
        .health
        .set_account(name, None, AccountState::Down(why));
    let _ = shared
        .events
        .send(AccountEvent::Down {
            name: name.to_owned(),
            error,
        })
        .await;
    tokio::select! {
        () = cancel.cancelled() => return true,
        () = tokio::time::sleep(*delay) => {}
    }
    *delay = (*delay * 2).min(RETRY_MAX);
    false
}

/// The account's Telegram user id, which names its lease: a short connection without the
/// update stream, closed at once (the holder connects for real when it takes the lease).
async fn account_id(
    shared: &Shared,
    account: &AccountConfig,
    cancel: &CancellationToken,
) -> Result<UserId, AppError> {
    let opts = ConnectOptions {
        session_file: account.session_file.clone(),
        api_id: shared.config.telegram.api_id,
        api_hash: shared.config.telegram.api_hash.clone(),
        flood_wait_max: shared.config.telegram.flood_wait_max,
        updates: false,
        update_buffer: shared.config.telegram.update_buffer,
        health: Arc::clone(&shared.health),
    };
    let conn = Telegram::connect(&opts, cancel.child_token()).await?;
    let id = conn.telegram.self_id();
    conn.telegram.disconnect();
    let mut runner = conn.runner;
    if tokio::time::timeout(Duration::from_secs(2), &mut runner)
        .await
        .is_err()
    {
        runner.abort();
    }
    Ok(id)
}

/// One connection's life for an account: connect, load, reconcile, serve until `cancel` (Ok)
/// or until the account fails (Err), then stop its tasks and close its session.
async fn serve_account(
    shared: &Arc<Shared>,
    account: &AccountConfig,
    cancel: &CancellationToken,
) -> Result<(), AppError> {
    let config = &shared.config;
    let opts = ConnectOptions {
        session_file: account.session_file.clone(),
        api_id: config.telegram.api_id,
        api_hash: config.telegram.api_hash.clone(),
        flood_wait_max: config.telegram.flood_wait_max,
        updates: config.telegram.updates,
        update_buffer: config.telegram.update_buffer,
        health: Arc::clone(&shared.health),
    };
    let session = cancel.child_token();
    let conn = Telegram::connect(&opts, session.child_token()).await?;
    let telegram = conn.telegram.clone();
    let id = telegram.self_id();
    shared.health.watch_account(id);
    shared
        .health
        .set_account(&account.name, Some(id), AccountState::Starting);
    tracing::info!(
        account = account.name,
        id,
        "signed in as the deposit account"
    );

    let tracker = TaskTracker::new();
    let result = run_session(shared, account, &telegram, conn.updates, &session, &tracker).await;

    // The account's intake stops, its update state is saved (by the update loop), the
    // session closes. What it queued stays in the shared mirror.
    session.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_DEADLINE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(account = account.name, "intake tasks did not stop in time");
    }
    telegram.disconnect();
    let mut runner = conn.runner;
    if tokio::time::timeout(Duration::from_secs(2), &mut runner)
        .await
        .is_err()
    {
        runner.abort();
    }
    result
}

/// Loads the account's items, reconciles, then runs its intake paths and withdrawal worker
/// until `session` is cancelled (Ok) or the account fails (Err).
async fn run_session(
    shared: &Arc<Shared>,
    account: &AccountConfig,
    telegram: &Telegram,
    updates: Option<GiftUpdates>,
    session: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), AppError> {
    let config = &shared.config;
    let id = telegram.self_id();
    for item in shared.store.load_items(id).await? {
        shared.inventory.insert(item);
    }
    tracing::info!(
        account = account.name,
        items = shared.inventory.len(),
        "inventory loaded"
    );
    let applier = Arc::new(Applier {
        detector: Detector::new(id),
        inventory: Arc::clone(&shared.inventory),
        mirror: shared.mirror.clone(),
        health: Arc::clone(&shared.health),
        notices: shared.notices.clone(),
        retired: std::sync::Mutex::new(Vec::new()),
        last_poll_unix: std::sync::atomic::AtomicI64::new(now_unix()),
    });
    if !reconcile(telegram, &applier).await? {
        // The list moved under the first pass: one more, so departures are settled.
        reconcile(telegram, &applier).await?;
    }
    applier.mirror.flush().await.ok();
    applier.evict_retired();
    shared
        .health
        .set_account(&account.name, Some(id), AccountState::Serving);
    let _ = shared
        .events
        .send(AccountEvent::Up {
            name: account.name.clone(),
        })
        .await;

    let (fatal_tx, mut fatal_rx) = mpsc::channel::<AppError>(4);
    let reconcile_now = Arc::new(Notify::new());
    if let Some(updates) = updates {
        tracker.spawn(update_loop(
            updates,
            Arc::clone(&applier),
            Arc::clone(&reconcile_now),
            session.child_token(),
        ));
    }
    tracker.spawn(poll_loop(
        telegram.clone(),
        Arc::clone(&applier),
        config.telegram.poll_interval,
        session.child_token(),
        fatal_tx,
    ));
    tracker.spawn(reconcile_loop(
        telegram.clone(),
        Arc::clone(&applier),
        config.telegram.reconcile_interval,
        Arc::clone(&reconcile_now),
        session.child_token(),
    ));
    let worker = crate::withdraw::worker::Worker {
        store: Arc::clone(&shared.store),
        telegram: telegram.clone(),
        inventory: Arc::clone(&shared.inventory),
        notifier: Arc::new(crate::withdraw::worker::LogNotifier),
        config: config.withdraw.clone(),
        id: crate::withdraw::worker::Worker::id_for(id),
        wake: Arc::clone(&shared.withdrawals_wake),
        health: Arc::clone(&shared.health),
        epochs: shared.epochs.clone(),
    };
    tracker.spawn(worker.run(session.child_token()));
    tracker.spawn(account_check(
        Arc::clone(shared),
        account.name.clone(),
        id,
        Arc::clone(&applier),
        session.child_token(),
    ));

    tokio::select! {
        () = session.cancelled() => Ok(()),
        Some(e) = fatal_rx.recv() => Err(e),
    }
}

/// Applies detector events: inventory first (idempotent), then the mirror and observers.
#[derive(Debug)]
struct Applier {
    detector: Detector,
    inventory: Arc<Inventory>,
    mirror: MirrorHandle,
    health: Arc<Health>,
    notices: broadcast::Sender<Notice>,
    /// Items that reached a terminal status, evicted from the live view once written.
    retired: std::sync::Mutex<Vec<ItemKey>>,
    /// Unix seconds of this account's last successful poll, for its self-check.
    last_poll_unix: std::sync::atomic::AtomicI64,
}

impl Applier {
    /// Returns how many items were credited and how many left.
    async fn apply(
        &self,
        events: Vec<GiftEvent>,
        path: Path,
        users: &[UserInfo],
    ) -> (usize, usize) {
        let (mut credited, mut departed) = (0, 0);
        let mut senders = HashSet::new();
        for event in events {
            match event {
                GiftEvent::Deposited { item, gift_type } => {
                    if !self.inventory.insert(item.clone()) {
                        continue; // the other path was first
                    }
                    credited += 1;
                    let m = &self.health.metrics;
                    match path {
                        Path::Update => &m.deposits_update,
                        Path::Poll => &m.deposits_poll,
                        Path::Reconcile => &m.deposits_reconcile,
                    }
                    .fetch_add(1, Ordering::Relaxed);
                    self.observe_detection(&item, path);
                    tracing::info!(
                        key = %item.key,
                        owner = %item.owner,
                        gift_id = item.gift_id,
                        unique = item.unique.is_some(),
                        ?path,
                        "gift credited"
                    );
                    if let Owner::User(id) = item.owner {
                        senders.insert(id);
                    }
                    let _ = self.notices.send(Notice::Credited {
                        key: item.key,
                        owner: item.owner,
                        gift_id: item.gift_id,
                        unique: item.unique.is_some(),
                        path,
                    });
                    if self
                        .mirror
                        .send(Change::Deposit { item, gift_type })
                        .await
                        .is_err()
                    {
                        return (credited, departed);
                    }
                }
                GiftEvent::Left { key, to } => {
                    let Ok(entry) = self.inventory.apply(key, to, now_unix()) else {
                        continue; // already moved by the other path
                    };
                    departed += 1;
                    self.health
                        .metrics
                        .departures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%key, %to, "gift left the deposit account");
                    self.retired
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(key);
                    let _ = self.notices.send(Notice::Left { key, to });
                    if self
                        .mirror
                        .send(Change::Status { key, to, entry })
                        .await
                        .is_err()
                    {
                        return (credited, departed);
                    }
                }
                GiftEvent::Attributed { key, owner } => {
                    let entry = match self.inventory.attribute(key, owner, now_unix()) {
                        Ok(entry) => entry,
                        // Another path attributed it first, or it left meanwhile.
                        Err(_) => continue,
                    };
                    self.health
                        .metrics
                        .attributions
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%key, owner, ?path, "sender named later: gift credited to them");
                    senders.insert(owner);
                    let _ = self.notices.send(Notice::Attributed { key, owner, path });
                    if self
                        .mirror
                        .send(Change::Attributed { key, owner, entry })
                        .await
                        .is_err()
                    {
                        return (credited, departed);
                    }
                }
            }
        }
        for u in users.iter().filter(|u| senders.contains(&u.id)) {
            if self.mirror.send(Change::User(u.clone())).await.is_err() {
                break;
            }
        }
        self.health
            .metrics
            .inventory_items
            .store(self.inventory.len() as u64, Ordering::Relaxed);
        (credited, departed)
    }

    /// Seconds from the gift's message date (whole seconds, Telegram's clock) to now.
    fn observe_detection(&self, item: &Item, path: Path) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let path = match path {
            Path::Update => "update",
            Path::Poll => "poll",
            Path::Reconcile => "reconcile",
        };
        self.health
            .latency
            .detection
            .get_or_create(&DetectionLabels {
                account: item.key.account_id.to_string(),
                path: path.to_owned(),
            })
            .observe((now - item.received_at as f64).max(0.0));
    }

    /// Marks what a poll or reconciliation listed, so later polls may stop there.
    fn confirm(&self, gifts: &[ObservedGift]) {
        let account = self.detector.account_id();
        self.inventory
            .confirm(gifts.iter().map(|g| ItemKey::new(account, g.msg_id)));
    }

    /// Drops items that reached a terminal status from the live view. Call after a flush.
    fn evict_retired(&self) {
        let keys = std::mem::take(&mut *self.retired.lock().unwrap_or_else(|e| e.into_inner()));
        for key in keys {
            let _ = self.inventory.evict(key);
        }
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One full reconciliation: every page, against everything held.
///
/// Returns whether the listing was consistent. An inconsistent one (the list changed while it
/// was read) still credits what is new, but decides nothing about departures and confirms
/// nothing: the caller tries again soon.
async fn reconcile(telegram: &Telegram, applier: &Applier) -> Result<bool, AppError> {
    let started = std::time::Instant::now();
    let started_at = now_unix();
    let list = telegram.all_saved_gifts().await?;
    let held: Vec<ItemKey> = if list.consistent {
        applier.inventory.held_keys()
    } else {
        tracing::info!(
            count = list.count,
            listed = list.gifts.len(),
            "the gift list changed while it was read; departures are checked at the next pass"
        );
        Vec::new()
    };
    let missing = applier.detector.missing(held.iter().copied(), &list.gifts);
    let fates = if missing.is_empty() {
        Default::default()
    } else {
        telegram.fates(&missing).await?
    };
    let events = applier.detector.reconcile(
        &*applier.inventory,
        held.iter().copied(),
        &list.gifts,
        &fates,
    );
    let (credited, departed) = applier.apply(events, Path::Reconcile, &list.users).await;
    if list.consistent {
        applier.confirm(&list.gifts);
    }
    applier
        .health
        .metrics
        .reconciliations
        .fetch_add(1, Ordering::Relaxed);
    let log = SyncLog {
        pass_id: format!(
            "{}:{}:{:08x}",
            applier.detector.account_id(),
            started_at,
            rand::random::<u32>()
        ),
        account_id: applier.detector.account_id(),
        started_at,
        finished_at: now_unix(),
        items_seen: list.gifts.len() as u32,
        items_new: credited as u32,
        items_changed: departed as u32,
        error: (!list.consistent)
            .then(|| "the list changed while it was read; departures not checked".to_owned()),
    };
    // Through the mirror, like the changes it describes: a pass that ran while the store was
    // down is written once the store is back.
    let _ = applier.mirror.send(Change::SyncLog(log)).await;
    tracing::info!(
        listed = list.gifts.len(),
        credited,
        departed,
        consistent = list.consistent,
        ms = started.elapsed().as_millis() as u64,
        "reconciliation done"
    );
    let _ = applier.notices.send(Notice::Reconciled {
        listed: list.gifts.len(),
        credited,
        departed,
    });
    Ok(list.consistent)
}

async fn update_loop(
    mut updates: GiftUpdates,
    applier: Arc<Applier>,
    reconcile_now: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => break,
            next = updates.next() => next,
        };
        match next {
            Ok(Some(gift)) => {
                failures = 0;
                on_update_gift(&applier, &reconcile_now, &gift).await;
            }
            Ok(None) => failures = 0,
            Err(e) => {
                failures += 1;
                telegram_failed(&applier.health, &e);
                let delay = Duration::from_millis(200 * u64::from(failures.min(25)));
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "update stream failed; polling still runs");
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    if let Err(e) = updates.save_state().await {
        tracing::warn!(error = %e, "could not save the update state");
    }
}

async fn on_update_gift(applier: &Applier, reconcile_now: &Notify, gift: &ObservedGift) {
    let events = applier.detector.observe(&*applier.inventory, gift);
    let upgrade = gift.unique.is_some();
    applier.apply(events, Path::Update, &[]).await;
    if upgrade {
        // A collectible may be an upgrade of a regular gift held here; the reconciliation
        // reads the old gift's fate and ends it.
        reconcile_now.notify_one();
    }
}

async fn poll_loop(
    telegram: Telegram,
    applier: Arc<Applier>,
    interval: Duration,
    cancel: CancellationToken,
    fatal: mpsc::Sender<AppError>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match poll_once(&telegram, &applier).await {
            Ok(()) => {
                let m = &applier.health.metrics;
                m.polls.fetch_add(1, Ordering::Relaxed);
                m.last_poll_unix.store(now_unix(), Ordering::Relaxed);
                applier.last_poll_unix.store(now_unix(), Ordering::Relaxed);
            }
            Err(TelegramError::Cancelled) => return,
            Err(e @ (TelegramError::NotAuthorised { .. } | TelegramError::Session { .. })) => {
                let _ = fatal.send(e.into()).await;
                return;
            }
            Err(e) => {
                telegram_failed(&applier.health, &e);
                tracing::warn!(error = %e, "poll failed; next poll in {:?}", interval);
            }
        }
    }
}

/// Reads the newest pages until a gift an earlier poll listed shows that older pages hold
/// nothing new. What this poll listed is confirmed only when the list did not change while it
/// was read (same `count` on every page): offsets are positions, and a gift leaving mid-walk
/// shifts the pages.
async fn poll_once(telegram: &Telegram, applier: &Applier) -> Result<(), TelegramError> {
    let mut offset = String::new();
    let mut listed: Vec<ObservedGift> = Vec::new();
    let mut count = None;
    let mut consistent = true;
    loop {
        let page = telegram.saved_gifts_page(&offset).await?;
        if *count.get_or_insert(page.count) != page.count {
            consistent = false;
        }
        let outcome = applier
            .detector
            .observe_page(&*applier.inventory, &page.gifts);
        applier.apply(outcome.events, Path::Poll, &page.users).await;
        tracing::debug!(
            offset,
            listed = page.gifts.len(),
            count = page.count,
            reached_known = outcome.reached_known,
            next = ?page.next_offset,
            "polled a page"
        );
        let empty = page.gifts.is_empty();
        listed.extend(page.gifts);
        match page.next_offset {
            Some(next) if !outcome.reached_known && !empty && next != offset => {
                offset = next;
            }
            _ => break,
        }
    }
    if consistent {
        applier.confirm(&listed);
    }
    Ok(())
}

async fn reconcile_loop(
    telegram: Telegram,
    applier: Arc<Applier>,
    interval: Duration,
    now: Arc<Notify>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
            () = now.notified() => {
                // let a burst of upgrades settle into one reconciliation
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        match reconcile(&telegram, &applier).await {
            Ok(consistent) => {
                if applier.mirror.flush().await.is_ok() {
                    applier.evict_retired();
                }
                if !consistent {
                    now.notify_one(); // again soon, once the list is still
                }
            }
            Err(AppError::Telegram(TelegramError::Cancelled)) => return,
            Err(e) => {
                if let AppError::Telegram(e @ TelegramError::FloodWait { .. }) = &e {
                    flood_closed(&applier.health, e);
                }
                tracing::warn!(error = %e, "reconciliation failed; retrying at the next interval")
            }
        }
    }
}

/// Counts a failed Telegram call, and a method a long FLOOD_WAIT closed.
fn telegram_failed(health: &Health, e: &TelegramError) {
    health
        .metrics
        .telegram_errors
        .fetch_add(1, Ordering::Relaxed);
    flood_closed(health, e);
}

fn flood_closed(health: &Health, e: &TelegramError) {
    if let TelegramError::FloodWait {
        method, seconds, ..
    } = e
    {
        health.flood_closed(method, *seconds);
    }
}

/// Stops the daemon when the host clock is far ahead of Telegram's (grammers resends for ever):
/// every account's connection would spin, so no account can be served.
async fn clock_watch(shared: Arc<Shared>, cancel: CancellationToken) {
    let count = tokio::select! {
        () = cancel.cancelled() => return,
        count = telegram::clock::storm() => count,
    };
    shared
        .health
        .metrics
        .clock_storms
        .fetch_add(1, Ordering::Relaxed);
    let err = TelegramError::ClockAhead { count };
    tracing::error!(error = %err, "stopping every telegram connection");
    let _ = shared.events.send(AccountEvent::Fatal(err.into())).await;
}

/// How often the daemon checks itself and updates `/readyz` and systemd's `STATUS=`.
pub const SELF_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// What the self-check saw since the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SelfCheck {
    /// Seconds since the last successful poll.
    poll_age: i64,
    poll_interval: Duration,
    /// Changes waiting for the store, and whether writes failed since the last check.
    backlog: u64,
    store_failing: bool,
}

/// The readiness verdict and the status line an operator reads.
fn verdict(c: SelfCheck) -> (bool, String) {
    let stale_after = 3 * c.poll_interval.as_secs() as i64 + 30;
    if c.poll_age > stale_after {
        (
            false,
            format!(
                "no successful poll of telegram for {} s: check the connection and the logs",
                c.poll_age
            ),
        )
    } else if c.store_failing && c.backlog > 0 {
        (
            false,
            format!(
                "the store is failing writes; {} changes are waiting (nothing is lost): check the \
                 store and the logs",
                c.backlog
            ),
        )
    } else {
        (true, "watching the deposit account".to_owned())
    }
}

/// The daemon-wide half of the self-check: the shared store. Sets `/readyz` and `STATUS=`.
async fn self_check(shared: Arc<Shared>, cancel: CancellationToken) {
    let health = &shared.health;
    let m = &health.metrics;
    let mut failures = m.mirror_failures.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(SELF_CHECK_INTERVAL) => {}
        }
        if !health.is_ready_flag() {
            continue; // still starting
        }
        let now_failures = m.mirror_failures.load(Ordering::Relaxed);
        let check = SelfCheck {
            poll_age: 0,
            poll_interval: shared.config.telegram.poll_interval,
            backlog: m.mirror_backlog.load(Ordering::Relaxed),
            store_failing: now_failures > failures,
        };
        failures = now_failures;
        let (ready, status) = verdict(check);
        if !ready {
            tracing::warn!(status, "self-check: not ready");
        }
        let status = if ready {
            "watching the deposit accounts".to_owned()
        } else {
            status
        };
        health.set_ready(ready, &status);
    }
}

/// One account's half of the self-check: it is down while its polls of Telegram keep failing
/// (a long FLOOD_WAIT, a dropped connection), and serving again once one succeeds.
async fn account_check(
    shared: Arc<Shared>,
    name: String,
    id: UserId,
    applier: Arc<Applier>,
    cancel: CancellationToken,
) {
    let poll_interval = shared.config.telegram.poll_interval;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(SELF_CHECK_INTERVAL) => {}
        }
        let (ok, why) = verdict(SelfCheck {
            poll_age: now_unix() - applier.last_poll_unix.load(Ordering::Relaxed),
            poll_interval,
            backlog: 0,
            store_failing: false,
        });
        let state = if ok {
            AccountState::Serving
        } else {
            AccountState::Down(why)
        };
        shared.health.set_account(&name, Some(id), state);
    }
}

async fn watchdog(cancel: CancellationToken) {
    let Some(every) = health::watchdog_interval() else {
        return;
    };
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        // A stalled runtime never gets here, so systemd restarts it.
        health::sd_notify("WATCHDOG=1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(poll_age: i64, backlog: u64, store_failing: bool, expected: (bool, &str)) {
        let (ready, status) = verdict(SelfCheck {
            poll_age,
            poll_interval: Duration::from_secs(5),
            backlog,
            store_failing,
        });
        assert_eq!(ready, expected.0, "{status}");
        assert!(
            status.contains(expected.1),
            "{status:?} lacks {:?}",
            expected.1
        );
    }

    #[test]
    fn self_check_verdicts() {
        check(3, 0, false, (true, "watching"));
        check(45, 0, false, (true, "watching"));
        check(
            46,
            0,
            false,
            (false, "no successful poll of telegram for 46 s"),
        );
        check(
            3,
            120,
            true,
            (
                false,
                "120 changes are waiting (nothing is lost): check the store and the logs",
            ),
        );
        check(3, 120, false, (true, "watching"));
        check(3, 0, true, (true, "watching"));
    }
}
