//! The bot's notifications to players: a burst of credits arrives once each across a restart,
//! and what could not be delivered waits until the player starts the bot, then is sent once.

use std::time::{Duration, Instant};

use crate::support::Backend;

use super::BotWorld;

#[tokio::test]
async fn notifications_after_a_burst_arrive_once_each_across_a_restart() {
    let bw = BotWorld::new(Backend::sqlite(), 20, "").await;
    let players: Vec<i64> = (0..20).map(|i| bw.w.player(i)).collect();
    for (i, p) in players.iter().enumerate() {
        bw.lang(*p, if i % 2 == 0 { "fr" } else { "en" });
    }
    let running = bw.start().await;
    for p in &players {
        bw.w.sim.send_text_to_bot(*p, bw.bot.id, "/start").unwrap();
    }
    for p in &players {
        bw.bot
            .wait_messages(*p, "the /start answer", |m| !m.is_empty())
            .await;
    }
    bw.w.sim.burst(200, &players, bw.w.deposit.id).unwrap();
    let count = |bw: &BotWorld, p: i64| {
        bw.bot
            .messages(p)
            .iter()
            .flat_map(|m| m.text.lines().map(str::to_owned).collect::<Vec<_>>())
            .filter(|l| l.starts_with("Received") || l.starts_with("Reçu"))
            .count()
    };
    // Stop in the middle: some announced, not all.
    let deadline = Instant::now() + Duration::from_secs(60);
    while players.iter().map(|p| count(&bw, *p)).sum::<usize>() == 0 {
        assert!(Instant::now() < deadline, "no notification within a minute");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first_floods = running
        .daemon
        .bot_stats()
        .flood_waits
        .load(std::sync::atomic::Ordering::Relaxed);
    running.stop().await;
    let midway: usize = players.iter().map(|p| count(&bw, *p)).sum();
    let running = bw.start().await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while players.iter().map(|p| count(&bw, *p)).sum::<usize>() < 200 {
        assert!(
            Instant::now() < deadline,
            "{} of 200 announced ({midway} before the restart)",
            players.iter().map(|p| count(&bw, *p)).sum::<usize>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for p in &players {
        assert_eq!(
            count(&bw, *p),
            10,
            "player {p}: each deposit announced once"
        );
    }
    let floods = first_floods
        + running
            .daemon
            .bot_stats()
            .flood_waits
            .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        floods, 0,
        "giftd kept Telegram's pace (tgsim refuses faster sends)"
    );
    running.stop().await;
}

/// The `(msg_id, state)` of `player`'s notifications, oldest first.
async fn note_states(bw: &BotWorld, player: i64) -> Vec<(i32, String)> {
    bw.w.backend
        .notifications_of(player)
        .await
        .into_iter()
        .map(|r| (r.msg_id, r.state))
        .collect()
}

/// Waits until `player`'s notifications are in `want` states (30 s).
async fn wait_note_states(bw: &BotWorld, player: i64, want: &[(i32, &str)]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = note_states(bw, player).await;
        if got
            .iter()
            .map(|(m, s)| (*m, s.as_str()))
            .collect::<Vec<_>>()
            == want
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "notifications of {player}: {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn credit_messages(bw: &BotWorld, player: i64) -> Vec<String> {
    bw.bot
        .messages(player)
        .into_iter()
        .map(|m| m.text)
        .filter(|t| t.starts_with("Received") || t.starts_with("Reçu"))
        .collect()
}

async fn undelivered_notifications_wait_for_start(backend: Backend) {
    let mut bw = BotWorld::new(backend, 1, "").await;
    let p = bw.w.player(0);
    let running = bw.start().await;
    // Two gifts from a player who never started the bot: Telegram does not let the bot write
    // to them, so both notifications end undeliverable.
    let old = bw.w.send(p, false);
    let fresh = bw.w.send(p, false);
    bw.w.assert_exactly_once(Duration::from_secs(20)).await;
    wait_note_states(&bw, p, &[(old, "undeliverable"), (fresh, "undeliverable")]).await;
    assert!(bw.bot.messages(p).is_empty());
    // One is older than bot.undelivered_max_age (3 days by default): never sent.
    bw.w.backend
        .execute(
            &format!(
                "UPDATE notifications SET created_at_ms = created_at_ms - 4 * 86400000
                 WHERE user_id = {p} AND msg_id = {old}"
            ),
            &format!(
                "update public.notifications set created_at = created_at - interval '4 days'
                 where user_id = {p} and msg_id = {old}"
            ),
        )
        .await;

    bw.bot.ask(p, "/start", "Hello").await;
    wait_note_states(&bw, p, &[(old, "undeliverable"), (fresh, "sent")]).await;
    let credits = credit_messages(&bw, p);
    assert_eq!(credits.len(), 1, "{credits:#?}");
    let lines: Vec<&str> = credits[0].lines().collect();
    assert_eq!(lines.len(), 2, "one gift, then the totals: {lines:?}");
    assert!(lines[0].starts_with("Received "), "{lines:?}");
    assert!(
        lines[1].starts_with("You now hold 2 gifts worth "),
        "{lines:?}"
    );

    // Starting again sends nothing twice.
    bw.bot.ask(p, "/start", "Hello").await;
    bw.bot.ask(p, "/stats", "You hold 2 gifts").await;
    assert_eq!(credit_messages(&bw, p).len(), 1);
    assert_eq!(
        note_states(&bw, p).await,
        vec![
            (old, "undeliverable".to_owned()),
            (fresh, "sent".to_owned())
        ]
    );
    running.stop().await;
}

on_both_stores!(
    current_thread: undelivered_notifications_wait_for_start =>
        undelivered_notifications_are_sent_once_when_the_player_starts_the_bot_sqlite,
        undelivered_notifications_are_sent_once_when_the_player_starts_the_bot_supabase
);
