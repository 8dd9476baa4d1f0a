//! The HTTP endpoints `/healthz`, `/readyz` and `/metrics` on a loopback port. Deliberately tiny:
//! one request per connection, GET only, a bounded read with a deadline; a bad request never
//! affects the daemon.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Health;

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
                "/readyz" if health.is_ready() => (200, health.readiness()),
                "/readyz" => (503, health.readiness()),
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
            let content_type = if path == "/metrics" {
                "text/plain; version=0.0.4; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            };
            let response = format!(
                "HTTP/1.1 {code} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
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
    use super::super::*;
    use super::*;

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
        // One account down makes the daemon not ready, and says which.
        for name in ["alpha", "beta", "gamma"] {
            h.add_account(name);
        }
        h.set_account("alpha", Some(11), AccountState::Serving);
        h.set_account("gamma", None, AccountState::Standby);
        h.set_account(
            "beta",
            Some(22),
            AccountState::Down("session revoked: run `giftd login --account beta`".into()),
        );
        let body = get(addr, "/readyz").await;
        assert!(body.starts_with("HTTP/1.1 503"), "{body}");
        assert!(
            body.ends_with(
                "not ready: deposit account down: beta\n\
                 account alpha (11): serving\n\
                 account beta (22): down: session revoked: run `giftd login --account beta`\n\
                 account gamma: standby (another instance serves it; healthy)\n"
            ),
            "{body}"
        );
        let metrics = h.render_metrics();
        for line in [
            "giftd_account{name=\"beta\",state=\"down\"} 1\n",
            "giftd_account{name=\"beta\",state=\"serving\"} 0\n",
            "giftd_account{name=\"gamma\",state=\"standby\"} 1\n",
            "giftd_ready 0\n",
        ] {
            assert!(metrics.contains(line), "{line}: {metrics}");
        }
        h.set_account("beta", None, AccountState::Serving);
        let body = get(addr, "/readyz").await;
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("account beta (22): serving\n"), "{body}");
        assert!(get(addr, "/healthz").await.ends_with("ok\n"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        cancel.cancel();
    }
}
