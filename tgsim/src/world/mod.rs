//! The simulated Telegram world: accounts, bots, auth keys, the gift catalogue, saved gifts,
//! stars balances, private dialogs with per-account message ids and pts, and the update log each
//! account's `updates.getDifference` is answered from.
//!
//! Everything here is synchronous and owned by one `Mutex<World>`; no IO, no `.await`. Every
//! change returns or queues the updates Telegram would push; `push` hands them to the connected
//! sessions of the accounts concerned. A rule of this module: never panic on client input, answer
//! an [`RpcErr`] instead.
//!
//! This file holds [`World`], the state it owns and the clock and id glue; each thing the world
//! models is a file of its own, adding `impl World` blocks:
//!
//! * `accounts`: users and bots, access hashes, usernames, input peers, the gifts an account
//!   refuses.
//! * `auth`: auth keys and server salts, login codes, the 2FA (SRP) check, bot tokens, revoked
//!   sessions.
//! * `updates`: pts, the update log, new messages in a dialog, pushes, `updates.getDifference`.
//! * `faults`: the injected [`Fault`]s and the checks the server makes against them.
//! * `catalogue`: the gift catalogue, prices and edition limits.
//! * `gifts`: sending, minting, upgrading, converting and refunding gifts, and their service
//!   messages.
//! * `saved`: the saved gifts of a profile and `payments.getSavedStarGifts`.
//! * `transfers`: transfers of collectibles and the payment form of a paid one.
//! * `payments`: gift payment forms, `payments.sendStarsForm` and Stars balances; `stars` the
//!   Stars history.
//! * `dialogs`: text messages, edits, `messages.getMessages` / `getHistory` / `getDialogs`.
//! * `bots`: bot messages and buttons, callback answers, bot commands, the bot send limits.
//! * `snapshot`: the durable part of the world as a [`Snapshot`] (the state file) and back.
//! * `gift_cases`: the gift cases since 2025, one file per family (purchase rules, values,
//!   hosted and crafted collectibles, prepaid upgrades, resale, offers, auctions, chat themes).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::bot_limits::BotSends;
use crate::crypto::AuthKey;
use crate::srp::{Challenge, PasswordSetup};

mod accounts;
mod auth;
mod bots;
mod catalogue;
mod dialogs;
mod faults;
mod gift_cases;
mod gifts;
mod payments;
mod saved;
mod snapshot;
mod stars;
mod transfers;
mod updates;

pub use accounts::{Account, Bot, CreateUser, DisallowedGifts, hex_key};
pub use bots::{BotMessage, Button, CallbackAnswer};
pub use catalogue::GiftInfo;
pub use faults::Fault;
pub use gift_cases::{
    AuctionWin, AuctionWon, ChatTheme, Craft, GiftRules, HostUnique, OfferSent, PrepaidUpgrade,
    PrepayUpgrade, Price, ResaleBuy, ResolveOffer, SendOffer, ThemeSet, UniqueValue,
};
pub use gifts::{SendGift, SendUniqueGift, SentGift, UniqueInfo};
pub use saved::SavedGiftInfo;
pub use snapshot::Snapshot;

use catalogue::CATALOGUE;

/// The account id of Telegram's service notifications user (777000): the peer of the service
/// message of a collectible Telegram delivers with no sender (see [`SendUniqueGift::from_telegram`]).
pub const SERVICE_USER_ID: i64 = 777000;

/// How many messages one `updates.differenceSlice` carries at most.
pub const DIFFERENCE_SLICE: usize = 100;

/// An RPC error as sent to the client: `rpc_error { error_code, error_message }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code} {message}")]
pub struct RpcErr {
    /// HTTP-like code (400, 401, 420, 500...).
    pub code: i32,
    /// Telegram's upper-case error name, possibly with a numeric suffix (`FLOOD_WAIT_7`).
    pub message: String,
}

impl RpcErr {
    /// A 400 error.
    pub fn bad(msg: impl Into<String>) -> Self {
        Self {
            code: 400,
            message: msg.into(),
        }
    }
    fn new(code: i32, msg: impl Into<String>) -> Self {
        Self {
            code,
            message: msg.into(),
        }
    }
}

