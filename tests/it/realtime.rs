//! Supabase Realtime's source, proven on the test cluster: Realtime reads the `supabase_realtime`
//! publication through a logical replication slot with the `pgoutput` plugin. This test does
//! the same (a slot of its own, read with `pg_logical_slot_get_binary_changes`, decoded here)
//! and checks that a burst of inventory changes, written by concurrent batches and replayed,
//! comes out of the publication exactly once each; and that a player's JWT reads only that
//! player's rows through PostgREST (Postgres Changes honour the same policies).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use giftd::gift::{Item, Owner, Status};

use crate::store_contract::{departures, deposit, regular};
use crate::support::{Backend, env, mint_jwt, psql, unique_id};

/// A logical replication slot that is dropped however the test ends (a forgotten slot holds
/// WAL on the shared cluster for ever).
struct Slot {
    pg_url: String,
    name: String,
}

impl Slot {
    fn create(pg_url: &str) -> Slot {
        let name = format!("giftd_rt_{}", rand::random::<u32>());
        psql(
            pg_url,
            &format!("select pg_create_logical_replication_slot('{name}', 'pgoutput')"),
        );
        Slot {
            pg_url: pg_url.to_owned(),
            name,
        }
    }

    /// Consumes what the publication carried since the last call: the raw pgoutput messages.
    fn take(&self) -> Vec<Vec<u8>> {
        let out = psql(
            &self.pg_url,
            &format!(
                "select encode(data, 'hex') from pg_logical_slot_get_binary_changes('{}', null, \
                 null, 'proto_version', '1', 'publication_names', 'supabase_realtime')",
                self.name
            ),
        );
        out.lines()
            .filter(|l| !l.is_empty())
            .map(|l| hex::decode(l.trim()).expect("hex from encode()"))
            .collect()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                self.pg_url.as_str(),
                "-X",
                "-q",
                "-c",
                &format!("select pg_drop_replication_slot('{}')", self.name),
            ])
            .output();
    }
}

/// One row change as pgoutput carries it: the table and the new (or, for a delete, old) row's
/// columns as text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Change {
    op: char,
    table: String,
    row: BTreeMap<String, Option<String>>,
}

/// A reader of pgoutput's wire format (protocol version 1), as the PostgreSQL documentation's
/// "Logical Replication Message Formats" defines it.
struct Reader<'a> {
    b: &'a [u8],
}

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        let v = self.b[0];
        self.b = &self.b[1..];
        v
    }
    fn i16(&mut self) -> i16 {
        let v = i16::from_be_bytes([self.b[0], self.b[1]]);
        self.b = &self.b[2..];
        v
    }
    fn i32(&mut self) -> i32 {
        let v = i32::from_be_bytes(self.b[..4].try_into().unwrap());
        self.b = &self.b[4..];
        v
    }
    fn cstr(&mut self) -> String {
        let end = self.b.iter().position(|&c| c == 0).expect("nul-terminated");
        let s = String::from_utf8(self.b[..end].to_vec()).unwrap();
        self.b = &self.b[end + 1..];
        s
    }
    fn tuple(&mut self) -> Vec<Option<String>> {
        let n = self.i16();
        (0..n)
            .map(|_| match self.u8() {
                b'n' | b'u' => None,
                b't' => {
                    let len = self.i32() as usize;
                    let s = String::from_utf8(self.b[..len].to_vec()).unwrap();
                    self.b = &self.b[len..];
                    Some(s)
                }
                other => panic!("unexpected tuple column kind {}", other as char),
            })
            .collect()
    }
}

