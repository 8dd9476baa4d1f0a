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
        from: s.from_id.as_ref().and_then(peer_user),
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

/// A gift delivered by a service message in an update. `None` for anything else, including the
/// deposit account's own outgoing gifts (withdrawals): those are not deposits.
///
/// The sender is the action's `from_id`, else the message's `from_id`. The message's peer is
/// never used: an anonymous gift arrives from Telegram's service account, which is not its
/// sender.
pub fn gift_message(message: &tl::enums::Message) -> Option<ObservedGift> {
    let tl::enums::Message::Service(m) = message else {
        return None;
    };
    if m.out {
        return None;
    }
    let msg_from = m.from_id.as_ref().and_then(peer_user);
    let date = i64::from(m.date);
    match &m.action {
        tl::enums::MessageAction::StarGift(a) => {
            if a.converted || a.upgraded {
                return None; // an edit of an older gift, not a delivery
            }
            let (gift, unique) = gift_type(&a.gift);
            Some(ObservedGift {
                msg_id: m.id,
                from: a.from_id.as_ref().and_then(peer_user).or(msg_from),
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
                from: a.from_id.as_ref().and_then(peer_user).or(msg_from),
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
        tl::enums::MessageAction::StarGift(tl::types::MessageActionStarGift {
            name_hidden: false,
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
        peer: i64,
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
            peer_id: tl::types::PeerUser { user_id: peer }.into(),
            saved_peer_id: None,
            reply_to: None,
            date: 1_700_000_000,
            action,
            reactions: None,
            ttl_period: None,
        })
    }

    fn check(message: tl::enums::Message, expected: Option<(MsgId, Option<UserId>)>) {
        let got = gift_message(&message).map(|g| (g.msg_id, g.from));
        assert_eq!(got, expected);
    }

    #[test]
    fn gift_messages() {
        check(
            service(7, false, Some(42), 42, action(None, false, None)),
            Some((7, Some(42))),
        );
        check(
            service(7, false, None, 777000, action(None, false, None)),
            Some((7, None)),
        );
        check(
            service(7, false, None, 777000, action(Some(43), false, None)),
            Some((7, Some(43))),
        );
        check(
            service(7, true, Some(1), 42, action(None, false, None)),
            None,
        );
        check(
            service(7, false, Some(42), 42, action(None, true, None)),
            None,
        );
        check(
            service(7, false, Some(42), 42, tl::enums::MessageAction::Empty),
            None,
        );
    }

    #[test]
    fn fates() {
        let f = |a| fate(&service(3, false, Some(42), 42, a)).map(|(_, f)| f);
        assert_eq!(f(action(None, true, None)), Some(Fate::Converted));
        assert_eq!(
            f(action(None, false, Some(9))),
            Some(Fate::Upgraded { into: 9 })
        );
        assert_eq!(f(action(None, false, None)), Some(Fate::Gone));
        assert_eq!(f(tl::enums::MessageAction::Empty), Some(Fate::Gone));
    }
}
