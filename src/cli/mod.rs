//! The command line: what `giftd <command>` parses and runs.
//!
//! This is the binary's edge, kept in the library so tests can run commands without spawning a
//! process: errors here are `anyhow` errors with context, printed by `main` with `{:#}`. Each
//! command writes its report to the writer it is given. The process environment is read only by
//! clap (`GIFTD_CONFIG`) and by [`run`]; tests call [`run_with_env`] with a fixed one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

mod link;
mod withdrawals;

use crate::config::{self, Config, ConfigError, DEFAULT_ACCOUNT, DEFAULT_CONFIG_PATH, StoreConfig};
use crate::gift::{Item, Owner, UserId};
use crate::store::{self, StoreError};

/// giftd: credits Telegram Star Gifts sent to a deposit account to their senders, mirrors the
/// inventory to a store and lets players withdraw through a companion bot.
#[derive(Debug, Parser)]
#[command(name = "giftd", version, propagate_version = true)]
pub struct Cli {
    /// The configuration file (see config.example.toml for every key).
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "GIFTD_CONFIG",
        default_value = DEFAULT_CONFIG_PATH
    )]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration and the store, one line per check.
    ///
    /// Validates the configuration file and the environment, checks that the state directory is
    /// writable and that the deposit account's session file exists and is private, opens the store (the embedded SQLite file or Supabase), checks that its schema is the version this giftd expects and
    /// that giftd may write to it. Prints `ok` or `FAIL` per check with what to do, and exits
    /// non-zero when any check fails. Run it after every configuration change and before
    /// starting the service.
    Check,

    /// Print the SQL of the store's migrations, in the order they apply.
    ///
    /// These are the files of supabase/migrations, embedded in the binary: pipe the output to
    /// `psql` to prepare a Supabase or PostgreSQL database by hand (or use `supabase db push`
    /// from a checkout). The embedded SQLite store migrates itself. Needs no configuration.
    Schema,

    /// Run the daemon: detect gifts, credit them, mirror the inventory to the store.
    ///
    /// Connects to Telegram as the deposit account (the session written by `giftd login`),
    /// loads the inventory from the store, reconciles it with every gift Telegram lists (so
    /// gifts that arrived while giftd was down are credited), reports ready, then watches
    /// real-time updates, polls the newest gifts every `poll_interval` and reconciles fully
    /// every `reconcile_interval`. SIGTERM or SIGINT stops it cleanly: intake stops, queued
    /// changes are written, the session is closed, exit status 0. Under systemd it speaks the
    /// notify protocol (READY=1, WATCHDOG=1); /healthz, /readyz and /metrics are served on
    /// `[health] listen`.
    Run,

    /// Sign the deposit account in and write its session file.
    ///
    /// Asks Telegram for a login code, then for the 2FA password when the account has one.
    /// Interactive on a terminal; give `--phone` and the GIFTD_LOGIN_CODE and
    /// GIFTD_LOGIN_PASSWORD variables to run it without one (secrets never on the command line,
    /// where `ps` and shell history keep them): without a terminal and without a code it asks
    /// Telegram for a code and stops, and the next `giftd login --phone ...` with
    /// GIFTD_LOGIN_CODE signs in with that code (within its lifetime); a login that needs the
    /// 2FA password and was given none stops too, and the next one needs only `--phone` and
    /// GIFTD_LOGIN_PASSWORD. The session file is written only when the sign-in succeeds, with
    /// mode 0600. An existing unauthorised session file (for example one from `tgsim
    /// provision`) is used as the starting point.
    Login {
        /// Which deposit account to sign in (its `[account.NAME]` section); needed when the
        /// configuration lists several.
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
        /// The account's phone number, with country code (+44...).
        #[arg(long, env = "GIFTD_LOGIN_PHONE")]
        phone: Option<String>,
    },

    /// Watch giftd work, with nothing to set up: a newcomer's first command.
    ///
    /// Starts tgsim (the Telegram simulator) in this process, provisions a deposit account and
    /// three players, runs the real daemon against the embedded store, has the players send a
    /// regular gift, a collectible, an anonymous gift and a burst, shows what giftd credits as
    /// it happens, prints the final inventory per player, shows a player withdrawing a gift through
    /// the companion bot (/inventory, Withdraw, Confirm: what the player sees) and stops giftd
    /// cleanly.
    Demo {
        /// Where the demo keeps its session file and SQLite store (default: a new temporary
        /// directory).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// How many gifts the burst sends.
        #[arg(long, default_value_t = 200)]
        burst: usize,
    },

    /// List the items the store holds, as a table.
    ///
    /// Give one of: `--account ID` for everything one deposit account holds, `--owner ID` for
    /// the items credited to one Telegram user, `--unattributed` for the anonymous gifts waiting
    /// for an operator to assign them. Lists items still in a deposit account (held, withdrawal
    /// requested, withdrawing), oldest first, with a total.
    #[command(group = clap::ArgGroup::new("which").required(true).multiple(false))]
    Inventory {
        /// The items one deposit account holds (its Telegram user id).
        #[arg(long, value_name = "ID", group = "which")]
        account: Option<UserId>,
        /// The items credited to this Telegram user id, in every deposit account.
        #[arg(long, value_name = "ID", group = "which")]
        owner: Option<UserId>,
        /// The items nobody is credited with yet (anonymous gifts waiting for an operator).
        #[arg(long, group = "which")]
        unattributed: bool,
    },

    /// See and steer withdrawal requests (the players' gifts going back to them).
    ///
    /// `list` shows the queue as a table (waiting for approval, blocked on Stars, unknown
    /// outcomes...), `show ID` one request in full, `approve ID` lets one above the fee caps or
    /// the daily budget go (or hands back one whose retries are spent), `retry ID` sends a
    /// waiting one back to the queue now (after topping up Stars), `cancel ID` cancels one
    /// nothing was sent for yet, `request` asks for a player's held item as they would. A
    /// running `giftd run` picks the changes up within `withdraw.poll_interval`.
    Withdrawals {
        #[command(subcommand)]
        action: withdrawals::Action,
    },

    /// Mint a link token that links a web account to a player's Telegram account.
    ///
    /// The web account is the Supabase auth user id (a uuid: `auth.uid()`, the JWT's `sub`).
    /// Prints the token once (only its SHA-256 is stored) and the deep link
    /// `https://t.me/<bot>?start=<token>`: the player opens it, the companion bot shows the
    /// label and asks, and the player's Link links the two; from then on the web app's session
    /// for that account reads the player's gifts. giftd does not know the bot's username
    /// offline: pass `--bot`, or put it in the link yourself. Single use; replacing the
    /// player's link to another web account needs their second confirmation.
    /// The web app mints its own tokens with the `request_link_token` RPC.
    LinkToken {
        /// The web account (Supabase auth user id, a uuid).
        #[arg(long, value_name = "UUID")]
        web_user: crate::store::WebUserId,
        /// What the player is shown before confirming the link: the web account's masked
        /// e-mail or phone (1 to 64 characters), e.g. `a•••@example.com`.
        #[arg(long, value_name = "TEXT", value_parser = link::parse_label)]
        label: crate::store::LinkLabel,
        /// How long the token stays valid (1m to 24h).
        #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = link::parse_ttl)]
        ttl: std::time::Duration,
        /// The companion bot's username, to print the whole link.
        #[arg(long, value_name = "USERNAME", value_parser = link::parse_bot)]
        bot: Option<String>,
    },
}

