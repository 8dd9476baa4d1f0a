//! The daemon: wires Telegram, the detector, the inventory, the mirror, leases and health
//! together and runs them until shutdown (`giftd run`).
//!
//! Start: open the store and check its schema, read the gift catalogue the store kept (so gifts
//! are named before Telegram lists them again), start the shared mirror and the store's wake-up
//! listener (`store::wake`), then one task per deposit account (`config.accounts`: the
//! `[account.NAME]` sections, or the one account `deposit`). With the Supabase store an
//! account's task keeps the account's lease and serves the account only while holding it (the
//! other instances stand by). Serving: connect to Telegram with the account's session, load what
//! the store holds for it into the shared inventory, reconcile with everything Telegram lists
//! (gifts that arrived meanwhile are credited here), flush; then three intake tasks feed the
//! account's detector (the update stream for speed, a poll of the newest saved gifts every
//! `telegram.poll_interval` as the safety net, a full reconciliation every
//! `telegram.reconcile_interval`, which also finds what left) and its withdrawal worker runs.
//! The daemon reports ready once every account has started, stood by or failed.
//!
//! An account that fails (session revoked, Telegram unreachable, polls failing) is `down` in
//! `/readyz` and `giftd_account{name,state}` and is retried with backoff (2 s doubling to 60 s);
//! the others go on. The daemon stops only for what no account can work around (the host clock
//! far ahead of Telegram's, noticed by `telegram::clock`, stops it with a message saying to fix
//! the clock) or when every account is down with a session error. A self-check every 30 s turns
//! `/readyz` to 503, with the reason, while polls of Telegram keep failing or the store keeps
//! refusing writes. A FLOOD_WAIT up to `telegram.flood_wait_max` is slept through exactly; a
//! longer one closes that method until it expires, so no path calls it early.
//!
//! Every credit goes through `Applier::apply` (`intake.rs`), which inserts into the inventory
//! first: the insert is idempotent per item key, so a gift seen by two paths at once is credited
//! once. Two rules keep polling complete although the saved list is paged by position and
//! changes while it is read:
//! - A poll reads newest-first pages until it meets a gift that an earlier *consistent* listing
//!   (same `count` on every page) confirmed, not merely one an update delivered: updates can
//!   miss a gift older than the ones they deliver (a push before the stream's first
//!   `getState`, a reconnect), and stopping at update-delivered gifts would never find it.
//! - Departures (converted, refunded, upgraded, sold, burned, gone) are decided only from a
//!   consistent full listing; an inconsistent one credits what is new and is retried half a
//!   second later. Their reason comes from the gift's service message (`messages.getMessages`);
//!   for a collectible whose message tells nothing, from the collectible as it is now
//!   (`payments.getUniqueStarGift`: `burned`, or a new owner whose chat with the account, read
//!   with `messages.getHistory`, holds the account's own `from_offer` message for it: sold) and
//!   from a crafted collectible in the list that reuses its id (burned). Nothing else tells:
//!   gone. The update path ends a held collectible as sold at once when it sees the account's
//!   own outgoing `from_offer` message for it.
//!
//! Shutdown is one root [`CancellationToken`]: intake stops first (each account's tasks, its
//! update state saved, its session closed), the mirror writes what is queued within
//! `SHUTDOWN_DEADLINE` (shorter than the unit's `TimeoutStopSec`), and only then are the leases
//! released, so another instance takes over at once.
//!
//! **Invariant:** one account's failure never stops another's intake or worker: each account
//! has its own connection, tasks and cancellation token, and only the inventory, the mirror, the
//! store and health are shared.
//!
//! Files: `mod.rs` (the daemon, its supervision and shutdown), `account.rs` (one account's life
//! and lease), `intake.rs` (the intake paths and `Applier`), `bot.rs` (the companion bot's life:
//! it runs while `Daemon::bot_active()` is true, connects with backoff, stops when the `bot`
//! lease goes elsewhere; a bad token or session is logged and never stops detection). Each
//! account's task records its Telegram identity in the shared `bot::DepositAccounts` when it
//! signs in, for the bot's "send a gift to @..." texts.

mod account;
mod bot;
mod intake;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, Notify, broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AccountConfig, Config};

