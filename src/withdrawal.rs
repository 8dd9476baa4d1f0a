//! The withdrawal state machine: which moves a request may make, what each does to the item, and
//! the ledger entry each writes. Pure: no IO, no clock, no Telegram; the store applies a
//! [`WithdrawalMove`] atomically (compare-and-set on the request's state, its worker and its
//! attempt), and the worker decides which move to ask for.
//!
//! ```text
//!   requested ──claim──▶ claimed ──begin_send──▶ sending ──▶ sent        (item withdrawn)
//!     ▲   │                 │                       ├──────▶ failed      (item held again)
//!     │   │                 │                       ├──────▶ unknown ──resolve──▶ sent
//!     │   │                 │                       │           └──not sent──▶ requested
//!     │   │                 ├──defer──▶ waiting ────┴─(refused: too early, no Stars)
//!     │   │                 ├──defer──▶ approval  (fee or price above the operator's caps)
//!     │   │                 └──fail───▶ failed    (a definite refusal before sending)
//!     │   └──cancel──▶ cancelled
//!     └── waiting / approval / requested: cancel (player or operator); approve, retry (operator)
//! ```
//!
//! Must never: move a request out of `sending` or `unknown` to anything but what Telegram says
//! (sent, a definite refusal, or "not sent" after looking), or give the item back to the player
//! while the outcome is unknown. "I don't know" is the state `unknown`, never `failed`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::gift::{ItemKey, LedgerEntry, LedgerKind, Owner, Status, UserId};

/// Where a withdrawal request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Asked for; a worker may claim it.
    Requested,
    /// Above the operator's caps (fee, price, daily budget): waits for `giftd withdrawals approve`.
    Approval,
    /// Telegram said not yet (the collectible is locked until `can_transfer_at`), or the account
    /// lacks the Stars: claimable again after `not_before`.
    Waiting,
    /// A worker holds it and is preparing the transfer; nothing has moved.
    Claimed,
    /// The worker recorded its intent and is calling Telegram: the gift may be moving.
    Sending,
    /// The call's outcome is not known (timeout, dropped connection, crash, lost lease):
    /// resolved only by looking at Telegram.
    Unknown,
    /// The gift is in the player's account.
    Sent,
    /// Telegram refused for good; the item is held again and the player may ask again.
    Failed,
    /// Cancelled before anything was sent; the item is held again.
    Cancelled,
}

impl RequestState {
    pub const ALL: [RequestState; 9] = [
        RequestState::Requested,
        RequestState::Approval,
        RequestState::Waiting,
        RequestState::Claimed,
        RequestState::Sending,
        RequestState::Unknown,
        RequestState::Sent,
        RequestState::Failed,
        RequestState::Cancelled,
    ];

    /// The name the stores keep.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Requested => "requested",
            RequestState::Approval => "approval",
            RequestState::Waiting => "waiting",
            RequestState::Claimed => "claimed",
            RequestState::Sending => "sending",
            RequestState::Unknown => "unknown",
            RequestState::Sent => "sent",
            RequestState::Failed => "failed",
            RequestState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether the request is finished (at most one open request per item).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RequestState::Sent | RequestState::Failed | RequestState::Cancelled
        )
    }

    /// What the item's status is while the request is here.
    pub fn item_status(self) -> Status {
        match self {
            RequestState::Requested | RequestState::Approval | RequestState::Waiting => {
                Status::WithdrawRequested
            }
            RequestState::Claimed | RequestState::Sending | RequestState::Unknown => {
                Status::Withdrawing
            }
            RequestState::Sent => Status::Withdrawn,
            RequestState::Failed | RequestState::Cancelled => Status::Held,
        }
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a gift goes back to its player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawalKind {
    /// A collectible moves with `payments.transferStarGift` (free) or a paid transfer form.
    Transfer,
    /// A regular gift cannot move: the same catalogue gift is bought for the player; the
    /// original stays in the deposit account, kept by the house.
    Resend,
}

impl WithdrawalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WithdrawalKind::Transfer => "transfer",
            WithdrawalKind::Resend => "resend",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "transfer" => Some(WithdrawalKind::Transfer),
            "resend" => Some(WithdrawalKind::Resend),
            _ => None,
        }
    }
}

