//! Purchase rules of regular gifts: per-user limits, Premium only, locked until a date, auction
//! only, checked before payment, and `payments.checkCanSendGift` saying why a purchase is refused.

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use crate::tlb;
use crate::world::{RpcErr, World};

/// Purchase rules of a catalogue gift beyond the edition size (`starGift` flags). Unknown fields
/// are refused.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct GiftRules {
    /// `limited_per_user` + `per_user_total`: how many one user may buy (for anyone).
    pub per_user_total: Option<i32>,
    /// `require_premium`: only Premium users may buy it.
    pub require_premium: bool,
    /// `locked_until_date`: not for sale before this unix time.
    pub locked_until_date: Option<i32>,
    /// `auction`: only obtainable by bidding in its auction, never bought directly.
    pub auction: bool,
}

/// Why `payments.checkCanSendGift` refuses (None: may buy).
fn refusal_text(r: &str) -> &'static str {
    match r {
        "STARGIFT_USER_USAGE_LIMITED" => "You have already bought the maximum number of this gift.",
        "PREMIUM_ACCOUNT_REQUIRED" => "This gift is available to Telegram Premium users only.",
        "STARGIFT_LOCKED" => "This gift is not available for purchase yet.",
        "STARGIFT_AUCTION_ONLY" => "This gift can only be obtained in its auction.",
        "STARGIFT_USAGE_LIMITED" => "This gift is sold out.",
        _ => "This gift cannot be sent.",
    }
}

impl World {
    /// Sets the purchase rules of catalogue gift `gift_id`.
    pub fn set_gift_rules(&mut self, gift_id: i64, rules: GiftRules) -> Result<(), RpcErr> {
        self.gift(gift_id)?;
        if rules.per_user_total.is_some_and(|t| t <= 0) {
            return Err(RpcErr::bad("LIMIT_INVALID"));
        }
        self.cases.rules.insert(gift_id, rules);
        Ok(())
    }

    /// Makes `account` a Premium user or not.
    pub fn set_premium(&mut self, account: i64, premium: bool) -> Result<(), RpcErr> {
        self.acc(account)?;
        if premium {
            self.cases.premium.insert(account);
        } else {
            self.cases.premium.remove(&account);
        }
        Ok(())
    }

    /// Whether `account` is a Premium user.
    pub fn is_premium(&self, account: i64) -> bool {
        self.cases.premium.contains(&account)
    }

    fn rules(&self, gift_id: i64) -> GiftRules {
        self.cases.rules.get(&gift_id).copied().unwrap_or_default()
    }

    /// `per_user_remains` of `gift_id` for `buyer` (None when not limited per user).
    fn per_user_remains(&self, buyer: i64, gift_id: i64) -> Option<i32> {
        let total = self.rules(gift_id).per_user_total?;
        let bought = self
            .cases
            .bought
            .get(&(buyer, gift_id))
            .copied()
            .unwrap_or(0);
        Some((total - bought).max(0))
    }

    /// The refusal Telegram gives `buyer` for buying regular gift `gift_id` now, if any: the
    /// per-user limit, Premium only, locked, auction only, sold out (in that order).
    pub(in crate::world) fn purchase_refusal(&self, buyer: i64, gift_id: i64) -> Option<RpcErr> {
        let rules = self.rules(gift_id);
        if self.per_user_remains(buyer, gift_id) == Some(0) {
            return Some(RpcErr::bad("STARGIFT_USER_USAGE_LIMITED"));
        }
        if rules.require_premium && !self.is_premium(buyer) {
            return Some(RpcErr::new(403, "PREMIUM_ACCOUNT_REQUIRED"));
        }
        if rules
            .locked_until_date
            .is_some_and(|t| i64::from(t) > self.now())
        {
            return Some(RpcErr::bad("STARGIFT_LOCKED"));
        }
        if rules.auction {
            return Some(RpcErr::bad("STARGIFT_AUCTION_ONLY"));
        }
        let g = self.gift(gift_id).ok()?;
        if g.limited_total.is_some() && g.limited_remains == Some(0) {
            return Some(RpcErr::bad("STARGIFT_USAGE_LIMITED"));
        }
        None
    }

    /// Counts a regular gift `buyer` bought (for the per-user limit).
    pub(in crate::world) fn count_purchase(&mut self, buyer: i64, gift_id: i64) {
        *self.cases.bought.entry((buyer, gift_id)).or_insert(0) += 1;
    }

