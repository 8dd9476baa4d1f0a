//! Companion bot figures: command or press -> answer latency with 100 players, 25 commands and
//! 25 presses a second in all, alone and while gifts stream in at 200/s; then 25 commands a
//! second that each need a new message. Each phase runs twice in one run: with the chat pacing
//! of one message per 1.05 s per chat (`bot.chat_burst = 1`) and with the default burst of 3.
//!
//! ```text
//! cargo bench --bench bot                    # or: -- --secs 20
//! ```
//!
//! giftd's real `Daemon` with the bot configured runs against tgsim (real MTProto, the real
//! grammers client for the deposit account and for the bot) and the embedded store. Each player
//! holds 11 gifts and acts every 2 s (within the per-user limit): `/inventory` and `/stats`
//! (each answered with a new message), and in the mixed phases every other action is a press
//! of the ◀ / ▶ button of their `/inventory` (answered by an edit and a callback answer).
//! Telegram lets a bot send about 30 new messages a second in all (giftd keeps under it). A
//! latency runs from the player's message or press entering tgsim to the bot's answer being in
//! tgsim (a new message for a command, the callback answer for a press). Under the gift stream
//! the players are also the senders, so their deposit notifications share each chat's limit
//! with the replies. A benchmark, not a test: it prints figures.

#[path = "parts/world.rs"]
mod world;

use std::time::{Duration, Instant};
use world::{ms, pct};

use giftd::config::Config;
use tgsim::{SendGift, SessionFor};
use tokio_util::sync::CancellationToken;

const COMMAND: &str = "cargo bench --bench bot";
const PLAYERS: usize = 100;
/// Actions a second in the mixed phases (half commands, half presses).
const ACTIONS_PER_SECOND: f64 = 50.0;
/// Commands a second in the phase where every action needs a new message.
const COMMANDS_PER_SECOND: f64 = 25.0;
const GIFTS_PER_SECOND: f64 = 200.0;

fn main() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let mut secs = 20u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--secs" {
            secs = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--secs needs a number");
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    let phases = runtime.block_on(async {
        let mut phases = Vec::new();
        for burst in [1u32, 3] {
            let pacing = if burst == 1 {
                "1 per 1.05 s per chat"
            } else {
                "burst 3 per chat"
            };
            phases.push((
                pacing,
                "25 commands + 25 presses/s",
                run(secs, false, Mix::CommandsAndPresses, burst).await,
            ));
            phases.push((
                pacing,
                "25 commands + 25 presses/s, 200 gifts/s",
                run(secs, true, Mix::CommandsAndPresses, burst).await,
            ));
            phases.push((
                pacing,
                "25 commands/s (25 new messages/s)",
                run(secs, false, Mix::Commands, burst).await,
            ));
        }
        phases
    });
    println!("\ncompanion bot, {PLAYERS} players, {secs} s per phase ({COMMAND})\n");
    println!(
        "| pacing | phase | answers | p50 | p90 | p99 | max | FLOOD_WAITs | gifts credited/s | notifications sent |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (pacing, name, r) in &phases {
        println!(
            "| {pacing} | {name} | {}/{} | {} | {} | {} | {} | {} | {:.0} | {} |",
            r.latencies.len(),
            r.sent,
            ms(pct(&r.latencies, 0.50)),
            ms(pct(&r.latencies, 0.90)),
            ms(pct(&r.latencies, 0.99)),
            ms(pct(&r.latencies, 1.0)),
            r.flood_waits,
            r.gift_rate,
            r.notifications
        );
    }
}

/// What the players send.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mix {
    /// Every action a new command (`/inventory`, `/stats`): every reply a new message.
    Commands,
    /// Half commands, half presses of the ◀ / ▶ buttons of their `/inventory` (edits).
    CommandsAndPresses,
}

struct Phase {
    latencies: Vec<Duration>,
    sent: usize,
    gift_rate: f64,
    notifications: u64,
    flood_waits: u64,
}

/// A notification line, not a reply.
fn is_notice(text: &str) -> bool {
    text.starts_with("Received") || text.starts_with("Withdrawal")
}

