//! Several deposit accounts in one daemon: each has its own Telegram connection, intake paths
//! and withdrawal worker; the inventory, the mirror and the health endpoint are shared and say
//! which account is which. One account failing does not stop the others.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use giftd::app::{Daemon, Notice};
use giftd::config::Config;
use tgsim::{Account, CreateUser, SendGift};
use tokio_util::sync::CancellationToken;

use crate::daemon::World;
use crate::support::Backend;

/// A free loopback port for the health endpoint.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on the health port: (status code, body).
pub(crate) async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the health port answers");
    s.write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_default();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// Writes a signed-in session of `account` at `path`, private.
pub(crate) async fn write_session(w: &World, account: i64, path: &Path) {
    let _ = std::fs::remove_file(path);
    w.sim
        .write_session(account, path)
        .await
        .expect("session written");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A second deposit account in `w`'s simulator.
pub(crate) fn second_deposit(w: &World) -> Account {
    w.sim
        .create_user(CreateUser {
            username: format!("deposit2x{}", crate::support::unique_id()),
            first_name: "Depot".into(),
            stars: 100_000_000,
            ..Default::default()
        })
        .expect("user created")
}

/// The configuration of a daemon serving `accounts` (name, session file), with `w`'s store.
pub(crate) fn config_text(w: &World, accounts: &[(&str, &Path)], port: u16) -> String {
    let (store, supabase) = match &w.backend {
        Backend::Sqlite { .. } => (
            format!(
                "sqlite_path = \"{}\"\n",
                w.backend.sqlite_path().unwrap().display()
            ),
            String::new(),
        ),
        Backend::Supabase { rest_url, key, .. } => (
            String::new(),
            format!("[supabase]\nrest_url = \"{rest_url}\"\nservice_role_key = \"{key}\"\n"),
        ),
    };
    let mut text = format!(
        "[telegram]\napi_id = 1\napi_hash = \"test-hash\"\npoll_interval = \"1s\"\n\
         reconcile_interval = \"10m\"\n\
         [store]\nstate_dir = \"{}\"\n{store}\n{supabase}\n\
         [health]\nlisten = \"127.0.0.1:{port}\"\n{}",
        w.dir.path().display(),
        w.extra_sections,
    );
    for (name, session) in accounts {
        text.push_str(&format!(
            "[account.{name}]\nsession_file = \"{}\"\n",
            session.display()
        ));
    }
    text
}

/// Sends a regular gift from `from` to `to`; returns its msg id.
fn send(w: &World, from: i64, to: i64) -> i32 {
    w.sim
        .send_gift(SendGift {
            from,
            to,
            gift_id: w.regular_gift(),
            hide_name: false,
            message: None,
        })
        .expect("gift sent")
        .msg_id
}

/// Waits until the store holds exactly `expected` (msg id -> owner) for `account`.
async fn assert_credited(w: &World, account: i64, expected: &BTreeMap<i32, i64>) {
    let store = w.store().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got: BTreeMap<i32, i64> = store
            .load_items(account)
            .await
            .expect("store readable")
            .iter()
            .filter_map(|i| Some((i.key.msg_id, i.owner.user_id()?)))
            .collect();
        if got == *expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "account {account}: the store holds {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two deposit accounts in one daemon: gifts to each are credited to their senders under the
/// account that received them; when one account's sessions are terminated from another
/// device, the other keeps crediting, `/readyz` names the broken one and what to do, and the
/// daemon keeps running.
async fn two_deposit_accounts_one_revoked_the_other_keeps_crediting(backend: Backend) {
    let w = World::new(backend, 2).await;
    let alpha = w.deposit.clone();
    let beta = second_deposit(&w);
    let (a_session, b_session) = (
        w.dir.path().join("alpha.session"),
        w.dir.path().join("beta.session"),
    );
    write_session(&w, alpha.id, &a_session).await;
    write_session(&w, beta.id, &b_session).await;
    let port = free_port();
    let text = config_text(
        &w,
        &[
            ("alpha", a_session.as_path()),
            ("beta", b_session.as_path()),
        ],
        port,
    );
    let config = Config::parse_str(&text, "test config", &|_| None).expect("valid config");

    let daemon = Daemon::new();
    let mut notices = daemon.subscribe();
    let shutdown = CancellationToken::new();
    let mut join = tokio::spawn({
        let daemon = daemon.clone();
        let shutdown = shutdown.clone();
        async move { daemon.run(&config, shutdown).await }
    });
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(Notice::Ready { .. }) = notices.recv().await {
                return;
            }
        }
    })
    .await
    .expect("giftd ready with both accounts");
    let (code, body) = http_get(port, "/readyz").await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(&format!("account alpha ({}): serving\n", alpha.id))
            && body.contains(&format!("account beta ({}): serving\n", beta.id)),
        "{body}"
    );

    let (p0, p1) = (w.player(0), w.player(1));
    let mut to_alpha = BTreeMap::new();
    let mut to_beta = BTreeMap::new();
    for _ in 0..3 {
        to_alpha.insert(send(&w, p0, alpha.id), p0);
        to_beta.insert(send(&w, p1, beta.id), p1);
    }
    to_alpha.insert(send(&w, p1, alpha.id), p1);
    assert_credited(&w, alpha.id, &to_alpha).await;
    assert_credited(&w, beta.id, &to_beta).await;

    // Beta's sessions terminated from another device.
    assert!(w.sim.revoke_sessions(beta.id) > 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (code, body) = http_get(port, "/readyz").await;
        if code == 503 && body.contains("account beta") && body.contains("down") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never said beta is down: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        body.starts_with("not ready: deposit account down: beta\n"),
        "{body}"
    );
    assert!(
        body.contains(&format!("account alpha ({}): serving\n", alpha.id)),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "account beta ({}): down: session file {} is not authorised (Telegram answered \
             SESSION_REVOKED): run `giftd login --account beta`",
            beta.id,
            b_session.display()
        )),
        "{body}"
    );
    let (_, metrics) = http_get(port, "/metrics").await;
    for line in [
        "giftd_account{name=\"beta\",state=\"down\"} 1",
        "giftd_account{name=\"alpha\",state=\"serving\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }

    // Alpha keeps crediting; beta's gifts wait in Telegram for its next login.
    for _ in 0..3 {
        to_alpha.insert(send(&w, p1, alpha.id), p1);
    }
    send(&w, p0, beta.id);
    assert_credited(&w, alpha.id, &to_alpha).await;
    assert_credited(&w, beta.id, &to_beta).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut join)
            .await
            .is_err(),
        "the daemon keeps running while one account is down"
    );

    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(30), join)
        .await
        .expect("giftd stops within its shutdown deadline")
        .expect("daemon task did not panic");
    result.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deposit_accounts_one_revoked_the_other_keeps_crediting_embedded() {
    two_deposit_accounts_one_revoked_the_other_keeps_crediting(Backend::sqlite()).await;
}

