use std::collections::HashSet;
use std::time::Duration;

use grammers_client::tl;

use crate::support::*;

fn page_ids(r: &tl::enums::payments::SavedStarGifts) -> (i32, Vec<i32>, Option<String>) {
    let tl::enums::payments::SavedStarGifts::Gifts(p) = r;
    let ids = p
        .gifts
        .iter()
        .map(|tl::enums::SavedStarGift::Gift(g)| g.msg_id.expect("msg_id"))
        .collect();
    (p.count, ids, p.next_offset.clone())
}

#[tokio::test]
async fn saved_star_gifts_paginate_over_ten_thousand() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let players: Vec<i64> = (0..10)
        .map(|i| {
            let p = user(&sim, &format!("p{i}"));
            sim.set_stars(p.id, 10_000_000).expect("stars");
            p.id
        })
        .collect();
    let sent = sim.burst(10_000, &players, deposit.id).expect("burst");
    sim.set_gift_pinned(deposit.id, sent[10].msg_id, true)
        .expect("pin");
    sim.set_gift_pinned(deposit.id, sent[20].msg_id, true)
        .expect("pin");
    let c = TestClient::connect(&sim, deposit.id).await;
    let mut offset = String::new();
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let r = c.invoke(&saved_req(&offset, 100)).await.expect("page");
        let (count, ids, next) = page_ids(&r);
        assert_eq!(count, 10_000);
        all.extend(ids);
        pages += 1;
        match next {
            Some(n) => offset = n,
            None => break,
        }
    }
    assert_eq!(pages, 100);
    assert_eq!(all.len(), 10_000);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 10_000);
    // Pinned first (newest pinned first), then newest first.
    assert_eq!(&all[..2], &[sent[20].msg_id, sent[10].msg_id]);
    let rest = &all[2..];
    assert!(rest.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(rest[0], sent[9_999].msg_id);
}

#[tokio::test]
async fn saved_star_gift_flags_are_honoured() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let p = user(&sim, "player");
    let cat = sim.gift_catalogue();
    let upgradable = cat
        .iter()
        .find(|g| g.upgrade_stars.is_some())
        .expect("upgradable");
    let plain = cat
        .iter()
        .find(|g| g.upgrade_stars.is_none())
        .expect("not upgradable");
    let send = |gift_id| {
        sim.send_gift(tgsim::SendGift {
            from: p.id,
            to: deposit.id,
            gift_id,
            hide_name: false,
            message: None,
        })
        .expect("send")
    };
    let a = send(upgradable.id);
    let b = send(plain.id);
    let u = sim
        .send_unique_gift(tgsim::SendUniqueGift {
            from: p.id,
            to: deposit.id,
            gift_id: upgradable.id,
            ..Default::default()
        })
        .expect("unique");
    sim.set_gift_saved(deposit.id, b.msg_id, false)
        .expect("hide");
    let c = TestClient::connect(&sim, deposit.id).await;
    let ids = |r| page_ids(&r).1;
    let mut req = saved_req("", 100);
    assert_eq!(
        ids(c.invoke(&req).await.expect("all")),
        vec![u.msg_id, b.msg_id, a.msg_id]
    );
    req.exclude_unique = true;
    assert_eq!(
        ids(c.invoke(&req).await.expect("no unique")),
        vec![b.msg_id, a.msg_id]
    );
    req.exclude_unsaved = true;
    assert_eq!(
        ids(c.invoke(&req).await.expect("saved only")),
        vec![a.msg_id]
    );
    let mut req = saved_req("", 100);
    req.exclude_saved = true;
    assert_eq!(
        ids(c.invoke(&req).await.expect("unsaved only")),
        vec![b.msg_id]
    );
    let mut req = saved_req("", 100);
    req.exclude_upgradable = true;
    assert_eq!(
        ids(c.invoke(&req).await.expect("no upgradable")),
        vec![u.msg_id, b.msg_id]
    );
    let mut req = saved_req("", 100);
    req.exclude_unupgradable = true;
    assert_eq!(
        ids(c.invoke(&req).await.expect("no unupgradable")),
        vec![u.msg_id, a.msg_id]
    );
    // A page past the end is empty but still counts everything.
    let (count, page, next) = page_ids(&c.invoke(&saved_req("3", 100)).await.expect("past end"));
    assert_eq!((count, page.len(), next), (3, 0, None));
    // getSavedStarGift by reference.
    let r = c
        .invoke(&tl::functions::payments::GetSavedStarGift {
            stargift: vec![tl::enums::InputSavedStarGift::User(
                tl::types::InputSavedStarGiftUser { msg_id: u.msg_id },
            )],
        })
        .await
        .expect("by ref");
    let tl::enums::payments::SavedStarGifts::Gifts(g) = r;
    let tl::enums::SavedStarGift::Gift(g) = &g.gifts[0];
    match &g.gift {
        tl::enums::StarGift::Unique(x) => assert_eq!(Some(x.id), u.unique_id),
        other => panic!("expected unique, got {other:?}"),
    }
}

