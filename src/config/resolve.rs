//! Phase two of loading: turns the checked raw values into a typed [`Config`], applying
//! defaults, ranges and the rules that tie keys together, and collecting every problem.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::secret::Secret;

impl Config {
    /// Phase two: turns checked raw values into typed ones.
    pub fn resolve(raw: RawConfig, origin: &str) -> Result<Config, ConfigError> {
        let mut r = Resolver {
            raw: &raw,
            problems: Vec::new(),
        };
        let mut warnings = Vec::new();

        let state_dir = r
            .string("store.state_dir")
            .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from);
        let in_state_dir = |path: Option<String>, default: &str| match path {
            Some(p) => state_dir.join(p),
            None => state_dir.join(default),
        };

        let api_id = r.required(
            "telegram.api_id",
            "get it from https://my.telegram.org",
            |r| r.integer_in("telegram.api_id", 1, i64::from(i32::MAX)),
        );
        let api_hash = r.required(
            "telegram.api_hash",
            "get it from https://my.telegram.org",
            |r| r.secret("telegram.api_hash"),
        );
        let accounts = r.accounts(&state_dir);
        let poll_interval = r.duration_at_least(
            "telegram.poll_interval",
            Duration::from_secs(5),
            Duration::from_secs(1),
        );
        let reconcile_interval = r.duration_at_least(
            "telegram.reconcile_interval",
            Duration::from_secs(600),
            Duration::from_secs(1),
        );
        let updates = r.bool("telegram.updates").unwrap_or(true);
        let update_buffer = r
            .integer_in("telegram.update_buffer", 16, 1_000_000)
            .map_or(10_000, to_usize);
        let flood_wait_max = r.duration_at_least(
            "telegram.flood_wait_max",
            Duration::from_secs(60),
            Duration::ZERO,
        );

