//! The intake paths of one account: the update stream, polls of the newest saved gifts and full
//! reconciliations, all feeding one detector through [`Applier`], which credits the inventory
//! first (idempotent per item key) and then queues the change for the mirror. No store or lease
//! logic here.

use super::*;
use crate::detector::Fate;
use crate::gift::MsgId;

/// Applies detector events: inventory first (idempotent), then the mirror and observers.
#[derive(Debug)]
pub(super) struct Applier {
    pub(super) detector: Detector,
    pub(super) inventory: Arc<Inventory>,
    pub(super) mirror: MirrorHandle,
    pub(super) health: Arc<Health>,
    pub(super) notices: broadcast::Sender<Notice>,
    /// Items that reached a terminal status, evicted from the live view once written.
    pub(super) retired: std::sync::Mutex<Vec<ItemKey>>,
    /// Gift titles for the bot.
    pub(super) titles: Arc<crate::bot::Titles>,
    /// Unix seconds of this account's last successful poll, for its self-check.
    pub(super) last_poll_unix: std::sync::atomic::AtomicI64,
}

impl Applier {
    /// Returns how many items were credited and how many left.
    pub(super) async fn apply(
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
                    if entry.kind == crate::gift::LedgerKind::RefundedAfterResend {
                        self.count_refund_after_resend(key, entry.stars);
                    } else {
                        tracing::info!(%key, %to, "gift left the deposit account");
                    }
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
    pub(super) fn observe_detection(&self, item: &Item, path: Path) {
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
    pub(super) fn confirm(&self, gifts: &[ObservedGift]) {
        let account = self.detector.account_id();
        self.inventory
            .confirm(gifts.iter().map(|g| ItemKey::new(account, g.msg_id)));
    }

    /// Drops items that reached a terminal status from the live view. Call after a flush.
    /// A regular gift the house kept after buying one for its player was refunded: the house
    /// paid twice for one deposit. Counted (`giftd_refunds_after_resend_total`, alerted on) and
    /// logged for the operator; the ledger entry goes to the store with the change.
    fn count_refund_after_resend(&self, key: crate::gift::ItemKey, stars: i64) {
        self.health
            .metrics
            .refunds_after_resend
            .fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            %key,
            stars,
            "a regular gift kept after a resend was refunded by Telegram: the resend was paid \
             for a gift the house no longer has"
        );
    }

    pub(super) fn evict_retired(&self) {
        let keys = std::mem::take(&mut *self.retired.lock().unwrap_or_else(|e| e.into_inner()));
        for key in keys {
            let _ = self.inventory.evict(key);
        }
    }
}

pub(super) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One full reconciliation: every page, against everything held.
///
/// Returns whether the listing was consistent. An inconsistent one (the list changed while it
/// was read) still credits what is new, but decides nothing about departures and confirms
/// nothing: the caller tries again soon.
pub(super) async fn reconcile(telegram: &Telegram, applier: &Applier) -> Result<bool, AppError> {
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
    let mut fates = if missing.is_empty() {
        Default::default()
    } else {
        telegram.fates(&missing).await?
    };
    // Collectibles whose delivering message tells nothing: ask the collectible itself (burned,
    // or sold: the account's own sale message in the new owner's chat).
    let unexplained: Vec<(MsgId, i64, String)> = missing
        .iter()
        .filter(|m| matches!(fates.get(m), None | Some(Fate::Gone)))
        .filter_map(|&m| {
            let item = applier
                .inventory
                .get(ItemKey::new(applier.detector.account_id(), m))?;
            let u = item.unique?;
            Some((m, u.collectible_id, u.slug))
        })
        .collect();
    if !unexplained.is_empty() {
        fates.extend(telegram.collectible_fates(&unexplained).await?);
    }
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

pub(super) async fn update_loop(
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
            Ok(Some(GiftUpdate::Gift(gift))) => {
                failures = 0;
                on_update_gift(&applier, &reconcile_now, &gift).await;
            }
            Ok(Some(GiftUpdate::Sold { collectible_id })) => {
                failures = 0;
                let events = applier.detector.observe_sale(
                    &*applier.inventory,
                    applier.inventory.held_keys(),
                    collectible_id,
                );
                applier.apply(events, Path::Update, &[]).await;
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

pub(super) async fn on_update_gift(applier: &Applier, reconcile_now: &Notify, gift: &ObservedGift) {
    let events = applier.detector.observe(&*applier.inventory, gift);
    let upgrade = gift.unique.is_some();
    applier.apply(events, Path::Update, &[]).await;
    if upgrade {
        // A collectible may be an upgrade of a regular gift held here; the reconciliation
        // reads the old gift's fate and ends it.
        reconcile_now.notify_one();
    }
}

pub(super) async fn poll_loop(
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
pub(super) async fn poll_once(telegram: &Telegram, applier: &Applier) -> Result<(), TelegramError> {
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

pub(super) async fn reconcile_loop(
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
pub(super) fn telegram_failed(health: &Health, e: &TelegramError) {
    health
        .metrics
        .telegram_errors
        .fetch_add(1, Ordering::Relaxed);
    flood_closed(health, e);
}

pub(super) fn flood_closed(health: &Health, e: &TelegramError) {
    if let TelegramError::FloodWait {
        method, seconds, ..
    } = e
    {
        health.flood_closed(method, *seconds);
    }
}
