//! The mirror: carries inventory changes to the store in batches.
//!
//! Changes enter a bounded queue ([`MirrorHandle::send`] waits when it is full, which slows
//! detection down instead of growing memory), and one task writes them with group commit: when
//! no write is in flight a change goes to the store at once, and what arrives while a write is
//! in flight goes out together in the next one (up to `mirror.batch_size`), each batch as one
//! store call. An idle store sees a change within milliseconds; a busy one gets batches that
//! grow with its write time. A failed write is retried with backoff until it succeeds, with the
//! backlog in logs and metrics: nothing is dropped while the store is down. Telegram stays the
//! truth: whatever was still queued when the process died is found again by the reconciliation
//! at the next start.
//!
//! The queue closes when every [`MirrorHandle`] is dropped; the task then writes what is left and
//! returns. [`MirrorHandle::flush`] waits until everything sent so far is committed.
//!
//! Fencing: each batch carries, for every deposit account it touches, the epoch of that
//! account's lease this instance holds ([`Epochs`]). Changes of an account this instance does
//! not hold are not written; when the store refuses an epoch
//! ([`crate::store::StoreError::Fenced`]: another instance took the lease), the account's
//! changes are taken out of the batch and the rest is written at once, and that account is not
//! written again until its keeper publishes a new epoch. Such changes are counted
//! (`giftd_mirror_fenced_total`) and logged, never retried for ever: the holder's reconciliation
//! finds them in Telegram.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::{broadcast, mpsc, watch};

use crate::config::MirrorConfig;
use crate::gift::{GiftType, Item, ItemKey, LedgerEntry, Status, UserId, UserInfo};
use crate::health::{AccountLabel, Health};
use crate::lease::Epochs;
use crate::store::{Attribution, ChangeBatch, Epoch, StatusChange, Store, StoreError, SyncLog};

/// One change for the store.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new item (the store writes its deposit ledger entry).
    Deposit { item: Item, gift_type: GiftType },
    /// A status move and its ledger entry.
    Status {
        key: ItemKey,
        to: Status,
        entry: LedgerEntry,
    },
    /// Telegram named the sender of an item recorded without one; the ledger entry records it.
    Attributed {
        key: ItemKey,
        owner: UserId,
        entry: LedgerEntry,
    },
    /// What Telegram says of a user (username, name).
    User(UserInfo),
    /// A reconciliation pass to record.
    SyncLog(SyncLog),
}

/// The cloneable sending side.
#[derive(Debug, Clone)]
pub struct MirrorHandle {
    tx: mpsc::Sender<Queued>,
    shared: Arc<Shared>,
    committed: watch::Receiver<u64>,
}

#[derive(Debug)]
struct Shared {
    /// Sequence number of the last change handed to the queue.
    sent: AtomicU64,
    /// Held while a change takes its number and enters the queue, so numbers enter the queue
    /// in increasing order: a batch's last number then covers every change before it, which is
    /// what [`MirrorHandle::flush`] waits on.
    order: std::sync::Mutex<()>,
    health: Arc<Health>,
}

/// The mirror stopped (its task ended): the change was not queued.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the mirror has stopped; the change was not queued")]
pub struct MirrorClosed;

impl MirrorHandle {
    /// Queues a change, waiting while the queue is full.
    pub async fn send(&self, change: Change) -> Result<(), MirrorClosed> {
        // A reserved slot does not fix the order values enter the queue: that is the order of
        // `permit.send`. Two senders taking numbers 1 and 2 could enqueue 2 before 1, and a
        // batch ending with 1 would report 1 committed while a `flush` waits for 2 for ever.
        // Taking the number and enqueueing under one lock keeps both orders the same.
        let permit = self.tx.reserve().await.map_err(|_| MirrorClosed)?;
        // Poisoning cannot leave the `()` inconsistent: take the lock regardless.
        let _order = self.shared.order.lock().unwrap_or_else(|e| e.into_inner());
        let seq = self.shared.sent.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared
            .health
            .metrics
            .mirror_backlog
            .fetch_add(1, Ordering::Relaxed);
        permit.send((seq, tokio::time::Instant::now(), change));
        Ok(())
    }

