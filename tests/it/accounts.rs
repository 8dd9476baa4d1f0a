//! Several deposit accounts in one daemon: each has its own Telegram connection, intake paths
//! and withdrawal worker; the inventory, the mirror and the health endpoint are shared and say
//! which account is which. One account failing does not stop the others.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use giftd::config::Config;

use crate::support::{Backend, Running, World, free_port, http_get, private};

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
    let beta = w.second_deposit();
    let (a_session, b_session) = (
        w.dir.path().join("alpha.session"),
        w.dir.path().join("beta.session"),
    );
    w.write_session(alpha.id, &a_session).await;
    w.write_session(beta.id, &b_session).await;
    let port = free_port();
    let text = w.accounts_config_text(
        &[
            ("alpha", a_session.as_path()),
            ("beta", b_session.as_path()),
        ],
        port,
    );
    let config = Config::parse_str(&text, "test config", &|_| None).expect("valid config");

    // Giftd ready with both accounts.
    let mut running = Running::launch(config).ready(Duration::from_secs(60)).await;
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
        to_alpha.insert(w.gift(p0, alpha.id, false), p0);
        to_beta.insert(w.gift(p1, beta.id, false), p1);
    }
    to_alpha.insert(w.gift(p1, alpha.id, false), p1);
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
        to_alpha.insert(w.gift(p1, alpha.id, false), p1);
    }
    w.gift(p0, beta.id, false);
    assert_credited(&w, alpha.id, &to_alpha).await;
    assert_credited(&w, beta.id, &to_beta).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut running.join)
            .await
            .is_err(),
        "the daemon keeps running while one account is down"
    );

    running.stop().await;
}

// On PostgreSQL the instance serves each account under its lease.
on_both_stores!(
    two_deposit_accounts_one_revoked_the_other_keeps_crediting =>
        two_deposit_accounts_one_revoked_the_other_keeps_crediting_embedded,
        two_deposit_accounts_one_revoked_the_other_keeps_crediting_supabase
);

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
    w.write_session(alpha.id, &a_session).await;
    // Beta's session belongs to a data centre that is gone: connection refused.
    let gone = tgsim::Sim::start(tgsim::SimConfig::default())
        .await
        .expect("tgsim starts");
    let beta = gone
        .create_user(tgsim::CreateUser {
            username: "gone".into(),
            ..Default::default()
        })
        .unwrap();
    gone.write_session(beta.id, &b_session).await.unwrap();
    gone.shutdown().await;
    private(&b_session);

    let port = free_port();
    let text = w.accounts_config_text(
        &[
            ("alpha", a_session.as_path()),
            ("beta", b_session.as_path()),
        ],
        port,
    );
    let config = Config::parse_str(&text, "test config", &|_| None).expect("valid config");
    // Giftd reports ready while one account is unreachable.
    let running = Running::launch(config).ready(Duration::from_secs(60)).await;
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
    expected.insert(w.gift(p0, alpha.id, false), p0);
    assert_credited(&w, alpha.id, &expected).await;

    running.stop().await;
}
