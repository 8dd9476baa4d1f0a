//! The world a bench starts: tgsim with an id range of its own and its users, the deposit
//! account's session file, giftd's `Daemon` running in this process until it reports ready;
//! and the percentiles the benches print. Each bench includes it with `#[path]` and uses what
//! it needs, so the parts one bench leaves unused are allowed.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use giftd::app::{AppError, Daemon, Notice};
use giftd::config::Config;
use tgsim::{CreateUser, SendUniqueGift, SessionFor, Sim, SimConfig};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// A simulator whose user ids are a random range below 2^40 (grammers checks).
pub async fn start_sim() -> Sim {
    Sim::start(SimConfig {
        first_id: 1_000_000_000 + (rand::random::<u64>() % 900_000_000_000) as i64,
        ..SimConfig::default()
    })
    .await
    .expect("tgsim starts")
}

/// A user named `name` holding `stars`; returns its id.
pub fn user(sim: &Sim, name: &str, stars: i64) -> i64 {
    sim.create_user(CreateUser {
        username: name.into(),
        first_name: "Player".into(),
        stars,
        ..Default::default()
    })
    .expect("tgsim creates a user")
    .id
}

/// Writes `who`'s signed-in session at `path`, readable by its owner only (as giftd requires).
pub async fn write_session(sim: &Sim, who: impl Into<SessionFor>, path: &Path) {
    sim.write_session(who, path)
        .await
        .expect("tgsim writes the session");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .expect("session file chmod 600");
}

/// `n` collectibles (of the first gift of the catalogue) `from` sends `to`: their msg ids and
/// collectible ids.
pub fn collectibles(sim: &Sim, from: i64, to: i64, n: usize) -> Vec<(i32, i64)> {
    let gift_id = sim.gift_catalogue()[0].id;
    (0..n)
        .map(|_| {
            let sent = sim
                .send_unique_gift(SendUniqueGift {
                    from,
                    to,
                    gift_id,
                    ..SendUniqueGift::default()
                })
                .expect("collectible sent");
            (sent.msg_id, sent.unique_id.expect("a collectible id"))
        })
        .collect()
}

/// giftd's `Daemon` running in this process.
pub struct Running {
    pub daemon: Daemon,
    pub shutdown: CancellationToken,
    pub join: tokio::task::JoinHandle<Result<(), AppError>>,
    /// The daemon's notices after the one saying it is ready.
    pub notices: tokio::sync::broadcast::Receiver<Notice>,
}

/// Runs a daemon with `config` and waits until it reports ready (each notice within 60 s).
pub async fn launch(config: Config) -> Running {
    let daemon = Daemon::new();
    let mut notices = daemon.subscribe();
    let shutdown = CancellationToken::new();
    let join = {
        let daemon = daemon.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { daemon.run(&config, shutdown).await })
    };
    loop {
        match tokio::time::timeout(Duration::from_secs(60), notices.recv()).await {
            Ok(Ok(Notice::Ready { .. })) => break,
            Ok(Ok(_) | Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) | Err(_) => panic!("giftd not ready: {:?}", join.await),
        }
    }
    Running {
        daemon,
        shutdown,
        join,
        notices,
    }
}

/// The `q` quantile of sorted durations (zero when there are none).
pub fn pct(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