    /// Waits until every change sent before this call is committed to the store.
    pub async fn flush(&self) -> Result<(), MirrorClosed> {
        let target = self.shared.sent.load(Ordering::SeqCst);
        let mut committed = self.committed.clone();
        committed
            .wait_for(|&c| c >= target)
            .await
            .map(|_| ())
            .map_err(|_| MirrorClosed)
    }

    /// Changes queued and not yet committed.
    pub fn backlog(&self) -> u64 {
        self.shared.sent.load(Ordering::SeqCst) - *self.committed.borrow()
    }
}

/// What one committed batch credited, for observers (benchmarks, the demo).
#[derive(Debug, Clone)]
pub struct Committed {
    /// The new items the batch wrote.
    pub deposits: Arc<Vec<ItemKey>>,
    /// When the store acknowledged the batch.
    pub at: std::time::Instant,
}

/// A queued change: its sequence number and when it was queued.
type Queued = (u64, tokio::time::Instant, Change);

/// The receiving side, run by [`Mirror::run`].
#[derive(Debug)]
pub struct Mirror {
    rx: mpsc::Receiver<Queued>,
    committed: watch::Sender<u64>,
    commits: broadcast::Sender<Committed>,
    store: Arc<dyn Store>,
    config: MirrorConfig,
    health: Arc<Health>,
    /// The epoch each account's changes carry ([`Epochs::unfenced`] unless set).
    epochs: Epochs,
    /// Accounts whose fence the store refused, with that fence: their changes are not written
    /// while [`Epochs`] still gives the same one.
    refused: HashMap<UserId, Option<Epoch>>,
}

/// Creates the queue and its task's state.
pub fn channel(
    store: Arc<dyn Store>,
    config: MirrorConfig,
    health: Arc<Health>,
    commits: broadcast::Sender<Committed>,
) -> (MirrorHandle, Mirror) {
    let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
    let (committed_tx, committed_rx) = watch::channel(0);
    let handle = MirrorHandle {
        tx,
        shared: Arc::new(Shared {
            sent: AtomicU64::new(0),
            order: std::sync::Mutex::new(()),
            health: Arc::clone(&health),
        }),
        committed: committed_rx,
    };
    let mirror = Mirror {
        rx,
        committed: committed_tx,
        commits,
        store,
        config,
        health,
        epochs: Epochs::unfenced(),
        refused: HashMap::new(),
    };
    (handle, mirror)
}

impl Mirror {
    /// Fences every batch with the epochs the lease keepers publish (the default is unfenced:
    /// one instance, no leases).
    pub fn with_epochs(mut self, epochs: Epochs) -> Self {
        self.epochs = epochs;
        self
    }
}

impl Mirror {
    /// Writes batches until every handle is dropped and the queue is empty.
    ///
    /// Group commit: the first change waits for nothing. When no write is in flight, what is
    /// queued goes to the store at once; while a write is in flight, what arrives waits in the
    /// queue and goes out with the next write, up to `batch_size` at a time. Batches grow with
    /// the store's write time, not with a timer.
    pub async fn run(mut self) {
        let batch_size = self.config.batch_size.max(1);
        let mut batch: Vec<Queued> = Vec::with_capacity(batch_size);
        loop {
            let Some(first) = self.rx.recv().await else {
                return; // closed and drained
            };
            batch.push(first);
            while batch.len() < batch_size {
                match self.rx.try_recv() {
                    Ok(c) => batch.push(c),
                    // Empty (nothing more is waiting) or closed (the next recv ends the loop).
                    Err(_) => break,
                }
            }
            self.write(&batch).await;
            batch.clear();
        }
    }

    /// The fence for `account`'s changes now: `None` when they must not be written.
    fn fence(&self, account: UserId) -> Option<Option<Epoch>> {
        let fence = self.epochs.fence(account).write_epoch()?;
        match self.refused.get(&account) {
            Some(refused) if *refused == fence => None,
            _ => Some(fence),
        }
    }

