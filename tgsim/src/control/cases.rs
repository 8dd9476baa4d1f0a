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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::control::route;

    /// Every route of this module answers 200 for a sensible request and 400 for a bad one.
    #[tokio::test]
    async fn every_case_route_answers() {
        let sim = crate::Sim::start(crate::SimConfig::default())
            .await
            .expect("sim");
        let call = |method: &str, path: &str, body: Value| {
            let r = route(&sim, method, path, "", body.to_string().as_bytes());
            assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
            r.body
        };
        let user = |name: &str| {
            call(
                "POST",
                "/accounts",
                json!({"username": name, "stars": 1_000_000}),
            )["id"]
                .as_i64()
                .expect("id")
        };
        let (dep, a, b) = (user("dep"), user("a"), user("b"));
        let gift = call("GET", "/catalogue", Value::Null)[0]["id"]
            .as_i64()
            .expect("gift");
        let regular = call(
            "POST",
            "/gifts",
            json!({"from": a, "to": dep, "gift_id": gift}),
        )["msg_id"]
            .as_i64()
            .expect("m");
        let n = call(
            "POST",
            "/gifts/prepaid_upgrade",
            json!({"payer": b, "owner": dep, "msg_id": regular}),
        );
        assert_eq!(n["gift_msg_id"], regular);
        let bought = call(
            "POST",
            "/gifts/resale_buy",
            json!({"buyer": a, "to": dep, "gift_id": gift, "price": {"ton": 1_000_000_000}}),
        )["msg_id"]
            .as_i64()
            .expect("m");
        let offer = call(
            "POST",
            "/gifts/offers",
            json!({"buyer": b, "owner": dep, "msg_id": bought, "price": {"stars": 10}}),
        )["offer_msg_id"]
            .as_i64()
            .expect("m");
        let r = call(
            "POST",
            "/gifts/offers/resolve",
            json!({"owner": dep, "offer_msg_id": offer, "decline": true}),
        );
        assert_eq!(r["gift"], Value::Null);
        call(
            "POST",
            "/gifts/value",
            json!({"owner": dep, "msg_id": bought, "value_amount": 500, "value_currency": "USD",
                   "value_usd_amount": 500, "resell": [{"stars": 100}]}),
        );
        let won = call(
            "POST",
            "/gifts/auction_win",
            json!({"winner": a, "to": dep, "gift_id": gift, "bid_stars": 100}),
        );
        assert_eq!(won["gift_num"], 1);
        call(
            "POST",
            "/gifts/hosted",
            json!({"host": dep, "gift_id": gift}),
        );
        let second = call(
            "POST",
            "/gifts/resale_buy",
            json!({"buyer": a, "to": dep, "gift_id": gift, "price": {"stars": 10}}),
        )["msg_id"]
            .as_i64()
            .expect("m");
        call(
            "POST",
            "/gifts/craft",
            json!({"owner": dep, "msg_ids": [bought, second]}),
        );
        let own = call(
            "POST",
            "/gifts/resale_buy",
            json!({"buyer": a, "to": a, "gift_id": gift, "price": {"stars": 10}}),
        )["msg_id"]
            .as_i64()
            .expect("m");
        call(
            "POST",
            "/chat_theme",
            json!({"from": a, "to": dep, "msg_id": own}),
        );
        call(
            "POST",
            &format!("/catalogue/{gift}/rules"),
            json!({"per_user_total": 3, "require_premium": true}),
        );
        call("POST", "/accounts/dep/premium", json!({"premium": true}));
        let bad = |path: &str, body: &str| route(&sim, "POST", path, "", body.as_bytes()).status;
        assert_eq!(
            bad("/gifts/value", r#"{"owner":1,"msg_id":1,"worth":3}"#),
            400
        );
        assert_eq!(bad("/gifts/resale_buy", r#"{"buyer":1}"#), 400);
        assert_eq!(bad("/catalogue/x/rules", "{}"), 400);
        sim.shutdown().await;
    }
}