/// The environment a command sees.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// Variable lookups, for the configuration's overrides (as [`Config::parse_str`] takes them).
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    /// The names of the variables set, so `giftd check` can warn about misspelt `GIFTD_` ones.
    pub names: &'a [String],
}

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values may be secrets.
        f.debug_struct("Env").field("names", &self.names).finish()
    }
}

/// Runs a parsed command line, writing its report to `out`, with the process environment.
pub async fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .collect();
    let lookup = |var: &str| std::env::var(var).ok();
    let env = Env {
        lookup: &lookup,
        names: &names,
    };
    run_with_env(cli, out, env).await
}

/// [`run`] with environment lookups through `env` (tests pass a fixed environment).
pub async fn run_with_env(cli: Cli, out: &mut dyn Write, env: Env<'_>) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check => check(&cli.config, env, out).await,
        Command::Run => run_daemon(&cli.config, env).await,
        Command::Login { account, phone } => {
            // Secrets from the environment only: a flag would show in `ps` and shell history.
            let code = (env.lookup)("GIFTD_LOGIN_CODE").filter(|c| !c.is_empty());
            let password = (env.lookup)("GIFTD_LOGIN_PASSWORD").filter(|p| !p.is_empty());
            login(&cli.config, env, account, phone, code, password, out).await
        }
        Command::Demo { state_dir, burst } => demo(state_dir, burst, out).await,
        Command::Schema => schema(out),
        Command::Withdrawals { action } => withdrawals::run(&cli.config, env, action, out).await,
        Command::LinkToken {
            web_user,
            label,
            ttl,
            bot,
        } => link::run(&cli.config, env, web_user, &label, ttl, bot, out).await,
        Command::Inventory {
            account,
            owner,
            unattributed,
        } => {
            let which = match (account, owner, unattributed) {
                (Some(account), _, _) => Which::Account(account),
                (None, Some(user), _) => Which::Owner(Owner::User(user)),
                // clap requires exactly one of the three.
                (None, None, _) => Which::Owner(Owner::Unattributed),
            };
            inventory(&cli.config, env, which, out).await
        }
    }
}

