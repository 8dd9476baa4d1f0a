//! The notifications outbox: what players are told, written by the store in the same
//! transaction as the change that causes it, and handed to the bot at most once.
//!
//! A row is written when a gift is credited to a player (a new item with an owner in
//! `apply_batch`, an attribution, an operator's `assign_owner`) and at each withdrawal step the
//! player hears about (queued by `create_withdrawal`; sent, waiting, failed and cancelled by
//! `move_withdrawal`, and cancelled when the item left the account in `apply_batch`). Each row
//! has a unique dedupe key (the credit's ledger key, or the request and its step), and is only
//! written by the code path that made the change, so a replayed batch or move writes nothing
//! twice, and a credit made by the reconciliation at start (giftd was down when the gift came)
//! is announced like any other.
//!
//! The row carries everything the bot needs to render it ([`Notification`]) without asking the
//! store again; the player's new total is not in it (the bot reads it from the live inventory
//! when it sends, which is the total the player has then). A collectible made by upgrading a
//! credited gift is a new item with the same owner, announced as a deposit of the collectible.
//!
//! # Delivery: at most once
//!
//! `pending` rows are handed out by [`Store::claim_notifications`](super::Store::claim_notifications),
//! oldest first, and become `claimed` (two claimers never get the same row). The bot sends each
//! and reports with [`Store::finish_notifications`](super::Store::finish_notifications): `sent`,
//! `undeliverable` (with Telegram's reason: the player blocked the bot, never started it...), or
//! `released` (definitely not sent, e.g. shutting down before its turn: back to `pending`). A
//! row claimed and never finished (the process crashed between claiming and reporting) cannot be
//! known to be unsent, so it is never handed out again: when its lease runs out the next claim
//! marks it `unknown`. A player may thus miss a message giftd crashed in the middle of sending,
//! never get one twice. The bot keeps that window small by claiming only what it is about to
//! send.
//!
//! # Players who had not started the bot
//!
//! Telegram lets a bot write only to users who started it. A row the bot could not deliver for
//! that reason ends `undeliverable` with the reason [`UNREACHABLE`]; when the player starts the
//! bot, [`Store::requeue_undelivered`](super::Store::requeue_undelivered) puts their rows of
//! that kind no older than the configured age (`bot.undelivered_max_age`) back to `pending`, and
//! they are sent like any other, once.
//!
//! # Retention
//!
//! Each claim also deletes up to [`RETENTION_BATCH`] finished rows (sent, undeliverable, unknown)
//! older than [`RETENTION`], and gives up on up to as many `pending` rows older than
//! [`STALE_AFTER`] (`undeliverable`, reason `stale`), so a bot configured months after the first
//! deposits does not announce them all.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::WithdrawalId;
use crate::gift::{ItemKey, UserId};
use crate::withdrawal::{RequestState, WaitReason, Withdrawal, WithdrawalMove};

pub type NotificationId = i64;

/// Finished rows older than this are deleted by the claims that follow.
pub const RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// Pending rows older than this are not sent any more (`undeliverable`, reason `stale`).
pub const STALE_AFTER: Duration = Duration::from_secs(7 * 86_400);

/// The reason the bot records for a notification it could not send because Telegram would
/// not let it reach the player (they had not started the bot, or blocked it): such rows are
/// put back to pending when the player starts the bot (`Store::requeue_undelivered`).
pub const UNREACHABLE: &str = "unreachable";

/// At most this many rows are deleted, and as many marked stale, per claim.
pub const RETENTION_BATCH: u32 = 1000;

/// What happened, for the player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A gift they sent was credited to them.
    Deposit,
    /// A gift recorded without a sender was credited to them once Telegram named them.
    Attributed,
    /// An operator credited an anonymous gift to them.
    Assigned,
    /// Their withdrawal request was created.
    WithdrawalQueued,
    /// The gift is in their Telegram account.
    WithdrawalSent,
    /// The request waits: `wait_reason`, until `until_ms` when known (a collectible still locked,
    /// no Stars, an operator's approval).
    WithdrawalWaiting,
    /// Telegram refused for good (`reason`); the gift is theirs again in the deposit account.
    WithdrawalFailed,
    /// Cancelled (by them, an operator, or because the item left the account: `reason`).
    WithdrawalCancelled,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 8] = [
        NotificationKind::Deposit,
        NotificationKind::Attributed,
        NotificationKind::Assigned,
        NotificationKind::WithdrawalQueued,
        NotificationKind::WithdrawalSent,
        NotificationKind::WithdrawalWaiting,
        NotificationKind::WithdrawalFailed,
        NotificationKind::WithdrawalCancelled,
    ];

    /// The name the stores keep.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Deposit => "deposit",
            NotificationKind::Attributed => "attributed",
            NotificationKind::Assigned => "assigned",
            NotificationKind::WithdrawalQueued => "withdrawal_queued",
            NotificationKind::WithdrawalSent => "withdrawal_sent",
            NotificationKind::WithdrawalWaiting => "withdrawal_waiting",
            NotificationKind::WithdrawalFailed => "withdrawal_failed",
            NotificationKind::WithdrawalCancelled => "withdrawal_cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A gift credited to the player (rather than a withdrawal step).
    pub fn is_credit(self) -> bool {
        matches!(
            self,
            NotificationKind::Deposit | NotificationKind::Attributed | NotificationKind::Assigned
        )
    }
}

