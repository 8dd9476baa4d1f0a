//! The gift cases Telegram added in 2025-2026, modelled at layer 230: prepaid upgrades paid by a
//! third user, resale purchases for someone else (Stars or TON), purchase offers and their
//! resolution, auction wins, hosted (blockchain-assigned) collectibles, crafting and burned
//! ingredients, chat themes set to a collectible, collectible values, and the purchase rules of
//! regular gifts (per-user limits, Premium only, locked until a date, auction only) with
//! `payments.checkCanSendGift`.
//!
//! Each behaviour is written the way Telegram does it, with its source in tgsim/FIDELITY.md
//! ("Gift cases since 2025"). The state lives in [`CaseState`], one field of the world, so the
//! rest of the world is unchanged where no case is used. Like the rest of the world: no IO, no
//! panics on client input.

mod auctions;
mod crafting;
mod hosted;
mod offers;
mod resale;
mod rules;
mod themes;
mod upgrades;
mod values;

pub use auctions::{AuctionWin, AuctionWon};
pub use crafting::Craft;
pub use hosted::HostUnique;
pub use offers::{OfferSent, ResolveOffer, SendOffer};
pub use resale::ResaleBuy;
pub use rules::GiftRules;
pub use themes::{ChatTheme, ThemeSet};
pub use upgrades::{PrepaidUpgrade, PrepayUpgrade};
pub use values::UniqueValue;

use std::collections::{HashMap, HashSet};

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use super::{RpcErr, UniqueInfo, World};
use crate::tlb;
use offers::Offer;

/// A price on the gift market: Stars (`starsAmount`) or TON in nanotons (`starsTonAmount`).
/// JSON: `{"stars": 500}` or `{"ton": 1500000000}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Price {
    /// Whole Stars.
    Stars(i64),
    /// Nanotons (1 TON = 10^9).
    Ton(i64),
}

impl Price {
    /// The TL `StarsAmount`.
    pub fn tl(self) -> tl::enums::StarsAmount {
        match self {
            Price::Stars(amount) => {
                tl::enums::StarsAmount::Amount(tl::types::StarsAmount { amount, nanos: 0 })
            }
            Price::Ton(amount) => {
                tl::enums::StarsAmount::StarsTonAmount(tl::types::StarsTonAmount { amount })
            }
        }
    }
}

/// State of the gift cases; a field of [`World`].
#[derive(Debug, Clone, Default)]
pub struct CaseState {
    rules: HashMap<i64, GiftRules>,
    /// Regular gifts bought per (buyer, catalogue gift), for `per_user_remains`.
    bought: HashMap<(i64, i64), i32>,
    premium: HashSet<i64>,
    values: HashMap<i64, UniqueValue>,
    /// Collectibles hosted by an account but owned by a TON wallet: unique id -> owner address.
    hosted: HashMap<i64, String>,
    /// Collectibles burned as crafting ingredients.
    burned: HashSet<i64>,
    /// Collectibles that came out of crafting.
    crafted: HashSet<i64>,
    /// (owner, msg_id) of regular gifts whose upgrade a third user prepaid.
    prepaid: HashSet<(i64, i32)>,
    /// (owner, offer msg_id) -> offer.
    offers: HashMap<(i64, i32), Offer>,
    /// Auction rounds won per catalogue gift, for `gift_num`.
    auction_nums: HashMap<i64, i32>,
}