/// The service message of a gift in the recipient's dialog, by msg_id.
async fn service_message(c: &TestClient, msg_id: i32) -> tl::types::MessageService {
    let tl::enums::messages::Messages::Messages(r) = c
        .invoke(&tl::functions::messages::GetMessages {
            id: vec![tl::enums::InputMessage::Id(tl::types::InputMessageId {
                id: msg_id,
            })],
        })
        .await
        .expect("getMessages")
    else {
        panic!("expected messages.messages");
    };
    match r.messages.into_iter().next() {
        Some(tl::enums::Message::Service(m)) => m,
        other => panic!("expected a service message, got {other:?}"),
    }
}

fn peer(id: i64) -> tl::enums::Peer {
    tl::enums::Peer::User(tl::types::PeerUser { user_id: id })
}

/// Telegram's sender rule (since layer 119): an incoming message in a private chat has no
/// `from_id`, its sender is the chat's peer; the sender's own (outgoing) copy has `from_id`.
#[tokio::test]
async fn incoming_gift_has_no_from_id_and_sits_in_the_chat_with_its_sender() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let p = user(&sim, "player");
    let gift = sim.gift_catalogue()[0].id;
    let sent = sim
        .send_gift(tgsim::SendGift {
            from: p.id,
            to: deposit.id,
            gift_id: gift,
            hide_name: false,
            message: None,
        })
        .expect("send");
    let c = TestClient::connect(&sim, deposit.id).await;
    let m = service_message(&c, sent.msg_id).await;
    assert!(!m.out);
    assert_eq!(
        m.from_id, None,
        "incoming private messages carry no from_id"
    );
    assert_eq!(m.peer_id, peer(p.id));
    let tl::enums::MessageAction::StarGift(a) = &m.action else {
        panic!("expected messageActionStarGift");
    };
    assert_eq!(a.from_id, None);
    // The sender's copy is outgoing and names its sender.
    let pc = TestClient::connect(&sim, p.id).await;
    let own = service_message(&pc, 1).await;
    assert!(own.out);
    assert_eq!(own.from_id, Some(peer(p.id)));
    assert_eq!(own.peer_id, peer(deposit.id));
}

/// "Hide my name" hides the sender from visitors of the recipient's profile, not from the
/// recipient (savedStarGift.name_hidden: "the gift sender in from_id and the message are set
/// only for the receiver of the gift").
#[tokio::test]
async fn hide_my_name_gift_still_names_its_sender_to_the_recipient() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let p = user(&sim, "player");
    let gift = sim.gift_catalogue()[0].id;
    let sent = sim
        .send_gift(tgsim::SendGift {
            from: p.id,
            to: deposit.id,
            gift_id: gift,
            hide_name: true,
            message: Some("for you".into()),
        })
        .expect("send");
    let c = TestClient::connect(&sim, deposit.id).await;
    let tl::enums::payments::SavedStarGifts::Gifts(r) =
        c.invoke(&saved_req("", 10)).await.expect("page");
    let tl::enums::SavedStarGift::Gift(g) = &r.gifts[0];
    assert_eq!(g.msg_id, Some(sent.msg_id));
    assert_eq!(g.from_id, Some(peer(p.id)));
    assert!(g.name_hidden);
    let tl::enums::TextWithEntities::Entities(t) = g.message.as_ref().expect("message");
    assert_eq!(t.text, "for you");
    let m = service_message(&c, sent.msg_id).await;
    assert_eq!(
        m.peer_id,
        peer(p.id),
        "in the chat with the sender, not 777000"
    );
    assert_eq!(m.from_id, None);
    let tl::enums::MessageAction::StarGift(a) = &m.action else {
        panic!("expected messageActionStarGift");
    };
    assert!(a.name_hidden);
    // The sender paid.
    assert_eq!(
        sim.stars(p.id).expect("stars"),
        10_000 - sim.gift_catalogue()[0].stars
    );
}

