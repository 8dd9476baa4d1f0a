//! Control routes for the gift cases Telegram added in 2025-2026; each maps one JSON body to one
//! [`Sim`] call (see `crate::sim_cases` and tgsim/FIDELITY.md "Gift cases since 2025").
//!
//! | Route | Body | Answer |
//! |---|---|---|
//! | `POST /gifts/prepaid_upgrade` | `{payer, owner, msg_id}` | `{notice_msg_id, gift_msg_id, stars}` |
//! | `POST /gifts/resale_buy` | `{buyer, to, gift_id, price: {"stars": n} or {"ton": nanotons}, message?, transfer_lock_secs?}` | the receiver's `SentGift` |
//! | `POST /gifts/offers` | `{buyer, owner, msg_id, price, duration_secs?}` | `{offer_msg_id, buyer_msg_id}` |
//! | `POST /gifts/offers/resolve` | `{owner, offer_msg_id, decline?}` | `{gift: SentGift or null}` (the buyer's, when accepted) |
//! | `POST /gifts/auction_win` | `{winner, to, gift_id, bid_stars}` | `{winner_msg_id, gift, gift_num}` |
//! | `POST /gifts/hosted` | `{host, gift_id, owner_address?}` | the host's `SentGift` |
//! | `POST /gifts/craft` | `{owner, msg_ids: [..]}` | the crafted `SentGift` |
//! | `POST /gifts/value` | `{owner, msg_id, value_amount?, value_currency?, value_usd_amount?, resell?: [price..], resale_ton_only?}` | `{unique_id}` |
//! | `POST /chat_theme` | `{from, to, msg_id}` | `{from_msg_id, to_msg_id}` |
//! | `POST /catalogue/{gift}/rules` | `{per_user_total?, require_premium?, locked_until_date?, auction?}` | `{}` |
//! | `POST /accounts/{a}/premium` | `{premium}` | `{premium}` |
//!
//! The other side upgrading a gift the account sent needs no route of its own: `POST
//! /gifts/upgrade` by the gift's owner also gives the gift's sender its incoming copy.

use serde::Deserialize;
use serde_json::json;

use super::{Reply, account_id, id, ok, parse, sim_err};
use crate::Sim;
use crate::world::{
    AuctionWin, ChatTheme, Craft, GiftRules, HostUnique, PrepayUpgrade, ResaleBuy, ResolveOffer,
    SendOffer, UniqueValue,
};

/// `UniqueValue` refuses unknown fields itself (serde cannot deny them through `flatten`).
#[derive(Deserialize)]
struct Value {
    owner: i64,
    msg_id: i32,
    #[serde(flatten)]
    value: UniqueValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Premium {
    premium: bool,
}

/// Answers the request if it is one of these routes.
pub(super) fn route(
    sim: &Sim,
    method: &str,
    segs: &[&str],
    body: &[u8],
) -> Option<Result<Reply, Reply>> {
    let r = match (method, segs) {
        ("POST", ["gifts", "prepaid_upgrade"]) => parse::<PrepayUpgrade>(body)
            .and_then(|p| sim.prepay_upgrade(p).map(ok).map_err(sim_err)),
        ("POST", ["gifts", "resale_buy"]) => {
            parse::<ResaleBuy>(body).and_then(|r| sim.resale_buy(r).map(ok).map_err(sim_err))
        }
        ("POST", ["gifts", "offers"]) => {
            parse::<SendOffer>(body).and_then(|o| sim.send_offer(o).map(ok).map_err(sim_err))
        }
        ("POST", ["gifts", "offers", "resolve"]) => parse::<ResolveOffer>(body).and_then(|r| {
            sim.resolve_offer(r)
                .map(|g| ok(json!({ "gift": g })))
                .map_err(sim_err)
        }),
        ("POST", ["gifts", "auction_win"]) => {
            parse::<AuctionWin>(body).and_then(|a| sim.auction_win(a).map(ok).map_err(sim_err))
        }
        ("POST", ["gifts", "hosted"]) => {
            parse::<HostUnique>(body).and_then(|h| sim.host_unique(h).map(ok).map_err(sim_err))
        }
        ("POST", ["gifts", "craft"]) => {
            parse::<Craft>(body).and_then(|c| sim.craft(c).map(ok).map_err(sim_err))
        }
        ("POST", ["gifts", "value"]) => parse::<Value>(body).and_then(|v| {
            sim.set_unique_value(v.owner, v.msg_id, v.value)
                .map(|u| ok(json!({ "unique_id": u })))
                .map_err(sim_err)
        }),
        ("POST", ["chat_theme"]) => {
            parse::<ChatTheme>(body).and_then(|t| sim.set_chat_theme(t).map(ok).map_err(sim_err))
        }
        ("POST", ["catalogue", g, "rules"]) => id(g).and_then(|g| {
            parse::<GiftRules>(body).and_then(|r| {
                sim.set_gift_rules(g, r)
                    .map(|_| ok(json!({})))
                    .map_err(sim_err)
            })
        }),
        ("POST", ["accounts", a, "premium"]) => account_id(sim, a).and_then(|a| {
            parse::<Premium>(body).and_then(|p| {
                sim.set_premium(a, p.premium)
                    .map(|_| ok(json!({ "premium": p.premium })))
                    .map_err(sim_err)
            })
        }),
        _ => return None,
    };
    Some(r)
}
