//! Which gift-bearing message or saved gift is a deposit.
//!
//! Since 2025 the same service messages that deliver a gift also announce prepaid upgrades,
//! upgrades made by the other side, auction wins, resale purchases, blockchain-assigned
//! collectibles, offers and chat themes. [`classify`] decides, for every gift-bearing thing
//! Telegram shows (a service message from an update or `messages.getMessages`, an entry of
//! `payments.getSavedStarGifts`), exactly one of: a deposit, a fate of an item the account may
//! hold, a hold for an operator, or not a deposit. The update path, the poll and the
//! reconciliation all call it, so no path credits what another would not.
//!
//! Pure: plain values in, a [`Decision`] out; `telegram::convert` reads the TL objects into
//! [`Facts`]. It never guesses an owner: when in doubt it holds. The table of cases with their
//! sources is `docs/deposits.md`.

use std::fmt;

use super::{MsgId, UserId};

/// Telegram's service notifications account: it delivers gifts, it never sends them.
pub const SERVICE_USER_ID: UserId = 777_000;

/// A peer as far as crediting cares: a user can own items, anything else cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    User(UserId),
    /// A channel or basic group.
    Chat(i64),
}

/// What a gift-bearing thing says, read from its TL object by `telegram::convert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Facts {
    /// `messageActionStarGift` (a regular gift).
    Gift(GiftMessage),
    /// `messageActionStarGiftUnique` (a collectible).
    Unique(UniqueMessage),
    /// `messageActionStarGiftPurchaseOffer` / `...Declined`: carries the account's own
    /// collectible (or the one it asked for), never a delivery.
    Offer,
    /// `messageActionSetChatTheme` with a `chatThemeUniqueGift`: a collectible shown as a theme.
    ChatTheme,
    /// `savedStarGift`, one entry of `payments.getSavedStarGifts`.
    Saved(SavedGift),
    /// A TL object giftd could not read (a constructor or shape it does not know).
    Unreadable,
}

/// Where a service message sits, common to both gift actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    pub msg_id: MsgId,
    /// The deposit account sent it.
    pub out: bool,
    /// The chat it is in (for a private chat: the other user).
    pub chat: Peer,
    /// The message's own `from_id` (absent on incoming private messages since layer 119).
    pub from: Option<Peer>,
}

/// The flags of `messageActionStarGift` that decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GiftFlags {
    pub converted: bool,
    pub upgraded: bool,
    pub upgrade_msg_id: Option<MsgId>,
    pub refunded: bool,
    pub prepaid_upgrade: bool,
    pub upgrade_separate: bool,
    pub auction_acquired: bool,
    /// The original gift this message is about (a prepaid upgrade notice).
    pub gift_msg_id: Option<MsgId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiftMessage {
    pub envelope: Envelope,
    /// The action's `from_id`.
    pub from_id: Option<Peer>,
    /// The action's `peer`: the owner when it is not the receiver of the chat.
    pub peer: Option<Peer>,
    /// The action's `to_id`: the explicit receiver.
    pub to_id: Option<Peer>,
    pub flags: GiftFlags,
    /// The action carried a collectible where a regular gift belongs.
    pub gift_is_unique: bool,
}

/// The flags of `messageActionStarGiftUnique` that decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UniqueFlags {
    pub upgrade: bool,
    pub transferred: bool,
    pub refunded: bool,
    pub prepaid_upgrade: bool,
    pub assigned: bool,
    pub from_offer: bool,
    pub craft: bool,
    /// `resale_amount` is set: bought on the resale market.
    pub resale: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniqueMessage {
    pub envelope: Envelope,
    pub from_id: Option<Peer>,
    pub peer: Option<Peer>,
    pub flags: UniqueFlags,
    /// The collectible's id, when the action carries a collectible (a refunded one carries the
    /// regular gift instead).
    pub collectible_id: Option<i64>,
    /// `starGiftUnique.burned`.
    pub burned: bool,
    /// `starGiftUnique.host_id` is set: hosted, not owned.
    pub hosted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedGift {
    pub msg_id: Option<MsgId>,
    pub from_id: Option<Peer>,
    pub refunded: bool,
    /// `starGiftUnique.host_id` is set: hosted, not owned (TDLib `exclude_hosted`).
    pub hosted: bool,
    /// `starGiftUnique.burned`: used up by crafting.
    pub burned: bool,
    /// `starGiftUnique.crafted`: made by crafting; it reuses an ingredient's id and number.
    pub crafted: bool,
}

/// Which item a fate is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemRef {
    /// The item delivered by this message.
    Message(MsgId),
    /// The collectible with this id (an outgoing message names no delivery).
    Collectible(i64),
}

