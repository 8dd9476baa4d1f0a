use grammers_client::tl;

use crate::support::*;

#[tokio::test]
async fn player_text_reaches_the_bot_and_buttons_round_trip() {
    let sim = sim().await;
    let bot = sim.create_bot("giftd_bot").expect("bot");
    let player = user(&sim, "player");
    let mut c = TestClient::connect(&sim, bot.account.id).await;
    let mut stream = c.stream(&sim, false).await;
    c.client.get_me().await.expect("get_me");

    c.invoke(&tl::functions::bots::SetBotCommands {
        scope: tl::enums::BotCommandScope::Default,
        lang_code: String::new(),
        commands: vec![tl::enums::BotCommand::Command(tl::types::BotCommand {
            ephemeral: false,
            command: "inventory".into(),
            description: "your gifts".into(),
        })],
    })
    .await
    .expect("set commands");
    assert_eq!(
        sim.bot_commands(bot.account.id).expect("commands"),
        vec![("inventory".to_string(), "your gifts".to_string())]
    );

    let sent = sim
        .send_text_to_bot(player.id, bot.account.id, "/inventory")
        .expect("text");
    let (msg_id, from) = loop {
        if let tl::enums::Update::NewMessage(m) = stream.next(10).await
            && let tl::enums::Message::Message(m) = m.message
        {
            assert_eq!(m.message, "/inventory");
            break (m.id, (m.from_id, m.peer_id));
        }
    };
    assert_eq!(msg_id, sent);
    // Incoming private message: no from_id, the sender is the chat's peer.
    assert_eq!(
        from,
        (
            None,
            tl::enums::Peer::User(tl::types::PeerUser { user_id: player.id })
        )
    );

    let markup = tl::enums::ReplyMarkup::ReplyInlineMarkup(tl::types::ReplyInlineMarkup {
        force_reply: false,
        rows: vec![tl::enums::KeyboardInlineButtonRow::Row(
            tl::types::KeyboardInlineButtonRow {
                buttons: vec![tl::enums::KeyboardInlineButton::Button(
                    tl::types::KeyboardInlineButton {
                        style: None,
                        text: "Withdraw".into(),
                        r#type: tl::enums::InlineButtonType::Callback(
                            tl::types::InlineButtonTypeCallback {
                                requires_password: false,
                                data: b"wd:1".to_vec(),
                            },
                        ),
                    },
                )],
            },
        )],
    });
    let peer = tl::enums::InputPeer::User(tl::types::InputPeerUser {
        user_id: player.id,
        access_hash: player.access_hash,
    });
    let r = c
        .invoke(&tl::functions::messages::SendMessage {
            no_webpage: false,
            silent: false,
            background: false,
            clear_draft: false,
            noforwards: false,
            update_stickersets_order: false,
            invert_media: false,
            allow_paid_floodskip: false,
            peer: peer.clone(),
            reply_to: None,
            message: "You hold 0 gifts".into(),
            random_id: 42,
            reply_markup: Some(markup.clone()),
            entities: None,
            schedule_date: None,
            schedule_repeat_period: None,
            send_as: None,
            quick_reply_shortcut: None,
            effect: None,
            allow_paid_stars: None,
            suggested_post: None,
            rich_message: None,
        })
        .await
        .expect("send message");
    let tl::enums::Updates::UpdateShortSentMessage(short) = r else {
        panic!("expected updateShortSentMessage, got {r:?}");
    };
    let msgs = sim
        .bot_messages_to(bot.account.id, player.id)
        .expect("bot messages");
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].msg_id, short.id);
    assert_eq!(msgs[0].buttons[0][0].data.as_deref(), Some(&b"wd:1"[..]));

    let q = sim
        .press_button(player.id, bot.account.id, short.id, b"wd:1")
        .expect("press");
    let query = loop {
        if let tl::enums::Update::BotCallbackQuery(q) = stream.next(10).await {
            break q;
        }
    };
    assert_eq!(query.query_id, q);
    assert_eq!(query.data.as_deref(), Some(&b"wd:1"[..]));
    c.invoke(&tl::functions::messages::SetBotCallbackAnswer {
        alert: true,
        query_id: q,
        message: Some("Withdrawal queued".into()),
        url: None,
        cache_time: 0,
    })
    .await
    .expect("answer");
    assert_eq!(
        sim.callback_answer(q),
        Some(tgsim::CallbackAnswer {
            message: Some("Withdrawal queued".into()),
            alert: true
        })
    );
    c.invoke(&tl::functions::messages::EditMessage {
        no_webpage: false,
        invert_media: false,
        peer,
        id: short.id,
        message: Some("Withdrawal queued".into()),
        media: None,
        reply_markup: None,
        entities: None,
        schedule_date: None,
        schedule_repeat_period: None,
        quick_reply_shortcut_id: None,
        rich_message: None,
    })
    .await
    .expect("edit");
    let msgs = sim
        .bot_messages_to(bot.account.id, player.id)
        .expect("msgs");
    assert_eq!(msgs[0].text, "Withdrawal queued");
    assert!(msgs[0].edited);
    // An edit without reply_markup leaves the message without buttons.
    assert!(msgs[0].buttons.is_empty());
    let edit = |message: Option<&str>, reply_markup: Option<tl::enums::ReplyMarkup>| {
        tl::functions::messages::EditMessage {
            no_webpage: false,
            invert_media: false,
            peer: tl::enums::InputPeer::User(tl::types::InputPeerUser {
                user_id: player.id,
                access_hash: player.access_hash,
            }),
            id: short.id,
            message: message.map(str::to_owned),
            media: None,
            reply_markup,
            entities: None,
            schedule_date: None,
            schedule_repeat_period: None,
            quick_reply_shortcut_id: None,
            rich_message: None,
        }
    };
    // Same text, same (no) markup: MESSAGE_NOT_MODIFIED.
    let err = c
        .invoke(&edit(Some("Withdrawal queued"), None))
        .await
        .expect_err("not modified");
    assert!(err.is("MESSAGE_NOT_MODIFIED"), "{err}");
    // Only the markup changes: a real edit.
    c.invoke(&edit(Some("Withdrawal queued"), Some(markup.clone())))
        .await
        .expect("markup-only edit");
    assert_eq!(
        sim.bot_messages_to(bot.account.id, player.id)
            .expect("msgs")[0]
            .buttons
            .len(),
        1
    );
    // Same text and the same markup again: MESSAGE_NOT_MODIFIED.
    let err = c
        .invoke(&edit(None, Some(markup.clone())))
        .await
        .expect_err("not modified");
    assert!(err.is("MESSAGE_NOT_MODIFIED"), "{err}");
    // Unknown button data is refused.
    assert!(
        sim.press_button(player.id, bot.account.id, short.id, b"nope")
            .is_err()
    );
    // getDialogs lists the player.
    let d = c
        .invoke(&tl::functions::messages::GetDialogs {
            exclude_pinned: false,
            folder_id: None,
            offset_date: 0,
            offset_id: 0,
            offset_peer: tl::enums::InputPeer::Empty,
            limit: 10,
            hash: 0,
        })
        .await
        .expect("dialogs");
    let tl::enums::messages::Dialogs::Dialogs(d) = d else {
        panic!("full dialogs expected");
    };
    assert_eq!(d.dialogs.len(), 1);
}

