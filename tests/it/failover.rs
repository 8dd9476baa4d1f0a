//! Several `giftd run` processes on one PostgreSQL store (through the PostgREST-compatible
//! server) and one simulated Telegram with two deposit accounts: each account is served by the
//! instance holding its lease, and whatever happens to that instance (kill -9, SIGSTOP past its
//! lease, its database connection cut) every gift is credited once and every withdrawal is sent
//! once. Leases are short here (1.5 s, renewed every 0.5 s) so take-overs are quick.

use std::sync::Arc;
use std::time::{Duration, Instant};

use giftd::gift::ItemKey;
use giftd::store::Store;
use giftd::withdraw::machine::RequestState;

use crate::support::{Backend, Bot, Cluster, Patience, http_get_lenient};

/// Three instances; the holder of an account is killed with SIGKILL in the middle of a burst
/// of gifts, three times (and restarted each time, so three stay up): every gift is credited
/// once, to its sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_holder_mid_burst_loses_and_doubles_nothing() {
    let mut c = Cluster::new(3).await;
    for _ in 0..3 {
        c.start(None, None).await;
    }
    let mut holders = c.holders(Duration::from_secs(60)).await;
    for round in 0..3 {
        let victim_name = if round % 2 == 0 { "alpha" } else { "beta" };
        let victim = holders[victim_name];
        // A burst to both accounts; the holder dies a third of the way through.
        for i in 0..60 {
            let to = if i % 2 == 0 { c.alpha.id } else { c.beta.id };
            c.send(to);
            if i == 20 {
                c.instances[victim].kill9();
            }
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        c.start(Some(victim), None).await;
        holders = c.holders(Duration::from_secs(60)).await;
        assert_ne!(
            holders.get(victim_name),
            None,
            "round {round}: {victim_name} has a holder again"
        );
    }
    c.assert_every_gift_credited_once(Duration::from_secs(60))
        .await;
    // SIGTERM: each instance stops cleanly.
    for inst in std::mem::take(&mut c.instances) {
        let status = inst.terminate().await;
        assert!(status.success(), "giftd exits 0 on SIGTERM, got {status}");
    }
}

/// SIGTERM of a holder hands its accounts over at once (the leases are released after the
/// mirror's flush), long before the lease would expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_leases_after_the_flush() {
    let mut c = Cluster::new(2).await;
    c.lease = "[lease]\nttl = \"30s\"\nrenew_every = \"1s\"\n\
               [bot]\ntoken = \"123456:failover-test\"\n"
        .to_owned();
    c.start(None, None).await;
    let first = c.holders(Duration::from_secs(60)).await;
    assert_eq!(first.values().collect::<Vec<_>>(), [&0, &0]);
    c.start(None, None).await;
    // The second stands by, healthy, for both accounts and the bot.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = http_get_lenient(c.instances[1].port, "/readyz").await;
        if code == 200
            && body
                .matches("standby (another instance serves it; healthy)")
                .count()
                == 2
            && body.contains("bot: standby (another instance runs it; healthy)")
        {
            let (_, first) = http_get_lenient(c.instances[0].port, "/readyz").await;
            assert!(
                first.contains("(this instance holds the bot lease)"),
                "{first}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no standby: {code} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..10 {
        c.send(c.alpha.id);
        c.send(c.beta.id);
    }
    let old = c.instances.remove(0);
    let status = old.terminate().await;
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(c.w.dir.path().join("instance-0.log")).unwrap();
    assert!(log.contains("lease released"), "{log}");
    // Released, not expired: the other takes over well within one TTL after the exit, the
    // bot too.
    let took = Instant::now();
    let holders = c.holders(Duration::from_secs(30)).await;
    assert_eq!(holders.values().collect::<Vec<_>>(), [&0, &0]);
    // With a 30 s TTL an expiry could not be waited out in 15 s: this was the release.
    assert!(
        took.elapsed() < Duration::from_secs(15),
        "took over in {:?}: the leases were not released",
        took.elapsed()
    );
    c.instances[0]
        .readyz_until(
            Duration::from_secs(10),
            Duration::from_millis(50),
            "the bot lease did not move",
            |_, body| body.contains("(this instance holds the bot lease)"),
        )
        .await;
    for _ in 0..5 {
        c.send(c.alpha.id);
    }
    c.assert_every_gift_credited_once(Duration::from_secs(30))
        .await;
}

