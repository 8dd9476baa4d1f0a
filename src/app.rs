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

use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::detector::{Detector, GiftEvent, ObservedGift};
use crate::gift::{Item, ItemKey, Owner, Status, UserId, UserInfo};
use crate::health::{self, DetectionLabels, Health};
use crate::inventory::Inventory;
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
    /// Gift titles as Telegram named them, for the bot.
    titles: Arc<crate::bot::Titles>,
    /// The companion bot's counters (zero when no bot runs).
    bot_stats: Arc<crate::bot::BotStats>,
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
            titles: Arc::new(crate::bot::Titles::new()),
            bot_stats: Arc::new(crate::bot::BotStats::default()),
        }
    }

    /// The companion bot's counters.
    pub fn bot_stats(&self) -> &Arc<crate::bot::BotStats> {
        &self.bot_stats
    }

    /// Wakes the withdrawal worker (after a request was created in this process).
    pub fn withdrawals_wake(&self) -> &Arc<Notify> {
        &self.withdrawals_wake
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

    /// Runs until `shutdown` is cancelled (Ok) or something fatal happens (Err).
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
        tracker.spawn(health::serve(
            listener,
            Arc::clone(&self.health),
            intake.child_token(),
        ));

        let opts = ConnectOptions {
            session_file: config.telegram.session_file.clone(),
            api_id: config.telegram.api_id,
            api_hash: config.telegram.api_hash.clone(),
            flood_wait_max: config.telegram.flood_wait_max,
            updates: config.telegram.updates,
            update_buffer: config.telegram.update_buffer,
            health: Arc::clone(&self.health),
        };
        self.health.set_status("connecting to telegram");
        let conn = Telegram::connect(&opts, intake.child_token()).await?;
        let telegram = conn.telegram.clone();
        let account = telegram.self_id();
        self.health.watch_account(account);
        tracing::info!(account, "signed in as the deposit account");

        self.health
            .set_status("loading the inventory from the store");
        for item in store.load_items(account).await? {
            self.inventory.insert(item);
        }
        tracing::info!(items = self.inventory.len(), "inventory loaded");

        let (mirror, mirror_task) = mirror::channel(
            Arc::clone(&store),
            config.mirror.clone(),
            Arc::clone(&self.health),
            self.commits.clone(),
        );
        let mirror_join = tokio::spawn(mirror_task.run());

        let applier = Arc::new(Applier {
            detector: Detector::new(account),
            inventory: Arc::clone(&self.inventory),
            mirror,
            health: Arc::clone(&self.health),
            notices: self.notices.clone(),
            retired: std::sync::Mutex::new(Vec::new()),
            titles: Arc::clone(&self.titles),
        });

        self.health.set_status("reconciling with telegram");
        let result = self
            .serve(
                config,
                &store,
                &telegram,
                conn.updates,
                &applier,
                &intake,
                &tracker,
            )
            .await;

        // Shutdown, in order: intake stops, the mirror drains, the session closes.
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
        let backlog = applier.mirror.backlog();
        drop(applier);
        let flushed = tokio::time::timeout_at(deadline, mirror_join).await.is_ok();
        telegram.disconnect();
        let mut runner = conn.runner;
        if tokio::time::timeout(Duration::from_secs(2), &mut runner)
            .await
            .is_err()
        {
            runner.abort();
        }
        match (result, flushed) {
            (Err(e), _) => Err(e),
            (Ok(()), false) => Err(AppError::UnflushedAtShutdown { backlog }),
            (Ok(()), true) => {
                tracing::info!("stopped cleanly; every change is in the store");
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn serve(
        &self,
        config: &Config,
        store: &Arc<dyn store::Store>,
        telegram: &Telegram,
        updates: Option<GiftUpdates>,
        applier: &Arc<Applier>,
        intake: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<(), AppError> {
        if !reconcile(telegram, applier).await? {
            // The list moved under the first pass: one more, so departures are settled.
            reconcile(telegram, applier).await?;
        }
        applier.mirror.flush().await.ok();
        applier.evict_retired();
        self.health.set_ready(true, "watching the deposit account");
        let _ = self.notices.send(Notice::Ready {
            items: self.inventory.len(),
        });
        tracing::info!(items = self.inventory.len(), "ready");

        let (fatal_tx, mut fatal_rx) = mpsc::channel::<AppError>(4);
        let reconcile_now = Arc::new(Notify::new());

        if let Some(updates) = updates {
            tracker.spawn(update_loop(
                updates,
                Arc::clone(applier),
                Arc::clone(&reconcile_now),
                intake.child_token(),
            ));
        }
        tracker.spawn(poll_loop(
            telegram.clone(),
            Arc::clone(applier),
            config.telegram.poll_interval,
            intake.child_token(),
            fatal_tx.clone(),
        ));
        tracker.spawn(reconcile_loop(
            telegram.clone(),
            Arc::clone(applier),
            config.telegram.reconcile_interval,
            Arc::clone(&reconcile_now),
            intake.child_token(),
        ));
        tracker.spawn(clock_watch(
            telegram.clone(),
            Arc::clone(&self.health),
            intake.child_token(),
            fatal_tx,
        ));
        tracker.spawn(watchdog(intake.child_token()));
        let worker = crate::withdraw::worker::Worker {
            store: Arc::clone(store),
            telegram: telegram.clone(),
            inventory: Arc::clone(&self.inventory),
            config: config.withdraw.clone(),
            id: crate::withdraw::worker::Worker::id_for(telegram.self_id()),
            wake: Arc::clone(&self.withdrawals_wake),
            health: Arc::clone(&self.health),
        };
        tracker.spawn(worker.run(intake.child_token()));
        if let Some(bot) = &config.bot {
            tracker.spawn(self.run_bot(config, bot.clone(), store, telegram, intake.child_token()));
        }
        tracker.spawn(self_check(
            Arc::clone(&self.health),
            config.telegram.poll_interval,
            intake.child_token(),
        ));

        tokio::select! {
            () = intake.cancelled() => Ok(()),
            Some(e) = fatal_rx.recv() => Err(e),
        }
    }
}

impl Daemon {
    /// The companion bot: connects its own session (retrying while Telegram cannot be
    /// reached) and answers players until `cancel`. A bot that cannot start never stops
    /// detection: it is logged, with what to do.
    fn run_bot(
        &self,
        config: &Config,
        bot: crate::config::BotConfig,
        store: &Arc<dyn store::Store>,
        telegram: &Telegram,
        cancel: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static + use<> {
        let opts = crate::telegram::bot::BotOptions {
            session_file: bot.session_file.clone(),
            api_id: config.telegram.api_id,
            api_hash: config.telegram.api_hash.clone(),
            token: bot.token.clone(),
        };
        let parts = (
            Arc::clone(store),
            Arc::clone(&self.inventory),
            Arc::clone(&self.titles),
            Arc::clone(&self.health),
            config.withdraw.regular,
            bot.admins.clone(),
            vec![crate::bot::DepositAccount {
                id: telegram.self_id(),
                username: telegram.username().map(str::to_owned),
            }],
            Arc::clone(&self.withdrawals_wake),
            Arc::clone(&self.bot_stats),
            self.commits.subscribe(),
        );
        async move {
            let (store, inventory, titles, health, regular, admins, accounts, wake, stats, commits) =
                parts;
            let mut delay = Duration::from_secs(1);
            let conn = loop {
                match crate::telegram::bot::BotApi::connect(&opts, cancel.child_token()).await {
                    Ok(conn) => break conn,
                    Err(
                        e @ (crate::telegram::bot::BotError::BadToken { .. }
                        | crate::telegram::bot::BotError::Session { .. }),
                    ) => {
                        tracing::error!(error = %e, "the companion bot cannot start; deposits are still detected");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?delay, "the companion bot cannot connect yet");
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            () = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(60));
                    }
                }
            };
            let runner = conn.runner;
            let bot = Arc::new(crate::bot::Bot::new(crate::bot::BotParts {
                api: conn.api,
                store,
                inventory,
                titles,
                health,
                regular,
                admins,
                accounts,
                withdrawals_wake: wake,
                stats,
            }));
            crate::bot::BotTask {
                bot,
                events: conn.events,
                commits,
                poll: Duration::from_secs(2),
            }
            .run(cancel)
            .await;
            if tokio::time::timeout(Duration::from_secs(2), runner)
                .await
                .is_err()
            {
                tracing::debug!("bot connection task did not stop in time");
            }
        }
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
    /// Gift titles for the bot.
    titles: Arc<crate::bot::Titles>,
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
                    self.titles.record(&gift_type);
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

async fn clock_watch(
    telegram: Telegram,
    health: Arc<Health>,
    cancel: CancellationToken,
    fatal: mpsc::Sender<AppError>,
) {
    let count = tokio::select! {
        () = cancel.cancelled() => return,
        count = telegram::clock::storm() => count,
    };
    health.metrics.clock_storms.fetch_add(1, Ordering::Relaxed);
    let err = TelegramError::ClockAhead { count };
    tracing::error!(error = %err, "stopping the telegram connection");
    telegram.kill();
    let _ = fatal.send(err.into()).await;
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

async fn self_check(health: Arc<Health>, poll_interval: Duration, cancel: CancellationToken) {
    let m = &health.metrics;
    let mut failures = m.mirror_failures.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(SELF_CHECK_INTERVAL) => {}
        }
        let now_failures = m.mirror_failures.load(Ordering::Relaxed);
        let check = SelfCheck {
            poll_age: now_unix() - m.last_poll_unix.load(Ordering::Relaxed),
            poll_interval,
            backlog: m.mirror_backlog.load(Ordering::Relaxed),
            store_failing: now_failures > failures,
        };
        failures = now_failures;
        let (ready, status) = verdict(check);
        if !ready {
            tracing::warn!(status, "self-check: not ready");
        }
        health.set_ready(ready, &status);
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
