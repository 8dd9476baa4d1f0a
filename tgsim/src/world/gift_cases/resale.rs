//! Resale purchases: a buyer buys a collectible on the resale market (Stars or TON) for itself or
//! for someone else.

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use super::Price;
use crate::tlb;
use crate::world::{RpcErr, SERVICE_USER_ID, Saved, SentGift, World};

/// Input of [`World::resale_buy`]: `buyer` buys a collectible on the resale market for `to`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResaleBuy {
    /// Who pays.
    pub buyer: i64,
    /// Who receives it (the buyer itself, or someone else such as the deposit account).
    pub to: i64,
    /// Base catalogue gift of the collectible (a collectible listed by a seller outside the
    /// simulation is minted for the occasion).
    pub gift_id: i64,
    /// The price paid, Stars or TON (`resale_amount`).
    pub price: Price,
    /// Optional text (`inputInvoiceStarGiftResale.message`, layer 230).
    #[serde(default)]
    pub message: Option<String>,
    /// Seconds before the new owner may transfer it (`can_transfer_at`).
    #[serde(default)]
    pub transfer_lock_secs: Option<i64>,
}

impl World {
    /// `buyer` buys a listed collectible for `to` (inputInvoiceStarGiftResale with `to_id`):
    /// `to` gets an incoming `messageActionStarGiftUnique` in the chat with the buyer with
    /// `resale_amount` (Stars or TON), neither `transferred` nor `upgrade`; the buyer gets the
    /// outgoing copy (when `to` is someone else). Stars are taken from the buyer (TON is not
    /// modelled as a balance).
    pub fn resale_buy(&mut self, r: ResaleBuy) -> Result<SentGift, RpcErr> {
        self.acc(r.buyer)?;
        self.acc(r.to)?;
        if r.to != r.buyer {
            self.check_accepts(r.to, true, false)?;
        }
        if let Price::Stars(stars) = r.price {
            if stars <= 0 {
                return Err(RpcErr::bad("STARS_AMOUNT_INVALID"));
            }
            if self.acc(r.buyer)?.stars < stars {
                return Err(RpcErr::bad("BALANCE_TOO_LOW"));
            }
            self.acc_mut(r.buyer)?.stars -= stars;
        }
        let u = self.mint_unique(r.gift_id)?;
        let can_transfer_at = r
            .transfer_lock_secs
            .map(|s| self.now().saturating_add(s).clamp(0, i64::from(i32::MAX)) as i32);
        let date = self.now32();
        let resale = |mut act: tl::enums::MessageAction| {
            if let tl::enums::MessageAction::StarGiftUnique(a) = &mut act {
                a.transferred = false;
                a.resale_amount = Some(r.price.tl());
            }
            act
        };
        let peer = if r.to == r.buyer {
            SERVICE_USER_ID
        } else {
            let own = resale(self.unique_action(
                &u,
                r.to,
                None,
                false,
                false,
                None,
                None,
                r.message.as_deref(),
            ));
            self.deliver(
                r.buyer,
                |id| tlb::service_message(id, true, r.buyer, r.to, date, own),
                None,
            )?;
            r.buyer
        };
        let act = resale(self.unique_action(
            &u,
            r.to,
            None,
            false,
            false,
            None,
            can_transfer_at,
            r.message.as_deref(),
        ));
        let (msg_id, _) = self.deliver(
            r.to,
            |id| tlb::service_message(id, false, r.to, peer, date, act),
            None,
        )?;
        let from = (r.to != r.buyer).then_some(r.buyer);
        self.acc_mut(r.to)?.saved.insert(
            msg_id,
            Saved {
                msg_id,
                from,
                date,
                gift_id: u.gift_id,
                unique: Some(u.id),
                message: r.message,
                name_hidden: false,
                unsaved: false,
                refunded: false,
                pinned: false,
                convert_stars: None,
                upgrade_stars: None,
                transfer_stars: None,
                can_transfer_at,
            },
        );
        Ok(SentGift {
            msg_id,
            to: r.to,
            gift_id: u.gift_id,
            unique_id: Some(u.id),
            slug: Some(u.slug),
            num: Some(u.num),
            date,
        })
    }
}

#[cfg(test)]
mod tests {

    use crate::tlb;

    use crate::world::gift_cases::testkit::*;
    use crate::world::gift_cases::{Price, ResaleBuy};

    #[test]
    fn resale_purchase_for_someone_else_carries_its_price() {
        let (mut w, dep, a, _) = world();
        let stars_before = w.stars(a).expect("stars");
        for price in [Price::Stars(900), Price::Ton(3_500_000_000)] {
            let gift_id = gift(&w);
            let sent = w
                .resale_buy(ResaleBuy {
                    buyer: a,
                    to: dep,
                    gift_id,
                    price,
                    message: Some("deposit".into()),
                    transfer_lock_secs: Some(60),
                })
                .expect("bought");
            let m = wire(&w, dep, sent.msg_id);
            assert!(!m.out);
            assert_eq!(m.peer_id, tlb::peer_user(a));
            let act = unique(&w, dep, sent.msg_id);
            assert!(!act.transferred && !act.upgrade);
            assert_eq!(act.resale_amount, Some(price.tl()));
            assert_eq!(saved(&w, dep, sent.msg_id).from_id, Some(tlb::peer_user(a)));
        }
        assert_eq!(w.stars(a).expect("stars"), stars_before - 900);
    }
}