async fn run(secs: u64, gifts: bool, mix: Mix, chat_burst: u32) -> Phase {
    let sim = world::start_sim().await;
    let user = |name: String| world::user(&sim, &name, 1_000_000_000);
    let deposit = user("deposit".into());
    let players: Vec<i64> = (0..PLAYERS).map(|i| user(format!("player{i}"))).collect();
    let bot = sim.create_bot("bench_bot").expect("bot");
    let dir = tempfile::tempdir().expect("temporary directory");
    let session = dir.path().join("deposit.session");
    let bot_session = dir.path().join("bot.session");
    sim.write_session(deposit, &session).await.expect("session");
    sim.write_session(SessionFor::Account(bot.account.id), &bot_session)
        .await
        .expect("bot session");
    use std::os::unix::fs::PermissionsExt;
    for f in [&session, &bot_session] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    }
    let text = format!(
        "[telegram]\napi_id = 1\napi_hash = \"bench-hash\"\nsession_file = \"{}\"\n\
         [bot]\ntoken = \"{}\"\nsession_file = \"{}\"\nchat_burst = {chat_burst}\n\
         [store]\nstate_dir = \"{}\"\n[health]\nlisten = \"127.0.0.1:0\"\n",
        session.display(),
        bot.token,
        bot_session.display(),
        dir.path().display(),
    );
    let config = Config::parse_str(&text, "bench config", &|k| std::env::var(k).ok())
        .expect("the bench configuration is valid");
    let world::Running {
        daemon,
        shutdown,
        join,
        ..
    } = world::launch(config).await;
    let b = bot.account.id;
    while sim.bot_commands(b).unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every player starts the bot first (a bot can only write to users who did).
    for p in &players {
        sim.send_text_to_bot(*p, b, "/start").unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while players
        .iter()
        .any(|p| sim.bot_messages_to(b, *p).unwrap().is_empty())
    {
        assert!(Instant::now() < deadline, "not every /start answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Eleven gifts each, so every /inventory has a second page to press to.
    sim.burst(11 * PLAYERS, &players, deposit)
        .expect("seed burst");
    let deadline = Instant::now() + Duration::from_secs(60);
    while daemon.inventory().len() < 11 * PLAYERS {
        assert!(
            Instant::now() < deadline,
            "the seed gifts were not credited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let credited_before = daemon.inventory().len();
    // Every player has an /inventory message to press on before the clock starts.
    let mut inventory_msg: std::collections::HashMap<i64, i32> = std::collections::HashMap::new();
    for p in &players {
        sim.send_text_to_bot(*p, b, "/inventory").unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while inventory_msg.len() < players.len() {
        assert!(Instant::now() < deadline, "not every /inventory answered");
        for p in &players {
            if let Some(m) = sim
                .bot_messages_to(b, *p)
                .unwrap()
                .iter()
                .find(|m| m.text.starts_with("Your gifts"))
            {
                inventory_msg.insert(*p, m.msg_id);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stop = CancellationToken::new();
    let stream = gifts.then(|| {
        let sim = sim.clone();
        let players = players.clone();
        let stop = stop.clone();
        let gift_id = sim.gift_catalogue()[0].id;
        tokio::spawn(async move {
            let start = Instant::now();
            let mut n = 0usize;
            while !stop.is_cancelled() {
                let due = start + Duration::from_secs_f64(n as f64 / GIFTS_PER_SECOND);
                tokio::time::sleep_until(due.into()).await;
                let _ = sim.send_gift(SendGift {
                    from: players[n % players.len()],
                    to: deposit,
                    gift_id,
                    hide_name: false,
                    message: None,
                });
                n += 1;
            }
        })
    });
    let started = Instant::now();
    let rate = match mix {
        Mix::Commands => COMMANDS_PER_SECOND,
        Mix::CommandsAndPresses => ACTIONS_PER_SECOND,
    };
    let total = (secs as f64 * rate) as usize;
    // A command waits for a new message that is not a notification; a press for its answer.
    enum Wait {
        Reply { player: i64, before: usize },
        Press { query: i64 },
    }
    let mut pending: Vec<(Wait, Instant)> = Vec::new();
    let mut latencies = Vec::with_capacity(total);
    let mut next = 0usize;
    let end = started + Duration::from_secs(secs) + Duration::from_secs(30);
    while (next < total || !pending.is_empty()) && Instant::now() < end {
        let now = Instant::now();
        while next < total && now >= started + Duration::from_secs_f64(next as f64 / rate) {
            let p = players[next % players.len()];
            let round = next / players.len();
            // Players alternate, so commands and presses are spread evenly over time.
            let press = mix == Mix::CommandsAndPresses && (next + round) % 2 == 1;
            let button = press
                .then(|| {
                    let id = *inventory_msg.get(&p)?;
                    let m = sim
                        .bot_messages_to(b, p)
                        .unwrap()
                        .into_iter()
                        .find(|m| m.msg_id == id)?;
                    let data = m
                        .buttons
                        .iter()
                        .flatten()
                        .filter_map(|b| b.data.clone())
                        .find(|d| d.starts_with(b"1:ip:"))?;
                    Some((id, data))
                })
                .flatten();
            let at = Instant::now();
            match button {
                Some((id, data)) => {
                    let query = sim.press_button(p, b, id, &data).unwrap();
                    pending.push((Wait::Press { query }, at));
                }
                None => {
                    let before = sim.bot_messages_to(b, p).unwrap().len();
                    let cmd = if round % 4 == 2 {
                        "/stats"
                    } else {
                        "/inventory"
                    };
                    sim.send_text_to_bot(p, b, cmd).unwrap();
                    pending.push((Wait::Reply { player: p, before }, at));
                }
            }
            next += 1;
        }
        let now = Instant::now();
        pending.retain(|(wait, at)| {
            let answered = match wait {
                Wait::Reply { player, before } => {
                    let msgs = sim.bot_messages_to(b, *player).unwrap();
                    match msgs[(*before).min(msgs.len())..]
                        .iter()
                        .find(|m| !is_notice(&m.text))
                    {
                        Some(m) => {
                            if m.text.starts_with("Your gifts") {
                                inventory_msg.insert(*player, m.msg_id);
                            }
                            true
                        }
                        None => false,
                    }
                }
                Wait::Press { query } => sim.callback_answer(*query).is_some(),
            };
            if answered {
                latencies.push(now.saturating_duration_since(*at));
            }
            !answered
        });
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.cancel();
    if let Some(s) = stream {
        let _ = s.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let gift_rate = (daemon.inventory().len() - credited_before) as f64 / elapsed;
    let notifications = daemon
        .bot_stats()
        .notifications_sent
        .load(std::sync::atomic::Ordering::Relaxed);
    let flood_waits = daemon
        .bot_stats()
        .flood_waits
        .load(std::sync::atomic::Ordering::Relaxed);
    latencies.sort();
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), join).await;
    sim.shutdown().await;
    Phase {
        latencies,
        sent: total,
        gift_rate,
        notifications,
        flood_waits,
    }
}
