//! Health for operators: `/healthz`, `/readyz` and `/metrics` over HTTP on a loopback port, and
//! the systemd notify protocol (`READY=1`, `WATCHDOG=1`, `STATUS=...`).
//!
//! The HTTP side is deliberately tiny (one request per connection, GET only, bounded reads): it
//! serves probes and a Prometheus scrape, nothing else, and a bad request never affects the
//! daemon. The state it reports is written by the rest of giftd through [`Health`], with atomics
//! only, so reporting never blocks detection.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Counters and gauges, exported as Prometheus metrics named `giftd_<field>`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Items credited, by the path that saw them first.
    pub deposits_update: AtomicU64,
    pub deposits_poll: AtomicU64,
    pub deposits_reconcile: AtomicU64,
    /// Items that left the account (converted, refunded, upgraded, gone).
    pub departures: AtomicU64,
    pub polls: AtomicU64,
    pub reconciliations: AtomicU64,
    /// Changes waiting for the store.
    pub mirror_backlog: AtomicU64,
    pub mirror_batches: AtomicU64,
    pub mirror_rows: AtomicU64,
    pub mirror_failures: AtomicU64,
    pub telegram_errors: AtomicU64,
    /// Unix seconds of the last successful poll.
    pub last_poll_unix: AtomicI64,
    /// Items in the live inventory.
    pub inventory_items: AtomicU64,
    /// Items recorded without a sender and credited later to the sender Telegram named.
    pub attributions: AtomicU64,
    /// Telegram updates dropped before giftd read them (its update buffer was full); polling
    /// finds their gifts. Counted by giftd itself, not from grammers' rate-limited warning.
    pub updates_dropped: AtomicU64,
    /// Telegram updates that reached giftd's update buffer.
    pub updates_received: AtomicU64,
}

/// What the daemon tells its supervisors.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    /// Why the daemon is not ready (or is degraded), for `/readyz` and `STATUS=`.
    status: Mutex<String>,
    pub metrics: Metrics,
}

