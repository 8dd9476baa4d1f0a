//! The companion bot end to end: giftd's `Daemon` with a bot configured, tgsim's bot side
//! (players type to the bot and press its buttons over real MTProto), the real stores. Each
//! flow in English and French. Linking web accounts (`links`) and notifications
//! (`notifications`) have files of their own.

use std::time::{Duration, Instant};

use giftd::gift::{ItemKey, Owner, Status};
use giftd::store::{RequestState, WithdrawalFilter};
use tgsim::{BotMessage, SendUniqueGift};

use crate::support::{Backend, Bot, Running, World, button, withdraw_section, withdrawal_in};

mod links;
mod notifications;

/// A world with a bot: its token and session in the configuration, one operator.
struct BotWorld {
    w: World,
    bot: Bot,
    admin: i64,
}

impl BotWorld {
    async fn new(backend: Backend, players: usize, withdraw: &str) -> BotWorld {
        let mut w = World::new(backend, players + 1).await;
        let tag = rand::random::<u32>();
        let bot = Bot::create(&w, &format!("desk{tag}bot"), "bot.session").await;
        let admin = w.players[players].id;
        w.extra_sections = format!(
            "{}admins = \"{admin}\"\n{}",
            bot.section(None),
            withdraw_section(withdraw)
        );
        BotWorld { w, bot, admin }
    }

    /// Starts giftd and waits until the bot registered its commands (it is answering).
    async fn start(&self) -> Running {
        let running = self.w.start().await;
        self.bot
            .wait_started(Duration::from_secs(30), || {
                "the bot never registered its commands".into()
            })
            .await;
        running
    }

    fn lang(&self, player: i64, lang: &str) {
        self.w.sim.set_lang_code(player, Some(lang)).unwrap();
    }
}

#[tokio::test]
async fn start_help_and_commands_in_english_and_french() {
    let bw = BotWorld::new(Backend::sqlite(), 2, "").await;
    let (en, fr) = (bw.w.player(0), bw.w.player(1));
    bw.lang(en, "en-GB");
    bw.lang(fr, "fr");
    let running = bw.start().await;
    let deposit = format!("@{}", bw.w.deposit.username);

    let m = bw.bot.ask(en, "/start", "Hello").await;
    assert!(
        m.text.contains(&format!("send a Star Gift to {deposit}")),
        "{}",
        m.text
    );
    assert!(m.text.contains("/inventory") && !m.text.contains("/admin"));
    let m = bw.bot.ask(fr, "/start", "Bonjour").await;
    assert!(
        m.text
            .contains(&format!("envoyez un Star Gift à {deposit}")),
        "{}",
        m.text
    );
    bw.bot
        .ask(fr, "/help", "/withdraw - récupérer un cadeau")
        .await;
    bw.bot.ask(en, "/help", "/withdraw - get a gift back").await;
    bw.bot
        .ask(en, "hello there", "I only understand commands")
        .await;
    bw.bot
        .ask(fr, "/nope", "Je ne comprends que les commandes")
        .await;
    // /admin is for operators only.
    bw.bot.ask(en, "/admin", "I only understand commands").await;
    bw.bot
        .ask(bw.admin, "/help", "/admin - the operator's desk")
        .await;

    let fr_cmds = bw.w.sim.bot_commands_for(bw.bot.id, "fr").unwrap();
    assert!(
        fr_cmds.contains(&("inventory".into(), "Vos cadeaux".into())),
        "{fr_cmds:?}"
    );
    let en_cmds = bw.w.sim.bot_commands_for(bw.bot.id, "de").unwrap();
    assert!(
        en_cmds.contains(&("inventory".into(), "Your gifts".into())),
        "{en_cmds:?}"
    );
    running.stop().await;
}

