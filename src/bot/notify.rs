//! Sends the store's notifications outbox to players: claim a few rows, send each at Telegram's
//! pace, report what became of them. Woken when the mirror commits a batch (a deposit was just
//! written, with its outbox row, in that transaction) and polled besides (withdrawal steps are
//! written by the worker and by other processes).
//!
//! At most once: a claimed row is never handed out again unless giftd reports it definitely not
//! sent (`Released`), so a restart in the middle sends nothing twice (see `store::notify`).
//! Runs in its own task: a slow Telegram or a FLOOD_WAIT delays notifications, never detection.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::Bot;
use super::handler;
use super::view::{self, View};
use crate::gift::{Item, Owner, Status};
use crate::mirror::Committed;
use crate::store::{Notification, NotificationKind, NotificationOutcome};
use crate::telegram::bot::BotError;

/// Rows claimed at once: about one second of Telegram's overall pace, so a crash strands few.
const CLAIM: usize = 30;
/// How long a claim is held before the store counts it as unknown (never sent again).
const LEASE: Duration = Duration::from_secs(300);

/// Runs until `cancel`.
pub async fn run(
    bot: Arc<Bot>,
    mut commits: broadcast::Receiver<Committed>,
    poll: Duration,
    cancel: CancellationToken,
) {
    loop {
        drain(&bot, &cancel).await;
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = commits.recv() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}

/// Claims and sends until the outbox is empty (or giftd stops).
async fn drain(bot: &Arc<Bot>, cancel: &CancellationToken) {
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let batch = match bot.store.claim_notifications(CLAIM, LEASE).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "notifications not claimed; trying again later");
                return;
            }
        };
        if batch.is_empty() {
            return;
        }
        // One message per player per claim: a burst of deposits reads as one list, and a
        // chat's one-message-a-second pace is not spent on each line.
        let mut by_user: Vec<(crate::gift::UserId, Vec<Notification>)> = Vec::new();
        for n in batch {
            match by_user.iter_mut().find(|(u, _)| *u == n.user_id) {
                Some((_, list)) => list.push(n),
                None => by_user.push((n.user_id, vec![n])),
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (user, list) in by_user {
            let bot = Arc::clone(bot);
            let cancel = cancel.clone();
            tasks.spawn(async move {
                let mut results = Vec::new();
                for chunk in chunks(&bot, &list) {
                    let ids: Vec<i64> = chunk.0;
                    if cancel.is_cancelled() {
                        results.push((ids, NotificationOutcome::Released));
                        continue;
                    }
                    let outcome = tokio::select! {
                        // Not sent yet: back to pending for the next start.
                        () = cancel.cancelled() => NotificationOutcome::Released,
                        o = deliver(&bot, user, &chunk.1, ids.len()) => o,
                    };
                    results.push((ids, outcome));
                }
                results
            });
        }
        let mut sent = Vec::new();
        let mut released = Vec::new();
        let mut undeliverable = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let Ok(results) = joined else { continue };
            for (ids, outcome) in results {
                match outcome {
                    NotificationOutcome::Sent => sent.extend(ids),
                    NotificationOutcome::Released => released.extend(ids),
                    NotificationOutcome::Undeliverable { reason } => {
                        undeliverable.extend(ids.into_iter().map(|id| (id, reason.clone())));
                    }
                }
            }
        }
        finish(bot, &sent, NotificationOutcome::Sent).await;
        finish(bot, &released, NotificationOutcome::Released).await;
        for (id, reason) in undeliverable {
            finish(bot, &[id], NotificationOutcome::Undeliverable { reason }).await;
        }
        if cancel.is_cancelled() {
            return;
        }
    }
}

async fn finish(bot: &Bot, ids: &[i64], outcome: NotificationOutcome) {
    if ids.is_empty() {
        return;
    }
    // A lost report leaves the rows claimed: they become unknown, never sent twice.
    if let Err(e) = bot.store.finish_notifications(ids, &outcome).await {
        tracing::warn!(error = %e, count = ids.len(), ?outcome, "notification outcome not recorded");
    }
}

/// Telegram's limit on a message's text is 4,096 characters; lines are grouped below it.
const MAX_TEXT: usize = 4000;

/// The player's notifications as messages: (the rows each carries, its text).
fn chunks(bot: &Bot, list: &[Notification]) -> Vec<(Vec<i64>, String)> {
    let mut out: Vec<(Vec<i64>, String)> = Vec::new();
    for n in list {
        let line = render(bot, n);
        match out.last_mut() {
            Some((ids, text)) if text.chars().count() + 1 + line.chars().count() <= MAX_TEXT => {
                ids.push(n.id);
                text.push('\n');
                text.push_str(&line);
            }
            _ => out.push((vec![n.id], line)),
        }
    }
    out
}

async fn deliver(
    bot: &Bot,
    user: crate::gift::UserId,
    text: &str,
    rows: usize,
) -> NotificationOutcome {
    match bot
        .send_as(
            user,
            &View::text(text.to_owned()),
            super::limit::Class::Notice,
        )
        .await
    {
        Ok(_) => {
            bot.stats
                .notifications_sent
                .fetch_add(rows as u64, Ordering::Relaxed);
            NotificationOutcome::Sent
        }
        Err(e) => {
            bot.stats
                .notifications_failed
                .fetch_add(rows as u64, Ordering::Relaxed);
            tracing::info!(user, rows, error = %e, "notification not delivered");
            NotificationOutcome::Undeliverable {
                reason: match e {
                    BotError::Unreachable { .. } => "unreachable".to_owned(),
                    other => other.to_string(),
                },
            }
        }
    }
}

/// The message for one outbox row, in the player's language; a credit says the new total from
/// the live inventory.
pub fn render(bot: &Bot, n: &Notification) -> String {
    let lang = bot.lang(n.user_id);
    let title = n.title.clone().unwrap_or_else(|| {
        let item = Item {
            key: n.key,
            owner: Owner::User(n.user_id),
            gift_id: n.gift_id,
            stars: n.stars,
            unique: n.slug.as_ref().map(|slug| {
                Box::new(crate::gift::UniqueInfo {
                    collectible_id: 0,
                    slug: slug.clone(),
                    number: n.number.unwrap_or(0),
                    value: Default::default(),
                })
            }),
            status: Status::Held,
            received_at: 0,
            convert_stars: None,
            transfer_stars: None,
            can_transfer_at: None,
            upgraded_from: None,
        };
        handler::title(bot, &item, lang)
    });
    let title = match n.number {
        Some(num) => format!("{title} #{num}"),
        None => title,
    };
    let id = n.withdrawal_id.unwrap_or_default();
    let note = match n.kind {
        k if k.is_credit() => {
            let live = bot.inventory.owner_stats(Owner::User(n.user_id));
            view::Notification::Deposit {
                title,
                stars: n.stars,
                count: live.items as u64,
                total: live.stars,
            }
        }
        NotificationKind::WithdrawalQueued => view::Notification::Queued { id, title },
        NotificationKind::WithdrawalSent => view::Notification::Sent { title },
        NotificationKind::WithdrawalWaiting => view::Notification::Waiting {
            title,
            reason: n
                .wait_reason
                .unwrap_or(crate::withdraw::machine::WaitReason::Retry),
            until: n.until_ms.map(|ms| ms / 1000),
        },
        NotificationKind::WithdrawalFailed => view::Notification::Failed {
            title,
            reason: n.reason.clone().unwrap_or_default(),
        },
        NotificationKind::WithdrawalCancelled => view::Notification::Cancelled { id, title },
        _ => view::Notification::Sent { title },
    };
    view::notification(lang, &note)
}
