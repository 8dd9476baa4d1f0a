//! Through PostgREST only: a web account's JWT (only `sub`) and `request_link_token`.

use super::*;
use crate::support::{env, mint_jwt};

async fn call(
    method: reqwest::Method,
    path: &str,
    bearer: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}/{path}", env("GIFTD_TEST_REST_URL")))
        .header("apikey", env("GIFTD_TEST_ANON_KEY"))
        .bearer_auth(bearer)
        .timeout(Duration::from_secs(20));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

async fn get(path: &str, bearer: &str) -> (u16, serde_json::Value) {
    call(reqwest::Method::GET, path, bearer, None).await
}

/// A signed-in (not anonymous) web user's JWT, as Supabase Auth issues it.
fn web_jwt(web: WebUserId) -> String {
    mint_jwt(serde_json::json!({
        "role": "authenticated", "sub": web.to_string(), "email": "owner@example.com",
        "is_anonymous": false
    }))
}

fn count(rows: &serde_json::Value) -> Option<usize> {
    rows.as_array().map(Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_only_jwt_reads_its_linked_players_rows_and_nothing_else() {
    let store = Backend::supabase().open().await;
    let account = unique_id();
    let (player, stranger) = (unique_id(), unique_id());
    store
        .apply_batch(&deposit(vec![
            regular(account, 1, Owner::User(player)),
            regular(account, 2, Owner::User(player)),
            regular(account, 3, Owner::User(stranger)),
            regular(account, 4, Owner::Unattributed),
        ]))
        .await
        .unwrap();
    store
        .create_withdrawal(stranger, ItemKey::new(account, 3))
        .await
        .unwrap();
    let (linked, unlinked) = (web_user(), web_user());
    let token = store
        .create_link_token(linked, &label("l"), Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(
        store
            .consume_link_token(token.token.expose(), player, false)
            .await
            .unwrap(),
        LinkOutcome::Linked {
            web_user: linked,
            label: "l".into()
        }
    );

    let path = format!("inventory?account_id=eq.{account}&order=msg_id");
    let (status, rows) = get(&path, &web_jwt(linked)).await;
    assert_eq!(status, 200, "{rows}");
    let msgs: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["msg_id"].as_i64().unwrap())
        .collect();
    assert_eq!(msgs, vec![1, 2], "the linked player's items, nobody else's");
    let (_, rows) = get(
        &format!("transactions?account_id=eq.{account}"),
        &web_jwt(linked),
    )
    .await;
    assert_eq!(count(&rows), Some(2), "{rows}");
    let (_, rows) = get(
        &format!("withdrawals?account_id=eq.{account}"),
        &web_jwt(linked),
    )
    .await;
    assert_eq!(count(&rows), Some(0), "{rows}");
    let (_, rows) = get(
        &format!("users?id=in.({player},{stranger})"),
        &web_jwt(linked),
    )
    .await;
    assert_eq!(count(&rows), Some(1), "{rows}");
    let (_, rows) = get("web_links", &web_jwt(linked)).await;
    assert_eq!(count(&rows), Some(1), "{rows}");
    assert_eq!(rows[0]["telegram_user_id"].as_i64(), Some(player));

    // An unlinked web account, a JWT with a sub that is no uuid, anon: nothing.
    for bearer in [
        web_jwt(unlinked),
        mint_jwt(serde_json::json!({ "role": "authenticated", "sub": "1 or 1=1" })),
        env("GIFTD_TEST_ANON_KEY"),
    ] {
        for path in [
            format!("inventory?account_id=eq.{account}"),
            format!("transactions?account_id=eq.{account}"),
            format!("withdrawals?account_id=eq.{account}"),
            format!("users?id=in.({player},{stranger})"),
            "web_links".to_owned(),
        ] {
            let (status, rows) = get(&path, &bearer).await;
            assert!(
                status >= 400 || count(&rows) == Some(0),
                "{path}: {status} {rows}"
            );
        }
        for table in ["notifications", "link_tokens"] {
            let (status, rows) = get(table, &bearer).await;
            assert!(
                status >= 400 || count(&rows) == Some(0),
                "{table}: {status} {rows}"
            );
        }
    }
    // Nor does a linked web account see the outbox or the tokens.
    for table in ["notifications", "link_tokens"] {
        let (status, rows) = get(table, &web_jwt(linked)).await;
        assert!(
            status >= 400 || count(&rows) == Some(0),
            "{table}: {status} {rows}"
        );
    }

    // The web app asks for a withdrawal for the linked player: only their own items.
    let (status, answer) = call(
        reqwest::Method::POST,
        "rpc/request_withdrawal",
        &web_jwt(linked),
        Some(serde_json::json!({ "p_account_id": account, "p_msg_id": 1 })),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["created"], true, "{answer}");
    let (_, answer) = call(
        reqwest::Method::POST,
        "rpc/request_withdrawal",
        &web_jwt(linked),
        Some(serde_json::json!({ "p_account_id": account, "p_msg_id": 3 })),
    )
    .await;
    // Someone else's item: the same answer as no item.
    assert_eq!(answer["error"], "not_found", "{answer}");
    let (_, answer) = call(
        reqwest::Method::POST,
        "rpc/request_withdrawal",
        &web_jwt(unlinked),
        Some(serde_json::json!({ "p_account_id": account, "p_msg_id": 2 })),
    )
    .await;
    assert_eq!(answer["error"], "not_signed_in", "{answer}");
    let (_, rows) = get(
        &format!("withdrawals?account_id=eq.{account}"),
        &web_jwt(linked),
    )
    .await;
    assert_eq!(count(&rows), Some(1), "{rows}");
}

/// The web account whose link a player replaced reads the replacement (and only its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_web_account_sees_its_replacement() {
    let store = Backend::supabase().open().await;
    let (old, new, stranger) = (web_user(), web_user(), web_user());
    let player = unique_id();
    for (web, replace) in [(old, false), (new, true)] {
        let token = store
            .create_link_token(web, &label("x"), Duration::from_secs(600))
            .await
            .unwrap();
        store
            .consume_link_token(token.token.expose(), player, replace)
            .await
            .unwrap();
    }
    let (status, rows) = get("web_link_replacements", &web_jwt(old)).await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(count(&rows), Some(1), "{rows}");
    assert_eq!(rows[0]["replaced_by"], new.to_string(), "{rows}");
    assert_eq!(rows[0]["telegram_user_id"], player, "{rows}");
    for other in [new, stranger] {
        let (_, rows) = get("web_link_replacements", &web_jwt(other)).await;
        assert_eq!(count(&rows), Some(0), "{rows}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_link_token_mints_for_the_signed_in_web_user_only() {
    let store = Backend::supabase().open().await;
    let web = web_user();
    let (status, answer) = call(
        reqwest::Method::POST,
        "rpc/request_link_token",
        &web_jwt(web),
        Some(serde_json::json!({ "p_ttl_seconds": 600 })),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["web_user_id"], web.to_string(), "{answer}");
    // The label is made from the JWT's e-mail, masked: never from an argument.
    assert_eq!(answer["label"], "o•••@example.com", "{answer}");
    let token = answer["token"].as_str().expect("a token").to_owned();
    // Without an argument: 15 minutes.
    let (_, default) = call(
        reqwest::Method::POST,
        "rpc/request_link_token",
        &web_jwt(web_user()),
        Some(serde_json::json!({})),
    )
    .await;
    let left = default["expires_at_ms"].as_i64().expect("a token") - giftd_now_ms();
    assert!((800_000..=1_000_000).contains(&left), "{default}");
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    let expires = answer["expires_at_ms"].as_i64().unwrap();
    let left = expires - giftd_now_ms();
    assert!((500_000..=700_000).contains(&left), "{left} ms left");
    // Only the hash is stored.
    let stored = crate::support::psql(
        &env("GIFTD_TEST_PG_URL"),
        &format!("select count(*) from public.link_tokens where token_hash = '{token}'"),
    );
    assert_eq!(stored, "0");

    let player = unique_id();
    assert_eq!(
        store.peek_link_token(&token, player).await.unwrap(),
        LinkOutcome::Ask {
            web_user: web,
            label: "o•••@example.com".into(),
            replaces: None
        }
    );
    assert_eq!(
        store
            .consume_link_token(&token, player, false)
            .await
            .unwrap(),
        LinkOutcome::Linked {
            web_user: web,
            label: "o•••@example.com".into()
        }
    );
    assert_eq!(store.linked_telegram_user(web).await.unwrap(), Some(player));

    // No sub, a sub that is no uuid, a bad ttl: refused; anon may not call it at all.
    for (bearer, ttl, error) in [
        (
            mint_jwt(serde_json::json!({ "role": "authenticated" })),
            600,
            "not_signed_in",
        ),
        (
            mint_jwt(serde_json::json!({ "role": "authenticated", "sub": "42" })),
            600,
            "not_signed_in",
        ),
        (web_jwt(web), 10, "bad_ttl"),
        (web_jwt(web), 100_000, "bad_ttl"),
        // An anonymous Supabase session (signInAnonymously) is anyone: no token.
        (
            mint_jwt(serde_json::json!({
                "role": "authenticated", "sub": web_user().to_string(), "is_anonymous": true
            })),
            600,
            "anonymous",
        ),
        // No e-mail and no phone: nothing to show the player.
        (
            mint_jwt(serde_json::json!({
                "role": "authenticated", "sub": web_user().to_string()
            })),
            600,
            "no_identity",
        ),
    ] {
        let (status, answer) = call(
            reqwest::Method::POST,
            "rpc/request_link_token",
            &bearer,
            Some(serde_json::json!({ "p_ttl_seconds": ttl })),
        )
        .await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (200, Some(error)),
            "{answer}"
        );
    }
    let (status, answer) = call(
        reqwest::Method::POST,
        "rpc/request_link_token",
        &env("GIFTD_TEST_ANON_KEY"),
        Some(serde_json::json!({ "p_ttl_seconds": 600 })),
    )
    .await;
    assert!(
        status >= 400 && answer.get("token").is_none(),
        "anon: {status} {answer}"
    );

    // At most 10 live tokens per web account.
    let busy = web_user();
    for n in 0..11 {
        let (_, answer) = call(
            reqwest::Method::POST,
            "rpc/request_link_token",
            &web_jwt(busy),
            Some(serde_json::json!({ "p_ttl_seconds": 600 })),
        )
        .await;
        if n < 10 {
            assert!(answer["token"].is_string(), "{n}: {answer}");
        } else {
            assert_eq!(answer["error"], "too_many_tokens", "{answer}");
        }
    }
    // Players cannot call giftd's own link functions.
    let (status, _) = call(
        reqwest::Method::POST,
        "rpc/giftd_consume_link_token",
        &web_jwt(web),
        Some(serde_json::json!({ "p_token_hash": "x", "p_telegram_user_id": 1 })),
    )
    .await;
    assert!(status >= 400, "{status}");
}
