//! Configuration: a TOML file plus environment overrides, checked and resolved into typed values.
//!
//! Loading happens in two phases, like ripgrep's `LowArgs -> HiArgs`:
//!
//! 1. [`RawConfig`] reads the TOML document and the environment. It knows every key (the table
//!    [`KEYS`]), rejects unknown keys (with a "did you mean" when one is close) and values of the
//!    wrong TOML type, and remembers where each value came from (file and line, or the
//!    environment variable).
//! 2. [`Config`] resolves those values: durations, URLs, socket addresses, paths relative to the
//!    state directory, secrets, defaults and the rules that tie keys together (exactly one of
//!    `supabase.url` and `supabase.rest_url`, for instance).
//!
//! The problems of a phase are reported together, not only the first, and each names the key,
//! where it came from and what was expected (resolution runs only once every key is known and
//! well typed, so a mistyped key is not also reported missing). Environment variables win over the file. An empty environment
//! variable counts as unset.
//!
//! This module never reads the process environment except in [`Config::parse`]: tests hand
//! [`Config::parse_str`] or [`Config::load`] a lookup function. It never prints a secret: values
//! of secret keys are left out of every message, and TOML syntax errors are reported without the
//! offending line (which might hold a key).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;

/// The configuration file used when neither `--config` nor `GIFTD_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/giftd/config.toml";

/// The state directory used when `store.state_dir` is not set.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/giftd";

/// Everything giftd needs to run, resolved and checked. Built by [`Config::parse`] or
/// [`Config::parse_str`]; there is deliberately no `Default`: the Telegram credentials have none.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file came from, for messages (`/etc/giftd/config.toml`).
    pub source: String,
    /// Directory for session files and the embedded database (`store.state_dir`).
    pub state_dir: PathBuf,
    pub telegram: TelegramConfig,
    /// The companion bot; `None` when no `bot.token` is configured.
    pub bot: Option<BotConfig>,
    pub store: StoreConfig,
    pub mirror: MirrorConfig,
    pub withdraw: WithdrawConfig,
    pub health: HealthConfig,
    pub log: LogConfig,
    /// Things that are allowed but probably not what the operator meant (a Supabase key in the
    /// environment with no Supabase URL, say). `giftd check` prints them.
    pub warnings: Vec<String>,
}

/// The deposit account's MTProto session.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// `api_id` from <https://my.telegram.org>.
    pub api_id: i32,
    /// `api_hash` from <https://my.telegram.org>.
    pub api_hash: Secret,
    /// The deposit account's session file. Default `<state_dir>/deposit.session`.
    pub session_file: PathBuf,
    /// How often `payments.getSavedStarGifts` is polled. Default 5 s.
    pub poll_interval: Duration,
    /// How often a full reconciliation runs (besides the one at start). Default 10 min.
    pub reconcile_interval: Duration,
    /// Whether to listen to pushed updates (the fast path). Default true; polling alone still
    /// finds every gift.
    pub updates: bool,
    /// The longest `FLOOD_WAIT` giftd sleeps through before retrying; a longer one fails the
    /// request. Default 60 s.
    pub flood_wait_max: Duration,
    /// How many Telegram updates may wait for giftd's update loop before new ones are dropped
    /// (and counted in `giftd_updates_dropped_total`; Telegram's getDifference and polling
    /// still find their gifts). Default 10,000: a burst that size costs a few MB.
    pub update_buffer: usize,
}

/// The companion bot.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// Token from @BotFather.
    pub token: Secret,
    /// The bot's session file. Default `<state_dir>/bot.session`.
    pub session_file: PathBuf,
}

/// Where the mirror of the inventory lives.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// Embedded SQLite database file (the default when no `[supabase]` section is given).
    Embedded(EmbeddedStoreConfig),
    /// Supabase (or any PostgREST) database.
    Supabase(SupabaseConfig),
}

