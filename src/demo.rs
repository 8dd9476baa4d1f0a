//! `giftd demo`: the whole daemon on one machine, with nothing to set up.
//!
//! Starts tgsim (the Telegram simulator) in-process, provisions a deposit account and a few
//! players, writes the deposit account's session file, runs the real daemon with an ordinary
//! configuration against the embedded store, has the players send gifts (regular, unique, one
//! with "hide my name", a burst) and Telegram deliver a collectible with no sender, prints what
//! giftd credits as it happens, then the final inventory per player; then a player talks to the
//! companion bot (/inventory, Withdraw, Confirm) and the demo prints what the player sees, up to
//! the collectible arriving in their account; and stops the daemon cleanly.
//!
//! The simulator is the only stand-in: the daemon code path is exactly `giftd run`'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tgsim::{CreateUser, SendGift, SendUniqueGift, Sim, SimConfig};
use tokio_util::sync::CancellationToken;

use crate::app::{Daemon, Notice};
use crate::config::Config;
use crate::gift::Owner;

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the session file and the SQLite store go.
    pub state_dir: PathBuf,
    /// Size of the burst of gifts.
    pub burst: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the simulator failed: {0}")]
    Sim(String),
    #[error("invalid demo configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot prepare the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the daemon stopped: {0}")]
    Daemon(#[from] crate::app::AppError),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
}

fn sim_err(e: impl std::fmt::Display) -> DemoError {
    DemoError::Sim(e.to_string())
}

/// The configuration `giftd run` would read, pointed at the simulator's session.
fn demo_config(state_dir: &Path, bot_token: &str) -> Result<Config, DemoError> {
    let text = format!(
        r#"
[bot]
token = "{bot_token}"
session_file = "bot.session"

[withdraw]
regular = "resend"
resend_hold = "0s"
poll_interval = "200ms"

[telegram]
api_id = 1
api_hash = "demo-api-hash"
session_file = "deposit.session"
poll_interval = "1s"
reconcile_interval = "10m"

[store]
state_dir = "{}"

[health]
listen = "127.0.0.1:0"

"#,
        state_dir.display()
    );
    Ok(Config::parse_str(&text, "demo configuration", &|_| None)?)
}