/// What to do about a configuration that does not load.
fn config_advice(e: &ConfigError) -> String {
    match e {
        ConfigError::Read { source, .. } => format!(
            "{e}: {source}: pass --config PATH or set GIFTD_CONFIG (config.example.toml \
             documents every key)"
        ),
        _ => e.to_string(),
    }
}

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

fn describe_store(store: &StoreConfig) -> String {
    match store {
        StoreConfig::Embedded(e) => format!("sqlite {}", e.path.display()),
        StoreConfig::Supabase(s) => format!("supabase {}", s.rest_url),
    }
}

/// `giftd check`: configuration, state directory, session file, store reachable, schema version,
/// write permission.
async fn check(path: &Path, env: Env<'_>, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
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

/// `giftd schema`: the migrations' SQL, in order, each under a comment naming its file.
fn schema(out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    for (name, sql) in store::migrations() {
        writeln!(out, "-- supabase/migrations/{name}")?;
        out.write_all(sql.as_bytes())?;
        if !sql.ends_with('\n') {
            writeln!(out)?;
        }
        writeln!(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Which items `giftd inventory` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Account(UserId),
    Owner(Owner),
}

/// The store the configuration at `path` names, opened and with its schema checked: what the
/// commands that read or steer the store start with.
async fn open_store(path: &Path, env: Env<'_>) -> anyhow::Result<std::sync::Arc<dyn store::Store>> {
    let config = Config::load(path, env.lookup).map_err(|e| anyhow::anyhow!(config_advice(&e)))?;
    let store = store::open_shared(&config.store)
        .await
        .with_context(|| format!("cannot open the store ({})", describe_store(&config.store)))?;
    store
        .check_schema()
        .await
        .context("the store's schema does not match this giftd")?;
    Ok(store)
}

/// `giftd inventory`: a table of the items the store holds.
async fn inventory(
    path: &Path,
    env: Env<'_>,
    which: Which,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let store = open_store(path, env).await?;
    let mut items = match which {
        Which::Account(account) => store.load_items(account).await,
        Which::Owner(owner) => store.list_owner(owner).await,
    }
    .context("cannot read the inventory from the store")?;
    items.sort_by_key(|i| (i.received_at, i.key));
    out.write_all(render_table(&items).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The inventory as an aligned text table with a total line.
fn render_table(items: &[Item]) -> String {
    const HEADER: [&str; 8] = [
        "ITEM",
        "OWNER",
        "STATUS",
        "GIFT",
        "STARS",
        "COLLECTIBLE",
        "RECEIVED (UTC)",
        "TRANSFER",
    ];
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                i.key.to_string(),
                i.owner.to_string(),
                i.status.to_string(),
                i.gift_id.to_string(),
                i.stars.to_string(),
                i.unique
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |u| format!("{} #{}", u.slug, u.number)),
                utc(i.received_at),
                match i.transfer_stars {
                    Some(stars) => format!("{stars} stars"),
                    None => "free".to_owned(),
                },
            ]
        })
        .collect();
    // Stars right-aligned, the rest left-aligned.
    let mut s = aligned(&HEADER, &rows, &[4]);
    let stars: i64 = items.iter().map(|i| i.stars).sum();
    let noun = if items.len() == 1 { "item" } else { "items" };
    s.push_str(&format!("{} {noun}, {stars} stars\n", items.len()));
    s
}

/// Rows under a header, each column as wide as its widest cell, two spaces apart; the columns
/// whose index is in `right` right-aligned (numbers), the others left-aligned.
fn aligned(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (n, (cell, &w)) in cells.zip(&widths).enumerate() {
            if n > 0 {
                l.push_str("  ");
            }
            if right.contains(&n) {
                l.push_str(&format!("{cell:>w$}"));
            } else {
                l.push_str(&format!("{cell:<w$}"));
            }
        }
        s.push_str(l.trim_end());
        s.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    s
}

pub(crate) use crate::utc::utc;

/// `giftd run`.
async fn run_daemon(path: &Path, env: Env<'_>) -> anyhow::Result<ExitCode> {
    let config = Config::load(path, env.lookup).map_err(|e| anyhow::anyhow!(config_advice(&e)))?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let signals = tokio::spawn(stop_on_signal(shutdown.clone()));
    let result = crate::app::Daemon::new().run(&config, shutdown).await;
    signals.abort();
    result.context("giftd stopped")?;
    Ok(ExitCode::SUCCESS)
}

/// Cancels `shutdown` on SIGTERM (systemd) or SIGINT (Ctrl-C).
async fn stop_on_signal(shutdown: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install the SIGTERM/SIGINT handlers; stop giftd with SIGKILL");
        return;
    };
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = which,
        "stopping: intake first, then the queued changes"
    );
    shutdown.cancel();
}

