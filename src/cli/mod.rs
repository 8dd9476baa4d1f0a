//! The command line: what `giftd <command>` parses and runs.
//!
//! This is the binary's edge, kept in the library so tests can run commands without spawning a
//! process: errors here are `anyhow` errors with context, printed by `main` with `{:#}` (`anyhow`
//! is used here and in `main.rs` only; library modules return `thiserror` enums callers can
//! branch on). Each command writes its report to the writer it is given. The process environment
//! is read only by clap (`GIFTD_CONFIG`) and by [`run`]; tests call [`run_with_env`] with a fixed
//! one.
//!
//! This file holds the arguments (clap derive), the dispatch and what several commands share
//! (opening the store, aligned tables); each command's body is in its own file: `check.rs`,
//! `schema.rs`, `daemon.rs` (`giftd run`), `login.rs`, `demo.rs`, `inventory.rs`,
//! `withdrawals.rs`, `link.rs` (`giftd link-token`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

mod check;
mod daemon;
mod demo;
mod inventory;
mod link;
mod login;
mod schema;
mod withdrawals;

use crate::config::{Config, ConfigError, DEFAULT_CONFIG_PATH, StoreConfig};
use crate::gift::{Owner, UserId};
use crate::store;

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
        Command::Check => check::run(&cli.config, env, out).await,
        Command::Run => daemon::run(&cli.config, env).await,
        Command::Login { account, phone } => {
            // Secrets from the environment only: a flag would show in `ps` and shell history.
            let code = (env.lookup)("GIFTD_LOGIN_CODE").filter(|c| !c.is_empty());
            let password = (env.lookup)("GIFTD_LOGIN_PASSWORD").filter(|p| !p.is_empty());
            login::run(&cli.config, env, account, phone, code, password, out).await
        }
        Command::Demo { state_dir, burst } => demo::run(state_dir, burst, out).await,
        Command::Schema => schema::run(out),
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
            use inventory::Which;
            let which = match (account, owner, unattributed) {
                (Some(account), _, _) => Which::Account(account),
                (None, Some(user), _) => Which::Owner(Owner::User(user)),
                // clap requires exactly one of the three.
                (None, None, _) => Which::Owner(Owner::Unattributed),
            };
            inventory::run(&cli.config, env, which, out).await
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

fn describe_store(store: &StoreConfig) -> String {
    match store {
        StoreConfig::Embedded(e) => format!("sqlite {}", e.path.display()),
        StoreConfig::Supabase(s) => format!("supabase {}", s.rest_url),
    }
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
#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// Runs `args` (after `giftd`) with `config_text` in a temporary config file whose state
    /// directory is a temporary directory, and an environment holding only `env`. Returns the
    /// exit code and what the command wrote, with the temporary directory shown as `<tmp>`.
    pub(super) async fn run_cli(
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

    pub(super) const EMBEDDED: &str =
        "[telegram]\napi_id = 1\napi_hash = \"h\"\n[store]\nstate_dir = \"<tmp>\"\n";

    #[track_caller]
    pub(super) fn check(got: (bool, String), success: bool, expected: &str) {
        let want: Vec<&str> = expected.lines().map(str::trim_end).collect();
        let want = want.join("\n").trim().to_owned();
        assert_eq!(got.1.trim(), want, "output");
        assert_eq!(got.0, success, "exit status of:\n{}", got.1);
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