/// Counters, see [`crate::Sim::stats`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    /// Connections open now.
    pub connections_open: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// RPC calls answered (results and errors).
    pub requests: u64,
    /// bad_msg_notification 16 (msg_id too low).
    pub bad_msg_16: u64,
    /// bad_msg_notification 17 (msg_id too high).
    pub bad_msg_17: u64,
    /// bad_msg_notification 18 (msg_id low bits).
    pub bad_msg_18: u64,
    /// Other bad_msg_notification codes (34/35: seq_no parity).
    pub bad_msg_other: u64,
    /// bad_server_salt sent.
    pub bad_server_salt: u64,
    /// Packets with an unknown auth key (answered -404).
    pub unknown_auth_key: u64,
    /// Connections closed for malformed input.
    pub malformed: u64,
    /// Updates pushed to sessions.
    pub updates_pushed: u64,
    /// RPC calls per TL method name (after unwrapping invokeWithLayer and friends).
    pub calls: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    msg_id: i32,
    from: Option<i64>,
    date: i32,
    gift_id: i64,
    unique: Option<i64>,
    message: Option<String>,
    name_hidden: bool,
    unsaved: bool,
    refunded: bool,
    pinned: bool,
    convert_stars: Option<i64>,
    upgrade_stars: Option<i64>,
    transfer_stars: Option<i64>,
    can_transfer_at: Option<i32>,
}

#[derive(Debug, Clone)]
struct TextMsg {
    peer: i64,
    peer_msg_id: i32,
    text: String,
    markup: Option<tl::enums::ReplyMarkup>,
    edited: bool,
    date: i32,
}

struct AccountState {
    id: i64,
    /// What other accounts must present in inputPeerUser / inputUser.
    access_hash: i64,
    username: String,
    first_name: String,
    /// Digits as given at creation; the login phone.
    phone: String,
    bot: bool,
    /// Stars balance (gifts cost stars, conversions and refunds add them).
    stars: i64,
    /// The SRP verifier when the account has a cloud password.
    password: Option<PasswordSetup>,
    /// The account's pts: one per entry of `log`.
    pts: i32,
    /// Private-chat message ids are per account, as in Telegram.
    next_msg_id: i32,
    /// `log[i]` has pts `i + 1`; updates.getDifference answers from it.
    log: Vec<tl::enums::Update>,
    /// Every message in the account's dialogs by id (for getMessages and getDialogs).
    messages: BTreeMap<i32, tl::enums::Message>,
    /// Gifts the account holds, by the msg_id of the service message that brought them.
    saved: BTreeMap<i32, Saved>,
    /// Text messages the account sent, for bot_messages_to, edits and button presses.
    texts: BTreeMap<i32, TextMsg>,
    /// Bot commands from bots.setBotCommands (default scope, empty `lang_code`).
    commands: Vec<(String, String)>,
    /// Bot commands for users of one language (default scope, `lang_code` set).
    lang_commands: BTreeMap<String, Vec<(String, String)>>,
    /// Gift kinds the account refuses (privacy settings).
    disallowed: DisallowedGifts,
    /// The IETF language tag of the user's app, which Telegram shows to bots only.
    lang_code: Option<String>,
    /// A bot's recent sends, for Telegram's broadcast limits.
    sends: BotSends,
}

/// One known auth key.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// The key.
    pub key: AuthKey,
    /// The account it is signed in as.
    pub account: Option<i64>,
    /// An account whose password must still be checked for this key.
    pending_2fa: Option<i64>,
    /// The account signed out this key from another device ("terminate all other sessions",
    /// `auth.resetAuthorizations`): every call answers 401 `SESSION_REVOKED`.
    pub revoked: bool,
}

#[derive(Debug, Clone)]
struct LoginCode {
    phone: String,
    code: String,
    created: i64,
}

/// What a payment form pays for.
#[derive(Debug, Clone)]
enum FormKind {
    /// `inputInvoiceStarGiftTransfer`: the owner's collectible `msg_id` goes to `to`.
    Transfer { msg_id: i32, to: i64 },
    /// `inputInvoiceStarGift`: a new catalogue gift for `to`.
    Gift {
        gift_id: i64,
        to: i64,
        hide_name: bool,
        include_upgrade: bool,
        message: Option<String>,
    },
}

#[derive(Debug, Clone)]
struct Form {
    /// The payer.
    owner: i64,
    kind: FormKind,
    /// The price in the form's invoice; a different price at payment time answers 406
    /// `STARS_FORM_AMOUNT_MISMATCH`.
    stars: i64,
    created: i64,
    /// Paid already: a second payments.sendStarsForm answers FORM_SUBMIT_DUPLICATE.
    paid: bool,
}

#[derive(Debug, Clone)]
struct Query {
    bot: i64,
    answer: Option<CallbackAnswer>,
}

/// A connected session subscribed to its account's updates.
struct Subscriber {
    conn: u64,
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

/// Time-to-live settings (Telegram's defaults).
#[derive(Debug, Clone)]
pub struct Ttls {
    /// How long a payment form stays valid (Telegram: 10 minutes, then FORM_EXPIRED).
    pub payment_form: Duration,
    /// How long a login code stays valid.
    pub login_code: Duration,
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            payment_form: Duration::from_secs(600),
            login_code: Duration::from_secs(300),
        }
    }
}