/// Decodes the messages of one slot read into row changes, keeping the relations it announces.
fn decode(
    messages: &[Vec<u8>],
    relations: &mut HashMap<i32, (String, Vec<String>)>,
) -> Vec<Change> {
    let mut out = Vec::new();
    for m in messages {
        let mut r = Reader { b: m };
        let kind = r.u8() as char;
        match kind {
            'R' => {
                let id = r.i32();
                let ns = r.cstr();
                let name = r.cstr();
                let _identity = r.u8();
                let n = r.i16();
                let cols = (0..n)
                    .map(|_| {
                        let _flags = r.u8();
                        let col = r.cstr();
                        let _type = r.i32();
                        let _mod = r.i32();
                        col
                    })
                    .collect();
                relations.insert(id, (format!("{ns}.{name}"), cols));
            }
            'I' | 'U' | 'D' => {
                let id = r.i32();
                let mut tag = r.u8();
                if kind == 'U' && (tag == b'K' || tag == b'O') {
                    r.tuple(); // the old row (replica identity full)
                    tag = r.u8();
                }
                assert!(matches!(tag, b'N' | b'K' | b'O'), "tuple tag {tag}");
                let values = r.tuple();
                let (table, cols) = relations.get(&id).expect("relation announced first");
                out.push(Change {
                    op: kind,
                    table: table.clone(),
                    row: cols.iter().cloned().zip(values).collect(),
                });
            }
            // Begin, commit, origin, type, truncate, message: no row of their own.
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_publication_carries_each_inventory_change_of_a_burst_once() {
    let backend = Backend::supabase();
    let Backend::Supabase { pg_url, .. } = &backend else {
        unreachable!("a supabase backend")
    };
    assert_eq!(
        psql(pg_url, "show wal_level"),
        "logical",
        "the test cluster must run with wal_level=logical (scripts/test-env.sh)"
    );
    let slot = Slot::create(pg_url);
    let store = backend.open().await;
    let account = unique_id();
    let (alice, bob) = (unique_id(), unique_id());

    // The burst: 8 concurrent batches of 25 deposits, players alternating.
    let items: Vec<Item> = (1..=200)
        .map(|m| {
            regular(
                account,
                m,
                Owner::User(if m % 2 == 0 { alice } else { bob }),
            )
        })
        .collect();
    let mut writers = Vec::new();
    for chunk in items.chunks(25) {
        let store = std::sync::Arc::clone(&store);
        let batch = deposit(chunk.to_vec());
        writers.push(tokio::spawn(async move {
            store.apply_batch(&batch).await.unwrap();
            // A replay (the mirror retrying after a lost answer) changes nothing.
            store.apply_batch(&batch).await.unwrap();
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    // Then 20 of them leave (converted), twice.
    let converted = departures(&items[..20], Status::Converted, 1_760_100_000);
    let first = store.apply_batch(&converted).await.unwrap();
    assert_eq!(first.changes_applied, 20, "{first:?}");
    let again = store.apply_batch(&converted).await.unwrap();
    assert_eq!(
        again.changes_applied, 0,
        "a replay applies nothing: {again:?}"
    );

    // Logical decoding reads WAL as far as it is flushed, and the test cluster commits
    // asynchronously (synchronous_commit off): read until the 220 changes arrived, then once
    // more after a synchronous commit has flushed everything, to see no change twice.
    let mut relations = HashMap::new();
    let mut changes: Vec<Change> = Vec::new();
    let mut read = |changes: &mut Vec<Change>| {
        changes.extend(
            decode(&slot.take(), &mut relations)
                .into_iter()
                .filter(|c| c.row.get("account_id") == Some(&Some(account.to_string()))),
        );
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while changes.len() < 220 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of 220 changes published",
            changes.len()
        );
        read(&mut changes);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    psql(
        pg_url,
        "set synchronous_commit = on; create temporary table flush (x int); \
         insert into flush values (1)",
    );
    read(&mut changes);
    assert!(
        changes.iter().all(|c| c.table == "public.inventory"),
        "only the inventory is published"
    );
    let mut per_item: BTreeMap<i32, Vec<(char, String)>> = BTreeMap::new();
    for c in &changes {
        let msg_id: i32 = c.row["msg_id"].as_deref().unwrap().parse().unwrap();
        let status = c.row["status"].clone().unwrap_or_default();
        per_item.entry(msg_id).or_default().push((c.op, status));
    }
    assert_eq!(per_item.len(), 200, "every item of the burst was published");
    for (msg_id, seen) in &per_item {
        let expected: Vec<(char, String)> = if *msg_id <= 20 {
            vec![('I', "held".into()), ('U', "converted".into())]
        } else {
            vec![('I', "held".into())]
        };
        assert_eq!(seen, &expected, "item {msg_id}: each change exactly once");
    }

    // What Realtime may show alice is what her JWT reads: her rows, none of bob's.
    let jwt = mint_jwt(serde_json::json!({
        "role": "authenticated", "app_metadata": { "telegram_id": alice.to_string() }
    }));
    let rows: Vec<serde_json::Value> = reqwest::Client::new()
        .get(format!(
            "{}/inventory?select=account_id,msg_id,owner_id&account_id=eq.{account}",
            env("GIFTD_TEST_REST_URL")
        ))
        .header("apikey", env("GIFTD_TEST_ANON_KEY"))
        .bearer_auth(&jwt)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rows.len(), 100, "alice's 100 items: {rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["owner_id"] == serde_json::json!(alice)),
        "no row of another player: {rows:?}"
    );
    drop(slot);
}