/// What happened to an item the account may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FateKind {
    /// Someone paid its upgrade: it becomes upgradable for free and stays held; the
    /// collectible it becomes keeps its depositor.
    PrepaidUpgrade,
    Upgraded {
        into: MsgId,
    },
    Converted,
    Refunded,
    TransferredOut,
    /// Sold through an accepted purchase offer.
    Sold,
    /// Used up by crafting.
    Burned,
}

impl FateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FateKind::PrepaidUpgrade => "prepaid_upgrade",
            FateKind::Upgraded { .. } => "upgraded",
            FateKind::Converted => "converted",
            FateKind::Refunded => "refunded",
            FateKind::TransferredOut => "transferred_out",
            FateKind::Sold => "sold",
            FateKind::Burned => "burned",
        }
    }
}

/// Why an item the account holds is recorded without an owner, for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldReason {
    /// Telegram does not name a sender (the service account delivered it).
    NoSender,
    /// The sender is a channel or group, which cannot own items.
    SenderNotAUser,
    /// A crafted collectible: it reuses an ingredient's id and number, and its ingredients may
    /// have had different owners.
    Crafted,
    /// `upgrade_separate` on a new regular gift without `gift_msg_id`: sources disagree on what
    /// it means there.
    UpgradeSeparate,
    /// A collectible the account bought through its own purchase offer: the seller was paid,
    /// nobody deposited it.
    BoughtThroughOffer,
}

