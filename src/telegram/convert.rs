//! Turning TL objects into domain values. Pure: every function here takes TL values and returns
//! `detector`/`gift` values, so the mapping is tested without a connection.

use grammers_tl_types as tl;

use crate::detector::{Fate, ObservedGift};
pub use crate::gift::classify::SERVICE_USER_ID;
use crate::gift::classify::{
    Decision, Envelope, Facts, FateKind, GiftFlags, GiftMessage, ItemRef, Peer, SavedGift,
    UniqueFlags, UniqueMessage, classify,
};
use crate::gift::rules::GiftRules;
use crate::gift::{CollectibleValue, GiftType, Money, MsgId, Price, UniqueInfo, UserId, UserInfo};

/// The user id behind a peer, when the peer is a user.
pub fn peer_user(peer: &tl::enums::Peer) -> Option<UserId> {
    match peer {
        tl::enums::Peer::User(u) => Some(u.user_id),
        _ => None,
    }
}

/// The catalogue row and, for collectibles, what makes the item unique.
pub fn gift_type(gift: &tl::enums::StarGift) -> (GiftType, Option<UniqueInfo>) {
    match gift {
        tl::enums::StarGift::Gift(g) => (
            GiftType {
                gift_id: g.id,
                title: g.title.clone(),
                stars: g.stars,
                unique: false,
            },
            None,
        ),
        tl::enums::StarGift::Unique(u) => (
            GiftType {
                gift_id: u.gift_id,
                title: Some(u.title.clone()),
                // A collectible has no list price in Stars; its worth is kept in the unit
                // Telegram gives it (`UniqueInfo::value`), never converted.
                stars: 0,
                unique: true,
            },
            Some(UniqueInfo {
                collectible_id: u.id,
                slug: u.slug.clone(),
                number: u.num,
                value: CollectibleValue {
                    fiat: match (u.value_amount, &u.value_currency) {
                        (Some(amount), Some(currency)) => Some(Money {
                            amount,
                            currency: currency.clone(),
                        }),
                        _ => None,
                    },
                    usd_cents: u.value_usd_amount,
                    paid: None,
                },
            }),
        ),
    }
}

/// A `StarsAmount` as what it is: whole Stars (`starsAmount`; the `nanos` fraction is not a
/// price Telegram charges in) or TON in nano units (`starsTonAmount`).
pub fn price(amount: &tl::enums::StarsAmount) -> Price {
    match amount {
        tl::enums::StarsAmount::Amount(a) => Price::Stars(a.amount),
        tl::enums::StarsAmount::StarsTonAmount(t) => Price::TonNano(t.amount),
    }
}

/// The purchase rules of a regular catalogue gift as the account sees them; `None` for a
/// collectible.
pub fn gift_rules(gift: &tl::enums::StarGift) -> Option<GiftRules> {
    let tl::enums::StarGift::Gift(g) = gift else {
        return None;
    };
    Some(GiftRules {
        sold_out: g.sold_out,
        auction: g.auction,
        require_premium: g.require_premium,
        per_user_remains: g.per_user_remains.filter(|_| g.limited_per_user),
        locked_until: g.locked_until_date.map(i64::from),
    })
}

/// What Telegram shows of a gift, decided: the [`Decision`] and, when a detector must see it,
/// the observation to hand it (a deposit credited to the decided sender, a held item with no
/// owner, a refund of the delivering message). `gift` is `None` for everything else: fates are
/// applied by the reconciliation, which reads them from the delivering message ([`fate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub decision: Decision,
    pub gift: Option<ObservedGift>,
}

impl Seen {
    fn new(decision: Decision, msg_id: MsgId, base: impl FnOnce() -> ObservedGift) -> Self {
        let gift = match decision {
            Decision::Deposit { from } => Some(ObservedGift {
                from: Some(from),
                ..base()
            }),
            Decision::Hold { .. } => Some(ObservedGift {
                from: None,
                ..base()
            }),
            // A refund read where the gift was delivered: the detector ends the held item (and
            // never credits a gift Telegram already took back).
            Decision::Fate {
                item: ItemRef::Message(m),
                fate: FateKind::Refunded,
            } if m == msg_id => Some(ObservedGift {
                from: None,
                refunded: true,
                ..base()
            }),
            Decision::Fate { .. } | Decision::Ignore { .. } => None,
        };
        Self { decision, gift }
    }
}

