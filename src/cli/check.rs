//! `giftd check`: one line per check of the configuration, the state directory, each deposit
//! account's session file, the store (reachable, schema version, write permission) and the
//! companion bot (what a running daemon's `/readyz` says of it), each `ok`, `warn` or `FAIL`
//! with what to do.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::{Env, config_advice, describe_store};
use crate::config::{self, Config, DEFAULT_ACCOUNT};
use crate::store::{self, StoreError};

/// An error and its sources, `a: b: c`, as anyhow's `{:#}` prints them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}

/// Writes one `giftd check` line; continuation lines are indented under the detail.
fn report(out: &mut dyn Write, status: &str, what: &str, detail: &str) -> std::io::Result<()> {
    let mut lines = detail.lines();
    writeln!(out, "{status:<4} {what:<7} {}", lines.next().unwrap_or(""))?;
    for line in lines {
        writeln!(out, "{:13}{}", "", line.trim_start())?;
    }
    Ok(())
}

/// `giftd check`: configuration, state directory, session file, store reachable, schema version,
/// write permission.
pub(super) async fn run(
    path: &Path,
    env: Env<'_>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let config = match Config::load(path, env.lookup) {
        Ok(mut config) => {
            config.warnings.extend(config::unknown_env_warnings(
                env.names.iter().map(String::as_str),
            ));
            report(out, "ok", "config", &path.display().to_string())?;
            for warning in &config.warnings {
                report(out, "warn", "config", warning)?;
            }
            config
        }
        Err(e) => {
            report(out, "FAIL", "config", &config_advice(&e))?;
            return Ok(ExitCode::FAILURE);
        }
    };

    let mut ok = true;
    match check_state_dir(&config.state_dir) {
        Ok(()) => report(out, "ok", "state", &config.state_dir.display().to_string())?,
        Err(why) => {
            ok = false;
            report(out, "FAIL", "state", &why)?;
        }
    }

    // Each deposit account's session: present and private (signing in needs the network and
    // is `giftd run`'s first step; `giftd login --account NAME` creates the file).
    let named = !(config.accounts.len() == 1 && config.accounts[0].name == DEFAULT_ACCOUNT);
    for account in &config.accounts {
        let session = &account.session_file;
        let label = if named {
            format!("account {}: ", account.name)
        } else {
            String::new()
        };
        match crate::telegram::check_session_permissions(session) {
            Ok(()) => report(
                out,
                "ok",
                "session",
                &format!("{label}{}", session.display()),
            )?,
            Err(e) => {
                ok = false;
                let mut why = e.to_string();
                if named {
                    why = why.replace(
                        "run `giftd login`",
                        &format!("run `giftd login --account {}`", account.name),
                    );
                }
                report(out, "FAIL", "session", &format!("{label}{why}"))?;
            }
        }
    }

    // Opening does not prove the database is reachable (a Supabase store opens without a
    // request): the store line is reported after the first round trip, the schema query.
    let where_ = describe_store(&config.store);
    let store = match store::open_shared(&config.store).await {
        Ok(store) => store,
        Err(e) => {
            report(out, "FAIL", "store", &format!("{where_}: {}", chain(&e)))?;
            return Ok(ExitCode::FAILURE);
        }
    };
    let schema = store.check_schema().await;
    // An unreachable database or a rejected key is the store's failure, and the later checks
    // would only repeat it; a schema problem is reported on its own line.
    if let Err(e) = &schema
        && !matches!(
            e,
            StoreError::SchemaTooOld { .. }
                | StoreError::SchemaTooNew { .. }
                | StoreError::SchemaMissing { .. }
        )
    {
        report(out, "FAIL", "store", &format!("{where_}: {}", chain(e)))?;
        return Ok(ExitCode::FAILURE);
    }
    report(out, "ok", "store", &where_)?;

    match schema {
        Ok(version) => report(out, "ok", "schema", &format!("version {version}"))?,
        Err(e) => {
            ok = false;
            report(out, "FAIL", "schema", &chain(&e))?;
        }
    }
    match store.check_write().await {
        Ok(()) => report(
            out,
            "ok",
            "write",
            &format!("{} accepts giftd's writes", store.backend()),
        )?,
        Err(e) => {
            ok = false;
            report(out, "FAIL", "write", &chain(&e))?;
        }
    }
    if let Some(bot) = &config.bot {
        let (status, detail) = check_bot(bot, config.health.listen).await;
        ok &= status != "FAIL";
        report(out, status, "bot", &detail)?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The companion bot: what the running daemon's `/readyz` says of it (connected, or not and
/// why), or without a daemon answering on the health port, whether its session file is usable.
async fn check_bot(
    bot: &crate::config::BotConfig,
    health: std::net::SocketAddr,
) -> (&'static str, String) {
    if let Some(body) = get_readyz(health).await {
        let line = body.lines().find_map(|l| l.strip_prefix("bot: "));
        return match line {
            Some(l) if l.starts_with("not connected") => (
                "FAIL",
                format!("{l} (the running giftd's /readyz on {health})"),
            ),
            Some(l) => (
                "ok",
                format!("{l} (the running giftd's /readyz on {health})"),
            ),
            None => (
                "FAIL",
                format!(
                    "the giftd answering on {health} runs no bot: is it this configuration's \
                     daemon? restart it after setting bot.token"
                ),
            ),
        };
    }
    let path = &bot.session_file;
    if !path.exists() {
        return (
            "warn",
            format!(
                "{}: no session yet; `giftd run` signs in with bot.token and creates it (no giftd \
                 answers on {health} to say whether the bot is connected)",
                path.display()
            ),
        );
    }
    match crate::telegram::check_session_permissions(path) {
        Ok(()) => (
            "ok",
            format!(
                "{} (no giftd answers on {health}: start it, then /readyz says whether the bot \
                 is connected)",
                path.display()
            ),
        ),
        Err(e) => ("FAIL", format!("bot session: {e}")),
    }
}

/// The body of `/readyz` of a daemon listening on `addr`, if one answers within a second.
async fn get_readyz(addr: std::net::SocketAddr) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        out.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
    };
    tokio::time::timeout(std::time::Duration::from_secs(1), fetch)
        .await
        .ok()
        .flatten()
}

