//! The gift model: what a deposited item is, who owns it, which states it may move through and
//! the ledger entry every move writes.
//!
//! Pure values only. This module never does IO, never imports grammers and never talks to a
//! store: `telegram` turns TL objects into these values, `detector` and `inventory` reason about
//! them, `store` persists them.

use std::fmt;

pub mod classify;
pub mod rules;

use serde::{Deserialize, Serialize};

/// A Telegram user id (players, the deposit account).
pub type UserId = i64;

/// The id of the service message that delivered a gift to an account.
pub type MsgId = i32;

/// Identity of one item held by a deposit account.
///
/// Telegram numbers the service messages of each account separately, so the `msg_id` alone is
/// not unique across deposit accounts. Every store write is keyed on this pair, which is what
/// makes replays harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ItemKey {
    /// The deposit account that holds the item.
    pub account_id: UserId,
    /// The service message that delivered it.
    pub msg_id: MsgId,
}

impl ItemKey {
    pub fn new(account_id: UserId, msg_id: MsgId) -> Self {
        Self { account_id, msg_id }
    }
}

impl fmt::Display for ItemKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account_id, self.msg_id)
    }
}

/// Who an item is credited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "user_id")]
pub enum Owner {
    /// The Telegram user who sent it.
    User(UserId),
    /// Sent anonymously (no `from_id`): waits for an operator to assign it; never credited to a
    /// guess.
    Unattributed,
}

impl Owner {
    /// The owner as the nullable column the stores keep.
    pub fn user_id(self) -> Option<UserId> {
        match self {
            Owner::User(id) => Some(id),
            Owner::Unattributed => None,
        }
    }

    pub fn from_user_id(id: Option<UserId>) -> Self {
        id.map_or(Owner::Unattributed, Owner::User)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::User(id) => write!(f, "{id}"),
            Owner::Unattributed => f.write_str("unattributed"),
        }
    }
}

/// What makes a collectible gift unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UniqueInfo {
    /// Telegram's id of the collectible; the same collectible keeps it across owners.
    pub collectible_id: i64,
    /// The collectible's public slug (`t.me/nft/<slug>`).
    pub slug: String,
    /// Its number within its collection.
    pub number: i32,
    /// What Telegram says it is worth, each figure in the unit Telegram gives it.
    #[serde(default)]
    pub value: CollectibleValue,
}

/// A collectible's worth as Telegram tells it, never converted from one unit to another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct CollectibleValue {
    /// `starGiftUnique.value_amount` / `value_currency`: an amount in the smallest units of an
    /// ISO 4217 currency (TDLib `upgradedGift.value`).
    pub fiat: Option<Money>,
    /// `starGiftUnique.value_usd_amount`: US cents.
    pub usd_cents: Option<i64>,
    /// What a player paid for it on the resale market when they bought it for the account
    /// (`messageActionStarGiftUnique.resale_amount`); known only to the path that saw that
    /// message.
    pub paid: Option<Price>,
}

impl CollectibleValue {
    pub fn is_empty(&self) -> bool {
        self.fiat.is_none() && self.usd_cents.is_none() && self.paid.is_none()
    }
}

/// An amount of an ISO 4217 currency, in its smallest units.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub amount: i64,
    /// Three upper-case letters.
    pub currency: String,
}

/// A price Telegram gives as a `StarsAmount`: `starsAmount` (Stars) or `starsTonAmount` (TON,
/// in nano units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Price {
    Stars(i64),
    TonNano(i64),
}

impl Price {
    /// The `paid_currency` column: `XTR` (Telegram's code for Stars) or `TON`.
    pub fn currency(self) -> &'static str {
        match self {
            Price::Stars(_) => "XTR",
            Price::TonNano(_) => "TON",
        }
    }

    pub fn amount(self) -> i64 {
        match self {
            Price::Stars(a) | Price::TonNano(a) => a,
        }
    }

    /// Reads the column pair back.
    pub fn from_parts(amount: Option<i64>, currency: Option<&str>) -> Option<Price> {
        match (amount?, currency?) {
            (a, "XTR") => Some(Price::Stars(a)),
            (a, "TON") => Some(Price::TonNano(a)),
            _ => None,
        }
    }
}

