//! Fidelity beyond grammers: Telethon (PyPI 1.45, TL layer 229) against tgsim: config, self,
//! saved gifts, a pushed gift update, the private-chat sender rule read the way Telethon reads
//! it, a hide-my-name gift, a free collectible transfer, the paid transfer flow and a second
//! submit of the same stars form; and the gift cases since 2025 (prepaid upgrades, the other
//! side's upgrades, resale purchases, offers, auction notices, hosted gifts, chat themes) decoded
//! by Telethon and read with TDLib's rules.
//!
//! Needs `python3` with Telethon installed (`pip install -r tgsim/tests/telethon/requirements.txt`);
//! without it the test fails and says so.

use std::process::Command;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn telethon_sees_telegram_gift_senders_and_transfer_flows_on_every_transport() {
    let probe = Command::new("python3")
        .args([
            "-c",
            "import telethon, sys; sys.stdout.write(telethon.__version__)",
        ])
        .output();
    let version = match probe {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => panic!(
            "python3 with Telethon is required: pip install -r tgsim/tests/telethon/requirements.txt"
        ),
    };
    let sim = tgsim::Sim::start(tgsim::SimConfig::default())
        .await
        .expect("sim");
    let cancel = CancellationToken::new();
    let control = tgsim::control::start(
        "127.0.0.1:0".parse().expect("addr"),
        sim.clone(),
        cancel.clone(),
    )
    .await
    .expect("control api");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/telethon/fidelity.py");
    for transport in ["full", "intermediate", "abridged", "obfuscated"] {
        let child = tokio::process::Command::new("python3")
            .arg(script)
            .arg(format!("http://{control}"))
            .arg(transport)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(90), child)
            .await
            .expect("telethon script timed out")
            .expect("run python3");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "telethon {version} over {transport} failed:\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json from script");
        eprintln!("telethon {version}: {v}");
        assert_eq!(v["transport"], transport);
        assert_eq!(v["this_dc"], 2);
        assert_eq!(v["saved_count"], 2);
        // Sender rule: the pushed incoming gift has no from_id; Telethon's sender_id is the peer.
        assert_eq!(v["pushed_from_id"], serde_json::Value::Null);
        assert_eq!(v["pushed_sender_id"], v["player"]);
        // Hide my name: name_hidden, and the sender is still named to the receiver.
        assert_eq!(v["hidden_name_hidden"], true);
        assert_eq!(v["hidden_saved_from_id"], v["player"]);
        assert_eq!(v["hidden_sender_id"], v["player"]);
        // Free transfer, paid transfer, second submit.
        assert_eq!(v["free_transfer_out"], true);
        assert_eq!(v["no_payment_needed"], "NO_PAYMENT_NEEDED");
        assert_eq!(v["payment_required"], "PAYMENT_REQUIRED");
        assert_eq!(v["paid_stars"], 25);
        assert_eq!(v["second_submit"], "FORM_SUBMIT_DUPLICATE");
        assert!(v["bad_server_salt"].as_u64().expect("count") >= 1);
        assert!(v["calls"]["users.getUsers"].as_u64().unwrap_or(0) >= 1);
    }
    cancel.cancel();
    sim.shutdown().await;
}

/// Telethon decodes tgsim's gift cases since 2025, and TDLib's rules applied to what it decoded
/// (tgsim/tests/telethon/gift_cases.py) give what Telegram means: a prepaid-upgrade notice is
/// about the original gift, an incoming `upgrade` is the other side's collectible, a resale
/// purchase for the account is received with its TON price, an accepted offer leaves as a sale.
#[tokio::test]
async fn telethon_decodes_the_gift_cases_as_tdlib_reads_them() {
    let ok = Command::new("python3")
        .args(["-c", "import telethon"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with Telethon is required: pip install -r tgsim/tests/telethon/requirements.txt"
    );
    let sim = tgsim::Sim::start(tgsim::SimConfig::default())
        .await
        .expect("sim");
    let cancel = CancellationToken::new();
    let control = tgsim::control::start(
        "127.0.0.1:0".parse().expect("addr"),
        sim.clone(),
        cancel.clone(),
    )
    .await
    .expect("control api");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/telethon/gift_cases.py");
    let child = tokio::process::Command::new("python3")
        .arg(script)
        .arg(format!("http://{control}"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), child)
        .await
        .expect("telethon script timed out")
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gift_cases.py failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json from script");
    eprintln!("{v}");
    let (me, alice, bob) = (&v["me"], &v["alice"], &v["bob"]);

    // Prepaid upgrade: incoming from the payer, both flags, and the received gift it is about
    // is the original (TDLib: `gift_msg_id` is the notice's received-gift id).
    let n = &v["prepaid_notice"];
    assert_eq!(n["out"], false);
    assert_eq!(n["sender"], *bob);
    assert_eq!(n["prepaid_upgrade"], true);
    assert_eq!(n["upgrade_separate"], true);
    assert_eq!(n["gift_msg_id"], v["prepaid_original"]);
    assert_eq!(n["received_gift_id"], v["prepaid_original"]);

    // The other side's upgrade: incoming + `upgrade`: the collectible is the other side's, and
    // not a gift the account received.
    let o = &v["other_side_upgrade"];
    assert_eq!((&o["out"], &o["upgrade"]), (&false.into(), &true.into()));
    assert_eq!(o["receiver"], *alice);
    assert_eq!(o["received_gift_id"], serde_json::Value::Null);
    assert_eq!(o["origin"], "upgrade");

    // The account's own upgrade of the prepaid gift: outgoing, received by the account.
    let u = &v["own_upgrade"];
    assert_eq!((&u["out"], &u["upgrade"]), (&true.into(), &true.into()));
    assert_eq!(u["receiver"], *me);
    assert_eq!(u["received_gift_id"], u["msg_id"]);
    assert_eq!(u["origin"], "prepaid_upgrade");

    // Resale purchase for the account, in TON.
    let r = &v["resale"];
    assert_eq!(r["out"], false);
    assert_eq!(r["receiver"], *me);
    assert_eq!(r["origin"], "resale");
    assert_eq!(r["resale_amount"]["ton"], 3_500_000_000_i64);
    assert_eq!(r["received_gift_id"], r["msg_id"]);

    // The offer carries the account's own collectible; the accepted sale is outgoing.
    assert_eq!(v["offer_gift_id"], v["resale_unique_id"]);
    assert_eq!(v["offer_accepted"], true);
    let s = &v["sale"];
    assert_eq!(s["out"], true);
    assert_eq!(s["origin"], "offer");
    assert_eq!(s["receiver"], *bob);
    assert_eq!(s["resale_amount"]["stars"], 700);

    // The account's auction notice: no received gift, the receiver is the player.
    let a = &v["auction_notice"];
    assert_eq!(a["auction_acquired"], true);
    assert_eq!(a["received_gift_id"], serde_json::Value::Null);
    assert_eq!(a["receiver"], *bob);

    // Hosted: blockchain origin, left out with exclude_hosted. Theme: a collectible theme.
    assert_eq!(v["hosted"]["origin"], "blockchain");
    assert_eq!(v["exclude_hosted_lists_hosted"], false);
    assert_eq!(v["theme_is_unique_gift"], true);

    cancel.cancel();
    sim.shutdown().await;
}