#[tokio::test]
async fn old_anonymous_field_is_refused() {
    let err = serde_json::from_str::<tgsim::SendGift>(
        r#"{"from":1,"to":2,"gift_id":3,"anonymous":true}"#,
    )
    .expect_err("unknown field");
    assert!(err.to_string().contains("anonymous"), "{err}");
}

/// A collectible Telegram delivers with no sender: chat with 777000, `assigned`, no from_id.
#[tokio::test]
async fn collectible_from_telegram_has_no_sender() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let sent = sim
        .send_unique_gift(tgsim::SendUniqueGift {
            to: deposit.id,
            gift_id: sim.gift_catalogue()[0].id,
            from_telegram: true,
            ..Default::default()
        })
        .expect("unique");
    let c = TestClient::connect(&sim, deposit.id).await;
    let tl::enums::payments::SavedStarGifts::Gifts(r) =
        c.invoke(&saved_req("", 10)).await.expect("page");
    let tl::enums::SavedStarGift::Gift(g) = &r.gifts[0];
    assert_eq!(g.msg_id, Some(sent.msg_id));
    assert_eq!(g.from_id, None);
    let m = service_message(&c, sent.msg_id).await;
    assert_eq!(m.peer_id, peer(tgsim::SERVICE_USER_ID));
    assert_eq!(m.from_id, None);
    let tl::enums::MessageAction::StarGiftUnique(a) = &m.action else {
        panic!("expected messageActionStarGiftUnique");
    };
    assert!(a.assigned && !a.transferred && !a.upgrade);
    assert_eq!(a.from_id, None);
}

#[tokio::test]
async fn pushed_gift_updates_arrive_in_order() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let p1 = user(&sim, "p1");
    let p2 = user(&sim, "p2");
    let mut c = TestClient::connect(&sim, deposit.id).await;
    let mut stream = c.stream(&sim, false).await;
    let sent = sim.burst(30, &[p1.id, p2.id], deposit.id).expect("burst");
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let u = stream.next(10).await;
        if let Some((id, _)) = gift_of(&u) {
            got.push(id);
        }
    }
    let want: Vec<i32> = sent.iter().map(|s| s.msg_id).collect();
    assert_eq!(got, want);
    // A unique gift arrives as messageActionStarGiftUnique.
    let u = sim
        .send_unique_gift(tgsim::SendUniqueGift {
            from: p1.id,
            to: deposit.id,
            gift_id: sim.gift_catalogue()[0].id,
            ..Default::default()
        })
        .expect("unique");
    loop {
        let upd = stream.next(10).await;
        if let Some((id, unique)) = gift_of(&upd) {
            assert_eq!((id, unique), (u.msg_id, true));
            break;
        }
    }
}

#[tokio::test]
async fn after_a_dropped_connection_get_difference_returns_exactly_the_missed_gifts() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let p = user(&sim, "player");
    let mut c = TestClient::connect(&sim, deposit.id).await;
    let mut stream = c.stream(&sim, false).await;
    c.client.get_me().await.expect("get_me");
    let first = sim.burst(2, &[p.id], deposit.id).expect("burst");
    assert_eq!(
        stream.gifts(2).await,
        vec![first[0].msg_id, first[1].msg_id]
    );

    // While the connection is down (and nothing is pushed), five gifts arrive.
    sim.inject(tgsim::Fault::WithholdUpdates {
        honest_difference: true,
    });
    sim.drop_connections();
    let missed = sim.burst(5, &[p.id], deposit.id).expect("burst");
    sim.clear_faults();
    // One more gift is pushed live; the gap makes the client ask getDifference.
    let live = sim.burst(1, &[p.id], deposit.id).expect("burst");
    let mut want: Vec<i32> = missed.iter().map(|s| s.msg_id).collect();
    want.push(live[0].msg_id);
    assert_eq!(stream.gifts(6).await, want);
    let diffs = sim
        .stats()
        .calls
        .get("updates.getDifference")
        .copied()
        .unwrap_or(0);
    assert!(diffs >= 1, "the missed gifts must come from getDifference");
    // Nothing else (no duplicates) follows.
    while let Some(u) = stream.try_next(1500).await {
        assert!(gift_of(&u).is_none(), "unexpected extra gift update {u:?}");
    }
}