/// Why a request waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    /// Telegram refuses the transfer before `can_transfer_at`.
    TooEarly,
    /// The deposit account lacks the Stars for the fee or the price.
    Stars,
    /// The fee or price is above `withdraw.max_fee_stars` / `max_resend_stars`.
    FeeCap,
    /// Today's spending would pass the daily budget.
    DailyBudget,
    /// The outcome stayed unknown after every check and retry: an operator decides.
    Operator,
    /// Telegram asked to wait (FLOOD_WAIT) or could not be reached before anything was sent.
    Retry,
}

impl WaitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitReason::TooEarly => "too_early",
            WaitReason::Stars => "stars",
            WaitReason::FeeCap => "fee_cap",
            WaitReason::DailyBudget => "daily_budget",
            WaitReason::Operator => "operator",
            WaitReason::Retry => "retry",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            WaitReason::TooEarly,
            WaitReason::Stars,
            WaitReason::FeeCap,
            WaitReason::DailyBudget,
            WaitReason::Operator,
            WaitReason::Retry,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// The state a request waiting for this reason is in.
    pub fn state(self) -> RequestState {
        match self {
            WaitReason::TooEarly | WaitReason::Stars | WaitReason::Retry => RequestState::Waiting,
            WaitReason::FeeCap | WaitReason::DailyBudget | WaitReason::Operator => {
                RequestState::Approval
            }
        }
    }
}

/// A withdrawal request as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub id: i64,
    pub key: ItemKey,
    /// Who asked, and who receives the gift.
    pub owner: UserId,
    pub state: RequestState,
    pub kind: WithdrawalKind,
    /// Claims so far; each `sending` is one attempt at Telegram.
    pub attempt: i32,
    /// The worker holding it (claimed, sending).
    pub worker: Option<String>,
    /// Unix ms before which it is not claimed again (waiting) or until which the worker's claim
    /// holds (claimed, sending).
    pub not_before_ms: Option<i64>,
    pub lease_until_ms: Option<i64>,
    pub wait_reason: Option<WaitReason>,
    /// Stars Telegram asked for (transfer fee or purchase price), once known.
    pub fee_stars: Option<i64>,
    /// Stars an operator approved for this request (above the caps).
    pub approved_stars: Option<i64>,
    /// The payment form being paid (recorded before `sendStarsForm`).
    pub form_id: Option<i64>,
    /// Why it failed, waits or was resolved as it was, for the player and the operator.
    pub reason: Option<String>,
    /// Unix seconds.
    pub requested_at: i64,
    /// Unix ms of the last `sending`: the settle delay counts from it.
    pub sending_at_ms: Option<i64>,
}

/// Who cancels a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canceller {
    /// The player who asked: only their own request.
    Player(UserId),
    Operator,
}

