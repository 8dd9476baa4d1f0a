//! `tgsim`: run the simulator (`serve`), write a session file for an account (`provision`), or
//! measure it (`bench`). Parses the command line and calls into the library; nothing else.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "tgsim",
    about = "Telegram data-centre simulator speaking real MTProto"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the simulator with its JSON control API.
    Serve {
        /// MTProto listen address.
        #[arg(long, default_value = "127.0.0.1:4430")]
        listen: SocketAddr,
        /// Control API listen address.
        #[arg(long, default_value = "127.0.0.1:4431")]
        control: SocketAddr,
        /// Address announced to clients when it differs from --listen (e.g. --listen 0.0.0.0:4430).
        #[arg(long)]
        advertise: Option<SocketAddr>,
        /// Directory for `world.json` (the durable world, loaded at start and saved every 5 s
        /// and at exit) and `endpoint.json` (addresses, pid) so scripts can find this instance.
        #[arg(long)]
        state: Option<PathBuf>,
        /// DC id announced to clients.
        #[arg(long, default_value_t = 2)]
        dc_id: i32,
        /// Skip salt and msg_id time checks (a real DC is strict).
        #[arg(long)]
        lenient: bool,
        /// Seconds added to the simulator's clock.
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        clock_skew: i64,
    },
    /// Write a grammers SQLite session file for an account of a running simulator.
    Provision {
        /// Control API base URL, e.g. http://127.0.0.1:4431
        #[arg(long)]
        control: String,
        /// Account username (created with POST /accounts or /bots).
        #[arg(
            long,
            required_unless_present = "unsigned",
            conflicts_with = "unsigned"
        )]
        account: Option<String>,
        /// Provision a new key that is not signed in, for a login flow (`giftd login`).
        #[arg(long)]
        unsigned: bool,
        /// Session file to write.
        #[arg(long)]
        session_out: PathBuf,
    },
    /// Measure concurrent connections and gifts per second; prints JSON figures.
    Bench {
        /// Concurrent connections to hold.
        #[arg(long, default_value_t = 2000)]
        connections: usize,
        /// Gifts to send.
        #[arg(long, default_value_t = 20_000)]
        gifts: usize,
        /// Deposit sessions receiving every gift.
        #[arg(long, default_value_t = 4)]
        listeners: usize,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tgsim=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new().context("start tokio runtime")?;
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Serve {
            listen,
            control,
            advertise,
            state,
            dc_id,
            lenient,
            clock_skew,
        } => {
            if let Some(dir) = &state {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("create state dir {}", dir.display()))?;
            }
            let sim = tgsim::Sim::start(tgsim::SimConfig {
                listen,
                advertise,
                dc_id,
                strict: !lenient,
                clock_skew_secs: clock_skew,
                state_file: state.as_ref().map(|d| d.join("world.json")),
                ..Default::default()
            })
            .await
            .with_context(|| format!("start the simulator on {listen}"))?;
            let cancel = CancellationToken::new();
            let control_addr = tgsim::control::start(control, sim.clone(), cancel.clone())
                .await
                .with_context(|| format!("bind control api on {control}"))?;
            let endpoint = serde_json::json!({
                "mtproto": sim.addr(),
                "control": format!("http://{control_addr}"),
                "dc_id": dc_id,
                "pid": std::process::id(),
            });
            if let Some(dir) = &state {
                let path = dir.join("endpoint.json");
                std::fs::write(&path, serde_json::to_vec_pretty(&endpoint)?)
                    .with_context(|| format!("write {}", path.display()))?;
            }
            println!("{endpoint}");
            if state.is_some() {
                // Save every few seconds too, so a kill -9 loses little.
                let sim = sim.clone();
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                        }
                        if let Err(e) = sim.save_state() {
                            tracing::error!(error = %e, "could not save the world");
                        }
                    }
                });
            }
            wait_for_signal().await;
            tracing::info!("shutting down");
            cancel.cancel();
            sim.shutdown().await;
            Ok(())
        }
        Cmd::Provision {
            control,
            account,
            unsigned: _,
            session_out,
        } => {
            let what = account.as_deref().unwrap_or("a new unsigned key");
            let v = tgsim::control::request(
                &control,
                "POST",
                "/provision",
                Some(&serde_json::json!({ "username": account })),
            )
            .await
            .map_err(|e| anyhow::anyhow!("control api: {e}"))
            .with_context(|| {
                format!("provision {what}: create the account first with POST /accounts")
            })?;
            let key = hex::decode(v["auth_key"].as_str().unwrap_or_default())
                .context("auth_key from control api is not hex")?;
            let Ok(auth_key) = <[u8; 256]>::try_from(key) else {
                bail!("auth_key from control api is not 256 bytes");
            };
            let addr: SocketAddr = v["addr"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .context("addr from control api")?;
            let spec = tgsim::session_file::SessionSpec {
                dc_id: v["dc_id"].as_i64().unwrap_or(2) as i32,
                addr,
                auth_key,
                user: v["user_id"].as_i64().map(|id| {
                    (
                        id,
                        v["access_hash"].as_i64().unwrap_or_default(),
                        v["bot"].as_bool().unwrap_or(false),
                    )
                }),
                state: v["pts"]
                    .as_i64()
                    .zip(v["date"].as_i64())
                    .map(|(p, d)| (p as i32, d as i32)),
            };
            tgsim::session_file::write(&session_out, &spec)
                .await
                .with_context(|| format!("write session {}", session_out.display()))?;
            println!("{}", session_out.display());
            Ok(())
        }
        Cmd::Bench {
            connections,
            gifts,
            listeners,
        } => {
            let r = tgsim::bench::run(tgsim::bench::BenchConfig {
                connections,
                gifts,
                listeners,
                ..Default::default()
            })
            .await
            .context("benchmark")?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
