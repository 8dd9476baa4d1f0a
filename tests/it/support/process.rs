//! One `giftd run` process: the binary started with a configuration file and its log, its
//! `/readyz`, and the signals a test sends it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http::http_get_lenient;

/// One `giftd run` process.
pub(crate) struct Instance {
    pub(crate) child: Child,
    pub(crate) port: u16,
    pub(crate) log: PathBuf,
}

impl Instance {
    /// Starts `giftd run` with `config` (written to `dir/instance-<n>.toml`) as instance
    /// identity `instance-<n>` (the instances of a cluster share one state directory, where
    /// the identity would otherwise be derived from).
    pub(crate) fn start(
        dir: &Path,
        n: usize,
        config: &str,
        port: u16,
        failpoints: Option<&str>,
    ) -> Instance {
        Self::spawn(
            dir,
            n,
            config,
            port,
            failpoints,
            Some(&format!("instance-{n}")),
        )
    }

    /// [`Instance::start`] with the identity `identity`, or with none given: the one derived
    /// from the state directory.
    pub(crate) fn spawn(
        dir: &Path,
        n: usize,
        config: &str,
        port: u16,
        failpoints: Option<&str>,
        identity: Option<&str>,
    ) -> Instance {
        let path = dir.join(format!("instance-{n}.toml"));
        std::fs::write(&path, config).unwrap();
        let log = dir.join(format!("instance-{n}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_giftd"));
        if let Some(f) = failpoints {
            cmd.env("FAILPOINTS", f);
        }
        if let Some(identity) = identity {
            cmd.env("GIFTD_LEASE_INSTANCE", identity);
        }
        let child = cmd
            .arg("--config")
            .arg(&path)
            .arg("run")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("giftd starts");
        Instance { child, port, log }
    }

    /// The accounts this instance serves now (`/readyz` says `serving`).
    pub(crate) async fn serving(&self) -> Vec<String> {
        let Ok(Ok((_, body))) = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::spawn(http_get_lenient(self.port, "/readyz")),
        )
        .await
        else {
            return Vec::new();
        };
        body.lines()
            .filter(|l| l.ends_with(": serving"))
            .filter_map(|l| l.strip_prefix("account "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }

    /// Waits for `/readyz` to answer 200 and returns its body.
    pub(crate) async fn first_ready(&self, within: Duration) -> String {
        let (_, body) = self
            .readyz_until(within, Duration::from_millis(20), "not ready", |code, _| {
                code == 200
            })
            .await;
        body
    }

    /// Asks `/readyz` every `every` until `pred(code, body)` holds and returns that answer;
    /// after `within`, fails with `what`, the last answer and the log.
    pub(crate) async fn readyz_until(
        &self,
        within: Duration,
        every: Duration,
        what: &str,
        pred: impl Fn(u16, &str) -> bool,
    ) -> (u16, String) {
        let deadline = Instant::now() + within;
        loop {
            let (code, body) = http_get_lenient(self.port, "/readyz").await;
            if pred(code, &body) {
                return (code, body);
            }
            assert!(
                Instant::now() < deadline,
                "{what} within {within:?}: {code} {body}\n{}",
                self.log_text()
            );
            tokio::time::sleep(every).await;
        }
    }

    pub(crate) fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig}");
    }

    /// kill -9, and reap it.
    pub(crate) fn kill9(&mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, and waits for the exit status (0 expected).
    pub(crate) async fn terminate(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "giftd did not stop on SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // A stopped (SIGSTOP) process ignores SIGKILL until continued; continue it first.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