        let bot_session = in_state_dir(r.string("bot.session_file"), "bot.session");
        let admins = r
            .parsed("bot.admins", "comma-separated Telegram user ids", |s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| p.parse::<i64>().ok().filter(|id| *id > 0))
                    .collect::<Option<Vec<i64>>>()
            })
            .unwrap_or_default();
        let chat_burst = r
            .integer_in("bot.chat_burst", 1, 3)
            .map_or(3, |n| u32::try_from(n).unwrap_or(3));
        let undelivered_max_age = r.duration_at_least(
            "bot.undelivered_max_age",
            Duration::from_secs(3 * 86_400),
            Duration::ZERO,
        );
        // The outbox gives up on notifications a week old (`store::notify::STALE_AFTER`).
        let outbox_gives_up = Duration::from_secs(7 * 86_400);
        if undelivered_max_age > outbox_gives_up {
            r.problem(
                "bot.undelivered_max_age",
                format!(
                    "expected at most {} (older notifications are given up), found {}",
                    show_duration(outbox_gives_up),
                    show_duration(undelivered_max_age)
                ),
            );
        }
        let bot = r.secret("bot.token").map(|token| BotConfig {
            token,
            session_file: bot_session,
            admins,
            chat_burst,
            undelivered_max_age,
        });
        if bot.is_none()
            && let Some(raw) = raw.values.get("bot.session_file")
        {
            warnings.push(format!(
                "bot.session_file is set ({}) but bot.token is not: no bot runs; set bot.token \
                 (BOT_TOKEN) to run it",
                raw.origin
            ));
        }

        let store = r.store(&state_dir, &mut warnings);

        let mirror_default = MirrorConfig::default();
        let batch_size = r
            .integer_in("mirror.batch_size", 1, 1_000_000)
            .map_or(mirror_default.batch_size, to_usize);
        let queue_capacity = r
            .integer_in("mirror.queue_capacity", 1, 100_000_000)
            .map_or(mirror_default.queue_capacity, to_usize);
        if batch_size > queue_capacity {
            r.problem(
                "mirror.batch_size",
                format!(
                    "expected at most mirror.queue_capacity ({queue_capacity}), found {batch_size}"
                ),
            );
        }
        let mirror = MirrorConfig {
            batch_size,
            queue_capacity,
        };
        // Accepted with a warning so a file that sets it still loads: the mirror writes each
        // change at once and never waits to fill batches.
        if let Some(raw) = raw.values.get("mirror.flush_interval") {
            warnings.push(format!(
                "mirror.flush_interval ({}) is no longer used: the mirror writes a change at once \
                 when no write is in flight and batches what arrives meanwhile; remove it",
                raw.origin
            ));
        }

        let withdraw = r.withdraw();

        let listen = r
            .parsed(
                "health.listen",
                "an address such as \"127.0.0.1:9108\"",
                |s| s.parse::<SocketAddr>().ok(),
            )
            .unwrap_or(HealthConfig::default().listen);

        let format = r
            .parsed("log.format", "\"text\" or \"json\"", |s| match s {
                "text" => Some(LogFormat::Text),
                "json" => Some(LogFormat::Json),
                _ => None,
            })
            .unwrap_or(LogFormat::Text);
        let level = r
            .parsed(
                "log.level",
                "a level such as \"info\" or a filter such as \"giftd=debug,warn\"",
                |s| {
                    tracing_subscriber::EnvFilter::try_new(s)
                        .ok()
                        .map(|_| s.to_owned())
                },
            )
            .unwrap_or_else(|| LogConfig::default().level);

        let defaults = crate::term::LeaseTimes::default();
        let ttl = r.duration_at_least("lease.ttl", defaults.ttl, Duration::from_millis(200));
        let renew_every = r.duration_at_least(
            "lease.renew_every",
            defaults.renew_every,
            Duration::from_millis(10),
        );
        let lease = match crate::term::LeaseTimes::new(ttl, renew_every) {
            Ok(times) => times,
            Err(e) => {
                r.problem(
                    if raw.values.contains_key("lease.renew_every") {
                        "lease.renew_every"
                    } else {
                        "lease.ttl"
                    },
                    format!(
                        "{e}: keep lease.renew_every under half of lease.ttl (defaults 5s and \
                         15s)"
                    ),
                );
                defaults
            }
        };

        let instance = r.string("lease.instance");
        if let Some(id) = &instance
            && !crate::term::valid_identity(id)
        {
            r.problem(
                "lease.instance",
                format!("{id:?}: use 1 to 64 letters, digits, '.', '_' or '-'"),
            );
        }

        let Resolver { problems, .. } = r;
        match (api_id, api_hash, store) {
            (Some(api_id), Some(api_hash), Some(store)) if problems.is_empty() => Ok(Config {
                source: origin.to_owned(),
                telegram: TelegramConfig {
                    // In range: `integer_in` checked 1..=i32::MAX.
                    api_id: i32::try_from(api_id).unwrap_or(i32::MAX),
                    api_hash,
                    poll_interval,
                    reconcile_interval,
                    updates,
                    flood_wait_max,
                    update_buffer,
                },
                state_dir,
                accounts,
                bot,
                store,
                mirror,
                withdraw,
                lease,
                instance,
                health: HealthConfig { listen },
                log: LogConfig { format, level },
                warnings,
            }),
            _ => Err(ConfigError::Invalid(problems)),
        }
    }
}

fn to_usize(n: i64) -> usize {
    // Callers range-check `n` to be positive and small.
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Phase two's working state: reads typed values out of a [`RawConfig`] and collects problems.
struct Resolver<'a> {
    raw: &'a RawConfig,
    problems: Vec<Problem>,
}

