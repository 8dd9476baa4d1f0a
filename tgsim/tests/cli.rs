//! The `tgsim` binary: `serve` with its control API and `provision` writing a session file
//! that the real grammers client uses.

use std::sync::Arc;
use std::time::Duration;

use grammers_client::session::Session as _;
use grammers_client::session::storages::SqliteSession;
use grammers_client::{Client, SenderPool};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn serve_then_provision_then_grammers_signs_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_tgsim"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--state",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn tgsim serve");
    let stdout = serve.stdout.take().expect("stdout");
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .expect("serve printed its endpoint")
    .expect("read");
    let endpoint: serde_json::Value = serde_json::from_str(&line).expect("endpoint json");
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("endpoint.json")).expect("endpoint.json"),
    )
    .expect("json");
    assert_eq!(state, endpoint);
    let control = endpoint["control"]
        .as_str()
        .expect("control url")
        .to_owned();

    let acc = tgsim::control::request(
        &control,
        "POST",
        "/accounts",
        Some(&json!({"username": "deposit", "first_name": "Deposit"})),
    )
    .await
    .expect("create account");
    let session = dir.path().join("deposit.session");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tgsim"))
        .args([
            "provision",
            "--control",
            &control,
            "--account",
            "deposit",
            "--session-out",
        ])
        .arg(&session)
        .output()
        .await
        .expect("run provision");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_tgsim"))
        .args([
            "provision",
            "--control",
            &control,
            "--account",
            "nobody",
            "--session-out",
        ])
        .arg(dir.path().join("x.session"))
        .output()
        .await
        .expect("run provision");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("USERNAME_NOT_OCCUPIED"));

    let s = Arc::new(SqliteSession::open(&session).await.expect("session"));
    // The SQLite session resolves the self user written by provision.
    let me_info = s
        .peer(grammers_client::session::types::PeerId::self_user())
        .await
        .expect("peer lookup")
        .expect("self user cached");
    assert_eq!(me_info.id().bare_id(), acc["id"].as_i64());
    let pool = SenderPool::new(s, 611335);
    let client = Client::new(pool.handle);
    let runner = tokio::spawn(pool.runner.run());
    let me = tokio::time::timeout(Duration::from_secs(20), client.get_me())
        .await
        .expect("in time")
        .expect("get_me");
    assert_eq!(me.id().bare_id(), acc["id"].as_i64());
    client.disconnect();
    runner.abort();

    // An unsigned session for a login flow.
    tgsim::control::request(
        &control,
        "POST",
        "/accounts",
        Some(&json!({"username": "player", "phone": "+15550123"})),
    )
    .await
    .expect("create player");
    let login = dir.path().join("login.session");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tgsim"))
        .args([
            "provision",
            "--control",
            &control,
            "--unsigned",
            "--session-out",
        ])
        .arg(&login)
        .output()
        .await
        .expect("run provision");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = Arc::new(SqliteSession::open(&login).await.expect("session"));
    let pool = SenderPool::new(s, 611335);
    let client = Client::new(pool.handle);
    let runner = tokio::spawn(pool.runner.run());
    assert!(!client.is_authorized().await.expect("is_authorized"));
    let token = client
        .request_login_code("+15550123", "hash")
        .await
        .expect("send code");
    let code = tgsim::control::request(&control, "GET", "/login_code?phone=%2B15550123", None)
        .await
        .expect("code");
    let me = client
        .sign_in(&token, code["code"].as_str().expect("a code"))
        .await
        .expect("sign in");
    assert_eq!(me.username(), Some("player"));
    client.disconnect();
    runner.abort();
    serve.kill().await.expect("kill serve");
}
