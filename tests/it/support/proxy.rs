//! A TCP proxy a test can cut, to put one process's connection through a network partition.

use std::sync::Arc;

/// A TCP proxy on loopback in front of `target`, which a test can cut (every open connection
/// dropped, new ones closed at once, like a network partition) and restore. It puts one
/// process's database connection through a partition the others do not see.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    state: Arc<std::sync::Mutex<ProxyState>>,
    stop: tokio_util::sync::CancellationToken,
}

struct ProxyState {
    cut: bool,
    /// Cancelled on each cut: the connections opened before it.
    open: tokio_util::sync::CancellationToken,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(std::sync::Mutex::new(ProxyState {
            cut: false,
            open: tokio_util::sync::CancellationToken::new(),
        }));
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn({
            let state = state.clone();
            let stop = stop.clone();
            async move {
                loop {
                    let (mut inbound, _) = tokio::select! {
                        () = stop.cancelled() => return,
                        a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    };
                    let (cut, open) = {
                        let s = state.lock().unwrap();
                        (s.cut, s.open.clone())
                    };
                    if cut {
                        drop(inbound);
                        continue;
                    }
                    tokio::spawn(async move {
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                            return;
                        };
                        tokio::select! {
                            () = open.cancelled() => {}
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        }
                    });
                }
            }
        });
        Proxy { addr, state, stop }
    }

    /// Drops every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        let mut s = self.state.lock().unwrap();
        s.cut = true;
        s.open.cancel();
        s.open = tokio_util::sync::CancellationToken::new();
    }

    pub fn restore(&self) {
        self.state.lock().unwrap().cut = false;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}