impl Health {
    pub fn new() -> Self {
        Self {
            status: Mutex::new("starting".to_owned()),
            ..Default::default()
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Marks the daemon ready (or not) with a human reason, and tells systemd.
    pub fn set_ready(&self, ready: bool, status: &str) {
        let was = self.ready.swap(ready, Ordering::Relaxed);
        self.set_status(status);
        if ready && !was {
            sd_notify("READY=1");
        }
    }

    pub fn set_status(&self, status: &str) {
        // The lock guards a String write; a poisoned lock still holds a valid String.
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        if *s != status {
            s.clear();
            s.push_str(status);
            sd_notify(&format!("STATUS={status}"));
        }
    }

    pub fn status(&self) -> String {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The Prometheus text exposition of [`Metrics`].
    pub fn render_metrics(&self) -> String {
        let m = &self.metrics;
        let mut out = String::new();
        let mut put = |name: &str, kind: &str, help: &str, value: i64| {
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "# HELP giftd_{name} {help}\n# TYPE giftd_{name} {kind}\ngiftd_{name} {value}"
            );
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as i64;
        put(
            "ready",
            "gauge",
            "1 when the daemon is ready",
            i64::from(self.is_ready()),
        );
        put(
            "deposits_update_total",
            "counter",
            "items credited from real-time updates",
            get(&m.deposits_update),
        );
        put(
            "deposits_poll_total",
            "counter",
            "items credited by polling",
            get(&m.deposits_poll),
        );
        put(
            "deposits_reconcile_total",
            "counter",
            "items credited by full reconciliation",
            get(&m.deposits_reconcile),
        );
        put(
            "departures_total",
            "counter",
            "items that left the deposit account",
            get(&m.departures),
        );
        put(
            "polls_total",
            "counter",
            "polls of payments.getSavedStarGifts",
            get(&m.polls),
        );
        put(
            "reconciliations_total",
            "counter",
            "full reconciliations",
            get(&m.reconciliations),
        );
        put(
            "mirror_backlog",
            "gauge",
            "changes waiting for the store",
            get(&m.mirror_backlog),
        );
        put(
            "mirror_batches_total",
            "counter",
            "batches written to the store",
            get(&m.mirror_batches),
        );
        put(
            "mirror_rows_total",
            "counter",
            "changes written to the store",
            get(&m.mirror_rows),
        );
        put(
            "mirror_failures_total",
            "counter",
            "failed store writes (retried)",
            get(&m.mirror_failures),
        );
        put(
            "telegram_errors_total",
            "counter",
            "failed Telegram calls",
            get(&m.telegram_errors),
        );
        put(
            "last_poll_timestamp_seconds",
            "gauge",
            "unix time of the last successful poll",
            m.last_poll_unix.load(Ordering::Relaxed),
        );
        put(
            "inventory_items",
            "gauge",
            "items in the live inventory",
            get(&m.inventory_items),
        );
        put(
            "attributions_total",
            "counter",
            "items first recorded without a sender, credited later to the sender Telegram named",
            get(&m.attributions),
        );
        put(
            "updates_received_total",
            "counter",
            "telegram updates received into giftd's update buffer",
            get(&m.updates_received),
        );
        put(
            "updates_dropped_total",
            "counter",
            "telegram updates dropped because the update buffer was full (polling finds their gifts)",
            get(&m.updates_dropped),
        );
        out
    }
}

/// Serves `/healthz`, `/readyz` and `/metrics` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    health: std::sync::Arc<Health>,
    cancel: CancellationToken,
) {
    loop {
        let (mut stream, _) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "health endpoint: accept failed");
                    continue;
                }
            },
        };
        let health = std::sync::Arc::clone(&health);
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
                    .await;
            let n = match read {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("GET "))
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or("");
            let (code, body) = match path {
                "/healthz" => (200, "ok\n".to_owned()),
                "/readyz" if health.is_ready() => (200, format!("ready: {}\n", health.status())),
                "/readyz" => (503, format!("not ready: {}\n", health.status())),
                "/metrics" => (200, health.render_metrics()),
                _ => (
                    404,
                    "not found: try /healthz, /readyz or /metrics\n".to_owned(),
                ),
            };
            let reason = match code {
                200 => "OK",
                503 => "Service Unavailable",
                _ => "Not Found",
            };
            let response = format!(
                "HTTP/1.1 {code} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

/// Sends a message to systemd when run under `Type=notify` (`NOTIFY_SOCKET` set); returns
/// whether it was sent.
pub fn sd_notify(message: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let socket = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return false,
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| socket.send_to_addr(message.as_bytes(), &addr))
    } else {
        socket.send_to(message.as_bytes(), &path)
    };
    sent.is_ok()
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`), halved as sd_watchdog_enabled(3)
/// recommends.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| std::time::Duration::from_micros(usec / 2))
}

/// Binds the health endpoint, with an error that says which address failed.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {addr} for the health endpoint ([health] listen): {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_every_counter() {
        let h = Health::new();
        h.metrics.deposits_poll.store(3, Ordering::Relaxed);
        h.set_ready(true, "watching");
        let text = h.render_metrics();
        assert!(text.contains("giftd_deposits_poll_total 3\n"), "{text}");
        assert!(text.contains("giftd_ready 1\n"), "{text}");
        assert_eq!(text.matches("# TYPE").count(), 17);
    }

    #[tokio::test]
    async fn endpoints_answer() {
        let h = std::sync::Arc::new(Health::new());
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        tokio::spawn(serve(listener, h.clone(), cancel.clone()));
        async fn get(addr: SocketAddr, path: &str) -> String {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        }
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        h.set_ready(true, "watching");
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/healthz").await.ends_with("ok\n"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        cancel.cancel();
    }
}