fn peer(peer: &tl::enums::Peer) -> Peer {
    match peer {
        tl::enums::Peer::User(u) => Peer::User(u.user_id),
        tl::enums::Peer::Chat(c) => Peer::Chat(c.chat_id),
        tl::enums::Peer::Channel(c) => Peer::Chat(c.channel_id),
    }
}

fn opt_peer(p: &Option<tl::enums::Peer>) -> Option<Peer> {
    p.as_ref().map(peer)
}

/// The facts of one `payments.getSavedStarGifts` entry.
pub fn saved_facts(saved: &tl::enums::SavedStarGift) -> Facts {
    let tl::enums::SavedStarGift::Gift(s) = saved;
    let (hosted, burned, crafted) = match &s.gift {
        tl::enums::StarGift::Unique(u) => (u.host_id.is_some(), u.burned, u.crafted),
        tl::enums::StarGift::Gift(_) => (false, false, false),
    };
    Facts::Saved(SavedGift {
        msg_id: s.msg_id,
        from_id: opt_peer(&s.from_id),
        refunded: s.refunded,
        hosted,
        burned,
        crafted,
    })
}

/// One entry of `payments.getSavedStarGifts`, decided for the account `me`.
pub fn saved_gift(me: UserId, saved: &tl::enums::SavedStarGift) -> Seen {
    let tl::enums::SavedStarGift::Gift(s) = saved;
    let decision = classify(me, &saved_facts(saved));
    let msg_id = s.msg_id.unwrap_or_default();
    Seen::new(decision, msg_id, || {
        let (gift, unique) = gift_type(&s.gift);
        ObservedGift {
            msg_id,
            from: None,
            date: i64::from(s.date),
            gift,
            unique,
            convert_stars: s.convert_stars,
            transfer_stars: s.transfer_stars,
            can_transfer_at: s.can_transfer_at.map(i64::from),
            refunded: s.refunded,
            pinned: s.pinned_to_top,
            upgraded_from: None,
            crafted: matches!(&s.gift, tl::enums::StarGift::Unique(u) if u.crafted),
        }
    })
}

/// Users named in an answer, for the store's `users` table.
pub fn users(users: &[tl::enums::User]) -> Vec<UserInfo> {
    users
        .iter()
        .filter_map(|u| match u {
            tl::enums::User::User(u) => Some(UserInfo {
                id: u.id,
                username: u.username.clone(),
                first_name: u.first_name.clone(),
            }),
            tl::enums::User::Empty(_) => None,
        })
        .collect()
}

/// The facts of a service message that carries a gift; `None` for a message that carries none.
///
/// The chat of a private message is the other user: Telegram puts no `from_id` on incoming
/// private messages (since layer 119), so the sender of a gift can only be that peer, which is
/// what grammers-client's `Message::sender_id` and Telethon's `Message.sender_id` read. A gift
/// sent with "hide my name" still sits in the chat with its sender: the name is hidden from
/// visitors of the receiver's profile, not from the receiver.
pub fn message_facts(message: &tl::enums::Message) -> Option<Facts> {
    let tl::enums::Message::Service(m) = message else {
        return None;
    };
    let envelope = Envelope {
        msg_id: m.id,
        out: m.out,
        chat: peer(&m.peer_id),
        from: opt_peer(&m.from_id),
    };
    Some(match &m.action {
        tl::enums::MessageAction::StarGift(a) => Facts::Gift(GiftMessage {
            envelope,
            from_id: opt_peer(&a.from_id),
            peer: opt_peer(&a.peer),
            to_id: opt_peer(&a.to_id),
            flags: GiftFlags {
                converted: a.converted,
                upgraded: a.upgraded,
                upgrade_msg_id: a.upgrade_msg_id,
                refunded: a.refunded,
                prepaid_upgrade: a.prepaid_upgrade,
                upgrade_separate: a.upgrade_separate,
                auction_acquired: a.auction_acquired,
                gift_msg_id: a.gift_msg_id,
            },
            gift_is_unique: matches!(a.gift, tl::enums::StarGift::Unique(_)),
        }),
        tl::enums::MessageAction::StarGiftUnique(a) => {
            let (collectible_id, burned, hosted) = match &a.gift {
                tl::enums::StarGift::Unique(u) => (Some(u.id), u.burned, u.host_id.is_some()),
                tl::enums::StarGift::Gift(_) => (None, false, false),
            };
            Facts::Unique(UniqueMessage {
                envelope,
                from_id: opt_peer(&a.from_id),
                peer: opt_peer(&a.peer),
                flags: UniqueFlags {
                    upgrade: a.upgrade,
                    transferred: a.transferred,
                    refunded: a.refunded,
                    prepaid_upgrade: a.prepaid_upgrade,
                    assigned: a.assigned,
                    from_offer: a.from_offer,
                    craft: a.craft,
                    resale: a.resale_amount.is_some(),
                },
                collectible_id,
                burned,
                hosted,
            })
        }
        tl::enums::MessageAction::StarGiftPurchaseOffer(_)
        | tl::enums::MessageAction::StarGiftPurchaseOfferDeclined(_) => Facts::Offer,
        tl::enums::MessageAction::SetChatTheme(t) => match t.theme {
            tl::enums::ChatTheme::UniqueGift(_) => Facts::ChatTheme,
            _ => return None,
        },
        _ => return None,
    })
}

