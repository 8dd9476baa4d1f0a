//! giftd's `Daemon` running in this process: launched on a configuration, awaited until it
//! reports ready, stopped the way SIGTERM stops it.

use std::time::Duration;

use giftd::app::{AppError, Daemon, Notice};
use giftd::config::Config;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub(crate) struct Running {
    pub(crate) daemon: Daemon,
    pub(crate) shutdown: CancellationToken,
    pub(crate) join: tokio::task::JoinHandle<Result<(), AppError>>,
    /// The daemon's notices from its start on.
    notices: broadcast::Receiver<Notice>,
}

impl Running {
    /// Runs a daemon with `config` in this process; returns at once.
    pub(crate) fn launch(config: Config) -> Running {
        let daemon = Daemon::new();
        let notices = daemon.subscribe();
        let shutdown = CancellationToken::new();
        let join = {
            let daemon = daemon.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { daemon.run(&config, shutdown).await })
        };
        Running {
            daemon,
            shutdown,
            join,
            notices,
        }
    }

    /// Waits until the daemon reports ready; panics with how it ended when it is not ready
    /// `within`.
    pub(crate) async fn ready(mut self, within: Duration) -> Running {
        let notices = &mut self.notices;
        let ready = tokio::time::timeout(within, async {
            loop {
                match notices.recv().await {
                    Ok(Notice::Ready { .. }) => return,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("daemon notices closed before ready: {e}"),
                }
            }
        })
        .await;
        if ready.is_err() {
            self.shutdown.cancel();
            panic!("giftd not ready within {within:?}: {:?}", self.join.await);
        }
        self
    }

    /// SIGTERM's path: cancel and require a clean exit.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(30), self.join)
            .await
            .expect("giftd stops within its shutdown deadline")
            .expect("daemon task did not panic");
        if let Err(e) = result {
            panic!("giftd did not stop cleanly: {e}");
        }
    }
}
