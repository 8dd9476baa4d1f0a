//! Crafting (`payments.craftStarGift`): an owner crafts 1-4 collectibles it holds into one, which
//! reuses the first ingredient's id and number; every ingredient is burned.

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use crate::tlb;
use crate::world::{RpcErr, SERVICE_USER_ID, Saved, SentGift, World};

/// Input of [`World::craft`]: `owner` crafts 1-4 collectibles it holds into one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Craft {
    /// Who crafts.
    pub owner: i64,
    /// The ingredients' saved-gift message ids; the first gives its id and number.
    pub msg_ids: Vec<i32>,
}

impl World {
    /// Crafts 1-4 collectibles of `owner` into one (`payments.craftStarGift`): the result reuses
    /// the first ingredient's id and number, every ingredient is burned (gone from the saved
    /// list), and a service message with `craft` carries the result.
    pub fn craft(&mut self, c: Craft) -> Result<SentGift, RpcErr> {
        if c.msg_ids.is_empty() || c.msg_ids.len() > 4 {
            return Err(RpcErr::bad("STARGIFT_CRAFT_COUNT_INVALID"));
        }
        let mut ingredients = Vec::with_capacity(c.msg_ids.len());
        for &m in &c.msg_ids {
            let s = self.saved_gift(c.owner, m)?;
            let uid = s.unique.ok_or_else(|| RpcErr::bad("STARGIFT_NOT_UNIQUE"))?;
            if ingredients.iter().any(|(_, u)| *u == uid) {
                return Err(RpcErr::bad("STARGIFT_INVALID"));
            }
            ingredients.push((s, uid));
        }
        let first = ingredients[0].1;
        if self.is_hosted(first) {
            // "The first passed gift must not be located on the TON blockchain."
            return Err(RpcErr::bad("STARGIFT_INVALID"));
        }
        let base = self
            .uniques
            .get(&first)
            .cloned()
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_FOUND"))?;
        for (s, uid) in &ingredients {
            self.acc_mut(c.owner)?.saved.remove(&s.msg_id);
            self.cases.burned.insert(*uid);
        }
        // The crafted gift keeps the first ingredient's id and number: it is not burned.
        self.cases.burned.remove(&first);
        self.cases.crafted.insert(first);
        let date = self.now32();
        let mut act = self.unique_action(&base, c.owner, None, false, false, None, None, None);
        if let tl::enums::MessageAction::StarGiftUnique(a) = &mut act {
            a.transferred = false;
            a.craft = true;
        }
        let (msg_id, _) = self.deliver(
            c.owner,
            |id| tlb::service_message(id, false, c.owner, SERVICE_USER_ID, date, act),
            None,
        )?;
        let (first_saved, _) = ingredients.swap_remove(0);
        self.acc_mut(c.owner)?.saved.insert(
            msg_id,
            Saved {
                msg_id,
                date,
                message: None,
                ..first_saved
            },
        );
        Ok(SentGift {
            msg_id,
            to: c.owner,
            gift_id: base.gift_id,
            unique_id: Some(base.id),
            slug: Some(base.slug),
            num: Some(base.num),
            date,
        })
    }
}

#[cfg(test)]
mod tests {

    use grammers_tl_types as tl;

    use crate::world::gift_cases::Craft;
    use crate::world::gift_cases::testkit::*;

    #[test]
    fn crafting_reuses_the_first_id_and_burns_the_rest() {
        let (mut w, dep, a, _) = world();
        let x = send_unique(&mut w, a, dep);
        let y = send_unique(&mut w, a, dep);
        let c = w
            .craft(Craft {
                owner: dep,
                msg_ids: vec![x.msg_id, y.msg_id],
            })
            .expect("crafted");
        assert_eq!((c.unique_id, c.num), (x.unique_id, x.num));
        let act = unique(&w, dep, c.msg_id);
        assert!(act.craft);
        let tl::enums::StarGift::Unique(g) = act.gift else {
            panic!("a collectible")
        };
        assert!(g.crafted && !g.burned);
        let list = w.saved_gifts(dep).expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].msg_id, c.msg_id);
        assert_eq!(list[0].from, Some(a), "keeps the first ingredient's sender");
    }
}
