//! Gifts as messages: sending a catalogue gift or a collectible, minting collectibles, the
//! service-message actions (`messageActionStarGift`, `messageActionStarGiftUnique`) and the updates
//! they push, upgrading, converting to Stars and refunds.

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use super::catalogue::check_available;
use super::{GiftInfo, RpcErr, SERVICE_USER_ID, Saved, World};
use crate::tlb;

/// Input for [`crate::Sim::send_gift`]. Unknown fields are refused, so a caller still using the
/// old `anonymous` field gets an error instead of a gift with its name shown.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SendGift {
    /// Sending player.
    pub from: i64,
    /// Recipient (e.g. the deposit account).
    pub to: i64,
    /// Catalogue gift id.
    pub gift_id: i64,
    /// "Hide my name": the action and the saved gift get `name_hidden`, so visitors of the
    /// recipient's profile do not see the sender. The recipient still does: the service message
    /// sits in the private chat with the sender and the recipient's `savedStarGift.from_id` is
    /// set ("set only for the receiver", core.telegram.org/constructor/savedStarGift).
    pub hide_name: bool,
    /// Optional text attached to the gift.
    pub message: Option<String>,
}

/// Input for [`crate::Sim::send_unique_gift`]: mint a collectible owned by `from` and give it
/// to `to`, as when a player transfers a collectible to the deposit account.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SendUniqueGift {
    /// Sending player.
    pub from: i64,
    /// Recipient.
    pub to: i64,
    /// Base catalogue gift id.
    pub gift_id: i64,
    /// Stars the recipient must pay to transfer it onward (`transfer_stars`); None = free.
    pub transfer_stars: Option<i64>,
    /// Seconds from now before the recipient may transfer it (`can_transfer_at`).
    pub transfer_lock_secs: Option<i64>,
    /// Optional text.
    pub message: Option<String>,
    /// Telegram itself delivers the collectible, with no sender the recipient can know (`from` is
    /// ignored): the service message sits in the chat with 777000 and has `assigned` set, and
    /// neither it nor `savedStarGift` has a `from_id`. This is how TDLib expects a collectible
    /// with no known sender (a gift assigned from the TON blockchain): see tgsim/FIDELITY.md.
    pub from_telegram: bool,
}

/// What a gift operation produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SentGift {
    /// Message id of the service message in the recipient's dialog (the saved gift's msg_id).
    pub msg_id: i32,
    /// The recipient.
    pub to: i64,
    /// Base catalogue gift id.
    pub gift_id: i64,
    /// Collectible id, for unique gifts.
    pub unique_id: Option<i64>,
    /// Collectible slug, for unique gifts.
    pub slug: Option<String>,
    /// Collectible number, for unique gifts.
    pub num: Option<i32>,
    /// Service message date.
    pub date: i32,
}

/// A collectible.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UniqueInfo {
    /// Collectible id (`starGiftUnique.id`).
    pub id: i64,
    /// Base gift id.
    pub gift_id: i64,
    /// Title.
    pub title: String,
    /// Slug (`Title-num`).
    pub slug: String,
    /// Number within the collection.
    pub num: i32,
}

