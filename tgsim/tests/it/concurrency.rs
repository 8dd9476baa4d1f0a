use crate::support::*;

#[tokio::test]
async fn every_session_of_an_account_gets_every_gift_while_others_work() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let players: Vec<tgsim::Account> = (0..8).map(|i| user(&sim, &format!("p{i}"))).collect();
    // Three sessions of the deposit account (three keys, three connections).
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let mut c = TestClient::connect(&sim, deposit.id).await;
        let s = c.stream(&sim, false).await;
        sessions.push((c, s));
    }
    // Players are connected too and keep calling while gifts flow.
    let mut busy = Vec::new();
    for p in &players {
        let c = TestClient::connect(&sim, p.id).await;
        busy.push(tokio::spawn(async move {
            for _ in 0..20 {
                c.client.get_me().await.expect("player get_me");
            }
        }));
    }
    let ids: Vec<i64> = players.iter().map(|p| p.id).collect();
    let sent = sim.burst(50, &ids, deposit.id).expect("burst");
    let want: Vec<i32> = sent.iter().map(|s| s.msg_id).collect();
    for (_, s) in sessions.iter_mut() {
        assert_eq!(s.gifts(50).await, want);
    }
    for b in busy {
        b.await.expect("player task");
    }
    assert!(sim.stats().connections_open >= 11);
}
