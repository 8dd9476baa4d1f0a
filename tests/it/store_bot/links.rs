//! Link tokens for web accounts: spent once, only with the player's consent, one link per player.

use super::*;

// ---------------------------------------------------------------------------------------------
// Link tokens
// ---------------------------------------------------------------------------------------------

pub(super) fn label(text: &str) -> LinkLabel {
    LinkLabel::new(text).unwrap()
}

pub(super) async fn link_tokens_link_once_and_say_why_not(backend: Backend) {
    let store = backend.open().await;
    let (web, player, other) = (web_user(), unique_id(), unique_id());
    let token = store
        .create_link_token(web, &label("a•••@example.com"), Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(format!("{:?}", token.token), "[redacted]");
    assert_eq!(token.web_user, web);
    assert_eq!(token.token.expose().len(), 64);
    assert_eq!(store.linked_telegram_user(web).await.unwrap(), None);
    let linked = LinkOutcome::Linked {
        web_user: web,
        label: "a•••@example.com".into(),
    };

    // Looking writes nothing: the player is asked first.
    for _ in 0..2 {
        assert_eq!(
            store
                .peek_link_token(token.token.expose(), player)
                .await
                .unwrap(),
            LinkOutcome::Ask {
                web_user: web,
                label: "a•••@example.com".into(),
                replaces: None
            }
        );
    }
    assert_eq!(store.linked_telegram_user(web).await.unwrap(), None);

    assert_eq!(
        store
            .consume_link_token(token.token.expose(), player, false)
            .await
            .unwrap(),
        linked
    );
    assert_eq!(store.linked_telegram_user(web).await.unwrap(), Some(player));
    // The same player opening the same link again: the same answer, nothing changes.
    assert_eq!(
        store
            .consume_link_token(token.token.expose(), player, false)
            .await
            .unwrap(),
        linked
    );
    assert_eq!(
        store
            .peek_link_token(token.token.expose(), player)
            .await
            .unwrap(),
        linked
    );
    // Anyone else: used, and the link stays.
    assert_eq!(
        store
            .consume_link_token(token.token.expose(), other, true)
            .await
            .unwrap(),
        LinkOutcome::Used
    );
    assert_eq!(
        store
            .peek_link_token(token.token.expose(), other)
            .await
            .unwrap(),
        LinkOutcome::Used
    );
    assert_eq!(store.linked_telegram_user(web).await.unwrap(), Some(player));

    let expired = store
        .create_link_token(web_user(), &label("x"), Duration::ZERO)
        .await
        .unwrap();
    for outcome in [
        store.peek_link_token(expired.token.expose(), other).await,
        store
            .consume_link_token(expired.token.expose(), other, false)
            .await,
    ] {
        assert_eq!(outcome.unwrap(), LinkOutcome::Expired);
    }
    assert_eq!(
        store.linked_telegram_user(expired.web_user).await.unwrap(),
        None,
        "an expired token links nothing"
    );
    assert_eq!(
        store
            .consume_link_token("no-such-token", other, false)
            .await
            .unwrap(),
        LinkOutcome::Unknown
    );
    // A token's hash is all the store has: the hash itself is not a token.
    let hash = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(token.token.expose().as_bytes()))
    };
    assert_eq!(
        store.consume_link_token(&hash, other, false).await.unwrap(),
        LinkOutcome::Unknown
    );

    let err = store
        .create_link_token(web, &label("x"), Duration::from_secs(25 * 3600))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LinkTokenTtl { .. }), "{err}");
    assert!(!err.is_retryable());
}

