use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

async fn send_and_expect_close(sim: &tgsim::Sim, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(sim.addr()).await.expect("connect");
    let _ = s.write_all(bytes).await;
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "the simulator must close a hostile connection");
    buf
}

#[tokio::test]
async fn garbage_closes_only_that_connection() {
    let sim = sim().await;
    let deposit = user(&sim, "deposit");
    let p = user(&sim, "player");
    let mut c = TestClient::connect(&sim, deposit.id).await;
    let mut stream = c.stream(&sim, false).await;
    c.client.get_me().await.expect("before");

    // A Full frame with a bad checksum.
    let mut frame = tgsim::transport::client_full_frame(0, &[7u8; 64]);
    let n = frame.len();
    frame[n - 1] ^= 0xff;
    send_and_expect_close(&sim, &frame).await;
    // An absurd length.
    send_and_expect_close(&sim, &[0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]).await;
    // Random bytes in an intermediate frame.
    let mut inter = vec![0xee, 0xee, 0xee, 0xee];
    inter.extend(200i32.to_le_bytes());
    inter.extend((0..200).map(|i| (i * 37 % 251) as u8));
    send_and_expect_close(&sim, &inter).await;
    // A well-formed frame with an unknown auth key gets transport error -404.
    let key = tgsim::crypto::AuthKey::new([9u8; 256]);
    let packet = tgsim::crypto::encrypt_as_client(&key, &[0u8; 48]);
    let reply = send_and_expect_close(&sim, &tgsim::transport::client_full_frame(0, &packet)).await;
    assert_eq!(reply, (-404i32).to_le_bytes());
    // A known key but a tampered ciphertext.
    let good = tgsim::crypto::AuthKey::new(deposit.auth_key);
    let mut packet = tgsim::crypto::encrypt_as_client(&good, &[0u8; 48]);
    let last = packet.len() - 1;
    packet[last] ^= 1;
    send_and_expect_close(&sim, &tgsim::transport::client_full_frame(0, &packet)).await;
    // Many half-open connections that send nothing.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(TcpStream::connect(sim.addr()).await.expect("connect"));
    }

    let st = sim.stats();
    assert!(st.malformed >= 3, "{st:?}");
    assert!(st.unknown_auth_key >= 1, "{st:?}");
    // The honest client is unaffected: requests and pushes still work.
    c.client.get_me().await.expect("after");
    let sent = sim.burst(1, &[p.id], deposit.id).expect("gift");
    loop {
        let u = stream.next(10).await;
        if let Some((id, _)) = gift_of(&u) {
            assert_eq!(id, sent[0].msg_id);
            break;
        }
    }
    drop(idle);
}

/// Well-encrypted nonsense: a client with a valid key sends random and truncated bodies,
/// including the constructors the server unwraps itself.
#[tokio::test]
async fn encrypted_nonsense_never_takes_the_simulator_down() {
    use grammers_client::tl::{self, Identifiable};
    let sim = sim().await;
    let acc = user(&sim, "deposit");
    let other = TestClient::connect(&sim, acc.id).await;
    other.client.get_me().await.expect("before");
    let ctors: Vec<u32> = vec![
        0x73f1f8dc, // msg_container
        0x3072cfa1, // gzip_packed
        0xda9b0d0d, // invokeWithLayer
        0xc1cd5ea9, // initConnection
        0xbf9459b7, // invokeWithoutUpdates
        0xcb9f372d, // invokeAfterMsg
        0x7abe77ec, // ping
        0xf3427b8c, // ping_delay_disconnect
        0xb921bd04, // get_future_salts
        tl::functions::payments::GetSavedStarGifts::CONSTRUCTOR_ID,
        tl::functions::payments::TransferStarGift::CONSTRUCTOR_ID,
        tl::functions::auth::CheckPassword::CONSTRUCTOR_ID,
        tl::functions::updates::GetDifference::CONSTRUCTOR_ID,
        tl::functions::messages::SendMessage::CONSTRUCTOR_ID,
        0xdeadbeef,
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        let mut c = tgsim::raw::RawClient::connect(
            sim.addr(),
            acc.auth_key,
            tgsim::transport::Kind::Intermediate,
        )
        .await
        .expect("connect");
        // Learn the salt with a good call first.
        let warm = grammers_client::tl::Serializable::to_bytes(&tl::functions::help::GetConfig {});
        c.call(&warm).await.expect("warm up");
        let ctor = ctors[round % ctors.len()];
        let len = (next() % 64) as usize * 4;
        let mut body = ctor.to_le_bytes().to_vec();
        body.extend((0..len).map(|_| next() as u8));
        let _ = c.send(&body).await;
        // Whatever the answer (an error, nothing, or a closed connection), move on.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(50), c.recv()).await;
    }
    other.client.get_me().await.expect("after");
    let ok = TestClient::connect(&sim, acc.id).await;
    ok.client.get_me().await.expect("fresh client");
}