/// All mutable simulator state.
pub struct World {
    /// DC id announced to clients.
    pub dc_id: i32,
    /// Listen address announced in help.getConfig.
    pub addr: SocketAddr,
    /// Seconds added to the real clock (clock skew fault).
    pub skew: i64,
    /// The skew configured at start, restored by `clear_faults`.
    base_skew: i64,
    /// Payment form and login code lifetimes.
    ttls: Ttls,
    /// Every account (users, bots, the 777000 service account) by id.
    accounts: HashMap<i64, AccountState>,
    /// Lower-cased username to id, for contacts.resolveUsername and uniqueness.
    usernames: HashMap<String, i64>,
    /// Digits-only phone to id, for auth.sendCode / auth.signIn.
    phones: HashMap<String, i64>,
    /// Bot token to bot id, for auth.importBotAuthorization.
    tokens: HashMap<String, i64>,
    /// Every provisioned auth key by key id; unknown ids get transport error -404.
    keys: HashMap<u64, KeyEntry>,
    /// The star gift catalogue.
    catalogue: Vec<GiftInfo>,
    /// Every collectible ever minted, by collectible id (they outlive transfers).
    uniques: HashMap<i64, UniqueInfo>,
    /// Collectibles minted per base gift, for their numbers.
    unique_counts: HashMap<i64, i32>,
    /// Login codes by phone_code_hash.
    codes: HashMap<String, LoginCode>,
    /// Open SRP challenges by srp_id: (account, challenge).
    srp: HashMap<i64, (i64, Challenge)>,
    /// Open payment forms by form_id.
    forms: HashMap<i64, Form>,
    /// Each account's Stars transactions (`payments.getStarsTransactions`).
    stars_history: stars::StarsHistory,
    /// Callback queries by query_id, with the bot's answer once given.
    queries: HashMap<i64, Query>,
    /// Connected sessions per account, which receive pushed updates.
    subscribers: HashMap<i64, Vec<Subscriber>>,
    /// Active faults, in injection order.
    faults: Vec<Fault>,
    /// Last id handed out to accounts, collectibles and forms.
    next_id: i64,
    /// Counters.
    pub stats: Stats,
    /// Mixed into every server salt so salts cannot be predicted from key ids.
    salt_secret: u64,
    /// The gift cases since 2025 (prepaid upgrades, resale, offers, auctions, hosting,
    /// crafting, values, purchase rules); not kept in snapshots.
    cases: gift_cases::CaseState,
}

fn rnd_i64() -> i64 {
    rand::Rng::r#gen::<i64>(&mut rand::thread_rng())
}

fn real_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("dc_id", &self.dc_id)
            .field("addr", &self.addr)
            .field("accounts", &self.accounts.len())
            .finish_non_exhaustive()
    }
}

impl World {
    /// An empty world with the default gift catalogue and the service account 777000.
    pub fn new(dc_id: i32, addr: SocketAddr, skew: i64, ttls: Ttls) -> Self {
        let mut w = Self {
            dc_id,
            addr,
            skew,
            base_skew: skew,
            ttls,
            accounts: HashMap::new(),
            usernames: HashMap::new(),
            phones: HashMap::new(),
            tokens: HashMap::new(),
            keys: HashMap::new(),
            catalogue: CATALOGUE
                .iter()
                .map(|&(id, stars, convert, upgrade, title, limited)| GiftInfo {
                    id,
                    stars,
                    convert_stars: convert,
                    upgrade_stars: upgrade,
                    title: title.into(),
                    limited_total: limited,
                    limited_remains: limited.map(|t| t / 2),
                    first_sale_date: None,
                    last_sale_date: None,
                })
                .collect(),
            uniques: HashMap::new(),
            unique_counts: HashMap::new(),
            codes: HashMap::new(),
            srp: HashMap::new(),
            forms: HashMap::new(),
            stars_history: stars::StarsHistory::default(),
            queries: HashMap::new(),
            subscribers: HashMap::new(),
            faults: Vec::new(),
            next_id: 1_000_000,
            stats: Stats::default(),
            salt_secret: rand::Rng::r#gen(&mut rand::thread_rng()),
            cases: gift_cases::CaseState::default(),
        };
        w.insert_account(
            SERVICE_USER_ID,
            "Telegram".into(),
            String::new(),
            "42777".into(),
            false,
            0,
            None,
        );
        w
    }

    /// Server time (real clock plus skew), unix seconds.
    pub fn now(&self) -> i64 {
        real_now() + self.skew
    }

    /// Server time in milliseconds.
    fn now_ms(&self) -> i64 {
        let real = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        real + self.skew * 1000
    }

    fn now32(&self) -> i32 {
        self.now() as i32
    }

    /// Ids handed out from now on are above `first`.
    pub fn set_first_id(&mut self, first: i64) {
        self.next_id = self.next_id.max(first);
    }

    fn fresh_id(&mut self) -> i64 {
        self.next_id += 1 + (rnd_i64().rem_euclid(7));
        self.next_id
    }
}