#[tokio::test]
async fn withheld_updates_with_dishonest_difference_are_lost_but_polling_finds_them() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let p = user(&sim, "player");
    let mut c = TestClient::connect(&sim, deposit.id).await;
    let mut stream = c.stream(&sim, false).await;
    c.client.get_me().await.expect("get_me");
    sim.inject(tgsim::Fault::WithholdUpdates {
        honest_difference: false,
    });
    let lost = sim.burst(3, &[p.id], deposit.id).expect("burst");
    // Force a getDifference while the lie is active, and wait until the client asked.
    let diffs = |sim: &tgsim::Sim| {
        sim.stats()
            .calls
            .get("updates.getDifference")
            .copied()
            .unwrap_or(0)
    };
    let before = diffs(&sim);
    sim.drop_connections();
    for _ in 0..200 {
        if diffs(&sim) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        diffs(&sim) > before,
        "the reconnecting client asks getDifference"
    );
    sim.clear_faults();
    let live = sim.burst(1, &[p.id], deposit.id).expect("burst");
    let got = stream.gifts(1).await;
    assert_eq!(got, vec![live[0].msg_id]);
    let (count, ids, _) = page_ids(&c.invoke(&saved_req("", 100)).await.expect("poll"));
    assert_eq!(count, 4);
    for s in &lost {
        assert!(ids.contains(&s.msg_id));
    }
}

#[tokio::test]
async fn upgrade_convert_and_refund_show_in_saved_gifts() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let p = user(&sim, "player");
    let g = sim
        .gift_catalogue()
        .into_iter()
        .find(|g| g.upgrade_stars.is_some())
        .expect("upgradable");
    let send = || {
        sim.send_gift(tgsim::SendGift {
            from: p.id,
            to: deposit.id,
            gift_id: g.id,
            hide_name: false,
            message: None,
        })
        .expect("send")
    };
    let (a, b, c) = (send(), send(), send());
    let up = sim.upgrade_gift(deposit.id, a.msg_id).expect("upgrade");
    assert!(up.msg_id > c.msg_id && up.unique_id.is_some());
    let before = sim.stars(deposit.id).expect("stars");
    assert_eq!(
        sim.convert_gift(deposit.id, b.msg_id).expect("convert"),
        g.convert_stars
    );
    assert_eq!(
        sim.stars(deposit.id).expect("stars"),
        before + g.convert_stars
    );
    sim.refund_gift(deposit.id, c.msg_id).expect("refund");
    let client = TestClient::connect(&sim, deposit.id).await;
    let tl::enums::payments::SavedStarGifts::Gifts(r) =
        client.invoke(&saved_req("", 10)).await.expect("page");
    let got: Vec<(i32, bool, bool)> = r
        .gifts
        .iter()
        .map(|tl::enums::SavedStarGift::Gift(g)| {
            (
                g.msg_id.expect("msg_id"),
                matches!(g.gift, tl::enums::StarGift::Unique(_)),
                g.refunded,
            )
        })
        .collect();
    assert_eq!(got, vec![(up.msg_id, true, false), (c.msg_id, false, true)]);
    // convertStarGift through the API.
    let d = send();
    client
        .invoke(&tl::functions::payments::ConvertStarGift {
            stargift: tl::enums::InputSavedStarGift::User(tl::types::InputSavedStarGiftUser {
                msg_id: d.msg_id,
            }),
        })
        .await
        .expect("convert via api");
    let tl::enums::payments::StarsStatus::Status(st) = client
        .invoke(&tl::functions::payments::GetStarsStatus {
            ton: false,
            peer: tl::enums::InputPeer::PeerSelf,
        })
        .await
        .expect("stars status");
    let tl::enums::StarsAmount::Amount(bal) = st.balance else {
        panic!("expected stars amount");
    };
    assert_eq!(bal.amount, sim.stars(deposit.id).expect("stars"));
}