impl World {
    /// Applies value, listing, hosting and craft state to a `starGiftUnique`.
    pub(super) fn apply_unique_state(&self, u: &mut tl::types::StarGiftUnique, holder: i64) {
        if let Some(v) = self.cases.values.get(&u.id) {
            u.value_amount = v.value_amount;
            u.value_currency = v.value_currency.clone();
            // value_amount, value_currency and value_usd_amount share flag 8.
            u.value_usd_amount = v
                .value_amount
                .map(|_| v.value_usd_amount.unwrap_or_default());
            u.resell_amount =
                (!v.resell.is_empty()).then(|| v.resell.iter().map(|p| p.tl()).collect());
            u.resale_ton_only = v.resale_ton_only;
        }
        if let Some(address) = self.cases.hosted.get(&u.id) {
            u.owner_id = None;
            u.owner_address = Some(address.clone());
            u.host_id = Some(tlb::peer_user(holder));
        }
        u.burned = self.cases.burned.contains(&u.id);
        u.crafted = self.cases.crafted.contains(&u.id);
    }

    /// The collectible a saved gift is, as the account holding it sees it.
    fn unique_of(&self, s: &super::Saved) -> Result<UniqueInfo, RpcErr> {
        let uid = s.unique.ok_or_else(|| RpcErr::bad("STARGIFT_NOT_UNIQUE"))?;
        self.uniques
            .get(&uid)
            .cloned()
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_FOUND"))
    }
}

/// Helpers the tests of every case family share.
#[cfg(test)]
mod testkit {
    use grammers_tl_types::{Deserializable, Serializable};

    use crate::world::{CreateUser, SendGift, SendUniqueGift, SentGift, Ttls, World};
    use grammers_tl_types as tl;

    pub(super) fn world() -> (World, i64, i64, i64) {
        let mut w = World::new(2, "127.0.0.1:1".parse().expect("addr"), 0, Ttls::default());
        let mut user = |name: &str| {
            w.create_user(CreateUser {
                username: name.into(),
                stars: 1_000_000,
                ..CreateUser::default()
            })
            .expect("user")
            .id
        };
        let (dep, a, b) = (user("dep"), user("alice"), user("bob"));
        (w, dep, a, b)
    }

    /// The message as a client decodes it from the wire (every shared flag consistent).
    pub(super) fn wire(w: &World, account: i64, msg_id: i32) -> tl::types::MessageService {
        let m = w.acc(account).expect("account").messages[&msg_id].clone();
        let bytes = m.to_bytes();
        match tl::enums::Message::from_bytes(&bytes).expect("decodes at layer 230") {
            tl::enums::Message::Service(s) => s,
            other => panic!("not a service message: {other:?}"),
        }
    }

    pub(super) fn star_gift(
        w: &World,
        account: i64,
        msg_id: i32,
    ) -> tl::types::MessageActionStarGift {
        match wire(w, account, msg_id).action {
            tl::enums::MessageAction::StarGift(a) => a,
            other => panic!("not messageActionStarGift: {other:?}"),
        }
    }

    pub(super) fn unique(
        w: &World,
        account: i64,
        msg_id: i32,
    ) -> tl::types::MessageActionStarGiftUnique {
        match wire(w, account, msg_id).action {
            tl::enums::MessageAction::StarGiftUnique(a) => a,
            other => panic!("not messageActionStarGiftUnique: {other:?}"),
        }
    }

    pub(super) fn gift(w: &World) -> i64 {
        w.catalogue()[0].id
    }

    pub(super) fn send(w: &mut World, from: i64, to: i64) -> i32 {
        let gift_id = gift(w);
        w.send_gift(SendGift {
            from,
            to,
            gift_id,
            ..SendGift::default()
        })
        .expect("sent")
        .msg_id
    }

    pub(super) fn send_unique(w: &mut World, from: i64, to: i64) -> SentGift {
        let gift_id = gift(w);
        w.send_unique_gift(SendUniqueGift {
            from,
            to,
            gift_id,
            ..SendUniqueGift::default()
        })
        .expect("sent")
    }

    pub(super) fn saved(w: &World, owner: i64, msg_id: i32) -> tl::types::SavedStarGift {
        let s = w.acc(owner).expect("owner").saved[&msg_id].clone();
        let tl::enums::SavedStarGift::Gift(g) = w.tl_saved(&s, owner).expect("saved");
        g
    }
}
