//! Failure on the embedded store: another connection holds the write lock in the middle of a
//! batch; the schema is too old.

use super::*;

/// SQLite has no server to stop. What stops a batch is another connection holding the
/// file's write lock (another process, a backup tool): here a raw connection holds
/// `BEGIN IMMEDIATE` while giftd applies a 5,000-item batch. The batch must fail with a
/// retryable error, leave nothing behind, and succeed once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_database_stopped_mid_batch() {
    let backend = Backend::sqlite_impatient();
    let store = backend.open().await;
    let account = unique_id();
    let items: Vec<Item> = (0..5000)
        .map(|m| regular(account, m, Owner::User(7)))
        .collect();
    let batch = deposit(items.clone());

    let db = libsql::Builder::new_local(backend.sqlite_path().unwrap())
        .build()
        .await
        .unwrap();
    let other = db.connect().unwrap();
    other.execute("BEGIN IMMEDIATE", ()).await.unwrap();
    let err = store.apply_batch(&batch).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(matches!(err, StoreError::Busy(_)), "{err}");
    other.execute("ROLLBACK", ()).await.unwrap();

    assert!(store.load_items(account).await.unwrap().is_empty());
    assert!(store.item_history(items[0].key).await.unwrap().is_empty());
    let outcome = store.apply_batch(&batch).await.unwrap();
    assert_eq!(outcome.items_new, 5000);
}

/// A failure after half the rows were written (a trigger that aborts at item 2,500) rolls
/// back the whole batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_half_way_through_a_batch_writes_nothing() {
    let backend = Backend::sqlite();
    let store = backend.open().await;
    let account = unique_id();
    let items: Vec<Item> = (0..5000)
        .map(|m| regular(account, m, Owner::User(7)))
        .collect();
    let db = libsql::Builder::new_local(backend.sqlite_path().unwrap())
        .build()
        .await
        .unwrap();
    let other = db.connect().unwrap();
    other
        .execute(
            "CREATE TRIGGER fail_half_way BEFORE INSERT ON inventory WHEN NEW.msg_id = 2500
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
            (),
        )
        .await
        .unwrap();
    let err = store
        .apply_batch(&deposit(items.clone()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(store.load_items(account).await.unwrap().is_empty());
    assert!(store.item_history(items[0].key).await.unwrap().is_empty());
    other
        .execute("DROP TRIGGER fail_half_way", ())
        .await
        .unwrap();
    assert_eq!(
        store.apply_batch(&deposit(items)).await.unwrap().items_new,
        5000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_schema_version_too_old() {
    let backend = Backend::sqlite();
    let store = backend.open().await;
    let db = libsql::Builder::new_local(backend.sqlite_path().unwrap())
        .build()
        .await
        .unwrap();
    let other = db.connect().unwrap();
    other
        .execute("UPDATE schema_version SET version = 0", ())
        .await
        .unwrap();
    let err = store.check_schema().await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooOld { found: 0, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains(giftd::store::migrations()[0].0), "{text}");
    assert!(!err.is_retryable());
    // Opening the file again upgrades it.
    let reopened = backend.open().await;
    assert_eq!(
        reopened.check_schema().await.unwrap(),
        giftd::store::SCHEMA_VERSION
    );

    other
        .execute("UPDATE schema_version SET version = 1000", ())
        .await
        .unwrap();
    let err = store.check_schema().await.unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
    let err = giftd::store::sqlite::SqliteStore::open(&backend.sqlite_path().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
}