#[derive(Debug, Clone)]
pub struct EmbeddedStoreConfig {
    /// The SQLite file, by default `<state_dir>/giftd.sqlite3`.
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct SupabaseConfig {
    /// Base URL of the PostgREST API, e.g. `https://<project>.supabase.co/rest/v1` or
    /// `http://127.0.0.1:3000` for a bare PostgREST.
    pub rest_url: String,
    /// The `service_role` key (a JWT); sent as `apikey` and `Authorization: Bearer`.
    pub service_role_key: Secret,
    /// Timeout of each HTTP request.
    pub request_timeout: Duration,
}

/// Tuning of the queue between the inventory and the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorConfig {
    /// Most items written in one store call. Default 500.
    pub batch_size: usize,
    /// Changes the queue holds before producers wait. Default 100,000.
    pub queue_capacity: usize,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            batch_size: 500,
            queue_capacity: 100_000,
        }
    }
}

/// What giftd does with a regular (non-collectible) gift a player asks back. Telegram moves
/// only collectibles; a regular gift can only be returned by buying the same one for the player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegularPolicy {
    /// Buy the same catalogue gift for the player (the original stays, kept by the house).
    Resend,
    /// Refuse: the request fails with a message saying regular gifts cannot be withdrawn.
    Refuse,
}

/// The withdrawal worker: what it may spend, and its timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawConfig {
    /// `withdraw.regular`. Default `refuse`: no Stars are spent unless the operator says so.
    pub regular: RegularPolicy,
    /// Highest transfer fee paid without an operator's approval. Default 100 Stars.
    pub max_fee_stars: i64,
    /// Transfer fees one deposit account may pay per UTC day. Default 1,000 Stars.
    pub daily_fee_stars: i64,
    /// Highest price of a resent regular gift without approval. Default 100 Stars.
    pub max_resend_stars: i64,
    /// Resends one deposit account may buy per UTC day. Default 1,000 Stars.
    pub daily_resend_stars: i64,
    /// Attempts at Telegram for one request before an operator decides. Default 3.
    pub max_attempts: i32,
    /// Longest wait for Telegram's answer to a call that moves a gift or spends Stars; past it
    /// the outcome is unknown. Default 20 s.
    pub call_timeout: Duration,
    /// How long after an unknown outcome giftd waits before looking at Telegram to resolve it;
    /// longer than `call_timeout`, so a late answer has landed. Default 60 s.
    pub settle_delay: Duration,
    /// How long a worker's claim on a request lasts without it finishing; after that another
    /// worker (or the next start) takes it over. Longer than `call_timeout`. Default 60 s.
    pub lease: Duration,
    /// How often the queue is checked when nothing wakes the worker. Default 1 s.
    pub poll_interval: Duration,
}

impl Default for WithdrawConfig {
    fn default() -> Self {
        WithdrawConfig {
            regular: RegularPolicy::Refuse,
            max_fee_stars: 100,
            daily_fee_stars: 1_000,
            max_resend_stars: 100,
            daily_resend_stars: 1_000,
            max_attempts: 3,
            call_timeout: Duration::from_secs(20),
            settle_delay: Duration::from_secs(60),
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// The health and metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// Address of `/healthz`, `/readyz` and `/metrics`. Default `127.0.0.1:9108`.
    pub listen: SocketAddr,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9108)),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Default [`LogFormat::Text`].
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive such as `info` or `giftd=debug,warn`.
    /// Default `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (journald adds the timestamps).
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML. The message leaves out the offending line's text, which
    /// could hold a secret.
    #[error("{origin} line {line}: invalid TOML: {message}")]
    Syntax {
        origin: String,
        line: usize,
        message: String,
    },
    /// The file is TOML but some keys are unknown, mistyped, missing or invalid.
    #[error("{}", render_problems(.0))]
    Invalid(Vec<Problem>),
}

fn render_problems(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => {
            let mut s = format!("{} problems in the configuration:", many.len());
            for p in many {
                s.push_str("\n  ");
                s.push_str(&p.to_string());
            }
            s
        }
    }
}

/// One thing wrong with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key, `telegram.poll_interval`.
    pub key: String,
    /// Where the bad value came from; `None` for a missing key.
    pub origin: Option<Origin>,
    /// What was expected (never contains a secret value).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(origin) => write!(f, "{} ({origin}): {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of the configuration file.
    File { name: String, line: usize },
    /// An environment variable.
    Env(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { name, line } => write!(f, "{name} line {line}"),
            Origin::Env(var) => write!(f, "environment variable {var}"),
        }
    }
}

