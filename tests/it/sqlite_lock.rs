//! The embedded store keeps a second daemon out: `giftd run` holds an OS lock on the database
//! file for its life, a second `giftd run` on the same file refuses to start and says why, the
//! commands that read or steer the store still work beside it, and the lock goes with the
//! process when it is killed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use giftd::store::StoreError;
use giftd::store::sqlite::SqliteStore;

use crate::support::Backend;
use crate::support::World;

fn lock_file(db: &std::path::Path) -> std::path::PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".lock");
    p.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_one_sqlite_file_refuses_to_start() {
    let w = World::new(Backend::sqlite(), 1).await;
    w.provision_session().await;
    let config = w.write_config();
    let db = w.backend.sqlite_path().unwrap();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_giftd"))
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("giftd starts")
    };
    let mut first = spawn();
    let pid = first.id();
    // The holder writes its pid into the lock file once it holds the lock.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(lock_file(&db))
        .unwrap_or_default()
        .trim()
        != pid.to_string()
    {
        if let Some(status) = first.try_wait().unwrap() {
            panic!("the first giftd exited ({status}) before taking the lock");
        }
        assert!(
            Instant::now() < deadline,
            "the first giftd never took the lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Another process opening it for a daemon is refused, naming the file and the holder.
    match SqliteStore::open_exclusive(&db).await {
        Err(e @ StoreError::InUse { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&db.display().to_string()), "{text}");
            assert!(text.contains(&format!("pid {pid}")), "{text}");
            assert!(text.contains("stop the other one"), "{text}");
        }
        other => panic!("expected InUse, got {other:?}"),
    }
    // A second `giftd run` exits with that message.
    let second = spawn().wait_with_output().expect("the second giftd runs");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains("in use by another giftd process"),
        "the refusal says why: {stderr}"
    );
    // The commands beside a daemon still work.
    let inventory = Command::new(env!("CARGO_BIN_EXE_giftd"))
        .arg("--config")
        .arg(&config)
        .args(["inventory", "--account", &w.deposit.id.to_string()])
        .output()
        .expect("giftd inventory runs");
    assert!(
        inventory.status.success(),
        "{}",
        String::from_utf8_lossy(&inventory.stderr)
    );
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first giftd still runs"
    );

    // kill -9: the OS drops the lock with the process.
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    let store = SqliteStore::open_exclusive(&db)
        .await
        .expect("the lock went with the killed process");
    drop(store);
}
