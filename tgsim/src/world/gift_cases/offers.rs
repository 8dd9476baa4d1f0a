//! Purchase offers on a collectible (`payments.sendStarGiftOffer`) and their resolution
//! (`payments.resolveStarGiftOffer`): accepted, the collectible is sold to the buyer; declined, the
//! buyer's held Stars are returned.

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use super::Price;
use crate::tlb;
use crate::world::{RpcErr, Saved, SentGift, UniqueInfo, World};

/// An open purchase offer (`payments.sendStarGiftOffer`), by the owner's offer message id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Offer {
    buyer: i64,
    /// The buyer's copy of the offer message.
    buyer_msg_id: i32,
    /// The owner's saved gift the offer is for.
    gift_msg_id: i32,
    price: Price,
    expires_at: i32,
}

/// Input of [`World::send_offer`]: `buyer` offers to buy `owner`'s collectible.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendOffer {
    /// Who offers.
    pub buyer: i64,
    /// Who holds the collectible.
    pub owner: i64,
    /// The collectible's saved-gift message id in `owner`'s dialog.
    pub msg_id: i32,
    /// Offered price.
    pub price: Price,
    /// Seconds the offer stays open (Telegram: 6 to 72 hours).
    #[serde(default = "default_offer_secs")]
    pub duration_secs: i32,
}

fn default_offer_secs() -> i32 {
    6 * 3600
}

/// What an offer produced: the offer message ids on both sides.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OfferSent {
    /// The owner's incoming offer message (`offer_msg_id` of `payments.resolveStarGiftOffer`).
    pub offer_msg_id: i32,
    /// The buyer's outgoing copy.
    pub buyer_msg_id: i32,
}

/// Input of [`World::resolve_offer`] (`payments.resolveStarGiftOffer`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveOffer {
    /// The collectible's owner (who received the offer).
    pub owner: i64,
    /// The owner's offer message id.
    pub offer_msg_id: i32,
    /// Decline instead of accept.
    #[serde(default)]
    pub decline: bool,
}

impl World {
    fn offer_action(
        &self,
        u: &UniqueInfo,
        owner: i64,
        price: Price,
        expires_at: i32,
    ) -> tl::enums::MessageAction {
        tl::enums::MessageAction::StarGiftPurchaseOffer(
            tl::types::MessageActionStarGiftPurchaseOffer {
                accepted: false,
                declined: false,
                gift: self.tl_unique(u, owner),
                price: price.tl(),
                expires_at,
            },
        )
    }

    /// `buyer` offers to buy `owner`'s collectible (`payments.sendStarGiftOffer`): the owner gets
    /// an incoming `messageActionStarGiftPurchaseOffer` in the chat with the buyer carrying the
    /// OWNER's own collectible; the buyer gets the outgoing copy. Stars are held from the buyer
    /// until the offer is resolved.
    pub fn send_offer(&mut self, o: SendOffer) -> Result<OfferSent, RpcErr> {
        self.acc(o.buyer)?;
        let s = self.saved_gift(o.owner, o.msg_id)?;
        let u = self.unique_of(&s)?;
        if !(6 * 3600..=72 * 3600).contains(&o.duration_secs) {
            return Err(RpcErr::bad("DURATION_INVALID"));
        }
        if let Price::Stars(stars) = o.price {
            if stars <= 0 {
                return Err(RpcErr::bad("STARS_AMOUNT_INVALID"));
            }
            if self.acc(o.buyer)?.stars < stars {
                return Err(RpcErr::bad("BALANCE_TOO_LOW"));
            }
            self.acc_mut(o.buyer)?.stars -= stars;
        }
        let date = self.now32();
        let expires_at = date.saturating_add(o.duration_secs);
        let act = self.offer_action(&u, o.owner, o.price, expires_at);
        let buyer_act = act.clone();
        let (buyer_msg_id, _) = self.deliver(
            o.buyer,
            |id| tlb::service_message(id, true, o.buyer, o.owner, date, buyer_act),
            None,
        )?;
        let (offer_msg_id, _) = self.deliver(
            o.owner,
            |id| tlb::service_message(id, false, o.owner, o.buyer, date, act),
            None,
        )?;
        self.cases.offers.insert(
            (o.owner, offer_msg_id),
            Offer {
                buyer: o.buyer,
                buyer_msg_id,
                gift_msg_id: o.msg_id,
                price: o.price,
                expires_at,
            },
        );
        Ok(OfferSent {
            offer_msg_id,
            buyer_msg_id,
        })
    }

    fn mark_offer(&mut self, account: i64, msg_id: i32, accepted: bool) -> Result<(), RpcErr> {
        self.edit_gift_action(account, msg_id, |act| {
            if let tl::enums::MessageAction::StarGiftPurchaseOffer(a) = act {
                a.accepted = accepted;
                a.declined = !accepted;
            }
        })
    }

