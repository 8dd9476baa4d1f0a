//! The withdrawal worker under leases, against tgsim (real MTProto, the real grammers client)
//! and the embedded store: a worker whose instance holds a stale epoch of the account's lease
//! claims nothing and sends nothing; one that does not hold the lease does nothing; the
//! holder's worker sends.

use std::sync::Arc;
use std::time::Duration;

use giftd::gift::ItemKey;
use giftd::health::Health;
use giftd::inventory::Inventory;
use giftd::lease::Epochs;
use giftd::store::{RequestState, StoreError, account_lease};
use giftd::telegram::{ConnectOptions, Telegram};
use giftd::withdraw::worker::Worker;
use tokio_util::sync::CancellationToken;

use crate::support::{Backend, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_a_stale_epoch_sends_nothing() {
    let mut w = World::new(Backend::sqlite(), 1).await;
    w.extra_sections = "[withdraw]\ncall_timeout = \"2s\"\nsettle_delay = \"3s\"\n\
                        lease = \"4s\"\npoll_interval = \"100ms\"\n"
        .to_owned();
    let player = w.player(0);
    let sent = w.send_unique(player);
    let running = w.start().await;
    w.assert_exactly_once(Duration::from_secs(30)).await;
    running.stop().await;

    let store = w.store().await;
    let account = w.deposit.id;
    let name = account_lease(account);
    let ttl = Duration::from_secs(60);
    let stale = store.take_lease(&name, "me", ttl).await.unwrap();
    let stale = stale.held().unwrap().epoch;
    assert!(store.release_lease(&name, "me", stale).await.unwrap());
    let current = store.take_lease(&name, "other", ttl).await.unwrap();
    let current = current.held().unwrap().epoch;
    let key = ItemKey::new(account, sent.msg_id);
    let id = store.create_withdrawal(player, key).await.unwrap();

    let config = w.config();
    let health = Arc::new(Health::new());
    let cancel = CancellationToken::new();
    let conn = Telegram::connect(
        &ConnectOptions {
            session_file: config.accounts[0].session_file.clone(),
            api_id: config.telegram.api_id,
            api_hash: config.telegram.api_hash.clone(),
            flood_wait_max: config.telegram.flood_wait_max,
            updates: false,
            update_buffer: config.telegram.update_buffer,
            health: Arc::clone(&health),
        },
        cancel.child_token(),
    )
    .await
    .expect("connected to tgsim");
    let inventory = Arc::new(Inventory::new());
    for item in store.load_items(account).await.unwrap() {
        inventory.insert(item);
    }
    let epochs = Epochs::leased();
    let worker = Worker {
        store: Arc::clone(&store),
        telegram: conn.telegram.clone(),
        inventory,
        config: config.withdraw.clone(),
        id: Worker::id_for(account),
        wake: Arc::new(tokio::sync::Notify::new()),
        health,
        epochs: epochs.clone(),
    };
    let in_deposit = |w: &World| {
        w.sim
            .saved_gifts(account)
            .unwrap()
            .iter()
            .any(|g| g.unique.as_ref().map(|u| u.id) == sent.unique_id)
    };

    // This instance still believes it holds the term that "other" took over: refused.
    epochs.set(account, Some(stale));
    let err = worker.pass(&cancel).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Fenced { epoch: Some(e), current: Some(c), .. }
            if e == stale && c == current),
        "{err}"
    );
    let request = store.withdrawal(id).await.unwrap().unwrap();
    assert_eq!(
        (request.state, request.attempt),
        (RequestState::Requested, 0)
    );
    assert!(in_deposit(&w), "nothing was sent");

    // It knows it does not hold the account: it does nothing at all.
    epochs.set(account, None);
    worker.pass(&cancel).await.unwrap();
    assert_eq!(
        store.withdrawal(id).await.unwrap().unwrap().state,
        RequestState::Requested
    );
    assert!(in_deposit(&w));

    // The lease comes back to this instance in a new term: its worker sends, once.
    assert!(store.release_lease(&name, "other", current).await.unwrap());
    let mine = store.take_lease(&name, "me", ttl).await.unwrap();
    let mine = mine.held().unwrap().epoch;
    assert_eq!(mine, current + 1);
    epochs.set(account, Some(mine));
    worker.pass(&cancel).await.unwrap();
    assert_eq!(
        store.withdrawal(id).await.unwrap().unwrap().state,
        RequestState::Sent
    );
    assert!(!in_deposit(&w));
    let players_gifts = w.sim.saved_gifts(player).unwrap();
    assert_eq!(
        players_gifts
            .iter()
            .filter(|g| g.unique.as_ref().map(|u| u.id) == sent.unique_id)
            .count(),
        1
    );
    cancel.cancel();
    conn.runner.abort();
}