/// The TOML type a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Integer,
    Bool,
    /// A string shown in messages.
    String,
    /// A string never shown anywhere.
    Secret,
}

/// One configuration key: the documentation's source of truth. `config.example.toml` is tested
/// to mention every key and environment variable listed here.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    pub section: &'static str,
    pub name: &'static str,
    pub ty: KeyType,
    /// The environment variable that overrides it.
    pub env: &'static str,
}

const fn key(section: &'static str, name: &'static str, ty: KeyType, env: &'static str) -> KeySpec {
    KeySpec {
        section,
        name,
        ty,
        env,
    }
}

/// Every key giftd reads. Environment variables are `GIFTD_<SECTION>_<KEY>`, except the names
/// operators of Telegram and Supabase services already use.
pub const KEYS: &[KeySpec] = {
    use KeyType::*;
    &[
        key("telegram", "api_id", Integer, "TELEGRAM_API_ID"),
        key("telegram", "api_hash", Secret, "TELEGRAM_API_HASH"),
        key(
            "telegram",
            "session_file",
            String,
            "GIFTD_TELEGRAM_SESSION_FILE",
        ),
        key(
            "telegram",
            "poll_interval",
            String,
            "GIFTD_TELEGRAM_POLL_INTERVAL",
        ),
        key(
            "telegram",
            "reconcile_interval",
            String,
            "GIFTD_TELEGRAM_RECONCILE_INTERVAL",
        ),
        key("telegram", "updates", Bool, "GIFTD_TELEGRAM_UPDATES"),
        key(
            "telegram",
            "update_buffer",
            Integer,
            "GIFTD_TELEGRAM_UPDATE_BUFFER",
        ),
        key(
            "telegram",
            "flood_wait_max",
            String,
            "GIFTD_TELEGRAM_FLOOD_WAIT_MAX",
        ),
        key("bot", "token", Secret, "BOT_TOKEN"),
        key("bot", "session_file", String, "GIFTD_BOT_SESSION_FILE"),
        key("store", "state_dir", String, "GIFTD_STORE_STATE_DIR"),
        key("store", "sqlite_path", String, "GIFTD_STORE_SQLITE_PATH"),
        key("supabase", "url", String, "SUPABASE_URL"),
        key("supabase", "rest_url", String, "GIFTD_SUPABASE_REST_URL"),
        key(
            "supabase",
            "service_role_key",
            Secret,
            "SUPABASE_SERVICE_ROLE_KEY",
        ),
        key(
            "supabase",
            "request_timeout",
            String,
            "GIFTD_SUPABASE_REQUEST_TIMEOUT",
        ),
        key("mirror", "batch_size", Integer, "GIFTD_MIRROR_BATCH_SIZE"),
        key(
            "mirror",
            "flush_interval",
            String,
            "GIFTD_MIRROR_FLUSH_INTERVAL",
        ),
        key(
            "mirror",
            "queue_capacity",
            Integer,
            "GIFTD_MIRROR_QUEUE_CAPACITY",
        ),
        key("withdraw", "regular", String, "GIFTD_WITHDRAW_REGULAR"),
        key(
            "withdraw",
            "max_fee_stars",
            Integer,
            "GIFTD_WITHDRAW_MAX_FEE_STARS",
        ),
        key(
            "withdraw",
            "daily_fee_stars",
            Integer,
            "GIFTD_WITHDRAW_DAILY_FEE_STARS",
        ),
        key(
            "withdraw",
            "max_resend_stars",
            Integer,
            "GIFTD_WITHDRAW_MAX_RESEND_STARS",
        ),
        key(
            "withdraw",
            "daily_resend_stars",
            Integer,
            "GIFTD_WITHDRAW_DAILY_RESEND_STARS",
        ),
        key(
            "withdraw",
            "max_attempts",
            Integer,
            "GIFTD_WITHDRAW_MAX_ATTEMPTS",
        ),
        key(
            "withdraw",
            "call_timeout",
            String,
            "GIFTD_WITHDRAW_CALL_TIMEOUT",
        ),
        key(
            "withdraw",
            "settle_delay",
            String,
            "GIFTD_WITHDRAW_SETTLE_DELAY",
        ),
        key("withdraw", "lease", String, "GIFTD_WITHDRAW_LEASE"),
        key(
            "withdraw",
            "poll_interval",
            String,
            "GIFTD_WITHDRAW_POLL_INTERVAL",
        ),
        key("health", "listen", String, "GIFTD_HEALTH_LISTEN"),
        key("log", "format", String, "GIFTD_LOG_FORMAT"),
        key("log", "level", String, "GIFTD_LOG_LEVEL"),
    ]
};

