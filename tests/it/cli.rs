//! The `giftd` binary's one-shot commands against the real environment: `check` against
//! PostgREST with the service_role key and with the anon key, `inventory` listing what another
//! writer put in the store, `schema` and the exit codes of failures.
//!
//! The binary runs with an empty environment plus what each test sets, so the variables
//! `scripts/test-env.sh` exports (SUPABASE_URL, ...) never leak into a case that means to test
//! the file alone.

use std::path::Path;
use std::process::Command;

use giftd::gift::{GiftType, Item, ItemKey, Owner, Status, UniqueInfo, UserInfo};
use giftd::store::ChangeBatch;

use crate::support::{self, Backend};

/// Runs `giftd --config <dir>/config.toml <args>` with `config` written to that file (when
/// given) and only `env` in the environment. Returns (success, stdout, stderr).
fn giftd(
    dir: &Path,
    config: Option<&str>,
    env: &[(&str, &str)],
    args: &[&str],
) -> (bool, String, String) {
    let path = dir.join("config.toml");
    // The deposit account's session as `giftd login` leaves it (private; its content is not read
    // by the commands tested here).
    let session = dir.join("deposit.session");
    if !session.exists() {
        std::fs::write(&session, b"").expect("write session file");
        support::private(&session);
    }
    if let Some(text) = config {
        std::fs::write(&path, text).expect("write config");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_giftd"))
        .env_clear()
        .envs(env.iter().copied())
        .arg("--config")
        .arg(&path)
        .args(args)
        .output()
        .expect("giftd runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn supabase_config(dir: &Path) -> String {
    format!(
        "[telegram]\napi_id = 1\napi_hash = \"h\"\n[store]\nstate_dir = \"{}\"\n[supabase]\nrest_url = \"{}\"\n",
        dir.display(),
        support::env("GIFTD_TEST_REST_URL")
    )
}

/// The configuration of `backend`'s store in `dir`, and the environment its key comes from.
fn store_config(backend: &Backend, dir: &Path) -> (String, Vec<(&'static str, String)>) {
    match backend.sqlite_path() {
        Some(path) => (
            format!(
                "[telegram]\napi_id = 1\napi_hash = \"h\"\n[store]\nstate_dir = \"{}\"\nsqlite_path = \"{}\"\n",
                dir.display(),
                path.display()
            ),
            vec![],
        ),
        None => (
            supabase_config(dir),
            vec![(
                "SUPABASE_SERVICE_ROLE_KEY",
                support::env("GIFTD_TEST_SERVICE_KEY"),
            )],
        ),
    }
}

#[test]
fn check_against_postgrest_reports_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let rest = support::env("GIFTD_TEST_REST_URL");
    let key = support::env("GIFTD_TEST_SERVICE_KEY");
    let (ok, out, err) = giftd(
        dir.path(),
        Some(&supabase_config(dir.path())),
        &[("SUPABASE_SERVICE_ROLE_KEY", &key)],
        &["check"],
    );
    let config = dir.path().join("config.toml");
    assert_eq!(
        out,
        format!(
            "ok   config  {}\nok   state   {}\nok   session {}\nok   store   supabase {rest}\nok   schema  version {}\nok   write   supabase accepts giftd's writes\n",
            config.display(),
            dir.path().display(),
            dir.path().join("deposit.session").display(),
            giftd::store::SCHEMA_VERSION
        ),
        "stderr: {err}"
    );
    assert!(ok);
}

#[test]
fn check_with_the_anon_key_fails_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let anon = support::env("GIFTD_TEST_ANON_KEY");
    let (ok, out, _) = giftd(
        dir.path(),
        Some(&supabase_config(dir.path())),
        &[("SUPABASE_KEY", &anon)],
        &["check"],
    );
    assert!(!ok, "{out}");
    assert!(
        out.starts_with("FAIL config  supabase.service_role_key (environment variable SUPABASE_KEY): is a JWT with role `anon`"),
        "{out}"
    );
    assert!(!out.contains(&anon), "the key must not be printed: {out}");
}

#[test]
fn check_with_a_wrong_key_fails_at_the_store() {
    // Shaped like a service_role key but signed with another secret: only the database can
    // tell, so config passes and the store check fails.
    let dir = tempfile::tempdir().unwrap();
    let forged = {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"HS256","typ":"JWT"}"#),
            b64(r#"{"role":"service_role","exp":4102444800}"#),
            b64("not the signature")
        )
    };
    let (ok, out, _) = giftd(
        dir.path(),
        Some(&supabase_config(dir.path())),
        &[("SUPABASE_SERVICE_ROLE_KEY", &forged)],
        &["check"],
    );
    assert!(!ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("ok   config  "), "{out}");
    assert!(lines[1].starts_with("ok   state   "), "{out}");
    assert!(lines[2].starts_with("ok   session "), "{out}");
    assert!(
        lines[3].starts_with("FAIL store   supabase ")
            && lines[3].contains("rejected giftd's key")
            && lines[3].contains("SUPABASE_SERVICE_ROLE_KEY"),
        "{out}"
    );
    assert!(!out.contains(&forged), "the key must not be printed: {out}");
}

