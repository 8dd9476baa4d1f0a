//! A cluster: several `giftd run` processes on one PostgreSQL store (through the
//! PostgREST-compatible server) and one simulated Telegram with two deposit accounts, `alpha`
//! and `beta`, each served by the instance holding its lease.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use giftd::gift::{ItemKey, LedgerKind};
use tgsim::{Account, SendUniqueGift};

use super::backend::Backend;
use super::bot::Bot;
use super::http::free_port;
use super::process::Instance;
use super::world::{World, private};

/// Lease times of the tests: a dead holder is replaced within about two seconds.
const LEASE: &str = "[lease]\nttl = \"1500ms\"\nrenew_every = \"500ms\"\n";

/// Two deposit accounts, three players, and the configuration every instance shares.
pub(crate) struct Cluster {
    pub(crate) w: World,
    pub(crate) alpha: Account,
    pub(crate) beta: Account,
    pub(crate) instances: Vec<Instance>,
    /// Gifts sent: (account, msg id) -> sender.
    pub(crate) expected: BTreeMap<(i64, i32), i64>,
    next: usize,
    /// The auth key of each (instance, account) session, to terminate one session.
    pub(crate) keys: std::sync::Mutex<BTreeMap<(usize, i64), [u8; 256]>>,
    /// The `[lease]` section instances start with (and `[bot]`, when one is configured: the
    /// `bot` lease is one name in the shared database, so only one test may configure a bot).
    pub(crate) lease: String,
}

impl Cluster {
    pub(crate) async fn new(players: usize) -> Cluster {
        let w = World::new(Backend::supabase(), players).await;
        let alpha = w.deposit.clone();
        let beta = w.second_deposit();
        Cluster {
            w,
            alpha,
            beta,
            instances: Vec::new(),
            expected: BTreeMap::new(),
            next: 0,
            lease: LEASE.to_owned(),
            keys: Default::default(),
        }
    }

    /// The configuration of instance `n`: its own session files (its own auth keys, as when
    /// each host logs in), its health port, `rest_url` for the store.
    pub(crate) async fn config(&self, n: usize, port: u16, rest_url: Option<&str>) -> String {
        let dir = self.w.dir.path();
        let a = dir.join(format!("alpha-{n}.session"));
        let b = dir.join(format!("beta-{n}.session"));
        if !a.exists() {
            for (account, path) in [(self.alpha.id, &a), (self.beta.id, &b)] {
                let spec = self
                    .w
                    .sim
                    .session_spec(tgsim::SessionFor::Account(account))
                    .expect("session spec");
                tgsim::session_file::write(path, &spec)
                    .await
                    .expect("session written");
                private(path);
                self.keys
                    .lock()
                    .unwrap()
                    .insert((n, account), spec.auth_key);
            }
        }
        let Backend::Supabase {
            rest_url: shared,
            key,
            ..
        } = &self.w.backend
        else {
            unreachable!("a cluster shares PostgreSQL")
        };
        let rest_url = rest_url.unwrap_or(shared);
        format!(
            "[telegram]\napi_id = 1\napi_hash = \"test-hash\"\npoll_interval = \"1s\"\n\
             reconcile_interval = \"10m\"\n\
             [store]\nstate_dir = \"{}\"\n\
             [supabase]\nrest_url = \"{rest_url}\"\nservice_role_key = \"{key}\"\n\
             request_timeout = \"2s\"\n\
             [mirror]\nbatch_size = 200\n\
             [withdraw]\ncall_timeout = \"2s\"\nsettle_delay = \"3s\"\nlease = \"4s\"\n\
             poll_interval = \"100ms\"\n\
             {}\
             [health]\nlisten = \"127.0.0.1:{port}\"\n\
             [log]\nlevel = \"info\"\n\
             [account.alpha]\nsession_file = \"{}\"\n\
             [account.beta]\nsession_file = \"{}\"\n",
            dir.display(),
            self.lease,
            a.display(),
            b.display()
        )
    }

    /// Starts one more instance (or restarts slot `slot`).
    pub(crate) async fn start(&mut self, slot: Option<usize>, rest_url: Option<&str>) -> usize {
        self.start_with(slot, rest_url, None).await
    }

    /// [`Cluster::start`] with `FAILPOINTS` (giftd built with `--features failpoints`).
    pub(crate) async fn start_with(
        &mut self,
        slot: Option<usize>,
        rest_url: Option<&str>,
        failpoints: Option<&str>,
    ) -> usize {
        let n = slot.unwrap_or(self.instances.len());
        let port = free_port();
        let config = self.config(n, port, rest_url).await;
        let instance = Instance::start(self.w.dir.path(), n, &config, port, failpoints);
        if n < self.instances.len() {
            self.instances[n] = instance;
        } else {
            self.instances.push(instance);
        }
        n
    }