/// Answers from flags first, then the terminal.
struct TerminalPrompt {
    code: Option<String>,
    password: Option<String>,
    interactive: bool,
}

impl crate::telegram::login::Prompt for TerminalPrompt {
    fn code(
        &mut self,
        attempt: u32,
    ) -> Result<crate::secret::Secret, crate::telegram::login::LoginError> {
        if attempt == 1
            && let Some(code) = self.code.take()
        {
            return Ok(crate::secret::Secret::new(code));
        }
        if !self.interactive {
            return Err(crate::telegram::login::LoginError::NoInput {
                what: "the login code",
                hint: "give it to the next `giftd login` in GIFTD_LOGIN_CODE, or run giftd \
                       login on a terminal",
            });
        }
        eprint!("login code Telegram sent: ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|_| {
            crate::telegram::login::LoginError::NoInput {
                what: "the login code",
                hint: "standard input could not be read",
            }
        })?;
        Ok(crate::secret::Secret::new(line.trim()))
    }

    fn password(
        &mut self,
        hint: Option<&str>,
        attempt: u32,
    ) -> Result<crate::secret::Secret, crate::telegram::login::LoginError> {
        if attempt == 1
            && let Some(password) = self.password.take()
        {
            return Ok(crate::secret::Secret::new(password));
        }
        if !self.interactive {
            return Err(crate::telegram::login::LoginError::NoInput {
                what: "the 2FA password",
                hint: "give it to the next `giftd login` in GIFTD_LOGIN_PASSWORD, or run giftd \
                       login on a terminal",
            });
        }
        let prompt = match hint {
            Some(h) => format!("2FA password (hint: {h}): "),
            None => "2FA password: ".to_owned(),
        };
        rpassword::prompt_password(prompt)
            .map(crate::secret::Secret::new)
            .map_err(|_| crate::telegram::login::LoginError::NoInput {
                what: "the 2FA password",
                hint: "the terminal could not be read",
            })
    }
}

