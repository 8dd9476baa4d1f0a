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

fn rpc_name(e: InvocationError) -> (i32, String, Option<u32>) {
    match e {
        InvocationError::Rpc(e) => (e.code, e.name, e.value),
        other => panic!("expected an RPC error, got {other:?}"),
    }
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
    fn unique(&self, transfer_stars: Option<i64>, lock: Option<i64>) -> tgsim::SentGift {
        self.sim
            .send_unique_gift(tgsim::SendUniqueGift {
                from: self.player.id,
                to: self.deposit.id,
                gift_id: self.sim.gift_catalogue()[0].id,
                transfer_stars,
                transfer_lock_secs: lock,
                message: None,
                from_telegram: false,
            })
            .expect("unique gift")
    }
}

#[tokio::test]
async fn free_transfer_moves_the_gift_to_the_player() {
    let s = setup(tgsim::SimConfig::default()).await;
    let g = s.unique(None, None);
    let c = TestClient::connect(&s.sim, s.deposit.id).await;
    let r = c
        .invoke(&tl::functions::payments::TransferStarGift {
            stargift: saved(g.msg_id),
            to_id: peer(&s.player),
        })
        .await
        .expect("transfer");
    assert!(matches!(r, tl::enums::Updates::Updates(_)));
    assert!(s.sim.saved_gifts(s.deposit.id).expect("dep").is_empty());
    let back = s.sim.saved_gifts(s.player.id).expect("player");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].unique.as_ref().map(|u| u.id), g.unique_id);
    assert_eq!(back[0].from, Some(s.deposit.id));
    // The same gift cannot be transferred twice.
    let e = c
        .invoke(&tl::functions::payments::TransferStarGift {
            stargift: saved(g.msg_id),
            to_id: peer(&s.player),
        })
        .await
        .expect_err("already gone");
    assert_eq!(rpc_name(e).1, "STARGIFT_NOT_FOUND");
}

#[tokio::test]
async fn paid_transfer_needs_a_stars_form() {
    let s = setup(tgsim::SimConfig::default()).await;
    let g = s.unique(Some(25), None);
    let c = TestClient::connect(&s.sim, s.deposit.id).await;
    let e = c
        .invoke(&tl::functions::payments::TransferStarGift {
            stargift: saved(g.msg_id),
            to_id: peer(&s.player),
        })
        .await
        .expect_err("payment required");
    assert_eq!(rpc_name(e), (400, "PAYMENT_REQUIRED".into(), None));
    let invoice =
        tl::enums::InputInvoice::StarGiftTransfer(tl::types::InputInvoiceStarGiftTransfer {
            stargift: saved(g.msg_id),
            to_id: peer(&s.player),
        });
    // Not enough stars first.
    s.sim.set_stars(s.deposit.id, 10).expect("stars");
    let form = c
        .invoke(&tl::functions::payments::GetPaymentForm {
            invoice: invoice.clone(),
            theme_params: None,
        })
        .await
        .expect("form");
    let tl::enums::payments::PaymentForm::StarGift(form) = form else {
        panic!("expected a star gift form, got {form:?}");
    };
    let tl::enums::Invoice::Invoice(inv) = &form.invoice;
    assert_eq!(inv.currency, "XTR");
    let e = c
        .invoke(&tl::functions::payments::SendStarsForm {
            form_id: form.form_id,
            invoice: invoice.clone(),
        })
        .await
        .expect_err("balance too low");
    assert_eq!(rpc_name(e).1, "BALANCE_TOO_LOW");
    s.sim.set_stars(s.deposit.id, 100).expect("stars");
    c.invoke(&tl::functions::payments::SendStarsForm {
        form_id: form.form_id,
        invoice: invoice.clone(),
    })
    .await
    .expect("paid transfer");
    assert_eq!(s.sim.stars(s.deposit.id).expect("stars"), 75);
    assert_eq!(s.sim.saved_gifts(s.player.id).expect("player").len(), 1);
    // The same form again: FORM_SUBMIT_DUPLICATE, nothing charged twice.
    let e = c
        .invoke(&tl::functions::payments::SendStarsForm {
            form_id: form.form_id,
            invoice: invoice.clone(),
        })
        .await
        .expect_err("duplicate");
    assert_eq!(rpc_name(e), (400, "FORM_SUBMIT_DUPLICATE".into(), None));
    assert_eq!(s.sim.stars(s.deposit.id).expect("stars"), 75);
    // A form id never issued stays FORM_ID_INVALID.
    let e = c
        .invoke(&tl::functions::payments::SendStarsForm {
            form_id: form.form_id ^ 0x5555,
            invoice,
        })
        .await
        .expect_err("unknown form");
    assert_eq!(rpc_name(e).1, "FORM_ID_INVALID");
}