/// `SUPABASE_KEY`, the name many Supabase tools give the key, is accepted for
/// `supabase.service_role_key` too.
pub const SUPABASE_KEY_ALIAS: &str = "SUPABASE_KEY";

/// A value as read, before resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    Integer(i64),
    Bool(bool),
    String(String),
    Secret(Secret),
}

/// One key's value and where it came from.
#[derive(Debug, Clone)]
pub struct Raw {
    pub value: RawValue,
    pub origin: Origin,
}

/// Phase one: what the file and the environment say, checked only for unknown keys and TOML
/// types.
#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    /// Values by dotted key (`telegram.api_id`).
    pub values: BTreeMap<String, Raw>,
    /// Sections present in the file, even empty (an empty `[supabase]` still selects Supabase).
    pub sections: Vec<String>,
}

impl RawConfig {
    /// Reads `text` (named `origin` in messages) and the environment through `env`.
    pub fn parse(
        text: &str,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RawConfig, ConfigError> {
        let doc = toml_edit::ImDocument::parse(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            line: line_of(text, e.span().map_or(0, |s| s.start)),
            message: e.message().trim_end().to_owned(),
        })?;
        let mut raw = RawConfig::default();
        let mut problems = Vec::new();
        let here = |span: Option<std::ops::Range<usize>>| Origin::File {
            name: origin.to_owned(),
            line: line_of(text, span.map_or(0, |s| s.start)),
        };

        for (section, item) in doc.iter() {
            let section_span = doc.get_key_value(section).and_then(|(k, _)| k.span());
            if !KEYS.iter().any(|k| k.section == section) {
                let sections = KEYS.iter().map(|k| k.section);
                problems.push(Problem {
                    key: section.to_owned(),
                    origin: Some(here(section_span)),
                    message: unknown("section", section, sections, |s| format!("[{s}]")),
                });
                continue;
            }
            let Some(table) = item.as_table_like() else {
                problems.push(Problem {
                    key: section.to_owned(),
                    origin: Some(here(section_span)),
                    message: format!("expected a table [{section}], found {}", item.type_name()),
                });
                continue;
            };
            raw.sections.push(section.to_owned());
            for (name, item) in table.iter() {
                let span = table.get_key_value(name).and_then(|(k, _)| k.span());
                let dotted = format!("{section}.{name}");
                let Some(spec) = KEYS.iter().find(|k| k.section == section && k.name == name)
                else {
                    let names = KEYS.iter().filter(|k| k.section == section).map(|k| k.name);
                    problems.push(Problem {
                        key: dotted,
                        origin: Some(here(span)),
                        message: unknown("key", name, names, |n| format!("{section}.{n}")),
                    });
                    continue;
                };
                match from_toml(spec.ty, item) {
                    Ok(value) => {
                        raw.values.insert(
                            dotted,
                            Raw {
                                value,
                                origin: here(span),
                            },
                        );
                    }
                    Err(message) => problems.push(Problem {
                        key: dotted,
                        origin: Some(here(span)),
                        message,
                    }),
                }
            }
        }

        let lookup = |var: &str| env(var).filter(|v| !v.is_empty());
        for spec in KEYS {
            let dotted = format!("{}.{}", spec.section, spec.name);
            let mut found = lookup(spec.env).map(|v| (spec.env, v));
            if spec.env == "SUPABASE_SERVICE_ROLE_KEY"
                && let Some(alias) = lookup(SUPABASE_KEY_ALIAS)
            {
                match &found {
                    Some((_, primary)) if *primary != alias => problems.push(Problem {
                        key: dotted.clone(),
                        origin: Some(Origin::Env(SUPABASE_KEY_ALIAS)),
                        message: format!(
                            "{SUPABASE_KEY_ALIAS} and {} are both set and differ: unset one",
                            spec.env
                        ),
                    }),
                    Some(_) => {}
                    None => found = Some((SUPABASE_KEY_ALIAS, alias)),
                }
            }
            let Some((var, text)) = found else { continue };
            let origin = Origin::Env(var);
            match from_env(spec.ty, text) {
                Ok(value) => {
                    raw.values.insert(dotted, Raw { value, origin });
                }
                Err(message) => problems.push(Problem {
                    key: dotted,
                    origin: Some(origin),
                    message,
                }),
            }
        }

        if problems.is_empty() {
            Ok(raw)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// Warnings for environment variables named like a setting of a known section
/// (`GIFTD_TELEGRAM_...`) that is not one, with the closest real name. Other `GIFTD_` variables
/// (`GIFTD_CONFIG`, test tooling's `GIFTD_TEST_*`) are not giftd settings and pass silently.
pub fn unknown_env_warnings<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut warnings = Vec::new();
    for name in names {
        let Some(rest) = name.strip_prefix("GIFTD_") else {
            continue;
        };
        if KEYS.iter().any(|k| k.env == name) {
            continue;
        }
        let Some(section) = KEYS.iter().map(|k| k.section).find(|s| {
            rest.strip_prefix(&s.to_uppercase())
                .is_some_and(|r| r.starts_with('_'))
        }) else {
            continue;
        };
        // Compare the key parts only: the shared `GIFTD_<SECTION>_` prefix would make every
        // name look close.
        let prefix = format!("GIFTD_{}_", section.to_uppercase());
        let key_part = &name[prefix.len()..];
        let known = KEYS
            .iter()
            .filter(|k| k.section == section)
            .filter_map(|k| k.env.strip_prefix(prefix.as_str()));
        let hint = unknown("setting", key_part, known, |k| format!("{prefix}{k}"));
        warnings.push(format!(
            "environment variable {name} is not a giftd setting and is ignored ({})",
            hint.trim_start_matches("unknown setting; ")
        ));
    }
    warnings.sort();
    warnings
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// "unknown key; did you mean `telegram.poll_interval`?" when a known name is close.
fn unknown<'a>(
    what: &str,
    name: &str,
    known: impl Iterator<Item = &'a str>,
    show: impl Fn(&str) -> String,
) -> String {
    let best = known
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, k)) => format!("unknown {what}; did you mean `{}`?", show(k)),
        None => format!("unknown {what}; see config.example.toml for every key"),
    }
}

