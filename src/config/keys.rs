//! The table of every configuration key ([`KEYS`]): its section, name, TOML type and the
//! environment variable that overrides it. Documentation and `config.example.toml` are checked
//! against it.

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
        key("bot", "admins", String, "GIFTD_BOT_ADMINS"),
        key("bot", "chat_burst", Integer, "GIFTD_BOT_CHAT_BURST"),
        key(
            "bot",
            "undelivered_max_age",
            String,
            "GIFTD_BOT_UNDELIVERED_MAX_AGE",
        ),
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
        key(
            "supabase",
            "listen_url",
            Secret,
            "GIFTD_SUPABASE_LISTEN_URL",
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
            "resend_hold",
            String,
            "GIFTD_WITHDRAW_RESEND_HOLD",
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
        key("lease", "ttl", String, "GIFTD_LEASE_TTL"),
        key("lease", "renew_every", String, "GIFTD_LEASE_RENEW_EVERY"),
        key("lease", "instance", String, "GIFTD_LEASE_INSTANCE"),
        key("health", "listen", String, "GIFTD_HEALTH_LISTEN"),
        key("log", "format", String, "GIFTD_LOG_FORMAT"),
        key("log", "level", String, "GIFTD_LOG_LEVEL"),
    ]
};

/// The keys of an `[account.NAME]` section (one per deposit account). They have no environment
/// variables: the accounts are listed in the file.
pub const ACCOUNT_KEYS: &[(&str, KeyType)] = &[("session_file", KeyType::String)];

/// `SUPABASE_KEY`, the name many Supabase tools give the key, is accepted for
/// `supabase.service_role_key` too.
pub const SUPABASE_KEY_ALIAS: &str = "SUPABASE_KEY";
