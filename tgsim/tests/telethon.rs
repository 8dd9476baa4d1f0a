//! Fidelity beyond grammers: Telethon (PyPI 1.45, TL layer 229) against tgsim: config, self,
//! saved gifts, a pushed gift update, the private-chat sender rule read the way Telethon reads
//! it, a hide-my-name gift, a free collectible transfer, the paid transfer flow and a second
//! submit of the same stars form.
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