#[test]
fn check_with_a_bad_config_exits_non_zero_with_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, _) = giftd(
        dir.path(),
        Some("[telegram]\napi_id = 1\napi_hash = \"h\"\npoll_interval = \"soon\"\n"),
        &[],
        &["check"],
    );
    assert!(!ok);
    assert_eq!(
        out,
        format!(
            "FAIL config  telegram.poll_interval ({} line 4): expected a duration such as \"5s\", \"10m\" or \"50ms\", found \"soon\"\n",
            dir.path().join("config.toml").display()
        )
    );
}

#[test]
fn a_missing_config_file_is_an_error_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = giftd(dir.path(), None, &[], &["inventory", "--unattributed"]);
    assert!(!ok);
    assert_eq!(out, "");
    assert!(
        err.starts_with("error: cannot read config file ")
            && err.contains("pass --config PATH or set GIFTD_CONFIG"),
        "{err}"
    );
}

#[test]
fn schema_prints_the_migrations_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, _) = giftd(dir.path(), None, &[], &["schema"]);
    assert!(ok);
    let mut expected = String::new();
    for (name, sql) in giftd::store::migrations() {
        expected.push_str(&format!("-- supabase/migrations/{name}\n{sql}"));
        if !sql.ends_with('\n') {
            expected.push('\n');
        }
        expected.push('\n');
    }
    assert_eq!(out, expected);
}

#[tokio::test]
async fn inventory_lists_what_the_store_holds() {
    for backend in [Backend::sqlite(), Backend::supabase()] {
        let dir = tempfile::tempdir().unwrap();
        let account = support::unique_id();
        let player = support::unique_id();
        let item = |msg_id: i32, owner: Owner, unique: bool| Item {
            key: ItemKey::new(account, msg_id),
            owner,
            gift_id: 5_983_471_780_763_796_287,
            stars: if unique { 350 } else { 15 },
            unique: unique.then(|| {
                Box::new(UniqueInfo {
                    collectible_id: support::unique_id(),
                    slug: "PlushPepe-77".to_owned(),
                    number: 77,
                    value: Default::default(),
                })
            }),
            status: Status::Held,
            received_at: 1_760_000_000 + i64::from(msg_id),
            convert_stars: None,
            transfer_stars: unique.then_some(25),
            can_transfer_at: None,
            upgraded_from: None,
        };
        let items = vec![
            item(1, Owner::User(player), false),
            item(2, Owner::User(player), true),
            item(3, Owner::Unattributed, false),
        ];
        let store = backend.open().await;
        store
            .apply_batch(&ChangeBatch {
                users: vec![UserInfo {
                    id: player,
                    username: None,
                    first_name: Some("P".to_owned()),
                }],
                gifts: vec![GiftType {
                    gift_id: 5_983_471_780_763_796_287,
                    title: None,
                    stars: 15,
                    unique: false,
                }],
                items,
                ..ChangeBatch::default()
            })
            .await
            .expect("deposit");

        let (config, env) = store_config(&backend, dir.path());
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

        let (ok, out, err) = giftd(
            dir.path(),
            Some(&config),
            &env,
            &["inventory", "--owner", &player.to_string()],
        );
        assert!(ok, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].starts_with("ITEM "), "{out}");
        assert!(lines[1].starts_with(&format!("{account}/1 ")), "{out}");
        assert!(lines[1].contains(" free"), "{out}");
        assert!(lines[2].starts_with(&format!("{account}/2 ")), "{out}");
        assert!(lines[2].contains("PlushPepe-77 #77"), "{out}");
        assert!(lines[2].contains("25 stars"), "{out}");
        assert_eq!(lines[3], "2 items, 365 stars");

        let (ok, out, err) = giftd(
            dir.path(),
            Some(&config),
            &env,
            &["inventory", "--account", &account.to_string()],
        );
        assert!(ok, "{err}");
        assert!(out.ends_with("3 items, 380 stars\n"), "{out}");
    }
}

