//! Memory and speed of the live inventory at 1,000,000 items over 10,000 owners.
//!
//! Run with `cargo bench --bench inventory_memory` (optionally `-- <items> <owners>`). Prints the
//! resident memory the inventory added, per item (the target is at most 300 bytes), and
//! percentiles of insert, lookup, owner listing and owner stats latencies. It is a benchmark,
//! not a test: it asserts nothing, it reports.
//!
//! Memory is the growth of the process's resident set (`VmRSS` in `/proc/self/status`) across
//! the inserts, so it includes the maps' spare capacity, the per-owner index, the boxed
//! collectible data and allocator overhead. Every buffer the benchmark itself needs is allocated
//! and touched before the first reading.

use std::hint::black_box;
use std::time::Instant;

use giftd::gift::{Item, ItemKey, Owner, Status, UniqueInfo};
use giftd::inventory::Inventory;

const ACCOUNT: i64 = 777_000;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.parse::<usize>());
    let items = args.next().and_then(Result::ok).unwrap_or(1_000_000);
    let owners = args.next().and_then(Result::ok).unwrap_or(10_000).max(1);
    measure(items, owners);
}

/// Runs the whole measurement, prints it, and returns the resident bytes added per item.
/// `benches/daemon.rs` runs it in a fresh child process for its summary table.
pub fn measure(items: usize, owners: usize) -> f64 {
    // Timing buffers, allocated and written before the first RSS reading.
    let mut insert_ns = vec![1u64; items];
    let mut lookup_ns = vec![1u64; items];
    let mut listing_ns = vec![1u64; owners.min(10_000)];
    let mut stats_ns = vec![1u64; owners.min(10_000)];

    let before = rss_bytes();
    let inv = Inventory::new();
    for (i, slot) in insert_ns.iter_mut().enumerate() {
        let item = make_item(i, owners);
        let t = Instant::now();
        black_box(inv.insert(item));
        *slot = elapsed_ns(t);
    }
    let after = rss_bytes();

    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    for slot in lookup_ns.iter_mut() {
        let key = key_of(next(&mut rng) as usize % items);
        let t = Instant::now();
        black_box(inv.get(key));
        *slot = elapsed_ns(t);
    }
    for (slot_l, slot_s) in listing_ns.iter_mut().zip(stats_ns.iter_mut()) {
        let owner = owner_of(next(&mut rng) as usize % owners);
        let t = Instant::now();
        black_box(inv.owner_items(owner));
        *slot_l = elapsed_ns(t);
        let t = Instant::now();
        black_box(inv.owner_stats(owner));
        *slot_s = elapsed_ns(t);
    }

    let grown = after.saturating_sub(before);
    println!(
        "inventory: {items} items over {owners} owners (1 in 10 a collectible, 1 in 100 unattributed)"
    );
    println!(
        "memory: {:.1} MiB resident added, {:.0} bytes/item (target <= 300); size_of::<Item>() = {}",
        grown as f64 / (1024.0 * 1024.0),
        grown as f64 / items as f64,
        std::mem::size_of::<Item>()
    );
    report("insert", &mut insert_ns);
    report("get by key", &mut lookup_ns);
    report(
        &format!("owner_items (~{} items)", items / owners),
        &mut listing_ns,
    );
    report("owner_stats", &mut stats_ns);
    black_box(&inv);
    grown as f64 / items as f64
}

fn make_item(i: usize, owners: usize) -> Item {
    Item {
        key: key_of(i),
        owner: if i % 100 == 1 {
            Owner::Unattributed
        } else {
            owner_of(i % owners)
        },
        gift_id: 5_000_000 + (i % 40) as i64,
        stars: 15 + (i % 7) as i64 * 10,
        unique: i.is_multiple_of(10).then(|| {
            Box::new(UniqueInfo {
                collectible_id: 1_000_000_000 + i as i64,
                slug: format!("PlushPepe-{}", i / 10),
                number: (i / 10) as i32,
                value: Default::default(),
            })
        }),
        status: Status::Held,
        received_at: 1_700_000_000 + i as i64,
        convert_stars: Some(13),
        transfer_stars: i.is_multiple_of(10).then_some(25),
        can_transfer_at: None,
        upgraded_from: None,
    }
}

fn key_of(i: usize) -> ItemKey {
    ItemKey::new(ACCOUNT, i as i32 + 1)
}

fn owner_of(n: usize) -> Owner {
    Owner::User(10_000_000 + n as i64)
}

fn next(state: &mut u64) -> u64 {
    // xorshift64: cheap and good enough to scatter lookups.
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn elapsed_ns(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn report(what: &str, samples: &mut [u64]) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "{what:<28} n={:<8} p50 {:>7} ns  p90 {:>7} ns  p99 {:>8} ns  p99.9 {:>8} ns  max {:>9} ns",
        samples.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1]
    );
}

/// Resident set size of this process, from `VmRSS` (kB) in `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
