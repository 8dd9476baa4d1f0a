//! Tests of loading: every key, every problem message, defaults and the example file.

use super::*;

const MINIMAL: &str = "[telegram]\napi_id = 12345\napi_hash = \"0123456789abcdef\"\n";

/// A JWT-shaped key with the given role claim (unsigned: giftd does not verify it).
fn jwt(role: &str) -> String {
    use base64::Engine as _;
    let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2ln",
        enc(r#"{"alg":"HS256","typ":"JWT"}"#),
        enc(&format!(r#"{{"role":"{role}","iss":"supabase"}}"#))
    )
}

/// Every resolved field as a `key = value` line.
fn dump(c: &Config) -> String {
    let mut out = vec![
        format!("state_dir = {}", c.state_dir.display()),
        format!("telegram.api_id = {}", c.telegram.api_id),
        format!("telegram.api_hash = {}", c.telegram.api_hash),
    ];
    for a in &c.accounts {
        out.push(format!(
            "account.{}.session_file = {}",
            a.name,
            a.session_file.display()
        ));
    }
    out.extend([
        format!(
            "telegram.poll_interval = {}",
            show_duration(c.telegram.poll_interval)
        ),
        format!(
            "telegram.reconcile_interval = {}",
            show_duration(c.telegram.reconcile_interval)
        ),
        format!("telegram.updates = {}", c.telegram.updates),
        format!("telegram.update_buffer = {}", c.telegram.update_buffer),
        format!(
            "telegram.flood_wait_max = {}",
            show_duration(c.telegram.flood_wait_max)
        ),
    ]);
    match &c.bot {
        Some(b) => out.push(format!(
            "bot = token {} session {} admins {:?}",
            b.token,
            b.session_file.display(),
            b.admins
        )),
        None => out.push("bot = none".to_owned()),
    }
    match &c.store {
        StoreConfig::Embedded(e) => out.push(format!("store = sqlite {}", e.path.display())),
        StoreConfig::Supabase(s) => out.push(format!(
            "store = supabase {} key {} timeout {}",
            s.rest_url,
            s.service_role_key,
            show_duration(s.request_timeout)
        )),
    }
    out.push(format!(
        "mirror = batch {} queue {}",
        c.mirror.batch_size, c.mirror.queue_capacity
    ));
    out.push(format!("health.listen = {}", c.health.listen));
    let w = &c.withdraw;
    out.push(format!(
        "withdraw = regular {} fee {}/{} resend {}/{} attempts {} timeout {} settle {} lease {}",
        match w.regular {
            RegularPolicy::Resend => "resend",
            RegularPolicy::Refuse => "refuse",
        },
        w.max_fee_stars,
        w.daily_fee_stars,
        w.max_resend_stars,
        w.daily_resend_stars,
        w.max_attempts,
        show_duration(w.call_timeout),
        show_duration(w.settle_delay),
        show_duration(w.lease),
    ));
    out.push(format!("log = {:?} {}", c.log.format, c.log.level));
    for w in &c.warnings {
        out.push(format!("warning: {w}"));
    }
    out.join("\n")
}

/// Parses `input` (named `config.toml`) with environment `env`. When `expected` starts with
/// `error: ` the rest must be the whole error message; otherwise every line of `expected`
/// must be a line of the resolved config's dump.
#[track_caller]
fn check(input: &str, env: &[(&str, &str)], expected: &str) {
    let lookup = |var: &str| {
        env.iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| (*v).to_owned())
    };
    let got = Config::parse_str(input, "config.toml", &lookup);
    match (got, expected.strip_prefix("error: ")) {
        (Ok(c), None) => {
            let dump = dump(&c);
            for line in expected.lines().map(str::trim).filter(|l| !l.is_empty()) {
                assert!(
                    dump.lines().any(|d| d == line),
                    "missing line {line:?} in:\n{dump}"
                );
            }
        }
        (Err(e), Some(want)) => assert_eq!(e.to_string(), want),
        (Ok(c), Some(want)) => panic!("expected error {want:?}, got config:\n{}", dump(&c)),
        (Err(e), None) => panic!("expected a config, got error: {e}"),
    }
}

#[test]
fn defaults() {
    check(
        MINIMAL,
        &[],
        "state_dir = /var/lib/giftd
         telegram.api_id = 12345
         telegram.api_hash = [redacted]
         account.deposit.session_file = /var/lib/giftd/deposit.session
         telegram.poll_interval = 5s
         telegram.reconcile_interval = 10m
         telegram.updates = true
         telegram.update_buffer = 10000
         telegram.flood_wait_max = 1m
         bot = none
         store = sqlite /var/lib/giftd/giftd.sqlite3
         mirror = batch 500 queue 100000
         health.listen = 127.0.0.1:9108
         log = Text info",
    );
}

#[test]
fn every_key_from_the_file() {
    check(
        r#"
        [telegram]
        api_id = 7
        api_hash = "h"
        session_file = "/srv/dep.session"
        poll_interval = "2s"
        reconcile_interval = "1h30m"
        updates = false
        flood_wait_max = "0s"
        [bot]
        token = "123:abc"
        session_file = "b.session"
        admins = "12, 34"
        [store]
        state_dir = "/srv/giftd"
        [supabase]
        url = "https://abc.supabase.co/"
        service_role_key = "sb_secret_xyz"
        request_timeout = "1500ms"
        [mirror]
        batch_size = 10
        flush_interval = "1s"
        queue_capacity = 20
        [health]
        listen = "0.0.0.0:80"
        [log]
        format = "json"
        level = "giftd=debug,warn"
        "#,
        &[],
        "account.deposit.session_file = /srv/dep.session
         telegram.poll_interval = 2s
         telegram.reconcile_interval = 90m
         telegram.updates = false
         telegram.update_buffer = 10000
         telegram.flood_wait_max = 0s
         bot = token [redacted] session /srv/giftd/b.session admins [12, 34]
         store = supabase https://abc.supabase.co/rest/v1 key [redacted] timeout 1500ms
         mirror = batch 10 queue 20
         warning: mirror.flush_interval (config.toml line 22) is no longer used: the mirror writes a change at once \
             when no write is in flight and batches what arrives meanwhile; remove it
         health.listen = 0.0.0.0:80
         log = Json giftd=debug,warn",
    );
}

#[test]
fn paths_are_relative_to_the_state_dir() {
    check(
        &format!("{MINIMAL}[store]\nstate_dir = \"state\"\nsqlite_path = \"db/g.sqlite3\"\n"),
        &[],
        "state_dir = state
         account.deposit.session_file = state/deposit.session
         store = sqlite state/db/g.sqlite3",
    );
    check(
        MINIMAL,
        &[("GIFTD_STORE_STATE_DIR", "/tmp/x")],
        "store = sqlite /tmp/x/giftd.sqlite3",
    );
}

#[test]
fn environment_overrides() {
    let key = jwt("service_role");
    check(
        "",
        &[
            ("TELEGRAM_API_ID", "99"),
            ("TELEGRAM_API_HASH", "hash"),
            ("BOT_TOKEN", "1:x"),
            ("SUPABASE_URL", "http://127.0.0.1:54321"),
            ("SUPABASE_SERVICE_ROLE_KEY", &key),
            ("GIFTD_TELEGRAM_UPDATES", "0"),
            ("GIFTD_MIRROR_BATCH_SIZE", "7"),
            ("GIFTD_LOG_FORMAT", "json"),
        ],
        "telegram.api_id = 99
         telegram.updates = false
         bot = token [redacted] session /var/lib/giftd/bot.session admins []
         store = supabase http://127.0.0.1:54321/rest/v1 key [redacted] timeout 10s
         mirror = batch 7 queue 100000
         withdraw = regular refuse fee 100/1000 resend 100/1000 attempts 3 timeout 20s settle 1m lease 1m
         log = Json info",
    );
    // The environment wins over the file; empty variables count as unset.
    check(
        MINIMAL,
        &[("TELEGRAM_API_ID", "1"), ("TELEGRAM_API_HASH", "")],
        "telegram.api_id = 1",
    );
    check(
        "",
        &[
            ("TELEGRAM_API_ID", "1"),
            ("TELEGRAM_API_HASH", "h"),
            ("GIFTD_SUPABASE_REST_URL", "http://127.0.0.1:3000/"),
            ("SUPABASE_KEY", "k"),
        ],
        "store = supabase http://127.0.0.1:3000 key [redacted] timeout 10s",
    );
}

#[test]
fn supabase_key_alias() {
    let env = |a: &'static str, b: &'static str| {
        [
            ("TELEGRAM_API_ID", "1"),
            ("TELEGRAM_API_HASH", "h"),
            ("SUPABASE_URL", "https://p.supabase.co"),
            ("SUPABASE_SERVICE_ROLE_KEY", a),
            ("SUPABASE_KEY", b),
        ]
    };
    check(
        "",
        &env("same", "same"),
        "store = supabase https://p.supabase.co/rest/v1 key [redacted] timeout 10s",
    );
    check(
        "",
        &env("one-secret", "other-secret"),
        "error: supabase.service_role_key (environment variable SUPABASE_KEY): SUPABASE_KEY \
         and SUPABASE_SERVICE_ROLE_KEY are both set and differ: unset one",
    );
}

#[test]
fn missing_required_keys() {
    check(
        "",
        &[],
        "error: 2 problems in the configuration:
  telegram.api_id: missing: set it in the file or in TELEGRAM_API_ID (get it from https://my.telegram.org)
  telegram.api_hash: missing: set it in the file or in TELEGRAM_API_HASH (get it from https://my.telegram.org)",
    );
    check(
        &format!("{MINIMAL}[supabase]\n"),
        &[],
        "error: 2 problems in the configuration:
  supabase.url: missing: set supabase.url (SUPABASE_URL) to the project URL, or supabase.rest_url to a PostgREST base, or remove [supabase] to use the embedded store
  supabase.service_role_key: missing: set it in the file or in SUPABASE_SERVICE_ROLE_KEY (the service_role key from the project's API settings)",
    );
}

#[test]
fn wrong_types_and_values_name_key_line_and_expectation() {
    let cases: &[(&str, &str)] = &[
        (
            "poll_interval = 5",
            "telegram.poll_interval (config.toml line 4): expected a string, found integer",
        ),
        (
            "poll_interval = \"5 seconds\"",
            "telegram.poll_interval (config.toml line 4): expected a duration such as \"5s\", \"10m\" or \"50ms\", found \"5 seconds\"",
        ),
        (
            "poll_interval = \"100ms\"",
            "telegram.poll_interval (config.toml line 4): expected at least 1s, found 100ms",
        ),
        (
            "updates = \"yes\"",
            "telegram.updates (config.toml line 4): expected true or false, found string",
        ),
        (
            "session_file = [\"a\"]",
            "telegram.session_file (config.toml line 4): expected a string, found array",
        ),
    ];
    for (line, want) in cases {
        check(
            &format!("{MINIMAL}{line}\n"),
            &[],
            &format!("error: {want}"),
        );
    }
    check(
        "[telegram]\napi_id = 0\napi_hash = \"h\"\n",
        &[],
        "error: telegram.api_id (config.toml line 2): expected an integer from 1 to 2147483647, found 0",
    );
    check(
        &format!("{MINIMAL}[mirror]\nbatch_size = 10\nqueue_capacity = 5\n"),
        &[],
        "error: mirror.batch_size (config.toml line 5): expected at most mirror.queue_capacity (5), found 10",
    );
    check(
        &format!("{MINIMAL}[health]\nlisten = \"localhost\"\n[log]\nformat = \"xml\"\nlevel = \"=!\"\n"),
        &[],
        "error: 3 problems in the configuration:
  health.listen (config.toml line 5): expected an address such as \"127.0.0.1:9108\", found \"localhost\"
  log.format (config.toml line 7): expected \"text\" or \"json\", found \"xml\"
  log.level (config.toml line 8): expected a level such as \"info\" or a filter such as \"giftd=debug,warn\", found \"=!\"",
    );
}

#[test]
fn environment_errors_name_the_variable() {
    check(
        MINIMAL,
        &[("GIFTD_MIRROR_QUEUE_CAPACITY", "lots")],
        "error: mirror.queue_capacity (environment variable GIFTD_MIRROR_QUEUE_CAPACITY): expected an integer, found \"lots\"",
    );
    check(
        MINIMAL,
        &[("GIFTD_TELEGRAM_UPDATES", "maybe")],
        "error: telegram.updates (environment variable GIFTD_TELEGRAM_UPDATES): expected true or false, found \"maybe\"",
    );
    check(
        MINIMAL,
        &[("GIFTD_TELEGRAM_RECONCILE_INTERVAL", "soon")],
        "error: telegram.reconcile_interval (environment variable GIFTD_TELEGRAM_RECONCILE_INTERVAL): expected a duration such as \"5s\", \"10m\" or \"50ms\", found \"soon\"",
    );
}

#[test]
fn unknown_keys_suggest_the_closest() {
    check(
        &format!("{MINIMAL}pol_interval = \"5s\"\n"),
        &[],
        "error: telegram.pol_interval (config.toml line 4): unknown key; did you mean `telegram.poll_interval`?",
    );
    check(
        &format!("{MINIMAL}[supabse]\nurl = \"x\"\n"),
        &[],
        "error: supabse (config.toml line 4): unknown section; did you mean `[supabase]`?",
    );
    check(
        &format!("{MINIMAL}[log]\ncolour = true\n"),
        &[],
        "error: log.colour (config.toml line 5): unknown key; see config.example.toml for every key",
    );
    check(
        &format!("api_id = 1\n{MINIMAL}"),
        &[],
        "error: api_id (config.toml line 1): unknown section; see config.example.toml for every key",
    );
    check(
        "telegram = 5\n",
        &[],
        "error: telegram (config.toml line 1): expected a table [telegram], found integer",
    );
}

#[test]
fn inline_tables_work_like_sections() {
    check(
        "telegram = { api_id = 3, api_hash = \"h\" }\n",
        &[],
        "telegram.api_id = 3",
    );
}

#[test]
fn syntax_errors_give_the_line_without_its_text() {
    let input = "[telegram]\napi_id = 1\napi_hash = \"super-secret-value\n";
    let err = Config::parse_str(input, "config.toml", &|_| None).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("config.toml line 3: invalid TOML: "),
        "{msg}"
    );
    assert!(!msg.contains("super-secret-value"), "{msg}");
}

#[test]
fn supabase_urls() {
    let with = |body: &str| format!("{MINIMAL}[supabase]\nservice_role_key = \"k\"\n{body}\n");
    check(
        &with("rest_url = \"http://127.0.0.1:3000\""),
        &[],
        "store = supabase http://127.0.0.1:3000 key [redacted] timeout 10s",
    );
    check(
        &with("url = \"https://p.supabase.co\"\nrest_url = \"http://127.0.0.1:3000\""),
        &[],
        "error: supabase.rest_url (config.toml line 7): is set together with supabase.url: give the project URL (url) or the PostgREST base (rest_url), not both",
    );
    check(
        &with("url = \"https://p.supabase.co/rest/v1\""),
        &[],
        "error: supabase.url (config.toml line 6): expected the project URL without /rest/v1, found \"https://p.supabase.co/rest/v1\": drop the suffix or set it as supabase.rest_url",
    );
    check(
        &with("url = \"p.supabase.co\""),
        &[],
        "error: supabase.url (config.toml line 6): expected an https URL (plain http only to a loopback address such as 127.0.0.1: the service-role key travels with every request), found \"p.supabase.co\"",
    );
    check(
        &with("url = \"ftp://p.supabase.co\""),
        &[],
        "error: supabase.url (config.toml line 6): expected an https URL (plain http only to a loopback address such as 127.0.0.1: the service-role key travels with every request), found \"ftp://p.supabase.co\"",
    );
    // The service-role key in clear over the network: refused; to this host: allowed.
    check(
        &with("rest_url = \"http://db.example.com:3000\""),
        &[],
        "error: supabase.rest_url (config.toml line 6): expected an https URL (plain http only to a loopback address such as 127.0.0.1: the service-role key travels with every request), found \"http://db.example.com:3000\"",
    );
    check(
        &with("url = \"http://10.0.0.5:54321\""),
        &[],
        "error: supabase.url (config.toml line 6): expected an https URL (plain http only to a loopback address such as 127.0.0.1: the service-role key travels with every request), found \"http://10.0.0.5:54321\"",
    );
    check(
        &with("rest_url = \"http://localhost:3000\""),
        &[],
        "store = supabase http://localhost:3000 key [redacted] timeout 10s",
    );
    check(
        &with("rest_url = \"http://[::1]:3000\""),
        &[],
        "store = supabase http://[::1]:3000 key [redacted] timeout 10s",
    );
    check(
        &format!(
            "{MINIMAL}[store]\nsqlite_path = \"x.db\"\n[supabase]\nrest_url = \"https://h\"\nservice_role_key = \"k\"\n"
        ),
        &[],
        "error: store.sqlite_path (config.toml line 5): is set but [supabase] selects the Supabase store: remove one of them",
    );
}

#[test]
fn anon_keys_are_refused_without_printing_them() {
    let anon = jwt("anon");
    check(
        MINIMAL,
        &[
            ("SUPABASE_URL", "https://p.supabase.co"),
            ("SUPABASE_KEY", &anon),
        ],
        "error: supabase.service_role_key (environment variable SUPABASE_KEY): is a JWT with role `anon`, probably the anon key: giftd needs the service_role key from the project's API settings",
    );
    check(
        MINIMAL,
        &[
            ("SUPABASE_URL", "https://p.supabase.co"),
            ("SUPABASE_SERVICE_ROLE_KEY", "sb_publishable_abc"),
        ],
        "error: supabase.service_role_key (environment variable SUPABASE_SERVICE_ROLE_KEY): is a publishable key, which reads only public data: use the secret (service_role) key from the project's API settings",
    );
    check(
        MINIMAL,
        &[
            ("SUPABASE_URL", "https://p.supabase.co"),
            ("SUPABASE_SERVICE_ROLE_KEY", &jwt("service_role")),
        ],
        "store = supabase https://p.supabase.co/rest/v1 key [redacted] timeout 10s",
    );
}

#[test]
fn stray_supabase_environment_warns_and_keeps_the_embedded_store() {
    check(
        MINIMAL,
        &[("SUPABASE_SERVICE_ROLE_KEY", "k")],
        "store = sqlite /var/lib/giftd/giftd.sqlite3
         warning: supabase.service_role_key is set (environment variable SUPABASE_SERVICE_ROLE_KEY) but neither supabase.url nor supabase.rest_url is: using the embedded store",
    );
}

#[test]
fn misspelt_environment_variables_warn() {
    let names = [
        "GIFTD_TELEGRAM_POL_INTERVAL",
        "GIFTD_TELEGRAM_POLL_INTERVAL",
        "GIFTD_CONFIG",
        "GIFTD_TEST_REST_URL",
        "GIFTD_LOG_COLOUR",
        "GIFTD_TELEGRAMS",
        "PATH",
    ];
    assert_eq!(
        unknown_env_warnings(names),
        [
            "environment variable GIFTD_LOG_COLOUR is not a giftd setting and is ignored \
             (see config.example.toml for every key)",
            "environment variable GIFTD_TELEGRAM_POL_INTERVAL is not a giftd setting and is \
             ignored (did you mean `GIFTD_TELEGRAM_POLL_INTERVAL`?)",
        ]
    );
}

#[test]
fn a_bot_session_without_a_token_warns() {
    check(
        &format!("{MINIMAL}[bot]\nsession_file = \"b.session\"\n"),
        &[],
        "bot = none
         warning: bot.session_file is set (config.toml line 5) but bot.token is not: no bot runs; set bot.token (BOT_TOKEN) to run it",
    );
}

#[test]
fn secrets_never_leak() {
    let input = "[telegram]\napi_id = 1\napi_hash = \"tg-hash-value\"\n[bot]\ntoken = \"\"\n";
    let err = Config::parse_str(input, "c", &|_| None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bot.token (c line 5): expected a non-empty string"
    );
    let c = Config::parse_str(
        "[telegram]\napi_id = 1\napi_hash = \"tg-hash-value\"\n[bot]\ntoken = \"bot-token-value\"\n",
        "c",
        &|v| (v == "SUPABASE_KEY").then(|| "supabase-key-value".to_owned()),
    )
    .unwrap();
    let debug = format!("{c:?}");
    for secret in ["tg-hash-value", "bot-token-value", "supabase-key-value"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
        assert!(!c.warnings.join("\n").contains(secret));
    }
}

#[test]
fn durations() {
    let cases: &[(&str, Option<u64>)] = &[
        ("5s", Some(5_000)),
        ("50ms", Some(50)),
        ("10m", Some(600_000)),
        ("1h30m", Some(5_400_000)),
        ("2d", Some(172_800_000)),
        (" 0s ", Some(0)),
        ("5", None),
        ("s", None),
        ("", None),
        ("5 s", None),
        ("1.5s", None),
        ("-1s", None),
        ("5sec", None),
        ("99999999999999999999s", None),
    ];
    for (input, want) in cases {
        let got = parse_duration(input).map(|d| d.as_millis() as u64);
        assert_eq!(got, *want, "{input:?}");
        if let Some(d) = parse_duration(input) {
            assert_eq!(parse_duration(&show_duration(d)), Some(d));
        }
    }
}

#[test]
fn environment_names_follow_one_rule() {
    let operator_names = [
        "TELEGRAM_API_ID",
        "TELEGRAM_API_HASH",
        "BOT_TOKEN",
        "SUPABASE_URL",
        "SUPABASE_SERVICE_ROLE_KEY",
    ];
    let mut seen = std::collections::HashSet::new();
    for k in KEYS {
        assert!(seen.insert(k.env), "{} used twice", k.env);
        let rule = format!(
            "GIFTD_{}_{}",
            k.section.to_uppercase(),
            k.name.to_uppercase()
        );
        assert!(
            k.env == rule || operator_names.contains(&k.env),
            "{}.{} is read from {}, expected {rule}",
            k.section,
            k.name,
            k.env
        );
    }
    assert_eq!(
        operator_names.len() + KEYS.iter().filter(|k| k.env.starts_with("GIFTD_")).count(),
        KEYS.len()
    );
}

#[test]
fn example_config_parses_and_documents_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let text = std::fs::read_to_string(&path).expect("config.example.toml at the repo root");
    let c = Config::parse_str(&text, "config.example.toml", &|_| None)
        .unwrap_or_else(|e| panic!("config.example.toml: {e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    for k in KEYS {
        let assignment = format!("{} =", k.name);
        assert!(
            text.lines()
                .any(|l| l.trim_start_matches(['#', ' ']).starts_with(&assignment)),
            "config.example.toml does not show {}.{}",
            k.section,
            k.name
        );
        assert!(
            text.contains(k.env),
            "config.example.toml does not mention {}",
            k.env
        );
    }
    assert!(text.contains(SUPABASE_KEY_ALIAS));
}

#[test]
fn several_deposit_accounts_each_with_a_session_file() {
    let two = "[store]\nstate_dir = \"/srv/giftd\"\n\
               [account.main]\n\
               [account.spare-2]\nsession_file = \"/keys/spare.session\"\n";
    check(
        &format!("{MINIMAL}{two}"),
        &[],
        "account.main.session_file = /srv/giftd/main.session
         account.spare-2.session_file = /keys/spare.session",
    );
    let c = Config::parse_str(&format!("{MINIMAL}{two}"), "config.toml", &|_| None).unwrap();
    let names: Vec<&str> = c.accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["main", "spare-2"], "in the file's order");
    assert_eq!(c.account(Some("spare-2")).unwrap().name, "spare-2");
    assert_eq!(
        c.account(None).unwrap_err(),
        "several deposit accounts are configured (main, spare-2): choose one with --account NAME"
    );
    assert_eq!(
        c.account(Some("mian")).unwrap_err(),
        "no deposit account \"mian\" in config.toml: the configured ones are main, spare-2"
    );
    // Without [account.NAME] sections: today's file, one account named `deposit`.
    let one = Config::parse_str(MINIMAL, "config.toml", &|_| None).unwrap();
    assert_eq!(one.accounts.len(), 1);
    assert_eq!(one.account(None).unwrap().name, "deposit");
    assert_eq!(one.account(Some("deposit")).unwrap().name, "deposit");
}

#[test]
fn bad_account_sections_name_the_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[account.Main]\n",
            "account.Main (config.toml line 4): invalid account name \"Main\": use 1 to 32 lowercase letters, digits, '-' or '_', starting with a letter or a digit",
        ),
        (
            "[account.\"a b\"]\n",
            "account.a b (config.toml line 4): invalid account name \"a b\": use 1 to 32 lowercase letters, digits, '-' or '_', starting with a letter or a digit",
        ),
        (
            "[account.a]\nsesion_file = \"x\"\n",
            "account.a.sesion_file (config.toml line 5): unknown key; did you mean `account.a.session_file`?",
        ),
        (
            "[account.a]\nsession_file = 1\n",
            "account.a.session_file (config.toml line 5): expected a string, found integer",
        ),
        (
            "[account]\na = 1\n",
            "account.a (config.toml line 5): expected a table [account.a] holding the account's session_file, found integer",
        ),
        (
            "[[account]]\nsession_file = \"x\"\n",
            "account (config.toml line 4): expected tables [account.NAME], one per deposit account, found array of tables",
        ),
        (
            "[account]\n",
            "account: lists no account: add one [account.NAME] section with its session_file per deposit account, or remove [account] to use telegram.session_file",
        ),
        (
            "[account.a]\nsession_file = \"same.session\"\n[account.b]\nsession_file = \"same.session\"\n",
            "account.b.session_file (config.toml line 7): is /var/lib/giftd/same.session, the session file of account \"a\" too: each deposit account needs its own (run `giftd login --account b` to create it)",
        ),
        (
            "[account.a]\n[account.b]\nsession_file = \"a.session\"\n",
            "account.b.session_file (config.toml line 6): is /var/lib/giftd/a.session, the session file of account \"a\" too: each deposit account needs its own (run `giftd login --account b` to create it)",
        ),
    ];
    for (text, want) in cases {
        check(&format!("{MINIMAL}{text}"), &[], &format!("error: {want}"));
    }
    // A name given twice is a TOML error, reported with its line.
    check(
        &format!("{MINIMAL}[account.a]\n[account.a]\n"),
        &[],
        "error: config.toml line 5: invalid TOML: invalid table header\nduplicate key `a` in table `account`",
    );
    // The one-account key and account sections together: ambiguous, refused.
    check(
        "[telegram]\napi_id = 1\napi_hash = \"h\"\nsession_file = \"x.session\"\n[account.a]\n",
        &[],
        "error: telegram.session_file (config.toml line 4): is set together with [account.NAME] sections: give each account its own session_file in its section and remove this one",
    );
    // A misspelt section still suggests [account].
    check(
        &format!("{MINIMAL}[acount.a]\n"),
        &[],
        "error: acount (config.toml line 4): unknown section; did you mean `[account]`?",
    );
}

