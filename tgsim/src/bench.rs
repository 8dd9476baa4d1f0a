//! `tgsim bench`: measures how many concurrent client connections and how many gifts per second
//! one tgsim process sustains. Clients are tgsim's raw MTProto client in the same process (so
//! client and server share the machine's cores); every client completes the real handshake
//! (bad_server_salt, new_session_created, an RPC) before it counts as connected.
//!
//! A benchmark prints figures; it asserts nothing.

use std::time::{Duration, Instant};

use grammers_tl_types::{self as tl, Serializable};
use serde::Serialize;

use crate::raw::{Answer, RawClient};
use crate::transport::Kind;
use crate::{CreateUser, Sim, SimConfig};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Concurrent client connections to open and hold.
    pub connections: usize,
    /// Gifts to send in the throughput phase.
    pub gifts: usize,
    /// Sessions of the deposit account receiving every gift as a pushed update.
    pub listeners: usize,
    /// Connections opened concurrently while ramping up.
    pub ramp_parallelism: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            connections: 2000,
            gifts: 20_000,
            listeners: 4,
            ramp_parallelism: 64,
        }
    }
}

/// Figures from one run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Connections that completed the handshake and an RPC.
    pub connections: usize,
    /// Connections that failed.
    pub connection_failures: usize,
    /// Seconds to open all of them.
    pub connect_secs: f64,
    /// Ping round trip with every connection open and pinging at once: p50, p99, max (ms).
    pub ping_ms_p50: f64,
    /// p99.
    pub ping_ms_p99: f64,
    /// Max.
    pub ping_ms_max: f64,
    /// Gifts sent in the throughput phase.
    pub gifts: usize,
    /// Gifts applied to the world per second (world operations only).
    pub gifts_per_sec_world: f64,
    /// Gifts per second delivered end to end: sent, pushed, received and decrypted by every
    /// listener session.
    pub gifts_per_sec_delivered: f64,
    /// Listener sessions.
    pub listeners: usize,
    /// RPC round trips per second with 64 connections each calling users.getUsers in a loop.
    pub rpc_per_sec: f64,
    /// RPC calls answered by the simulator during the run.
    pub requests: u64,
}

fn get_self() -> Vec<u8> {
    tl::functions::users::GetUsers {
        id: vec![tl::enums::InputUser::UserSelf],
    }
    .to_bytes()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Runs the benchmark against a fresh in-process simulator.
pub async fn run(cfg: BenchConfig) -> Result<BenchReport, crate::SimError> {
    let sim = Sim::start(SimConfig::default()).await?;
    let addr = sim.addr();

    // Phase 1: many concurrent connections, each its own account.
    let mut keys = Vec::with_capacity(cfg.connections);
    for i in 0..cfg.connections {
        keys.push(
            sim.create_user(CreateUser {
                username: format!("bench{i}"),
                ..Default::default()
            })?
            .auth_key,
        );
    }
    let t = Instant::now();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(cfg.ramp_parallelism.max(1)));
    let mut tasks = Vec::with_capacity(cfg.connections);
    for key in keys {
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let mut c = RawClient::connect(addr, key, Kind::Full).await.ok()?;
            match c.call(&get_self()).await {
                Ok(Answer::Result(_)) => Some(c),
                _ => None,
            }
        }));
    }
    let mut clients = Vec::with_capacity(cfg.connections);
    let mut failures = 0;
    for t in tasks {
        match t.await {
            Ok(Some(c)) => clients.push(c),
            _ => failures += 1,
        }
    }
    let connect_secs = t.elapsed().as_secs_f64();

    // Phase 2: every connection pings at once.
    let mut pings = Vec::with_capacity(clients.len());
    for (i, mut c) in clients.into_iter().enumerate() {
        pings.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = c
                .call(&tl::functions::Ping { ping_id: i as i64 }.to_bytes())
                .await;
            (r.is_ok().then(|| t.elapsed().as_secs_f64() * 1000.0), c)
        }));
    }
    let mut rtts = Vec::new();
    let mut held = Vec::new();
    for p in pings {
        if let Ok((Some(ms), c)) = p.await {
            rtts.push(ms);
            held.push(c);
        }
    }
    rtts.sort_by(|a, b| a.total_cmp(b));

    // Phase 2b: RPC throughput on 64 of the held connections.
    let calls_each = 200;
    let t = Instant::now();
    let mut workers = Vec::new();
    let mut rest = Vec::new();
    for (i, mut c) in held.into_iter().enumerate() {
        if i >= 64 {
            rest.push(c);
            continue;
        }
        workers.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for _ in 0..calls_each {
                if let Ok(Answer::Result(_)) = c.call(&get_self()).await {
                    ok += 1;
                }
            }
            (ok, c)
        }));
    }
    let mut rpc_ok = 0;
    for w in workers {
        if let Ok((ok, c)) = w.await {
            rpc_ok += ok;
            rest.push(c);
        }
    }
    let rpc_per_sec = rpc_ok as f64 / t.elapsed().as_secs_f64();
    let held = rest;

    // Phase 3: gift throughput with listeners on the deposit account.
    let deposit = sim.create_user(CreateUser {
        username: "bench_deposit".into(),
        ..Default::default()
    })?;
    let mut players = Vec::new();
    for i in 0..16 {
        let p = sim.create_user(CreateUser {
            username: format!("bench_player{i}"),
            stars: i64::MAX / 64,
            ..Default::default()
        })?;
        players.push(p.id);
    }
    let mut listeners = Vec::new();
    for _ in 0..cfg.listeners {
        let mut c = RawClient::connect(addr, deposit.auth_key, Kind::Full)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        c.call(&get_self())
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        listeners.push(c);
    }
    let n = cfg.gifts;
    let receivers: Vec<_> = listeners
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut got = 0;
                while got < n {
                    if c.next_update(Duration::from_secs(60)).await.is_err() {
                        break;
                    }
                    got += 1;
                }
                got
            })
        })
        .collect();
    let t = Instant::now();
    let sim2 = sim.clone();
    let world_secs = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let mut left = n;
        while left > 0 {
            let chunk = left.min(100);
            if sim2.burst(chunk, &players, deposit.id).is_err() {
                break;
            }
            left -= chunk;
        }
        t.elapsed().as_secs_f64()
    })
    .await
    .unwrap_or(f64::NAN);
    let mut delivered = usize::MAX;
    for r in receivers {
        delivered = delivered.min(r.await.unwrap_or(0));
    }
    let e2e = t.elapsed().as_secs_f64();
    let requests = sim.stats().requests;
    drop(held);
    sim.shutdown().await;
    Ok(BenchReport {
        connections: rtts.len(),
        connection_failures: failures + (cfg.connections - failures - rtts.len()),
        connect_secs,
        ping_ms_p50: pct(&rtts, 0.5),
        ping_ms_p99: pct(&rtts, 0.99),
        ping_ms_max: rtts.last().copied().unwrap_or(0.0),
        gifts: n,
        gifts_per_sec_world: n as f64 / world_secs,
        gifts_per_sec_delivered: if delivered == n { n as f64 / e2e } else { 0.0 },
        listeners: cfg.listeners,
        rpc_per_sec,
        requests,
    })
}
