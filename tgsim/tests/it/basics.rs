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

#[tokio::test]
async fn advertised_address_is_what_clients_are_told() {
    use grammers_client::tl::{Deserializable, Serializable};
    let sim = tgsim::Sim::start(tgsim::SimConfig {
        advertise: Some("127.0.0.1:9".parse().expect("addr")),
        ..Default::default()
    })
    .await
    .expect("sim");
    let acc = user(&sim, "deposit");
    assert_eq!(acc.addr, "127.0.0.1:9".parse().expect("addr"));
    let mut c =
        tgsim::raw::RawClient::connect(sim.addr(), acc.auth_key, tgsim::transport::Kind::Full)
            .await
            .expect("connect");
    let tgsim::raw::Answer::Result(body) = c
        .call(&tl::functions::help::GetConfig {}.to_bytes())
        .await
        .expect("config")
    else {
        panic!("config expected");
    };
    let tl::enums::Config::Config(cfg) = tl::enums::Config::from_bytes(&body).expect("parse");
    assert!(
        cfg.dc_options
            .iter()
            .all(|tl::enums::DcOption::Option(o)| o.port == 9)
    );
    let spec = sim
        .session_spec(tgsim::SessionFor::Account(acc.id))
        .expect("spec");
    assert_eq!(spec.addr.port(), 9);
}