fn from_toml(ty: KeyType, item: &toml_edit::Item) -> Result<RawValue, String> {
    let value = item.as_value();
    let found = || format!("found {}", item.type_name());
    Ok(match ty {
        KeyType::Integer => RawValue::Integer(
            value
                .and_then(|v| v.as_integer())
                .ok_or_else(|| format!("expected an integer, {}", found()))?,
        ),
        KeyType::Bool => RawValue::Bool(
            value
                .and_then(|v| v.as_bool())
                .ok_or_else(|| format!("expected true or false, {}", found()))?,
        ),
        KeyType::String => RawValue::String(
            value
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("expected a string, {}", found()))?
                .to_owned(),
        ),
        KeyType::Secret => RawValue::Secret(Secret::new(
            value
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("expected a string, {}", found()))?,
        )),
    })
}

fn from_env(ty: KeyType, text: String) -> Result<RawValue, String> {
    Ok(match ty {
        KeyType::Integer => RawValue::Integer(
            text.trim()
                .parse()
                .map_err(|_| format!("expected an integer, found {text:?}"))?,
        ),
        KeyType::Bool => RawValue::Bool(match text.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(format!("expected true or false, found {text:?}")),
        }),
        KeyType::String => RawValue::String(text),
        KeyType::Secret => RawValue::Secret(Secret::new(text)),
    })
}

