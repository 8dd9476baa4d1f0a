//! How fast the real grammers 0.11 client takes pushed gifts from tgsim: one deposit session
//! (SQLite session storage, as giftd uses) streaming updates while a burst of gifts arrives.
//! Prints figures; asserts nothing. Run: `cargo bench -p tgsim --bench grammers_push`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use grammers_client::sender::UpdatesConfiguration;
use grammers_client::session::storages::SqliteSession;
use grammers_client::{Client, SenderPool, tl};

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run(2000));
}

async fn run(n: usize) {
    let sim = tgsim::Sim::start(tgsim::SimConfig::default())
        .await
        .expect("sim");
    let deposit = sim
        .create_user(tgsim::CreateUser {
            username: "deposit".into(),
            ..Default::default()
        })
        .expect("deposit");
    let player = sim
        .create_user(tgsim::CreateUser {
            username: "player".into(),
            stars: i64::MAX / 4,
            ..Default::default()
        })
        .expect("player");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deposit.session");
    sim.write_session(deposit.id, &path).await.expect("session");
    let session = Arc::new(SqliteSession::open(&path).await.expect("open"));
    let pool = SenderPool::new(session, 1);
    let client = Client::new(pool.handle);
    let runner = tokio::spawn(pool.runner.run());
    let mut stream = client
        .stream_updates(pool.updates, UpdatesConfiguration { catch_up: false })
        .await
        .expect("stream");
    // First poll fetches the state; give it a gift to return.
    sim.burst(1, &[player.id], deposit.id).expect("warm up");
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.next_raw()).await;

    let t = Instant::now();
    sim.burst(n, &[player.id], deposit.id).expect("burst");
    let sent = t.elapsed();
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(Duration::from_secs(60), stream.next_raw()).await {
            Ok(Ok((tl::enums::Update::NewMessage(_), _, _))) => got += 1,
            Ok(Ok(_)) => {}
            _ => break,
        }
    }
    let total = t.elapsed();
    println!(
        "{{\"gifts\": {n}, \"received\": {got}, \"sim_send_secs\": {:.3}, \"grammers_receive_secs\": {:.3}, \"gifts_per_sec_into_grammers\": {:.0}}}",
        sent.as_secs_f64(),
        total.as_secs_f64(),
        got as f64 / total.as_secs_f64()
    );
    client.disconnect();
    runner.abort();
    sim.shutdown().await;
}