/// The same round trip driven by grammers' high-level bot API (message.reply, query.answer,
/// query.load_message), as giftd's bot uses it.
#[tokio::test]
async fn high_level_grammers_bot_api_works() {
    use grammers_client::message::{Button, InputMessage, ReplyMarkup};
    use grammers_client::sender::UpdatesConfiguration;
    use grammers_client::update::Update;
    use std::time::Duration;

    let sim = sim().await;
    let bot = sim.create_bot("giftd_bot").expect("bot");
    let player = user(&sim, "player");
    let mut c = TestClient::connect(&sim, bot.account.id).await;
    let rx = c.updates.take().expect("updates");
    let before = state_calls(&sim);
    let mut stream = c
        .client
        .stream_updates(rx, UpdatesConfiguration { catch_up: false })
        .await
        .expect("stream");
    let task = tokio::spawn(async move {
        loop {
            match stream.next().await.expect("update") {
                Update::NewMessage(m) if m.text() == "/inventory" => {
                    let markup =
                        ReplyMarkup::from_buttons(&[vec![Button::data("Withdraw", b"wd:1")]]);
                    Box::pin(
                        m.reply(
                            InputMessage::new()
                                .text("You hold 0 gifts")
                                .reply_markup(markup),
                        ),
                    )
                    .await
                    .expect("reply");
                }
                Update::CallbackQuery(q) => {
                    assert_eq!(q.data(), b"wd:1");
                    let msg = q.load_message().await.expect("load message");
                    assert_eq!(msg.text(), "You hold 0 gifts");
                    q.answer()
                        .alert("Withdrawal queued")
                        .send()
                        .await
                        .expect("answer");
                    msg.edit("Withdrawal queued").await.expect("edit");
                }
                _ => {}
            }
        }
    });
    for _ in 0..100 {
        if state_calls(&sim) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    sim.send_text_to_bot(player.id, bot.account.id, "/inventory")
        .expect("text");
    let mut msgs = Vec::new();
    for _ in 0..100 {
        msgs = sim
            .bot_messages_to(bot.account.id, player.id)
            .expect("msgs");
        if !msgs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(msgs.len(), 1, "the bot replied");
    let q = sim
        .press_button(player.id, bot.account.id, msgs[0].msg_id, b"wd:1")
        .expect("press");
    let mut answer = None;
    for _ in 0..100 {
        answer = sim.callback_answer(q);
        let edited = sim
            .bot_messages_to(bot.account.id, player.id)
            .expect("msgs")[0]
            .edited;
        if answer.is_some() && edited {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        answer,
        Some(tgsim::CallbackAnswer {
            message: Some("Withdrawal queued".into()),
            alert: true
        })
    );
    let msgs = sim
        .bot_messages_to(bot.account.id, player.id)
        .expect("msgs");
    assert_eq!(msgs[0].text, "Withdrawal queued");
    assert!(!task.is_finished(), "the bot loop must still be running");
    task.abort();
}

fn text_to(user: &tgsim::Account, text: &str) -> tl::functions::messages::SendMessage {
    tl::functions::messages::SendMessage {
        no_webpage: false,
        silent: false,
        background: false,
        clear_draft: false,
        noforwards: false,
        update_stickersets_order: false,
        invert_media: false,
        allow_paid_floodskip: false,
        peer: tl::enums::InputPeer::User(tl::types::InputPeerUser {
            user_id: user.id,
            access_hash: user.access_hash,
        }),
        reply_to: None,
        message: text.into(),
        random_id: rand::random(),
        reply_markup: None,
        entities: None,
        schedule_date: None,
        schedule_repeat_period: None,
        send_as: None,
        quick_reply_shortcut: None,
        effect: None,
        allow_paid_stars: None,
        suggested_post: None,
        rich_message: None,
    }
}

fn flood_seconds(e: grammers_client::InvocationError) -> u32 {
    match e {
        grammers_client::InvocationError::Rpc(rpc) if rpc.name == "FLOOD_WAIT" => {
            rpc.value.expect("FLOOD_WAIT carries its seconds")
        }
        other => panic!("expected FLOOD_WAIT, got {other:?}"),
    }
}

#[tokio::test]
async fn bots_get_flood_wait_past_a_short_burst_per_chat_and_thirty_overall() {
    let sim = sim().await;
    let bot = sim.create_bot("limits_bot").expect("bot");
    let players: Vec<tgsim::Account> = (0..31).map(|i| user(&sim, &format!("pl{i}"))).collect();
    let c = TestClient::connect(&sim, bot.account.id).await;
    // A short burst of 3 in one chat is tolerated; a 4th within the second is not.
    for text in ["one", "two", "three"] {
        c.invoke(&text_to(&players[0], text))
            .await
            .expect("inside the burst");
    }
    let e = c
        .invoke(&text_to(&players[0], "four"))
        .await
        .expect_err("a fourth message to the chat within a second");
    assert_eq!(flood_seconds(e), 1);
    assert_eq!(
        sim.bot_messages_to(bot.account.id, players[0].id)
            .unwrap()
            .len(),
        3
    );
    let mut refused = 0;
    for p in &players[1..] {
        if let Err(e) = c.invoke(&text_to(p, "hi")).await {
            assert!(flood_seconds(e) >= 1);
            refused += 1;
        }
    }
    // 30 a second: the 31st send within one second is refused (a slow machine may let a
    // second pass, never more than 30 in one).
    let sent: usize = players
        .iter()
        .map(|p| sim.bot_messages_to(bot.account.id, p.id).unwrap().len())
        .sum();
    assert!(sent <= 32 + refused, "{sent} sent");
    assert!(refused >= 1 || sent <= 30, "{sent} sent, none refused");
    // A user account is not limited.
    let u = TestClient::connect(&sim, players[1].id).await;
    for _ in 0..3 {
        u.invoke(&text_to(&players[2], "chat"))
            .await
            .expect("users are not limited here");
    }
}

#[tokio::test]
async fn commands_per_language_and_lang_code_shown_to_bots_only() {
    let sim = sim().await;
    let bot = sim.create_bot("lang_bot").expect("bot");
    let player = user(&sim, "francophone");
    sim.set_lang_code(player.id, Some("fr")).unwrap();
    let c = TestClient::connect(&sim, bot.account.id).await;
    let cmd = |d: &str| {
        vec![tl::enums::BotCommand::Command(tl::types::BotCommand {
            ephemeral: false,
            command: "stats".into(),
            description: d.into(),
        })]
    };
    for (lang, d) in [("", "your figures"), ("fr", "vos chiffres")] {
        c.invoke(&tl::functions::bots::SetBotCommands {
            scope: tl::enums::BotCommandScope::Default,
            lang_code: lang.into(),
            commands: cmd(d),
        })
        .await
        .expect("set commands");
    }
    let want = |d: &str| vec![("stats".to_string(), d.to_string())];
    assert_eq!(
        sim.bot_commands_for(bot.account.id, "fr").unwrap(),
        want("vos chiffres")
    );
    assert_eq!(
        sim.bot_commands_for(bot.account.id, "de").unwrap(),
        want("your figures")
    );
    assert_eq!(
        sim.bot_commands(bot.account.id).unwrap(),
        want("your figures")
    );

    let seen_by = |viewer: i64| match sim.user_as_seen_by(player.id, viewer) {
        Some(tl::enums::User::User(u)) => u.lang_code,
        _ => None,
    };
    assert_eq!(seen_by(bot.account.id), Some("fr".to_owned()));
    let other = user(&sim, "someone");
    assert_eq!(seen_by(other.id), None);
}
