//! Helpers for driving the real grammers 0.11 client against a [`tgsim::Sim`].

use std::sync::Arc;
use std::time::Duration;

use grammers_client::client::UpdateStream;
use grammers_client::sender::{ConnectionParams, NoRetries, UpdatesConfiguration};
use grammers_client::session::storages::SqliteSession;
use grammers_client::{Client, SenderPool, tl};
use tempfile::TempDir;
use tokio::task::JoinHandle;

pub const API_ID: i32 = 611335;
pub const API_HASH: &str = "d524b414d21f4d37f08684c1df41ac9c";

/// A grammers client connected to the simulator through a SQLite session file.
pub struct TestClient {
    pub client: Client,
    pub updates:
        Option<tokio::sync::mpsc::Receiver<grammers_client::session::updates::UpdatesLike>>,
    runner: JoinHandle<()>,
    _dir: TempDir,
}

impl TestClient {
    /// Connects with a session written by the simulator for `who` (account id or key).
    pub async fn connect(sim: &tgsim::Sim, who: impl Into<tgsim::SessionFor>) -> TestClient {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.session");
        sim.write_session(who, &path).await.expect("write session");
        Self::open(dir, path).await
    }

    pub async fn open(dir: TempDir, path: std::path::PathBuf) -> TestClient {
        let session = Arc::new(SqliteSession::open(&path).await.expect("open session"));
        let params = ConnectionParams {
            retry_policy: Box::new(NoRetries),
            ..Default::default()
        };
        let pool = SenderPool::with_configuration(session, API_ID, params);
        let client = Client::new(pool.handle);
        let runner = tokio::spawn(pool.runner.run());
        TestClient {
            client,
            updates: Some(pool.updates),
            runner,
            _dir: dir,
        }
    }

    pub async fn stream(&mut self, sim: &tgsim::Sim, catch_up: bool) -> Updates {
        let rx = self.updates.take().expect("updates receiver taken once");
        let before = state_calls(sim);
        let stream = self
            .client
            .stream_updates(rx, UpdatesConfiguration { catch_up })
            .await
            .expect("stream updates");
        Updates::start(stream, sim, before).await
    }

    pub async fn invoke<R: tl::RemoteCall>(
        &self,
        req: &R,
    ) -> Result<R::Return, grammers_client::InvocationError> {
        tokio::time::timeout(Duration::from_secs(20), self.client.invoke(req))
            .await
            .expect("request timed out")
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        self.client.disconnect();
        self.runner.abort();
    }
}

/// How many updates.getState and getDifference calls the simulator answered.
pub fn state_calls(sim: &tgsim::Sim) -> u64 {
    let c = sim.stats().calls;
    c.get("updates.getState").copied().unwrap_or(0)
        + c.get("updates.getDifference").copied().unwrap_or(0)
}

/// Raw updates pumped out of a grammers `UpdateStream` by a background task.
pub struct Updates {
    rx: tokio::sync::mpsc::UnboundedReceiver<tl::enums::Update>,
    task: JoinHandle<()>,
}

impl Drop for Updates {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Updates {
    /// Starts pumping and waits until the stream has fetched its initial state (grammers asks
    /// updates.getState, or getDifference when catching up, on the first poll; updates older
    /// than that state are skipped).
    pub async fn start(mut stream: UpdateStream, sim: &tgsim::Sim, before: u64) -> Updates {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((u, _, _)) = stream.next_raw().await {
                if tx.send(u).is_err() {
                    return;
                }
            }
        });
        for _ in 0..100 {
            if state_calls(sim) > before {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Updates { rx, task };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("update stream never asked updates.getState or getDifference");
    }

    /// Next raw update within `secs`.
    pub async fn next(&mut self, secs: u64) -> tl::enums::Update {
        tokio::time::timeout(Duration::from_secs(secs), self.rx.recv())
            .await
            .expect("no update in time")
            .expect("update stream ended")
    }

    /// Next update within `millis`, if any.
    pub async fn try_next(&mut self, millis: u64) -> Option<tl::enums::Update> {
        tokio::time::timeout(Duration::from_millis(millis), self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next `n` gift service-message ids.
    pub async fn gifts(&mut self, n: usize) -> Vec<i32> {
        let mut got = Vec::new();
        while got.len() < n {
            if let Some((id, _)) = gift_of(&self.next(15).await) {
                got.push(id);
            }
        }
        got
    }
}

/// The gift action of a new-message update, if any: (msg_id, unique).
pub fn gift_of(u: &tl::enums::Update) -> Option<(i32, bool)> {
    let tl::enums::Update::NewMessage(m) = u else {
        return None;
    };
    let tl::enums::Message::Service(s) = &m.message else {
        return None;
    };
    match &s.action {
        tl::enums::MessageAction::StarGift(_) => Some((s.id, false)),
        tl::enums::MessageAction::StarGiftUnique(_) => Some((s.id, true)),
        _ => None,
    }
}

pub async fn sim() -> tgsim::Sim {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tgsim::Sim::start(tgsim::SimConfig::default())
        .await
        .expect("sim starts")
}

pub fn user(sim: &tgsim::Sim, name: &str) -> tgsim::Account {
    sim.create_user(tgsim::CreateUser {
        username: name.into(),
        first_name: name.into(),
        ..Default::default()
    })
    .expect("create user")
}

pub fn saved_req(offset: &str, limit: i32) -> tl::functions::payments::GetSavedStarGifts {
    tl::functions::payments::GetSavedStarGifts {
        exclude_unsaved: false,
        exclude_saved: false,
        exclude_unlimited: false,
        exclude_unique: false,
        sort_by_value: false,
        exclude_upgradable: false,
        exclude_unupgradable: false,
        peer_color_available: false,
        exclude_hosted: false,
        peer: tl::enums::InputPeer::PeerSelf,
        collection_id: None,
        offset: offset.into(),
        limit,
    }
}
