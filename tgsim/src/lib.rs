//! tgsim: a Telegram data-centre simulator speaking real MTProto 2.0 on loopback, so the real
//! grammers 0.11 client (and Telethon, and any MTProto client) talks to it as it would to Telegram.
//! A workspace member, not published: giftd uses it in its integration tests, its benchmark and
//! `giftd demo`; operators can run `tgsim serve` to try giftd by hand. `tgsim/README.md` documents
//! every control endpoint and what the simulator does not implement; `tgsim/FIDELITY.md` gives
//! the Telegram source of every behaviour it models.
//!
//! It never negotiates auth keys (no RSA/DH): keys are provisioned by the simulator and handed to
//! the client in its session. An unknown key gets transport error -404.
//!
//! # Library API (what giftd's integration tests use)
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tgsim::{CreateUser, SendGift, Sim, SimConfig};
//! let sim = Sim::start(SimConfig::default()).await?;            // binds 127.0.0.1:0
//! let deposit = sim.create_user(CreateUser { username: "deposit".into(), ..Default::default() })?;
//! let player = sim.create_user(CreateUser { username: "alice".into(), ..Default::default() })?;
//! let bot = sim.create_bot("giftd_bot")?;
//! sim.write_session(deposit.id, "deposit.session").await?;       // grammers SqliteSession file
//! let gift = sim.gift_catalogue()[0].id;
//! let sent = sim.send_gift(SendGift { from: player.id, to: deposit.id, gift_id: gift,
//!     hide_name: false, message: Some("hi".into()) })?;
//! assert_eq!(sim.saved_gifts(deposit.id)?[0].msg_id, sent.msg_id);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! * Accounts: [`Sim::create_user`], [`Sim::create_bot`], [`Sim::new_auth_key`],
//!   [`Sim::write_session`] (account id or raw key), [`Sim::session_spec`], [`Sim::login_code`],
//!   [`Sim::account`] (by username, with a fresh key), [`Sim::account_id`].
//! * Players: [`Sim::send_gift`], [`Sim::send_unique_gift`], [`Sim::transfer_gift`],
//!   [`Sim::upgrade_gift`], [`Sim::convert_gift`], [`Sim::refund_gift`], [`Sim::burst`],
//!   [`Sim::send_text_to_bot`], [`Sim::press_button`], [`Sim::callback_answer`],
//!   [`Sim::bot_messages_to`], [`Sim::bot_commands`].
//! * World: [`Sim::saved_gifts`], [`Sim::gift_catalogue`], [`Sim::stars`], [`Sim::set_stars`],
//!   [`Sim::set_gift_saved`], [`Sim::set_gift_pinned`].
//! * Faults: [`Sim::inject`] with a [`Fault`] (flood wait, RPC errors, withheld updates,
//!   updatesTooLong, empty saved-gifts pages, delays, dropped connections, clock skew),
//!   [`Sim::clear_faults`],
//!   [`Sim::drop_connections`], [`Sim::set_clock_skew`]; counters in [`Sim::stats`]
//!   (connections, requests, per-method calls, bad_msg 16/17/18/other, bad salts, unknown keys,
//!   malformed input, pushed updates).
//! * Persistence: [`SimConfig::state_file`], [`Sim::save_state`].
//!
//! Testing the push path: grammers' update stream asks `updates.getState` (or
//! `updates.getDifference` when catching up) on its first poll, and skips updates older than
//! that state. Wait until [`Stats::calls`] shows that call before sending the gifts a test
//! expects as pushes.
//!
//! Strictness: like a real DC, salts are checked per auth key (`bad_server_salt`), client msg_ids
//! are checked against server time (`bad_msg_notification` 16/17), their low bits (18) and
//! seq_no parity (34/35). Set [`SimConfig::strict`] to `false` to skip the salt, time and
//! parity checks (the low-bits check stays).
//!
//! Invariants: strict like a real DC by default, leniency is an explicit option. Malformed or
//! hostile input closes one connection, never the simulator. giftd never links a test-only code
//! path: it reads tgsim's session files with its ordinary configuration.
//!
//! Modules:
//! * [`transport`]: framing (Full, Intermediate, Abridged, obfuscated), detected from the first
//!   bytes.
//! * [`crypto`] and [`srp`]: the server half of MTProto 2.0 (message keys, AES-IGE) and the 2FA
//!   SRP check.
//! * `server` (private): connections, salts, msg_id rules, containers, gzip, pushing updates.
//! * [`rpc`]: method dispatch; [`tlb`]: builders of the TL objects it answers with.
//! * [`world`]: all state (accounts, bots, gifts, dialogs, pts and update logs, faults), one file
//!   per thing it models; `world/gift_cases` the gift cases since 2025 (prepaid upgrades, resale
//!   purchases for someone else, offers, auctions, hosted and crafted collectibles, chat themes,
//!   values, purchase rules), one file per family.
//! * [`bot_limits`]: Telegram's limits on a bot's messages (a burst of 3 then one a second per
//!   chat, 30 a second overall).
//! * `sim_cases` (private): the [`Sim`] methods producing the gift cases.
//! * [`control`]: the JSON control API over HTTP; `control/cases` its routes for the gift cases.
//! * [`session_file`]: the grammers session files giftd reads.
//! * [`raw`]: a minimal raw client for protocol tests; [`mod@bench`]: `tgsim bench`, the
//!   connections and gifts per second one process sustains.