impl Config {
    /// Reads the file at `path` and the process environment, and warns about `GIFTD_`
    /// variables that look like settings but are none ([`unknown_env_warnings`]).
    pub fn parse(path: &Path) -> Result<Config, ConfigError> {
        let mut config = Config::load(path, &|var| std::env::var(var).ok())?;
        let names: Vec<String> = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect();
        config
            .warnings
            .extend(unknown_env_warnings(names.iter().map(String::as_str)));
        Ok(config)
    }

    /// Reads the file at `path`, with environment lookups through `env`.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse_str(&text, &path.display().to_string(), env)
    }

    /// Reads `text` (named `origin` in messages) with environment lookups through `env`.
    pub fn parse_str(
        text: &str,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw = RawConfig::parse(text, origin, env)?;
        Config::resolve(raw, origin)
    }

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
        let telegram_session = in_state_dir(r.string("telegram.session_file"), "deposit.session");
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
        let bot = r.secret("bot.token").map(|token| BotConfig {
            token,
            session_file: bot_session,
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
        // Accepted so existing files keep loading; the mirror no longer waits to fill batches.
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

        let Resolver { problems, .. } = r;
        match (api_id, api_hash, store) {
            (Some(api_id), Some(api_hash), Some(store)) if problems.is_empty() => Ok(Config {
                source: origin.to_owned(),
                telegram: TelegramConfig {
                    // In range: `integer_in` checked 1..=i32::MAX.
                    api_id: i32::try_from(api_id).unwrap_or(i32::MAX),
                    api_hash,
                    session_file: telegram_session,
                    poll_interval,
                    reconcile_interval,
                    updates,
                    flood_wait_max,
                    update_buffer,
                },
                state_dir,
                bot,
                store,
                mirror,
                withdraw,
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
        let project_url = self.parsed("supabase.url", "an http(s) URL", http_url);
        let rest_url = self.parsed("supabase.rest_url", "an http(s) URL", http_url);
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
        Some(StoreConfig::Supabase(SupabaseConfig {
            rest_url: rest_url?,
            service_role_key: key?,
            request_timeout,
        }))
    }
}

/// An http or https URL with a host, without a trailing slash.
fn http_url(s: &str) -> Option<String> {
    let url = url::Url::parse(s).ok()?;
    let ok = matches!(url.scheme(), "http" | "https") && url.host().is_some();
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

#[cfg(test)]
mod tests {
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
            format!(
                "telegram.session_file = {}",
                c.telegram.session_file.display()
            ),
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
        ];
        match &c.bot {
            Some(b) => out.push(format!(
                "bot = token {} session {}",
                b.token,
                b.session_file.display()
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
             telegram.session_file = /var/lib/giftd/deposit.session
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
            "telegram.session_file = /srv/dep.session
             telegram.poll_interval = 2s
             telegram.reconcile_interval = 90m
             telegram.updates = false
             telegram.update_buffer = 10000
             telegram.flood_wait_max = 0s
             bot = token [redacted] session /srv/giftd/b.session
             store = supabase https://abc.supabase.co/rest/v1 key [redacted] timeout 1500ms
             mirror = batch 10 queue 20
             warning: mirror.flush_interval (config.toml line 21) is no longer used: the mirror writes a change at once \
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
             telegram.session_file = state/deposit.session
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
             bot = token [redacted] session /var/lib/giftd/bot.session
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
            "error: supabase.url (config.toml line 6): expected an http(s) URL, found \"p.supabase.co\"",
        );
        check(
            &with("url = \"ftp://p.supabase.co\""),
            &[],
            "error: supabase.url (config.toml line 6): expected an http(s) URL, found \"ftp://p.supabase.co\"",
        );
        check(
            &format!(
                "{MINIMAL}[store]\nsqlite_path = \"x.db\"\n[supabase]\nrest_url = \"http://h\"\nservice_role_key = \"k\"\n"
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
}