/// Runs the demo, printing progress to `out`.
pub async fn run(opts: &DemoOptions, out: &mut dyn std::io::Write) -> Result<(), DemoError> {
    std::fs::create_dir_all(&opts.state_dir).map_err(|source| DemoError::StateDir {
        path: opts.state_dir.clone(),
        source,
    })?;
    let _ = writeln!(out, "starting tgsim, the Telegram simulator, on loopback");
    let sim = Sim::start(SimConfig::default()).await.map_err(sim_err)?;
    let user = |name: &str, first: &str| {
        sim.create_user(CreateUser {
            username: name.into(),
            first_name: first.into(),
            ..Default::default()
        })
        .map_err(sim_err)
    };
    let deposit = user("deposit", "Deposit")?;
    let players = [
        user("alice", "Alice")?,
        user("bob", "Bob")?,
        user("carol", "Carol")?,
    ];
    let names: BTreeMap<i64, String> = players.iter().map(|p| (p.id, p.username.clone())).collect();
    let bot = sim.create_bot("giftdesk_bot").map_err(sim_err)?;
    let config = demo_config(&opts.state_dir, &bot.token)?;
    if let Some(b) = &config.bot {
        // A key not signed in yet: giftd signs in with the bot token, as on a first start.
        let _ = std::fs::remove_file(&b.session_file);
        let key = sim.new_auth_key(None);
        sim.write_session(tgsim::SessionFor::Key(Box::new(key)), &b.session_file)
            .await
            .map_err(sim_err)?;
        restrict(&b.session_file)?;
    }
    let _ = std::fs::remove_file(&config.accounts[0].session_file);
    sim.write_session(deposit.id, &config.accounts[0].session_file)
        .await
        .map_err(sim_err)?;
    restrict(&config.accounts[0].session_file)?;
    let _ = writeln!(
        out,
        "deposit account @{} ({}), players {}",
        deposit.username,
        deposit.id,
        names
            .values()
            .map(|n| format!("@{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let daemon = Daemon::new();
    let mut notices = daemon.subscribe();
    let shutdown = CancellationToken::new();
    let mut run = {
        let daemon = daemon.clone();
        let shutdown = shutdown.clone();
        let config = config.clone();
        tokio::spawn(async move { daemon.run(&config, shutdown).await })
    };
    let _ = writeln!(
        out,
        "starting giftd (store: {})",
        store_description(&config)
    );
    let ready = wait_for(
        &mut notices,
        Duration::from_secs(30),
        "giftd to be ready",
        |n| matches!(n, Notice::Ready { .. }),
    );
    // A daemon that fails to start says why at once, rather than after the wait.
    tokio::select! {
        ready = ready => ready?,
        ended = &mut run => {
            return Err(match ended {
                Ok(Err(e)) => DemoError::Daemon(e),
                Ok(Ok(())) => DemoError::Sim("the daemon stopped before it was ready".into()),
                Err(e) => DemoError::Sim(format!("daemon task: {e}")),
            });
        }
    }
    let _ = writeln!(out, "giftd is ready; players start sending gifts\n");

    let catalogue = sim.gift_catalogue();
    let regular = catalogue[0].id;
    let collectible = catalogue
        .iter()
        .find(|g| g.upgrade_stars.is_some())
        .map_or(regular, |g| g.id);
    let send = |from: i64, hide_name: bool, message: Option<&str>| {
        sim.send_gift(SendGift {
            from,
            to: deposit.id,
            gift_id: regular,
            hide_name,
            message: message.map(str::to_owned),
        })
        .map_err(sim_err)
    };
    let mut expected = 0usize;
    send(players[0].id, false, Some("for the game"))?;
    expected += 1;
    sim.send_unique_gift(SendUniqueGift {
        from: players[1].id,
        to: deposit.id,
        gift_id: collectible,
        transfer_stars: None,
        transfer_lock_secs: None,
        message: None,
        from_telegram: false,
    })
    .map_err(sim_err)?;
    expected += 1;
    // "Hide my name" hides the sender from visitors of the profile, not from the receiver.
    send(players[2].id, true, None)?;
    expected += 1;
    // A collectible Telegram delivers itself names no sender: it waits for an operator.
    sim.send_unique_gift(SendUniqueGift {
        from: players[0].id,
        to: deposit.id,
        gift_id: collectible,
        from_telegram: true,
        ..SendUniqueGift::default()
    })
    .map_err(sim_err)?;
    expected += 1;
    let mut credited = 0usize;
    credited += show_credits(
        &mut notices,
        &names,
        out,
        expected - credited,
        Duration::from_secs(15),
    )
    .await?;

    let _ = writeln!(
        out,
        "\na burst of {} gifts from all three players",
        opts.burst
    );
    let ids: Vec<i64> = players.iter().map(|p| p.id).collect();
    let started = std::time::Instant::now();
    sim.burst(opts.burst, &ids, deposit.id).map_err(sim_err)?;
    expected += opts.burst;
    let mut seen = 0;
    let tty = {
        use std::io::IsTerminal as _;
        std::io::stdout().is_terminal()
    };
    while credited < expected {
        let n = tokio::time::timeout(Duration::from_secs(30), notices.recv())
            .await
            .map_err(|_| DemoError::Timeout(Duration::from_secs(30), "the burst to be credited"))?;
        if let Ok(Notice::Credited { .. }) = n {
            credited += 1;
            seen += 1;
            if tty && (seen % 10 == 0 || credited == expected) {
                let _ = write!(out, "\r  credited {seen}/{} ", opts.burst);
                let _ = out.flush();
            } else if !tty && (seen % 100 == 0 || credited == expected) {
                let _ = writeln!(out, "  credited {seen}/{}", opts.burst);
            }
        }
    }
    let _ = writeln!(
        out,
        "{}all {} credited in {} ms",
        if tty { "\n" } else { "" },
        opts.burst,
        started.elapsed().as_millis()
    );

    let inventory = daemon.inventory();
    let _ = writeln!(out, "\nfinal inventory");
    for p in &players {
        let stats = inventory.owner_stats(Owner::User(p.id));
        let uniques = inventory
            .owner_items(Owner::User(p.id))
            .iter()
            .filter(|i| i.unique.is_some())
            .count();
        let _ = writeln!(
            out,
            "  @{:<8} {:>4} gifts  {:>6} stars  {} collectible(s)",
            p.username, stats.items, stats.stars, uniques
        );
    }
    let un = inventory.owner_stats(Owner::Unattributed);
    let _ = writeln!(
        out,
        "  {:<9} {:>4} gifts  {:>6} stars  (no sender named: waiting for an operator)",
        "unattributed", un.items, un.stars
    );

    bot_tour(&sim, bot.account.id, &players[1], &daemon, out).await?;

    shutdown.cancel();
    let result = run
        .await
        .map_err(|e| DemoError::Sim(format!("daemon task: {e}")))?;
    result?;
    let _ = writeln!(
        out,
        "\ngiftd stopped cleanly; the store is {}",
        store_description(&config)
    );
    sim.shutdown().await;
    Ok(())
}

/// A player talks to the companion bot: /inventory, Withdraw, Confirm; prints what they see.
async fn bot_tour(
    sim: &Sim,
    bot: i64,
    player: &tgsim::Account,
    daemon: &Daemon,
    out: &mut dyn std::io::Write,
) -> Result<(), DemoError> {
    let limit = Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + limit;
    while sim.bot_commands(bot).map_err(sim_err)?.is_empty() {
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::Timeout(limit, "the companion bot to start"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let p = player.id;
    let who = format!("@{}", player.username);
    let _ = writeln!(
        out,
        "
the companion bot: {who} types /inventory"
    );
    let before = sim.bot_messages_to(bot, p).map_err(sim_err)?.len();
    sim.send_text_to_bot(p, bot, "/inventory")
        .map_err(sim_err)?;
    let inv = wait_bot(sim, bot, p, |m| {
        m.iter()
            .skip(before)
            .find(|m| !m.buttons.is_empty())
            .cloned()
    })
    .await?;
    show_bot(out, &inv);
    let withdraw = inv
        .buttons
        .iter()
        .flatten()
        .find(|b| b.data.is_some())
        .cloned()
        .ok_or_else(|| DemoError::Sim("no Withdraw button".into()))?;
    let _ = writeln!(out, "{who} presses [{}]", withdraw.text);
    let confirm = press(sim, bot, p, &inv, &withdraw).await?;
    show_bot(out, &confirm);
    let ok = confirm
        .buttons
        .iter()
        .flatten()
        .next()
        .cloned()
        .ok_or_else(|| DemoError::Sim("no Confirm button".into()))?;
    let _ = writeln!(out, "{who} presses [{}]", ok.text);
    let queued = press(sim, bot, p, &confirm, &ok).await?;
    show_bot(out, &queued);
    let sent = wait_bot(sim, bot, p, |m| {
        m.iter()
            .find(|m| m.text.contains("has been sent to you"))
            .cloned()
    })
    .await?;
    show_bot(out, &sent);
    let held = sim.saved_gifts(p).map_err(sim_err)?;
    let _ = writeln!(
        out,
        "{who}'s own Telegram account now holds {} gift(s); giftd holds {} for {who}",
        held.len(),
        daemon.inventory().owner_stats(Owner::User(p)).items
    );
    Ok(())
}

async fn press(
    sim: &Sim,
    bot: i64,
    player: i64,
    msg: &tgsim::BotMessage,
    button: &tgsim::Button,
) -> Result<tgsim::BotMessage, DemoError> {
    let data = button.data.clone().unwrap_or_default();
    let q = sim
        .press_button(player, bot, msg.msg_id, &data)
        .map_err(sim_err)?;
    let limit = Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + limit;
    while sim.callback_answer(q).is_none() {
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::Timeout(limit, "the bot to answer a press"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = msg.msg_id;
    wait_bot(sim, bot, player, |m| {
        m.iter().find(|m| m.msg_id == id).cloned()
    })
    .await
}

async fn wait_bot(
    sim: &Sim,
    bot: i64,
    player: i64,
    find: impl Fn(&[tgsim::BotMessage]) -> Option<tgsim::BotMessage>,
) -> Result<tgsim::BotMessage, DemoError> {
    let limit = Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(m) = find(&sim.bot_messages_to(bot, player).map_err(sim_err)?) {
            return Ok(m);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::Timeout(limit, "the bot's message"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A bot message as the player sees it: its text, then its buttons.
fn show_bot(out: &mut dyn std::io::Write, m: &tgsim::BotMessage) {
    for line in m.text.lines() {
        let _ = writeln!(out, "  | {line}");
    }
    for row in &m.buttons {
        let labels: Vec<String> = row.iter().map(|b| format!("[{}]", b.text)).collect();
        let _ = writeln!(out, "  | {}", labels.join(" "));
    }
}

/// Prints credits as they arrive until `count` were seen.
async fn show_credits(
    notices: &mut tokio::sync::broadcast::Receiver<Notice>,
    names: &BTreeMap<i64, String>,
    out: &mut dyn std::io::Write,
    count: usize,
    limit: Duration,
) -> Result<usize, DemoError> {
    let mut got = 0;
    while got < count {
        let n = tokio::time::timeout(limit, notices.recv())
            .await
            .map_err(|_| DemoError::Timeout(limit, "gifts to be credited"))?;
        if let Ok(Notice::Credited {
            key,
            owner,
            unique,
            path,
            ..
        }) = n
        {
            got += 1;
            let who = match owner {
                Owner::User(id) => format!("@{}", names.get(&id).map_or("?", String::as_str)),
                Owner::Unattributed => "unattributed (Telegram names no sender)".to_owned(),
            };
            let kind = if unique { "collectible" } else { "gift" };
            let _ = writeln!(
                out,
                "  credited {kind} msg {} to {who} (seen by {path:?})",
                key.msg_id
            );
        }
    }
    Ok(got)
}

async fn wait_for(
    notices: &mut tokio::sync::broadcast::Receiver<Notice>,
    limit: Duration,
    what: &'static str,
    pred: impl Fn(&Notice) -> bool,
) -> Result<(), DemoError> {
    tokio::time::timeout(limit, async {
        loop {
            match notices.recv().await {
                Ok(n) if pred(&n) => return true,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
            }
        }
    })
    .await
    .ok()
    .filter(|ok| *ok)
    .map(|_| ())
    .ok_or(DemoError::Timeout(limit, what))
}

fn restrict(path: &Path) -> Result<(), DemoError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        DemoError::StateDir {
            path: path.to_owned(),
            source,
        }
    })
}

fn store_description(config: &Config) -> String {
    match &config.store {
        crate::config::StoreConfig::Embedded(e) => format!("SQLite at {}", e.path.display()),
        crate::config::StoreConfig::Supabase(s) => format!("Supabase at {}", s.rest_url),
    }
}
