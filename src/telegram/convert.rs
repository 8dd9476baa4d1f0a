//! Turning TL objects into domain values. Pure: every function here takes TL values and returns
//! `detector`/`gift` values, so the mapping is tested without a connection.

use grammers_tl_types as tl;

use crate::detector::{Fate, ObservedGift};
use crate::gift::{GiftType, MsgId, UniqueInfo, UserId, UserInfo};

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
                // A collectible has no list price; its value, when Telegram gives one in stars,
                // is the best figure there is.
                stars: match (&u.value_currency, u.value_amount) {
                    (Some(c), Some(v)) if c == "XTR" => v,
                    _ => 0,
                },
                unique: true,
            },
            Some(UniqueInfo {
                collectible_id: u.id,
                slug: u.slug.clone(),
                number: u.num,
            }),
        ),
    }
}

/// One entry of `payments.getSavedStarGifts`. `None` when the entry has no `msg_id` (a gift
/// saved by a channel, never the case for a user account) and so cannot be identified.
pub fn saved_gift(saved: &tl::enums::SavedStarGift) -> Option<ObservedGift> {
    let tl::enums::SavedStarGift::Gift(s) = saved;
    let msg_id = s.msg_id?;
    let (gift, unique) = gift_type(&s.gift);
    Some(ObservedGift {
        msg_id,
        // Set for the receiver even when the sender hid their name ("set only for the receiver").
        from: s
            .from_id
            .as_ref()
            .and_then(peer_user)
            .filter(|&id| id != SERVICE_USER_ID),
        date: i64::from(s.date),
        gift,
        unique,
        convert_stars: s.convert_stars,
        transfer_stars: s.transfer_stars,
        can_transfer_at: s.can_transfer_at.map(i64::from),
        refunded: s.refunded,
        pinned: s.pinned_to_top,
        upgraded_from: None,
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

/// Telegram's service notifications account: gifts it delivers are not from it, so it is never
/// taken for a sender.
pub const SERVICE_USER_ID: UserId = 777_000;

/// A gift delivered by a service message in an update. `None` for anything else, including the
/// deposit account's own outgoing gifts (withdrawals): those are not deposits.
///
/// The sender, in the order Telegram names it:
/// - the action's `from_id` (set for gifts to channels, where the message's sender is the
///   channel);
/// - the message's `from_id`;
/// - for an incoming message in a private chat, the chat's peer. Telegram puts no `from_id` on
///   incoming private messages (since layer 119): the sender can only be the peer, which is what
///   grammers-client's `Message::sender_id` and Telethon's `Message.sender_id` read. A gift sent
///   with "hide my name" still sits in the chat with its sender: the name is hidden from visitors
///   of the receiver's profile, not from the receiver.
///
/// Telegram's service account (777000) is never a sender: a gift whose only named peer is that
/// account stays without one, and is credited to nobody rather than to a guess.
pub fn gift_message(message: &tl::enums::Message) -> Option<ObservedGift> {
    let tl::enums::Message::Service(m) = message else {
        return None;
    };
    if m.out {
        return upgrade_message(m);
    }
    let msg_from = m
        .from_id
        .as_ref()
        .and_then(peer_user)
        .or_else(|| peer_user(&m.peer_id));
    let sender = |action_from: &Option<tl::enums::Peer>| {
        action_from
            .as_ref()
            .and_then(peer_user)
            .or(msg_from)
            .filter(|&id| id != SERVICE_USER_ID)
    };
    let date = i64::from(m.date);
    match &m.action {
        tl::enums::MessageAction::StarGift(a) => {
            if a.converted || a.upgraded {
                return None; // an edit of an older gift, not a delivery
            }
            let (gift, unique) = gift_type(&a.gift);
            Some(ObservedGift {
                msg_id: m.id,
                from: sender(&a.from_id),
                date,
                gift,
                unique,
                convert_stars: a.convert_stars,
                transfer_stars: None,
                can_transfer_at: None,
                refunded: a.refunded,
                pinned: false,
                upgraded_from: None,
            })
        }
        tl::enums::MessageAction::StarGiftUnique(a) => {
            let (gift, unique) = gift_type(&a.gift);
            Some(ObservedGift {
                msg_id: m.id,
                from: sender(&a.from_id),
                date,
                gift,
                unique,
                convert_stars: None,
                transfer_stars: a.transfer_stars,
                can_transfer_at: a.can_transfer_at.map(i64::from),
                refunded: a.refunded,
                pinned: false,
                upgraded_from: None,
            })
        }
        _ => None,
    }
}

/// The collectible the deposit account made by upgrading a gift it holds. Telegram records the
/// upgrade as the account's own outgoing message in the chat with the gift's sender, the action
/// naming that sender in `from_id` (TDLib `MessageContent.cpp`, `messageUpgradedGift`); the item
/// is new in the account although the account sent the message. Every other outgoing message
/// (a gift or transfer the account sent) is not a deposit.
fn upgrade_message(m: &tl::types::MessageService) -> Option<ObservedGift> {
    let tl::enums::MessageAction::StarGiftUnique(a) = &m.action else {
        return None;
    };
    if !a.upgrade {
        return None;
    }
    let (gift, unique) = gift_type(&a.gift);
    Some(ObservedGift {
        msg_id: m.id,
        from: a
            .from_id
            .as_ref()
            .and_then(peer_user)
            .filter(|&id| id != SERVICE_USER_ID),
        date: i64::from(m.date),
        gift,
        unique,
        convert_stars: None,
        transfer_stars: a.transfer_stars,
        can_transfer_at: a.can_transfer_at.map(i64::from),
        refunded: a.refunded,
        pinned: false,
        upgraded_from: None,
    })
}

/// What the service message of a gift that left the saved list says happened to it.
pub fn fate(message: &tl::enums::Message) -> Option<(MsgId, Fate)> {
    let tl::enums::Message::Service(m) = message else {
        return None;
    };
    let fate = match &m.action {
        tl::enums::MessageAction::StarGift(a) => {
            if let (true, Some(into)) = (a.upgraded, a.upgrade_msg_id) {
                Fate::Upgraded { into }
            } else if a.converted {
                Fate::Converted
            } else if a.refunded {
                Fate::Refunded
            } else {
                Fate::Gone
            }
        }
        tl::enums::MessageAction::StarGiftUnique(a) if a.refunded => Fate::Refunded,
        _ => Fate::Gone,
    };
    Some((m.id, fate))
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
        let got = gift_message(&message).map(|g| (g.msg_id, g.from));
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
        let from = |s| saved_gift(&s).map(|g| (g.msg_id, g.from));
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
        let got = gift_message(&service(
            9,
            false,
            None,
            user(42),
            unique_action(false, None),
        ))
        .and_then(|g| g.unique)
        .map(|u| (u.collectible_id, u.number));
        assert_eq!(got, Some((900, 3)));
    }

    #[test]
    fn fates() {
        let f = |a| fate(&service(3, false, None, user(42), a)).map(|(_, f)| f);
        assert_eq!(f(action(None, true, None)), Some(Fate::Converted));
        assert_eq!(
            f(action(None, false, Some(9))),
            Some(Fate::Upgraded { into: 9 })
        );
        assert_eq!(f(action(None, false, None)), Some(Fate::Gone));
        assert_eq!(f(tl::enums::MessageAction::Empty), Some(Fate::Gone));
    }
}
