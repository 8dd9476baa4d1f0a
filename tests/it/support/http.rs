//! The health port as the tests reach it: a free port to give giftd, and `GET` on it.

/// A free loopback port for the health endpoint.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on the health port: (status code, body).
pub(crate) async fn http_get(port: u16, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the health port answers");
    s.write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code = out
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_default();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// `http_get` that answers (0, "") when nothing listens (an instance killed or stopped).
pub(crate) async fn http_get_lenient(port: u16, path: &'static str) -> (u16, String) {
    if tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        return (0, String::new());
    }
    http_get(port, path).await
}