/// One move, as the store applies it: only from one of `from`, only by `worker` at `attempt`
/// when given; the item moves from one of `item_from` to `item_to` and `ledger` is written, all
/// in one transaction. A move to where the request already is (same attempt) changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalMove {
    pub id: i64,
    pub from: Vec<RequestState>,
    pub to: RequestState,
    /// The claim this move continues (claimed, sending): refused if another worker holds it.
    pub worker: Option<String>,
    pub attempt: Option<i32>,
    pub owner: Option<UserId>,
    /// `Some` sets (or clears, with `None` inside) the column.
    pub set_worker: Option<Option<String>>,
    pub lease_ms: Option<i64>,
    pub not_before_ms: Option<Option<i64>>,
    pub wait_reason: Option<Option<WaitReason>>,
    pub fee_stars: Option<i64>,
    pub approved_stars: Option<i64>,
    pub form_id: Option<Option<i64>>,
    pub reason: Option<Option<String>>,
    /// Record the instant of this send (settle delays count from it).
    pub mark_sending: bool,
    /// Reset the attempt counter (an operator's retry).
    pub reset_attempts: bool,
    /// The item ends kept by the house (a resent regular gift stays in the account).
    pub kept_by_house: bool,
    /// Refuse the move when `fee_stars` plus what this account spent today on this kind would
    /// pass this many Stars (the daily budget), checked inside the transaction.
    pub daily_budget: Option<i64>,
    /// The ledger entry (kind; the store fills key, owner, stars and idempotency key).
    pub ledger: LedgerKind,
    /// The term of the deposit account's lease this move was decided in (the worker's): the
    /// store refuses the move once the lease moved on. `None` for an operator's or a player's
    /// move, and for a worker running without leases.
    pub epoch: Option<crate::term::Epoch>,
}

impl WithdrawalMove {
    fn new(w: &Withdrawal, from: &[RequestState], to: RequestState, ledger: LedgerKind) -> Self {
        WithdrawalMove {
            id: w.id,
            from: from.to_vec(),
            to,
            worker: None,
            attempt: None,
            owner: None,
            set_worker: None,
            lease_ms: None,
            not_before_ms: None,
            wait_reason: None,
            fee_stars: None,
            approved_stars: None,
            form_id: None,
            reason: None,
            mark_sending: false,
            reset_attempts: false,
            kept_by_house: false,
            daily_budget: None,
            ledger,
            epoch: None,
        }
    }

    /// The same move, fenced on the account lease's term `epoch` (`None`: unfenced).
    pub fn with_epoch(mut self, epoch: Option<crate::term::Epoch>) -> Self {
        self.epoch = epoch;
        self
    }

    /// Continuing the worker's own claim: fenced on its worker id and attempt.
    fn fenced(mut self, w: &Withdrawal) -> Self {
        self.worker = w.worker.clone();
        self.attempt = Some(w.attempt);
        self
    }

    /// The worker records its intent before any Telegram call that moves the gift or spends
    /// Stars: after this, only Telegram can say what happened.
    pub fn begin_send(
        w: &Withdrawal,
        fee_stars: i64,
        form_id: Option<i64>,
        lease_ms: i64,
        daily_budget: Option<i64>,
    ) -> Self {
        let mut m = Self::new(
            w,
            &[RequestState::Claimed],
            RequestState::Sending,
            LedgerKind::WithdrawSending,
        )
        .fenced(w);
        m.fee_stars = Some(fee_stars);
        m.form_id = Some(form_id);
        m.lease_ms = Some(lease_ms);
        m.mark_sending = true;
        m.daily_budget = daily_budget;
        m
    }

    /// Telegram confirmed the gift is in the player's account (or its absence from the deposit
    /// account and the outgoing service message say so).
    pub fn sent(w: &Withdrawal, how: &str) -> Self {
        let mut m = Self::new(
            w,
            &[RequestState::Sending, RequestState::Unknown],
            RequestState::Sent,
            LedgerKind::Withdrawn,
        )
        .fenced(w);
        m.set_worker = Some(None);
        m.reason = Some(Some(how.to_owned()));
        m.kept_by_house = w.kind == WithdrawalKind::Resend;
        m
    }

    /// A definite refusal: nothing moved, the item is held again, the player is told why.
    /// From `claimed` (refused while preparing) or `sending` (refused the call itself).
    pub fn failed(w: &Withdrawal, reason: &str) -> Self {
        let mut m = Self::new(
            w,
            &[RequestState::Claimed, RequestState::Sending],
            RequestState::Failed,
            LedgerKind::WithdrawFailed,
        )
        .fenced(w);
        m.set_worker = Some(None);
        m.reason = Some(Some(reason.to_owned()));
        m
    }