impl World {
    pub(super) fn tl_unique(&self, u: &UniqueInfo, owner: i64) -> tl::enums::StarGift {
        let rarity = |p| {
            tl::enums::StarGiftAttributeRarity::Rarity(tl::types::StarGiftAttributeRarity {
                permille: p,
            })
        };
        let mut t = tl::types::StarGiftUnique {
            require_premium: false,
            resale_ton_only: false,
            theme_available: false,
            burned: false,
            crafted: false,
            id: u.id,
            gift_id: u.gift_id,
            title: u.title.clone(),
            slug: u.slug.clone(),
            num: u.num,
            owner_id: Some(tlb::peer_user(owner)),
            owner_name: None,
            owner_address: None,
            attributes: vec![
                tl::enums::StarGiftAttribute::Model(tl::types::StarGiftAttributeModel {
                    crafted: false,
                    name: format!("{} Model", u.title),
                    document: tlb::sticker(u.id ^ 1),
                    rarity: rarity(15),
                }),
                tl::enums::StarGiftAttribute::Backdrop(tl::types::StarGiftAttributeBackdrop {
                    name: "Onyx".into(),
                    backdrop_id: 1,
                    center_color: 0x202020,
                    edge_color: 0x101010,
                    pattern_color: 0x303030,
                    text_color: 0xffffff,
                    rarity: rarity(20),
                }),
            ],
            availability_issued: self.unique_counts.get(&u.gift_id).copied().unwrap_or(0),
            availability_total: 100_000,
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
        };
        self.apply_unique_state(&mut t, owner);
        tl::enums::StarGift::Unique(t)
    }

    pub(super) fn mint_unique(&mut self, gift_id: i64) -> Result<UniqueInfo, RpcErr> {
        let g = self.gift(gift_id)?;
        let n = self.unique_counts.entry(gift_id).or_insert(0);
        *n += 1;
        let num = *n;
        let id = self.fresh_id() * 1000 + 7;
        let title = g.title.clone();
        let u = UniqueInfo {
            id,
            gift_id,
            slug: format!("{}-{num}", title.replace(' ', "")),
            title,
            num,
        };
        self.uniques.insert(id, u.clone());
        Ok(u)
    }

    /// The `messageActionStarGift` of a freshly received regular gift.
    pub(super) fn regular_action(&self, s: &Saved) -> Result<tl::enums::MessageAction, RpcErr> {
        let g = self.gift(s.gift_id)?;
        Ok(tl::enums::MessageAction::StarGift(
            tl::types::MessageActionStarGift {
                name_hidden: s.name_hidden,
                saved: !s.unsaved,
                converted: false,
                upgraded: false,
                refunded: s.refunded,
                can_upgrade: s.upgrade_stars.is_some(),
                prepaid_upgrade: false,
                upgrade_separate: false,
                auction_acquired: false,
                gift: self.tl_star_gift(&g),
                message: s.message.as_deref().map(tlb::text),
                convert_stars: s.convert_stars,
                upgrade_msg_id: None,
                upgrade_stars: s.upgrade_stars,
                from_id: None,
                peer: None,
                saved_id: None,
                prepaid_upgrade_hash: None,
                gift_msg_id: None,
                to_id: None,
                gift_num: None,
            },
        ))
    }