impl HoldReason {
    pub const ALL: [HoldReason; 5] = [
        HoldReason::NoSender,
        HoldReason::SenderNotAUser,
        HoldReason::Crafted,
        HoldReason::UpgradeSeparate,
        HoldReason::BoughtThroughOffer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::NoSender => "no_sender",
            HoldReason::SenderNotAUser => "sender_not_a_user",
            HoldReason::Crafted => "crafted",
            HoldReason::UpgradeSeparate => "upgrade_separate",
            HoldReason::BoughtThroughOffer => "bought_through_offer",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a gift-bearing thing is not a deposit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IgnoreReason {
    /// The deposit account sent it (a withdrawal, a gift it bought for someone).
    SentByAccount,
    /// The other side upgraded a gift the account sent them.
    UpgradedByOtherSide,
    /// A collectible assigned from the blockchain: shown, not owned.
    Assigned,
    /// Hosted by the account, owned by someone else.
    Hosted,
    /// `to_id` or `peer` names someone other than the account.
    ForSomeoneElse,
    /// The buyer's notice of an auction win.
    AuctionAcquired,
    /// A purchase offer or its decline: carries a gift, delivers none.
    Offer,
    /// A chat theme set to a collectible.
    ChatTheme,
    /// A saved gift without `msg_id` (saved by a channel): it cannot be identified.
    NoMessageId,
    /// Burned (used up by crafting) and not known to be held.
    Burned,
    /// A constructor or shape giftd could not read.
    Unreadable,
}

impl IgnoreReason {
    pub const ALL: [IgnoreReason; 11] = [
        IgnoreReason::SentByAccount,
        IgnoreReason::UpgradedByOtherSide,
        IgnoreReason::Assigned,
        IgnoreReason::Hosted,
        IgnoreReason::ForSomeoneElse,
        IgnoreReason::AuctionAcquired,
        IgnoreReason::Offer,
        IgnoreReason::ChatTheme,
        IgnoreReason::NoMessageId,
        IgnoreReason::Burned,
        IgnoreReason::Unreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::SentByAccount => "sent_by_account",
            IgnoreReason::UpgradedByOtherSide => "upgraded_by_other_side",
            IgnoreReason::Assigned => "assigned",
            IgnoreReason::Hosted => "hosted",
            IgnoreReason::ForSomeoneElse => "for_someone_else",
            IgnoreReason::AuctionAcquired => "auction_acquired",
            IgnoreReason::Offer => "offer",
            IgnoreReason::ChatTheme => "chat_theme",
            IgnoreReason::NoMessageId => "no_message_id",
            IgnoreReason::Burned => "burned",
            IgnoreReason::Unreadable => "unreadable",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The one decision for a gift-bearing thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A new item in the account, credited to this user.
    Deposit { from: UserId },
    /// A new item in the account whose owner giftd does not know: recorded unattributed for an
    /// operator (a later observation that names a sender attributes it).
    Hold { reason: HoldReason },
    /// News about an item the account may hold; never a credit.
    Fate { item: ItemRef, fate: FateKind },
    /// Not a deposit.
    Ignore { reason: IgnoreReason },
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Deposit { from } => write!(f, "deposit from {from}"),
            Decision::Hold { reason } => write!(f, "hold ({})", reason.as_str()),
            Decision::Fate { item, fate } => {
                let fate = fate.as_str();
                match item {
                    ItemRef::Message(m) => write!(f, "{fate} of msg {m}"),
                    ItemRef::Collectible(c) => write!(f, "{fate} of collectible {c}"),
                }
            }
            Decision::Ignore { reason } => write!(f, "not a deposit ({})", reason.as_str()),
        }
    }
}

/// Decides what `facts` means for the deposit account `me`.
pub fn classify(me: UserId, facts: &Facts) -> Decision {
    match facts {
        Facts::Gift(g) => gift_message(me, g),
        Facts::Unique(u) => unique_message(me, u),
        Facts::Offer => ignore(IgnoreReason::Offer),
        Facts::ChatTheme => ignore(IgnoreReason::ChatTheme),
        Facts::Saved(s) => saved(me, s),
        Facts::Unreadable => ignore(IgnoreReason::Unreadable),
    }
}

fn ignore(reason: IgnoreReason) -> Decision {
    Decision::Ignore { reason }
}

fn hold(reason: HoldReason) -> Decision {
    Decision::Hold { reason }
}

/// `peer` names someone other than the account.
fn other(me: UserId, peer: Option<Peer>) -> bool {
    peer.is_some_and(|p| p != Peer::User(me))
}

/// The sender of an incoming delivery, in the order Telegram names it: the action's `from_id`
/// (gifts to channels), the message's `from_id`, the private chat's peer. The service account
/// is never a sender; a channel cannot own items.
fn sender(me: UserId, action_from: Option<Peer>, envelope: &Envelope) -> Decision {
    let named = action_from.or(envelope.from).unwrap_or(envelope.chat);
    match named {
        Peer::User(SERVICE_USER_ID) => hold(HoldReason::NoSender),
        Peer::User(id) if id == me => ignore(IgnoreReason::SentByAccount),
        Peer::User(from) => Decision::Deposit { from },
        Peer::Chat(_) => hold(HoldReason::SenderNotAUser),
    }
}

/// `messageActionStarGift`. TDLib (MessageContent.cpp, messageGift): the receiver is `to_id`,
/// else `peer`, else the account for an incoming message; an `auction_acquired` message is the
/// buyer's notice and no received gift; `gift_msg_id` names the gift a prepaid upgrade is for.
fn gift_message(me: UserId, g: &GiftMessage) -> Decision {
    let f = &g.flags;
    let this = ItemRef::Message(g.envelope.msg_id);
    if g.gift_is_unique {
        return ignore(IgnoreReason::Unreadable);
    }
    if f.auction_acquired {
        return ignore(IgnoreReason::AuctionAcquired);
    }
    if g.envelope.out {
        return ignore(IgnoreReason::SentByAccount);
    }
    if let Some(original) = f.gift_msg_id {
        // The prepaid-upgrade notice: about the held original, paid by whoever sent it.
        return Decision::Fate {
            item: ItemRef::Message(original),
            fate: FateKind::PrepaidUpgrade,
        };
    }
    if other(me, g.to_id) || other(me, g.peer) {
        return ignore(IgnoreReason::ForSomeoneElse);
    }
    // The delivering message as it reads after the gift's fate (getMessages, edits).
    if let (true, Some(into)) = (f.upgraded, f.upgrade_msg_id) {
        return Decision::Fate {
            item: this,
            fate: FateKind::Upgraded { into },
        };
    }
    if f.converted {
        return Decision::Fate {
            item: this,
            fate: FateKind::Converted,
        };
    }
    if f.refunded {
        return Decision::Fate {
            item: this,
            fate: FateKind::Refunded,
        };
    }
    match sender(me, g.from_id, &g.envelope) {
        Decision::Deposit { .. } if f.upgrade_separate => hold(HoldReason::UpgradeSeparate),
        d => d,
    }
}

/// `messageActionStarGiftUnique`. TDLib (MessageContent.cpp, messageUpgradedGift): the
/// receiver is `peer`, else the chat when `upgrade != out`, else the account; so an incoming
/// `upgrade` is the other side upgrading a gift the account sent, and an outgoing `upgrade` is
/// the account upgrading a gift it holds (a new item that keeps the gift's sender).
fn unique_message(me: UserId, u: &UniqueMessage) -> Decision {
    let f = &u.flags;
    let this = ItemRef::Message(u.envelope.msg_id);
    if f.refunded {
        return Decision::Fate {
            item: this,
            fate: FateKind::Refunded,
        };
    }
    let Some(collectible) = u.collectible_id else {
        return ignore(IgnoreReason::Unreadable);
    };
    if other(me, u.peer) {
        return ignore(IgnoreReason::ForSomeoneElse);
    }
    if u.burned {
        return Decision::Fate {
            item: this,
            fate: FateKind::Burned,
        };
    }
    if f.assigned {
        return ignore(IgnoreReason::Assigned);
    }
    if u.hosted {
        return ignore(IgnoreReason::Hosted);
    }
    if f.craft {
        return hold(HoldReason::Crafted);
    }
    if u.envelope.out {
        return if f.upgrade {
            // The account upgraded a gift it holds; the action names the gift's sender.
            match u.from_id {
                Some(Peer::User(from)) if from != SERVICE_USER_ID && from != me => {
                    Decision::Deposit { from }
                }
                Some(Peer::Chat(_)) => hold(HoldReason::SenderNotAUser),
                _ => hold(HoldReason::NoSender),
            }
        } else if f.from_offer {
            Decision::Fate {
                item: ItemRef::Collectible(collectible),
                fate: FateKind::Sold,
            }
        } else if f.resale {
            // The account bought a collectible on the market for someone else.
            ignore(IgnoreReason::SentByAccount)
        } else {
            Decision::Fate {
                item: ItemRef::Collectible(collectible),
                fate: FateKind::TransferredOut,
            }
        };
    }
    if f.upgrade {
        return ignore(IgnoreReason::UpgradedByOtherSide);
    }
    if f.from_offer {
        return hold(HoldReason::BoughtThroughOffer);
    }
    // A transfer, or a resale purchase made for the account: credited to the sender, who is
    // the buyer.
    sender(me, u.from_id, &u.envelope)
}

/// `savedStarGift`: what the account holds. Hosted entries are not owned (TDLib
/// `exclude_hosted`); burned ones are used up.
fn saved(me: UserId, s: &SavedGift) -> Decision {
    let Some(msg_id) = s.msg_id else {
        return ignore(IgnoreReason::NoMessageId);
    };
    if s.hosted {
        return ignore(IgnoreReason::Hosted);
    }
    if s.burned {
        return Decision::Fate {
            item: ItemRef::Message(msg_id),
            fate: FateKind::Burned,
        };
    }
    if s.refunded {
        return Decision::Fate {
            item: ItemRef::Message(msg_id),
            fate: FateKind::Refunded,
        };
    }
    if s.crafted {
        // The list names no depositor for a crafted collectible (its ingredients may have had
        // several); a transfer message seen by the update path still credits a player who
        // deposits one later.
        return hold(HoldReason::Crafted);
    }
    // "the gift sender in from_id and the message are set only for the receiver"
    match s.from_id {
        None | Some(Peer::User(SERVICE_USER_ID)) => hold(HoldReason::NoSender),
        Some(Peer::User(id)) if id == me => ignore(IgnoreReason::SentByAccount),
        Some(Peer::User(from)) => Decision::Deposit { from },
        Some(Peer::Chat(_)) => hold(HoldReason::SenderNotAUser),
    }
}

#[cfg(test)]
mod tests;