    /// Splits a batch into what may be written now (with the epochs it carries) and the
    /// number of changes left out, by account.
    fn fenced<'a>(
        &self,
        batch: &'a [Queued],
    ) -> (Vec<&'a Queued>, ChangeBatch, HashMap<UserId, u64>) {
        let mut kept = Vec::with_capacity(batch.len());
        let mut epochs = std::collections::BTreeMap::new();
        let mut left_out: HashMap<UserId, u64> = HashMap::new();
        for queued in batch {
            if let Some(account) = account_of(&queued.2) {
                match self.fence(account) {
                    None => {
                        *left_out.entry(account).or_default() += 1;
                        continue;
                    }
                    Some(Some(epoch)) => {
                        epochs.insert(account, epoch);
                    }
                    Some(None) => {}
                }
            }
            kept.push(queued);
        }
        let mut store_batch = to_store_batch(kept.iter().map(|(_, _, c)| c));
        store_batch.epochs = epochs;
        (kept, store_batch, left_out)
    }

    /// Writes one batch, retrying until the store takes it; changes of accounts this instance
    /// does not hold are left out.
    async fn write(&mut self, batch: &[Queued]) {
        let last_seq = batch.last().map_or(0, |(s, _, _)| *s);
        let mut backoff = new_backoff();
        let mut failures = 0u32;
        loop {
            let (kept, store_batch, left_out) = self.fenced(batch);
            match self.store.apply_batch(&store_batch).await {
                Ok(outcome) => {
                    let m = &self.health.metrics;
                    let dropped: u64 = left_out.values().sum();
                    if dropped > 0 {
                        m.mirror_fenced.fetch_add(dropped, Ordering::Relaxed);
                        for (account, changes) in &left_out {
                            tracing::warn!(
                                account,
                                changes,
                                "changes not written: this instance does not hold the lease of \
                                 their deposit account (the holder's reconciliation finds them)"
                            );
                        }
                    }
                    m.mirror_batches.fetch_add(1, Ordering::Relaxed);
                    m.mirror_rows
                        .fetch_add(kept.len() as u64, Ordering::Relaxed);
                    m.mirror_backlog
                        .fetch_sub(batch.len() as u64, Ordering::Relaxed);
                    if failures > 0 {
                        tracing::info!(
                            rows = kept.len(),
                            failures,
                            "store reachable again; backlog batch written"
                        );
                    }
                    if !outcome.refused.is_empty() {
                        tracing::warn!(
                            refused = ?outcome.refused,
                            "the store refused status changes that are illegal from the state it holds"
                        );
                    }
                    tracing::debug!(rows = kept.len(), ?outcome, "batch committed");
                    self.observe_commit(&kept);
                    self.committed.send_replace(last_seq);
                    if self.commits.receiver_count() > 0 {
                        let deposits = kept
                            .iter()
                            .filter_map(|(_, _, c)| match c {
                                Change::Deposit { item, .. } => Some(item.key),
                                _ => None,
                            })
                            .collect();
                        let _ = self.commits.send(Committed {
                            deposits: Arc::new(deposits),
                            at: std::time::Instant::now(),
                        });
                    }
                    return;
                }
                Err(e) => {
                    if let StoreError::Fenced { lease, epoch, .. } = &e
                        && let Some(account) = crate::store::lease::account_of(lease)
                        && self.refused.get(&account) != Some(epoch)
                    {
                        // Not retried: the account's changes leave the batch at once.
                        tracing::error!(account, error = %e, "store refused the account's changes");
                        self.refused.insert(account, *epoch);
                        continue;
                    }
                    failures += 1;
                    self.health
                        .metrics
                        .mirror_failures
                        .fetch_add(1, Ordering::Relaxed);
                    let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                    let backlog = self.health.metrics.mirror_backlog.load(Ordering::Relaxed);
                    if e.is_retryable() {
                        tracing::warn!(error = %e, backlog, retry_in_ms = delay.as_millis() as u64, "store write failed; the batch is kept and retried");
                    } else {
                        tracing::error!(error = %e, backlog, retry_in_ms = delay.as_millis() as u64, "store write refused; fix the cause, the batch is kept and retried");
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// The deposit account a change belongs to (`None`: users, which belong to none).
fn account_of(change: &Change) -> Option<UserId> {
    match change {
        Change::Deposit { item, .. } => Some(item.key.account_id),
        Change::Status { key, .. } | Change::Attributed { key, .. } => Some(key.account_id),
        Change::SyncLog(log) => Some(log.account_id),
        Change::User(_) => None,
    }
}

impl Mirror {
    /// Records, for each item change of a committed batch, how long it waited since queued.
    fn observe_commit(&self, batch: &[&Queued]) {
        let now = tokio::time::Instant::now();
        let family = &self.health.latency.mirror_commit;
        // Batches hold one deposit account's changes (one per daemon today): look its
        // histogram up once per account, not once per change.
        let mut current: Option<(UserId, _)> = None;
        for (_, queued, change) in batch.iter().copied() {
            let account = match change {
                Change::Deposit { item, .. } => item.key.account_id,
                Change::Status { key, .. } | Change::Attributed { key, .. } => key.account_id,
                Change::User(_) | Change::SyncLog(_) => continue,
            };
            if current.as_ref().is_none_or(|(a, _)| *a != account) {
                let histogram = family
                    .get_or_create(&AccountLabel {
                        account: account.to_string(),
                    })
                    .clone();
                current = Some((account, histogram));
            }
            if let Some((_, histogram)) = &current {
                histogram.observe(now.duration_since(*queued).as_secs_f64());
            }
        }
    }
}

fn new_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .without_max_times()
        .with_jitter()
        .build()
}

/// Folds queued changes into the store's batch shape.
pub fn to_store_batch<'a>(changes: impl Iterator<Item = &'a Change>) -> ChangeBatch {
    let mut b = ChangeBatch::default();
    for c in changes {
        match c {
            Change::Deposit { item, gift_type } => {
                b.items.push(item.clone());
                if !b.gifts.iter().any(|g| g.gift_id == gift_type.gift_id) {
                    b.gifts.push(gift_type.clone());
                }
            }
            Change::Status { key, to, entry } => b.changes.push(StatusChange {
                key: *key,
                to: *to,
                entry: entry.clone(),
            }),
            Change::Attributed { key, owner, entry } => b.attributions.push(Attribution {
                key: *key,
                owner: *owner,
                entry: entry.clone(),
            }),
            Change::SyncLog(log) => b.sync_logs.push(log.clone()),
            Change::User(u) => {
                if let Some(old) = b.users.iter_mut().find(|x| x.id == u.id) {
                    *old = u.clone();
                } else {
                    b.users.push(u.clone());
                }
            }
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::gift::{Owner, UniqueInfo};
    use crate::store::account_lease;
    use crate::store::sqlite::SqliteStore;

    fn deposit(account: UserId, msg_id: i32) -> Change {
        Change::Deposit {
            item: Item {
                key: ItemKey::new(account, msg_id),
                owner: Owner::User(7),
                gift_id: 11,
                stars: 350,
                unique: Some(Box::new(UniqueInfo {
                    collectible_id: i64::from(msg_id),
                    slug: format!("Pepe-{msg_id}"),
                    number: msg_id,
                    value: Default::default(),
                })),
                status: Status::Held,
                received_at: 1_760_000_000,
                convert_stars: None,
                transfer_stars: None,
                can_transfer_at: None,
                upgraded_from: None,
            },
            gift_type: GiftType {
                gift_id: 11,
                title: None,
                stars: 350,
                unique: true,
            },
        }
    }

    async fn hand_over(store: &Arc<dyn Store>, account: UserId, from: &str, to: &str) -> Epoch {
        let name = account_lease(account);
        if let Some(l) = store.lease(&name).await.unwrap() {
            assert!(l.holder == from);
            store.release_lease(&name, from, l.epoch).await.unwrap();
        }
        store
            .take_lease(&name, to, Duration::from_secs(60))
            .await
            .unwrap()
            .held()
            .expect("free after the release")
            .epoch
    }

    async fn held_msgs(store: &Arc<dyn Store>, account: UserId) -> Vec<i32> {
        let items = store.load_items(account).await.unwrap();
        items.into_iter().map(|i| i.key.msg_id).collect()
    }

    /// A stale epoch costs one refused write: the account's changes leave the batch, the rest
    /// is written, nothing is retried for ever, and the account is written again once its
    /// keeper publishes a new epoch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_account_is_left_out_and_the_rest_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let (x, y) = (1001, 1002);
        let epochs = Epochs::leased();
        epochs.set(x, Some(hand_over(&store, x, "", "me").await));
        epochs.set(y, Some(hand_over(&store, y, "", "me").await));
        let health = Arc::new(Health::new());
        let (commits, _) = broadcast::channel(4);
        let (handle, mirror) = channel(
            Arc::clone(&store),
            MirrorConfig::default(),
            Arc::clone(&health),
            commits,
        );
        let task = tokio::spawn(mirror.with_epochs(epochs.clone()).run());

        // Another instance takes x over; this one has not noticed yet.
        hand_over(&store, x, "me", "other").await;
        handle.send(deposit(x, 1)).await.unwrap();
        handle.send(deposit(y, 1)).await.unwrap();
        handle.flush().await.unwrap();
        assert_eq!(held_msgs(&store, y).await, vec![1]);
        assert!(held_msgs(&store, x).await.is_empty());
        let m = &health.metrics;
        assert_eq!(m.mirror_fenced.load(Ordering::Relaxed), 1);
        assert_eq!(m.mirror_failures.load(Ordering::Relaxed), 0, "not retried");
        assert_eq!(handle.backlog(), 0);

        // Still the refused epoch: left out without asking the store again.
        handle.send(deposit(x, 2)).await.unwrap();
        handle.flush().await.unwrap();
        assert_eq!(m.mirror_fenced.load(Ordering::Relaxed), 2);
        // The keeper noticed: not held, left out.
        epochs.set(x, None);
        handle.send(deposit(x, 3)).await.unwrap();
        handle.flush().await.unwrap();
        assert_eq!(m.mirror_fenced.load(Ordering::Relaxed), 3);
        assert!(held_msgs(&store, x).await.is_empty());

        // This instance holds x again, in a new term: written.
        epochs.set(x, Some(hand_over(&store, x, "other", "me").await));
        handle.send(deposit(x, 4)).await.unwrap();
        handle.flush().await.unwrap();
        assert_eq!(held_msgs(&store, x).await, vec![4]);
        assert_eq!(m.mirror_fenced.load(Ordering::Relaxed), 3);
        drop(handle);
        task.await.unwrap();
    }

    /// Without leases nothing changes: every change is written unfenced.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_leases_every_change_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let health = Arc::new(Health::new());
        let (commits, _) = broadcast::channel(4);
        let (handle, mirror) = channel(
            Arc::clone(&store),
            MirrorConfig::default(),
            Arc::clone(&health),
            commits,
        );
        let task = tokio::spawn(mirror.run());
        handle.send(deposit(5, 1)).await.unwrap();
        handle.send(deposit(6, 1)).await.unwrap();
        handle.flush().await.unwrap();
        assert_eq!(held_msgs(&store, 5).await, vec![1]);
        assert_eq!(held_msgs(&store, 6).await, vec![1]);
        assert_eq!(health.metrics.mirror_fenced.load(Ordering::Relaxed), 0);
        drop(handle);
        task.await.unwrap();
    }

    /// Two accounts' reconciliations may queue their sync logs at the same instant, their
    /// numbers entering the queue out of order; neither `flush` may then wait for ever (the
    /// daemon would never report the accounts served). Many senders at once, each then
    /// flushing: every flush returns and every change is in the store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_senders_then_flush_never_wait_for_ever() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let health = Arc::new(Health::new());
        let (commits, _) = broadcast::channel(4);
        let (handle, mirror) = channel(
            Arc::clone(&store),
            MirrorConfig::default(),
            Arc::clone(&health),
            commits,
        );
        let task = tokio::spawn(mirror.run());
        let senders: Vec<_> = (0..8)
            .map(|account| {
                let handle = handle.clone();
                tokio::spawn(async move {
                    for msg in 1..=50 {
                        handle.send(deposit(100 + account, msg)).await.unwrap();
                        tokio::task::yield_now().await;
                    }
                    handle.flush().await.unwrap();
                })
            })
            .collect();
        for s in senders {
            tokio::time::timeout(std::time::Duration::from_secs(60), s)
                .await
                .expect("a flush after concurrent sends returns")
                .unwrap();
        }
        for account in 0..8 {
            assert_eq!(held_msgs(&store, 100 + account).await.len(), 50);
        }
        drop(handle);
        task.await.unwrap();
    }
}
