//! Failure on Supabase: the database stops in the middle of a batch; the schema is too old.

use super::*;
use crate::support::{chaos_guard, psql, psql_session};

fn pg_ctl(backend: &Backend, action: &str) {
    let Backend::Supabase {
        pg_ctl: Some(ctl), ..
    } = backend
    else {
        unreachable!("the chaos instance has a pg_ctl")
    };
    let status = std::process::Command::new(ctl)
        .arg(action)
        .status()
        .unwrap();
    assert!(status.success(), "{ctl} {action} failed");
}

fn pg_url(backend: &Backend) -> &str {
    match backend {
        Backend::Supabase { pg_url, .. } => pg_url,
        Backend::Sqlite { .. } => unreachable!(),
    }
}

/// The batch is stopped half way for sure: a psql session holds an exclusive lock on the
/// ledger, so the batch's transaction has written users, gifts and 5,000 items and waits
/// for the ledger when the database is killed (immediate shutdown, like a crash).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_database_stopped_mid_batch() {
    let _serial = chaos_guard().await;
    let backend = Backend::supabase_chaos();
    let store = backend.open().await;
    let account = unique_id();
    let items: Vec<Item> = (0..5000)
        .map(|m| regular(account, m, Owner::User(unique_id())))
        .collect();
    let batch = deposit(items.clone());
    let url = pg_url(&backend).to_owned();

    let mut locker = psql_session(
        &url,
        "begin;\nlock table public.transactions in access exclusive mode;\n",
    );
    let applying = {
        let store = store.clone();
        let batch = batch.clone();
        tokio::spawn(async move { store.apply_batch(&batch).await })
    };
    let waiting = "select count(*) from pg_stat_activity \
                   where wait_event_type = 'Lock' and query like '%apply_batch%'";
    let mut tries = 0;
    while psql(&url, waiting) != "1" {
        tries += 1;
        assert!(tries < 300, "the batch never reached the locked ledger");
        assert!(
            !applying.is_finished(),
            "the batch finished despite the lock"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pg_ctl(&backend, "stop");
    let err = applying.await.unwrap().unwrap_err();
    eprintln!("the interrupted batch failed with: {err}");
    let _ = locker.kill();
    let _ = locker.wait();
    assert!(err.is_retryable(), "{err}");
    pg_ctl(&backend, "start");

    let store = backend.open().await;
    assert!(store.load_items(account).await.unwrap().is_empty());
    assert!(store.item_history(items[0].key).await.unwrap().is_empty());
    assert_eq!(
        psql(
            &url,
            &format!("select count(*) from inventory where account_id = {account}")
        ),
        "0"
    );
    let outcome = store.apply_batch(&batch).await.unwrap();
    assert_eq!(outcome.items_new, 5000);
}

/// A function giftd calls is missing (a migration not applied): the error names the
/// migration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_missing_function_names_the_migration() {
    let _serial = chaos_guard().await;
    let backend = Backend::supabase_chaos();
    let store = backend.open().await;
    let url = pg_url(&backend).to_owned();
    let reload = "notify pgrst, 'reload schema'";
    psql(
        &url,
        "alter function public.giftd_owner_stats(bigint) rename to giftd_owner_stats_gone",
    );
    psql(&url, reload);
    // The server reloads its schema cache asynchronously; either way the call fails.
    let result = store.owner_stats(1).await;
    psql(
        &url,
        "alter function public.giftd_owner_stats_gone(bigint) rename to giftd_owner_stats",
    );
    psql(&url, reload);
    let err = result.unwrap_err();
    assert!(matches!(err, StoreError::SchemaMissing { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("giftd_owner_stats"), "{text}");
    // The newest migration "and those before it".
    let newest = giftd::store::migrations().last().unwrap().0;
    assert!(text.contains(newest), "{text}");
    assert!(!err.is_retryable());
    let mut tries = 0;
    while let Err(e) = store.owner_stats(1).await {
        tries += 1;
        assert!(tries < 100, "the function never came back: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_schema_version_too_old() {
    let _serial = chaos_guard().await;
    let backend = Backend::supabase_chaos();
    let store = backend.open().await;
    let url = pg_url(&backend).to_owned();
    assert_eq!(
        store.check_schema().await.unwrap(),
        giftd::store::SCHEMA_VERSION
    );
    psql(&url, "update public.schema_version set version = 0");
    let result = store.check_schema().await;
    psql(
        &url,
        &format!(
            "update public.schema_version set version = {}",
            giftd::store::SCHEMA_VERSION
        ),
    );
    let err = result.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooOld { found: 0, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains(giftd::store::migrations()[0].0), "{text}");
    assert!(text.contains("supabase db push"), "{text}");
    assert!(!err.is_retryable());
}