/// One message to send, as [`Store::claim_notifications`](super::Store::claim_notifications)
/// hands it out: everything needed to render it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: NotificationId,
    pub kind: NotificationKind,
    /// The Telegram user to tell (the item's owner, the request's player).
    pub user_id: UserId,
    /// The item: deposit account id and msg id.
    pub key: ItemKey,
    pub gift_id: i64,
    /// The gift's title, when Telegram gave one (regular gifts often have none).
    pub title: Option<String>,
    /// The item's value in Stars.
    pub stars: i64,
    /// A collectible's slug and number.
    pub slug: Option<String>,
    pub number: Option<i32>,
    /// The request, for the withdrawal kinds.
    pub withdrawal_id: Option<WithdrawalId>,
    /// Why it waits ([`NotificationKind::WithdrawalWaiting`]).
    pub wait_reason: Option<WaitReason>,
    /// Unix ms until which it waits, when known.
    pub until_ms: Option<i64>,
    /// Why it failed, was cancelled or waits, in the words giftd recorded.
    pub reason: Option<String>,
    /// Unix ms of the change.
    pub created_at_ms: i64,
}

/// What became of claimed notifications, reported by the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationOutcome {
    /// Telegram accepted the message.
    Sent,
    /// Telegram refused it for good (the player blocked the bot, never started it, deleted
    /// their account...): `reason` says which.
    Undeliverable { reason: String },
    /// Definitely not sent (giftd is stopping, or Telegram said wait before anything was sent):
    /// back to `pending`, handed out again by a later claim.
    Released,
}

/// The states a row moves through (`pending -> claimed -> sent | undeliverable | unknown`, and
/// `claimed -> pending` when released).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationState {
    Pending,
    Claimed,
    Sent,
    Undeliverable,
    /// Claimed and never finished before its lease ran out: perhaps sent, never sent again.
    Unknown,
}

impl NotificationState {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationState::Pending => "pending",
            NotificationState::Claimed => "claimed",
            NotificationState::Sent => "sent",
            NotificationState::Undeliverable => "undeliverable",
            NotificationState::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            NotificationState::Pending,
            NotificationState::Claimed,
            NotificationState::Sent,
            NotificationState::Undeliverable,
            NotificationState::Unknown,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// The dedupe key of a withdrawal step's notification: the request and its step. A waiting
/// notice is keyed by the attempt and the reason too (the same request may wait again later).
pub(crate) fn withdrawal_dedupe_key(
    id: WithdrawalId,
    kind: NotificationKind,
    attempt: i32,
    wait: Option<WaitReason>,
) -> String {
    match kind {
        NotificationKind::WithdrawalWaiting => format!(
            "withdrawal:{id}:waiting:{attempt}:{}",
            wait.map_or("none", WaitReason::as_str)
        ),
        _ => format!("withdrawal:{id}:{}", kind.as_str()),
    }
}

/// What the player is told about a move of their request, if anything: the kind, the wait
/// reason and until when, and the reason recorded. Pure; the stores call it inside the move's
/// transaction with the request as it was before the move.
///
/// Sent, failed and cancelled are always told. A wait is told unless it is a transient retry
/// (FLOOD_WAIT, Telegram unreachable before anything was sent: not the player's concern) or the
/// request already waited for the same reason (a collectible still locked after its unlock
/// time, Stars still short): one notice per reason, not one per attempt. Claims, sends, unknown
/// outcomes and returns to the queue are not told.
pub(crate) fn withdrawal_notice(before: &Withdrawal, mv: &WithdrawalMove) -> Option<StepNotice> {
    let reason = mv.reason.clone().unwrap_or_else(|| before.reason.clone());
    let kind = match mv.to {
        RequestState::Sent => NotificationKind::WithdrawalSent,
        RequestState::Failed => NotificationKind::WithdrawalFailed,
        RequestState::Cancelled => NotificationKind::WithdrawalCancelled,
        RequestState::Waiting | RequestState::Approval => {
            let wait = mv.wait_reason.unwrap_or(before.wait_reason);
            if wait == Some(WaitReason::Retry) || wait == before.wait_reason {
                return None;
            }
            let until = mv.not_before_ms.unwrap_or(before.not_before_ms);
            return Some(StepNotice {
                kind: NotificationKind::WithdrawalWaiting,
                wait_reason: wait,
                until_ms: until,
                reason,
            });
        }
        _ => return None,
    };
    Some(StepNotice {
        kind,
        wait_reason: None,
        until_ms: None,
        reason,
    })
}

/// What [`withdrawal_notice`] decided to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepNotice {
    pub kind: NotificationKind,
    pub wait_reason: Option<WaitReason>,
    pub until_ms: Option<i64>,
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::withdrawal::{Canceller, WithdrawalKind};

