//! A withdrawal request made by another process wakes the worker: with the queue poll ten
//! minutes away, the request is sent within seconds only because the store told the daemon
//! (the wake-up socket of the embedded store; LISTEN/NOTIFY with `supabase.listen_url`).

use std::time::{Duration, Instant};

use giftd::config::Config;
use giftd::gift::ItemKey;
use giftd::health::AccountLabel;
use giftd::store::RequestState;
use tgsim::SendUniqueGift;

use crate::support::{Backend, Running, World, psql};

contract!(a_request_made_elsewhere_wakes_the_worker_before_its_poll);

/// The queue poll: far longer than the test may take, so only a wake-up can start a pass.
const POLL: &str = "10m";

async fn a_request_made_elsewhere_wakes_the_worker_before_its_poll(backend: Backend) {
    let mut w = World::new(backend, 1).await;
    w.extra_sections = format!(
        "[withdraw]\npoll_interval = \"{POLL}\"\ncall_timeout = \"2s\"\nsettle_delay = \"3s\"\n\
         lease = \"4s\"\n"
    );
    let player = w.player(0);
    let sent = w
        .sim
        .send_unique_gift(SendUniqueGift {
            from: player,
            to: w.deposit.id,
            gift_id: w.regular_gift(),
            ..SendUniqueGift::default()
        })
        .expect("collectible sent");
    w.expected.insert(sent.msg_id, Some(player));
    let mut text = w.config_text();
    if let Backend::Supabase { pg_url, .. } = &w.backend {
        text = text.replace(
            "[supabase]\n",
            &format!("[supabase]\nlisten_url = \"{pg_url}\"\n"),
        );
    }
    let config = Config::parse_str(&text, "test config", &|_| None).expect("valid config");
    let running = start(&w, config.clone()).await;
    w.assert_exactly_once(Duration::from_secs(30)).await;

    // From the end of the worker's first pass on, it looks at the queue again only when woken
    // (or at its poll, ten minutes away): nothing is awaited between counting a pass and
    // waiting for the next wake-up.
    let account = w.deposit.id;
    let label = AccountLabel {
        account: account.to_string(),
    };
    let passes = || {
        running
            .daemon
            .health()
            .withdrawals
            .passes
            .get(&label)
            .map_or(0, |c| c.get())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while passes() == 0 {
        assert!(
            Instant::now() < deadline,
            "the worker never finished its first pass"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Another process (the CLI's way: its own handle on the store) asks for the gift.
    let other = giftd::store::open_shared(&config.store)
        .await
        .expect("store opens");
    let key = ItemKey::new(account, sent.msg_id);
    let id = other
        .create_withdrawal(player, key)
        .await
        .expect("request created");
    wait_sent(&*other, id).await;
    let arrived = w.collectible_count(player);
    assert_eq!(arrived, 1, "the collectible reached the player once");

    // Supabase: the listen connection is cut (its backend terminated). A request made while
    // it is down is found by the wake-up that follows the next LISTEN.
    if let Backend::Supabase { pg_url, .. } = &w.backend {
        let second = w
            .sim
            .send_unique_gift(SendUniqueGift {
                from: player,
                to: account,
                gift_id: w.regular_gift(),
                ..SendUniqueGift::default()
            })
            .expect("collectible sent");
        w.expected.remove(&sent.msg_id); // withdrawn
        w.expected.insert(second.msg_id, Some(player));
        w.assert_exactly_once(Duration::from_secs(30)).await;
        let listeners = "select count(*) from pg_stat_activity \
                         where application_name = 'giftd listen' and backend_type = 'client backend'";
        assert_eq!(psql(pg_url, listeners), "1", "one listen connection");
        psql(
            pg_url,
            "select pg_terminate_backend(pid) from pg_stat_activity \
             where application_name = 'giftd listen'",
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while psql(pg_url, listeners) != "0" {
            assert!(Instant::now() < deadline, "the backend never ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let id = other
            .create_withdrawal(player, ItemKey::new(account, second.msg_id))
            .await
            .expect("request created");
        wait_sent(&*other, id).await;
        assert_eq!(psql(pg_url, listeners), "1", "listening again");
    }
    running.stop().await;
}

async fn wait_sent(store: &dyn giftd::store::Store, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = store
            .withdrawal(id)
            .await
            .unwrap()
            .expect("the request")
            .state;
        if state == RequestState::Sent {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "request {id} is {state:?} 30 s later: the worker was not woken"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `World::start` with a configuration of the test's own (the listen URL).
async fn start(w: &World, config: Config) -> Running {
    w.provision_session().await;
    Running::launch(config).ready(Duration::from_secs(30)).await
}