/// A service message from an update or `messages.getMessages`, decided for the account `me`;
/// `None` when it carries no gift. See [`crate::gift::classify`] for the rules.
pub fn gift_message(me: UserId, message: &tl::enums::Message) -> Option<Seen> {
    let facts = message_facts(message)?;
    let decision = classify(me, &facts);
    let tl::enums::Message::Service(m) = message else {
        return None;
    };
    let date = i64::from(m.date);
    let base = |gift_tl: &tl::enums::StarGift| {
        let (gift, unique) = gift_type(gift_tl);
        ObservedGift {
            msg_id: m.id,
            from: None,
            date,
            gift,
            unique,
            convert_stars: None,
            transfer_stars: None,
            can_transfer_at: None,
            refunded: false,
            pinned: false,
            upgraded_from: None,
            crafted: matches!(gift_tl, tl::enums::StarGift::Unique(u) if u.crafted),
        }
    };
    Some(match &m.action {
        tl::enums::MessageAction::StarGift(a) => Seen::new(decision, m.id, || ObservedGift {
            convert_stars: a.convert_stars,
            refunded: a.refunded,
            ..base(&a.gift)
        }),
        tl::enums::MessageAction::StarGiftUnique(a) => Seen::new(decision, m.id, || {
            let mut gift = ObservedGift {
                transfer_stars: a.transfer_stars,
                can_transfer_at: a.can_transfer_at.map(i64::from),
                refunded: a.refunded,
                ..base(&a.gift)
            };
            gift.crafted |= a.craft;
            if let Some(u) = gift.unique.as_mut() {
                u.value.paid = a.resale_amount.as_ref().map(price);
            }
            gift
        }),
        // offers and themes: classify never makes them a deposit
        _ => Seen {
            decision,
            gift: None,
        },
    })
}

/// What the service message that delivered a held gift says happened to it, read by the
/// reconciliation for a gift that left the saved list. The same [`classify`] as every path:
/// a fate it decides for this message is the fate; anything else means nothing tells (`Gone`).
pub fn fate(me: UserId, message: &tl::enums::Message) -> Option<(MsgId, Fate)> {
    let tl::enums::Message::Service(m) = message else {
        return None;
    };
    let fate = match message_facts(message).map(|f| classify(me, &f)) {
        Some(Decision::Fate {
            item: ItemRef::Message(id),
            fate,
        }) if id == m.id => match fate {
            FateKind::Upgraded { into } => Fate::Upgraded { into },
            FateKind::Converted => Fate::Converted,
            FateKind::Refunded => Fate::Refunded,
            FateKind::Burned => Fate::Burned,
            FateKind::Sold => Fate::Sold,
            // A transfer out names the collectible, not this message; a prepaid upgrade keeps
            // the gift held: neither explains a departure.
            FateKind::PrepaidUpgrade | FateKind::TransferredOut => Fate::Gone,
        },
        _ => Fate::Gone,
    };
    Some((m.id, fate))
}

/// A collectible as `payments.getUniqueStarGift` shows it now, for a held one that left the
/// saved list while its delivering message tells nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectibleNow {
    /// Used up by crafting (`starGiftUnique.burned`).
    Burned,
    /// Another user owns it; their chat with the account may hold the sale. `access_hash` is
    /// the one the answer gives (needed to read that chat).
    OwnedBy { user: UserId, access_hash: i64 },
    /// Nothing that explains the departure.
    Unknown,
}