    /// `payments.resolveStarGiftOffer`. Declined: both offer messages are edited (`declined`)
    /// and the buyer's Stars are returned. Accepted: the collectible leaves the owner as a sale:
    /// the owner's OUTGOING `messageActionStarGiftUnique` with `from_offer` and `resale_amount`
    /// in the chat with the buyer, the buyer's incoming copy and saved gift; the owner is paid
    /// (Stars; TON is not modelled as a balance). Returns the buyer's new saved gift, if any.
    pub fn resolve_offer(&mut self, r: ResolveOffer) -> Result<Option<SentGift>, RpcErr> {
        let offer = self
            .cases
            .offers
            .remove(&(r.owner, r.offer_msg_id))
            .ok_or_else(|| RpcErr::bad("STARGIFT_OFFER_INVALID"))?;
        let expired = i64::from(offer.expires_at) <= self.now();
        let gift = self.saved_gift(r.owner, offer.gift_msg_id).ok();
        if r.decline || expired || gift.is_none() {
            if let Price::Stars(stars) = offer.price {
                let b = self.acc_mut(offer.buyer)?;
                b.stars = b.stars.saturating_add(stars);
            }
            self.mark_offer(r.owner, r.offer_msg_id, false)?;
            self.mark_offer(offer.buyer, offer.buyer_msg_id, false)?;
            // The buyer is told with a new message (TDLib MessageStarGiftPurchaseOfferDeclined,
            // a reply to the offer; the reply header is not modelled).
            if let Some(s) = &gift
                && let Some(u) = s.unique.and_then(|u| self.uniques.get(&u)).cloned()
            {
                let act = tl::enums::MessageAction::StarGiftPurchaseOfferDeclined(
                    tl::types::MessageActionStarGiftPurchaseOfferDeclined {
                        expired,
                        gift: self.tl_unique(&u, r.owner),
                        price: offer.price.tl(),
                    },
                );
                let date = self.now32();
                self.deliver(
                    offer.buyer,
                    |id| tlb::service_message(id, false, offer.buyer, r.owner, date, act),
                    None,
                )?;
            }
            return if r.decline {
                Ok(None)
            } else {
                Err(RpcErr::bad("STARGIFT_OFFER_EXPIRED"))
            };
        }
        let Some(s) = gift else {
            return Err(RpcErr::bad("STARGIFT_NOT_FOUND"));
        };
        let u = self.unique_of(&s)?;
        self.mark_offer(r.owner, r.offer_msg_id, true)?;
        self.mark_offer(offer.buyer, offer.buyer_msg_id, true)?;
        self.acc_mut(r.owner)?.saved.remove(&offer.gift_msg_id);
        if let Price::Stars(stars) = offer.price {
            let o = self.acc_mut(r.owner)?;
            o.stars = o.stars.saturating_add(stars);
        }
        let date = self.now32();
        let sale = |mut act: tl::enums::MessageAction| {
            if let tl::enums::MessageAction::StarGiftUnique(a) = &mut act {
                a.transferred = false;
                a.from_offer = true;
                a.resale_amount = Some(offer.price.tl());
            }
            act
        };
        let own = sale(self.unique_action(&u, offer.buyer, None, false, false, None, None, None));
        self.deliver(
            r.owner,
            |id| tlb::service_message(id, true, r.owner, offer.buyer, date, own),
            None,
        )?;
        let act = sale(self.unique_action(&u, offer.buyer, None, false, false, None, None, None));
        let (msg_id, _) = self.deliver(
            offer.buyer,
            |id| tlb::service_message(id, false, offer.buyer, r.owner, date, act),
            None,
        )?;
        self.acc_mut(offer.buyer)?.saved.insert(
            msg_id,
            Saved {
                msg_id,
                from: Some(r.owner),
                date,
                message: None,
                name_hidden: false,
                unsaved: false,
                pinned: false,
                transfer_stars: None,
                can_transfer_at: None,
                ..s
            },
        );
        Ok(Some(SentGift {
            msg_id,
            to: offer.buyer,
            gift_id: u.gift_id,
            unique_id: Some(u.id),
            slug: Some(u.slug),
            num: Some(u.num),
            date,
        }))
    }
}

#[cfg(test)]
mod tests {

    use grammers_tl_types as tl;

    use crate::world::World;
    use crate::world::gift_cases::testkit::*;
    use crate::world::gift_cases::{Price, ResolveOffer, SendOffer};

    #[test]
    fn offers_carry_the_owners_gift_and_an_accepted_one_is_a_sale() {
        let (mut w, dep, a, b) = world();
        let held = send_unique(&mut w, a, dep);
        let offer = |w: &mut World| {
            w.send_offer(SendOffer {
                buyer: b,
                owner: dep,
                msg_id: held.msg_id,
                price: Price::Stars(700),
                duration_secs: 6 * 3600,
            })
            .expect("offer")
        };
        let first = offer(&mut w);
        let act = match wire(&w, dep, first.offer_msg_id).action {
            tl::enums::MessageAction::StarGiftPurchaseOffer(o) => o,
            other => panic!("{other:?}"),
        };
        let tl::enums::StarGift::Unique(g) = act.gift else {
            panic!("a collectible")
        };
        assert_eq!(Some(g.id), held.unique_id, "the owner's own collectible");
        let stars = w.stars(b).expect("stars");
        let none = w
            .resolve_offer(ResolveOffer {
                owner: dep,
                offer_msg_id: first.offer_msg_id,
                decline: true,
            })
            .expect("declined");
        assert!(none.is_none());
        assert_eq!(
            w.stars(b).expect("stars"),
            stars + 700,
            "held Stars returned"
        );
        assert_eq!(w.saved_gifts(dep).expect("list").len(), 1);
        let second = offer(&mut w);
        let before = w.acc(dep).expect("dep").next_msg_id;
        let bought = w
            .resolve_offer(ResolveOffer {
                owner: dep,
                offer_msg_id: second.offer_msg_id,
                decline: false,
            })
            .expect("accepted")
            .expect("the buyer's gift");
        assert!(
            w.saved_gifts(dep).expect("list").is_empty(),
            "the gift left"
        );
        let sale = wire(&w, dep, before);
        assert!(sale.out);
        let act = unique(&w, dep, before);
        assert!(act.from_offer && act.resale_amount.is_some());
        assert!(unique(&w, b, bought.msg_id).from_offer);
    }
}
