//! Saved gifts: the gifts an account holds as its profile shows them, their saved and pinned
//! flags, and the pages of `payments.getSavedStarGifts` / `payments.getSavedStarGift`.

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use super::{RpcErr, Saved, UniqueInfo, World};
use crate::tlb;

/// One saved gift of an account, as the simulator holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedGiftInfo {
    /// Service message id in the owner's dialog.
    pub msg_id: i32,
    /// Sender as the owner sees it (`savedStarGift.from_id`); None only for a collectible
    /// delivered by Telegram with no sender.
    pub from: Option<i64>,
    /// Date received.
    pub date: i32,
    /// Base catalogue gift id.
    pub gift_id: i64,
    /// Set for collectibles.
    pub unique: Option<UniqueInfo>,
    /// Attached text.
    pub message: Option<String>,
    /// Sender hidden.
    pub name_hidden: bool,
    /// Not shown on the profile.
    pub unsaved: bool,
    /// Refunded by the payment provider.
    pub refunded: bool,
    /// Pinned to the top of the profile.
    pub pinned: bool,
    /// Stars for converting (regular gifts).
    pub convert_stars: Option<i64>,
    /// Stars to upgrade (regular, upgradable gifts).
    pub upgrade_stars: Option<i64>,
    /// Stars the owner must pay to transfer (collectibles).
    pub transfer_stars: Option<i64>,
    /// Unix time before which the owner may not transfer it.
    pub can_transfer_at: Option<i32>,
}

impl World {
    pub(super) fn saved_gift(&self, owner: i64, msg_id: i32) -> Result<Saved, RpcErr> {
        self.acc(owner)?
            .saved
            .get(&msg_id)
            .cloned()
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_FOUND"))
    }

    /// Shows or hides a gift on the profile (`unsaved`).
    pub fn set_gift_saved(&mut self, owner: i64, msg_id: i32, saved: bool) -> Result<(), RpcErr> {
        self.acc_mut(owner)?
            .saved
            .get_mut(&msg_id)
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_FOUND"))?
            .unsaved = !saved;
        Ok(())
    }

    /// Pins or unpins a gift.
    pub fn set_gift_pinned(&mut self, owner: i64, msg_id: i32, pinned: bool) -> Result<(), RpcErr> {
        self.acc_mut(owner)?
            .saved
            .get_mut(&msg_id)
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_FOUND"))?
            .pinned = pinned;
        Ok(())
    }

    /// Saved gifts, pinned first then newest first.
    pub fn saved_gifts(&self, account: i64) -> Result<Vec<SavedGiftInfo>, RpcErr> {
        let a = self.acc(account)?;
        let mut v: Vec<&Saved> = a.saved.values().collect();
        v.sort_by_key(|s| (!s.pinned, std::cmp::Reverse(s.msg_id)));
        Ok(v.into_iter().map(|s| self.saved_info(s)).collect())
    }

    fn saved_info(&self, s: &Saved) -> SavedGiftInfo {
        SavedGiftInfo {
            msg_id: s.msg_id,
            from: s.from,
            date: s.date,
            gift_id: s.gift_id,
            unique: s.unique.and_then(|u| self.uniques.get(&u).cloned()),
            message: s.message.clone(),
            name_hidden: s.name_hidden,
            unsaved: s.unsaved,
            refunded: s.refunded,
            pinned: s.pinned,
            convert_stars: s.convert_stars,
            upgrade_stars: s.upgrade_stars,
            transfer_stars: s.transfer_stars,
            can_transfer_at: s.can_transfer_at,
        }
    }

    pub(super) fn tl_saved(
        &self,
        s: &Saved,
        owner: i64,
    ) -> Result<tl::enums::SavedStarGift, RpcErr> {
        let gift = match s.unique.and_then(|u| self.uniques.get(&u)) {
            Some(u) => self.tl_unique(u, owner),
            None => {
                let mut g = self.tl_star_gift(&self.gift(s.gift_id)?);
                if let tl::enums::StarGift::Gift(g) = &mut g {
                    self.apply_gift_rules(g, Some(owner));
                }
                g
            }
        };
        let prepaid = self.upgrade_prepaid(owner, s.msg_id);
        Ok(tl::enums::SavedStarGift::Gift(tl::types::SavedStarGift {
            name_hidden: s.name_hidden,
            unsaved: s.unsaved,
            refunded: s.refunded,
            can_upgrade: s.upgrade_stars.is_some() && s.unique.is_none(),
            pinned_to_top: s.pinned,
            // A third user paid the upgrade after the gift was sent (core api/gifts,
            // "Prepaying for someone else's upgrade"; TDLib `is_upgrade_separate`).
            upgrade_separate: prepaid && s.unique.is_none(),
            from_id: s.from.map(tlb::peer_user),
            date: s.date,
            gift,
            message: s.message.as_deref().map(tlb::text),
            msg_id: Some(s.msg_id),
            saved_id: None,
            convert_stars: s.convert_stars,
            upgrade_stars: s.upgrade_stars.filter(|_| s.unique.is_none()),
            can_export_at: None,
            transfer_stars: s.transfer_stars,
            can_transfer_at: s.can_transfer_at,
            can_resell_at: None,
            collection_id: None,
            prepaid_upgrade_hash: self.prepaid_upgrade_hash(owner, s.msg_id),
            drop_original_details_stars: None,
            gift_num: None,
            can_craft_at: None,
        }))
    }

