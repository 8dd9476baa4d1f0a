//! A world: tgsim with a deposit account and players, a store backend, and giftd's
//! configuration, with the knobs the tests turn: Telegram's expiry times (`with_ttls`), extra
//! `[telegram]` keys (`extra_config`), whole sections such as `[bot]` (from `Bot::section`),
//! `[withdraw]` (`withdraw_section`) or `[lease]` (`extra_sections`), the health port, more
//! deposit accounts (`second_deposit`, `accounts_config_text`). It starts giftd as its
//! `Daemon` in this process (`start`, waiting until ready and the update stream is open) or as
//! `giftd run` (`spawn`), sends gifts, and keeps what each gift's sender should be credited to
//! check the store against it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use giftd::config::Config;
use giftd::gift::{ItemKey, LedgerKind};
use giftd::store::Store;
use tgsim::{Account, CreateUser, SendGift, SendUniqueGift, SessionFor, Sim, SimConfig};

use super::backend::Backend;
use super::daemon::Running;
use super::env::{init_tracing, unique_id};
use super::http::free_port;
use super::process::Instance;
use super::wait::until;

/// A world: the simulator, a deposit account, players, a store, and giftd's configuration.
pub(crate) struct World {
    pub(crate) sim: Sim,
    pub(crate) deposit: Account,
    pub(crate) players: Vec<Account>,
    pub(crate) backend: Backend,
    pub(crate) dir: tempfile::TempDir,
    /// What each gift's sender should be credited: msg id -> owner (None: unattributed).
    pub(crate) expected: BTreeMap<i32, Option<i64>>,
    /// Keys added to the `[telegram]` section.
    pub(crate) extra_config: String,
    /// Whole sections appended to the configuration (`[withdraw]` ...).
    pub(crate) extra_sections: String,
    /// `[health] listen`: any free port unless a test needs to know it.
    pub(crate) health_listen: String,
}

impl World {
    pub(crate) async fn new(backend: Backend, players: usize) -> World {
        Self::with_ttls(backend, players, tgsim::Ttls::default()).await
    }

    /// A world whose simulator expires payment forms and login codes after `ttls`.
    pub(crate) async fn with_ttls(backend: Backend, players: usize, ttls: tgsim::Ttls) -> World {
        init_tracing();
        // Every world has its own id range: tests share one database, keyed by account id.
        let sim = start_sim(ttls).await;
        let tag = unique_id();
        let user = |name: String| {
            sim.create_user(CreateUser {
                username: name,
                first_name: "Player".into(),
                stars: 100_000_000,
                ..Default::default()
            })
            .expect("user created")
        };
        let deposit = user(format!("deposit{tag}"));
        let players = (0..players).map(|i| user(format!("p{i}x{tag}"))).collect();
        let dir = tempfile::tempdir().unwrap();
        World {
            sim,
            deposit,
            players,
            backend,
            dir,
            expected: BTreeMap::new(),
            extra_config: String::new(),
            extra_sections: String::new(),
            health_listen: "127.0.0.1:0".into(),
        }
    }

    pub(crate) fn session_file(&self) -> PathBuf {
        self.dir.path().join("deposit.session")
    }

    /// The `[store]` keys and the `[supabase]` section of this world's backend.
    fn store_sections(&self) -> (String, String) {
        match &self.backend {
            Backend::Sqlite { .. } => (
                format!(
                    "sqlite_path = \"{}\"\n",
                    self.backend.sqlite_path().unwrap().display()
                ),
                String::new(),
            ),
            Backend::Supabase { rest_url, key, .. } => (
                String::new(),
                format!("[supabase]\nrest_url = \"{rest_url}\"\nservice_role_key = \"{key}\"\n"),
            ),
        }
    }

    /// The configuration `giftd run` reads: ordinary keys only.
    pub(crate) fn config_text(&self) -> String {
        let (store, supabase) = self.store_sections();
        format!(
            "[telegram]\napi_id = 1\napi_hash = \"test-hash\"\nsession_file = \"{}\"\n\
             poll_interval = \"1s\"\nreconcile_interval = \"10m\"\n{}\n\
             [store]\nstate_dir = \"{}\"\n{store}\n{supabase}\n\
             [health]\nlisten = \"{}\"\n{}",
            self.session_file().display(),
            self.extra_config,
            self.dir.path().display(),
            self.health_listen,
            self.extra_sections,
        )
    }

    /// The configuration of a daemon serving `accounts` (name, session file), with this
    /// world's store, its health endpoint on `port`.
    pub(crate) fn accounts_config_text(&self, accounts: &[(&str, &Path)], port: u16) -> String {
        let (store, supabase) = self.store_sections();
        let mut text = format!(
            "[telegram]\napi_id = 1\napi_hash = \"test-hash\"\npoll_interval = \"1s\"\n\
             reconcile_interval = \"10m\"\n\
             [store]\nstate_dir = \"{}\"\n{store}\n{supabase}\n\
             [health]\nlisten = \"127.0.0.1:{port}\"\n{}",
            self.dir.path().display(),
            self.extra_sections,
        );
        for (name, session) in accounts {
            text.push_str(&format!(
                "[account.{name}]\nsession_file = \"{}\"\n",
                session.display()
            ));
        }
        text
    }

