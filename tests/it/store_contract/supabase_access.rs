//! Through PostgREST only: row level security, keys and the functions each role may execute.

use super::*;
use crate::support::{env, mint_jwt, supabase_store};

async fn get(path: &str, bearer: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .get(format!("{}/{path}", env("GIFTD_TEST_REST_URL")))
        .header("apikey", env("GIFTD_TEST_ANON_KEY"))
        .bearer_auth(bearer)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

async fn post(path: &str, bearer: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/{path}", env("GIFTD_TEST_REST_URL")))
        .header("apikey", env("GIFTD_TEST_ANON_KEY"))
        .bearer_auth(bearer)
        .json(&body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

/// Two moves that check the daily budget at once, for two requests of one deposit account,
/// each fitting alone and not together: the sums are serialized (an advisory lock per
/// account), so exactly one gets through. A trigger holds each update for a second after
/// its sum, so without the lock both would sum before either commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sends_at_once_cannot_both_fit_under_the_daily_budget() {
    let (a, b) = (
        Backend::supabase().open().await,
        Backend::supabase().open().await,
    );
    let account = unique_id();
    let alice = unique_id();
    let items: Vec<Item> = (1..=2)
        .map(|m| collectible(account, m, Owner::User(alice), unique_id()))
        .collect();
    a.apply_batch(&deposit(items.clone())).await.unwrap();
    let first = a.create_withdrawal(alice, items[0].key).await.unwrap();
    let second = a.create_withdrawal(alice, items[1].key).await.unwrap();
    let w1 = claim(&a, account, first).await;
    let w2 = claim(&a, account, second).await;
    let pg = env("GIFTD_TEST_PG_URL");
    crate::support::psql(
        &pg,
        &format!(
            "create schema if not exists giftd_test; \
             create or replace function giftd_test.slow_send() returns trigger \
               language plpgsql as $$ begin perform pg_sleep(1); return new; end $$; \
             create trigger slow_send_{account} before update on public.withdrawals \
               for each row when (new.account_id = {account} and new.status = 'sending') \
               execute function giftd_test.slow_send();"
        ),
    );
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let send = |store: Arc<dyn Store>, w: Withdrawal| {
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            store
                .move_withdrawal(&WithdrawalMove::begin_send(
                    &w,
                    60,
                    Some(1),
                    60_000,
                    Some(100),
                ))
                .await
        })
    };
    let (r1, r2) = tokio::join!(send(a.clone(), w1), send(b.clone(), w2));
    crate::support::psql(
        &pg,
        &format!("drop trigger slow_send_{account} on public.withdrawals"),
    );
    let results = [r1.unwrap(), r2.unwrap()];
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::OverDailyBudget { total: 120, .. })))
        .count();
    let sending = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|w| w.state == RequestState::Sending))
        .count();
    assert_eq!((sending, refused), (1, 1), "{results:?}");
}

/// A player's JWT as the web app gets it from Supabase Auth once it set the verified
/// Telegram id in the user's `app_metadata` (server-written).
fn player(id: UserId) -> String {
    mint_jwt(serde_json::json!({
        "role": "authenticated", "app_metadata": { "telegram_id": id.to_string() }
    }))
}

/// `user_metadata` is the user's to write (`supabase.auth.updateUser`), and a top-level
/// claim is whatever an access-token hook copies there: neither names a player, for
/// reading or for asking a withdrawal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_metadata_telegram_id_grants_nothing() {
    let store = Backend::supabase().open().await;
    let account = unique_id();
    let victim = unique_id();
    store
        .apply_batch(&deposit(vec![regular(account, 1, Owner::User(victim))]))
        .await
        .unwrap();
    let path = format!("inventory?account_id=eq.{account}");
    for forged in [
        serde_json::json!({
            "role": "authenticated", "sub": uuid::Uuid::from_u128(rand::random()).to_string(),
            "user_metadata": { "telegram_id": victim.to_string() }
        }),
        serde_json::json!({ "role": "authenticated", "telegram_id": victim.to_string() }),
        serde_json::json!({ "role": "authenticated", "telegram_id": victim }),
    ] {
        let jwt = mint_jwt(forged.clone());
        let (_, rows) = get(&path, &jwt).await;
        assert_eq!(rows.as_array().map(Vec::len), Some(0), "{forged}: {rows}");
        let (_, answer) = post(
            "rpc/request_withdrawal",
            &jwt,
            serde_json::json!({ "p_account_id": account, "p_msg_id": 1 }),
        )
        .await;
        assert_eq!(answer["error"], "not_signed_in", "{forged}: {answer}");
    }
    // The server-written claim does.
    let (_, rows) = get(&path, &player(victim)).await;
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
}