#[tokio::test]
async fn link_token_prints_a_token_the_bot_can_spend() {
    for backend in [Backend::sqlite(), Backend::supabase()] {
        let dir = tempfile::tempdir().unwrap();
        let store = backend.open().await;
        let (config, env) = store_config(&backend, dir.path());
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let web = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

        let (ok, out, err) = giftd(
            dir.path(),
            Some(&config),
            &env,
            &[
                "link-token",
                "--web-user",
                web,
                "--label",
                "o•••@example.com",
                "--ttl",
                "10m",
                "--bot",
                "@GiftDeskBot",
            ],
        );
        assert!(ok, "{err}");
        let token = out
            .lines()
            .find_map(|l| l.strip_prefix("token:    "))
            .unwrap_or_else(|| panic!("no token line: {out}"))
            .to_owned();
        assert_eq!(token.len(), 64, "{out}");
        assert!(
            out.contains(&format!(
                "link:     https://t.me/GiftDeskBot?start={token}\n"
            )),
            "{out}"
        );
        assert!(out.contains(&format!("web user: {web}\n")), "{out}");
        assert!(out.contains("label:    o•••@example.com\n"), "{out}");
        assert!(out.contains("in 10m; single use"), "{out}");
        let player = support::unique_id();
        assert_eq!(
            store
                .consume_link_token(&token, player, false)
                .await
                .unwrap(),
            giftd::store::LinkOutcome::Linked {
                web_user: web.parse().unwrap(),
                label: "o•••@example.com".to_owned(),
            }
        );

        // Without --bot, the link says where the username goes.
        let (ok, out, err) = giftd(
            dir.path(),
            Some(&config),
            &env,
            &["link-token", "--web-user", web, "--label", "Operator"],
        );
        assert!(ok, "{err}");
        assert!(out.contains("https://t.me/<bot>?start="), "{out}");
        assert!(out.contains("pass --bot USERNAME"), "{out}");
        assert!(out.contains("in 15m; single use"), "{out}");

        // Bad input: a clear error, nothing minted.
        for (args, says) in [
            (vec!["--web-user", "42", "--label", "x"], "expected a uuid"),
            (
                vec!["--web-user", web, "--label", "x", "--ttl", "2d"],
                "between 1m and 24h",
            ),
            (
                vec!["--web-user", web, "--label", "x", "--ttl", "soon"],
                "is not a duration",
            ),
            (
                vec!["--web-user", web, "--label", "x", "--bot", "t.me/x"],
                "is not a bot username",
            ),
            (vec!["--web-user", web, "--label", ""], "1 to 64 characters"),
            (vec!["--web-user", web], "--label"),
        ] {
            let mut argv = vec!["link-token"];
            argv.extend(args.iter().copied());
            let (ok, out, err) = giftd(dir.path(), Some(&config), &env, &argv);
            assert!(!ok, "{argv:?}: {out}");
            assert!(out.is_empty(), "{argv:?}: {out}");
            assert!(err.contains(says), "{argv:?}: {err}");
        }
    }
}