/// A catalogue row: one kind of gift, shared by every item of that kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GiftType {
    /// Telegram's star gift id.
    pub gift_id: i64,
    /// Human title when Telegram gives one (regular gifts often have none).
    pub title: Option<String>,
    /// Price in stars.
    pub stars: i64,
    /// Whether this kind is a collectible.
    pub unique: bool,
}

/// A Telegram user as the store's `users` table keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: UserId,
    pub username: Option<String>,
    pub first_name: Option<String>,
}

/// Where an item is in its life.
///
/// The terminal states (withdrawn, converted, refunded, upgraded, sold, burned, gone) are final: an item that
/// reappears (a collectible deposited again) is a new item with a new `msg_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In the deposit account, credited to its owner.
    Held,
    /// The owner asked for it back; a withdrawer has not claimed the request yet.
    WithdrawRequested,
    /// A withdrawer is transferring it out.
    Withdrawing,
    /// Transferred back out to its owner.
    Withdrawn,
    /// Converted to stars.
    Converted,
    /// Refunded by Telegram.
    Refunded,
    /// Upgraded into a unique gift; the new item has the msg id this carries.
    Upgraded { into: MsgId },
    /// Sold through an accepted purchase offer (Telegram's own outgoing `from_offer` message
    /// for it).
    Sold,
    /// Used up by crafting (burned, or its id reused by the crafted collectible).
    Burned,
    /// Left the account for a reason reconciliation could not tell.
    Gone,
}