/// A web account linking another Telegram user replaces its own earlier link (its owner minted
/// the token). A player linked to one web account is linked to another only with their second
/// confirmation (`replace`); without it nothing is written, and the replaced web account can
/// read that it was replaced.
pub(super) async fn relinking_needs_the_players_consent_and_tells_the_replaced_account(
    backend: Backend,
) {
    let store = backend.open().await;
    let (w1, w2) = (web_user(), web_user());
    let (t1, t2) = (unique_id(), unique_id());
    let mint = |web: WebUserId, name: &'static str| {
        let store = store.clone();
        async move {
            store
                .create_link_token(web, &label(name), Duration::from_secs(600))
                .await
                .unwrap()
        }
    };
    let linked = |web: WebUserId, name: &str| LinkOutcome::Linked {
        web_user: web,
        label: name.into(),
    };
    let first = mint(w1, "one").await;
    assert_eq!(
        store
            .consume_link_token(first.token.expose(), t1, false)
            .await
            .unwrap(),
        linked(w1, "one")
    );
    // The web account links another Telegram user: its own link moves, no question.
    let again = mint(w1, "one").await;
    assert_eq!(
        store
            .consume_link_token(again.token.expose(), t2, false)
            .await
            .unwrap(),
        linked(w1, "one")
    );
    assert_eq!(store.linked_telegram_user(w1).await.unwrap(), Some(t2));

    // That Telegram user opens another web account's token: asked, and a plain Confirm is not
    // enough.
    let other = mint(w2, "two").await;
    let replaces = Some(Replaced {
        web_user: w1,
        label: "one".into(),
    });
    assert_eq!(
        store
            .peek_link_token(other.token.expose(), t2)
            .await
            .unwrap(),
        LinkOutcome::Ask {
            web_user: w2,
            label: "two".into(),
            replaces: replaces.clone()
        }
    );
    assert_eq!(
        store
            .consume_link_token(other.token.expose(), t2, false)
            .await
            .unwrap(),
        LinkOutcome::NeedsReplace {
            web_user: w2,
            label: "two".into(),
            replaces: replaces.clone().unwrap()
        }
    );
    assert_eq!(store.linked_telegram_user(w1).await.unwrap(), Some(t2));
    assert_eq!(store.linked_telegram_user(w2).await.unwrap(), None);
    assert!(store.replaced_links(w1).await.unwrap().is_empty());

    // Confirmed: replaced, and w1 can see it.
    assert_eq!(
        store
            .consume_link_token(other.token.expose(), t2, true)
            .await
            .unwrap(),
        linked(w2, "two")
    );
    assert_eq!(store.linked_telegram_user(w2).await.unwrap(), Some(t2));
    assert_eq!(store.linked_telegram_user(w1).await.unwrap(), None);
    let replaced = store.replaced_links(w1).await.unwrap();
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert_eq!(
        (replaced[0].telegram_user, replaced[0].replaced_by),
        (t2, w2)
    );
    assert!(store.replaced_links(w2).await.unwrap().is_empty());
}

pub(super) async fn links_made_at_once_for_one_player_leave_one_link(backend: Backend) {
    let (a, b) = (backend.open().await, backend.open().await);
    for _ in 0..5 {
        let (w1, w2, player) = (web_user(), web_user(), unique_id());
        let t1 = a.create_link_token(w1, &label("1"), LEASE).await.unwrap();
        let t2 = a.create_link_token(w2, &label("2"), LEASE).await.unwrap();
        let (r1, r2) = tokio::join!(
            a.consume_link_token(t1.token.expose(), player, true),
            b.consume_link_token(t2.token.expose(), player, true),
        );
        assert_eq!(
            r1.unwrap(),
            LinkOutcome::Linked {
                web_user: w1,
                label: "1".into()
            }
        );
        assert_eq!(
            r2.unwrap(),
            LinkOutcome::Linked {
                web_user: w2,
                label: "2".into()
            }
        );
        let linked = (
            a.linked_telegram_user(w1).await.unwrap(),
            a.linked_telegram_user(w2).await.unwrap(),
        );
        assert!(
            linked == (Some(player), None) || linked == (None, Some(player)),
            "{linked:?}"
        );
    }
}