    /// This world's configuration with its health endpoint on `port`.
    pub(crate) fn config_on(&mut self, port: u16) -> String {
        self.health_listen = format!("127.0.0.1:{port}");
        self.config_text()
    }

    /// Starts `giftd run` as process `n` on a fresh health port, with the identity derived from
    /// the state directory.
    pub(crate) fn spawn(&mut self, n: usize) -> Instance {
        self.spawn_as(n, None)
    }

    /// [`World::spawn`] as instance `identity` (none given: the one derived from the state
    /// directory).
    pub(crate) fn spawn_as(&mut self, n: usize, identity: Option<&str>) -> Instance {
        let port = free_port();
        let config = self.config_on(port);
        Instance::spawn(self.dir.path(), n, &config, port, None, identity)
    }

    pub(crate) fn config(&self) -> Config {
        Config::parse_str(&self.config_text(), "test config", &|_| None).expect("valid config")
    }

    pub(crate) fn write_config(&self) -> PathBuf {
        let path = self.dir.path().join("giftd.toml");
        std::fs::write(&path, self.config_text()).unwrap();
        path
    }

    /// Writes the deposit account's signed-in session where the configuration names it.
    pub(crate) async fn provision_session(&self) {
        self.write_session(self.deposit.id, &self.session_file())
            .await;
    }

    /// Writes a signed-in session of `account` at `path`, private.
    pub(crate) async fn write_session(&self, account: i64, path: &Path) {
        let _ = std::fs::remove_file(path);
        self.sim
            .write_session(account, path)
            .await
            .expect("session written");
        private(path);
    }

    /// Writes a session at `path` whose auth key is not signed in yet (a bot signs in with its
    /// token on its first start), private.
    pub(crate) async fn write_new_session(&self, path: &Path) {
        let key = self.sim.new_auth_key(None);
        self.sim
            .write_session(SessionFor::Key(Box::new(key)), path)
            .await
            .expect("session written");
        private(path);
    }

    /// One more deposit account in this world's simulator.
    pub(crate) fn second_deposit(&self) -> Account {
        self.sim
            .create_user(CreateUser {
                username: format!("deposit2x{}", unique_id()),
                first_name: "Depot".into(),
                stars: 100_000_000,
                ..Default::default()
            })
            .expect("user created")
    }

    pub(crate) async fn start(&self) -> Running {
        self.provision_session().await;
        let running = Running::launch(self.config())
            .ready(Duration::from_secs(30))
            .await;
        // grammers' update stream starts from its first updates.getState (or, when the session
        // carries an update state, getDifference): gifts pushed before it are for polling to
        // find. Tests that count pushes start after it.
        let stream_open = || {
            ["updates.getState", "updates.getDifference"]
                .iter()
                .any(|m| self.calls(m) > 0)
        };
        until(Duration::from_secs(10), Duration::from_millis(10), || {
            stream_open()
                .then_some(())
                .ok_or("giftd never opened its update stream")
        })
        .await;
        running
    }

    /// How many times giftd called the Telegram method `method` so far.
    pub(crate) fn calls(&self, method: &str) -> u64 {
        self.sim.stats().calls.get(method).copied().unwrap_or(0)
    }

    /// How many collectibles `player` holds in Telegram.
    pub(crate) fn collectible_count(&self, player: i64) -> usize {
        self.sim
            .saved_gifts(player)
            .unwrap()
            .iter()
            .filter(|g| g.unique.is_some())
            .count()
    }

    pub(crate) fn player(&self, i: usize) -> i64 {
        self.players[i].id
    }

    pub(crate) fn regular_gift(&self) -> i64 {
        self.sim.gift_catalogue()[0].id
    }

    /// A regular gift from `from`, with or without "hide my name": credited to `from` either
    /// way (the name is hidden from visitors of the profile, not from the receiver).
    pub(crate) fn send(&mut self, from: i64, hide_name: bool) -> i32 {
        let msg_id = self.gift(from, self.deposit.id, hide_name);
        self.expected.insert(msg_id, Some(from));
        msg_id
    }

    /// A regular gift from `from` to `to` (any account), not recorded as expected; returns its
    /// msg id.
    pub(crate) fn gift(&self, from: i64, to: i64, hide_name: bool) -> i32 {
        self.sim
            .send_gift(SendGift {
                from,
                to,
                gift_id: self.regular_gift(),
                hide_name,
                message: None,
            })
            .expect("gift sent")
            .msg_id
    }

