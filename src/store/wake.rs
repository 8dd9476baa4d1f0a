//! How the store tells a running daemon that a withdrawal request is waiting, so a request made
//! by another process (the web app's `request_withdrawal`, `giftd withdrawals request`, an
//! operator's approve or retry, another instance's bot) is picked up at once instead of at the
//! worker's next poll. The poll stays: this is latency, never the only way a request is found.
//!
//! - **Supabase:** a trigger on `withdrawals` sends `NOTIFY giftd_withdrawals, '<account id>'`
//!   when a request becomes `requested` (delivered at commit). With `supabase.listen_url` set,
//!   [`listen`] keeps one direct PostgreSQL connection that `LISTEN`s on that channel,
//!   reconnecting with backoff (1 s doubling to 30 s). PostgREST stays giftd's only way to the
//!   data: a notification carries nothing but an account id and only wakes the workers, which
//!   read the queue as on every poll, so a forged or lost one changes nothing.
//! - **Embedded SQLite:** the daemon (the one process holding the file's lock) binds a unix
//!   datagram socket beside the database, `<file>.wake`; every store handle on the file sends
//!   one byte to it after committing a request that became `requested` ([`announce`]). Nobody
//!   listening (no daemon running) is not an error.
//!
//! Must never: put a secret (the listen URL holds a password) in a log line or an error, or
//! let a failure of this path stop the daemon or a command.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::StoreConfig;
use crate::secret::Secret;

/// The channel the `withdrawals_announce` trigger notifies.
pub const CHANNEL: &str = "giftd_withdrawals";

/// First wait before reconnecting the listen connection; doubled up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often the listen connection is checked with an empty query: a connection the network
/// dropped silently is noticed within this (plus the query's timeout), not hours later.
const HEARTBEAT: Duration = Duration::from_secs(15);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The wake-up socket of the embedded database at `db`: `<file>.wake`, beside its `.lock`.
pub fn socket_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".wake");
    PathBuf::from(name)
}

/// Tells the daemon on the embedded database `db`, if one runs, that a request is waiting.
/// Best effort: returns whether a daemon was there to hear it.
pub fn announce(db: &Path) -> bool {
    let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() else {
        return false;
    };
    // A full socket buffer means wake-ups are already pending: as good as delivered.
    let _ = socket.set_nonblocking(true);
    match socket.send_to(&[1], socket_path(db)) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
        Err(_) => false,
    }
}

/// Wakes every withdrawal worker: those waiting now, and (one permit) one that is in a pass
/// and would otherwise sleep a whole poll interval before seeing the request.
fn wake_workers(wake: &Notify) {
    wake.notify_waiters();
    wake.notify_one();
}

/// Runs until `cancel`: turns the store's announcements into wake-ups of the withdrawal
/// workers (`wake`). Returns at once when the store cannot announce anything (Supabase
/// without `listen_url`): the workers' poll is then the only way requests are found.
pub async fn listen(config: StoreConfig, wake: Arc<Notify>, cancel: CancellationToken) {
    match config {
        StoreConfig::Embedded(c) => listen_socket(&c.path, &wake, &cancel).await,
        StoreConfig::Supabase(c) => match c.listen_url {
            Some(url) => listen_postgres(&url, &wake, &cancel).await,
            None => tracing::info!(
                "supabase.listen_url not set: withdrawal requests made elsewhere are picked \
                 up at the worker's next poll"
            ),
        },
    }
}

async fn listen_socket(db: &Path, wake: &Notify, cancel: &CancellationToken) {
    let path = socket_path(db);
    // Only the daemon holding the database's lock gets here: a socket file left by one that
    // died is stale.
    let _ = std::fs::remove_file(&path);
    let socket = match tokio::net::UnixDatagram::bind(&path) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e,
                "cannot open the wake-up socket: withdrawal requests made by commands are \
                 picked up at the worker's next poll");
            return;
        }
    };
    tracing::info!(path = %path.display(), "wake-up socket listening");
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            r = socket.recv(&mut buf) => match r {
                Ok(_) => wake_workers(wake),
                Err(e) => {
                    tracing::warn!(error = %e, "wake-up socket failed; withdrawal requests \
                        made by commands are picked up at the worker's next poll");
                    break;
                }
            },
        }
    }
    drop(socket);
    let _ = std::fs::remove_file(&path);
}

