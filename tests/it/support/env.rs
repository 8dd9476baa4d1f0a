//! The environment the integration tests run in: the variables `scripts/test-env.sh` exports,
//! ids that never collide between tests running in parallel against one database, player JWTs,
//! psql beside the store, the lock of the chaos database, and tracing.

use std::process::{Child, Command, Stdio};

/// A variable exported by `scripts/test-env.sh`. Panics with the way to get it: a test that
/// needs the real environment fails, it never passes by skipping.
pub fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: this test needs the real PostgreSQL + PostgREST environment; run \
             it through scripts/test-env.sh, e.g. `scripts/test-env.sh -- cargo nextest run \
             --workspace` (or `scripts/test.sh` for everything)"
        ),
    }
}

/// A fresh id (deposit account, user, collectible) no other test uses, even in another process
/// against the same database.
pub fn unique_id() -> i64 {
    // 2^40 .. 2^41 + 2^40: far above the small ids tests write by hand, below i64 overflow.
    (1_i64 << 40) + (rand::random::<u64>() >> 24) as i64
}

/// An HS256 JWT signed with the environment's secret, e.g. a player's token
/// `{"role": "authenticated", "app_metadata": {"telegram_id": "42"}}`.
pub fn mint_jwt(claims: serde_json::Value) -> String {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut claims = claims;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    claims["exp"] = exp.into();
    let signing_input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(env("GIFTD_TEST_JWT_SECRET").as_bytes())
            .unwrap();
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

/// Runs one SQL command as the database superuser and returns its unaligned output.
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            url,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A psql session kept open (its stdin is the script), e.g. to hold a lock.
pub fn psql_session(url: &str, script: &str) -> Child {
    use std::io::Write;
    let mut child = Command::new("psql")
        .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql runs");
    let stdin = child.stdin.as_mut().expect("piped stdin");
    stdin.write_all(script.as_bytes()).unwrap();
    stdin.flush().unwrap();
    child
}

/// Serialises the tests that stop the chaos database or rewrite its schema version within one
/// process (`cargo test`); nextest runs them in the `chaos-db` group, one at a time.
pub async fn chaos_guard() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Installs giftd's tracing layers for this test process once: the clock-storm counter (which
/// the daemon relies on to notice a host clock far ahead) and log output filtered by RUST_LOG.
pub fn init_tracing() {
    use tracing_subscriber::prelude::*;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::registry()
            .with(
                giftd::telegram::clock::layer().with_filter(
                    tracing_subscriber::filter::Targets::new()
                        .with_target("grammers_mtsender", tracing::Level::INFO),
                ),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_test_writer()
                    .with_filter(filter),
            )
            .try_init();
    });
}