    /// A collectible Telegram delivers itself, naming no sender: it waits unattributed.
    pub(crate) fn send_nameless(&mut self) -> i32 {
        let sent = self
            .sim
            .send_unique_gift(SendUniqueGift {
                from: self.players[0].id,
                to: self.deposit.id,
                gift_id: self.regular_gift(),
                from_telegram: true,
                ..SendUniqueGift::default()
            })
            .expect("collectible delivered");
        self.expected.insert(sent.msg_id, None);
        sent.msg_id
    }

    /// A free collectible from `from`, transferable at once.
    pub(crate) fn send_unique(&mut self, from: i64) -> tgsim::SentGift {
        self.send_unique_with(from, None, None)
    }

    /// A collectible from `from` whose transfer costs `transfer_stars` and is locked for
    /// `lock` seconds; returns its msg id.
    pub(crate) fn send_collectible(
        &mut self,
        from: i64,
        transfer_stars: Option<i64>,
        lock: Option<i64>,
    ) -> i32 {
        self.send_unique_with(from, transfer_stars, lock).msg_id
    }

    fn send_unique_with(
        &mut self,
        from: i64,
        transfer_stars: Option<i64>,
        lock: Option<i64>,
    ) -> tgsim::SentGift {
        let gift_id = self.regular_gift();
        let sent = self
            .sim
            .send_unique_gift(SendUniqueGift {
                from,
                to: self.deposit.id,
                gift_id,
                transfer_stars,
                transfer_lock_secs: lock,
                ..SendUniqueGift::default()
            })
            .expect("collectible sent");
        self.expected.insert(sent.msg_id, Some(from));
        sent
    }

    pub(crate) fn burst(&mut self, n: usize) {
        let ids: Vec<i64> = self.players.iter().map(|p| p.id).collect();
        let sent = self
            .sim
            .burst(n, &ids, self.deposit.id)
            .expect("burst sent");
        for (i, s) in sent.iter().enumerate() {
            self.expected.insert(s.msg_id, Some(ids[i % ids.len()]));
        }
    }

    pub(crate) async fn store(&self) -> Arc<dyn Store> {
        self.backend.open().await
    }

    /// Waits (up to `within`) until the store holds exactly the expected items, then checks
    /// them: every gift credited to its sender, once, and nothing else.
    pub(crate) async fn assert_exactly_once(&self, within: Duration) {
        let store = self.store().await;
        let deadline = Instant::now() + within;
        let mut got: BTreeMap<i32, Option<i64>>;
        let mut rows;
        loop {
            let held = store
                .load_items(self.deposit.id)
                .await
                .expect("store readable");
            rows = held.len();
            got = held
                .iter()
                .map(|i| (i.key.msg_id, i.owner.user_id()))
                .collect();
            if got == self.expected || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let missing: Vec<_> = self
            .expected
            .keys()
            .filter(|k| !got.contains_key(k))
            .collect();
        let extra: Vec<_> = got
            .keys()
            .filter(|k| !self.expected.contains_key(k))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "store differs from what was sent after {within:?}: {} missing {:?}..., {} extra {:?}...",
            missing.len(),
            &missing[..missing.len().min(10)],
            extra.len(),
            &extra[..extra.len().min(10)]
        );
        assert_eq!(got, self.expected, "every gift credited to its sender");
        assert_eq!(rows, self.expected.len(), "one row per gift");
    }

    /// Every held item has exactly one deposit entry in the ledger.
    pub(crate) async fn assert_one_deposit_entry_each(&self) {
        let store = self.store().await;
        for &msg_id in self.expected.keys() {
            let history = store
                .item_history(ItemKey::new(self.deposit.id, msg_id))
                .await
                .unwrap();
            let deposits = history
                .iter()
                .filter(|e| e.kind == LedgerKind::Deposit)
                .count();
            assert_eq!(deposits, 1, "msg {msg_id}: {history:?}");
        }
    }
}

/// Short timings so unknown outcomes resolve within a test; caps the tests change.
pub(crate) fn withdraw_section(extra: &str) -> String {
    format!(
        "[withdraw]\nregular = \"resend\"\nresend_hold = \"0s\"\ncall_timeout = \"2s\"\nsettle_delay = \"3s\"\n\
         lease = \"4s\"\npoll_interval = \"100ms\"\n{extra}"
    )
}

/// A simulator with an id range of its own (tests share one database, keyed by account id),
/// whose payment forms and login codes expire after `ttls`.
pub(crate) async fn start_sim(ttls: tgsim::Ttls) -> Sim {
    Sim::start(SimConfig {
        // Telegram user ids stay below 2^40 (grammers checks).
        first_id: 1_000_000_000 + (rand::random::<u64>() % 900_000_000_000) as i64,
        ttls,
        ..SimConfig::default()
    })
    .await
    .expect("tgsim starts")
}

/// Makes `path` readable by its owner only, as giftd requires of a session file.
pub(crate) fn private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
