//! Buying catalogue gifts for another user, refused recipients, changed prices, lost answers,
//! and reading a private chat's history: with the real grammers 0.11 client.

use std::time::Duration;

use grammers_client::{InvocationError, tl};

use crate::support::*;

fn saved(msg_id: i32) -> tl::enums::InputSavedStarGift {
    tl::enums::InputSavedStarGift::User(tl::types::InputSavedStarGiftUser { msg_id })
}

fn peer(a: &tgsim::Account) -> tl::enums::InputPeer {
    tl::enums::InputPeer::User(tl::types::InputPeerUser {
        user_id: a.id,
        access_hash: a.access_hash,
    })
}

fn rpc(e: InvocationError) -> (i32, String, Option<u32>) {
    match e {
        InvocationError::Rpc(e) => (e.code, e.name, e.value),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

fn gift_invoice(to: &tgsim::Account, gift_id: i64) -> tl::enums::InputInvoice {
    tl::enums::InputInvoice::StarGift(tl::types::InputInvoiceStarGift {
        hide_name: false,
        include_upgrade: false,
        peer: peer(to),
        gift_id,
        message: Some(tl::enums::TextWithEntities::Entities(
            tl::types::TextWithEntities {
                text: "back to you".into(),
                entities: Vec::new(),
            },
        )),
    })
}

fn transfer_invoice(msg_id: i32, to: &tgsim::Account) -> tl::enums::InputInvoice {
    tl::enums::InputInvoice::StarGiftTransfer(tl::types::InputInvoiceStarGiftTransfer {
        stargift: saved(msg_id),
        to_id: peer(to),
    })
}

/// payments.getPaymentForm: (form_id, price).
async fn form(
    c: &TestClient,
    invoice: &tl::enums::InputInvoice,
) -> Result<(i64, i64), InvocationError> {
    let f = c
        .invoke(&tl::functions::payments::GetPaymentForm {
            invoice: invoice.clone(),
            theme_params: None,
        })
        .await?;
    let tl::enums::payments::PaymentForm::StarGift(f) = f else {
        panic!("expected payments.paymentFormStarGift, got {f:?}");
    };
    let tl::enums::Invoice::Invoice(inv) = &f.invoice;
    assert_eq!(inv.currency, "XTR");
    assert_eq!(inv.prices.len(), 1, "one price, as TDLib checks");
    let tl::enums::LabeledPrice::Price(p) = &inv.prices[0];
    Ok((f.form_id, p.amount))
}

async fn pay(
    c: &TestClient,
    form_id: i64,
    invoice: &tl::enums::InputInvoice,
) -> Result<tl::enums::Updates, InvocationError> {
    let r = c
        .invoke(&tl::functions::payments::SendStarsForm {
            form_id,
            invoice: invoice.clone(),
        })
        .await?;
    let tl::enums::payments::PaymentResult::Result(r) = r else {
        panic!("expected payments.paymentResult, got {r:?}");
    };
    Ok(r.updates)
}

/// The service messages (id, out, action) of an Updates answer.
fn service_messages(u: &tl::enums::Updates) -> Vec<(i32, bool, tl::enums::MessageAction)> {
    let tl::enums::Updates::Updates(u) = u else {
        panic!("expected updates, got {u:?}");
    };
    u.updates
        .iter()
        .filter_map(|u| match u {
            tl::enums::Update::NewMessage(m) => match &m.message {
                tl::enums::Message::Service(s) => Some((s.id, s.out, s.action.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn history_req(
    with: &tgsim::Account,
    offset_id: i32,
    add_offset: i32,
    limit: i32,
) -> tl::functions::messages::GetHistory {
    tl::functions::messages::GetHistory {
        peer: peer(with),
        offset_id,
        offset_date: 0,
        add_offset,
        limit,
        max_id: 0,
        min_id: 0,
        hash: 0,
    }
}

/// (message ids, count if a slice) of a messages.getHistory answer.
fn ids(m: &tl::enums::messages::Messages) -> (Vec<i32>, Option<i32>) {
    let (msgs, count) = match m {
        tl::enums::messages::Messages::Messages(m) => (&m.messages, None),
        tl::enums::messages::Messages::Slice(m) => (&m.messages, Some(m.count)),
        other => panic!("unexpected {other:?}"),
    };
    let ids = msgs
        .iter()
        .map(|m| match m {
            tl::enums::Message::Message(m) => m.id,
            tl::enums::Message::Service(m) => m.id,
            tl::enums::Message::Empty(m) => m.id,
        })
        .collect();
    (ids, count)
}

struct Setup {
    sim: tgsim::Sim,
    deposit: tgsim::Account,
    player: tgsim::Account,
}

async fn setup(cfg: tgsim::SimConfig) -> Setup {
    let sim = tgsim::Sim::start(cfg).await.expect("sim");
    let deposit = user(&sim, "deposit");
    let player = user(&sim, "player");
    Setup {
        sim,
        deposit,
        player,
    }
}

impl Setup {
    fn gift(&self, i: usize) -> tgsim::GiftInfo {
        self.sim.gift_catalogue()[i].clone()
    }

    fn unique(&self, transfer_stars: Option<i64>) -> tgsim::SentGift {
        self.sim
            .send_unique_gift(tgsim::SendUniqueGift {
                from: self.player.id,
                to: self.deposit.id,
                gift_id: self.gift(0).id,
                transfer_stars,
                ..Default::default()
            })
            .expect("unique gift")
    }
}

#[tokio::test]
async fn buying_a_catalogue_gift_for_a_player_delivers_it_like_send_gift() {
    let s = setup(tgsim::SimConfig::default()).await;
    let gift = s.gift(2);
    s.sim.set_stars(s.deposit.id, 100).expect("stars");
    let dep = TestClient::connect(&s.sim, s.deposit.id).await;
    let mut player = TestClient::connect(&s.sim, s.player.id).await;
    let mut pushed = player.stream(&s.sim, false).await;

    let invoice = gift_invoice(&s.player, gift.id);
    let (form_id, price) = form(&dep, &invoice).await.expect("form");
    assert_eq!(price, gift.stars);
    let updates = pay(&dep, form_id, &invoice).await.expect("paid");

    // The payer's answer carries its own outgoing service message.
    let own = service_messages(&updates);
    assert_eq!(own.len(), 1, "{own:?}");
    let (own_id, out, action) = &own[0];
    assert!(*out);
    let tl::enums::MessageAction::StarGift(a) = action else {
        panic!("expected messageActionStarGift, got {action:?}");
    };
    let tl::enums::StarGift::Gift(g) = &a.gift else {
        panic!("regular gift expected");
    };
    assert_eq!(g.id, gift.id);
    assert_eq!(
        a.message
            .as_ref()
            .map(|tl::enums::TextWithEntities::Entities(t)| t.text.as_str()),
        Some("back to you")
    );
    assert_eq!(s.sim.stars(s.deposit.id).expect("stars"), 100 - gift.stars);

    // The player holds a new regular gift from the deposit account...
    let held = s.sim.saved_gifts(s.player.id).expect("player gifts");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].from, Some(s.deposit.id));
    assert_eq!(held[0].gift_id, gift.id);
    assert!(held[0].unique.is_none());
    // ...and was told with an incoming service message in the chat with the payer.
    let u = pushed.next(10).await;
    let tl::enums::Update::NewMessage(m) = &u else {
        panic!("expected updateNewMessage, got {u:?}");
    };
    let tl::enums::Message::Service(m) = &m.message else {
        panic!("service message expected");
    };
    assert!(!m.out);
    assert_eq!(m.id, held[0].msg_id);
    assert!(m.from_id.is_none(), "private chat: the sender is the peer");
    assert_eq!(
        m.peer_id,
        tl::enums::Peer::User(tl::types::PeerUser {
            user_id: s.deposit.id
        })
    );

    // The top of the deposit's chat with the player is its outgoing gift message.
    let h = dep
        .invoke(&history_req(&s.player, 0, 0, 1))
        .await
        .expect("history");
    assert_eq!(ids(&h).0, vec![*own_id]);

    // Paying the same form again: FORM_SUBMIT_DUPLICATE, nothing charged, nothing delivered.
    let e = pay(&dep, form_id, &invoice).await.expect_err("duplicate");
    assert_eq!(rpc(e), (400, "FORM_SUBMIT_DUPLICATE".into(), None));
    assert_eq!(s.sim.stars(s.deposit.id).expect("stars"), 100 - gift.stars);
    assert_eq!(s.sim.saved_gifts(s.player.id).expect("gifts").len(), 1);
}

#[tokio::test]
async fn a_sold_out_gift_is_refused_at_payment_and_charges_nothing() {
    let s = setup(tgsim::SimConfig::default()).await;
    let gift = s.gift(0);
    s.sim.set_gift_limit(gift.id, 10, 1).expect("limit");
    let dep = TestClient::connect(&s.sim, s.deposit.id).await;
    let invoice = gift_invoice(&s.player, gift.id);
    // Two forms while one is left: the first payment takes the last one.
    let (first, _) = form(&dep, &invoice).await.expect("form");
    let (second, _) = form(&dep, &invoice).await.expect("form");
    pay(&dep, first, &invoice).await.expect("the last one");
    let cat = s.sim.gift_catalogue();
    assert_eq!(cat[0].limited_remains, Some(0));
    let before = s.sim.stars(s.deposit.id).expect("stars");
    let e = pay(&dep, second, &invoice).await.expect_err("sold out");
    assert_eq!(rpc(e), (400, "STARGIFT_USAGE_LIMITED".into(), None));
    assert_eq!(s.sim.stars(s.deposit.id).expect("stars"), before);
    assert_eq!(s.sim.saved_gifts(s.player.id).expect("gifts").len(), 1);
    // A form can still be had (core lists the error for sendStarsForm only); paying it cannot.
    let (third, _) = form(&dep, &invoice)
        .await
        .expect("form for a sold-out gift");
    let e = pay(&dep, third, &invoice).await.expect_err("sold out");
    assert_eq!(rpc(e).1, "STARGIFT_USAGE_LIMITED");
    // The catalogue says so.
    s.sim.sell_out_gift(s.gift(1).id).expect("sell out");
    assert_eq!(s.sim.gift_catalogue()[1].limited_remains, Some(0));
    let (f, _) = form(&dep, &gift_invoice(&s.player, s.gift(1).id))
        .await
        .expect("form");
    let e = pay(&dep, f, &gift_invoice(&s.player, s.gift(1).id))
        .await
        .expect_err("sold out");
    assert_eq!(rpc(e).1, "STARGIFT_USAGE_LIMITED");
}

#[tokio::test]
async fn buying_without_enough_stars_or_with_an_old_form_is_refused() {
    let s = setup(tgsim::SimConfig::default()).await;
    let gift = s.gift(0);
    s.sim
        .set_stars(s.deposit.id, gift.stars - 1)
        .expect("stars");
    let dep = TestClient::connect(&s.sim, s.deposit.id).await;
    let invoice = gift_invoice(&s.player, gift.id);
    let (f, _) = form(&dep, &invoice).await.expect("form");
    let e = pay(&dep, f, &invoice).await.expect_err("too poor");
    assert_eq!(rpc(e), (400, "BALANCE_TOO_LOW".into(), None));
    assert!(s.sim.saved_gifts(s.player.id).expect("gifts").is_empty());
    // Topped up, the same form pays.
    s.sim.set_stars(s.deposit.id, gift.stars).expect("stars");
    pay(&dep, f, &invoice).await.expect("paid after top-up");
    assert_eq!(s.sim.stars(s.deposit.id).expect("stars"), 0);

    let cfg = tgsim::SimConfig {
        ttls: tgsim::Ttls {
            payment_form: Duration::ZERO,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = setup(cfg).await;
    let dep = TestClient::connect(&s.sim, s.deposit.id).await;
    let invoice = gift_invoice(&s.player, s.gift(0).id);
    let (f, _) = form(&dep, &invoice).await.expect("form");
    let e = pay(&dep, f, &invoice).await.expect_err("expired");
    assert_eq!(rpc(e).1, "FORM_EXPIRED");
    assert!(s.sim.saved_gifts(s.player.id).expect("gifts").is_empty());
}

#[tokio::test]
async fn a_recipient_who_refuses_gifts_gets_user_disallowed_stargifts() {
    let s = setup(tgsim::SimConfig::default()).await;
    let dep = TestClient::connect(&s.sim, s.deposit.id).await;
    let regular = s.gift(0);
    let limited = s
        .sim
        .gift_catalogue()
        .into_iter()
        .find(|g| g.limited_total.is_some())
        .expect("a limited gift");
    let free = s.unique(None);
    let paid = s.unique(Some(25));

    s.sim
        .set_disallowed_gifts(
            s.player.id,
            tgsim::DisallowedGifts {
                unlimited: true,
                limited: false,
                unique: true,
            },
        )
        .expect("privacy");
    // Buying an unlimited gift for the player: refused at the form.
    let e = form(&dep, &gift_invoice(&s.player, regular.id))
        .await
        .expect_err("refused");
    assert_eq!(rpc(e), (403, "USER_DISALLOWED_STARGIFTS".into(), None));
    // A limited one is still accepted.
    form(&dep, &gift_invoice(&s.player, limited.id))
        .await
        .expect("limited gifts accepted");
    // Collectibles: the free transfer and the paid transfer's form are refused.
    let e = dep
        .invoke(&tl::functions::payments::TransferStarGift {
            stargift: saved(free.msg_id),
            to_id: peer(&s.player),
        })
        .await
        .expect_err("refused");
    assert_eq!(rpc(e), (403, "USER_DISALLOWED_STARGIFTS".into(), None));
    let e = form(&dep, &transfer_invoice(paid.msg_id, &s.player))
        .await
        .expect_err("refused");
    assert_eq!(rpc(e), (403, "USER_DISALLOWED_STARGIFTS".into(), None));
    assert_eq!(s.sim.saved_gifts(s.deposit.id).expect("gifts").len(), 2);
    // Accepting again lets the transfer through.
    s.sim
        .set_disallowed_gifts(s.player.id, tgsim::DisallowedGifts::default())
        .expect("privacy");
    dep.invoke(&tl::functions::payments::TransferStarGift {
        stargift: saved(free.msg_id),
        to_id: peer(&s.player),
    })
    .await
    .expect("transfer");
}

#[tokio::test]
async fn a_price_changed_after_the_form_answers_stars_form_amount_mismatch() {
    let s = setup(tgsim::SimConfig::default()).await;
    let dep = TestClient::connect(&s.sim, s.deposit.id).await;
    let gift = s.gift(0);
    let invoice = gift_invoice(&s.player, gift.id);
    let (f, price) = form(&dep, &invoice).await.expect("form");
    s.sim.set_gift_price(gift.id, price + 5).expect("price");
    let before = s.sim.stars(s.deposit.id).expect("stars");
    let e = pay(&dep, f, &invoice).await.expect_err("mismatch");
    assert_eq!(rpc(e), (406, "STARS_FORM_AMOUNT_MISMATCH".into(), None));
    assert_eq!(s.sim.stars(s.deposit.id).expect("stars"), before);
    // A new form has the new price and pays.
    let (f, price2) = form(&dep, &invoice).await.expect("new form");
    assert_eq!(price2, price + 5);
    pay(&dep, f, &invoice).await.expect("paid");

    // The same for a collectible's transfer fee.
    let g = s.unique(Some(25));
    let invoice = transfer_invoice(g.msg_id, &s.player);
    let (f, _) = form(&dep, &invoice).await.expect("form");
    s.sim
        .set_transfer_stars(s.deposit.id, g.msg_id, Some(50))
        .expect("fee");
    let e = pay(&dep, f, &invoice).await.expect_err("mismatch");
    assert_eq!(rpc(e), (406, "STARS_FORM_AMOUNT_MISMATCH".into(), None));
    assert_eq!(s.sim.saved_gifts(s.deposit.id).expect("gifts").len(), 1);
    let (f, fee) = form(&dep, &invoice).await.expect("new form");
    assert_eq!(fee, 50);
    pay(&dep, f, &invoice).await.expect("paid transfer");
    assert!(s.sim.saved_gifts(s.deposit.id).expect("gifts").is_empty());
}

/// A payment or transfer whose answer is lost: the world changed, the client saw an I/O error,
/// and the chat history is how it finds out.
#[tokio::test]
async fn a_dropped_answer_leaves_the_payment_applied_and_the_outcome_unknown() {
    let s = setup(tgsim::SimConfig::default()).await;
    let gift = s.gift(0);
    s.sim.set_stars(s.deposit.id, 100).expect("stars");
    let dep = TestClient::connect(&s.sim, s.deposit.id).await;
    let invoice = gift_invoice(&s.player, gift.id);
    let (f, _) = form(&dep, &invoice).await.expect("form");
    s.sim.inject(tgsim::Fault::DropAnswer {
        method: "payments.sendStarsForm".into(),
        count: 1,
    });
    let e = pay(&dep, f, &invoice).await.expect_err("no answer");
    assert!(
        matches!(e, InvocationError::Io(_)),
        "a lost answer is an I/O error, not an RPC error: {e:?}"
    );
    assert!(s.sim.faults().is_empty(), "the fault is consumed");
    // It took effect: the Stars are spent and the player holds the gift.
    assert_eq!(s.sim.stars(s.deposit.id).expect("stars"), 100 - gift.stars);
    let held = s.sim.saved_gifts(s.player.id).expect("gifts");
    assert_eq!(held.len(), 1);
    // Paying the same form again (grammers reconnects) is refused and charges nothing.
    let again = dep;
    let e = pay(&again, f, &invoice).await.expect_err("duplicate");
    assert_eq!(rpc(e).1, "FORM_SUBMIT_DUPLICATE");
    assert_eq!(s.sim.stars(s.deposit.id).expect("stars"), 100 - gift.stars);
    // The top of the chat with the player shows the outgoing gift.
    let h = again
        .invoke(&history_req(&s.player, 0, 0, 5))
        .await
        .expect("history");
    let tl::enums::messages::Messages::Messages(h) = h else {
        panic!("the whole (short) history");
    };
    let tl::enums::Message::Service(top) = &h.messages[0] else {
        panic!("service message on top");
    };
    assert!(top.out);
    assert!(matches!(top.action, tl::enums::MessageAction::StarGift(_)));

    // The same for a free transfer.
    let g = s.unique(None);
    s.sim.inject(tgsim::Fault::DropAnswer {
        method: "payments.transferStarGift".into(),
        count: 1,
    });
    let e = again
        .invoke(&tl::functions::payments::TransferStarGift {
            stargift: saved(g.msg_id),
            to_id: peer(&s.player),
        })
        .await
        .expect_err("no answer");
    assert!(matches!(e, InvocationError::Io(_)), "{e:?}");
    assert!(
        s.sim
            .saved_gifts(s.deposit.id)
            .expect("gifts")
            .iter()
            .all(|x| x.msg_id != g.msg_id),
        "the collectible left"
    );
    let third = TestClient::connect(&s.sim, s.deposit.id).await;
    // payments.getSavedStarGift of a gift that left: an empty answer, no error.
    let r = third
        .invoke(&tl::functions::payments::GetSavedStarGift {
            stargift: vec![saved(g.msg_id)],
        })
        .await
        .expect("getSavedStarGift");
    let tl::enums::payments::SavedStarGifts::Gifts(r) = r;
    assert!(r.gifts.is_empty());
    assert_eq!(r.count, 0);
    let h = third
        .invoke(&history_req(&s.player, 0, 0, 1))
        .await
        .expect("history");
    let tl::enums::messages::Messages::Slice(h) = h else {
        panic!("a slice of a longer history");
    };
    let tl::enums::Message::Service(top) = &h.messages[0] else {
        panic!("service message on top");
    };
    assert!(top.out);
    let tl::enums::MessageAction::StarGiftUnique(u) = &top.action else {
        panic!("the transfer's message on top, got {:?}", top.action);
    };
    assert!(u.transferred);
}

/// Fault::Delay applies to payment methods: a client that gives up waiting does not know the
/// outcome, and the payment still happens.
#[tokio::test]
async fn a_delayed_payment_times_out_on_the_client_and_still_applies() {
    let s = setup(tgsim::SimConfig::default()).await;
    let gift = s.gift(0);
    s.sim.set_stars(s.deposit.id, 100).expect("stars");
    let dep = TestClient::connect(&s.sim, s.deposit.id).await;
    let invoice = gift_invoice(&s.player, gift.id);
    let (f, _) = form(&dep, &invoice).await.expect("form");
    s.sim.inject(tgsim::Fault::Delay {
        method: Some("payments.sendStarsForm".into()),
        millis: 1000,
    });
    let timed_out = tokio::time::timeout(
        Duration::from_millis(300),
        dep.client.invoke(&tl::functions::payments::SendStarsForm {
            form_id: f,
            invoice: invoice.clone(),
        }),
    )
    .await;
    assert!(timed_out.is_err(), "the client gave up first");
    assert_eq!(s.sim.stars(s.deposit.id).expect("stars"), 100, "not yet");
    for _ in 0..50 {
        if s.sim.stars(s.deposit.id).expect("stars") != 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.sim.stars(s.deposit.id).expect("stars"), 100 - gift.stars);
    assert_eq!(s.sim.saved_gifts(s.player.id).expect("gifts").len(), 1);
}

#[tokio::test]
async fn get_history_pages_a_private_chat_newest_first() {
    let s = setup(tgsim::SimConfig::default()).await;
    let other = user(&s.sim, "other");
    // Deposit's chat with the player: 3 gifts from the player, 2 bought for it, interleaved
    // with a gift from someone else (another chat).
    let gift = s.gift(0).id;
    let from_player = || {
        s.sim
            .send_gift(tgsim::SendGift {
                from: s.player.id,
                to: s.deposit.id,
                gift_id: gift,
                ..Default::default()
            })
            .expect("gift")
    };
    let dep = TestClient::connect(&s.sim, s.deposit.id).await;
    let invoice = gift_invoice(&s.player, gift);
    let mut expect = Vec::new();
    expect.push(from_player().msg_id);
    s.sim
        .send_gift(tgsim::SendGift {
            from: other.id,
            to: s.deposit.id,
            gift_id: gift,
            ..Default::default()
        })
        .expect("other's gift");
    for _ in 0..2 {
        let (f, _) = form(&dep, &invoice).await.expect("form");
        let u = pay(&dep, f, &invoice).await.expect("paid");
        expect.push(service_messages(&u)[0].0);
        expect.push(from_player().msg_id);
    }
    expect.reverse(); // newest first
    assert_eq!(expect.len(), 5);

    // Everything: messages.messages, newest first, only this chat.
    let all = dep
        .invoke(&history_req(&s.player, 0, 0, 100))
        .await
        .expect("history");
    assert_eq!(ids(&all), (expect.clone(), None));
    let tl::enums::messages::Messages::Messages(m) = &all else {
        unreachable!()
    };
    assert!(
        m.users
            .iter()
            .any(|u| matches!(u, tl::enums::User::User(u) if u.id == s.player.id))
    );
    // The top two: a slice with the chat's total count.
    let top = dep
        .invoke(&history_req(&s.player, 0, 0, 2))
        .await
        .expect("history");
    assert_eq!(ids(&top), (expect[..2].to_vec(), Some(5)));
    // Older than the second: offset_id is exclusive.
    let next = dep
        .invoke(&history_req(&s.player, expect[1], 0, 2))
        .await
        .expect("history");
    assert_eq!(ids(&next).0, expect[2..4].to_vec());
    // Newer than the fourth, including it (core api/offsets: add_offset = -limit).
    let newer = dep
        .invoke(&history_req(&s.player, expect[3], -2, 2))
        .await
        .expect("history");
    assert_eq!(ids(&newer).0, expect[2..4].to_vec());
    // min_id / max_id filter after slicing.
    let mut r = history_req(&s.player, 0, 0, 100);
    r.min_id = expect[4];
    r.max_id = expect[0];
    let mid = dep.invoke(&r).await.expect("history");
    assert_eq!(ids(&mid).0, expect[1..4].to_vec());
    // The player's side of the same chat, with its own message ids.
    let p = TestClient::connect(&s.sim, s.player.id).await;
    let theirs = p
        .invoke(&history_req(&s.deposit, 0, 0, 100))
        .await
        .expect("history");
    assert_eq!(ids(&theirs).0.len(), 5);
}

#[tokio::test]
async fn get_stars_status_answers_the_balance() {
    let s = setup(tgsim::SimConfig::default()).await;
    s.sim.set_stars(s.deposit.id, 1234).expect("stars");
    let dep = TestClient::connect(&s.sim, s.deposit.id).await;
    let r = dep
        .invoke(&tl::functions::payments::GetStarsStatus {
            ton: false,
            peer: tl::enums::InputPeer::PeerSelf,
        })
        .await
        .expect("status");
    let tl::enums::payments::StarsStatus::Status(r) = r;
    let tl::enums::StarsAmount::Amount(a) = r.balance else {
        panic!("stars amount expected, got {:?}", r.balance);
    };
    assert_eq!((a.amount, a.nanos), (1234, 0));
}

fn stars_transactions(
    outbound: bool,
    offset: &str,
) -> tl::functions::payments::GetStarsTransactions {
    tl::functions::payments::GetStarsTransactions {
        inbound: false,
        outbound,
        ascending: false,
        ton: false,
        subscription_id: None,
        peer: tl::enums::InputPeer::PeerSelf,
        offset: offset.to_owned(),
        limit: 1,
    }
}

/// A catalogue gift bought for a user is in the payer's Stars history (and only there):
/// negative amount, the receiver as peer, the gift; newest first, paged by `next_offset`. A paid
/// form past its lifetime answers `FORM_EXPIRED`.
#[tokio::test]
async fn a_gift_purchase_is_in_the_payers_stars_history() {
    let cfg = tgsim::SimConfig {
        ttls: tgsim::Ttls {
            payment_form: Duration::from_secs(1),
            ..Default::default()
        },
        ..Default::default()
    };
    let s = setup(cfg).await;
    let (cheap, dear) = (s.gift(0), s.gift(2));
    let dep = TestClient::connect(&s.sim, s.deposit.id).await;
    let player = TestClient::connect(&s.sim, s.player.id).await;
    for gift in [&cheap, &dear] {
        let invoice = gift_invoice(&s.player, gift.id);
        let (f, _) = form(&dep, &invoice).await.expect("form");
        pay(&dep, f, &invoice).await.expect("paid");
    }
    let page = |r: tl::enums::payments::StarsStatus| {
        let tl::enums::payments::StarsStatus::Status(r) = r;
        let history: Vec<(i64, i64, Option<i64>)> = r
            .history
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                let tl::enums::StarsTransaction::Transaction(t) = t;
                let tl::enums::StarsTransactionPeer::Peer(p) = t.peer else {
                    panic!("a user peer expected");
                };
                let tl::enums::Peer::User(u) = p.peer else {
                    panic!("a user peer expected");
                };
                let gift = t.stargift.map(|g| match g {
                    tl::enums::StarGift::Gift(g) => g.id,
                    other => panic!("a catalogue gift expected, got {other:?}"),
                });
                (t.amount.amount(), u.user_id, gift)
            })
            .collect();
        (history, r.next_offset)
    };
    let first = page(
        dep.invoke(&stars_transactions(true, ""))
            .await
            .expect("history"),
    );
    assert_eq!(
        first.0,
        vec![(-dear.stars, s.player.id, Some(dear.id))],
        "newest first"
    );
    let next = first.1.expect("a second page");
    let second = page(
        dep.invoke(&stars_transactions(true, &next))
            .await
            .expect("history"),
    );
    assert_eq!(
        second,
        (vec![(-cheap.stars, s.player.id, Some(cheap.id))], None)
    );
    let theirs = page(
        player
            .invoke(&stars_transactions(false, ""))
            .await
            .expect("history"),
    );
    assert!(theirs.0.is_empty(), "the receiver's history is untouched");

    // A paid form past its lifetime: FORM_EXPIRED, like an unpaid one.
    let invoice = gift_invoice(&s.player, cheap.id);
    let (f, _) = form(&dep, &invoice).await.expect("form");
    pay(&dep, f, &invoice).await.expect("paid");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let e = pay(&dep, f, &invoice).await.expect_err("expired");
    assert_eq!(rpc(e).1, "FORM_EXPIRED");
}