#![warn(missing_docs)]

pub mod bench;
pub mod bot_limits;
pub mod control;
pub mod crypto;
pub mod raw;
pub mod rpc;
mod server;
pub mod session_file;
mod sim_cases;
pub mod srp;
pub mod tlb;
pub mod transport;
pub mod world;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use world::{
    Account, Bot, BotMessage, Button, CallbackAnswer, CreateUser, DisallowedGifts, Fault, GiftInfo,
    RpcErr, SERVICE_USER_ID, SavedGiftInfo, SendGift, SendUniqueGift, SentGift, Stats, Ttls,
    UniqueInfo,
};
pub use world::{
    AuctionWin, AuctionWon, ChatTheme, Craft, GiftRules, HostUnique, OfferSent, PrepaidUpgrade,
    PrepayUpgrade, Price, ResaleBuy, ResolveOffer, SendOffer, ThemeSet, UniqueValue,
};

use server::Shared;
use world::World;

/// Simulator settings. `Default` binds `127.0.0.1:0`, DC 2, strict checks, no skew.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Address to listen on for MTProto (default `127.0.0.1:0`, a free port).
    pub listen: SocketAddr,
    /// Address announced to clients (help.getConfig, session files) when it differs from the
    /// listen address, e.g. when listening on `0.0.0.0`. Must be IPv4.
    pub advertise: Option<SocketAddr>,
    /// DC id announced in help.getConfig and session files (default 2, grammers' default DC).
    pub dc_id: i32,
    /// Check salts and msg_id times like a real DC (default true). `false` is the explicit
    /// leniency option.
    pub strict: bool,
    /// Seconds added to the simulator's clock (positive: the simulator is ahead of clients).
    pub clock_skew_secs: i64,
    /// Payment form and login code lifetimes.
    pub ttls: Ttls,
    /// Where the durable world (accounts, keys, gifts, dialogs, update logs) is loaded from at
    /// start, if the file exists, and saved to by [`Sim::save_state`] and [`Sim::shutdown`].
    /// `None` (the default): the world lives in memory only.
    pub state_file: Option<std::path::PathBuf>,
    /// Ids (accounts, collectibles) are handed out above this number (default 1,000,000). Tests
    /// that share one database give each simulator its own range, as real accounts never
    /// collide.
    pub first_id: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            dc_id: 2,
            strict: true,
            clock_skew_secs: 0,
            ttls: Ttls::default(),
            state_file: None,
            first_id: 1_000_000,
        }
    }
}

/// Errors of the library API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding or another IO failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The world refused the operation (unknown account, not enough stars...).
    #[error("{0}")]
    Rpc(#[from] RpcErr),
    /// Writing a session file failed.
    #[error("{0}")]
    Session(#[from] session_file::SessionFileError),
    /// The state file could not be read, parsed or written.
    #[error("state file {path}: {msg}")]
    State {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        msg: String,
    },
}

/// A running simulator. Cheap to clone; all clones control the same instance.
#[derive(Clone)]
pub struct Sim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    state_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim").field("addr", &self.addr).finish()
    }
}