#[tokio::test]
async fn catch_up_delivers_gifts_received_while_offline() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let p = user(&sim, "player");
    sim.burst(2, &[p.id], deposit.id)
        .expect("before the session");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.session");
    sim.write_session(deposit.id, &path).await.expect("session");
    // While giftd is down, three gifts arrive.
    let offline = sim.burst(3, &[p.id], deposit.id).expect("offline");
    let mut c = TestClient::open(dir, path).await;
    let mut stream = c.stream(&sim, true).await;
    let want: Vec<i32> = offline.iter().map(|s| s.msg_id).collect();
    assert_eq!(stream.gifts(3).await, want);
}

#[tokio::test]
async fn session_state_ahead_of_the_world_is_reset_by_get_difference() {
    use grammers_client::session::Session as _;
    use grammers_client::session::types::{UpdateState, UpdatesState};
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let p = user(&sim, "player");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.session");
    sim.write_session(deposit.id, &path).await.expect("session");
    {
        let s = grammers_client::session::storages::SqliteSession::open(&path)
            .await
            .expect("open");
        s.set_update_state(UpdateState::All(UpdatesState {
            pts: 5000,
            qts: 0,
            date: 1,
            seq: 0,
            channels: Vec::new(),
        }))
        .await
        .expect("stale state");
    }
    let mut c = TestClient::open(dir, path).await;
    let mut stream = c.stream(&sim, true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = sim.burst(1, &[p.id], deposit.id).expect("gift");
    assert_eq!(stream.gifts(1).await, vec![sent[0].msg_id]);
}

#[tokio::test]
async fn upgrade_pushes_the_new_collectible_and_edits_the_original() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let p = user(&sim, "player");
    let g = sim
        .gift_catalogue()
        .into_iter()
        .find(|g| g.upgrade_stars.is_some())
        .expect("upgradable");
    let mut c = TestClient::connect(&sim, deposit.id).await;
    let mut stream = c.stream(&sim, false).await;
    let sent = sim
        .send_gift(tgsim::SendGift {
            from: p.id,
            to: deposit.id,
            gift_id: g.id,
            ..Default::default()
        })
        .expect("send");
    assert_eq!(stream.gifts(1).await, vec![sent.msg_id]);
    let up = sim.upgrade_gift(deposit.id, sent.msg_id).expect("upgrade");
    let mut saw_new = false;
    let mut saw_edit = false;
    while !(saw_new && saw_edit) {
        match stream.next(10).await {
            tl::enums::Update::NewMessage(m) => {
                let tl::enums::Message::Service(s) = m.message else {
                    panic!("service message expected");
                };
                let tl::enums::MessageAction::StarGiftUnique(a) = s.action else {
                    panic!("unique action expected, got {:?}", s.action);
                };
                assert!(a.upgrade);
                assert_eq!(s.id, up.msg_id);
                // The upgrade is the owner's own outgoing message in the chat with the gift's
                // sender; the action names the gift's sender (TDLib MessageContent.cpp).
                assert!(s.out);
                assert_eq!(s.from_id, Some(peer(deposit.id)));
                assert_eq!(s.peer_id, peer(p.id));
                assert_eq!(a.from_id, Some(peer(p.id)));
                saw_new = true;
            }
            tl::enums::Update::EditMessage(m) => {
                let tl::enums::Message::Service(s) = m.message else {
                    panic!("service message expected");
                };
                let tl::enums::MessageAction::StarGift(a) = s.action else {
                    panic!("regular action expected");
                };
                assert_eq!(s.id, sent.msg_id);
                assert!(a.upgraded);
                assert_eq!(a.upgrade_msg_id, Some(up.msg_id));
                saw_edit = true;
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn other_accounts_see_only_saved_gifts_and_need_the_access_hash() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let p = user(&sim, "player");
    let gift = sim.gift_catalogue()[0].id;
    let a = sim
        .send_gift(tgsim::SendGift {
            from: deposit.id,
            to: p.id,
            gift_id: gift,
            ..Default::default()
        })
        .expect("a");
    let b = sim
        .send_gift(tgsim::SendGift {
            from: deposit.id,
            to: p.id,
            gift_id: gift,
            ..Default::default()
        })
        .expect("b");
    sim.set_gift_saved(p.id, b.msg_id, false).expect("hide");
    let c = TestClient::connect(&sim, deposit.id).await;
    let mut req = saved_req("", 10);
    req.peer = tl::enums::InputPeer::User(tl::types::InputPeerUser {
        user_id: p.id,
        access_hash: p.access_hash,
    });
    let (count, ids, _) = page_ids(&c.invoke(&req).await.expect("profile"));
    assert_eq!((count, ids), (1, vec![a.msg_id]));
    req.peer = tl::enums::InputPeer::User(tl::types::InputPeerUser {
        user_id: p.id,
        access_hash: 0,
    });
    match c.invoke(&req).await {
        Err(grammers_client::InvocationError::Rpc(e)) => assert_eq!(e.name, "PEER_ID_INVALID"),
        other => panic!("a wrong access hash must fail, got {other:?}"),
    }
}

#[tokio::test]
async fn absurd_offsets_and_limits_do_not_hurt_the_simulator() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let c = TestClient::connect(&sim, deposit.id).await;
    let (count, ids, next) = page_ids(
        &c.invoke(&saved_req("18446744073709551615", i32::MAX))
            .await
            .expect("huge offset"),
    );
    assert_eq!((count, ids.len(), next), (0, 0, None));
    for (offset, limit) in [("-1", 10), ("abc", 10), ("", -5)] {
        assert!(c.invoke(&saved_req(offset, limit)).await.is_err());
    }
    c.client.get_me().await.expect("still fine");
    assert!(
        sim.send_unique_gift(tgsim::SendUniqueGift {
            from: deposit.id,
            to: deposit.id,
            gift_id: sim.gift_catalogue()[0].id,
            transfer_lock_secs: Some(i64::MAX),
            ..Default::default()
        })
        .is_ok()
    );
}

#[tokio::test]
async fn get_messages_tells_the_fate_of_gifts_that_left_the_list() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let p = user(&sim, "player");
    let g = sim
        .gift_catalogue()
        .into_iter()
        .find(|g| g.upgrade_stars.is_some())
        .expect("upgradable");
    let send = || {
        sim.send_gift(tgsim::SendGift {
            from: p.id,
            to: deposit.id,
            gift_id: g.id,
            ..Default::default()
        })
        .expect("send")
    };
    let (a, b, c) = (send(), send(), send());
    let up = sim.upgrade_gift(deposit.id, a.msg_id).expect("upgrade");
    sim.convert_gift(deposit.id, b.msg_id).expect("convert");
    sim.refund_gift(deposit.id, c.msg_id).expect("refund");
    let client = TestClient::connect(&sim, deposit.id).await;
    let ids = [a.msg_id, b.msg_id, c.msg_id, 9999];
    let r = client
        .invoke(&tl::functions::messages::GetMessages {
            id: ids
                .iter()
                .map(|&id| tl::enums::InputMessage::Id(tl::types::InputMessageId { id }))
                .collect(),
        })
        .await
        .expect("get messages");
    let tl::enums::messages::Messages::Messages(r) = r else {
        panic!("plain messages expected");
    };
    let action = |m: &tl::enums::Message| match m {
        tl::enums::Message::Service(s) => match &s.action {
            tl::enums::MessageAction::StarGift(a) => {
                Some((a.upgraded, a.upgrade_msg_id, a.converted, a.refunded))
            }
            _ => None,
        },
        _ => None,
    };
    assert_eq!(
        action(&r.messages[0]),
        Some((true, Some(up.msg_id), false, false))
    );
    assert_eq!(action(&r.messages[1]), Some((false, None, true, false)));
    assert_eq!(action(&r.messages[2]), Some((false, None, false, true)));
    assert!(matches!(r.messages[3], tl::enums::Message::Empty(_)));
}

#[tokio::test]
async fn many_missed_gifts_come_back_in_difference_slices() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let p = user(&sim, "player");
    sim.set_stars(p.id, 1_000_000).expect("stars");
    let mut c = TestClient::connect(&sim, deposit.id).await;
    let mut stream = c.stream(&sim, false).await;
    sim.inject(tgsim::Fault::WithholdUpdates {
        honest_difference: true,
    });
    let missed = sim.burst(250, &[p.id], deposit.id).expect("burst");
    sim.clear_faults();
    let live = sim.burst(1, &[p.id], deposit.id).expect("live");
    let mut want: Vec<i32> = missed.iter().map(|s| s.msg_id).collect();
    want.push(live[0].msg_id);
    assert_eq!(stream.gifts(251).await, want);
    let diffs = sim
        .stats()
        .calls
        .get("updates.getDifference")
        .copied()
        .unwrap_or(0);
    assert!(
        diffs >= 3,
        "250 missed updates need at least 3 slices, got {diffs}"
    );
}