/// Reads the answer of `payments.getUniqueStarGift` for the account `me`.
pub fn collectible_now(me: UserId, answer: &tl::enums::payments::UniqueStarGift) -> CollectibleNow {
    let tl::enums::payments::UniqueStarGift::Gift(answer) = answer;
    let tl::enums::StarGift::Unique(gift) = &answer.gift else {
        return CollectibleNow::Unknown;
    };
    if gift.burned {
        return CollectibleNow::Burned;
    }
    let Some(user) = gift
        .owner_id
        .as_ref()
        .and_then(peer_user)
        .filter(|&u| u != me)
    else {
        return CollectibleNow::Unknown;
    };
    let access_hash = answer.users.iter().find_map(|u| match u {
        tl::enums::User::User(u) if u.id == user => u.access_hash,
        _ => None,
    });
    match access_hash {
        Some(access_hash) => CollectibleNow::OwnedBy { user, access_hash },
        None => CollectibleNow::Unknown,
    }
}

/// Whether `message` is the account's own record of selling collectible `collectible_id`
/// through an accepted purchase offer (what [`classify`] decides for its outgoing `from_offer`
/// message).
pub fn is_sale_of(me: UserId, message: &tl::enums::Message, collectible_id: i64) -> bool {
    matches!(
        message_facts(message).map(|f| classify(me, &f)),
        Some(Decision::Fate {
            item: ItemRef::Collectible(c),
            fate: FateKind::Sold,
        }) if c == collectible_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn star_gift() -> tl::enums::StarGift {
        tl::enums::StarGift::Gift(tl::types::StarGift {
            limited: false,
            sold_out: false,
            birthday: false,
            require_premium: false,
            limited_per_user: false,
            peer_color_available: false,
            auction: false,
            id: 5,
            sticker: tl::enums::Document::Empty(tl::types::DocumentEmpty { id: 0 }),
            stars: 15,
            availability_remains: None,
            availability_total: None,
            availability_resale: None,
            convert_stars: 13,
            first_sale_date: None,
            last_sale_date: None,
            upgrade_stars: None,
            resell_min_stars: None,
            title: Some("Heart".into()),
            released_by: None,
            per_user_total: None,
            per_user_remains: None,
            locked_until_date: None,
            auction_slug: None,
            gifts_per_round: None,
            auction_start_date: None,
            upgrade_variants: None,
            background: None,
        })
    }

    fn action(
        from_id: Option<i64>,
        converted: bool,
        upgrade: Option<i32>,
    ) -> tl::enums::MessageAction {
        action_hidden(from_id, converted, upgrade, false)
    }

    fn action_hidden(
        from_id: Option<i64>,
        converted: bool,
        upgrade: Option<i32>,
        name_hidden: bool,
    ) -> tl::enums::MessageAction {
        tl::enums::MessageAction::StarGift(tl::types::MessageActionStarGift {
            name_hidden,
            saved: false,
            converted,
            upgraded: upgrade.is_some(),
            refunded: false,
            can_upgrade: false,
            prepaid_upgrade: false,
            upgrade_separate: false,
            auction_acquired: false,
            gift: star_gift(),
            message: None,
            convert_stars: Some(13),
            upgrade_msg_id: upgrade,
            upgrade_stars: None,
            from_id: from_id.map(|user_id| tl::types::PeerUser { user_id }.into()),
            peer: None,
            saved_id: None,
            prepaid_upgrade_hash: None,
            gift_msg_id: None,
            to_id: None,
            gift_num: None,
        })
    }

    fn service(
        id: i32,
        out: bool,
        from: Option<i64>,
        peer: tl::enums::Peer,
        action: tl::enums::MessageAction,
    ) -> tl::enums::Message {
        tl::enums::Message::Service(tl::types::MessageService {
            out,
            mentioned: false,
            media_unread: false,
            reactions_are_possible: false,
            silent: false,
            post: false,
            legacy: false,
            id,
            from_id: from.map(|user_id| tl::types::PeerUser { user_id }.into()),
            peer_id: peer,
            saved_peer_id: None,
            reply_to: None,
            date: 1_700_000_000,
            action,
            reactions: None,
            ttl_period: None,
        })
    }

    fn user(user_id: i64) -> tl::enums::Peer {
        tl::types::PeerUser { user_id }.into()
    }

    fn channel(channel_id: i64) -> tl::enums::Peer {
        tl::types::PeerChannel { channel_id }.into()
    }

    fn check(message: tl::enums::Message, expected: Option<(MsgId, Option<UserId>)>) {
        let got = gift_message(1, &message)
            .and_then(|s| s.gift)
            .map(|g| (g.msg_id, g.from));
        assert_eq!(got, expected);
    }

    #[test]
    fn gift_messages() {
        // What Telegram sends the receiver of a gift in a private chat (layer 119 and later):
        // no `from_id` on the message or the action; the sender is the chat's peer.
        check(
            service(7, false, None, user(42), action(None, false, None)),
            Some((7, Some(42))),
        );
        // "Hide my name": the same chat, the same peer, `name_hidden` set. The receiver still
        // knows the sender.
        check(
            service(
                7,
                false,
                None,
                user(42),
                action_hidden(None, false, None, true),
            ),
            Some((7, Some(42))),
        );
        // Older layers (and other chats) name the sender on the message.
        check(
            service(7, false, Some(42), user(42), action(None, false, None)),
            Some((7, Some(42))),
        );
        // The action's `from_id` comes first (gifts to channels).
        check(
            service(7, false, None, channel(5), action(Some(43), false, None)),
            Some((7, Some(43))),
        );
        check(
            service(7, false, None, user(777000), action(Some(43), false, None)),
            Some((7, Some(43))),
        );
        // Telegram's service account is never a sender, and a channel is not a user: nothing
        // is credited to a guess.
        check(
            service(7, false, None, user(777000), action(None, false, None)),
            Some((7, None)),
        );
        check(
            service(7, false, None, channel(5), action(None, false, None)),
            Some((7, None)),
        );
        // The deposit account's own gifts, edits of older gifts, other actions: not deposits.
        check(
            service(7, true, None, user(42), action(None, false, None)),
            None,
        );
        check(
            service(7, true, Some(1), user(42), action(None, false, None)),
            None,
        );
        check(
            service(7, false, None, user(42), action(None, true, None)),
            None,
        );
        check(
            service(7, false, None, user(42), tl::enums::MessageAction::Empty),
            None,
        );
    }

    fn saved(from_id: Option<i64>, name_hidden: bool) -> tl::enums::SavedStarGift {
        tl::enums::SavedStarGift::Gift(tl::types::SavedStarGift {
            name_hidden,
            unsaved: false,
            refunded: false,
            can_upgrade: false,
            pinned_to_top: false,
            upgrade_separate: false,
            from_id: from_id.map(user),
            date: 1_700_000_000,
            gift: star_gift(),
            message: None,
            msg_id: Some(7),
            saved_id: None,
            convert_stars: Some(13),
            upgrade_stars: None,
            can_export_at: None,
            transfer_stars: None,
            can_transfer_at: None,
            can_resell_at: None,
            collection_id: None,
            prepaid_upgrade_hash: None,
            drop_original_details_stars: None,
            gift_num: None,
            can_craft_at: None,
        })
    }

    #[test]
    fn saved_gifts_name_their_sender_to_the_receiver() {
        let from = |s| saved_gift(1, &s).gift.map(|g| (g.msg_id, g.from));
        assert_eq!(from(saved(Some(42), false)), Some((7, Some(42))));
        // "the gift sender in from_id and the message are set only for the receiver"
        assert_eq!(from(saved(Some(42), true)), Some((7, Some(42))));
        assert_eq!(from(saved(None, false)), Some((7, None)));
        assert_eq!(from(saved(Some(777000), false)), Some((7, None)));
    }

    fn unique_action(upgrade: bool, from_id: Option<i64>) -> tl::enums::MessageAction {
        let gift = tl::enums::StarGift::Unique(tl::types::StarGiftUnique {
            require_premium: false,
            resale_ton_only: false,
            theme_available: false,
            burned: false,
            crafted: false,
            id: 900,
            gift_id: 5,
            title: "Plush Pepe".into(),
            slug: "PlushPepe-3".into(),
            num: 3,
            owner_id: None,
            owner_name: None,
            owner_address: None,
            attributes: Vec::new(),
            availability_issued: 3,
            availability_total: 100,
            gift_address: None,
            resell_amount: None,
            released_by: None,
            value_amount: None,
            value_currency: None,
            value_usd_amount: None,
            theme_peer: None,
            peer_color: None,
            host_id: None,
            offer_min_stars: None,
            craft_chance_permille: None,
        });
        tl::enums::MessageAction::StarGiftUnique(tl::types::MessageActionStarGiftUnique {
            upgrade,
            transferred: !upgrade,
            saved: true,
            refunded: false,
            prepaid_upgrade: false,
            assigned: false,
            from_offer: false,
            craft: false,
            name_hidden: false,
            gift,
            can_export_at: None,
            transfer_stars: None,
            from_id: from_id.map(user),
            peer: None,
            saved_id: None,
            resale_amount: None,
            can_transfer_at: None,
            can_resell_at: None,
            drop_original_details_stars: None,
            can_craft_at: None,
            message: None,
        })
    }

    #[test]
    fn collectibles() {
        // A collectible transferred to the account: incoming, in the chat with its sender.
        check(
            service(9, false, None, user(42), unique_action(false, None)),
            Some((9, Some(42))),
        );
        // The account upgraded a gift it holds: its own outgoing message in the chat with the
        // gift's sender, the action naming that sender. A new item, owned like the gift.
        check(
            service(9, true, Some(1), user(42), unique_action(true, Some(42))),
            Some((9, Some(42))),
        );
        // The account transferred a collectible out: not a deposit.
        check(
            service(9, true, Some(1), user(42), unique_action(false, None)),
            None,
        );
        let got = gift_message(
            1,
            &service(9, false, None, user(42), unique_action(false, None)),
        )
        .and_then(|s| s.gift)
        .and_then(|g| g.unique)
        .map(|u| (u.collectible_id, u.number));
        assert_eq!(got, Some((900, 3)));
    }

    fn decided(m: tl::enums::Message) -> Option<Decision> {
        gift_message(1, &m).map(|s| s.decision)
    }

    /// The TL flags reach classify: one case per new shape (the decisions themselves are
    /// tested in `gift::classify`).
    #[test]
    fn tl_shapes_reach_the_classifier() {
        use crate::gift::classify::{HoldReason, IgnoreReason};
        // prepaid-upgrade notice: gift_msg_id names the held original
        let mut a = action(None, false, None);
        if let tl::enums::MessageAction::StarGift(g) = &mut a {
            g.prepaid_upgrade = true;
            g.gift_msg_id = Some(3);
        }
        assert_eq!(
            decided(service(7, false, None, user(43), a)),
            Some(Decision::Fate {
                item: ItemRef::Message(3),
                fate: FateKind::PrepaidUpgrade
            })
        );
        // the other side upgraded a gift the account sent
        assert_eq!(
            decided(service(9, false, None, user(42), unique_action(true, None))),
            Some(Decision::Ignore {
                reason: IgnoreReason::UpgradedByOtherSide
            })
        );
        // bought on the market for the account, paid in TON: credited to the buyer, price kept
        let mut a = unique_action(false, None);
        if let tl::enums::MessageAction::StarGiftUnique(u) = &mut a {
            u.transferred = false;
            u.resale_amount = Some(
                tl::types::StarsTonAmount {
                    amount: 2_500_000_000,
                }
                .into(),
            );
            if let tl::enums::StarGift::Unique(g) = &mut u.gift {
                g.value_amount = Some(1999);
                g.value_currency = Some("EUR".into());
                g.value_usd_amount = Some(2150);
            }
        }
        let seen = gift_message(1, &service(9, false, None, user(42), a)).unwrap();
        assert_eq!(seen.decision, Decision::Deposit { from: 42 });
        let gift = seen.gift.unwrap();
        assert_eq!(gift.gift.stars, 0, "a collectible's value is not Stars");
        let value = gift.unique.unwrap().value;
        assert_eq!(value.paid, Some(Price::TonNano(2_500_000_000)));
        assert_eq!(value.usd_cents, Some(2150));
        assert_eq!(
            value.fiat,
            Some(Money {
                amount: 1999,
                currency: "EUR".into()
            })
        );
        // assigned, from a channel's notice
        let mut a = unique_action(false, None);
        if let tl::enums::MessageAction::StarGiftUnique(u) = &mut a {
            u.assigned = true;
        }
        assert_eq!(
            decided(service(9, false, None, user(42), a)),
            Some(Decision::Ignore {
                reason: IgnoreReason::Assigned
            })
        );
        // offers and chat themes carry a gift and deliver none
        let offer = tl::enums::MessageAction::StarGiftPurchaseOfferDeclined(
            tl::types::MessageActionStarGiftPurchaseOfferDeclined {
                expired: false,
                gift: star_gift(),
                price: tl::types::StarsAmount {
                    amount: 10,
                    nanos: 0,
                }
                .into(),
            },
        );
        assert_eq!(
            decided(service(9, false, None, user(42), offer)),
            Some(Decision::Ignore {
                reason: IgnoreReason::Offer
            })
        );
        let theme = tl::enums::MessageAction::SetChatTheme(tl::types::MessageActionSetChatTheme {
            theme: tl::types::ChatThemeUniqueGift {
                gift: star_gift(),
                theme_settings: Vec::new(),
            }
            .into(),
        });
        let seen = gift_message(1, &service(9, false, None, user(42), theme)).unwrap();
        assert_eq!(
            seen,
            Seen {
                decision: Decision::Ignore {
                    reason: IgnoreReason::ChatTheme
                },
                gift: None
            }
        );
        // delivered by the service account: held, recorded without an owner
        let seen = gift_message(
            1,
            &service(7, false, None, user(777000), action(None, false, None)),
        )
        .unwrap();
        assert_eq!(
            seen.decision,
            Decision::Hold {
                reason: HoldReason::NoSender
            }
        );
        assert_eq!(seen.gift.map(|g| g.from), Some(None));
    }

    #[test]
    fn hosted_and_burned_saved_gifts_are_not_held() {
        for (hosted, burned) in [(true, false), (false, true)] {
            let tl::enums::SavedStarGift::Gift(mut s) = saved(Some(42), false);
            let tl::enums::MessageAction::StarGiftUnique(u) = unique_action(false, None) else {
                unreachable!()
            };
            let mut gift = u.gift;
            if let tl::enums::StarGift::Unique(g) = &mut gift {
                g.host_id = hosted.then(|| user(5));
                g.burned = burned;
            }
            s.gift = gift;
            let seen = saved_gift(1, &tl::enums::SavedStarGift::Gift(s));
            assert_eq!(seen.gift, None, "hosted {hosted} burned {burned}");
        }
    }

    #[test]
    fn fates() {
        let f = |a| fate(1, &service(3, false, None, user(42), a)).map(|(_, f)| f);
        assert_eq!(f(action(None, true, None)), Some(Fate::Converted));
        assert_eq!(
            f(action(None, false, Some(9))),
            Some(Fate::Upgraded { into: 9 })
        );
        assert_eq!(f(action(None, false, None)), Some(Fate::Gone));
        assert_eq!(f(tl::enums::MessageAction::Empty), Some(Fate::Gone));
    }

    #[test]
    fn what_a_collectible_says_after_it_left() {
        let now = |burned, owner: Option<i64>| {
            let tl::enums::MessageAction::StarGiftUnique(a) = unique_action(false, None) else {
                unreachable!("a collectible action")
            };
            let tl::enums::StarGift::Unique(mut u) = a.gift else {
                unreachable!("a collectible")
            };
            u.burned = burned;
            u.owner_id = owner.map(user);
            tl::enums::payments::UniqueStarGift::Gift(tl::types::payments::UniqueStarGift {
                gift: u.into(),
                chats: Vec::new(),
                users: Vec::new(),
            })
        };
        assert_eq!(collectible_now(1, &now(true, None)), CollectibleNow::Burned);
        assert_eq!(
            collectible_now(1, &now(false, Some(1))),
            CollectibleNow::Unknown
        );
        // a new owner the answer does not describe cannot be addressed
        assert_eq!(
            collectible_now(1, &now(false, Some(42))),
            CollectibleNow::Unknown
        );

        let message = |out, from_offer| {
            let mut act = unique_action(false, None);
            if let tl::enums::MessageAction::StarGiftUnique(a) = &mut act {
                a.transferred = false;
                a.from_offer = from_offer;
            }
            service(5, out, None, user(42), act)
        };
        assert!(is_sale_of(1, &message(true, true), 900));
        assert!(!is_sale_of(1, &message(true, true), 901));
        // bought through the account's own offer, a transfer out: no sale
        assert!(!is_sale_of(1, &message(false, true), 900));
        assert!(!is_sale_of(1, &message(true, false), 900));
    }
}