    fn request(state: RequestState, wait: Option<WaitReason>) -> Withdrawal {
        Withdrawal {
            id: 7,
            key: ItemKey::new(1000, 42),
            owner: 5,
            state,
            kind: WithdrawalKind::Transfer,
            attempt: 2,
            worker: Some("w1".into()),
            not_before_ms: None,
            lease_until_ms: None,
            wait_reason: wait,
            fee_stars: Some(25),
            approved_stars: None,
            form_id: None,
            reason: None,
            requested_at: 1_700_000_000,
            sending_at_ms: None,
        }
    }

    /// `(before, move) -> what the player is told`, as the kind, wait reason and until.
    fn check(
        before: &Withdrawal,
        mv: WithdrawalMove,
        expected: Option<(NotificationKind, Option<WaitReason>, Option<i64>)>,
    ) {
        let got = withdrawal_notice(before, &mv).map(|n| (n.kind, n.wait_reason, n.until_ms));
        assert_eq!(got, expected, "{mv:?}");
    }

    #[test]
    fn which_withdrawal_moves_the_player_hears_of() {
        use NotificationKind::*;
        use RequestState::*;
        let claimed = request(Claimed, None);
        let sending = request(Sending, None);
        check(
            &sending,
            WithdrawalMove::sent(&sending, "ok"),
            Some((WithdrawalSent, None, None)),
        );
        check(
            &claimed,
            WithdrawalMove::failed(&claimed, "no"),
            Some((WithdrawalFailed, None, None)),
        );
        let queued = request(Requested, None);
        check(
            &queued,
            WithdrawalMove::cancel(&queued, Canceller::Operator),
            Some((WithdrawalCancelled, None, None)),
        );
        // A wait: told with its reason and until when; not again for the same reason, never
        // for a transient retry.
        let too_early = WithdrawalMove::defer(&claimed, WaitReason::TooEarly, Some(9), "locked");
        check(
            &claimed,
            too_early,
            Some((WithdrawalWaiting, Some(WaitReason::TooEarly), Some(9))),
        );
        let again = request(Claimed, Some(WaitReason::TooEarly));
        check(
            &again,
            WithdrawalMove::defer(&again, WaitReason::TooEarly, Some(9), "x"),
            None,
        );
        check(
            &again,
            WithdrawalMove::defer(&again, WaitReason::Stars, Some(10), "x"),
            Some((WithdrawalWaiting, Some(WaitReason::Stars), Some(10))),
        );
        check(
            &claimed,
            WithdrawalMove::defer(&claimed, WaitReason::Retry, Some(9), "x"),
            None,
        );
        check(
            &claimed,
            WithdrawalMove::defer_quoted(&claimed, WaitReason::FeeCap, 500, "fee"),
            Some((WithdrawalWaiting, Some(WaitReason::FeeCap), None)),
        );
        // Steps the player does not hear of.
        check(
            &claimed,
            WithdrawalMove::begin_send(&claimed, 0, None, 1, None),
            None,
        );
        check(&sending, WithdrawalMove::unknown(&sending, "timeout"), None);
        check(&claimed, WithdrawalMove::rescue(&claimed), None);
        let unknown = request(Unknown, None);
        check(
            &unknown,
            WithdrawalMove::not_sent(&unknown, 5, "still there"),
            None,
        );
        check(
            &unknown,
            WithdrawalMove::not_sent(&unknown, 2, "still there"),
            Some((WithdrawalWaiting, Some(WaitReason::Operator), None)),
        );
    }

    #[test]
    fn names_round_trip() {
        for k in NotificationKind::ALL {
            assert_eq!(NotificationKind::parse(k.as_str()), Some(k));
        }
        assert!(NotificationKind::Assigned.is_credit());
        assert!(!NotificationKind::WithdrawalSent.is_credit());
        for s in ["pending", "claimed", "sent", "undeliverable", "unknown"] {
            assert_eq!(NotificationState::parse(s).map(|x| x.as_str()), Some(s));
        }
        assert_eq!(
            withdrawal_dedupe_key(7, NotificationKind::WithdrawalSent, 2, None),
            "withdrawal:7:withdrawal_sent"
        );
        assert_eq!(
            withdrawal_dedupe_key(
                7,
                NotificationKind::WithdrawalWaiting,
                2,
                Some(WaitReason::TooEarly)
            ),
            "withdrawal:7:waiting:2:too_early"
        );
    }
}