/// The state directory exists and giftd may create files in it (sessions, the SQLite file).
fn check_state_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    let meta = std::fs::metadata(dir).map_err(|e| {
        format!(
            "{shown}: {e}: create it, owned by the user giftd runs as with mode 0700 \
             (systemd's StateDirectory= does), or set store.state_dir"
        )
    })?;
    if !meta.is_dir() {
        return Err(format!(
            "{shown} is not a directory: set store.state_dir to a directory"
        ));
    }
    let probe = dir.join(format!(".giftd-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        format!(
            "{shown} is not writable ({e}): giftd keeps its session files there; give the user \
             giftd runs as write access"
        )
    })?;
    // The probe is empty and private to this process; failing to remove it is harmless.
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{EMBEDDED, check, run_cli};
    use crate::store;

    #[tokio::test]
    async fn check_reports_every_step_of_a_good_embedded_setup() {
        check(
            run_cli(Some(EMBEDDED), &[], &["check"]).await,
            true,
            format!(
                "ok   config  <tmp>/config.toml
                 ok   state   <tmp>
                 ok   session <tmp>/deposit.session
                 ok   store   sqlite <tmp>/giftd.sqlite3
                 ok   schema  version {}
                 ok   write   sqlite accepts giftd's writes",
                store::SCHEMA_VERSION
            )
            .replace("\n                 ", "\n")
            .as_str(),
        );
    }

    #[tokio::test]
    async fn check_fails_on_a_missing_config_and_says_what_to_do() {
        let (ok, out) = run_cli(None, &[], &["check"]).await;
        assert!(!ok);
        assert!(
            out.starts_with("FAIL config  cannot read config file <tmp>/config.toml: ")
                && out.contains("pass --config PATH or set GIFTD_CONFIG"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn check_fails_on_an_invalid_config_with_every_problem() {
        check(
            run_cli(
                Some("[telegram]\napi_id = \"one\"\npol_interval = \"5s\"\n"),
                &[],
                &["check"],
            )
            .await,
            false,
            "FAIL config  2 problems in the configuration:
             telegram.api_id (<tmp>/config.toml line 2): expected an integer, found string
             telegram.pol_interval (<tmp>/config.toml line 3): unknown key; did you mean `telegram.poll_interval`?",
        );
    }

    #[tokio::test]
    async fn check_prints_config_warnings() {
        let (ok, out) = run_cli(Some(EMBEDDED), &[("SUPABASE_KEY", "k")], &["check"]).await;
        assert!(ok, "{out}");
        assert!(
            out.lines().nth(1).is_some_and(|l| l.starts_with(
                "warn config  supabase.service_role_key is set (environment variable SUPABASE_KEY)"
            )),
            "{out}"
        );
    }

    #[tokio::test]
    async fn check_warns_about_misspelt_environment_variables() {
        let (ok, out) = run_cli(
            Some(EMBEDDED),
            &[("GIFTD_MIRROR_BATCHSIZE", "10"), ("GIFTD_TEST_X", "1")],
            &["check"],
        )
        .await;
        assert!(ok, "{out}");
        assert_eq!(
            out.lines().nth(1),
            Some(
                "warn config  environment variable GIFTD_MIRROR_BATCHSIZE is not a giftd setting \
                 and is ignored (did you mean `GIFTD_MIRROR_BATCH_SIZE`?)"
            ),
            "{out}"
        );
    }

    #[tokio::test]
    async fn check_fails_when_the_store_cannot_be_reached() {
        // A PostgREST URL on a port nothing listens on (port 1 needs root to bind).
        let config = format!(
            "{EMBEDDED}[supabase]\nrest_url = \"http://127.0.0.1:1\"\nservice_role_key = \"k\"\nrequest_timeout = \"2s\"\n"
        );
        let (ok, out) = run_cli(Some(&config), &[], &["check"]).await;
        assert!(!ok, "{out}");
        assert!(out.starts_with("ok   config  "), "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert_eq!(lines[1], "ok   state   <tmp>");
        assert_eq!(lines[2], "ok   session <tmp>/deposit.session");
        assert!(
            lines[3].starts_with("FAIL store   supabase http://127.0.0.1:1: database unavailable"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn check_reports_each_deposit_account() {
        // `deposit.session` exists (run_cli writes it); `spare.session` does not.
        let config = format!(
            "{EMBEDDED}[account.main]\nsession_file = \"deposit.session\"\n[account.spare]\n"
        );
        let (ok, out) = run_cli(Some(&config), &[], &["check"]).await;
        assert!(!ok, "{out}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[2], "ok   session account main: <tmp>/deposit.session");
        assert_eq!(
            lines[3],
            "FAIL session account spare: session file <tmp>/spare.session: does not exist: run \
             `giftd login --account spare` to create it"
        );
        assert!(lines[4].starts_with("ok   store "), "{out}");
    }

    #[tokio::test]
    async fn check_fails_on_a_missing_or_readable_session_file() {
        let cases = [
            (
                "missing.session",
                "FAIL session session file <tmp>/missing.session: does not exist: run `giftd login` to create it",
            ),
            (
                // Written with the default mode, readable by others.
                "config.toml",
                "FAIL session session file <tmp>/config.toml: is readable by other users",
            ),
        ];
        for (file, want) in cases {
            let config =
                EMBEDDED.replace("[store]", &format!("session_file = \"{file}\"\n[store]"));
            let (ok, out) = run_cli(Some(&config), &[], &["check"]).await;
            assert!(!ok, "{out}");
            assert!(
                out.lines().nth(2).is_some_and(|l| l.starts_with(want)),
                "{file}: {out}"
            );
            assert!(
                out.lines().any(|l| l.starts_with("ok   write ")),
                "the other checks still run: {out}"
            );
        }
    }

    #[tokio::test]
    async fn check_fails_on_a_missing_state_dir() {
        let config = EMBEDDED.replace("state_dir = \"<tmp>\"", "state_dir = \"<tmp>/nope\"");
        let (ok, out) = run_cli(Some(&config), &[], &["check"]).await;
        assert!(!ok, "{out}");
        assert!(
            out.lines().nth(1).is_some_and(|l| l.starts_with(
                "FAIL state   <tmp>/nope: No such file or directory (os error 2): create it"
            )),
            "{out}"
        );
    }

    #[tokio::test]
    async fn check_fails_on_a_state_dir_that_is_a_file() {
        let config = EMBEDDED.replace("state_dir = \"<tmp>\"", "state_dir = \"<tmp>/config.toml\"");
        let (ok, out) = run_cli(Some(&config), &[], &["check"]).await;
        assert!(!ok, "{out}");
        assert!(
            out.contains("FAIL state   <tmp>/config.toml is not a directory: set store.state_dir"),
            "{out}"
        );
    }
}
