//! Protocol details checked with tgsim's raw client: transports grammers does not use,
//! containers, gzip, service messages, msg_id rules and parity.

use std::io::Write as _;
use std::time::Duration;

use grammers_client::tl::{self, Deserializable, Serializable};
use tgsim::raw::{Answer, RawClient, RawError};
use tgsim::transport::Kind;

use crate::support::*;

fn get_self() -> Vec<u8> {
    tl::functions::users::GetUsers {
        id: vec![tl::enums::InputUser::UserSelf],
    }
    .to_bytes()
}

fn self_id(a: Answer) -> i64 {
    let Answer::Result(body) = a else {
        panic!("expected a result, got {a:?}");
    };
    let users = Vec::<tl::enums::User>::from_bytes(&body).expect("users");
    match &users[0] {
        tl::enums::User::User(u) => u.id,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn every_transport_works() {
    let sim = sim().await;
    let acc = user(&sim, "deposit");
    for kind in [
        Kind::Full,
        Kind::Intermediate,
        Kind::PaddedIntermediate,
        Kind::Abridged,
    ] {
        let mut c = RawClient::connect(sim.addr(), acc.auth_key, kind)
            .await
            .expect("connect");
        let id = self_id(c.call(&get_self()).await.expect("call"));
        assert_eq!(id, acc.id, "{kind:?}");
        if kind != Kind::Full {
            let mut c = RawClient::connect_obfuscated(sim.addr(), acc.auth_key, kind)
                .await
                .expect("connect obfuscated");
            let id = self_id(c.call(&get_self()).await.expect("obfuscated call"));
            assert_eq!(id, acc.id, "obfuscated {kind:?}");
            let Answer::Result(_) = c
                .call(&saved_req("", 100).to_bytes())
                .await
                .expect("obfuscated big")
            else {
                panic!("saved gifts failed on obfuscated {kind:?}");
            };
        }
        // A big answer (over 127 words) exercises long abridged lengths and gzip.
        let Answer::Result(_) = c.call(&saved_req("", 100).to_bytes()).await.expect("big") else {
            panic!("saved gifts failed on {kind:?}");
        };
    }
}

#[tokio::test]
async fn containers_gzip_and_wrappers_are_unwrapped() {
    let sim = sim().await;
    let acc = user(&sim, "deposit");
    let mut c = RawClient::connect(sim.addr(), acc.auth_key, Kind::Full)
        .await
        .expect("connect");
    // Learn the salt first.
    c.call(&get_self()).await.expect("warm up");

    // gzip_packed request.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&get_self()).expect("gzip");
    let mut packed = 0x3072cfa1u32.to_le_bytes().to_vec();
    gz.finish().expect("gzip").serialize(&mut packed);
    assert_eq!(self_id(c.call(&packed).await.expect("gzip call")), acc.id);

    // invokeWithLayer(initConnection(invokeAfterMsg(getUsers))).
    let mut inner = 0xcb9f372du32.to_le_bytes().to_vec();
    0i64.serialize(&mut inner);
    inner.extend(get_self());
    let mut init = 0xc1cd5ea9u32.to_le_bytes().to_vec();
    0u32.serialize(&mut init);
    1i32.serialize(&mut init);
    for s in ["dev", "sys", "1.0", "en", "", "en"] {
        s.to_string().serialize(&mut init);
    }
    init.extend(inner);
    let mut layer = 0xda9b0d0du32.to_le_bytes().to_vec();
    230i32.serialize(&mut layer);
    layer.extend(init);
    assert_eq!(self_id(c.call(&layer).await.expect("wrapped")), acc.id);

    // get_future_salts answers bare future_salts.
    let Answer::Bare(salts) = c
        .call(&tl::functions::GetFutureSalts { num: 3 }.to_bytes())
        .await
        .expect("salts")
    else {
        panic!("future_salts must be bare");
    };
    let tl::enums::FutureSalts::Salts(s) =
        tl::enums::FutureSalts::from_bytes(&salts).expect("parse");
    assert_eq!(s.salts.0.len(), 3);
    assert!(s.salts.0[0].valid_since <= s.now && s.now < s.salts.0[0].valid_until);

    // ping answers a bare pong.
    let Answer::Bare(_) = c
        .call(&tl::functions::Ping { ping_id: 99 }.to_bytes())
        .await
        .expect("ping")
    else {
        panic!("pong must be bare");
    };
}

#[tokio::test]
async fn message_container_with_two_requests() {
    let sim = sim().await;
    let acc = user(&sim, "deposit");
    let mut c = RawClient::connect(sim.addr(), acc.auth_key, Kind::Intermediate)
        .await
        .expect("connect");
    c.call(&get_self()).await.expect("warm up");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let a = (now << 32) + 4_000_000;
    let b = a + 4;
    let mut cont = 0x73f1f8dcu32.to_le_bytes().to_vec();
    2i32.serialize(&mut cont);
    for (id, body) in [
        (a, get_self()),
        (b, tl::functions::updates::GetState {}.to_bytes()),
    ] {
        id.serialize(&mut cont);
        1i32.serialize(&mut cont);
        (body.len() as i32).serialize(&mut cont);
        cont.extend(body);
    }
    c.send_raw(b + 4, 2, &cont).await.expect("send container");
    let mut answered = Vec::new();
    while answered.len() < 2 {
        for (server_id, m) in c.recv().await.expect("recv") {
            assert_eq!(server_id % 4, 1, "responses have msg_id = 1 mod 4");
            if m[..4] == 0xf35c6d01u32.to_le_bytes() {
                answered.push(i64::from_le_bytes(m[4..12].try_into().expect("8 bytes")));
            }
        }
    }
    answered.sort();
    assert_eq!(
        answered,
        vec![a, b],
        "rpc_result.req_msg_id names the inner messages"
    );
}

#[tokio::test]
async fn msg_id_low_bits_get_bad_msg_18_and_pushes_are_odd() {
    let sim = sim().await;
    let acc = user(&sim, "deposit");
    let p = user(&sim, "p");
    let mut c = RawClient::connect(sim.addr(), acc.auth_key, Kind::Abridged)
        .await
        .expect("connect");
    c.call(&get_self()).await.expect("warm up");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    c.send_raw((now << 32) | 0x1001, 1, &get_self())
        .await
        .expect("send");
    let msgs = c.recv().await.expect("recv");
    let body = &msgs[0].1;
    assert_eq!(body[..4], 0xa7eff811u32.to_le_bytes());
    assert_eq!(i32::from_le_bytes(body[16..20].try_into().expect("4")), 18);
    assert!(sim.stats().bad_msg_18 >= 1);
    // Server-initiated messages (pushed updates) have msg_id = 3 mod 4.
    sim.burst(1, &[p.id], acc.id).expect("gift");
    let msgs = c.recv().await.expect("push");
    assert_eq!(msgs[0].0 % 4, 3);
}

#[tokio::test]
async fn invoke_without_updates_gets_no_pushes() {
    let sim = sim().await;
    let acc = user(&sim, "deposit");
    let p = user(&sim, "p");
    let mut c = RawClient::connect(sim.addr(), acc.auth_key, Kind::Full)
        .await
        .expect("connect");
    let mut wrapped = 0xbf9459b7u32.to_le_bytes().to_vec();
    wrapped.extend(get_self());
    c.call(&wrapped).await.expect("call");
    sim.burst(1, &[p.id], acc.id).expect("gift");
    assert!(c.next_update(Duration::from_millis(500)).await.is_err());
    c.call(&get_self()).await.expect("plain call subscribes");
    sim.burst(1, &[p.id], acc.id).expect("gift");
    let u = c.next_update(Duration::from_secs(5)).await.expect("pushed");
    assert!(matches!(
        tl::enums::Updates::from_bytes(&u).expect("updates"),
        tl::enums::Updates::Updates(_)
    ));
}

#[tokio::test]
async fn ping_delay_disconnect_closes_the_connection() {
    let sim = sim().await;
    let acc = user(&sim, "deposit");
    let mut c = RawClient::connect(sim.addr(), acc.auth_key, Kind::Full)
        .await
        .expect("connect");
    c.call(&get_self()).await.expect("warm up");
    c.call(
        &tl::functions::PingDelayDisconnect {
            ping_id: 1,
            disconnect_delay: 1,
        }
        .to_bytes(),
    )
    .await
    .expect("pong");
    let r = tokio::time::timeout(Duration::from_secs(5), c.recv()).await;
    assert!(matches!(r, Ok(Err(RawError::Transport(_)))), "{r:?}");
}

#[tokio::test]
async fn unsigned_key_gets_401_and_unknown_key_gets_404() {
    let sim = sim().await;
    let key = sim.new_auth_key(None);
    let mut c = RawClient::connect(sim.addr(), key, Kind::Full)
        .await
        .expect("connect");
    assert_eq!(
        c.call(&get_self()).await.expect("answer"),
        Answer::Error(401, "AUTH_KEY_UNREGISTERED".into())
    );
    let mut c = RawClient::connect(sim.addr(), [1u8; 256], Kind::Intermediate)
        .await
        .expect("connect");
    match c.call(&get_self()).await {
        Err(RawError::Status(-404)) => {}
        other => panic!("expected -404, got {other:?}"),
    }
}

#[tokio::test]
async fn seq_no_parity_is_checked() {
    let sim = sim().await;
    let acc = user(&sim, "deposit");
    let mut c = RawClient::connect(sim.addr(), acc.auth_key, Kind::Full)
        .await
        .expect("connect");
    c.call(&get_self()).await.expect("warm up");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let code = |msgs: Vec<(i64, Vec<u8>)>| {
        let body = &msgs[0].1;
        assert_eq!(body[..4], 0xa7eff811u32.to_le_bytes());
        i32::from_le_bytes(body[16..20].try_into().expect("4"))
    };
    // An RPC (content-related) with an even seq_no.
    c.send_raw((now << 32) + 0x10_0000, 2, &get_self())
        .await
        .expect("send");
    assert_eq!(code(c.recv().await.expect("recv")), 35);
    // An ack (not content-related) with an odd seq_no.
    let ack = tl::enums::MsgsAck::Ack(tl::types::MsgsAck { msg_ids: vec![1] }).to_bytes();
    c.send_raw((now << 32) + 0x20_0000, 5, &ack)
        .await
        .expect("send");
    assert_eq!(code(c.recv().await.expect("recv")), 34);
    assert_eq!(sim.stats().bad_msg_other, 2);
}