impl Status {
    /// The status name the stores keep in their `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Held => "held",
            Status::WithdrawRequested => "withdraw_requested",
            Status::Withdrawing => "withdrawing",
            Status::Withdrawn => "withdrawn",
            Status::Converted => "converted",
            Status::Refunded => "refunded",
            Status::Upgraded { .. } => "upgraded",
            Status::Sold => "sold",
            Status::Burned => "burned",
            Status::Gone => "gone",
        }
    }

    /// Reads a status back from its column pair (`status`, `upgraded_into`).
    pub fn from_parts(name: &str, upgraded_into: Option<MsgId>) -> Option<Self> {
        Some(match (name, upgraded_into) {
            ("held", _) => Status::Held,
            ("withdraw_requested", _) => Status::WithdrawRequested,
            ("withdrawing", _) => Status::Withdrawing,
            ("withdrawn", _) => Status::Withdrawn,
            ("converted", _) => Status::Converted,
            ("refunded", _) => Status::Refunded,
            ("upgraded", Some(into)) => Status::Upgraded { into },
            ("sold", _) => Status::Sold,
            ("burned", _) => Status::Burned,
            ("gone", _) => Status::Gone,
            _ => return None,
        })
    }

    /// The msg id of the item this one was upgraded into, for the `upgraded_into` column.
    pub fn upgraded_into(self) -> Option<MsgId> {
        match self {
            Status::Upgraded { into } => Some(into),
            _ => None,
        }
    }

    /// Whether the deposit account still holds the item (it counts in the owner's inventory).
    pub fn is_held(self) -> bool {
        matches!(
            self,
            Status::Held | Status::WithdrawRequested | Status::Withdrawing
        )
    }

    /// Whether no further transition is possible.
    pub fn is_terminal(self) -> bool {
        !self.is_held()
    }

    /// Checks a move and returns the new status.
    ///
    /// Legal moves: a held item may be requested for withdrawal or leave the account (converted,
    /// refunded, upgraded, sold, burned, gone); a request may be claimed (withdrawing) or cancelled (held); a
    /// transfer in progress ends withdrawn, back to held when it failed, or back in the queue
    /// (withdraw requested) when Telegram said not yet or it was definitely not sent. An item under
    /// withdrawal can still be found converted, refunded, upgraded, sold, burned or gone,
    /// because Telegram is the truth. Terminal states never move, except that a gift the house
    /// kept after a resend (withdrawn, still in the account) can be refunded.
    pub fn transition(self, to: Status) -> Result<Status, IllegalTransition> {
        use Status::*;
        let legal = matches!(
            (self, to),
            (Held, WithdrawRequested)
                | (WithdrawRequested, Withdrawing | Held)
                | (Withdrawing, Withdrawn | Held | WithdrawRequested)
                | (
                    Held | WithdrawRequested | Withdrawing,
                    Converted | Refunded | Upgraded { .. } | Sold | Burned | Gone
                )
                // A resent regular gift stays in the account, withdrawn (kept by the house);
                // Telegram may still refund it.
                | (Withdrawn, Refunded)
        );
        if legal {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Upgraded { into } => write!(f, "upgraded into {into}"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// A status move the state machine forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal item status transition from {from} to {to}")]
pub struct IllegalTransition {
    pub from: Status,
    pub to: Status,
}

/// One item held (or once held) by a deposit account.
///
/// Kept small on purpose: the inventory holds one per gift ever deposited and the target is at
/// most 300 bytes per item, index included. Catalogue data (title) lives in [`GiftType`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub key: ItemKey,
    pub owner: Owner,
    /// Catalogue id of the gift kind.
    pub gift_id: i64,
    /// Star value at deposit time.
    pub stars: i64,
    /// Present for collectibles. Boxed: most items are regular gifts.
    pub unique: Option<Box<UniqueInfo>>,
    pub status: Status,
    /// Unix seconds of the delivering service message.
    pub received_at: i64,
    /// Stars the account would get by converting it, when Telegram offers that.
    pub convert_stars: Option<i64>,
    /// Stars a transfer costs; `None` means a free transfer.
    pub transfer_stars: Option<i64>,
    /// Unix seconds before which Telegram refuses a transfer.
    pub can_transfer_at: Option<i64>,
    /// For an upgraded collectible: the msg id of the regular item it came from.
    pub upgraded_from: Option<MsgId>,
}

impl Item {
    /// Applies a status move, returning the ledger entry it writes.
    pub fn apply(&mut self, to: Status, at: i64) -> Result<LedgerEntry, IllegalTransition> {
        let from = self.status;
        self.status = from.transition(to)?;
        Ok(LedgerEntry::for_transition(self, from, at))
    }

    /// The ledger entry that records Telegram naming the sender of an item first recorded
    /// without one. Once per item: an attributed item is never attributed again.
    pub fn attribution_entry(&self, owner: UserId, at: i64) -> LedgerEntry {
        LedgerEntry {
            idempotency_key: format!("attributed:{}", self.key),
            key: self.key,
            owner: Owner::User(owner),
            kind: LedgerKind::Attributed,
            stars: self.stars,
            at,
        }
    }

    /// The ledger entry that records this item's deposit.
    pub fn deposit_entry(&self) -> LedgerEntry {
        LedgerEntry {
            idempotency_key: format!("deposit:{}", self.key),
            key: self.key,
            owner: self.owner,
            kind: LedgerKind::Deposit,
            stars: self.stars,
            at: self.received_at,
        }
    }
}

/// Why a ledger entry was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    Deposit,
    WithdrawRequested,
    WithdrawCancelled,
    WithdrawStarted,
    /// The intent to call Telegram was recorded (an attempt at moving the gift or paying).
    WithdrawSending,
    /// The outcome of a call is not known; only Telegram can tell.
    WithdrawUnknown,
    /// Back in the queue: waiting (too early, no Stars), for an operator, or not sent after an
    /// unknown outcome.
    WithdrawDeferred,
    /// An operator approved (or retried) a waiting request.
    WithdrawApproved,
    WithdrawFailed,
    Withdrawn,
    Converted,
    Refunded,
    /// A regular gift the house kept after buying one for its player (a resend) was then
    /// refunded by Telegram: the house paid for the resend and lost the original. Operators
    /// are alerted.
    RefundedAfterResend,
    Upgraded,
    /// Sold through an accepted purchase offer.
    Sold,
    /// Used up by crafting.
    Burned,
    Gone,
    /// An operator credited an unattributed item to a user.
    Assigned,
    /// Telegram named the sender of an item first recorded without one (a later poll or
    /// reconciliation saw `from_id`, or the item is the upgrade of an attributed gift).
    Attributed,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Deposit => "deposit",
            LedgerKind::WithdrawRequested => "withdraw_requested",
            LedgerKind::WithdrawCancelled => "withdraw_cancelled",
            LedgerKind::WithdrawStarted => "withdraw_started",
            LedgerKind::WithdrawSending => "withdraw_sending",
            LedgerKind::WithdrawUnknown => "withdraw_unknown",
            LedgerKind::WithdrawDeferred => "withdraw_deferred",
            LedgerKind::WithdrawApproved => "withdraw_approved",
            LedgerKind::WithdrawFailed => "withdraw_failed",
            LedgerKind::Withdrawn => "withdrawn",
            LedgerKind::Converted => "converted",
            LedgerKind::Refunded => "refunded",
            LedgerKind::RefundedAfterResend => "refunded_after_resend",
            LedgerKind::Upgraded => "upgraded",
            LedgerKind::Sold => "sold",
            LedgerKind::Burned => "burned",
            LedgerKind::Gone => "gone",
            LedgerKind::Assigned => "assigned",
            LedgerKind::Attributed => "attributed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        use LedgerKind::*;
        [
            Deposit,
            WithdrawRequested,
            WithdrawCancelled,
            WithdrawStarted,
            WithdrawSending,
            WithdrawUnknown,
            WithdrawDeferred,
            WithdrawApproved,
            WithdrawFailed,
            Withdrawn,
            Converted,
            Refunded,
            RefundedAfterResend,
            Upgraded,
            Sold,
            Burned,
            Gone,
            Assigned,
            Attributed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One row of the append-only ledger (`transactions`).
///
/// The idempotency key is derived from the item and the move, so the same event detected twice
/// (by updates and by polling, or replayed after a crash) writes one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub idempotency_key: String,
    pub key: ItemKey,
    pub owner: Owner,
    pub kind: LedgerKind,
    /// Star value concerned (the item's value; stars received for a conversion).
    pub stars: i64,
    /// Unix seconds.
    pub at: i64,
}

impl LedgerEntry {
    fn for_transition(item: &Item, from: Status, at: i64) -> LedgerEntry {
        use Status::*;
        let kind = match (from, item.status) {
            (Withdrawing, WithdrawRequested) => LedgerKind::WithdrawDeferred,
            (_, WithdrawRequested) => LedgerKind::WithdrawRequested,
            (WithdrawRequested, Held) => LedgerKind::WithdrawCancelled,
            (_, Withdrawing) => LedgerKind::WithdrawStarted,
            (Withdrawing, Held) => LedgerKind::WithdrawFailed,
            (_, Withdrawn) => LedgerKind::Withdrawn,
            (_, Converted) => LedgerKind::Converted,
            (Withdrawn, Refunded) => LedgerKind::RefundedAfterResend,
            (_, Refunded) => LedgerKind::Refunded,
            (_, Upgraded { .. }) => LedgerKind::Upgraded,
            (_, Sold) => LedgerKind::Sold,
            (_, Burned) => LedgerKind::Burned,
            (_, Gone) => LedgerKind::Gone,
            // `Status::transition` admits no other move into `Held`.
            (_, Held) => LedgerKind::WithdrawCancelled,
        };
        let stars = match kind {
            LedgerKind::Converted => item.convert_stars.unwrap_or(item.stars),
            _ => item.stars,
        };
        // Withdrawal moves can repeat for one item (requested, failed, requested again), so
        // their key carries the time; terminal moves happen once per item.
        let idempotency_key = if item.status.is_terminal() {
            format!("{}:{}", kind.as_str(), item.key)
        } else {
            format!("{}:{}:{at}", kind.as_str(), item.key)
        };
        LedgerEntry {
            idempotency_key,
            key: item.key,
            owner: item.owner,
            kind,
            stars,
            at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(status: Status) -> Item {
        Item {
            key: ItemKey::new(1, 10),
            owner: Owner::User(42),
            gift_id: 5,
            stars: 15,
            unique: None,
            status,
            received_at: 1_700_000_000,
            convert_stars: Some(13),
            transfer_stars: None,
            can_transfer_at: None,
            upgraded_from: None,
        }
    }

    fn check(from: Status, to: Status, expected: Option<LedgerKind>) {
        let mut it = item(from);
        let got = it.apply(to, 1).ok().map(|e| e.kind);
        assert_eq!(got, expected, "{from} -> {to}");
        if expected.is_none() {
            assert_eq!(it.status, from, "a refused move leaves the status alone");
        }
    }

    #[test]
    fn transitions() {
        use LedgerKind as L;
        use Status::*;
        let up = Upgraded { into: 11 };
        check(Held, WithdrawRequested, Some(L::WithdrawRequested));
        check(Held, Withdrawing, None);
        check(Held, Withdrawn, None);
        check(Held, Held, None);
        check(Held, Converted, Some(L::Converted));
        check(Held, Refunded, Some(L::Refunded));
        check(Held, up, Some(L::Upgraded));
        check(Held, Gone, Some(L::Gone));
        check(Held, Sold, Some(L::Sold));
        check(Held, Burned, Some(L::Burned));
        check(WithdrawRequested, Sold, Some(L::Sold));
        check(Withdrawing, Burned, Some(L::Burned));
        check(WithdrawRequested, Withdrawing, Some(L::WithdrawStarted));
        check(WithdrawRequested, Held, Some(L::WithdrawCancelled));
        check(WithdrawRequested, Withdrawn, None);
        check(WithdrawRequested, Gone, Some(L::Gone));
        check(Withdrawing, Withdrawn, Some(L::Withdrawn));
        check(Withdrawing, Held, Some(L::WithdrawFailed));
        check(Withdrawing, WithdrawRequested, Some(L::WithdrawDeferred));
        check(Withdrawing, Refunded, Some(L::Refunded));
        check(Withdrawn, Refunded, Some(L::RefundedAfterResend));
        for terminal in [Withdrawn, Converted, Refunded, up, Sold, Burned, Gone] {
            for to in [
                Held,
                WithdrawRequested,
                Withdrawing,
                Withdrawn,
                Converted,
                Sold,
                Burned,
                Gone,
            ] {
                check(terminal, to, None);
            }
        }
    }

    #[test]
    fn status_round_trips_through_columns() {
        use Status::*;
        for s in [
            Held,
            WithdrawRequested,
            Withdrawing,
            Withdrawn,
            Converted,
            Refunded,
            Upgraded { into: 77 },
            Sold,
            Burned,
            Gone,
        ] {
            assert_eq!(Status::from_parts(s.as_str(), s.upgraded_into()), Some(s));
        }
        assert_eq!(Status::from_parts("upgraded", None), None);
        assert_eq!(Status::from_parts("lost", None), None);
    }

    #[test]
    fn ledger_keys_are_stable_for_terminal_moves() {
        let mut a = item(Status::Held);
        let mut b = item(Status::Held);
        let ea = a.apply(Status::Converted, 100).unwrap();
        let eb = b.apply(Status::Converted, 200).unwrap();
        assert_eq!(ea.idempotency_key, eb.idempotency_key);
        assert_eq!(ea.idempotency_key, "converted:1/10");
        assert_eq!(ea.stars, 13, "conversion records the stars received");
        assert_eq!(a.deposit_entry().idempotency_key, "deposit:1/10");
    }

    #[test]
    fn ledger_kind_names_round_trip() {
        for k in [
            LedgerKind::Deposit,
            LedgerKind::WithdrawRequested,
            LedgerKind::WithdrawCancelled,
            LedgerKind::WithdrawStarted,
            LedgerKind::WithdrawSending,
            LedgerKind::WithdrawUnknown,
            LedgerKind::WithdrawDeferred,
            LedgerKind::WithdrawApproved,
            LedgerKind::WithdrawFailed,
            LedgerKind::Withdrawn,
            LedgerKind::Converted,
            LedgerKind::Refunded,
            LedgerKind::Upgraded,
            LedgerKind::Sold,
            LedgerKind::Burned,
            LedgerKind::Gone,
            LedgerKind::Assigned,
            LedgerKind::Attributed,
        ] {
            assert_eq!(LedgerKind::parse(k.as_str()), Some(k));
        }
    }
}
