//! Prepaid upgrades: a third user pays for the upgrade of a regular gift another account holds
//! (a new notice in their chat points at the original), whose upgrade is then free.

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use crate::tlb;
use crate::world::{RpcErr, World};

/// Input of [`World::prepay_upgrade`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepayUpgrade {
    /// Who pays (any user holding the hash).
    pub payer: i64,
    /// Who holds the regular gift.
    pub owner: i64,
    /// The gift's service message id in `owner`'s dialog.
    pub msg_id: i32,
}

/// What a prepaid upgrade produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PrepaidUpgrade {
    /// The notice's message id in the owner's dialog (chat with the payer).
    pub notice_msg_id: i32,
    /// The original gift's message id (`gift_msg_id` of the notice).
    pub gift_msg_id: i32,
    /// Stars the payer paid.
    pub stars: i64,
}

impl World {
    /// The `prepaid_upgrade_hash` of `owner`'s upgradable regular gift `msg_id`: set while the
    /// gift can still be upgraded and nobody has prepaid it.
    pub(in crate::world) fn prepaid_upgrade_hash(&self, owner: i64, msg_id: i32) -> Option<String> {
        let s = self.acc(owner).ok()?.saved.get(&msg_id)?;
        if s.unique.is_some() || s.upgrade_stars.is_none() || s.refunded {
            return None;
        }
        if self.cases.prepaid.contains(&(owner, msg_id)) {
            return None;
        }
        Some(format!(
            "{:016x}{:08x}",
            owner.rotate_left(17) ^ 0x5f3759df,
            msg_id
        ))
    }

    /// Whether a third user prepaid the upgrade of `owner`'s gift `msg_id`.
    pub(in crate::world) fn upgrade_prepaid(&self, owner: i64, msg_id: i32) -> bool {
        self.cases.prepaid.contains(&(owner, msg_id))
    }

    /// `payer` pays for the upgrade of `owner`'s regular gift (inputInvoiceStarGiftPrepaidUpgrade
    /// with its hash): a NEW `messageActionStarGift` about the same gift goes to both sides, in
    /// their chat: `prepaid_upgrade` and `upgrade_separate` set, `gift_msg_id` = the original's
    /// message id. The original stays where it is and its upgrade is now free.
    pub fn prepay_upgrade(&mut self, p: PrepayUpgrade) -> Result<PrepaidUpgrade, RpcErr> {
        self.acc(p.payer)?;
        let s = self.saved_gift(p.owner, p.msg_id)?;
        if s.unique.is_some() {
            return Err(RpcErr::bad("STARGIFT_ALREADY_UPGRADED"));
        }
        let Some(stars) = s.upgrade_stars else {
            return Err(RpcErr::bad("STARGIFT_UPGRADE_UNAVAILABLE"));
        };
        if self.upgrade_prepaid(p.owner, p.msg_id) {
            return Err(RpcErr::bad("STARGIFT_ALREADY_UPGRADED"));
        }
        if self.acc(p.payer)?.stars < stars {
            return Err(RpcErr::bad("BALANCE_TOO_LOW"));
        }
        self.acc_mut(p.payer)?.stars -= stars;
        self.cases.prepaid.insert((p.owner, p.msg_id));
        let mut act = self.regular_action(&s)?;
        if let tl::enums::MessageAction::StarGift(a) = &mut act {
            a.prepaid_upgrade = true;
            a.upgrade_separate = true;
            a.gift_msg_id = Some(p.msg_id);
            a.can_upgrade = false;
            a.upgrade_stars = Some(stars);
            a.convert_stars = None;
            a.message = None;
            a.saved = false;
        }
        let date = self.now32();
        let payer_act = act.clone();
        self.deliver(
            p.payer,
            |id| tlb::service_message(id, true, p.payer, p.owner, date, payer_act),
            None,
        )?;
        let (notice_msg_id, _) = self.deliver(
            p.owner,
            |id| tlb::service_message(id, false, p.owner, p.payer, date, act),
            None,
        )?;
        Ok(PrepaidUpgrade {
            notice_msg_id,
            gift_msg_id: p.msg_id,
            stars,
        })
    }
}

#[cfg(test)]
mod tests {

    use crate::tlb;

    use crate::world::gift_cases::PrepayUpgrade;
    use crate::world::gift_cases::testkit::*;

    #[test]
    fn prepaid_upgrade_notice_points_at_the_original_and_the_upgrade_says_so() {
        let (mut w, dep, a, b) = world();
        let original = send(&mut w, a, dep);
        assert!(saved(&w, dep, original).prepaid_upgrade_hash.is_some());
        let n = w
            .prepay_upgrade(PrepayUpgrade {
                payer: b,
                owner: dep,
                msg_id: original,
            })
            .expect("prepaid");
        let notice = wire(&w, dep, n.notice_msg_id);
        assert!(!notice.out);
        assert_eq!(notice.peer_id, tlb::peer_user(b));
        let act = star_gift(&w, dep, n.notice_msg_id);
        assert!(act.prepaid_upgrade && act.upgrade_separate);
        assert_eq!(act.gift_msg_id, Some(original));
        let s = saved(&w, dep, original);
        assert!(s.prepaid_upgrade_hash.is_none() && s.upgrade_separate);
        assert_eq!(
            w.saved_gifts(dep).expect("list").len(),
            1,
            "no new saved gift"
        );
        let again = w.prepay_upgrade(PrepayUpgrade {
            payer: b,
            owner: dep,
            msg_id: original,
        });
        assert_eq!(
            again.expect_err("twice").message,
            "STARGIFT_ALREADY_UPGRADED"
        );
        let up = w.upgrade_gift(dep, original).expect("upgrade");
        assert!(unique(&w, dep, up.msg_id).prepaid_upgrade);
    }

    #[test]
    fn the_sender_of_an_upgraded_gift_gets_an_incoming_upgrade() {
        let (mut w, dep, a, _) = world();
        let sent = send(&mut w, dep, a);
        let before = w.acc(dep).expect("dep").next_msg_id;
        w.upgrade_gift(a, sent).expect("upgrade");
        let m = wire(&w, dep, before);
        assert!(!m.out, "incoming for the sender");
        assert_eq!(m.peer_id, tlb::peer_user(a));
        assert!(unique(&w, dep, before).upgrade);
        assert!(w.saved_gifts(dep).expect("list").is_empty());
    }
}