    /// The outcome of a call is not known.
    pub fn unknown(w: &Withdrawal, reason: &str) -> Self {
        let mut m = Self::new(
            w,
            &[RequestState::Sending],
            RequestState::Unknown,
            LedgerKind::WithdrawUnknown,
        )
        .fenced(w);
        m.reason = Some(Some(reason.to_owned()));
        m
    }

    /// Back to the queue with a reason, before anything was sent (claimed) or after Telegram
    /// definitely refused the call (sending): to wait until `not_before` or for an operator.
    pub fn defer(w: &Withdrawal, why: WaitReason, not_before_ms: Option<i64>, note: &str) -> Self {
        let mut m = Self::new(
            w,
            &[RequestState::Claimed, RequestState::Sending],
            why.state(),
            LedgerKind::WithdrawDeferred,
        )
        .fenced(w);
        m.set_worker = Some(None);
        m.wait_reason = Some(Some(why));
        m.not_before_ms = Some(not_before_ms);
        m.reason = Some(Some(note.to_owned()));
        m.form_id = Some(None);
        m
    }

    /// Defers and records the fee Telegram quoted (above a cap: the operator sees it).
    pub fn defer_quoted(w: &Withdrawal, why: WaitReason, fee_stars: i64, note: &str) -> Self {
        let mut m = Self::defer(w, why, None, note);
        m.fee_stars = Some(fee_stars);
        m
    }

    /// Looked at Telegram after an unknown outcome: the gift did not leave. Back to the queue
    /// for another attempt, or to an operator once `max_attempts` were made.
    pub fn not_sent(w: &Withdrawal, max_attempts: i32, note: &str) -> Self {
        let to = if w.attempt >= max_attempts {
            RequestState::Approval
        } else {
            RequestState::Requested
        };
        let mut m = Self::new(
            w,
            &[RequestState::Unknown],
            to,
            LedgerKind::WithdrawDeferred,
        )
        .fenced(w);
        m.set_worker = Some(None);
        m.reason = Some(Some(note.to_owned()));
        m.form_id = Some(None);
        m.not_before_ms = Some(None);
        m.wait_reason = Some((to == RequestState::Approval).then_some(WaitReason::Operator));
        m
    }

    /// Looked at Telegram after an unknown outcome and found no evidence either way that the
    /// player cannot forge: an operator decides (`approval`, waiting for the operator). Never
    /// back to the queue by itself, and the player cannot cancel it (the gift may have left).
    pub fn to_operator(w: &Withdrawal, note: &str) -> Self {
        let mut m = Self::new(
            w,
            &[RequestState::Unknown],
            RequestState::Approval,
            LedgerKind::WithdrawDeferred,
        )
        .fenced(w);
        m.set_worker = Some(None);
        m.reason = Some(Some(note.to_owned()));
        m.form_id = Some(None);
        m.not_before_ms = Some(None);
        m.wait_reason = Some(Some(WaitReason::Operator));
        m
    }

    /// The player (their own request only) or an operator cancels a request nothing was sent
    /// for yet. A request waiting for an operator after an unknown outcome (something may have
    /// been sent) is the operator's to cancel, not the player's.
    pub fn cancel(w: &Withdrawal, by: Canceller) -> Self {
        let from: &[RequestState] = match by {
            Canceller::Player(_) if w.wait_reason == Some(WaitReason::Operator) => {
                &[RequestState::Requested, RequestState::Waiting]
            }
            _ => &[
                RequestState::Requested,
                RequestState::Approval,
                RequestState::Waiting,
            ],
        };
        let mut m = Self::new(
            w,
            from,
            RequestState::Cancelled,
            LedgerKind::WithdrawCancelled,
        );
        if let Canceller::Player(id) = by {
            m.owner = Some(id);
        }
        m.reason = Some(Some(match by {
            Canceller::Player(_) => "cancelled by the player".to_owned(),
            Canceller::Operator => "cancelled by an operator".to_owned(),
        }));
        m
    }