/// Why the listen connection ended.
#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error("cannot connect within {0:?}")]
    ConnectTimeout(Duration),
    #[error("the connection did not answer a heartbeat within {0:?}")]
    HeartbeatTimeout(Duration),
    // tokio-postgres errors name the server's message, never the password of the URL.
    #[error("{0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the server closed the connection")]
    Closed,
}

async fn listen_postgres(url: &Secret, wake: &Notify, cancel: &CancellationToken) {
    let mut pg: tokio_postgres::Config = match url.expose().parse() {
        Ok(c) => c,
        Err(_) => {
            tracing::warn!(
                "supabase.listen_url is not a valid PostgreSQL URL: withdrawal requests made \
                 elsewhere are picked up at the worker's next poll"
            );
            return;
        }
    };
    pg.application_name("giftd listen")
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30));
    let server = describe(url);
    let mut delay = RETRY_MIN;
    loop {
        let started = tokio::time::Instant::now();
        let ended = tokio::select! {
            () = cancel.cancelled() => return,
            r = listen_once(&pg, &server, wake) => r,
        };
        // A connection that served a while earned a quick reconnect.
        if started.elapsed() > RETRY_MAX {
            delay = RETRY_MIN;
        }
        tracing::warn!(%server, error = %ended, retry_in_ms = delay.as_millis() as u64,
            "withdrawal listen connection lost; the worker's poll covers the gap");
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RETRY_MAX);
    }
}

/// One connection: LISTEN, then wake the workers on each notification until it fails.
async fn listen_once(pg: &tokio_postgres::Config, server: &str, wake: &Notify) -> ListenError {
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, pg.connect(tokio_postgres::NoTls)).await;
    let (client, mut connection) = match connected {
        Err(_) => return ListenError::ConnectTimeout(CONNECT_TIMEOUT),
        Ok(Err(e)) => return e.into(),
        Ok(Ok(pair)) => pair,
    };
    // The connection delivers notifications only while it is polled: this future drives it.
    let driver = async {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    tracing::debug!(
                        channel = n.channel(),
                        account = n.payload(),
                        "withdrawal request announced"
                    );
                    wake_workers(wake);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return ListenError::from(e),
                None => return ListenError::Closed,
            }
        }
    };
    let session = async {
        if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
            return ListenError::from(e);
        }
        tracing::info!(%server, channel = CHANNEL, "listening for withdrawal requests");
        // Requests made while not listening are waiting: look now.
        wake_workers(wake);
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            match tokio::time::timeout(HEARTBEAT_TIMEOUT, client.simple_query("")).await {
                Err(_) => return ListenError::HeartbeatTimeout(HEARTBEAT_TIMEOUT),
                Ok(Err(e)) => return ListenError::from(e),
                Ok(Ok(_)) => {}
            }
        }
    };
    tokio::select! {
        e = driver => e,
        e = session => e,
    }
}

/// `host:port/db` of a listen URL, for logs: never its user or password.
fn describe(url: &Secret) -> String {
    match url::Url::parse(url.expose()) {
        Ok(u) => format!(
            "{}:{}{}",
            u.host_str().unwrap_or("?"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "[unparsable url]".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listen_url_is_described_without_its_credentials() {
        let url = Secret::new("postgres://giftd:hunter2@db.example.co:6543/postgres");
        let d = describe(&url);
        assert_eq!(d, "db.example.co:6543/postgres");
        assert!(!d.contains("hunter2") && !d.contains("giftd"));
    }

    #[test]
    fn the_wake_socket_sits_beside_the_database() {
        assert_eq!(
            socket_path(Path::new("/var/lib/giftd/giftd.sqlite3")),
            Path::new("/var/lib/giftd/giftd.sqlite3.wake")
        );
    }

    #[tokio::test]
    async fn an_announcement_wakes_a_waiting_worker_and_nobody_listening_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("giftd.sqlite3");
        assert!(!announce(&db), "no daemon: nothing delivered, no error");
        let wake = Arc::new(Notify::new());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(listen(
            StoreConfig::Embedded(crate::config::EmbeddedStoreConfig { path: db.clone() }),
            Arc::clone(&wake),
            cancel.clone(),
        ));
        while !socket_path(&db).exists() {
            tokio::task::yield_now().await;
        }
        let woken = wake.notified();
        assert!(announce(&db));
        tokio::time::timeout(Duration::from_secs(10), woken)
            .await
            .expect("woken by the announcement");
        cancel.cancel();
        task.await.unwrap();
        assert!(
            !socket_path(&db).exists(),
            "the socket is removed at shutdown"
        );
    }
}