    /// `payments.getSavedStarGifts`.
    pub fn get_saved_star_gifts(
        &self,
        caller: i64,
        req: &tl::functions::payments::GetSavedStarGifts,
    ) -> Result<tl::enums::payments::SavedStarGifts, RpcErr> {
        let owner = self.resolve_input_peer(caller, &req.peer)?;
        let a = self.acc(owner)?;
        let mut v: Vec<&Saved> = a
            .saved
            .values()
            .filter(|s| {
                let unique = s.unique.is_some();
                let limited = self
                    .gift(s.gift_id)
                    .map(|g| g.limited_total.is_some())
                    .unwrap_or(false);
                let upgradable = !unique && s.upgrade_stars.is_some();
                let hidden = owner != caller && s.unsaved;
                // `exclude_hosted`: "gifts that are just hosted and are not owned" (TDLib
                // getReceivedGifts); a hosted collectible has `host_id` set.
                let hosted = s.unique.is_some_and(|u| self.is_hosted(u));
                !(hidden
                    || req.exclude_hosted && hosted
                    || req.exclude_unsaved && s.unsaved
                    || req.exclude_saved && !s.unsaved
                    || req.exclude_unique && unique
                    || req.exclude_unlimited && !unique && !limited
                    || req.exclude_upgradable && upgradable
                    || req.exclude_unupgradable && !unique && !upgradable
                    || req.collection_id.is_some())
            })
            .collect();
        if req.sort_by_value {
            v.sort_by_key(|s| {
                let value = self.gift(s.gift_id).map(|g| g.stars).unwrap_or(0)
                    * if s.unique.is_some() { 10 } else { 1 };
                (
                    !s.pinned,
                    std::cmp::Reverse(value),
                    std::cmp::Reverse(s.msg_id),
                )
            });
        } else {
            v.sort_by_key(|s| (!s.pinned, std::cmp::Reverse(s.msg_id)));
        }
        let offset: usize = if req.offset.is_empty() {
            0
        } else {
            req.offset
                .parse()
                .map_err(|_| RpcErr::bad("OFFSET_INVALID"))?
        };
        if req.limit < 0 {
            return Err(RpcErr::bad("LIMIT_INVALID"));
        }
        let limit = (req.limit as usize).min(1000);
        let end = offset.saturating_add(limit).min(v.len());
        let page = if offset < v.len() {
            &v[offset..end]
        } else {
            &[][..]
        };
        let mut gifts = Vec::with_capacity(page.len());
        let mut ids = vec![owner];
        for s in page {
            gifts.push(self.tl_saved(s, owner)?);
            if let Some(f) = s.from {
                ids.push(f);
            }
        }
        Ok(tl::enums::payments::SavedStarGifts::Gifts(
            tl::types::payments::SavedStarGifts {
                count: v.len() as i32,
                chat_notifications_enabled: None,
                gifts,
                next_offset: (end < v.len()).then(|| end.to_string()),
                chats: Vec::new(),
                users: self.tl_users(&ids, caller),
            },
        ))
    }

    /// `payments.getSavedStarGift` (by input references).
    pub fn get_saved_star_gift(
        &self,
        caller: i64,
        refs: &[tl::enums::InputSavedStarGift],
    ) -> Result<tl::enums::payments::SavedStarGifts, RpcErr> {
        let a = self.acc(caller)?;
        let mut gifts = Vec::new();
        let mut ids = vec![caller];
        for r in refs {
            if let tl::enums::InputSavedStarGift::User(u) = r
                && let Some(s) = a.saved.get(&u.msg_id)
            {
                gifts.push(self.tl_saved(s, caller)?);
                ids.extend(s.from);
            }
        }
        Ok(tl::enums::payments::SavedStarGifts::Gifts(
            tl::types::payments::SavedStarGifts {
                count: gifts.len() as i32,
                chat_notifications_enabled: None,
                gifts,
                next_offset: None,
                chats: Vec::new(),
                users: self.tl_users(&ids, caller),
            },
        ))
    }
}
