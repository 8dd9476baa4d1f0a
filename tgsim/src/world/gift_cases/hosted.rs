//! Hosted collectibles: owned by a TON wallet, assigned from the blockchain by 777000 and shown on
//! the host's profile with `host_id` and `owner_address`.

use serde::{Deserialize, Serialize};

use crate::world::{RpcErr, SentGift, World};

/// Input of [`World::host_unique`]: a collectible owned by a TON wallet, shown (hosted) on
/// `host`'s profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostUnique {
    /// The account that hosts it.
    pub host: i64,
    /// Base catalogue gift.
    pub gift_id: i64,
    /// The owning wallet's address (`owner_address`).
    #[serde(default = "default_address")]
    pub owner_address: String,
}

fn default_address() -> String {
    "UQBtgsimHostedGiftOwnerWalletAddress0000000000000".into()
}

impl World {
    /// Whether collectible `unique_id` is only hosted (owned by a TON wallet).
    pub(in crate::world) fn is_hosted(&self, unique_id: i64) -> bool {
        self.cases.hosted.contains_key(&unique_id)
    }

    /// A collectible owned by a TON wallet becomes hosted on `host`'s profile: Telegram assigns
    /// it from the blockchain with a service message from 777000 (`assigned`, no sender), and
    /// getSavedStarGifts lists it with `host_id` = host and `owner_address` (left out with
    /// `exclude_hosted`).
    pub fn host_unique(&mut self, h: HostUnique) -> Result<SentGift, RpcErr> {
        self.acc(h.host)?;
        let u = self.mint_unique(h.gift_id)?;
        self.cases.hosted.insert(u.id, h.owner_address);
        self.give_unique(u, None, h.host, None, None, None, None)
            .map(|(sent, _)| sent)
    }
}

#[cfg(test)]
mod tests {

    use grammers_tl_types as tl;

    use crate::tlb;

    use crate::world::World;
    use crate::world::gift_cases::HostUnique;
    use crate::world::gift_cases::testkit::*;

    #[test]
    fn hosted_collectibles_are_assigned_and_left_out_with_exclude_hosted() {
        let (mut w, dep, _, _) = world();
        let gift_id = gift(&w);
        let sent = w
            .host_unique(HostUnique {
                host: dep,
                gift_id,
                owner_address: "UQwallet".into(),
            })
            .expect("hosted");
        assert!(unique(&w, dep, sent.msg_id).assigned);
        let s = saved(&w, dep, sent.msg_id);
        let tl::enums::StarGift::Unique(u) = s.gift else {
            panic!("a collectible")
        };
        assert_eq!(u.host_id, Some(tlb::peer_user(dep)));
        assert_eq!(u.owner_address.as_deref(), Some("UQwallet"));
        assert!(u.owner_id.is_none());
        let req = |exclude_hosted| tl::functions::payments::GetSavedStarGifts {
            exclude_unsaved: false,
            exclude_saved: false,
            exclude_unlimited: false,
            exclude_unique: false,
            sort_by_value: false,
            exclude_upgradable: false,
            exclude_unupgradable: false,
            peer_color_available: false,
            exclude_hosted,
            peer: tl::enums::InputPeer::PeerSelf,
            collection_id: None,
            offset: String::new(),
            limit: 100,
        };
        let count = |w: &World, ex| {
            let tl::enums::payments::SavedStarGifts::Gifts(p) =
                w.get_saved_star_gifts(dep, &req(ex)).expect("list");
            p.count
        };
        assert_eq!(count(&w, false), 1);
        assert_eq!(count(&w, true), 0);
    }
}