/// `giftd login`.
async fn login(
    path: &Path,
    env: Env<'_>,
    account: Option<String>,
    phone: Option<String>,
    code: Option<String>,
    password: Option<String>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal as _;
    let config = Config::load(path, env.lookup).map_err(|e| anyhow::anyhow!(config_advice(&e)))?;
    let account = config
        .account(account.as_deref())
        .map_err(anyhow::Error::msg)?;
    let interactive = std::io::stdin().is_terminal();
    let phone = match phone {
        Some(p) => p,
        None if interactive => {
            eprint!("phone number of the deposit account (+44...): ");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim().to_owned()
        }
        None => anyhow::bail!("no phone number: pass --phone (or GIFTD_LOGIN_PHONE)"),
    };
    let opts = crate::telegram::login::LoginOptions {
        session_file: account.session_file.clone(),
        api_id: config.telegram.api_id,
        api_hash: config.telegram.api_hash.clone(),
        phone,
        attempts: if interactive { 3 } else { 1 },
    };
    let mut prompt = TerminalPrompt {
        code,
        password,
        interactive,
    };
    let user = crate::telegram::login::login(&opts, &mut prompt)
        .await
        .context("login failed")?;
    writeln!(
        out,
        "signed in as {}{} (user id {}); session written to {}",
        user.first_name.as_deref().unwrap_or(""),
        user.username
            .as_deref()
            .map(|u| format!(" @{u}"))
            .unwrap_or_default(),
        user.user_id,
        opts.session_file.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `giftd demo`.
async fn demo(
    state_dir: Option<PathBuf>,
    burst: usize,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let state_dir = state_dir
        .unwrap_or_else(|| std::env::temp_dir().join(format!("giftd-demo-{}", std::process::id())));
    let opts = crate::demo::DemoOptions { state_dir, burst };
    crate::demo::run(&opts, out)
        .await
        .context("the demo failed")?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// Runs `args` (after `giftd`) with `config_text` in a temporary config file whose state
    /// directory is a temporary directory, and an environment holding only `env`. Returns the
    /// exit code and what the command wrote, with the temporary directory shown as `<tmp>`.
    async fn run_cli(
        config_text: Option<&str>,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> (bool, String) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let tmp = dir.path().display().to_string();
        let config_path = dir.path().join("config.toml");
        // The deposit account's session, as `giftd login` leaves it (its content is not read).
        write_private(&dir.path().join("deposit.session"));
        if let Some(text) = config_text {
            std::fs::write(&config_path, text.replace("<tmp>", &tmp)).expect("write config");
        }
        let mut argv = vec!["giftd", "--config"];
        let config_arg = config_path.display().to_string();
        argv.push(&config_arg);
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("valid command line");
        let mut out = Vec::new();
        let lookup = |var: &str| {
            env.iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| (*v).to_owned())
        };
        let names: Vec<String> = env.iter().map(|(k, _)| (*k).to_owned()).collect();
        let env = Env {
            lookup: &lookup,
            names: &names,
        };
        let code = run_with_env(cli, &mut out, env).await;
        let text = String::from_utf8(out).expect("utf-8 output");
        match code {
            Ok(code) => (code == ExitCode::SUCCESS, text.replace(&tmp, "<tmp>")),
            Err(e) => (false, format!("{text}error: {e:#}").replace(&tmp, "<tmp>")),
        }
    }

    fn write_private(path: &Path) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::write(path, b"").expect("write session file");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod session file");
    }

    const EMBEDDED: &str =
        "[telegram]\napi_id = 1\napi_hash = \"h\"\n[store]\nstate_dir = \"<tmp>\"\n";

    #[track_caller]
    fn check(got: (bool, String), success: bool, expected: &str) {
        let want: Vec<&str> = expected.lines().map(str::trim_end).collect();
        let want = want.join("\n").trim().to_owned();
        assert_eq!(got.1.trim(), want, "output");
        assert_eq!(got.0, success, "exit status of:\n{}", got.1);
    }

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
    async fn login_needs_an_account_name_when_several_are_configured() {
        let config = format!("{EMBEDDED}[account.main]\n[account.spare]\n");
        let (ok, out) = run_cli(Some(&config), &[], &["login", "--phone", "+1"]).await;
        assert!(!ok, "{out}");
        assert_eq!(
            out,
            "error: several deposit accounts are configured (main, spare): choose one with \
             --account NAME"
        );
        let (ok, out) = run_cli(
            Some(&config),
            &[],
            &["login", "--account", "spar", "--phone", "+1"],
        )
        .await;
        assert!(!ok, "{out}");
        assert_eq!(
            out,
            "error: no deposit account \"spar\" in <tmp>/config.toml: the configured ones are \
             main, spare"
        );
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

    #[tokio::test]
    async fn schema_prints_every_migration_in_order() {
        let (ok, out) = run_cli(None, &[], &["schema"]).await;
        assert!(ok);
        let mut at = 0;
        for (name, sql) in store::migrations() {
            let header = format!("-- supabase/migrations/{name}\n");
            let found = out[at..].find(&header).map(|i| i + at);
            let Some(start) = found else {
                panic!("{header} missing or out of order");
            };
            assert!(out[start + header.len()..].starts_with(*sql));
            at = start + header.len();
        }
    }

    #[tokio::test]
    async fn inventory_of_an_empty_store() {
        check(
            run_cli(Some(EMBEDDED), &[], &["inventory", "--owner", "42"]).await,
            true,
            "ITEM  OWNER  STATUS  GIFT  STARS  COLLECTIBLE  RECEIVED (UTC)  TRANSFER
             0 items, 0 stars"
                .replace("\n             ", "\n")
                .as_str(),
        );
    }

    #[tokio::test]
    async fn inventory_with_a_bad_config_fails_with_the_problem() {
        let (ok, out) = run_cli(
            Some("[telegram]\napi_id = 1\n"),
            &[],
            &["inventory", "--unattributed"],
        )
        .await;
        assert!(!ok);
        assert_eq!(
            out,
            "error: telegram.api_hash: missing: set it in the file or in TELEGRAM_API_HASH (get it from https://my.telegram.org)"
        );
    }

    #[test]
    fn command_line() {
        Cli::command().debug_assert();
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("giftd").chain(args.iter().copied()))
                .map(|c| format!("{:?} {:?}", c.config, c.command))
                .map_err(|e| e.kind())
        };
        use clap::error::ErrorKind;
        // Secrets never on the command line (`ps`, shell history): the login code and the 2FA
        // password come from the environment or the terminal only.
        for secret in ["--code", "--password"] {
            assert_eq!(
                parse(&["login", "--phone", "+15550123", secret, "12345"]),
                Err(ErrorKind::UnknownArgument),
                "{secret}"
            );
        }
        assert_eq!(
            parse(&["check"]),
            Ok("\"/etc/giftd/config.toml\" Check".to_owned())
        );
        assert_eq!(
            parse(&["schema", "--config", "/x.toml"]),
            Ok("\"/x.toml\" Schema".to_owned())
        );
        assert_eq!(
            parse(&["inventory", "--owner", "7"]),
            Ok("\"/etc/giftd/config.toml\" Inventory { account: None, owner: Some(7), unattributed: false }".to_owned())
        );
        assert_eq!(
            parse(&["inventory"]),
            Err(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            parse(&["inventory", "--owner", "7", "--unattributed"]),
            Err(ErrorKind::ArgumentConflict)
        );
        assert_eq!(
            parse(&["inventory", "--owner", "x"]),
            Err(ErrorKind::ValueValidation)
        );
        assert_eq!(parse(&["frobnicate"]), Err(ErrorKind::InvalidSubcommand));
    }

    #[test]
    fn help_explains_every_command() {
        // Each command's one-line summary, as `giftd --help` lists it. A doc comment that slides
        // onto the wrong variant (or a command without one) shows up here.
        let expected = [
            (
                "check",
                "Check the configuration and the store, one line per check",
            ),
            (
                "schema",
                "Print the SQL of the store's migrations, in the order they apply",
            ),
            (
                "run",
                "Run the daemon: detect gifts, credit them, mirror the inventory to the store",
            ),
            (
                "login",
                "Sign the deposit account in and write its session file",
            ),
            (
                "demo",
                "Watch giftd work, with nothing to set up: a newcomer's first command",
            ),
            ("inventory", "List the items the store holds, as a table"),
            (
                "withdrawals",
                "See and steer withdrawal requests (the players' gifts going back to them)",
            ),
            (
                "link-token",
                "Mint a link token that links a web account to a player's Telegram account",
            ),
        ];
        let cmd = Cli::command();
        let got: Vec<(String, String)> = cmd
            .get_subcommands()
            .map(|sub| {
                let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
                (sub.get_name().to_owned(), about)
            })
            .collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(n, a)| ((*n).to_owned(), (*a).to_owned()))
            .collect();
        assert_eq!(got, expected);
        for sub in cmd.get_subcommands() {
            let long = sub
                .get_long_about()
                .map(|a| a.to_string())
                .unwrap_or_default();
            assert!(
                long.len() > 100,
                "`giftd {} --help` should explain the command, not only name it",
                sub.get_name()
            );
        }
    }

    #[test]
    fn tables() {
        let item = |msg_id, owner, stars, unique: bool| Item {
            key: crate::gift::ItemKey::new(100, msg_id),
            owner,
            gift_id: 5,
            stars,
            unique: unique.then(|| {
                Box::new(crate::gift::UniqueInfo {
                    collectible_id: 9,
                    slug: "PlushPepe-12".to_owned(),
                    number: 12,
                    value: Default::default(),
                })
            }),
            status: crate::gift::Status::Held,
            received_at: 1_700_000_000,
            convert_stars: None,
            transfer_stars: unique.then_some(25),
            can_transfer_at: None,
            upgraded_from: None,
        };
        assert_eq!(
            render_table(&[
                item(1, Owner::User(42), 15, false),
                item(22, Owner::Unattributed, 2500, true)
            ]),
            "ITEM    OWNER         STATUS  GIFT  STARS  COLLECTIBLE       RECEIVED (UTC)    TRANSFER
100/1   42            held    5        15  -                 2023-11-14 22:13  free
100/22  unattributed  held    5      2500  PlushPepe-12 #12  2023-11-14 22:13  25 stars
2 items, 2515 stars
"
        );
    }

    #[test]
    fn utc_dates() {
        for (unix, want) in [
            (0, "1970-01-01 00:00"),
            (951_782_400, "2000-02-29 00:00"),
            (1_700_000_000, "2023-11-14 22:13"),
            (-60, "1969-12-31 23:59"),
            (4_102_444_799, "2099-12-31 23:59"),
        ] {
            assert_eq!(utc(unix), want, "{unix}");
        }
    }
}