async fn inventory_and_withdrawal(backend: Backend, lang: &str) {
    let mut bw = BotWorld::new(backend, 1, "").await;
    let p = bw.w.player(0);
    bw.lang(p, lang);
    let fr = lang == "fr";
    let t = |en: &'static str, f: &'static str| if fr { f } else { en };
    let running = bw.start().await;
    bw.bot.ask(p, "/start", t("Hello", "Bonjour")).await;
    let locked = bw.w.send_collectible(p, None, Some(3600));
    let mut free = Vec::new();
    for _ in 0..11 {
        free.push(bw.w.send_collectible(p, None, None));
    }
    bw.w.assert_exactly_once(Duration::from_secs(20)).await;

    // Newest first, ten to a page; paging edits the same message.
    let inv = bw
        .bot
        .ask(p, "/inventory", t("page 1 of 2", "page 1 sur 2"))
        .await;
    let (_, page2) = bw.bot.press(p, &inv, t("Next", "Suivant")).await;
    assert_eq!(page2.msg_id, inv.msg_id);
    assert!(
        page2.edited && page2.text.contains(t("page 2 of 2", "page 2 sur 2")),
        "{}",
        page2.text
    );
    assert!(
        page2.text.contains("12. "),
        "the oldest, 12th: {}",
        page2.text
    );
    let (_, back) = bw.bot.press(p, &page2, t("◀", "◀")).await;
    assert_eq!(back.text, inv.text);

    // The locked collectible: the confirmation says it waits; confirm, then cancel it.
    let list = bw
        .bot
        .ask(p, "/withdraw", t("Which gift", "Quel cadeau"))
        .await;
    let last_page = if list
        .buttons
        .iter()
        .flatten()
        .any(|b| b.text.starts_with(t("Next", "Suivant")))
    {
        bw.bot.press(p, &list, t("Next", "Suivant")).await.1
    } else {
        list
    };
    let key = |m: i32| ItemKey::new(bw.w.deposit.id, m);
    let data = format!("1:wa:{}:{locked}", bw.w.deposit.id);
    let label = last_page
        .buttons
        .iter()
        .flatten()
        .find(|b| b.data.as_deref() == Some(data.as_bytes()))
        .expect("a Withdraw button for the locked gift")
        .text
        .clone();
    let (_, confirm) = bw.bot.press(p, &last_page, &label).await;
    assert!(
        confirm
            .text
            .contains(t("locks this gift until", "bloque ce cadeau jusqu'au")),
        "{}",
        confirm.text
    );
    let (answer, queued) = bw.bot.press(p, &confirm, "✅").await;
    assert_eq!(answer.message.as_deref(), Some(t("Done.", "C'est fait.")));
    assert!(
        queued.text.contains(t("queued", "en file")),
        "{}",
        queued.text
    );
    let store = bw.w.store().await;
    let open = store
        .list_withdrawals(&WithdrawalFilter {
            owner: Some(p),
            ..WithdrawalFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].key, key(locked));
    let id = open[0].id;
    // The worker finds it too early: it waits (a Cancel is still allowed).
    withdrawal_in(
        &store,
        id,
        &[RequestState::Waiting],
        Duration::from_secs(20),
    )
    .await;
    let (_, cancelled) = bw.bot.press(p, &queued, t("Cancel", "Annuler")).await;
    assert!(
        cancelled.text.contains(t("cancelled", "annulé")),
        "{}",
        cancelled.text
    );
    assert_eq!(
        store.withdrawal(id).await.unwrap().unwrap().state,
        RequestState::Cancelled
    );
    assert_eq!(
        running.daemon.inventory().get(key(locked)).unwrap().status,
        Status::Held
    );

    // A free collectible leaves for good; the player hears each step.
    let list = bw
        .bot
        .ask(p, "/withdraw", t("Which gift", "Quel cadeau"))
        .await;
    let (_, confirm) = bw.bot.press(p, &list, t("Withdraw 1", "Retirer 1")).await;
    assert!(
        confirm.text.contains(t("for free", "gratuitement")),
        "{}",
        confirm.text
    );
    let (_, queued) = bw.bot.press(p, &confirm, "✅").await;
    assert!(queued.text.contains(t("queued", "en file")));
    let newest = *free.last().unwrap();
    bw.bot
        .wait_messages(p, "the sent notification", |m| {
            m.iter().any(|m| {
                m.text
                    .contains(t("has been sent to you", "vous a été envoyé"))
            })
        })
        .await;
    let held_by_player = bw.w.sim.saved_gifts(p).unwrap();
    assert_eq!(
        held_by_player.len(),
        1,
        "the player holds the withdrawn collectible"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while running
        .daemon
        .inventory()
        .get(key(newest))
        .map(|i| i.status)
        == Some(Status::Held)
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = bw
        .bot
        .ask(
            p,
            "/stats",
            t("Withdrawn so far: 1.", "Retirés jusqu'ici : 1."),
        )
        .await;
    assert!(
        stats
            .text
            .contains(t("You hold 11 gifts", "Vous détenez 11 cadeaux"))
            && stats
                .text
                .contains(t("Deposited so far: 12.", "Déposés jusqu'ici : 12.")),
        "{}",
        stats.text
    );
    // Deposits were announced, once each (12 lines over however many messages).
    let deposits = bw
        .bot
        .wait_messages(p, "12 deposit notices", |m| {
            m.iter()
                .flat_map(|m| m.text.lines())
                .filter(|l| l.starts_with(t("Received", "Reçu")))
                .count()
                >= 12
        })
        .await;
    let lines = deposits
        .iter()
        .flat_map(|m| m.text.lines())
        .filter(|l| l.starts_with(t("Received", "Reçu")))
        .count();
    assert_eq!(lines, 12);
    running.stop().await;
}

#[tokio::test]
async fn inventory_pages_and_a_withdrawal_through_the_bot_sqlite_english() {
    inventory_and_withdrawal(Backend::sqlite(), "en").await;
}

#[tokio::test]
async fn inventory_pages_and_a_withdrawal_through_the_bot_supabase_french() {
    inventory_and_withdrawal(Backend::supabase(), "fr").await;
}

#[tokio::test]
async fn forged_presses_change_nothing() {
    let mut bw = BotWorld::new(Backend::sqlite(), 2, "").await;
    let (owner, thief) = (bw.w.player(0), bw.w.player(1));
    bw.lang(thief, "fr");
    let running = bw.start().await;
    let item = bw.w.send_collectible(owner, None, Some(3600));
    bw.w.assert_exactly_once(Duration::from_secs(20)).await;
    let dep = bw.w.deposit.id;
    let key = ItemKey::new(dep, item);
    // The owner asks for it (it waits: locked), so there is a request to forge against.
    let list = bw.bot.ask(owner, "/withdraw", "Which gift").await;
    let (_, confirm) = bw.bot.press(owner, &list, "Withdraw 1").await;
    let (_, queued) = bw.bot.press(owner, &confirm, "✅").await;
    assert!(queued.text.contains("queued"));
    let store = bw.w.store().await;
    let requests = || async {
        store
            .list_withdrawals(&WithdrawalFilter::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|w| w.key.account_id == dep)
            .collect::<Vec<_>>()
    };
    let before = requests().await;
    assert_eq!(before.len(), 1);
    let id = before[0].id;

    let own = bw.bot.ask(thief, "/inventory", "aucun cadeau").await;
    for (data, toast) in [
        (
            format!("1:wc:{dep}:{item}"),
            Some("Ceci ne vous appartient pas."),
        ),
        (
            format!("1:wa:{dep}:{item}"),
            Some("Ceci ne vous appartient pas."),
        ),
        (format!("1:wx:{id}"), Some("Ceci ne vous appartient pas.")),
        (format!("1:aa:{id}:0"), Some("Ceci ne vous appartient pas.")),
        (format!("1:ac:{id}"), Some("Ceci ne vous appartient pas.")),
        (
            format!("1:as:{dep}:{item}"),
            Some("Ceci ne vous appartient pas."),
        ),
        ("1:wc:1:1".to_owned(), Some("Ceci ne vous appartient pas.")),
        (
            "garbage".to_owned(),
            Some("Ce bouton est périmé : renvoyez la commande."),
        ),
        (
            format!("1:wc:{dep}:{item}:0"),
            Some("Ce bouton est périmé : renvoyez la commande."),
        ),
    ] {
        let answer = bw.bot.forge(thief, own.msg_id, &data).await;
        assert_eq!(answer.message.as_deref(), toast, "{data}");
    }
    let after = requests().await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].owner, owner);
    assert!(
        !after[0].state.is_final(),
        "the owner's request is untouched: {}",
        after[0].state
    );
    let now = running.daemon.inventory().get(key).unwrap();
    assert_eq!(now.owner, Owner::User(owner));
    assert_eq!(
        bw.bot.message(thief, own.msg_id).text,
        own.text,
        "the thief's message unchanged"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_flood_of_commands_gets_one_slow_down() {
    let bw = BotWorld::new(Backend::sqlite(), 1, "").await;
    let p = bw.w.player(0);
    let running = bw.start().await;
    for _ in 0..80 {
        bw.w.sim.send_text_to_bot(p, bw.bot.id, "/help").unwrap();
    }
    let stats = running.daemon.bot_stats();
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.messages.load(std::sync::atomic::Ordering::Relaxed) < 80 {
        assert!(Instant::now() < deadline, "the bot did not read the flood");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let limited = stats.limited.load(std::sync::atomic::Ordering::Relaxed);
    assert!(limited >= 40, "only {limited} limited");
    let answered = 80 - limited as usize;
    let msgs = bw
        .bot
        .wait_messages(p, "every allowed answer and one slow-down", |m| {
            m.len() > answered
        })
        .await;
    // Paced at one a second in the chat; give the last ones time to arrive, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let msgs = bw.bot.messages(p).len().max(msgs.len());
    let slow: Vec<BotMessage> = bw
        .bot
        .messages(p)
        .into_iter()
        .filter(|m| m.text.starts_with("Slow down"))
        .collect();
    assert_eq!(slow.len(), 1, "one slow-down for the whole flood");
    assert!(
        msgs <= answered + 1,
        "{msgs} messages for {answered} allowed"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_player_with_250_items_pages_through() {
    let bw = BotWorld::new(Backend::sqlite(), 1, "").await;
    let p = bw.w.player(0);
    let running = bw.start().await;
    bw.w.sim.burst(250, &[p], bw.w.deposit.id).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while running.daemon.inventory().owner_stats(Owner::User(p)).items < 250 {
        assert!(Instant::now() < deadline, "250 gifts not credited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut page = bw.bot.ask(p, "/inventory", "page 1 of 25").await;
    assert!(page.text.contains("\n1. "));
    for n in 2..=25 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (_, next) = bw.bot.press(p, &page, "Next").await;
        assert_eq!(next.msg_id, page.msg_id, "paging edits the same message");
        assert!(
            next.text.contains(&format!("page {n} of 25")),
            "{}",
            next.text
        );
        page = next;
    }
    assert!(
        page.text.contains("\n241. ") && page.text.contains("\n250. "),
        "{}",
        page.text
    );
    assert!(
        !page
            .buttons
            .iter()
            .flatten()
            .any(|b| b.text.starts_with("Next")),
        "no Next on the last page"
    );
    running.stop().await;
}

#[tokio::test]
async fn operators_assign_unattributed_gifts_and_approve_fees() {
    let mut bw = BotWorld::new(Backend::sqlite(), 1, "max_fee_stars = 10\n").await;
    let p = bw.w.player(0);
    let admin = bw.admin;
    bw.lang(admin, "fr");
    let running = bw.start().await;
    bw.bot.ask(p, "/start", "Hello").await;
    let nameless = bw.w.send_nameless();
    let gift_id = bw.w.regular_gift();
    let paid =
        bw.w.sim
            .send_unique_gift(SendUniqueGift {
                from: p,
                to: bw.w.deposit.id,
                gift_id,
                transfer_stars: Some(25),
                ..SendUniqueGift::default()
            })
            .unwrap()
            .msg_id;
    bw.w.expected.insert(paid, Some(p));
    bw.w.assert_exactly_once(Duration::from_secs(20)).await;

    let desk = bw.bot.ask(admin, "/admin", "Guichet de l'opérateur").await;
    assert!(
        desk.text.contains("Cadeaux sans expéditeur : 1"),
        "{}",
        desk.text
    );
    let (prompt, _) = bw.bot.press(admin, &desk, "Attribuer 1").await;
    assert!(prompt.message.unwrap().starts_with("Répondez avec"));
    let username = format!("@{}", bw.w.players[0].username);
    bw.bot.ask(admin, &username, "est maintenant crédité").await;
    let key = ItemKey::new(bw.w.deposit.id, nameless);
    assert_eq!(
        running.daemon.inventory().get(key).unwrap().owner,
        Owner::User(p)
    );
    let store = bw.w.store().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let owned = store.list_owner(Owner::User(p)).await.unwrap();
        if owned.iter().any(|i| i.key == key) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the store never credited the assignment"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A fee above the cap waits for an operator; approving it from the desk sends it.
    let id = store
        .create_withdrawal(p, ItemKey::new(bw.w.deposit.id, paid))
        .await
        .unwrap();
    withdrawal_in(
        &store,
        id,
        &[RequestState::Approval],
        Duration::from_secs(20),
    )
    .await;
    let desk = bw.bot.ask(admin, "/admin", "1 à approuver").await;
    // The button carries the fee the desk shows; a press for another fee (a desk drawn before
    // the fee changed) approves nothing.
    let fee = store
        .withdrawal(id)
        .await
        .unwrap()
        .unwrap()
        .fee_stars
        .unwrap();
    let data = String::from_utf8(button(&desk, &format!("Approuver n° {id}"))).unwrap();
    assert_eq!(data, format!("1:aa:{id}:{fee}"));
    let stale = bw
        .bot
        .forge(admin, desk.msg_id, &format!("1:aa:{id}:{}", fee - 1))
        .await;
    assert_eq!(
        stale.message.as_deref(),
        Some(
            format!(
                "La demande n° {id} n'a pas été approuvée : ses frais sont de {fee} ⭐ \
                 maintenant, pas ceux affichés. Regardez à nouveau."
            )
            .as_str()
        )
    );
    assert_eq!(
        store.withdrawal(id).await.unwrap().unwrap().state,
        RequestState::Approval
    );
    let (answer, _) = bw
        .bot
        .press(admin, &desk, &format!("Approuver n° {id}"))
        .await;
    assert!(
        answer
            .message
            .unwrap()
            .contains(&format!("La demande {id}"))
    );
    assert_eq!(
        store.withdrawal(id).await.unwrap().unwrap().approved_stars,
        Some(fee),
        "approved at the fee shown"
    );
    withdrawal_in(&store, id, &[RequestState::Sent], Duration::from_secs(30)).await;
    bw.bot
        .wait_messages(p, "the sent notice", |m| {
            m.iter().any(|m| m.text.contains("has been sent to you"))
        })
        .await;
    running.stop().await;
}

/// A restarted giftd names gifts from the catalogue the store kept, before Telegram lists them
/// again: the saved-gifts listing fails throughout the second run, so no title can come from it.
#[tokio::test]
async fn titles_survive_a_restart_without_a_catalogue_fetch() {
    let mut bw = BotWorld::new(Backend::sqlite(), 1, "").await;
    let p = bw.w.player(0);
    let kind = bw.w.sim.gift_catalogue()[0].clone();
    let running = bw.start().await;
    bw.bot.ask(p, "/start", "Hello").await;
    bw.w.send(p, false);
    bw.w.assert_exactly_once(Duration::from_secs(20)).await;
    let before = bw.bot.ask(p, "/inventory", "page 1 of 1").await;
    assert!(before.text.contains(&kind.title), "{}", before.text);
    running.stop().await;

    bw.w.sim.inject(tgsim::Fault::RpcError {
        method: "payments.getSavedStarGifts".into(),
        code: 500,
        message: "INTERNAL".into(),
        count: 1_000_000,
    });
    // Not `start`: the daemon is not ready while its reconciliation cannot list the gifts,
    // and the bot answers meanwhile from the items loaded from the store.
    bw.w.provision_session().await;
    let running = Running::launch(bw.w.config());
    // The bot answers once the start-up reconciliation is done or has failed, which takes the
    // Telegram client's whole retry budget here: wait for that, then ask.
    let deadline = Instant::now() + Duration::from_secs(120);
    while running.daemon.health().bot_link() != Some(giftd::health::BotLink::Connected) {
        assert!(
            Instant::now() < deadline,
            "the bot did not connect: {:?}",
            running.daemon.health().bot_link()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = bw.bot.ask(p, "/inventory", "page 1 of 1").await;
    assert!(
        after.text.contains(&kind.title) && !after.text.contains("Gift "),
        "named from the stored catalogue, not a placeholder: {}",
        after.text
    );
    assert!(
        bw.w.sim
            .faults()
            .iter()
            .any(|f| matches!(f, tgsim::Fault::RpcError { .. })),
        "the listing stayed unavailable through the second run"
    );
    bw.w.sim.clear_faults();
    running.stop().await;
}

async fn chosen_language_is_kept(backend: Backend) {
    let mut bw = BotWorld::new(backend, 1, "").await;
    let p = bw.w.player(0);
    bw.lang(p, "en");
    let running = bw.start().await;
    bw.bot.ask(p, "/start", "Hello").await;
    let ask = bw.bot.ask(p, "/language", "Which language").await;
    let (_, chosen) = bw.bot.press(p, &ask, "Français").await;
    assert_eq!(chosen.msg_id, ask.msg_id);
    assert!(
        chosen.text.contains("je vous parle en français"),
        "{}",
        chosen.text
    );
    // The app still says English: the choice stands.
    bw.bot
        .ask(p, "/help", "/withdraw - récupérer un cadeau")
        .await;
    running.stop().await;

    // After a restart, a notification to the player is in the language they chose.
    let running = bw.start().await;
    bw.w.send(p, false);
    bw.w.send(p, false);
    bw.w.assert_exactly_once(Duration::from_secs(20)).await;
    let m = bw
        .bot
        .wait_messages(p, "the notifications", |m| {
            m.iter()
                .flat_map(|m| m.text.lines())
                .filter(|l| l.starts_with("Reçu"))
                .count()
                == 2
        })
        .await;
    let credits: Vec<&BotMessage> = m.iter().filter(|m| m.text.starts_with("Reçu")).collect();
    for c in &credits {
        // Every message lists its gifts, then the totals once, at the end.
        let last = c.text.lines().last().unwrap();
        assert!(last.starts_with("Vous détenez maintenant "), "{}", c.text);
        assert_eq!(c.text.matches("Vous détenez").count(), 1, "{}", c.text);
    }
    assert!(credits.iter().any(|c| c.text.contains("2 cadeaux")));
    // Choosing again switches back.
    let ask = bw.bot.ask(p, "/language", "Dans quelle langue").await;
    let (_, chosen) = bw.bot.press(p, &ask, "English").await;
    assert!(chosen.text.contains("I speak English"), "{}", chosen.text);
    bw.bot.ask(p, "/help", "/withdraw - get a gift back").await;
    running.stop().await;
}

on_both_stores!(
    current_thread: chosen_language_is_kept =>
        a_chosen_language_is_kept_across_a_restart_sqlite,
        a_chosen_language_is_kept_across_a_restart_through_the_bot_supabase
);