    /// `payments.checkCanSendGift`: ok, or fail with a reason text.
    pub fn check_can_send_gift(
        &self,
        caller: i64,
        gift_id: i64,
    ) -> Result<tl::enums::payments::CheckCanSendGiftResult, RpcErr> {
        self.gift(gift_id)?;
        Ok(match self.purchase_refusal(caller, gift_id) {
            None => tl::enums::payments::CheckCanSendGiftResult::Ok,
            Some(e) => tl::enums::payments::CheckCanSendGiftResult::Fail(
                tl::types::payments::CheckCanSendGiftResultFail {
                    reason: tlb::text(refusal_text(&e.message)),
                },
            ),
        })
    }

    /// Applies the purchase rules to a `starGift` as `viewer` sees it (`per_user_remains` is the
    /// viewer's; without a viewer, the full allowance).
    pub(in crate::world) fn apply_gift_rules(
        &self,
        g: &mut tl::types::StarGift,
        viewer: Option<i64>,
    ) {
        let rules = self.rules(g.id);
        g.require_premium = rules.require_premium;
        g.limited_per_user = rules.per_user_total.is_some();
        g.per_user_total = rules.per_user_total;
        g.per_user_remains = rules.per_user_total.map(|total| {
            viewer
                .and_then(|v| self.per_user_remains(v, g.id))
                .unwrap_or(total)
        });
        g.locked_until_date = rules.locked_until_date;
        g.auction = rules.auction;
        if rules.auction {
            g.auction_slug = Some(format!("auction-{}", g.id));
            g.gifts_per_round = Some(50);
            g.auction_start_date = Some(self.now32());
        }
    }
}

#[cfg(test)]
mod tests {
    use grammers_tl_types::{Deserializable, Serializable};

    use grammers_tl_types as tl;

    use crate::world::gift_cases::GiftRules;
    use crate::world::gift_cases::testkit::*;
    use crate::world::{SendGift, World};

    #[test]
    fn purchase_rules_refuse_before_payment_and_check_can_send_gift_says_why() {
        let (mut w, dep, a, _) = world();
        let gift_id = gift(&w);
        let ok = |w: &World| {
            matches!(
                w.check_can_send_gift(dep, gift_id).expect("check"),
                tl::enums::payments::CheckCanSendGiftResult::Ok
            )
        };
        w.set_gift_rules(
            gift_id,
            GiftRules {
                per_user_total: Some(1),
                ..GiftRules::default()
            },
        )
        .expect("rules");
        assert!(ok(&w));
        send(&mut w, dep, a);
        assert!(!ok(&w), "per-user limit reached");
        let e = w
            .send_gift(SendGift {
                from: dep,
                to: a,
                gift_id,
                ..SendGift::default()
            })
            .expect_err("limit");
        assert_eq!(e.message, "STARGIFT_USER_USAGE_LIMITED");
        let e = w
            .gift_payment_form(dep, a, gift_id, false, false, None)
            .expect_err("no form");
        assert_eq!(e.message, "STARGIFT_USER_USAGE_LIMITED");
        // The starGift in the buyer's own saved gift shows the buyer's allowance.
        let received = send(&mut w, a, dep);
        let tl::enums::StarGift::Gift(g) = saved(&w, dep, received).gift else {
            panic!("regular")
        };
        assert!(g.limited_per_user);
        assert_eq!((g.per_user_total, g.per_user_remains), (Some(1), Some(0)));
        for (rules, error) in [
            (
                GiftRules {
                    require_premium: true,
                    ..GiftRules::default()
                },
                "PREMIUM_ACCOUNT_REQUIRED",
            ),
            (
                GiftRules {
                    locked_until_date: Some(i32::MAX),
                    ..GiftRules::default()
                },
                "STARGIFT_LOCKED",
            ),
            (
                GiftRules {
                    auction: true,
                    ..GiftRules::default()
                },
                "STARGIFT_AUCTION_ONLY",
            ),
        ] {
            w.set_gift_rules(gift_id, rules).expect("rules");
            assert!(!ok(&w), "{error}");
            let e = w
                .gift_payment_form(dep, a, gift_id, false, false, None)
                .expect_err(error);
            assert_eq!(e.message, error);
        }
        w.set_premium(dep, true).expect("premium");
        w.set_gift_rules(
            gift_id,
            GiftRules {
                require_premium: true,
                ..GiftRules::default()
            },
        )
        .expect("rules");
        assert!(ok(&w), "Premium may buy");
        let auction = GiftRules {
            auction: true,
            ..GiftRules::default()
        };
        w.set_gift_rules(gift_id, auction).expect("rules");
        let g = w.tl_star_gift(&w.gift(gift_id).expect("gift"));
        let bytes = g.to_bytes();
        let tl::enums::StarGift::Gift(g) =
            tl::enums::StarGift::from_bytes(&bytes).expect("decodes")
        else {
            panic!("regular")
        };
        assert!(g.auction && g.auction_slug.is_some());
    }
}