    /// An operator approves a request waiting for approval, up to `stars` (the quoted fee when
    /// `None`).
    pub fn approve(w: &Withdrawal, stars: Option<i64>) -> Self {
        let mut m = Self::new(
            w,
            &[RequestState::Approval],
            RequestState::Requested,
            LedgerKind::WithdrawApproved,
        );
        m.approved_stars = Some(stars.or(w.fee_stars).unwrap_or(0));
        m.wait_reason = Some(None);
        m.not_before_ms = Some(None);
        m.reset_attempts = w.wait_reason == Some(WaitReason::Operator);
        m
    }

    /// The worker's lease ran out (it crashed, stalled or lost the database): a claim goes back
    /// to the queue, since nothing was sent; a send becomes unknown, since something may have
    /// been.
    pub fn rescue(w: &Withdrawal) -> Self {
        if w.state == RequestState::Sending {
            return Self::unknown(w, "the worker's lease ran out while it was sending");
        }
        let mut m = Self::new(
            w,
            &[RequestState::Claimed],
            RequestState::Requested,
            LedgerKind::WithdrawDeferred,
        )
        .fenced(w);
        m.set_worker = Some(None);
        m.reason = Some(Some(
            "the worker's lease ran out before it sent anything".to_owned(),
        ));
        m
    }

    /// An operator sends a waiting request back to the queue now (after topping up Stars).
    pub fn retry(w: &Withdrawal) -> Self {
        let mut m = Self::new(
            w,
            &[RequestState::Waiting],
            RequestState::Requested,
            LedgerKind::WithdrawApproved,
        );
        m.wait_reason = Some(None);
        m.not_before_ms = Some(None);
        m
    }
}