#[test]
fn bot_admins_are_user_ids() {
    check(
        &format!("{MINIMAL}[bot]\ntoken = \"1:x\"\nadmins = \"7, 8,\"\n"),
        &[],
        "bot = token [redacted] session /var/lib/giftd/bot.session admins [7, 8]",
    );
    check(
        &format!("{MINIMAL}[bot]\ntoken = \"1:x\"\n"),
        &[("GIFTD_BOT_ADMINS", "42")],
        "bot = token [redacted] session /var/lib/giftd/bot.session admins [42]",
    );
    check(
        &format!("{MINIMAL}[bot]\ntoken = \"1:x\"\nadmins = \"7, @boss\"\n"),
        &[],
        "error: bot.admins (config.toml line 6): expected comma-separated Telegram user ids, found \"7, @boss\"",
    );
}

#[test]
fn supabase_listen_url_is_a_secret_postgres_url_and_plaintext_only_when_said() {
    let with = |body: &str| {
        format!(
            "{MINIMAL}[supabase]\nrest_url = \"http://127.0.0.1:3000\"\nservice_role_key = \"k\"\n{body}\n"
        )
    };
    let parse = |text: &str| Config::parse_str(text, "config.toml", &|_| None);
    let listen = |c: &Config| match &c.store {
        crate::config::StoreConfig::Supabase(s) => {
            s.listen_url.as_ref().map(|u| u.expose().to_owned())
        }
        _ => panic!("the supabase store"),
    };
    let local = "postgres://giftd:hunter2@127.0.0.1:5432/postgres";
    assert_eq!(
        listen(&parse(&with(&format!("listen_url = \"{local}\""))).unwrap()).as_deref(),
        Some(local)
    );
    let remote = "postgres://giftd:hunter2@db.p.supabase.co:5432/postgres";
    let plain = format!("{remote}?sslmode=disable");
    assert!(parse(&with(&format!("listen_url = \"{plain}\""))).is_ok());
    for (bad, why) in [
        (remote.to_owned(), "has no TLS"),
        (
            "https://p.supabase.co".to_owned(),
            "expected a PostgreSQL connection URL",
        ),
    ] {
        let e = parse(&with(&format!("listen_url = \"{bad}\"")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("supabase.listen_url") && e.contains(why), "{e}");
        assert!(
            !e.contains("hunter2"),
            "the password stays out of errors: {e}"
        );
    }
    let c = parse(&with(&format!("listen_url = \"{local}\""))).unwrap();
    assert!(!format!("{c:?}").contains("hunter2"), "nor in Debug");
}