/// PostgreSQL lets PUBLIC execute every new function: anon may execute no giftd function,
/// and a player (authenticated) only `request_withdrawal`, `request_link_token` and the
/// JWT helpers row level security calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_execute_only_the_functions_meant_for_them() {
    let _store = Backend::supabase().open().await;
    let rows = crate::support::psql(
        &env("GIFTD_TEST_PG_URL"),
        "select n.nspname || '.' || p.proname || ':' \
           || has_function_privilege('anon', p.oid, 'execute') || ':' \
           || has_function_privilege('authenticated', p.oid, 'execute') \
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
         where n.nspname = 'giftd_private' \
           or (n.nspname = 'public' and (p.proname like 'giftd%' or p.proname like 'request%')) \
         order by 1",
    );
    let player_may = [
        "public.request_withdrawal",
        "public.request_link_token",
        "giftd_private.jwt_telegram_id",
        "giftd_private.jwt_web_user",
        "giftd_private.jwt_player_id",
    ];
    let mut seen = 0;
    for line in rows.lines() {
        let mut parts = line.rsplitn(3, ':');
        let (authenticated, anon, name) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        seen += 1;
        assert_eq!(anon, "false", "anon may execute {name}");
        assert_eq!(
            authenticated == "true",
            player_may.contains(&name),
            "authenticated on {name}: {authenticated}"
        );
    }
    assert!(seen > 20, "{rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn player_jwt_sees_only_their_own_rows() {
    let store = Backend::supabase().open().await;
    let account = unique_id();
    let (alice, bob) = (unique_id(), unique_id());
    let items = vec![
        regular(account, 1, Owner::User(alice)),
        regular(account, 2, Owner::User(alice)),
        regular(account, 3, Owner::User(bob)),
        regular(account, 4, Owner::Unattributed),
    ];
    store.apply_batch(&deposit(items)).await.unwrap();
    store
        .create_withdrawal(bob, ItemKey::new(account, 3))
        .await
        .unwrap();

    let path = format!("inventory?account_id=eq.{account}&order=msg_id");
    let (status, rows) = get(&path, &player(alice)).await;
    assert_eq!(status, 200, "{rows}");
    let msgs: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["msg_id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        msgs,
        vec![1, 2],
        "alice sees her two items, not bob's nor the anonymous one"
    );
    let (_, rows) = get(&path, &player(bob)).await;
    assert_eq!(rows.as_array().unwrap().len(), 1);

    let (_, rows) = get(
        &format!("transactions?account_id=eq.{account}"),
        &player(alice),
    )
    .await;
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let (_, rows) = get(
        &format!("withdrawals?account_id=eq.{account}"),
        &player(alice),
    )
    .await;
    assert_eq!(rows.as_array().unwrap().len(), 0);
    let (_, rows) = get(
        &format!("withdrawals?account_id=eq.{account}"),
        &player(bob),
    )
    .await;
    assert_eq!(rows.as_array().unwrap().len(), 1);
    let (_, rows) = get(&format!("users?id=in.({alice},{bob})"), &player(alice)).await;
    assert_eq!(rows.as_array().unwrap().len(), 1);

    // A token without the claim, or with a forged-looking one, reads nothing.
    let (_, rows) = get(
        &path,
        &mint_jwt(serde_json::json!({ "role": "authenticated" })),
    )
    .await;
    assert_eq!(rows.as_array().map(Vec::len), Some(0), "{rows}");
    let odd = mint_jwt(serde_json::json!({ "role": "authenticated", "telegram_id": "1 or 1=1" }));
    let (_, rows) = get(&path, &odd).await;
    assert_eq!(rows.as_array().map(Vec::len), Some(0), "{rows}");
    // Players never see tokens, sync logs or the schema table.
    for table in ["link_tokens", "sync_logs", "schema_version"] {
        let (status, rows) = get(table, &player(alice)).await;
        assert!(
            status >= 400 || rows.as_array().is_some_and(Vec::is_empty),
            "{table}: {status} {rows}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anon_reads_nothing_private() {
    let store = Backend::supabase().open().await;
    let account = unique_id();
    store
        .apply_batch(&deposit(vec![regular(
            account,
            1,
            Owner::User(unique_id()),
        )]))
        .await
        .unwrap();
    let anon = env("GIFTD_TEST_ANON_KEY");
    for table in [
        "inventory",
        "transactions",
        "withdrawals",
        "users",
        "link_tokens",
        "sync_logs",
        "schema_version",
    ] {
        let (status, rows) = get(table, &anon).await;
        assert!(
            status >= 400 || rows.as_array().is_some_and(Vec::is_empty),
            "anon read {table}: {status} {rows}"
        );
    }
    // The catalogue is public.
    let (status, rows) = get("gifts?limit=1", &anon).await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anon_key_gets_a_clear_permission_error() {
    let store = supabase_store(
        &env("GIFTD_TEST_REST_URL"),
        &env("GIFTD_TEST_ANON_KEY"),
        Duration::from_secs(20),
    );
    let err = store.check_schema().await.unwrap_err();
    assert!(matches!(err, StoreError::PermissionDenied { .. }), "{err}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("anon key"), "{text}");
    assert!(text.contains("service_role"), "{text}");
    assert!(text.contains("role claim is `anon`"), "{text}");
    assert!(
        !text.contains(&env("GIFTD_TEST_ANON_KEY")),
        "the key is never printed"
    );
    let err = store
        .apply_batch(&deposit(vec![regular(unique_id(), 1, Owner::User(1))]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PermissionDenied { .. }), "{err}");

    // A player's JWT is no better.
    let store = supabase_store(
        &env("GIFTD_TEST_REST_URL"),
        &mint_jwt(serde_json::json!({ "role": "authenticated", "telegram_id": "1" })),
        Duration::from_secs(20),
    );
    let err = store.check_write().await.unwrap_err();
    assert!(matches!(err, StoreError::PermissionDenied { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_signed_with_another_secret_is_rejected() {
    let forged = {
        let real = env("GIFTD_TEST_SERVICE_KEY");
        let (unsigned, _) = real.rsplit_once('.').unwrap();
        format!("{unsigned}.c2lnbmF0dXJlLW9mLWFub3RoZXItcHJvamVjdA")
    };
    let store = supabase_store(
        &env("GIFTD_TEST_REST_URL"),
        &forged,
        Duration::from_secs(20),
    );
    let err = store.schema_version().await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InvalidKey { .. } | StoreError::PermissionDenied { .. }
        ),
        "{err}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_silent_servers_are_retryable() {
    // Nothing listens: connection refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let store = supabase_store(&format!("http://{closed}"), "key", Duration::from_secs(5));
    let err = store.schema_version().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.is_retryable());

    // Accepts and never answers: the request timeout fires.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let store = supabase_store(&format!("http://{addr}"), "key", Duration::from_millis(300));
    let err = store.load_items(1).await.unwrap_err();
    assert!(matches!(err, StoreError::Timeout(_)), "{err}");
    assert!(err.is_retryable());
    silent.abort();
}

/// Every table of the schema has row level security on, and the inventory is published
/// to Realtime (on both instances: one had the publication before the migration, one not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_has_rls_and_inventory_is_realtime() {
    for url in [env("GIFTD_TEST_PG_URL"), env("GIFTD_TEST_CHAOS_PG_URL")] {
        let without_rls = crate::support::psql(
            &url,
            "select string_agg(relname, ',') from pg_class \
             where relnamespace = 'public'::regnamespace and relkind = 'r' \
               and not relrowsecurity",
        );
        assert_eq!(without_rls, "", "tables without RLS");
        let tables = crate::support::psql(
            &url,
            "select count(*) from pg_class \
             where relnamespace = 'public'::regnamespace and relkind = 'r'",
        );
        assert_eq!(
            tables, "14",
            "the 11 tables of schema 5, web_link_replacements, account_balances and players"
        );
        let published = crate::support::psql(
            &url,
            "select string_agg(tablename, ',') from pg_publication_tables \
             where pubname = 'supabase_realtime'",
        );
        assert_eq!(published, "inventory");
        let identity = crate::support::psql(
            &url,
            "select relreplident from pg_class where oid = 'public.inventory'::regclass",
        );
        assert_eq!(identity, "f", "change events carry the old row");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_is_append_only() {
    let store = Backend::supabase().open().await;
    let account = unique_id();
    store
        .apply_batch(&deposit(vec![regular(
            account,
            1,
            Owner::User(unique_id()),
        )]))
        .await
        .unwrap();
    let url = env("GIFTD_TEST_PG_URL");
    for sql in [
        format!("update public.transactions set stars = 0 where account_id = {account}"),
        format!("delete from public.transactions where account_id = {account}"),
    ] {
        let out = std::process::Command::new("psql")
            .args([
                url.as_str(),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &sql,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{sql} was allowed");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("append-only"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