    /// Starts two instances, each listing one account: instance 0 serves `alpha` and runs
    /// `bot` (its `[bot]` section is `bot_section`), instance 1 serves `beta`; `edit` changes
    /// both configurations. Returns when each serves its account and the bot answers.
    pub(crate) async fn start_split(
        &mut self,
        bot: &Bot,
        bot_section: &str,
        edit: impl Fn(String) -> String,
    ) {
        let (p0, p1) = (free_port(), free_port());
        let full0 = edit(self.config(0, p0, None).await);
        let full1 = edit(self.config(1, p1, None).await);
        let (alpha_at, beta_at) = (
            full0.find("[account.alpha]").unwrap(),
            full0.find("[account.beta]").unwrap(),
        );
        let config0 = format!("{}{bot_section}", &full0[..beta_at]);
        let config1 = format!(
            "{}{}",
            &full1[..full1.find("[account.alpha]").unwrap()],
            &full1[full1.find("[account.beta]").unwrap()..]
        );
        assert!(alpha_at < beta_at && !config1.contains("[account.alpha]"));
        let dir = self.w.dir.path().to_owned();
        self.instances
            .push(Instance::start(&dir, 0, &config0, p0, None));
        self.instances
            .push(Instance::start(&dir, 1, &config1, p1, None));
        let holders = self.holders(Duration::from_secs(60)).await;
        assert_eq!((holders["alpha"], holders["beta"]), (0, 1));
        bot.wait_started(Duration::from_secs(60), || {
            format!("the bot never started: {}", self.instances[0].log_text())
        })
        .await;
    }

    /// Waits until each account is served by exactly one instance; returns who serves it.
    pub(crate) async fn holders(&self, within: Duration) -> BTreeMap<String, usize> {
        let deadline = Instant::now() + within;
        loop {
            let mut by: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (i, inst) in self.instances.iter().enumerate() {
                for name in inst.serving().await {
                    by.entry(name).or_default().push(i);
                }
            }
            let done = ["alpha", "beta"]
                .iter()
                .all(|n| by.get(*n).is_some_and(|v| v.len() == 1));
            if done {
                return by.into_iter().map(|(k, v)| (k, v[0])).collect();
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = self
                    .instances
                    .iter()
                    .map(|i| {
                        let t = i.log_text();
                        t[t.len().saturating_sub(3000)..].to_owned()
                    })
                    .collect();
                panic!(
                    "accounts not each served by one instance after {within:?}: {by:?}\n{}",
                    logs.join("\n-----\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a regular gift from player `p` (round robin) to `to`.
    pub(crate) fn send(&mut self, to: i64) {
        let from = self.w.players[self.next % self.w.players.len()].id;
        self.next += 1;
        let msg_id = self.w.gift(from, to, false);
        self.expected.insert((to, msg_id), from);
    }

    /// A collectible from `from` to `to` whose transfer costs `transfer_stars`; returns its msg
    /// id.
    pub(crate) fn send_collectible(
        &mut self,
        from: i64,
        to: i64,
        transfer_stars: Option<i64>,
    ) -> i32 {
        let sent = self
            .w
            .sim
            .send_unique_gift(SendUniqueGift {
                from,
                to,
                gift_id: self.w.regular_gift(),
                transfer_stars,
                ..SendUniqueGift::default()
            })
            .expect("collectible sent");
        self.expected.insert((to, sent.msg_id), from);
        sent.msg_id
    }

    /// Every gift sent is in the store once, credited to its sender, with one deposit entry.
    pub(crate) async fn assert_every_gift_credited_once(&self, within: Duration) {
        let store = self.w.store().await;
        let deadline = Instant::now() + within;
        let mut got: BTreeMap<(i64, i32), i64>;
        loop {
            got = BTreeMap::new();
            for account in [self.alpha.id, self.beta.id] {
                for item in store.load_items(account).await.expect("store readable") {
                    if let Some(owner) = item.owner.user_id() {
                        got.insert((account, item.key.msg_id), owner);
                    }
                }
            }
            if got == self.expected || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let missing: Vec<_> = self
            .expected
            .keys()
            .filter(|k| !got.contains_key(k))
            .collect();
        assert!(
            got == self.expected,
            "{} of {} gifts missing ({:?}...), {} extra",
            missing.len(),
            self.expected.len(),
            &missing[..missing.len().min(5)],
            got.len() + missing.len() - self.expected.len()
        );
        for &(account, msg_id) in self.expected.keys() {
            let history = store
                .item_history(ItemKey::new(account, msg_id))
                .await
                .unwrap();
            let deposits = history
                .iter()
                .filter(|e| e.kind == LedgerKind::Deposit)
                .count();
            assert_eq!(deposits, 1, "{account}/{msg_id}: {history:?}");
        }
    }
}
