//! Sends the store's notifications outbox to players: claim a few rows, send each player's as
//! one message at Telegram's pace (the gifts credited listed one a line, then what the player
//! holds now, once), report what became of them. Woken when the mirror commits a batch (a
//! deposit was just written, with its outbox row, in that transaction) and when a player starts
//! the bot (what they could not get before is pending again), and polled besides (withdrawal
//! steps are written by the worker and by other processes).
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
use super::i18n::Lang;
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
            () = bot.notices_wake.notified() => {}
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
                let lang = bot.speak(user, None).await;
                for chunk in chunks(&bot, user, &list, lang) {
                    let ids: Vec<i64> = chunk.0;
                    if cancel.is_cancelled() {
                        results.push((ids, NotificationOutcome::Released));
                        continue;
                    }
                    // Released (back to pending for the next start) only while it has not
                    // been handed to Telegram; a send under way is awaited.
                    let outcome = deliver(&bot, user, &chunk.1, ids.len(), &cancel).await;
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

/// The player's notifications as messages: (the rows each carries, its text). One line per
/// row; a message that lists credited gifts ends with what the player holds now (the live
/// inventory when it is sent), once.
fn chunks(
    bot: &Bot,
    user: crate::gift::UserId,
    list: &[Notification],
    lang: Lang,
) -> Vec<(Vec<i64>, String)> {
    let holding = list.iter().any(|n| n.kind.is_credit()).then(|| {
        let live = bot.inventory.owner_stats(Owner::User(user));
        view::holding(lang, live.items as u64, live.stars)
    });
    let lines: Vec<(i64, bool, String)> = list
        .iter()
        .map(|n| (n.id, n.kind.is_credit(), render(bot, n, lang)))
        .collect();
    group(lines, holding.as_deref())
}

/// Groups `(row, is a credit, line)` into messages below Telegram's length limit; each message
/// with a credit ends with `holding`.
fn group(lines: Vec<(i64, bool, String)>, holding: Option<&str>) -> Vec<(Vec<i64>, String)> {
    let room = MAX_TEXT - holding.map_or(0, |h| h.chars().count() + 1);
    let mut out: Vec<(Vec<i64>, String, bool)> = Vec::new();
    for (id, credit, line) in lines {
        match out.last_mut() {
            Some((ids, text, credits))
                if text.chars().count() + 1 + line.chars().count() <= room =>
            {
                ids.push(id);
                text.push('\n');
                text.push_str(&line);
                *credits |= credit;
            }
            _ => out.push((vec![id], line, credit)),
        }
    }
    out.into_iter()
        .map(|(ids, mut text, credits)| {
            if credits && let Some(h) = holding {
                text.push('\n');
                text.push_str(h);
            }
            (ids, text)
        })
        .collect()
}

/// A player started the bot: the notifications Telegram did not let the bot send them before
/// (no older than `bot.undelivered_max_age`) are pending again, and the sender is woken.
pub async fn player_started(bot: &Bot, user: crate::gift::UserId) {
    match tokio::time::timeout(
        super::STORE_TIMEOUT,
        bot.store.requeue_undelivered(user, bot.undelivered_max_age),
    )
    .await
    {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => {
            tracing::info!(user, count = n, "undelivered notifications queued again");
            bot.notices_wake.notify_one();
        }
        Ok(Err(e)) => {
            tracing::warn!(user, error = %e, "undelivered notifications not queued again");
        }
        Err(_) => tracing::warn!(user, "undelivered notifications not queued again in time"),
    }
}

async fn deliver(
    bot: &Bot,
    user: crate::gift::UserId,
    text: &str,
    rows: usize,
    cancel: &CancellationToken,
) -> NotificationOutcome {
    match bot
        .send_unless_cancelled(
            user,
            &View::text(text.to_owned()),
            super::pace::Class::Notice,
            cancel,
        )
        .await
    {
        Ok(None) => NotificationOutcome::Released,
        Ok(Some(_)) => {
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
                    BotError::Unreachable { .. } => crate::store::notify::UNREACHABLE.to_owned(),
                    other => other.to_string(),
                },
            }
        }
    }
}

/// The line for one outbox row, in `lang`.
pub fn render(bot: &Bot, n: &Notification, lang: Lang) -> String {
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
        k if k.is_credit() => view::Notification::Deposit {
            title,
            stars: n.stars,
        },
        NotificationKind::WithdrawalQueued => view::Notification::Queued { id, title },
        NotificationKind::WithdrawalSent => view::Notification::Sent { title },
        NotificationKind::WithdrawalWaiting => view::Notification::Waiting {
            title,
            reason: n
                .wait_reason
                .unwrap_or(crate::withdrawal::WaitReason::Retry),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(out: &[(Vec<i64>, String)]) -> Vec<(Vec<i64>, &str)> {
        out.iter()
            .map(|(ids, t)| (ids.clone(), t.as_str()))
            .collect()
    }

    #[test]
    fn credits_are_listed_then_the_totals_once() {
        let lines = vec![
            (1, true, "Received Heart (15 ⭐).".to_owned()),
            (2, true, "Received Bear (15 ⭐).".to_owned()),
            (3, false, "Withdrawal 9 of Cake is queued.".to_owned()),
        ];
        let out = group(lines, Some("You now hold 4 gifts worth 60 ⭐."));
        assert_eq!(
            texts(&out),
            [(
                vec![1, 2, 3],
                "Received Heart (15 ⭐).\nReceived Bear (15 ⭐).\n\
                 Withdrawal 9 of Cake is queued.\nYou now hold 4 gifts worth 60 ⭐."
            )]
        );
        let out = group(
            vec![(3, false, "Withdrawal 9 of Cake is queued.".to_owned())],
            None,
        );
        assert_eq!(texts(&out), [(vec![3], "Withdrawal 9 of Cake is queued.")]);
    }

    #[test]
    fn long_lists_are_split_and_each_part_with_credits_ends_with_the_totals() {
        let line = "x".repeat(1500);
        let lines: Vec<_> = (1..=5).map(|i| (i, i != 5, line.clone())).collect();
        let holding = "You now hold 5 gifts worth 75 ⭐.";
        let out = group(lines, Some(holding));
        assert_eq!(
            out.iter().map(|(ids, _)| ids.clone()).collect::<Vec<_>>(),
            [vec![1, 2], vec![3, 4], vec![5]]
        );
        for (ids, text) in &out {
            assert!(text.chars().count() <= MAX_TEXT, "{ids:?}");
            assert_eq!(text.ends_with(holding), ids != &vec![5], "{ids:?}");
            assert_eq!(text.matches(holding).count(), usize::from(ids != &vec![5]));
        }
    }
}
