//! The JSON-over-HTTP control API of `tgsim serve`: a thin wrapper over [`crate::Sim`], so every
//! world operation and fault reachable from Rust is reachable from a script.
//!
//! [`route`] maps one request to one `Sim` call and is tested without sockets; [`serve`] is a
//! minimal HTTP/1.1 server (one request per connection, `Content-Length` bodies up to 1 MiB).
//! Bad requests answer 4xx with `{"error": ...}`; they never stop the simulator.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

mod cases;

use crate::{CreateUser, DisallowedGifts, Fault, SendGift, SendUniqueGift, Sim, SimError};

/// An HTTP answer: status and JSON body.
#[derive(Debug, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
}

fn ok(v: impl serde::Serialize) -> Reply {
    Reply {
        status: 200,
        body: serde_json::to_value(v).unwrap_or(Value::Null),
    }
}

fn err(status: u16, msg: impl Into<String>) -> Reply {
    Reply {
        status,
        body: json!({ "error": msg.into() }),
    }
}

fn sim_err(e: SimError) -> Reply {
    match e {
        SimError::Rpc(r) => Reply {
            status: 400,
            body: json!({ "error": r.message, "code": r.code }),
        },
        other => err(500, other.to_string()),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    let body = if body.is_empty() {
        b"{}" as &[u8]
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| err(400, format!("bad json body: {e}")))
}

fn id(s: &str) -> Result<i64, Reply> {
    s.parse().map_err(|_| err(400, format!("not an id: {s}")))
}

/// Resolves a path segment that is either a numeric id or a username.
fn account_id(sim: &Sim, s: &str) -> Result<i64, Reply> {
    match s.parse::<i64>() {
        Ok(i) => Ok(i),
        Err(_) => sim
            .account_id(s)
            .ok_or_else(|| err(400, format!("USERNAME_NOT_OCCUPIED: {s}"))),
    }
}

#[derive(Deserialize)]
struct OwnerMsg {
    owner: i64,
    msg_id: i32,
    #[serde(default)]
    to: Option<i64>,
    #[serde(default)]
    flag: Option<bool>,
}

#[derive(Deserialize)]
struct Burst {
    n: usize,
    players: Vec<i64>,
    to: i64,
}

#[derive(Deserialize)]
struct Text {
    from: i64,
    text: String,
}

#[derive(Deserialize)]
struct Press {
    from: i64,
    msg_id: i32,
    /// Callback data as UTF-8 text...
    #[serde(default)]
    data: Option<String>,
    /// ...or as hex.
    #[serde(default)]
    data_hex: Option<String>,
    /// Data that need not match a button (a modified client).
    #[serde(default)]
    forged: bool,
}

#[derive(Deserialize)]
struct Username {
    username: String,
}

#[derive(Deserialize)]
struct Provision {
    /// The account; `None` provisions a new key that is not signed in (for login flows).
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
struct KeyFor {
    #[serde(default)]
    account: Option<i64>,
}

#[derive(Deserialize)]
struct Secs {
    secs: i64,
}

#[derive(Deserialize)]
struct Stars {
    stars: i64,
}

#[derive(Deserialize)]
struct Limit {
    total: i32,
    remains: i32,
}

#[derive(Deserialize)]
struct TransferStars {
    owner: i64,
    msg_id: i32,
    /// None (or absent): the transfer becomes free.
    #[serde(default)]
    transfer_stars: Option<i64>,
}

/// Answers one control request. `path` has no query string; `query` is the raw query string.
pub fn route(sim: &Sim, method: &str, path: &str, query: &str, body: &[u8]) -> Reply {
    match route_inner(sim, method, path, query, body) {
        Ok(r) | Err(r) => r,
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn route_inner(
    sim: &Sim,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) -> Result<Reply, Reply> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let Some(r) = cases::route(sim, method, &segs, body) {
        return r;
    }
    let r = match (method, segs.as_slice()) {
        ("GET", ["health"]) => ok(json!({ "ok": true })),
        ("GET", ["info"]) => ok(json!({
            "addr": sim.addr(),
            "advertised": sim.advertised_addr(),
            "dc_id": sim.dc_id(),
        })),
        ("POST", ["accounts"]) => {
            let u: CreateUser = parse(body)?;
            sim.create_user(u).map(ok).map_err(sim_err)?
        }
        ("GET", ["accounts", name]) => sim.account(name).map(ok).map_err(sim_err)?,
        ("GET", ["accounts", a, "gifts"]) => {
            let a = account_id(sim, a)?;
            sim.saved_gifts(a).map(ok).map_err(sim_err)?
        }
        ("GET", ["accounts", a, "stars"]) => {
            let a = account_id(sim, a)?;
            sim.stars(a)
                .map(|s| ok(json!({ "stars": s })))
                .map_err(sim_err)?
        }
        ("POST", ["accounts", a, "stars"]) => {
            let a = account_id(sim, a)?;
            let s: Stars = parse(body)?;
            sim.set_stars(a, s.stars)
                .map(|_| ok(json!({ "stars": s.stars })))
                .map_err(sim_err)?
        }
        ("POST", ["bots"]) => {
            let u: Username = parse(body)?;
            sim.create_bot(&u.username).map(ok).map_err(sim_err)?
        }
        ("POST", ["keys"]) => {
            let k: KeyFor = parse(body)?;
            ok(json!({ "auth_key": hex::encode(sim.new_auth_key(k.account)) }))
        }
        ("GET", ["login_code"]) => {
            let phone = query_param(query, "phone").unwrap_or_default();
            let phone = phone.replace("%2B", "+");
            ok(json!({ "code": sim.login_code(&phone) }))
        }
        ("POST", ["provision"]) => {
            let u: Provision = parse(body)?;
            let key = match u.username {
                Some(name) => sim.account(&name).map_err(sim_err)?.auth_key,
                None => sim.new_auth_key(None),
            };
            let spec = sim
                .session_spec(crate::SessionFor::Key(Box::new(key)))
                .map_err(sim_err)?;
            ok(json!({
                "dc_id": spec.dc_id,
                "addr": spec.addr,
                "auth_key": hex::encode(spec.auth_key),
                "user_id": spec.user.map(|u| u.0),
                "access_hash": spec.user.map(|u| u.1),
                "bot": spec.user.map(|u| u.2),
                "pts": spec.state.map(|s| s.0),
                "date": spec.state.map(|s| s.1),
            }))
        }
        ("GET", ["catalogue"]) => ok(sim.gift_catalogue()),
        ("POST", ["catalogue", g, "limit"]) => {
            let l: Limit = parse(body)?;
            sim.set_gift_limit(id(g)?, l.total, l.remains)
                .map(|_| ok(json!({})))
                .map_err(sim_err)?
        }
        ("POST", ["catalogue", g, "sell_out"]) => sim
            .sell_out_gift(id(g)?)
            .map(|_| ok(json!({})))
            .map_err(sim_err)?,
        ("POST", ["catalogue", g, "price"]) => {
            let s: Stars = parse(body)?;
            sim.set_gift_price(id(g)?, s.stars)
                .map(|_| ok(json!({})))
                .map_err(sim_err)?
        }
        ("POST", ["gifts", "transfer_stars"]) => {
            let t: TransferStars = parse(body)?;
            sim.set_transfer_stars(t.owner, t.msg_id, t.transfer_stars)
                .map(|_| ok(json!({})))
                .map_err(sim_err)?
        }
        ("GET", ["accounts", a, "disallowed_gifts"]) => {
            let a = account_id(sim, a)?;
            sim.disallowed_gifts(a).map(ok).map_err(sim_err)?
        }
        ("POST", ["accounts", a, "disallowed_gifts"]) => {
            let a = account_id(sim, a)?;
            let d: DisallowedGifts = parse(body)?;
            sim.set_disallowed_gifts(a, d)
                .map(|_| ok(d))
                .map_err(sim_err)?
        }
        ("POST", ["gifts"]) => {
            let g: SendGift = parse(body)?;
            sim.send_gift(g).map(ok).map_err(sim_err)?
        }
        ("POST", ["gifts", "unique"]) => {
            let g: SendUniqueGift = parse(body)?;
            sim.send_unique_gift(g).map(ok).map_err(sim_err)?
        }
        ("POST", ["gifts", op]) => {
            let o: OwnerMsg = parse(body)?;
            match *op {
                "transfer" => {
                    let to = o.to.ok_or_else(|| err(400, "transfer needs `to`"))?;
                    sim.transfer_gift(o.owner, o.msg_id, to).map(ok)
                }
                "upgrade" => sim.upgrade_gift(o.owner, o.msg_id).map(ok),
                "convert" => sim
                    .convert_gift(o.owner, o.msg_id)
                    .map(|s| ok(json!({ "stars": s }))),
                "refund" => sim.refund_gift(o.owner, o.msg_id).map(|_| ok(json!({}))),
                "saved" => sim
                    .set_gift_saved(o.owner, o.msg_id, o.flag.unwrap_or(true))
                    .map(|_| ok(json!({}))),
                "pin" => sim
                    .set_gift_pinned(o.owner, o.msg_id, o.flag.unwrap_or(true))
                    .map(|_| ok(json!({}))),
                _ => return Err(err(404, format!("no gift operation {op}"))),
            }
            .map_err(sim_err)?
        }
        ("POST", ["burst"]) => {
            let b: Burst = parse(body)?;
            sim.burst(b.n, &b.players, b.to)
                .map(|v| {
                    ok(json!({
                        "sent": v.len(),
                        "msg_ids": v.iter().map(|g| g.msg_id).collect::<Vec<_>>(),
                    }))
                })
                .map_err(sim_err)?
        }
        ("POST", ["bots", bot, "messages"]) => {
            let bot = account_id(sim, bot)?;
            let t: Text = parse(body)?;
            sim.send_text_to_bot(t.from, bot, &t.text)
                .map(|m| ok(json!({ "msg_id": m })))
                .map_err(sim_err)?
        }
        ("GET", ["bots", bot, "messages", player]) => {
            let bot = account_id(sim, bot)?;
            let player = account_id(sim, player)?;
            sim.bot_messages_to(bot, player).map(ok).map_err(sim_err)?
        }
        ("POST", ["bots", bot, "press"]) => {
            let bot = account_id(sim, bot)?;
            let p: Press = parse(body)?;
            let data = match (p.data, p.data_hex) {
                (Some(s), _) => s.into_bytes(),
                (None, Some(h)) => {
                    hex::decode(h).map_err(|e| err(400, format!("data_hex: {e}")))?
                }
                (None, None) => return Err(err(400, "press needs `data` or `data_hex`")),
            };
            if p.forged {
                sim.press_forged(p.from, bot, p.msg_id, &data)
            } else {
                sim.press_button(p.from, bot, p.msg_id, &data)
            }
            .map(|q| ok(json!({ "query_id": q.to_string() })))
            .map_err(sim_err)?
        }
        ("GET", ["bots", bot, "commands"]) => {
            let bot = account_id(sim, bot)?;
            match query_param(query, "lang") {
                Some(lang) => sim.bot_commands_for(bot, lang),
                None => sim.bot_commands(bot),
            }
            .map(ok)
            .map_err(sim_err)?
        }
        ("GET", ["callbacks", q]) => ok(sim.callback_answer(id(q)?)),
        ("GET", ["faults"]) => ok(sim.faults()),
        ("POST", ["faults"]) => {
            let f: Fault = parse(body)?;
            sim.inject(f);
            ok(sim.faults())
        }
        ("DELETE", ["faults"]) => {
            sim.clear_faults();
            ok(json!([]))
        }
        ("POST", ["drop_connections"]) => {
            sim.drop_connections();
            ok(json!({}))
        }
        ("POST", ["clock_skew"]) => {
            let s: Secs = parse(body)?;
            sim.set_clock_skew(s.secs);
            ok(json!({ "secs": s.secs }))
        }
        ("GET", ["stats"]) => ok(sim.stats()),
        _ => err(404, format!("no route {method} {path}")),
    };
    Ok(r)
}

/// Serves the control API until `cancel` fires.
pub async fn serve(listener: TcpListener, sim: Sim, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let sim = sim.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &sim).await {
                tracing::debug!(error = %e, "control request failed");
            }
        });
    }
}