/// The ledger entry a move writes, filled in from the request and the item: unique per request,
/// attempt and kind, so replaying a move writes nothing twice.
pub fn ledger_entry(
    w: &Withdrawal,
    kind: LedgerKind,
    attempt: i32,
    stars: i64,
    at: i64,
) -> LedgerEntry {
    let idempotency_key = match kind {
        // Once per item, whatever the request.
        LedgerKind::Withdrawn => format!("withdrawn:{}", w.key),
        _ => format!("{}:{}:{}:{attempt}", kind.as_str(), w.key, w.id),
    };
    LedgerEntry {
        idempotency_key,
        key: w.key,
        owner: Owner::User(w.owner),
        kind,
        stars,
        at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(state: RequestState, kind: WithdrawalKind) -> Withdrawal {
        Withdrawal {
            id: 7,
            key: ItemKey::new(1000, 42),
            owner: 5,
            state,
            kind,
            attempt: 1,
            worker: Some("w1".into()),
            not_before_ms: None,
            lease_until_ms: None,
            wait_reason: None,
            fee_stars: Some(25),
            approved_stars: None,
            form_id: None,
            reason: None,
            requested_at: 1_700_000_000,
            sending_at_ms: None,
        }
    }

    #[test]
    fn names_round_trip_and_items_follow_the_request() {
        for s in RequestState::ALL {
            assert_eq!(RequestState::parse(s.as_str()), Some(s));
            // The item is given back only from a final state nothing was sent in.
            let back = s.item_status() == Status::Held;
            assert_eq!(
                back,
                matches!(s, RequestState::Failed | RequestState::Cancelled)
            );
        }
        // Never back to the player while the outcome is not known.
        assert_eq!(RequestState::Unknown.item_status(), Status::Withdrawing);
        assert_eq!(RequestState::Sending.item_status(), Status::Withdrawing);
    }

    #[test]
    fn moves_are_fenced_and_go_where_they_should() {
        use RequestState::*;
        let claimed = request(Claimed, WithdrawalKind::Transfer);
        let send = WithdrawalMove::begin_send(&claimed, 25, Some(99), 120_000, Some(1000));
        assert_eq!((send.from.clone(), send.to), (vec![Claimed], Sending));
        assert_eq!(
            (send.worker.as_deref(), send.attempt),
            (Some("w1"), Some(1))
        );
        assert!(send.mark_sending);

        let sending = request(Sending, WithdrawalKind::Resend);
        let sent = WithdrawalMove::sent(&sending, "transferred");
        assert_eq!(sent.to, Sent);
        assert!(
            sent.kept_by_house,
            "a resent regular gift stays, kept by the house"
        );
        assert!(
            !WithdrawalMove::sent(&request(Sending, WithdrawalKind::Transfer), "x").kept_by_house
        );
        assert_eq!(
            WithdrawalMove::unknown(&sending, "timeout").from,
            vec![Sending]
        );
        // Cancelling is only possible before anything is sent.
        let cancel = WithdrawalMove::cancel(&claimed, Canceller::Player(5));
        assert!(!cancel.from.contains(&Claimed) && !cancel.from.contains(&Sending));
        assert_eq!(cancel.owner, Some(5));
        // Waiting reasons pick the state.
        let d = WithdrawalMove::defer(&claimed, WaitReason::TooEarly, Some(5), "locked");
        assert_eq!(d.to, Waiting);
        let d = WithdrawalMove::defer_quoted(&claimed, WaitReason::FeeCap, 500, "fee");
        assert_eq!((d.to, d.fee_stars), (Approval, Some(500)));
    }

    #[test]
    fn an_unresolved_resend_goes_to_an_operator_and_only_the_operator_cancels_it() {
        let w = request(RequestState::Unknown, WithdrawalKind::Resend);
        let m = WithdrawalMove::to_operator(&w, "no evidence");
        assert_eq!(
            (m.from.as_slice(), m.to, m.wait_reason),
            (
                &[RequestState::Unknown][..],
                RequestState::Approval,
                Some(Some(WaitReason::Operator))
            )
        );
        let mut waiting = request(RequestState::Approval, WithdrawalKind::Resend);
        waiting.wait_reason = Some(WaitReason::Operator);
        assert!(
            !WithdrawalMove::cancel(&waiting, Canceller::Player(5))
                .from
                .contains(&RequestState::Approval)
        );
        assert!(
            WithdrawalMove::cancel(&waiting, Canceller::Operator)
                .from
                .contains(&RequestState::Approval)
        );
        waiting.wait_reason = Some(WaitReason::FeeCap);
        assert!(
            WithdrawalMove::cancel(&waiting, Canceller::Player(5))
                .from
                .contains(&RequestState::Approval)
        );
    }

    #[test]
    fn unknown_outcomes_retry_a_bounded_number_of_times() {
        let mut w = request(RequestState::Unknown, WithdrawalKind::Transfer);
        w.attempt = 1;
        assert_eq!(
            WithdrawalMove::not_sent(&w, 3, "still there").to,
            RequestState::Requested
        );
        w.attempt = 3;
        let m = WithdrawalMove::not_sent(&w, 3, "still there");
        assert_eq!(
            (m.to, m.wait_reason),
            (RequestState::Approval, Some(Some(WaitReason::Operator)))
        );
        // An operator's approval then starts the count again.
        let mut stuck = request(RequestState::Approval, WithdrawalKind::Transfer);
        stuck.wait_reason = Some(WaitReason::Operator);
        assert!(WithdrawalMove::approve(&stuck, None).reset_attempts);
    }

    #[test]
    fn ledger_keys_are_unique_per_attempt_and_once_per_item_for_the_withdrawal() {
        let w = request(RequestState::Sending, WithdrawalKind::Transfer);
        let a = ledger_entry(&w, LedgerKind::WithdrawSending, 1, 25, 0);
        let b = ledger_entry(&w, LedgerKind::WithdrawSending, 2, 25, 0);
        assert_ne!(a.idempotency_key, b.idempotency_key);
        let done = ledger_entry(&w, LedgerKind::Withdrawn, 2, 25, 0);
        assert_eq!(done.idempotency_key, "withdrawn:1000/42");
    }
}
