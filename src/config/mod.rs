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
//!
//! The module is laid out by phase: [`keys`] is the table of every key, [`raw`] phase one,
//! [`resolve`] phase two; this file holds the resolved types and the errors.
//!
//! The top-level [`Config`] has no `Default` (the Telegram credentials have none); small tuning
//! structs (`MirrorConfig`, `HealthConfig`, `LogConfig`) do, each default documented on its field.
//! Cross-key rules include: no `[supabase]` section means the embedded store; a key whose JWT role
//! is `anon` is refused. The resolved `StoreConfig` is what `store::open` takes.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;

mod keys;
mod raw;
mod resolve;

pub use keys::{ACCOUNT_KEYS, KEYS, KeySpec, KeyType, SUPABASE_KEY_ALIAS};
pub use raw::{
    ACCOUNT_SECTION, Raw, RawConfig, RawValue, unknown_env_warnings, valid_account_name,
};
pub use resolve::{parse_duration, show_duration};

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
    /// The deposit accounts this daemon serves, in the file's order; never empty. A file
    /// without `[account.NAME]` sections has one, named `deposit`, whose session file is
    /// `telegram.session_file`.
    pub accounts: Vec<AccountConfig>,
    /// The companion bot; `None` when no `bot.token` is configured.
    pub bot: Option<BotConfig>,
    pub store: StoreConfig,
    pub mirror: MirrorConfig,
    pub withdraw: WithdrawConfig,
    /// Account and bot leases, used with the Supabase store (several instances may share it).
    pub lease: crate::term::LeaseTimes,
    /// `lease.instance`: this instance's identity in lease rows, stable across restarts. `None`:
    /// the one kept in `<state_dir>/instance-id` (the lease keeper's `identity`).
    pub instance: Option<String>,
    pub health: HealthConfig,
    pub log: LogConfig,
    /// Things that are allowed but probably not what the operator meant (a Supabase key in the
    /// environment with no Supabase URL, say). `giftd check` prints them.
    pub warnings: Vec<String>,
}

/// One deposit account: a name for operators and a session file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountConfig {
    /// `[account.NAME]`: 1 to 32 lowercase letters, digits, `-` or `_`. Names the account in
    /// logs, `/readyz`, metrics, `giftd check` and `giftd login --account NAME`.
    pub name: String,
    /// The account's session file, written by `giftd login --account NAME`. Default
    /// `<state_dir>/<name>.session`.
    pub session_file: PathBuf,
}

/// The name of the one account of a configuration without `[account.NAME]` sections.
pub const DEFAULT_ACCOUNT: &str = "deposit";

/// The MTProto settings every deposit account shares.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// `api_id` from <https://my.telegram.org>.
    pub api_id: i32,
    /// `api_hash` from <https://my.telegram.org>.
    pub api_hash: Secret,
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
    /// `bot.admins`: Telegram user ids of the operators, who get `/admin` (comma-separated in
    /// the file and in `GIFTD_BOT_ADMINS`). Default none.
    pub admins: Vec<i64>,
    /// `bot.chat_burst`: messages the bot sends to one chat at once before keeping to one per
    /// 1.05 s (Telegram tolerates short bursts over one a second). 1 to 3; default 3.
    pub chat_burst: u32,
    /// `bot.undelivered_max_age`: a notification a player could not get (they had not started
    /// the bot) is sent when they start it if it is at most this old. Default 3 days, at most 7
    /// (the outbox gives up on older ones).
    pub undelivered_max_age: Duration,
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
    /// A direct PostgreSQL connection URL (it holds a password) on which giftd LISTENs for
    /// new withdrawal requests, so they are picked up at once; without it, at the worker's
    /// next poll. Optional: PostgREST is giftd's only way to the data either way.
    pub listen_url: Option<Secret>,
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
    /// How old a regular gift must be before it is bought again for its player: Telegram may
    /// still refund the sender's payment (the gift is then taken back, and a resend would have
    /// paid for nothing). Default 24 h.
    pub resend_hold: Duration,
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
            resend_hold: Duration::from_secs(24 * 3600),
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

impl Config {
    /// The account `giftd login --account NAME` means: `name`, or the only one when `None`.
    /// The error says which names there are.
    pub fn account(&self, name: Option<&str>) -> Result<&AccountConfig, String> {
        let names = || {
            self.accounts
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (name, self.accounts.as_slice()) {
            (None, [one]) => Ok(one),
            (None, _) => Err(format!(
                "several deposit accounts are configured ({}): choose one with --account NAME",
                names()
            )),
            (Some(name), accounts) => accounts.iter().find(|a| a.name == name).ok_or_else(|| {
                format!(
                    "no deposit account {name:?} in {}: the configured ones are {}",
                    self.source,
                    names()
                )
            }),
        }
    }

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
}

#[cfg(test)]
mod tests;