/// Binds and serves in the background; returns the bound address.
pub async fn start(
    addr: SocketAddr,
    sim: Sim,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind(addr).await?;
    let bound = l.local_addr()?;
    tokio::spawn(serve(l, sim, cancel));
    Ok(bound)
}

const MAX_BODY: usize = 1 << 20;

async fn handle(stream: TcpStream, sim: &Sim) -> std::io::Result<()> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::other("timeout"))??;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("/").to_owned();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).await? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let reply = if len > MAX_BODY {
        err(413, "body too large")
    } else {
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await?;
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        route(sim, &method, path, query, &body)
    };
    let body = serde_json::to_vec_pretty(&reply.body).unwrap_or_default();
    let reason = match reply.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Payload Too Large",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        body.len()
    );
    let mut s = r.into_inner();
    s.write_all(head.as_bytes()).await?;
    s.write_all(&body).await?;
    s.shutdown().await
}

/// A minimal HTTP client for the control API (used by `tgsim provision` and tests).
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let hostport = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut s = TcpStream::connect(&hostport)
        .await
        .map_err(|e| format!("connect {hostport}: {e}"))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("malformed http response")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("malformed status line")?;
    let v: Value = serde_json::from_str(body).map_err(|e| format!("bad json: {e}"))?;
    if status != 200 {
        return Err(format!("{status}: {v}"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn routes_cover_accounts_gifts_faults() {
        let sim = Sim::start(crate::SimConfig::default()).await.expect("sim");
        let r = route(&sim, "POST", "/accounts", "", br#"{"username":"dep"}"#);
        assert_eq!(r.status, 200, "{:?}", r.body);
        let dep = r.body["id"].as_i64().expect("id");
        assert_eq!(r.body["auth_key"].as_str().expect("key").len(), 512);
        let p = route(&sim, "POST", "/accounts", "", br#"{"username":"p"}"#).body["id"]
            .as_i64()
            .expect("id");
        let gift = sim.gift_catalogue()[0].id;
        let body = format!(r#"{{"from":{p},"to":{dep},"gift_id":{gift}}}"#);
        let r = route(&sim, "POST", "/gifts", "", body.as_bytes());
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = route(&sim, "GET", "/accounts/dep/gifts", "", b"");
        assert_eq!(r.body.as_array().expect("list").len(), 1);
        let r = route(
            &sim,
            "POST",
            "/faults",
            "",
            br#"{"kind":"flood_wait","method":"help.getConfig","seconds":3,"count":1}"#,
        );
        assert_eq!(r.status, 200);
        assert_eq!(sim.faults().len(), 1);
        assert_eq!(route(&sim, "DELETE", "/faults", "", b"").status, 200);
        assert!(sim.faults().is_empty());
        assert_eq!(route(&sim, "GET", "/nope", "", b"").status, 404);
        assert_eq!(route(&sim, "POST", "/gifts", "", b"{not json").status, 400);
        let r = route(
            &sim,
            "POST",
            "/gifts",
            "",
            br#"{"from":1,"to":2,"gift_id":3}"#,
        );
        assert_eq!(r.status, 400);
        sim.shutdown().await;
    }

    /// Every route in the README answers 200 for a sensible request.
    #[tokio::test]
    async fn every_documented_route_answers() {
        let sim = Sim::start(crate::SimConfig::default()).await.expect("sim");
        let call = |method: &str, path: &str, body: Value| {
            let (path, query) = path.split_once('?').unwrap_or((path, ""));
            let body = if body.is_null() {
                Vec::new()
            } else {
                body.to_string().into_bytes()
            };
            let r = route(&sim, method, path, query, &body);
            assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
            r.body
        };
        call("GET", "/health", Value::Null);
        call("GET", "/info", Value::Null);
        let dep = call(
            "POST",
            "/accounts",
            json!({"username": "deposit", "phone": "+15550100", "stars": 0}),
        )["id"]
            .as_i64()
            .expect("id");
        let alice = call(
            "POST",
            "/accounts",
            json!({"username": "alice", "password": "pw"}),
        )["id"]
            .as_i64()
            .expect("id");
        call("GET", "/accounts/alice", Value::Null);
        call("POST", "/bots", json!({"username": "giftd_bot"}));
        call("POST", "/keys", json!({"account": null}));
        call("GET", "/login_code?phone=%2B15550100", Value::Null);
        call("POST", "/provision", json!({"username": "deposit"}));
        call("POST", "/provision", json!({}));
        call("GET", "/accounts/deposit/stars", Value::Null);
        call("POST", "/accounts/alice/stars", json!({"stars": 100000}));
        let gift = call("GET", "/catalogue", Value::Null)[0]["id"]
            .as_i64()
            .expect("gift");
        let g =
            json!({"from": alice, "to": dep, "gift_id": gift, "hide_name": false, "message": "gg"});
        let m1 = call("POST", "/gifts", g.clone())["msg_id"]
            .as_i64()
            .expect("m");
        let m2 = call("POST", "/gifts", g.clone())["msg_id"]
            .as_i64()
            .expect("m");
        let m3 = call("POST", "/gifts", g)["msg_id"].as_i64().expect("m");
        let u = call(
            "POST",
            "/gifts/unique",
            json!({"from": alice, "to": dep, "gift_id": gift, "transfer_stars": 25, "transfer_lock_secs": 3600}),
        );
        assert_eq!(u["num"], 1);
        let free = call(
            "POST",
            "/gifts/unique",
            json!({"from": dep, "to": alice, "gift_id": gift}),
        )["msg_id"]
            .as_i64()
            .expect("m");
        call(
            "POST",
            "/gifts/transfer",
            json!({"owner": alice, "msg_id": free, "to": dep}),
        );
        call(
            "POST",
            "/gifts/upgrade",
            json!({"owner": dep, "msg_id": m1}),
        );
        call(
            "POST",
            "/gifts/convert",
            json!({"owner": dep, "msg_id": m2}),
        );
        call("POST", "/gifts/refund", json!({"owner": dep, "msg_id": m3}));
        call(
            "POST",
            "/gifts/saved",
            json!({"owner": dep, "msg_id": m3, "flag": false}),
        );
        call(
            "POST",
            "/gifts/pin",
            json!({"owner": dep, "msg_id": m3, "flag": true}),
        );
        let b = call(
            "POST",
            "/burst",
            json!({"n": 5, "players": [alice], "to": dep}),
        );
        assert_eq!(b["sent"], 5);
        let gifts = call("GET", "/accounts/deposit/gifts", Value::Null);
        assert_eq!(gifts[0]["msg_id"], m3, "pinned first");
        let limited = format!("/catalogue/{gift}/limit");
        call("POST", &limited, json!({"total": 100, "remains": 3}));
        call(
            "POST",
            &format!("/catalogue/{gift}/price"),
            json!({"stars": 20}),
        );
        call("POST", &format!("/catalogue/{gift}/sell_out"), Value::Null);
        let cat = call("GET", "/catalogue", Value::Null);
        assert_eq!(cat[0]["limited_remains"], 0);
        assert_eq!(cat[0]["stars"], 20);
        let u2 = call(
            "POST",
            "/gifts/unique",
            json!({"from": alice, "to": dep, "gift_id": gift}),
        )["msg_id"]
            .as_i64()
            .expect("m");
        call(
            "POST",
            "/gifts/transfer_stars",
            json!({"owner": dep, "msg_id": u2, "transfer_stars": 50}),
        );
        let d = call(
            "POST",
            "/accounts/alice/disallowed_gifts",
            json!({"unlimited": true, "limited": false, "unique": true}),
        );
        assert_eq!(d["unique"], true);
        assert_eq!(
            call("GET", "/accounts/alice/disallowed_gifts", Value::Null)["unlimited"],
            true
        );
        call(
            "POST",
            "/bots/giftd_bot/messages",
            json!({"from": alice, "text": "/inventory"}),
        );
        call("GET", "/bots/giftd_bot/messages/alice", Value::Null);
        call("GET", "/bots/giftd_bot/commands", Value::Null);
        call("GET", "/callbacks/-4410", Value::Null);
        for f in [
            json!({"kind": "flood_wait", "method": "payments.getSavedStarGifts", "seconds": 7, "count": 2}),
            json!({"kind": "rpc_error", "method": "payments.transferStarGift", "code": 500, "message": "RPC_CALL_FAIL", "count": 1}),
            json!({"kind": "withhold_updates", "honest_difference": true}),
            json!({"kind": "delay", "method": null, "millis": 1500}),
            json!({"kind": "drop_connections"}),
            json!({"kind": "clock_skew", "secs": 400}),
            json!({"kind": "empty_saved_gifts_page", "count": 2}),
            json!({"kind": "updates_too_long"}),
            json!({"kind": "drop_answer", "method": "payments.sendStarsForm", "count": 1}),
        ] {
            call("POST", "/faults", f);
        }
        assert_eq!(
            call("GET", "/faults", Value::Null).as_array().map(Vec::len),
            Some(7)
        );
        call("DELETE", "/faults", Value::Null);
        call("POST", "/drop_connections", Value::Null);
        call("POST", "/clock_skew", json!({"secs": -600}));
        call("GET", "/stats", Value::Null);
        // A press needs a bot message with that button: unknown data is a 400, not a crash.
        let r = route(
            &sim,
            "POST",
            "/bots/giftd_bot/press",
            "",
            format!(r#"{{"from":{alice},"msg_id":1,"data":"wd:1"}}"#).as_bytes(),
        );
        assert_eq!(r.status, 400);
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn http_round_trip() {
        let sim = Sim::start(crate::SimConfig::default()).await.expect("sim");
        let cancel = CancellationToken::new();
        let addr = start(
            "127.0.0.1:0".parse().expect("addr"),
            sim.clone(),
            cancel.clone(),
        )
        .await
        .expect("bind");
        let base = format!("http://{addr}");
        let v = request(&base, "POST", "/bots", Some(&json!({"username": "b"})))
            .await
            .expect("create bot");
        assert!(v["token"].as_str().expect("token").contains(':'));
        let e = request(&base, "GET", "/accounts/missing", None).await;
        assert!(e.expect_err("missing").starts_with("400"));
        cancel.cancel();
        sim.shutdown().await;
    }
}
