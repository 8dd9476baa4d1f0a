use grammers_client::tl;

use crate::support::*;

#[tokio::test]
async fn grammers_connects_gets_config_and_self() {
    let sim = sim().await;
    let alice = user(&sim, "alice");
    let c = TestClient::connect(&sim, alice.id).await;
    let tl::enums::Config::Config(cfg) = c
        .invoke(&tl::functions::help::GetConfig {})
        .await
        .expect("config");
    assert_eq!(cfg.this_dc, 2);
    assert!(cfg.dc_options.iter().all(|o| match o {
        tl::enums::DcOption::Option(o) => o.port == sim.addr().port() as i32,
    }));
    let me = c.client.get_me().await.expect("get_me");
    assert_eq!(me.id().bare_id(), Some(alice.id));
    assert_eq!(me.username(), Some("alice"));
    let stats = sim.stats();
    assert!(
        stats.bad_server_salt >= 1,
        "a fresh client's salt 0 must be corrected: {stats:?}"
    );
    sim.shutdown().await;
}
