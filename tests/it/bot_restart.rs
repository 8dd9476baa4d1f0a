//! The companion bot across restarts of `giftd run` (SIGTERM, and kill -9): every command is
//! answered once, a command sent while giftd was down is answered after the restart from the
//! loaded inventory, and a bot that cannot sign in is reported by `/readyz` and `giftd check`.

use std::time::{Duration, Instant};

use crate::support::{Backend, Bot, Instance, World, http_get_lenient, until};

/// `w` with a bot configured (`token`, or its own; a session not yet signed in); returns the
/// bot's id.
async fn with_bot(w: &mut World, token: Option<&str>) -> i64 {
    let tag = rand::random::<u32>();
    let bot = Bot::create(w, &format!("again{tag}bot"), "bot.session").await;
    w.extra_sections = bot.section(token);
    bot.id
}

/// The bot's replies to `player` that contain `what`.
fn replies(w: &World, bot: i64, player: i64, what: &str) -> Vec<String> {
    w.sim
        .bot_messages_to(bot, player)
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .filter(|t| t.contains(what))
        .collect()
}

/// Waits until the bot has sent `player` `count` replies containing `what`; returns them.
async fn wait_replies(
    w: &World,
    bot: i64,
    player: i64,
    what: &str,
    count: usize,
    inst: &Instance,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = replies(w, bot, player, what);
        if got.len() >= count {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} replies with {what:?}: {got:?}\n{}",
            got.len(),
            inst.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn restarts_between_commands_answer_each_once(backend: Backend, stop: &str) {
    let mut w = World::new(backend, 1).await;
    let bot = with_bot(&mut w, None).await;
    w.provision_session().await;
    let p = w.player(0);
    // A bot that was used before: its update sequence is under way (a brand-new bot's is at 0,
    // which grammers reads as "no position", so a kill before its first position is saved
    // would start the next run at the present).
    w.sim.send_text_to_bot(p, bot, "hello").expect("sent");
    let mut inst = w.spawn(0);
    // On its very first start the bot's session has no position yet: it takes Telegram's as it
    // connects, and a message sent before that is not for it. Wait until it answers.
    until(Duration::from_secs(60), Duration::from_millis(20), || {
        (!w.sim.bot_commands(bot).unwrap().is_empty())
            .then_some(())
            .ok_or_else(|| inst.log_text())
    })
    .await;
    w.send(p, false);
    w.assert_exactly_once(Duration::from_secs(60)).await;
    w.sim.send_text_to_bot(p, bot, "/stats").expect("sent");
    let got = wait_replies(&w, bot, p, "You hold", 1, &inst).await;
    assert!(got[0].contains("You hold 1 gifts"), "{got:?}");

    for round in 0..2 {
        match stop {
            "TERM" => {
                let status = inst.terminate().await;
                assert!(status.success(), "{status}");
            }
            _ => inst.kill9(),
        }
        // While giftd is down: one more gift, and a command that waits in Telegram.
        w.send(p, false);
        w.sim.send_text_to_bot(p, bot, "/stats").expect("sent");
        w.sim.send_text_to_bot(p, bot, "/inventory").expect("sent");
        inst = w.spawn(round + 1);
        // Answered after the restart, from the inventory with the gift sent meanwhile (giftd
        // credits it at start, before the bot answers anything).
        let held = round + 2;
        let got = wait_replies(&w, bot, p, "You hold", held, &inst).await;
        assert!(
            got[held - 1].contains(&format!("You hold {held} gifts")),
            "{got:?}"
        );
        let got = wait_replies(&w, bot, p, "Your gifts:", round + 1, &inst).await;
        assert!(
            got[round].contains(&format!("Your gifts: {held} worth")),
            "{got:?}"
        );
    }
    // One more command after the last restart: it is answered after anything replayed would
    // have been (the replay comes first, from the saved position).
    w.sim.send_text_to_bot(p, bot, "/help").expect("sent");
    wait_replies(&w, bot, p, "/withdraw - get a gift back", 1, &inst).await;
    let stats = replies(&w, bot, p, "You hold");
    assert_eq!(
        stats.len(),
        3,
        "each /stats answered once, none twice: {stats:?}"
    );
    for (i, text) in stats.iter().enumerate() {
        assert!(
            text.contains(&format!("You hold {} gifts", i + 1)),
            "{stats:?}"
        );
    }
    assert_eq!(
        replies(&w, bot, p, "/withdraw - get a gift back").len(),
        1,
        "/help answered once"
    );
    let inventories = replies(&w, bot, p, "Your gifts:");
    assert_eq!(
        inventories.len(),
        2,
        "each /inventory answered once: {inventories:?}"
    );
    let status = inst.terminate().await;
    assert!(status.success(), "{status}");
    w.assert_exactly_once(Duration::ZERO).await;
}

// Named `*_bot_supabase` where the bot runs on the shared database: those run one at a time
// (the one `bot` lease; see .config/nextest.toml).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_between_commands_answers_each_once_bot_sqlite() {
    restarts_between_commands_answer_each_once(Backend::sqlite(), "TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_commands_answers_each_once_bot_sqlite() {
    restarts_between_commands_answer_each_once(Backend::sqlite(), "KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_between_commands_answers_each_once_bot_supabase() {
    restarts_between_commands_answer_each_once(Backend::supabase(), "TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_commands_answers_each_once_bot_supabase() {
    restarts_between_commands_answer_each_once(Backend::supabase(), "KILL").await;
}

/// A bot that cannot sign in (Telegram refuses its token): `/readyz` is not ready and says the
/// bot is not connected, `/metrics` shows it, and `giftd check` fails on it; deposits are still
/// credited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_that_cannot_sign_in_is_reported() {
    let mut w = World::new(Backend::sqlite(), 1).await;
    with_bot(&mut w, Some("999999:not-a-token-telegram-knows")).await;
    w.provision_session().await;
    let inst = w.spawn(0);
    let port = inst.port;
    let (code, body) = inst
        .readyz_until(
            Duration::from_secs(60),
            Duration::from_millis(50),
            "the bot is not reported",
            |_, body| body.contains("bot: not connected:"),
        )
        .await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body.starts_with("not ready: the companion bot is not connected"),
        "{body}"
    );
    let (_, metrics) = http_get_lenient(port, "/metrics").await;
    assert!(metrics.contains("\ngiftd_bot_connected 0\n"), "{metrics}");
    let p = w.player(0);
    w.send(p, false);
    w.assert_exactly_once(Duration::from_secs(30)).await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_giftd"))
        .arg("--config")
        .arg(w.write_config())
        .arg("check")
        .output()
        .expect("giftd check runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("bot"))
        .unwrap_or_else(|| panic!("no bot line: {text}"));
    assert!(
        line.contains("FAIL") && line.contains("not connected"),
        "{text}"
    );
    let status = inst.terminate().await;
    assert!(status.success(), "{status}");
}