use self::account::*;
use crate::bot::DepositAccounts;
use crate::detector::{Detector, GiftEvent, ObservedGift};
use crate::gift::{Item, ItemKey, Owner, Status, UserId, UserInfo};
use crate::health::{self, AccountState, DetectionLabels, Health};
use crate::inventory::Inventory;
use crate::lease::{Epochs, Keeper, LeaseHandle, LeaseState};
use crate::mirror::{self, Change, MirrorHandle};
use crate::store::{self, StoreError, SyncLog};
use crate::telegram::{self, ConnectOptions, GiftUpdate, GiftUpdates, Telegram, TelegramError};

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
    #[error(transparent)]
    Identity(#[from] crate::lease::IdentityError),
    #[error(transparent)]
    Twin(#[from] crate::lease::TwinError),
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
    /// Gift titles as Telegram named them, for the bot.
    titles: Arc<crate::bot::Titles>,
    /// The companion bot's counters (zero when no bot runs).
    bot_stats: Arc<crate::bot::BotStats>,
    /// The deposit accounts this instance knows the Telegram identity of, for the bot's texts.
    deposit_accounts: Arc<DepositAccounts>,
    /// True once every account has loaded its items and gift titles (or stood by, or failed):
    /// the bot connects and answers only then, so no answer reads a half-loaded inventory.
    loaded: watch::Sender<bool>,
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
            titles: Arc::new(crate::bot::Titles::new()),
            bot_stats: Arc::new(crate::bot::BotStats::default()),
            deposit_accounts: Arc::default(),
            loaded: watch::channel(false).0,
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

    /// Names every gift kind the store has seen, before any account connects: a restarted
    /// daemon shows "Bear", not a placeholder, whatever Telegram answers. A store that cannot
    /// say only delays the names until Telegram lists the gifts again.
    async fn load_titles(&self, store: &dyn store::Store) {
        match store.gift_types().await {
            Ok(kinds) => {
                for kind in &kinds {
                    self.titles.record(kind);
                }
                tracing::info!(
                    gift_kinds = kinds.len(),
                    "gift catalogue read from the store"
                );
            }
            Err(e) => tracing::warn!(
                error = %e,
                "cannot read the gift catalogue from the store: gifts are named once telegram \
                 lists them again"
            ),
        }
    }

    /// Runs until `shutdown` is cancelled (Ok) or something fatal happens (Err): the host
    /// clock far ahead of Telegram's, or no deposit account left that a restart could serve
    /// (every one down with a session error such as a revoked or missing session).
    pub async fn run(&self, config: &Config, shutdown: CancellationToken) -> Result<(), AppError> {
        let store = store::open(&config.store).await?;
        store.check_schema().await?;
        tracing::info!(store = store.backend(), "store ready");
        self.load_titles(store.as_ref()).await;

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
        // With leases, this instance's identity is stable across restarts, so a restart takes
        // over its own leases at once; each process still holds them under its own name.
        let identity = match leases {
            Some(_) => Some(crate::lease::identity(
                config.instance.as_deref(),
                &config.state_dir,
            )?),
            None => None,
        };
        let holder = identity
            .as_deref()
            .map_or_else(crate::lease::instance_id, crate::lease::holder_for);
        let keepers: Arc<AsyncMutex<Vec<LeaseHandle>>> = Arc::default();
        if let Some(times) = leases {
            tracing::info!(
                instance = identity.as_deref().unwrap_or_default(),
                holder,
                ttl_ms = times.ttl.as_millis() as u64,
                renew_ms = times.renew_every.as_millis() as u64,
                "leases on: each deposit account is served by the instance holding its lease"
            );
        }
        self.start_bot_lease(
            config,
            &store,
            leases,
            (identity.as_deref(), &holder),
            &keepers,
            &intake,
        )
        .await?;

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
            titles: Arc::clone(&self.titles),
            deposit_accounts: Arc::clone(&self.deposit_accounts),
            events: events_tx,
            leases,
            epochs,
            identity,
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
        // Requests made by other processes wake the workers at once (the poll stays).
        tracker.spawn(store::wake::listen(
            config.store.clone(),
            Arc::clone(&self.withdrawals_wake),
            intake.child_token(),
        ));
        tracker.spawn(clock_watch(Arc::clone(&shared), intake.child_token()));
        tracker.spawn(watchdog(intake.child_token()));
        tracker.spawn(self_check(Arc::clone(&shared), intake.child_token()));
        if let Some(bot) = &config.bot {
            tracker.spawn(self.run_bot(
                config,
                bot.clone(),
                &store,
                shared.epochs.clone(),
                intake.child_token(),
            ));
        }

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
        self.bot_active.send_replace(false);
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
                self.loaded.send_replace(true);
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
    /// [`Daemon::bot_active`] following it; without leases the bot may always run. A live
    /// process of the same instance identity holding the lease refuses this start.
    async fn start_bot_lease(
        &self,
        config: &Config,
        store: &Arc<dyn store::Store>,
        leases: Option<crate::term::LeaseTimes>,
        (identity, holder): (Option<&str>, &str),
        keepers: &Arc<AsyncMutex<Vec<LeaseHandle>>>,
        intake: &CancellationToken,
    ) -> Result<(), AppError> {
        let Some(times) = leases else {
            self.bot_active.send_replace(config.bot.is_some());
            return Ok(());
        };
        if config.bot.is_none() {
            return Ok(());
        }
        if let Some(identity) = identity {
            crate::lease::take_over_predecessor(
                store.as_ref(),
                crate::store::BOT_LEASE,
                identity,
                holder,
                times,
            )
            .await?;
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
        let health = Arc::clone(&self.health);
        health.set_bot_lease(false);
        let cancel = intake.clone();
        tokio::spawn(async move {
            loop {
                let held = watch.borrow_and_update().epoch().is_some();
                if *active.borrow() != held {
                    tracing::info!(held, "the bot lease");
                    active.send_replace(held);
                }
                health.set_bot_lease(held);
                tokio::select! {
                    () = cancel.cancelled() => return,
                    changed = watch.changed() => if changed.is_err() { return },
                }
            }
        });
        Ok(())
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
