//! The real-time update path: [`buffer_updates`] moves updates from grammers' channel into
//! giftd's own buffer (`telegram.update_buffer`), counting every update received and dropped,
//! and [`GiftUpdates`] reads that buffer and yields what each update says about the account's
//! gifts ([`GiftUpdate`]), caching the senders of gifts in the session file in batches.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use grammers_client::client::UpdateStream;
use grammers_client::session::Session as _;
use grammers_client::session::storages::SqliteSession;
use grammers_client::session::types::{PeerId, PeerInfo};
use grammers_client::session::updates::UpdatesLike;
use grammers_client::{InvocationError, tl};

use super::{TelegramError, convert, log_decision};
use crate::detector::ObservedGift;
use crate::gift::UserId;
use crate::gift::classify::{Decision, FateKind, ItemRef};
use crate::health::Health;

/// Capacity of grammers' own update channel for a giftd buffer of `update_buffer`.
///
/// grammers drops what does not fit, and counts it only in a warning it logs at most once per
/// cooldown. [`buffer_updates`] empties the channel as fast as updates arrive, but grammers
/// pushes every update of one read of the socket in one go without yielding: a burst read at
/// once (2,000 gifts fit in a few reads) overflows a channel of 1,024, silently, and the lost
/// tail shows no gap to trigger getDifference (`cargo bench --bench update_path` sends such
/// bursts).
/// Four times giftd's buffer leaves room for any read, so giftd's buffer is the one that
/// decides, and counts, what is dropped.
pub(super) fn grammers_update_channel(update_buffer: usize) -> usize {
    update_buffer.saturating_mul(4).max(4096)
}

/// Moves updates from grammers' channel into a buffer of `capacity` that the update stream
/// reads, and counts every update received and every one dropped because the buffer was full.
///
/// A dropped update is not a lost gift: the next update's pts shows the gap and grammers asks
/// Telegram for the difference, and polling lists the gift anyway. Only batches of updates are
/// ever dropped; connection notices (`ConnectionClosed` and the like) always pass, since the
/// stream needs them to resynchronise.
pub(super) fn buffer_updates(
    mut from: tokio::sync::mpsc::Receiver<UpdatesLike>,
    capacity: usize,
    health: Arc<Health>,
) -> tokio::sync::mpsc::Receiver<UpdatesLike> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let metrics = &health.metrics;
        let mut buffer: std::collections::VecDeque<UpdatesLike> = std::collections::VecDeque::new();
        let mut logged_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                // Taking from grammers first keeps its channel empty under a flood.
                biased;
                next = from.recv() => {
                    let Some(update) = next else { break };
                    if !matches!(update, UpdatesLike::Updates(_)) {
                        buffer.push_back(update);
                        continue;
                    }
                    metrics.updates_received.fetch_add(1, Ordering::Relaxed);
                    if buffer.len() < capacity {
                        buffer.push_back(update);
                        continue;
                    }
                    let dropped = metrics.updates_dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if logged_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        logged_at = Some(tokio::time::Instant::now());
                        tracing::warn!(
                            capacity,
                            dropped_total = dropped,
                            "telegram update buffer full: updates dropped (getDifference and \
                             polling find their gifts); raise telegram.update_buffer if this \
                             repeats"
                        );
                    }
                }
                permit = tx.reserve(), if !buffer.is_empty() => {
                    let Ok(permit) = permit else { break };
                    // Checked non-empty by the branch's condition.
                    if let Some(update) = buffer.pop_front() {
                        permit.send(update);
                    }
                }
            }
        }
        // grammers stopped: hand over what is left, then close the stream's channel.
        while let Some(update) = buffer.pop_front() {
            if tx.send(update).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// How often the senders seen on the update path are written to the session file.
const PEER_CACHE_INTERVAL: Duration = Duration::from_secs(2);

/// What one update says about the account's gifts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiftUpdate {
    /// A gift for the detector: a deposit, a held item without owner, a refund. Boxed: one
    /// update at a time, and the sale is small.
    Gift(Box<ObservedGift>),
    /// The account sold this collectible through an accepted purchase offer.
    Sold { collectible_id: i64 },
}

/// The real-time gift stream.
pub struct GiftUpdates {
    pub(super) stream: UpdateStream,
    /// The deposit account, for [`convert::gift_message`].
    pub(super) self_id: UserId,
    /// Where decisions that are not deposits are counted.
    pub(super) health: Arc<Health>,
    /// The session file, where the senders of gifts are cached (their access hashes address
    /// them later) in batches instead of one commit per update.
    pub(super) session: Arc<SqliteSession>,
    /// Senders seen since the last write, by user id.
    pub(super) senders: HashMap<UserId, PeerInfo>,
    pub(super) cached_at: tokio::time::Instant,
}

impl std::fmt::Debug for GiftUpdates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GiftUpdates")
            .field("senders_pending", &self.senders.len())
            .finish_non_exhaustive()
    }
}

impl GiftUpdates {
    /// Waits for the next update and returns what it says about the account's gifts, if
    /// anything giftd acts on.
    pub async fn next(&mut self) -> Result<Option<GiftUpdate>, TelegramError> {
        let (update, _state, peers) = self.stream.next_raw().await.map_err(|e| {
            if matches!(e, InvocationError::Deserialize(_)) {
                self.health
                    .metrics
                    .unreadable
                    .fetch_add(1, Ordering::Relaxed);
            }
            TelegramError::from_invocation("updates", e)
        })?;
        let seen = match update {
            tl::enums::Update::NewMessage(u) => convert::gift_message(self.self_id, &u.message),
            _ => None,
        };
        let mut sale = None;
        let gift = seen.and_then(|seen| {
            log_decision("update", &seen.decision);
            self.health.metrics.count_decision(&seen.decision);
            if let Decision::Fate {
                item: ItemRef::Collectible(collectible_id),
                fate: FateKind::Sold,
            } = seen.decision
            {
                // The account's own outgoing `from_offer` message: Telegram's record of the
                // sale, which no player can send.
                sale = Some(GiftUpdate::Sold { collectible_id });
            }
            seen.gift
        });
        if let Some(from) = gift.as_ref().and_then(|g| g.from)
            && let Some(peer) = PeerId::user(from).and_then(|id| peers.get(id))
        {
            self.senders.insert(from, PeerInfo::from(peer.clone()));
        }
        if !self.senders.is_empty() && self.cached_at.elapsed() >= PEER_CACHE_INTERVAL {
            self.cache_senders().await;
        }
        Ok(gift.map(|g| GiftUpdate::Gift(Box::new(g))).or(sale))
    }

    /// Writes the senders seen since the last write to the session file, in one commit. A crash
    /// loses at most the last interval's: nothing that matters, since every gift's sender comes
    /// back with the saved list the reconciliation at start reads.
    async fn cache_senders(&mut self) {
        self.cached_at = tokio::time::Instant::now();
        let peers: Vec<PeerInfo> = self.senders.drain().map(|(_, p)| p).collect();
        let count = peers.len();
        if let Err(e) = self.session.cache_peers(peers).await {
            tracing::warn!(error = %e, count, "could not cache gift senders in the session file");
        }
    }

    /// Persists the update state and the senders not yet written to the session, so a restart
    /// catches up from here.
    pub async fn save_state(&mut self) -> Result<(), TelegramError> {
        self.cache_senders().await;
        self.stream
            .sync_update_state()
            .await
            .map_err(|e| TelegramError::Session {
                path: PathBuf::new(),
                detail: format!("cannot save the update state: {e}"),
            })
    }
}