#[tokio::test]
async fn expired_payment_form_is_refused() {
    let cfg = tgsim::SimConfig {
        ttls: tgsim::Ttls {
            payment_form: std::time::Duration::ZERO,
            ..Default::default()
        },
        ..Default::default()
    };
    let s = setup(cfg).await;
    let g = s.unique(Some(25), None);
    let c = TestClient::connect(&s.sim, s.deposit.id).await;
    let invoice =
        tl::enums::InputInvoice::StarGiftTransfer(tl::types::InputInvoiceStarGiftTransfer {
            stargift: saved(g.msg_id),
            to_id: peer(&s.player),
        });
    let tl::enums::payments::PaymentForm::StarGift(form) = c
        .invoke(&tl::functions::payments::GetPaymentForm {
            invoice: invoice.clone(),
            theme_params: None,
        })
        .await
        .expect("form")
    else {
        panic!("star gift form expected");
    };
    let e = c
        .invoke(&tl::functions::payments::SendStarsForm {
            form_id: form.form_id,
            invoice,
        })
        .await
        .expect_err("expired");
    assert_eq!(rpc_name(e).1, "FORM_EXPIRED");
    assert_eq!(s.sim.saved_gifts(s.deposit.id).expect("dep").len(), 1);
}

#[tokio::test]
async fn too_early_transfer_reports_the_seconds_left() {
    let s = setup(tgsim::SimConfig::default()).await;
    let g = s.unique(None, Some(3600));
    let c = TestClient::connect(&s.sim, s.deposit.id).await;
    let e = c
        .invoke(&tl::functions::payments::TransferStarGift {
            stargift: saved(g.msg_id),
            to_id: peer(&s.player),
        })
        .await
        .expect_err("too early");
    let (code, name, value) = rpc_name(e);
    assert_eq!((code, name.as_str()), (400, "STARGIFT_TRANSFER_TOO_EARLY"));
    let secs = value.expect("seconds");
    assert!((3590..=3600).contains(&secs), "{secs}");
}

#[tokio::test]
async fn transfer_of_a_gift_not_owned_is_refused() {
    let s = setup(tgsim::SimConfig::default()).await;
    let theirs = s
        .sim
        .send_unique_gift(tgsim::SendUniqueGift {
            from: s.deposit.id,
            to: s.player.id,
            gift_id: s.sim.gift_catalogue()[0].id,
            ..Default::default()
        })
        .expect("player's gift");
    let c = TestClient::connect(&s.sim, s.deposit.id).await;
    let e = c
        .invoke(&tl::functions::payments::TransferStarGift {
            stargift: saved(theirs.msg_id + 1000),
            to_id: peer(&s.player),
        })
        .await
        .expect_err("not owner");
    assert_eq!(rpc_name(e).1, "STARGIFT_NOT_FOUND");
    // A regular gift cannot be transferred either.
    let reg = s
        .sim
        .send_gift(tgsim::SendGift {
            from: s.player.id,
            to: s.deposit.id,
            gift_id: s.sim.gift_catalogue()[0].id,
            ..Default::default()
        })
        .expect("regular");
    let e = c
        .invoke(&tl::functions::payments::TransferStarGift {
            stargift: saved(reg.msg_id),
            to_id: peer(&s.player),
        })
        .await
        .expect_err("not unique");
    assert_eq!(rpc_name(e).1, "STARGIFT_NOT_UNIQUE");
}