/// Either an account id or a raw auth key, for [`Sim::write_session`].
#[derive(Debug, Clone)]
pub enum SessionFor {
    /// A new signed-in key for this account.
    Account(i64),
    /// This key (signed in or not).
    Key(Box<[u8; 256]>),
}

impl From<i64> for SessionFor {
    fn from(id: i64) -> Self {
        SessionFor::Account(id)
    }
}

impl From<[u8; 256]> for SessionFor {
    fn from(k: [u8; 256]) -> Self {
        SessionFor::Key(Box::new(k))
    }
}

impl Sim {
    /// Binds the listener and starts accepting connections.
    pub async fn start(cfg: SimConfig) -> Result<Sim, SimError> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let addr = listener.local_addr()?;
        let announced = cfg.advertise.unwrap_or(addr);
        let mut world = World::new(cfg.dc_id, announced, cfg.clock_skew_secs, cfg.ttls.clone());
        world.set_first_id(cfg.first_id);
        if let Some(path) = &cfg.state_file
            && path.exists()
        {
            let state_err = |msg: String| SimError::State {
                path: path.clone(),
                msg,
            };
            let bytes = std::fs::read(path).map_err(|e| state_err(e.to_string()))?;
            let snap: world::Snapshot =
                serde_json::from_slice(&bytes).map_err(|e| state_err(e.to_string()))?;
            world.restore(snap).map_err(state_err)?;
            tracing::info!(path = %path.display(), "world restored");
        }
        let (drop_tx, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            world: std::sync::Mutex::new(world),
            strict: cfg.strict,
            drop_tx,
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            next_conn: AtomicU64::new(1),
        });
        let sh = shared.clone();
        shared.tracker.spawn(server::serve(listener, sh));
        tracing::info!(%addr, "tgsim listening");
        Ok(Sim {
            shared,
            addr,
            state_file: cfg.state_file,
        })
    }

    /// The MTProto address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address announced to clients (help.getConfig, session files, [`Account::addr`]).
    pub fn advertised_addr(&self) -> SocketAddr {
        self.shared.world().addr
    }

    /// The DC id clients should use.
    pub fn dc_id(&self) -> i32 {
        self.shared.world().dc_id
    }

    /// Writes the durable world to [`SimConfig::state_file`] (atomically: temp file, then
    /// rename). Does nothing without a state file.
    pub fn save_state(&self) -> Result<(), SimError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let state_err = |msg: String| SimError::State {
            path: path.clone(),
            msg,
        };
        let snap = self.shared.world().snapshot();
        let bytes = serde_json::to_vec(&snap).map_err(|e| state_err(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes).map_err(|e| state_err(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| state_err(e.to_string()))?;
        Ok(())
    }

    /// Stops accepting, closes every connection, waits (at most 5 s) for tasks to end and
    /// saves the state file if one is configured.
    pub async fn shutdown(&self) {
        if let Err(e) = self.save_state() {
            tracing::error!(error = %e, "could not save the world");
        }
        self.shared.cancel.cancel();
        self.shared.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.shared.tracker.wait()).await;
    }

    // ----- accounts ------------------------------------------------------------------

    /// Creates a user with a signed-in auth key.
    pub fn create_user(&self, u: CreateUser) -> Result<Account, SimError> {
        Ok(self.shared.world().create_user(u)?)
    }

    /// Creates a bot with a signed-in auth key and a token.
    pub fn create_bot(&self, username: &str) -> Result<Bot, SimError> {
        Ok(self.shared.world().create_bot(username)?)
    }

    /// A new auth key: signed in as `account`, or not signed in (`None`) for login flows.
    pub fn new_auth_key(&self, account: Option<i64>) -> [u8; 256] {
        self.shared.world().new_key(account)
    }

    /// Terminates every session of `account` from "another device": its keys answer 401
    /// `SESSION_REVOKED` from now on. Returns how many keys it had.
    pub fn revoke_sessions(&self, account: i64) -> usize {
        self.shared.world().revoke_sessions(account)
    }

    /// Terminates one session, the one of auth key `key` (as `account.resetAuthorization` does
    /// from another device): that key answers 401 `SESSION_REVOKED`, the account's other
    /// sessions go on. Returns whether the key was signed in.
    pub fn revoke_key(&self, key: &[u8; 256]) -> bool {
        let id = crypto::AuthKey::new(*key).id_u64();
        self.shared.world().revoke_key(id)
    }

    /// An existing account by username, with a fresh signed-in key.
    pub fn account(&self, username: &str) -> Result<Account, SimError> {
        let mut w = self.shared.world();
        let id = w
            .account_by_username(username)
            .ok_or_else(|| RpcErr::bad("USERNAME_NOT_OCCUPIED"))?;
        Ok(w.account_with_new_key(id)?)
    }

    /// The id of the account with this username (no side effects).
    pub fn account_id(&self, username: &str) -> Option<i64> {
        self.shared.world().account_by_username(username)
    }

    /// The login code last "sent" to `phone` by auth.sendCode.
    pub fn login_code(&self, phone: &str) -> Option<String> {
        self.shared.world().login_code(phone)
    }

    /// Writes a grammers 0.11 SQLite session at `path`: DC options pointing at the simulator
    /// with the key, home DC, and the self user when the key is signed in.
    pub async fn write_session(
        &self,
        who: impl Into<SessionFor>,
        path: impl AsRef<Path>,
    ) -> Result<(), SimError> {
        let spec = self.session_spec(who.into())?;
        session_file::write(path.as_ref(), &spec).await?;
        Ok(())
    }

    /// What [`Sim::write_session`] would write.
    pub fn session_spec(&self, who: SessionFor) -> Result<session_file::SessionSpec, SimError> {
        let mut w = self.shared.world();
        let key = match who {
            SessionFor::Account(id) => w.account_with_new_key(id)?.auth_key,
            SessionFor::Key(k) => *k,
        };
        let key_id = crypto::AuthKey::new(key).id_u64();
        let user = w
            .key_account(key_id)
            .and_then(|id| match w.tl_user(id, id) {
                Some(grammers_tl_types::enums::User::User(u)) => {
                    Some((u.id, u.access_hash.unwrap_or(0), u.bot))
                }
                _ => None,
            });
        let state = user
            .and_then(|(id, _, _)| w.pts(id).ok())
            .map(|pts| (pts, w.now() as i32));
        Ok(session_file::SessionSpec {
            dc_id: w.dc_id,
            addr: w.addr,
            auth_key: key,
            user,
            state,
        })
    }

    // ----- players -------------------------------------------------------------------

    /// A player sends a regular gift.
    pub fn send_gift(&self, g: SendGift) -> Result<SentGift, SimError> {
        Ok(self.shared.world().send_gift(g)?)
    }

    /// A player gives a collectible (minted for the occasion) to `to`.
    pub fn send_unique_gift(&self, g: SendUniqueGift) -> Result<SentGift, SimError> {
        Ok(self.shared.world().send_unique_gift(g)?)
    }

    /// `owner` transfers a collectible it holds (free transfer rules apply, payment skipped).
    pub fn transfer_gift(&self, owner: i64, msg_id: i32, to: i64) -> Result<SentGift, SimError> {
        Ok(self
            .shared
            .world()
            .transfer_gift(owner, msg_id, to, None, true)?
            .0)
    }

    /// Upgrades a regular gift into a collectible (new service message, new msg_id).
    pub fn upgrade_gift(&self, owner: i64, msg_id: i32) -> Result<SentGift, SimError> {
        Ok(self.shared.world().upgrade_gift(owner, msg_id)?)
    }

    /// Converts a regular gift to stars; returns the stars credited.
    pub fn convert_gift(&self, owner: i64, msg_id: i32) -> Result<i64, SimError> {
        Ok(self.shared.world().convert_gift(owner, msg_id)?)
    }

    /// The gift's payment is refunded (it stays listed with `refunded`).
    pub fn refund_gift(&self, owner: i64, msg_id: i32) -> Result<(), SimError> {
        Ok(self.shared.world().refund_gift(owner, msg_id)?)
    }

    /// Shows (`true`) or hides a gift on the owner's profile.
    pub fn set_gift_saved(&self, owner: i64, msg_id: i32, saved: bool) -> Result<(), SimError> {
        Ok(self.shared.world().set_gift_saved(owner, msg_id, saved)?)
    }

    /// Pins or unpins a gift.
    pub fn set_gift_pinned(&self, owner: i64, msg_id: i32, pinned: bool) -> Result<(), SimError> {
        Ok(self.shared.world().set_gift_pinned(owner, msg_id, pinned)?)
    }

    /// `n` regular gifts to `to`, round-robin from `players`, cycling through the catalogue.
    pub fn burst(&self, n: usize, players: &[i64], to: i64) -> Result<Vec<SentGift>, SimError> {
        if players.is_empty() {
            return Err(RpcErr::bad("PLAYERS_EMPTY").into());
        }
        let catalogue = self.gift_catalogue();
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let gift = &catalogue[i % catalogue.len()];
            out.push(self.send_gift(SendGift {
                from: players[i % players.len()],
                to,
                gift_id: gift.id,
                hide_name: false,
                message: None,
            })?);
        }
        Ok(out)
    }

    /// A player sends `text` to a bot; returns the message id in the bot's dialog.
    pub fn send_text_to_bot(&self, from: i64, bot: i64, text: &str) -> Result<i32, SimError> {
        Ok(self
            .shared
            .world()
            .send_text(from, bot, text, None, None)?
            .1)
    }

    /// A player presses an inline button under `bot`'s message `msg_id` (bot-side id, as in
    /// [`Sim::bot_messages_to`]); returns the callback query id.
    pub fn press_button(
        &self,
        from: i64,
        bot: i64,
        msg_id: i32,
        data: &[u8],
    ) -> Result<i64, SimError> {
        Ok(self
            .shared
            .world()
            .press_button(from, bot, msg_id, data, false)?)
    }

    /// A press with data of the client's choosing under `bot`'s message `msg_id`, as a modified
    /// client can send: Telegram does not check it against the message's buttons.
    pub fn press_forged(
        &self,
        from: i64,
        bot: i64,
        msg_id: i32,
        data: &[u8],
    ) -> Result<i64, SimError> {
        Ok(self
            .shared
            .world()
            .press_button(from, bot, msg_id, data, true)?)
    }

    /// The bot's answer to a button press, once given.
    pub fn callback_answer(&self, query_id: i64) -> Option<CallbackAnswer> {
        self.shared.world().callback_answer(query_id)
    }

    /// Messages `bot` sent to `player`, oldest first, with current text and buttons.
    pub fn bot_messages_to(&self, bot: i64, player: i64) -> Result<Vec<BotMessage>, SimError> {
        Ok(self.shared.world().bot_messages_to(bot, player)?)
    }

    /// Commands a bot registered with bots.setBotCommands for every language.
    pub fn bot_commands(&self, bot: i64) -> Result<Vec<(String, String)>, SimError> {
        Ok(self.shared.world().bot_commands(bot)?)
    }

    /// Commands a user whose app speaks `lang` sees (its own list, else the default one).
    pub fn bot_commands_for(
        &self,
        bot: i64,
        lang: &str,
    ) -> Result<Vec<(String, String)>, SimError> {
        Ok(self.shared.world().bot_commands_for(bot, lang)?)
    }

    /// The `user` object of `id` as `viewer` receives it (bots see `lang_code`, users do not).
    pub fn user_as_seen_by(&self, id: i64, viewer: i64) -> Option<grammers_tl_types::enums::User> {
        self.shared.world().tl_user(id, viewer)
    }

    /// Sets the language of a user's app, which bots see as `user.lang_code`.
    pub fn set_lang_code(&self, user: i64, lang: Option<&str>) -> Result<(), SimError> {
        Ok(self
            .shared
            .world()
            .set_lang_code(user, lang.map(str::to_owned))?)
    }

    // ----- world -----------------------------------------------------------------------

    /// An account's saved gifts, pinned first then newest first.
    pub fn saved_gifts(&self, account: i64) -> Result<Vec<SavedGiftInfo>, SimError> {
        Ok(self.shared.world().saved_gifts(account)?)
    }

    /// The star gift catalogue.
    pub fn gift_catalogue(&self) -> Vec<GiftInfo> {
        self.shared.world().catalogue()
    }

    /// Stars balance.
    pub fn stars(&self, account: i64) -> Result<i64, SimError> {
        Ok(self.shared.world().stars(account)?)
    }

    /// Sets a stars balance.
    pub fn set_stars(&self, account: i64, stars: i64) -> Result<(), SimError> {
        Ok(self.shared.world().set_stars(account, stars)?)
    }

    // ----- payments --------------------------------------------------------------------

    /// Makes catalogue gift `gift_id` a limited edition of `total` with `remains` left to buy.
    /// Each purchase (a paid `inputInvoiceStarGift` form, or [`Sim::send_gift`]) takes one; at
    /// 0 the gift is `sold_out` and buying it answers `STARGIFT_USAGE_LIMITED`.
    pub fn set_gift_limit(&self, gift_id: i64, total: i32, remains: i32) -> Result<(), SimError> {
        Ok(self
            .shared
            .world()
            .set_gift_limit(gift_id, total, remains)?)
    }

    /// Sells catalogue gift `gift_id` out (limited, none left).
    pub fn sell_out_gift(&self, gift_id: i64) -> Result<(), SimError> {
        Ok(self.shared.world().sell_out_gift(gift_id)?)
    }

    /// Changes catalogue gift `gift_id`'s price; forms issued at the old price answer 406
    /// `STARS_FORM_AMOUNT_MISMATCH` when paid.
    pub fn set_gift_price(&self, gift_id: i64, stars: i64) -> Result<(), SimError> {
        Ok(self.shared.world().set_gift_price(gift_id, stars)?)
    }

    /// Changes the transfer fee (`transfer_stars`, None: free) of collectible `msg_id` held by
    /// `owner`; forms issued at the old fee answer 406 `STARS_FORM_AMOUNT_MISMATCH` when paid.
    pub fn set_transfer_stars(
        &self,
        owner: i64,
        msg_id: i32,
        stars: Option<i64>,
    ) -> Result<(), SimError> {
        Ok(self
            .shared
            .world()
            .set_transfer_stars(owner, msg_id, stars)?)
    }

    /// Sets which gifts `account` refuses (its privacy settings): forms and transfers of those
    /// kinds to it answer 403 `USER_DISALLOWED_STARGIFTS`.
    pub fn set_disallowed_gifts(&self, account: i64, d: DisallowedGifts) -> Result<(), SimError> {
        Ok(self.shared.world().set_disallowed_gifts(account, d)?)
    }

    /// Which gifts `account` refuses.
    pub fn disallowed_gifts(&self, account: i64) -> Result<DisallowedGifts, SimError> {
        Ok(self.shared.world().disallowed_gifts(account)?)
    }

    // ----- faults ----------------------------------------------------------------------

    /// Injects a fault; see [`Fault`].
    pub fn inject(&self, f: Fault) {
        if f == Fault::DropConnections {
            self.drop_connections();
        }
        self.shared.world().inject(f);
    }

    /// Clears every injected fault and restores the configured clock skew.
    pub fn clear_faults(&self) {
        self.shared.world().clear_faults();
    }

    /// Active faults.
    pub fn faults(&self) -> Vec<Fault> {
        self.shared.world().faults()
    }

    /// Closes every client connection now (clients reconnect on their own).
    pub fn drop_connections(&self) {
        self.shared.drop_tx.send_modify(|g| *g += 1);
    }

    /// Sets the simulator's clock skew in seconds (positive: the simulator is ahead); the same
    /// as injecting [`Fault::ClockSkew`].
    pub fn set_clock_skew(&self, secs: i64) {
        self.inject(Fault::ClockSkew { secs });
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.shared.world().stats.clone()
    }
}