impl Resolver<'_> {
    /// The deposit accounts: the `[account.NAME]` sections, or the one account `deposit` whose
    /// session file is `telegram.session_file` when there are none. Two accounts may not share
    /// a session file.
    fn accounts(&mut self, state_dir: &Path) -> Vec<AccountConfig> {
        let raw = self.raw;
        if raw.accounts.is_empty() {
            if raw.sections.iter().any(|s| s == ACCOUNT_SECTION) {
                self.problems.push(Problem {
                    key: ACCOUNT_SECTION.to_owned(),
                    origin: None,
                    message: "lists no account: add one [account.NAME] section with its \
                              session_file per deposit account, or remove [account] to use \
                              telegram.session_file"
                        .to_owned(),
                });
            }
            let file = self
                .string("telegram.session_file")
                .unwrap_or_else(|| format!("{DEFAULT_ACCOUNT}.session"));
            return vec![AccountConfig {
                name: DEFAULT_ACCOUNT.to_owned(),
                session_file: state_dir.join(file),
            }];
        }
        if raw.values.contains_key("telegram.session_file") {
            self.problem(
                "telegram.session_file",
                "is set together with [account.NAME] sections: give each account its own \
                 session_file in its section and remove this one"
                    .to_owned(),
            );
        }
        let mut accounts: Vec<AccountConfig> = Vec::new();
        for (name, _) in &raw.accounts {
            let key = format!("{ACCOUNT_SECTION}.{name}.session_file");
            let file = self
                .string(&key)
                .unwrap_or_else(|| format!("{name}.session"));
            let session_file = state_dir.join(file);
            if let Some(first) = accounts.iter().find(|a| a.session_file == session_file) {
                let message = format!(
                    "is {}, the session file of account {:?} too: each deposit account needs \
                     its own (run `giftd login --account {name}` to create it)",
                    session_file.display(),
                    first.name
                );
                self.problem(&key, message);
            }
            accounts.push(AccountConfig {
                name: name.clone(),
                session_file,
            });
        }
        accounts
    }

    fn withdraw(&mut self) -> WithdrawConfig {
        let d = WithdrawConfig::default();
        let regular = self
            .parsed(
                "withdraw.regular",
                "\"resend\" or \"refuse\"",
                |s| match s {
                    "resend" => Some(RegularPolicy::Resend),
                    "refuse" => Some(RegularPolicy::Refuse),
                    _ => None,
                },
            )
            .unwrap_or(d.regular);
        let stars = |r: &mut Self, key: &str, default: i64| {
            r.integer_in(key, 0, 1_000_000_000).unwrap_or(default)
        };
        let max_fee_stars = stars(self, "withdraw.max_fee_stars", d.max_fee_stars);
        let daily_fee_stars = stars(self, "withdraw.daily_fee_stars", d.daily_fee_stars);
        let max_resend_stars = stars(self, "withdraw.max_resend_stars", d.max_resend_stars);
        let daily_resend_stars = stars(self, "withdraw.daily_resend_stars", d.daily_resend_stars);
        let max_attempts = self
            .integer_in("withdraw.max_attempts", 1, 100)
            .map_or(d.max_attempts, |n| {
                i32::try_from(n).unwrap_or(d.max_attempts)
            });
        let second = Duration::from_secs(1);
        let resend_hold =
            self.duration_at_least("withdraw.resend_hold", d.resend_hold, Duration::ZERO);
        let call_timeout = self.duration_at_least("withdraw.call_timeout", d.call_timeout, second);
        let settle_delay = self.duration_at_least("withdraw.settle_delay", d.settle_delay, second);
        let lease = self.duration_at_least("withdraw.lease", d.lease, second);
        let poll_interval = self.duration_at_least(
            "withdraw.poll_interval",
            d.poll_interval,
            Duration::from_millis(10),
        );
        for (key, value) in [
            ("withdraw.settle_delay", settle_delay),
            ("withdraw.lease", lease),
        ] {
            if value <= call_timeout {
                self.problem(
                    key,
                    format!(
                        "expected more than withdraw.call_timeout ({}), found {}: a late answer \
                         must land before giftd looks at Telegram or another worker takes over",
                        show_duration(call_timeout),
                        show_duration(value)
                    ),
                );
            }
        }
        WithdrawConfig {
            regular,
            max_fee_stars,
            daily_fee_stars,
            max_resend_stars,
            daily_resend_stars,
            resend_hold,
            max_attempts,
            call_timeout,
            settle_delay,
            lease,
            poll_interval,
        }
    }

    fn problem(&mut self, key: &str, message: String) {
        let origin = self.raw.values.get(key).map(|r| r.origin.clone());
        self.problems.push(Problem {
            key: key.to_owned(),
            origin,
            message,
        });
    }

    fn env_of(key: &str) -> &'static str {
        KEYS.iter()
            .find(|k| format!("{}.{}", k.section, k.name) == key)
            .map_or("", |k| k.env)
    }

    /// Reads a key that must be present; records "missing" with a hint otherwise.
    fn required<T>(
        &mut self,
        key: &str,
        hint: &str,
        read: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<T> {
        let present = self.raw.values.contains_key(key);
        let value = read(self);
        if !present {
            let env = Self::env_of(key);
            self.problems.push(Problem {
                key: key.to_owned(),
                origin: None,
                message: format!("missing: set it in the file or in {env} ({hint})"),
            });
        }
        value
    }

    // Phase one checked that each key holds the type its `KeySpec` declares, so the accessors
    // below only ever see that type.

    fn string(&self, key: &str) -> Option<String> {
        match self.raw.values.get(key).map(|r| &r.value) {
            Some(RawValue::String(s)) => Some(s.clone()),
            _ => None,
        }
    }

    fn secret(&mut self, key: &str) -> Option<Secret> {
        match self.raw.values.get(key).map(|r| &r.value) {
            Some(RawValue::Secret(s)) if s.expose().trim().is_empty() => {
                self.problem(key, "expected a non-empty string".to_owned());
                None
            }
            Some(RawValue::Secret(s)) => Some(Secret::new(s.expose().trim())),
            _ => None,
        }
    }

    fn bool(&self, key: &str) -> Option<bool> {
        match self.raw.values.get(key).map(|r| &r.value) {
            Some(RawValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    fn integer_in(&mut self, key: &str, min: i64, max: i64) -> Option<i64> {
        match self.raw.values.get(key).map(|r| &r.value) {
            Some(RawValue::Integer(n)) if (min..=max).contains(n) => Some(*n),
            Some(RawValue::Integer(n)) => {
                let n = *n;
                self.problem(
                    key,
                    format!("expected an integer from {min} to {max}, found {n}"),
                );
                None
            }
            _ => None,
        }
    }

    /// A string key parsed by `parse`; records what was expected when it fails.
    fn parsed<T>(
        &mut self,
        key: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let s = self.string(key)?;
        let value = parse(s.trim());
        if value.is_none() {
            self.problem(key, format!("expected {expected}, found {s:?}"));
        }
        value
    }

    fn duration_at_least(&mut self, key: &str, default: Duration, min: Duration) -> Duration {
        let Some(d) = self.parsed(key, "a duration such as \"5s\", \"10m\" or \"50ms\"", |s| {
            parse_duration(s)
        }) else {
            return default;
        };
        if d < min {
            self.problem(
                key,
                format!(
                    "expected at least {}, found {}",
                    show_duration(min),
                    show_duration(d)
                ),
            );
            return default;
        }
        d
    }

    fn store(&mut self, state_dir: &Path, warnings: &mut Vec<String>) -> Option<StoreConfig> {
        let raw = self.raw;
        let has = |k: &str| raw.values.contains_key(k);
        let selected = raw.sections.iter().any(|s| s == "supabase")
            || has("supabase.url")
            || has("supabase.rest_url");
        let sqlite_path = self.string("store.sqlite_path");
        if !selected {
            for (key, value) in raw.values.range("supabase.".to_owned()..) {
                if !key.starts_with("supabase.") {
                    break;
                }
                warnings.push(format!(
                    "{key} is set ({}) but neither supabase.url nor supabase.rest_url is: \
                     using the embedded store",
                    value.origin
                ));
            }
            let path = state_dir.join(sqlite_path.as_deref().unwrap_or("giftd.sqlite3"));
            return Some(StoreConfig::Embedded(EmbeddedStoreConfig { path }));
        }

        if sqlite_path.is_some() {
            self.problem(
                "store.sqlite_path",
                "is set but [supabase] selects the Supabase store: remove one of them".to_owned(),
            );
        }
        let project_url = self.parsed("supabase.url", KEY_URL, key_url);
        let rest_url = self.parsed("supabase.rest_url", KEY_URL, key_url);
        let rest_url = match (project_url, rest_url) {
            (Some(_), Some(_)) => {
                self.problem(
                    "supabase.rest_url",
                    "is set together with supabase.url: give the project URL (url) or the \
                     PostgREST base (rest_url), not both"
                        .to_owned(),
                );
                None
            }
            (Some(url), None) if url.ends_with("/rest/v1") => {
                self.problem(
                    "supabase.url",
                    format!(
                        "expected the project URL without /rest/v1, found {url:?}: drop the \
                         suffix or set it as supabase.rest_url"
                    ),
                );
                None
            }
            (Some(url), None) => Some(format!("{url}/rest/v1")),
            (None, Some(url)) => Some(url),
            (None, None) => {
                if !has("supabase.url") && !has("supabase.rest_url") {
                    self.problem(
                        "supabase.url",
                        "missing: set supabase.url (SUPABASE_URL) to the project URL, or \
                         supabase.rest_url to a PostgREST base, or remove [supabase] to use \
                         the embedded store"
                            .to_owned(),
                    );
                }
                None
            }
        };
        let key = self.required(
            "supabase.service_role_key",
            "the service_role key from the project's API settings",
            |r| r.secret("supabase.service_role_key"),
        );
        if let Some(key) = &key
            && let Some(why) = not_service_role(key)
        {
            self.problem("supabase.service_role_key", why);
        }
        let request_timeout = self.duration_at_least(
            "supabase.request_timeout",
            Duration::from_secs(10),
            Duration::from_millis(1),
        );
        let listen_url = self.secret("supabase.listen_url");
        if let Some(url) = &listen_url
            && !is_postgres_url(url.expose())
        {
            // The value is a secret (it holds a password): the problem does not quote it.
            self.problem(
                "supabase.listen_url",
                "expected a PostgreSQL connection URL (postgres://user:password@host:port/db), \
                 e.g. the project's direct or session pooler connection string"
                    .to_owned(),
            );
        } else if let Some(url) = &listen_url
            && !plaintext_acceptable(url.expose())
        {
            self.problem(
                "supabase.listen_url",
                "giftd's listen connection has no TLS: add `sslmode=disable` to the URL's query \
                 to accept a plaintext connection on a trusted network (it carries only \
                 wake-ups; SCRAM keeps the password off the wire), or use a loopback address"
                    .to_owned(),
            );
        }
        Some(StoreConfig::Supabase(SupabaseConfig {
            rest_url: rest_url?,
            service_role_key: key?,
            request_timeout,
            listen_url,
        }))
    }
}

/// A `postgres://` or `postgresql://` URL with a host (the form `supabase.listen_url` takes).
fn is_postgres_url(s: &str) -> bool {
    url::Url::parse(s.trim()).is_ok_and(|u| {
        matches!(u.scheme(), "postgres" | "postgresql")
            && u.host_str().is_some_and(|h| !h.is_empty())
    })
}

/// Whether a plaintext connection to the listen URL is acceptable: a loopback host, or the
/// operator said so with `sslmode=disable`.
fn plaintext_acceptable(s: &str) -> bool {
    url::Url::parse(s.trim()).is_ok_and(|u| {
        let loopback = match u.host() {
            // A postgres:// URL's host is opaque to `url`: an address comes as a domain.
            Some(url::Host::Domain(d)) => {
                d == "localhost"
                    || d.parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        loopback
            || u.query_pairs()
                .any(|(k, v)| k == "sslmode" && v == "disable")
    })
}

/// What [`key_url`] accepts, as the error says it.
const KEY_URL: &str = "an https URL (plain http only to a loopback address such as 127.0.0.1: \
                       the service-role key travels with every request)";

/// An https URL with a host, or an http one to a loopback address (the service-role key is
/// sent with every request: in clear only where it does not leave the host), without a
/// trailing slash.
fn key_url(s: &str) -> Option<String> {
    let url = url::Url::parse(s).ok()?;
    let loopback = match url.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
    };
    let ok = match url.scheme() {
        "https" => true,
        "http" => loopback,
        _ => false,
    };
    ok.then(|| s.trim_end_matches('/').to_owned())
}

/// Explains why `key` is not a service_role key, when that can be told without a network call:
/// a JWT whose `role` claim is not `service_role` (the payload is decoded, not verified), or a
/// Supabase publishable key. Keys of other shapes (`sb_secret_...`) are let through.
fn not_service_role(key: &Secret) -> Option<String> {
    use base64::Engine as _;
    let key = key.expose();
    if key.starts_with("sb_publishable_") {
        return Some(
            "is a publishable key, which reads only public data: use the secret \
             (service_role) key from the project's API settings"
                .to_owned(),
        );
    }
    let mut parts = key.split('.');
    let (Some(_header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match claims.get("role").and_then(|r| r.as_str()) {
        Some("service_role") | None => None,
        Some(role) => Some(format!(
            "is a JWT with role `{role}`, probably the anon key: giftd needs the service_role \
             key from the project's API settings"
        )),
    }
}

/// Parses durations such as `5s`, `10m`, `50ms`, `1h30m`. Units: `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(Duration::from_millis(n.checked_mul(millis_per_unit)?))?;
    }
    Some(total)
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".to_owned(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}
