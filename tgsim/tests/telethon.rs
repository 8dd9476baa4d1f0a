//! Fidelity beyond grammers: Telethon (PyPI 1.45, TL layer 229) against tgsim.
//!
//! Needs `python3` with Telethon installed (`pip install -r tgsim/tests/telethon/requirements.txt`);
//! without it the test fails and says so.

use std::process::Command;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn telethon_gets_config_self_saved_gifts_and_a_pushed_update_on_every_transport() {
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
        assert!(v["bad_server_salt"].as_u64().expect("count") >= 1);
        assert!(v["calls"]["users.getUsers"].as_u64().unwrap_or(0) >= 1);
    }
    cancel.cancel();
    sim.shutdown().await;
}