/// The same on PostgreSQL, where the instance serves each account under its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deposit_accounts_one_revoked_the_other_keeps_crediting_supabase() {
    two_deposit_accounts_one_revoked_the_other_keeps_crediting(Backend::supabase()).await;
}

/// An account whose Telegram cannot be reached at start (its session points at a data centre
/// that refuses connections) is down and retried; the other account starts and credits, and
/// the daemon reports ready with `/readyz` naming the unreachable one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_account_at_start_does_not_hold_up_the_other() {
    let w = World::new(Backend::sqlite(), 1).await;
    let alpha = w.deposit.clone();
    let (a_session, b_session) = (
        w.dir.path().join("alpha.session"),
        w.dir.path().join("beta.session"),
    );
    write_session(&w, alpha.id, &a_session).await;
    // Beta's session belongs to a data centre that is gone: connection refused.
    let gone = tgsim::Sim::start(tgsim::SimConfig::default())
        .await
        .expect("tgsim starts");
    let beta = gone
        .create_user(CreateUser {
            username: "gone".into(),
            ..Default::default()
        })
        .unwrap();
    gone.write_session(beta.id, &b_session).await.unwrap();
    gone.shutdown().await;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&b_session, std::fs::Permissions::from_mode(0o600)).unwrap();

    let port = free_port();
    let text = config_text(
        &w,
        &[
            ("alpha", a_session.as_path()),
            ("beta", b_session.as_path()),
        ],
        port,
    );
    let config = Config::parse_str(&text, "test config", &|_| None).expect("valid config");
    let daemon = Daemon::new();
    let mut notices = daemon.subscribe();
    let shutdown = CancellationToken::new();
    let join = tokio::spawn({
        let daemon = daemon.clone();
        let shutdown = shutdown.clone();
        async move { daemon.run(&config, shutdown).await }
    });
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(Notice::Ready { .. }) = notices.recv().await {
                return;
            }
        }
    })
    .await
    .expect("giftd reports ready while one account is unreachable");
    let (code, body) = http_get(port, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains(&format!("account alpha ({}): serving\n", alpha.id)),
        "{body}"
    );
    assert!(
        body.contains("account beta: down: could not reach telegram"),
        "{body}"
    );
    let p0 = w.player(0);
    let mut expected = BTreeMap::new();
    expected.insert(send(&w, p0, alpha.id), p0);
    assert_credited(&w, alpha.id, &expected).await;

    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(30), join)
        .await
        .expect("giftd stops within its shutdown deadline")
        .expect("daemon task did not panic");
    result.expect("a clean stop");
}
