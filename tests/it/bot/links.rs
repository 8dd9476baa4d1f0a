//! Linking a web account to a Telegram account through the bot: `/start <token>` asks, and
//! only the same player's confirmation spends the token; a replacement needs its own.

use std::sync::Arc;
use std::time::Duration;

use giftd::store::Store;

use crate::support::{Backend, button};

use super::BotWorld;

fn link_label(text: &str) -> giftd::store::LinkLabel {
    giftd::store::LinkLabel::new(text).unwrap()
}

/// A link token for `web` labelled `label`, valid for `ttl`, as the `/start` command that
/// spends it.
async fn start_link(
    store: &Arc<dyn Store>,
    web: giftd::store::WebUserId,
    label: &str,
    ttl: Duration,
) -> String {
    let token = store
        .create_link_token(web, &link_label(label), ttl)
        .await
        .unwrap();
    format!("/start {}", token.token.expose())
}

fn new_web_user() -> giftd::store::WebUserId {
    giftd::store::WebUserId::new(uuid::Uuid::from_u128(rand::random()))
}

/// `/start <token>` only asks, naming the web account; only the same player's Link spends the
/// token: another user pressing (forging) the button gets nothing linked. Expired, used and
/// unknown tokens each get their answer.
#[tokio::test]
async fn link_tokens_are_spent_only_by_their_players_confirmation() {
    let bw = BotWorld::new(Backend::sqlite(), 3, "").await;
    let (en, fr, thief) = (bw.w.player(0), bw.w.player(1), bw.w.player(2));
    bw.lang(fr, "fr");
    let running = bw.start().await;
    let store = bw.w.store().await;
    let web = new_web_user();
    let start = start_link(&store, web, "e•••@example.com", Duration::from_secs(600)).await;
    let ask = bw
        .bot
        .ask(en, &start, "web account e•••@example.com?")
        .await;
    assert_eq!(
        store.linked_telegram_user(web).await.unwrap(),
        None,
        "asking links nothing"
    );

    // Another user presses the same Link (forged into their own chat): refused.
    let own = bw.bot.ask(thief, "/start", "/inventory").await;
    let link_data = String::from_utf8(button(&ask, "✅ Link")).unwrap();
    let answer = bw.bot.forge(thief, own.msg_id, &link_data).await;
    assert_eq!(
        answer.message.as_deref(),
        Some("This question has expired. Open the link from the website again.")
    );
    assert_eq!(store.linked_telegram_user(web).await.unwrap(), None);

    // The player's own Link.
    let (_, after) = bw.bot.press(en, &ask, "✅ Link").await;
    assert!(
        after
            .text
            .contains("linked to the web account e•••@example.com"),
        "{}",
        after.text
    );
    assert!(after.buttons.iter().flatten().next().is_none());
    assert_eq!(store.linked_telegram_user(web).await.unwrap(), Some(en));
    // The same data again (the message lost its buttons): the question is gone.
    let answer = bw.bot.forge(en, ask.msg_id, &link_data).await;
    assert_eq!(
        answer.message.as_deref(),
        Some("This question has expired. Open the link from the website again.")
    );
    // Used by someone else; opened again by its player.
    bw.bot.ask(fr, &start, "Ce lien a déjà servi").await;
    bw.bot
        .ask(en, &start, "linked to the web account e•••@example.com")
        .await;

    let short = start_link(&store, new_web_user(), "s", Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    bw.bot.ask(fr, &short, "Ce lien a expiré").await;
    bw.bot
        .ask(en, "/start NoSuchToken123", "This link is not valid")
        .await;
    bw.bot
        .ask(fr, "/start bad$token", "Ce lien n'est pas valide")
        .await;
    assert_eq!(store.linked_telegram_user(web).await.unwrap(), Some(en));
    running.stop().await;
}

/// A player linked to one web account who opens another's link is asked about the
/// replacement; Cancel keeps the old link (and the token unspent); Replace links the new one
/// and the replaced web account can read that it was replaced.
#[tokio::test]
async fn replacing_a_link_needs_its_own_confirmation_and_cancel_keeps_the_old_one() {
    let bw = BotWorld::new(Backend::sqlite(), 1, "").await;
    let player = bw.w.player(0);
    let running = bw.start().await;
    let store = bw.w.store().await;
    let (old, new) = (new_web_user(), new_web_user());
    let first = start_link(&store, old, "old•••@example.com", Duration::from_secs(600)).await;
    let ask = bw.bot.ask(player, &first, "old•••@example.com?").await;
    bw.bot.press(player, &ask, "✅ Link").await;
    assert_eq!(store.linked_telegram_user(old).await.unwrap(), Some(player));

    let start = start_link(&store, new, "new•••@example.com", Duration::from_secs(600)).await;
    let ask = bw
        .bot
        .ask(
            player,
            &start,
            "linked to the web account old•••@example.com",
        )
        .await;
    assert!(ask.text.contains("new•••@example.com"), "{}", ask.text);
    let (_, after) = bw.bot.press(player, &ask, "Cancel").await;
    assert_eq!(after.text, "Nothing was linked.");
    assert_eq!(store.linked_telegram_user(old).await.unwrap(), Some(player));
    assert_eq!(store.linked_telegram_user(new).await.unwrap(), None);
    assert!(store.replaced_links(old).await.unwrap().is_empty());

    // Asked again, and this time the player replaces the link.
    let ask = bw
        .bot
        .ask(
            player,
            &start,
            "linked to the web account old•••@example.com",
        )
        .await;
    let (_, after) = bw.bot.press(player, &ask, "Replace the link").await;
    assert!(after.text.contains("new•••@example.com"), "{}", after.text);
    assert_eq!(store.linked_telegram_user(new).await.unwrap(), Some(player));
    assert_eq!(store.linked_telegram_user(old).await.unwrap(), None);
    let replaced = store.replaced_links(old).await.unwrap();
    assert_eq!(replaced.len(), 1);
    assert_eq!(
        (replaced[0].telegram_user, replaced[0].replaced_by),
        (player, new)
    );
    running.stop().await;
}
