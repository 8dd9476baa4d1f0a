//! The store's side of the companion bot, on both stores (the contract pattern of
//! `store_contract/`): link tokens for web accounts and the notifications outbox; and,
//! through PostgREST only, row level security for a JWT that carries only `sub`, and the
//! `request_link_token` RPC.
//!
//! Claims hand out every pending row of the database, other tests' too: the tests that claim
//! have `notifications_claim` in their name and run one at a time (.config/nextest.toml), and
//! look only at their own users' rows. The tests that only write notifications read their rows
//! beside the store and never assert a row's state, which a claiming test may change.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use giftd::gift::{ItemKey, Owner, Status, UserId};
use giftd::store::{
    Canceller, LinkLabel, LinkOutcome, Notification, NotificationKind, NotificationOutcome,
    Replaced, RequestState, Store, StoreError, WaitReason, WebUserId, WithdrawalMove,
};

use crate::store_contract::{attribution, claim, collectible, departures, deposit, regular};
use crate::support::{Backend, NoteRow, unique_id};

mod links;
mod notifications;
mod supabase_web;

use links::*;
use notifications::*;

contract!(
    link_tokens_link_once_and_say_why_not,
    relinking_needs_the_players_consent_and_tells_the_replaced_account,
    links_made_at_once_for_one_player_leave_one_link,
    credits_are_announced_once_even_when_replayed,
    each_withdrawal_step_is_announced_once,
    notifications_claim_and_finish_at_most_once,
    notifications_claimers_never_share_a_row,
    notifications_claim_prunes_old_rows_and_gives_up_stale_ones,
    notifications_claim_again_what_could_not_reach_a_player_once_within_the_age,
    players_languages_keep_a_choice_over_telegrams_code,
);

const LEASE: Duration = Duration::from_secs(120);

fn web_user() -> WebUserId {
    WebUserId::new(uuid::Builder::from_random_bytes(rand::random()).into_uuid())
}

fn kinds(rows: &[NoteRow]) -> Vec<&str> {
    rows.iter().map(|r| r.kind.as_str()).collect()
}

/// A file written by a giftd of schema version 3 (link tokens naming a Telegram user, no links,
/// no outbox) is upgraded when opened; what was deposited before is not announced afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_version_3_file_is_upgraded() {
    let backend = Backend::sqlite();
    let account = unique_id();
    let player = unique_id();
    {
        let store = backend.open().await;
        store
            .apply_batch(&deposit(vec![regular(account, 1, Owner::User(player))]))
            .await
            .unwrap();
    }
    {
        let db = libsql::Builder::new_local(backend.sqlite_path().unwrap())
            .build()
            .await
            .unwrap();
        let conn = db.connect().unwrap();
        conn.execute_batch(
            "DROP TABLE link_tokens; DROP TABLE web_links; DROP TABLE notifications;
             CREATE TABLE link_tokens (token_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL,
               created_at_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL,
               used_at_ms INTEGER);
             CREATE INDEX link_tokens_user ON link_tokens (user_id);
             INSERT INTO link_tokens VALUES ('abc', 42, 0, 9999999999999, NULL);
             UPDATE schema_version SET version = 3;",
        )
        .await
        .unwrap();
    }
    let store = backend.open().await;
    assert_eq!(
        store.check_schema().await.unwrap(),
        giftd::store::SCHEMA_VERSION
    );
    assert!(backend.notifications_of(player).await.is_empty());
    store
        .apply_batch(&deposit(vec![regular(account, 2, Owner::User(player))]))
        .await
        .unwrap();
    assert_eq!(
        kinds(&backend.notifications_of(player).await),
        vec!["deposit"]
    );
    let web = web_user();
    let token = store
        .create_link_token(web, &label("w"), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        store
            .consume_link_token(token.token.expose(), player, false)
            .await
            .unwrap(),
        LinkOutcome::Linked {
            web_user: web,
            label: "w".into()
        }
    );
    assert_eq!(
        store
            .consume_link_token("abc", player, false)
            .await
            .unwrap(),
        LinkOutcome::Unknown,
        "version 3's tokens are gone"
    );
}

async fn players_languages_keep_a_choice_over_telegrams_code(backend: Backend) {
    use giftd::store::PlayerLanguage;
    let store = backend.open().await;
    let player = unique_id();
    let lang = |code: &str, chosen| PlayerLanguage {
        code: code.into(),
        chosen,
    };
    assert_eq!(store.language(player).await.unwrap(), None);
    assert_eq!(
        store.note_language(player, "en-GB", false).await.unwrap(),
        lang("en-GB", false)
    );
    assert_eq!(
        store.note_language(player, "de", false).await.unwrap(),
        lang("de", false),
        "Telegram's code follows the app"
    );
    assert_eq!(
        store.note_language(player, "fr", true).await.unwrap(),
        lang("fr", true)
    );
    assert_eq!(
        store.note_language(player, "en", false).await.unwrap(),
        lang("fr", true),
        "a choice stands over the app's language"
    );
    assert_eq!(
        store.note_language(player, "en", true).await.unwrap(),
        lang("en", true)
    );
    assert_eq!(
        store.language(player).await.unwrap(),
        Some(lang("en", true))
    );
    for bad in ["", "fr'; drop table players; --", &"x".repeat(36)] {
        assert!(
            matches!(
                store.note_language(player, bad, false).await,
                Err(StoreError::InvalidLanguage(_))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        store.language(player).await.unwrap(),
        Some(lang("en", true))
    );
}