/// The holder is stopped (SIGSTOP) past its lease; another instance takes over and credits what
/// arrives meanwhile. Continued (SIGCONT), the old holder writes nothing (its epoch is stale and
/// it steps down by its own clock) and stands by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_holder_resumes_writes_nothing_and_steps_down() {
    let mut c = Cluster::new(2).await;
    c.start(None, None).await;
    c.holders(Duration::from_secs(60)).await;
    c.start(None, None).await;
    let store = c.w.store().await;
    c.instances[0].signal("-STOP");
    for _ in 0..10 {
        c.send(c.alpha.id);
        c.send(c.beta.id);
    }
    // The other instance takes both accounts once the paused one's leases expire.
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.instances[1].serving().await.len() != 2 {
        assert!(
            Instant::now() < deadline,
            "no take-over: {}",
            c.instances[1].log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.assert_every_gift_credited_once(Duration::from_secs(30))
        .await;
    let before = ledger_sizes(&store, &c).await;
    c.instances[0].signal("-CONT");
    // It steps down: standby for both accounts, while the other still serves them.
    c.instances[0]
        .readyz_until(
            Duration::from_secs(30),
            Duration::from_millis(100),
            "did not step down",
            |_, body| body.matches(": standby").count() == 2,
        )
        .await;
    assert_eq!(c.instances[1].serving().await.len(), 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        ledger_sizes(&store, &c).await,
        before,
        "the resumed instance wrote nothing"
    );
    c.assert_every_gift_credited_once(Duration::from_secs(5))
        .await;
}

/// Ledger entries of every expected item, to see that nothing was written.
async fn ledger_sizes(store: &Arc<dyn Store>, c: &Cluster) -> usize {
    let mut n = 0;
    for &(account, msg_id) in c.expected.keys() {
        n += store
            .item_history(ItemKey::new(account, msg_id))
            .await
            .unwrap()
            .len();
    }
    n
}

/// Withdrawals while holders are killed: collectibles are requested back by their players in
/// a stream, and the holder of the account is killed with SIGKILL twice in the middle; every
/// request ends `sent` and every gift reaches its player exactly once (tgsim counts what the
/// player holds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_holder_mid_withdrawals_sends_each_once() {
    let mut c = Cluster::new(2).await;
    for _ in 0..3 {
        c.start(None, None).await;
    }
    c.holders(Duration::from_secs(60)).await;
    let player = c.w.players[0].id;
    let mut msgs = Vec::new();
    for _ in 0..12 {
        let msg = c.send_collectible(player, c.alpha.id, None);
        msgs.push(msg);
    }
    c.assert_every_gift_credited_once(Duration::from_secs(30))
        .await;
    let store = c.w.store().await;
    let mut ids = Vec::new();
    for (i, msg) in msgs.iter().enumerate() {
        ids.push(
            store
                .create_withdrawal(player, ItemKey::new(c.alpha.id, *msg))
                .await
                .unwrap(),
        );
        if i == 3 || i == 8 {
            let holder = c.holders(Duration::from_secs(60)).await["alpha"];
            c.instances[holder].kill9();
            c.start(Some(holder), None).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for id in &ids {
        loop {
            let w = store.withdrawal(*id).await.unwrap().expect("request");
            if w.state == RequestState::Sent {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "withdrawal {id} is {} ({:?})",
                w.state,
                w.reason
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let held_by_player = c.w.collectible_count(player);
    assert_eq!(held_by_player, msgs.len(), "each collectible arrived once");
    assert!(
        c.w.sim
            .saved_gifts(c.alpha.id)
            .unwrap()
            .iter()
            .all(|g| g.unique.is_none()),
        "none is left in the deposit account"
    );
}

/// The database is unreachable for the holder only (its connection to the PostgREST server goes
/// through a proxy the test cuts): it stops acting by its own clock before its lease expires,
/// the other instance takes both accounts over and credits what arrives; restored, the first
/// stands by, and nothing was lost or credited twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_cut_off_from_the_holder_only() {
    let mut c = Cluster::new(2).await;
    let Backend::Supabase { rest_url, .. } = &c.w.backend else {
        unreachable!()
    };
    let url = url::Url::parse(rest_url).unwrap();
    let target = std::net::SocketAddr::new(
        url.host_str().unwrap().parse().unwrap(),
        url.port().unwrap(),
    );
    let proxy = crate::support::Proxy::start(target).await;
    let proxied = format!("http://{}{}", proxy.addr, url.path().trim_end_matches('/'));
    c.start(None, Some(&proxied)).await;
    c.holders(Duration::from_secs(60)).await;
    c.start(None, None).await;
    for _ in 0..5 {
        c.send(c.alpha.id);
        c.send(c.beta.id);
    }
    c.assert_every_gift_credited_once(Duration::from_secs(30))
        .await;

    proxy.cut();
    for _ in 0..10 {
        c.send(c.alpha.id);
        c.send(c.beta.id);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let first = c.instances[0].serving().await;
        let second = c.instances[1].serving().await;
        if first.is_empty() && second.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no take-over: first serves {first:?}, second {second:?}\n{}",
            c.instances[0].log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.assert_every_gift_credited_once(Duration::from_secs(30))
        .await;

    proxy.restore();
    c.instances[0]
        .readyz_until(
            Duration::from_secs(30),
            Duration::from_millis(100),
            "not standing by",
            |_, body| body.matches(": standby").count() == 2,
        )
        .await;
    for _ in 0..5 {
        c.send(c.beta.id);
    }
    c.assert_every_gift_credited_once(Duration::from_secs(30))
        .await;
}

/// The holder's own session of an account is terminated (from another device): it cannot serve
/// the account, so it gives the lease up and the other instance, whose session still works,
/// takes the account over and credits what arrives; the first says which account is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_cannot_serve_an_account_gives_it_up() {
    let mut c = Cluster::new(2).await;
    c.start(None, None).await;
    c.holders(Duration::from_secs(60)).await;
    c.start(None, None).await;
    let key = c.keys.lock().unwrap()[&(0, c.alpha.id)];
    assert!(c.w.sim.revoke_key(&key));
    for _ in 0..5 {
        c.send(c.alpha.id);
        c.send(c.beta.id);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let second = c.instances[1].serving().await;
        let first = c.instances[0].serving().await;
        if second == ["alpha"] && first == ["beta"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alpha not handed over: first serves {first:?}, second {second:?}\n{}",
            c.instances[0].log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, body) = http_get_lenient(c.instances[0].port, "/readyz").await;
    assert!(
        code == 503 && body.contains("SESSION_REVOKED") && body.contains("account alpha"),
        "{code} {body}"
    );
    c.assert_every_gift_credited_once(Duration::from_secs(30))
        .await;
}

/// The holder dies right after Telegram moved a gift and before it recorded the answer (a crash
/// point): the request is left `sending`. The new holder first takes the old term's claim back
/// and resolves it by looking at Telegram (the gift is gone: sent) before it claims anything,
/// then sends the rest: each collectible reaches the player once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_holder_resolves_the_dead_holders_send_before_claiming() {
    assert!(
        giftd::failpoints_enabled(),
        "this test crashes giftd at a chosen point: run it with `--features giftd/failpoints`"
    );
    let mut c = Cluster::new(1).await;
    c.start_with(None, None, Some("withdraw-after-answer=return"))
        .await;
    c.holders(Duration::from_secs(60)).await;
    c.start(None, None).await;
    let player = c.w.players[0].id;
    let mut msgs = Vec::new();
    for _ in 0..3 {
        let msg = c.send_collectible(player, c.alpha.id, None);
        msgs.push(msg);
    }
    c.assert_every_gift_credited_once(Duration::from_secs(30))
        .await;
    let store = c.w.store().await;
    let mut ids = Vec::new();
    for msg in &msgs {
        ids.push(
            store
                .create_withdrawal(player, ItemKey::new(c.alpha.id, *msg))
                .await
                .unwrap(),
        );
    }
    // The holder crashes at its first send.
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.instances[0].child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the holder never reached its crash point"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for id in &ids {
        loop {
            let w = store.withdrawal(*id).await.unwrap().expect("request");
            if w.state == RequestState::Sent {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "withdrawal {id} is {} ({:?})\n{}",
                w.state,
                w.reason,
                c.instances[1].log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let held_by_player = c.w.collectible_count(player);
    assert_eq!(held_by_player, msgs.len(), "each collectible arrived once");
    assert!(
        c.instances[1]
            .log_text()
            .contains("resolved against Telegram before any claim"),
        "the new holder settled the dead holder's send first"
    );
}

/// Accounts spread over instances (each lists one), the bot on the one serving `alpha`: a
/// player whose gift went to `beta` (served by the other instance) still sees it through the
/// bot, and a withdrawal asked there is sent once, by the instance serving `beta`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_reads_accounts_served_elsewhere() {
    let mut c = Cluster::new(1).await;
    let player = c.w.players[0].id;
    let mut bot = Bot::create(&c.w, "spreaddeskbot", "spread-bot.session").await;
    bot.patience = Patience::CLUSTER;
    // Instance 0 lists alpha and runs the bot; instance 1 lists beta.
    c.start_split(&bot, &bot.section(None), |config| config)
        .await;

    let msg_id = c.send_collectible(player, c.beta.id, None);
    c.assert_every_gift_credited_once(Duration::from_secs(30))
        .await;

    // The bot's instance does not serve beta: the gift comes from the store.
    let list = bot.ask(player, "/withdraw", "Which gift").await;
    let (_, confirm) = bot.press(player, &list, "Withdraw 1").await;
    assert!(
        confirm.text.contains("transfer"),
        "the plan for a collectible: {}",
        confirm.text
    );
    let (_, queued) = bot.press(player, &confirm, "✅").await;
    assert!(queued.text.contains("queued"), "{}", queued.text);

    // Instance 1 (serving beta) sends it, once.
    let key = ItemKey::new(c.beta.id, msg_id);
    let store = c.w.store().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let items = store
            .list_withdrawals(&giftd::store::WithdrawalFilter::default())
            .await
            .unwrap();
        let mine: Vec<_> = items.iter().filter(|w| w.key == key).collect();
        assert!(mine.len() <= 1, "one request for the gift: {mine:?}");
        if mine.first().is_some_and(|w| w.state == RequestState::Sent) {
            break;
        }
        assert!(Instant::now() < deadline, "not sent: {mine:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let arrived = c.w.collectible_count(player);
    assert_eq!(arrived, 1, "the collectible reached the player once");
}