    /// A `messageActionStarGiftUnique`. `from` is the action's `from_id`: set only where the
    /// message's own sender is not the gift's sender (an upgrade, whose service message is the
    /// owner's own outgoing message); a transfer in a private chat names its sender through the
    /// chat's peer. `assigned`: delivered by Telegram from the blockchain, with no sender.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn unique_action(
        &self,
        u: &UniqueInfo,
        owner: i64,
        from: Option<i64>,
        upgrade: bool,
        assigned: bool,
        transfer_stars: Option<i64>,
        can_transfer_at: Option<i32>,
        message: Option<&str>,
    ) -> tl::enums::MessageAction {
        tl::enums::MessageAction::StarGiftUnique(tl::types::MessageActionStarGiftUnique {
            upgrade,
            transferred: !upgrade && !assigned,
            saved: true,
            refunded: false,
            prepaid_upgrade: false,
            assigned,
            from_offer: false,
            craft: false,
            name_hidden: false,
            gift: self.tl_unique(u, owner),
            can_export_at: None,
            transfer_stars,
            from_id: from.map(tlb::peer_user),
            peer: None,
            saved_id: None,
            resale_amount: None,
            can_transfer_at,
            can_resell_at: None,
            drop_original_details_stars: None,
            can_craft_at: None,
            message: message.map(tlb::text),
        })
    }

    /// A player sends a regular gift (the control API's shortcut for the form + payment a client
    /// makes): the sender pays the price, a limited gift's availability goes down.
    pub fn send_gift(&mut self, g: SendGift) -> Result<SentGift, RpcErr> {
        let gift = self.gift(g.gift_id)?;
        self.acc(g.to)?;
        self.check_accepts(g.to, false, gift.limited_total.is_some())?;
        check_available(&gift)?;
        if let Some(e) = self.purchase_refusal(g.from, gift.id) {
            return Err(e);
        }
        let sender = self.acc_mut(g.from)?;
        if sender.stars < gift.stars {
            return Err(RpcErr::bad("BALANCE_TOO_LOW"));
        }
        sender.stars -= gift.stars;
        self.take_one(gift.id);
        self.count_purchase(g.from, gift.id);
        self.deliver_regular(g.from, g.to, &gift, g.hide_name, g.message, false, None)
            .map(|(sent, _)| sent)
    }

    /// Delivers a freshly bought regular gift from `from` to `to` (payment already taken): the
    /// sender's outgoing service message, the recipient's incoming one in the chat with the
    /// sender, the recipient's saved gift. Returns the recipient's SentGift and the sender's own
    /// update (not pushed to `caller_conn`, which gets it in its answer).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn deliver_regular(
        &mut self,
        from: i64,
        to: i64,
        gift: &GiftInfo,
        hide_name: bool,
        message: Option<String>,
        prepaid_upgrade: bool,
        caller_conn: Option<u64>,
    ) -> Result<(SentGift, tl::enums::Update), RpcErr> {
        let date = self.now32();
        let mut saved = Saved {
            msg_id: 0,
            from: Some(from),
            date,
            gift_id: gift.id,
            unique: None,
            message,
            name_hidden: hide_name,
            unsaved: false,
            refunded: false,
            pinned: false,
            convert_stars: Some(gift.convert_stars),
            upgrade_stars: gift.upgrade_stars,
            transfer_stars: None,
            can_transfer_at: None,
        };
        let mut action = self.regular_action(&saved)?;
        if let tl::enums::MessageAction::StarGift(a) = &mut action {
            a.prepaid_upgrade = prepaid_upgrade;
        }
        // Sender's copy first, as Telegram shows it in the sender's chat. With or without "hide
        // my name", the recipient's copy is an incoming message in the private chat with the
        // sender, without `from_id` (the sender is the chat's peer) and without the action's
        // `from_id` (used where the message's sender is not the gift's: channels, upgrades).
        let sender_action = action.clone();
        let (_, own) = self.deliver(
            from,
            |id| tlb::service_message(id, true, from, to, date, sender_action),
            caller_conn,
        )?;
        let (msg_id, _) = self.deliver(
            to,
            |id| tlb::service_message(id, false, to, from, date, action),
            None,
        )?;
        saved.msg_id = msg_id;
        self.acc_mut(to)?.saved.insert(msg_id, saved);
        let sent = SentGift {
            msg_id,
            to,
            gift_id: gift.id,
            unique_id: None,
            slug: None,
            num: None,
            date,
        };
        Ok((sent, own))
    }

    /// A player gives a (freshly minted) collectible to `to`.
    pub fn send_unique_gift(&mut self, g: SendUniqueGift) -> Result<SentGift, RpcErr> {
        let from = (!g.from_telegram).then_some(g.from);
        if let Some(from) = from {
            self.acc(from)?;
        }
        self.acc(g.to)?;
        let u = self.mint_unique(g.gift_id)?;
        let can_transfer_at = g
            .transfer_lock_secs
            .map(|s| self.now().saturating_add(s).clamp(0, i32::MAX as i64) as i32);
        self.give_unique(
            u,
            from,
            g.to,
            g.transfer_stars,
            can_transfer_at,
            g.message,
            None,
        )
        .map(|(sent, _)| sent)
    }

    /// Delivers collectible `u` to `to` (transferred from `from`); returns the recipient's
    /// SentGift and the sender's own update (if any) for answering its request.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn give_unique(
        &mut self,
        u: UniqueInfo,
        from: Option<i64>,
        to: i64,
        transfer_stars: Option<i64>,
        can_transfer_at: Option<i32>,
        message: Option<String>,
        caller_conn: Option<u64>,
    ) -> Result<(SentGift, Option<tl::enums::Update>), RpcErr> {
        let date = self.now32();
        let mut own = None;
        if let Some(from) = from {
            let act =
                self.unique_action(&u, to, None, false, false, None, None, message.as_deref());
            let (_, upd) = self.deliver(
                from,
                |id| tlb::service_message(id, true, from, to, date, act),
                caller_conn,
            )?;
            own = Some(upd);
        }
        // The recipient's copy: incoming, in the private chat with the sender (no `from_id`
        // anywhere: the peer is the sender), or in the chat with 777000 when Telegram delivers
        // it with no sender.
        let act = self.unique_action(
            &u,
            to,
            None,
            false,
            from.is_none(),
            transfer_stars,
            can_transfer_at,
            message.as_deref(),
        );
        let peer = from.unwrap_or(SERVICE_USER_ID);
        let (msg_id, _) = self.deliver(
            to,
            |id| tlb::service_message(id, false, to, peer, date, act),
            None,
        )?;
        self.acc_mut(to)?.saved.insert(
            msg_id,
            Saved {
                msg_id,
                from,
                date,
                gift_id: u.gift_id,
                unique: Some(u.id),
                message,
                name_hidden: false,
                unsaved: false,
                refunded: false,
                pinned: false,
                convert_stars: None,
                upgrade_stars: None,
                transfer_stars,
                can_transfer_at,
            },
        );
        Ok((
            SentGift {
                msg_id,
                to,
                gift_id: u.gift_id,
                unique_id: Some(u.id),
                slug: Some(u.slug.clone()),
                num: Some(u.num),
                date,
            },
            own,
        ))
    }

    /// Edits the gift action of service message `msg_id` in `owner`'s dialog and pushes
    /// `updateEditMessage`, as Telegram does when a gift is upgraded, converted or refunded.
    pub(super) fn edit_gift_action(
        &mut self,
        owner: i64,
        msg_id: i32,
        edit: impl FnOnce(&mut tl::enums::MessageAction),
    ) -> Result<(), RpcErr> {
        let a = self.acc_mut(owner)?;
        let Some(tl::enums::Message::Service(m)) = a.messages.get_mut(&msg_id) else {
            return Ok(());
        };
        edit(&mut m.action);
        let msg = tl::enums::Message::Service(m.clone());
        let upd = self.log_update(owner, |pts| {
            tl::enums::Update::EditMessage(tl::types::UpdateEditMessage {
                message: msg,
                pts,
                pts_count: 1,
            })
        })?;
        self.push(owner, vec![upd], None);
        Ok(())
    }

    /// Upgrades a regular gift to a collectible; a new service message carries it.
    pub fn upgrade_gift(&mut self, owner: i64, msg_id: i32) -> Result<SentGift, RpcErr> {
        let s = self.saved_gift(owner, msg_id)?;
        if s.unique.is_some() {
            return Err(RpcErr::bad("STARGIFT_ALREADY_UPGRADED"));
        }
        let u = self.mint_unique(s.gift_id)?;
        let date = self.now32();
        // The upgrade is the owner's own act: its service message is the owner's OUTGOING
        // message in the chat with the gift's sender (`from_id` = owner), and the action's
        // `from_id` names the gift's sender. TDLib MessageContent.cpp (messageUpgradedGift):
        // receiver = `is_upgrade != is_outgoing ? dialog : me`, and the received-gift id is
        // taken from the message when `is_upgrade == is_outgoing`. See tgsim/FIDELITY.md.
        let mut act = self.unique_action(
            &u,
            owner,
            s.from,
            true,
            false,
            None,
            None,
            s.message.as_deref(),
        );
        // A third user prepaid this upgrade: the collectible's message says so (TDLib origin
        // `upgradedGiftOriginPrepaidUpgrade`).
        let prepaid = self.upgrade_prepaid(owner, msg_id);
        if let tl::enums::MessageAction::StarGiftUnique(a) = &mut act {
            a.prepaid_upgrade = prepaid;
        }
        let peer = s.from.unwrap_or(SERVICE_USER_ID);
        // The gift's sender sees the same upgrade as an INCOMING message in its chat with the
        // owner (core constructor/messageActionStarGiftUnique `upgrade`: "from a previously
        // received or sent (depending on the out flag ...) gift"; TDLib: receiver =
        // `is_upgrade != is_outgoing ? chat : me`, so incoming + upgrade = the other side
        // upgraded a gift we sent). It gets no saved gift: the collectible is the owner's.
        if let Some(sender) = s.from.filter(|f| *f != SERVICE_USER_ID && *f != owner)
            && self.acc(sender).is_ok()
        {
            let sender_act = act.clone();
            self.deliver(
                sender,
                |id| tlb::service_message(id, false, sender, owner, date, sender_act),
                None,
            )?;
        }
        let (new_id, _) = self.deliver(
            owner,
            |id| tlb::service_message(id, true, owner, peer, date, act),
            None,
        )?;
        self.edit_gift_action(owner, msg_id, |act| {
            if let tl::enums::MessageAction::StarGift(act) = act {
                act.upgraded = true;
                act.upgrade_msg_id = Some(new_id);
            }
        })?;
        let a = self.acc_mut(owner)?;
        a.saved.remove(&msg_id);
        a.saved.insert(
            new_id,
            Saved {
                msg_id: new_id,
                unique: Some(u.id),
                convert_stars: None,
                upgrade_stars: None,
                transfer_stars: None,
                can_transfer_at: None,
                date,
                ..s
            },
        );
        Ok(SentGift {
            msg_id: new_id,
            to: owner,
            gift_id: u.gift_id,
            unique_id: Some(u.id),
            slug: Some(u.slug),
            num: Some(u.num),
            date,
        })
    }

    /// Converts a regular gift to stars (it leaves the saved list).
    pub fn convert_gift(&mut self, owner: i64, msg_id: i32) -> Result<i64, RpcErr> {
        let s = self.saved_gift(owner, msg_id)?;
        let Some(stars) = s
            .convert_stars
            .filter(|_| s.unique.is_none() && !s.refunded)
        else {
            return Err(RpcErr::bad("STARGIFT_CONVERT_INVALID"));
        };
        let a = self.acc_mut(owner)?;
        a.saved.remove(&msg_id);
        a.stars = a.stars.saturating_add(stars);
        self.edit_gift_action(owner, msg_id, |act| {
            if let tl::enums::MessageAction::StarGift(act) = act {
                act.converted = true;
            }
        })?;
        Ok(stars)
    }

    /// The payment for a gift is refunded: the gift stays listed with `refunded`.
    pub fn refund_gift(&mut self, owner: i64, msg_id: i32) -> Result<(), RpcErr> {
        let s = self.saved_gift(owner, msg_id)?;
        let price = self.gift(s.gift_id).map(|g| g.stars).unwrap_or(0);
        let a = self.acc_mut(owner)?;
        if let Some(g) = a.saved.get_mut(&msg_id) {
            g.refunded = true;
            g.convert_stars = None;
        }
        if let Some(from) = s.from
            && let Ok(sender) = self.acc_mut(from)
        {
            sender.stars = sender.stars.saturating_add(price);
        }
        self.edit_gift_action(owner, msg_id, |act| match act {
            tl::enums::MessageAction::StarGift(act) => {
                act.refunded = true;
                act.convert_stars = None;
            }
            tl::enums::MessageAction::StarGiftUnique(act) => act.refunded = true,
            _ => {}
        })?;
        Ok(())
    }
}
