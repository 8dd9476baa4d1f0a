//! The simulated Telegram world: accounts, bots, auth keys, the gift catalogue, saved gifts,
//! stars balances, private dialogs with per-account message ids and pts, and the update log each
//! account's `updates.getDifference` is answered from.
//!
//! Everything here is synchronous and owned by one `Mutex<World>`; no IO, no `.await`. Every
//! change returns or queues the updates Telegram would push; `push` hands them to the connected
//! sessions of the accounts concerned. A rule of this module: never panic on client input, answer
//! an [`RpcErr`] instead.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::bot_limits::BotSends;
use crate::crypto::AuthKey;
use crate::srp::{Challenge, PasswordSetup};
use crate::tlb;

mod gift_cases;
mod stars;
pub use gift_cases::{
    AuctionWin, AuctionWon, ChatTheme, Craft, GiftRules, HostUnique, OfferSent, PrepaidUpgrade,
    PrepayUpgrade, Price, ResaleBuy, ResolveOffer, SendOffer, ThemeSet, UniqueValue,
};

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

/// Input for [`crate::Sim::create_user`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateUser {
    /// Public username without `@`; must be unique (case-insensitive).
    pub username: String,
    /// Display name.
    pub first_name: String,
    /// Phone number used by `auth.sendCode`; empty means "+999" followed by the id.
    pub phone: String,
    /// Initial stars balance (default 10 000, so players can send gifts).
    pub stars: i64,
    /// A cloud password (2FA); sign-in then needs `auth.checkPassword`.
    pub password: Option<String>,
}

impl Default for CreateUser {
    fn default() -> Self {
        Self {
            username: String::new(),
            first_name: "User".into(),
            phone: String::new(),
            stars: 10_000,
            password: None,
        }
    }
}

/// What the caller gets back for a created account: enough to connect as it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Account {
    /// User id.
    pub id: i64,
    /// Access hash other accounts use in `inputPeerUser`.
    pub access_hash: i64,
    /// Username.
    pub username: String,
    /// A signed-in auth key for this account.
    #[serde(with = "hex_key")]
    pub auth_key: [u8; 256],
    /// The simulator's DC id.
    pub dc_id: i32,
    /// Where the simulator listens.
    pub addr: SocketAddr,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("auth_key", &"[redacted]")
            .field("dc_id", &self.dc_id)
            .field("addr", &self.addr)
            .finish()
    }
}

/// Serde helper writing auth keys as hex.
pub mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the key as 512 hex digits.
    pub fn serialize<S: Serializer>(k: &[u8; 256], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(k))
    }

    /// Reads 512 hex digits.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 256], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("auth key must be 256 bytes"))
    }
}

/// A bot account and its token.
#[derive(Clone, Serialize, Deserialize)]
pub struct Bot {
    /// The bot's account (with a signed-in key).
    pub account: Account,
    /// The token `auth.importBotAuthorization` accepts.
    pub token: String,
}

impl std::fmt::Debug for Bot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bot")
            .field("account", &self.account)
            .field("token", &"[redacted]")
            .finish()
    }
}

/// A gift in the catalogue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GiftInfo {
    /// Catalogue id (`starGift.id`).
    pub id: i64,
    /// Price in stars.
    pub stars: i64,
    /// Stars the recipient gets when converting it.
    pub convert_stars: i64,
    /// Stars to upgrade it to a collectible, if upgradable.
    pub upgrade_stars: Option<i64>,
    /// Title.
    pub title: String,
    /// Limited edition total, if limited.
    pub limited_total: Option<i32>,
    /// Limited edition: how many are left to buy (`starGift.availability_remains`); 0 is sold
    /// out (`sold_out`), and buying one answers `STARGIFT_USAGE_LIMITED`.
    #[serde(default)]
    pub limited_remains: Option<i32>,
    /// When one was first and last bought (unix seconds). Telegram sends both on a sold-out
    /// gift only (`starGift.first_sale_date`/`last_sale_date`, "for sold out gifts only"; they
    /// share flag 1 with `sold_out`, so a sold-out gift without them does not decode).
    #[serde(default)]
    pub first_sale_date: Option<i32>,
    /// See `first_sale_date`.
    #[serde(default)]
    pub last_sale_date: Option<i32>,
}

/// Which gifts an account refuses, as `disallowedGiftsSettings` in its global privacy settings
/// (core.telegram.org/constructor/disallowedGiftsSettings). A form or a transfer of a refused
/// kind to it answers 403 `USER_DISALLOWED_STARGIFTS`. Unknown fields are refused.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DisallowedGifts {
    /// `disallow_unlimited_stargifts`: regular gifts that are not limited.
    pub unlimited: bool,
    /// `disallow_limited_stargifts`: limited regular gifts.
    pub limited: bool,
    /// `disallow_unique_stargifts`: collectibles (transfers included).
    pub unique: bool,
}

/// Input for [`crate::Sim::send_gift`]. Unknown fields are refused, so a caller still using the
/// old `anonymous` field gets an error instead of a gift with its name shown.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SendGift {
    /// Sending player.
    pub from: i64,
    /// Recipient (e.g. the deposit account).
    pub to: i64,
    /// Catalogue gift id.
    pub gift_id: i64,
    /// "Hide my name": the action and the saved gift get `name_hidden`, so visitors of the
    /// recipient's profile do not see the sender. The recipient still does: the service message
    /// sits in the private chat with the sender and the recipient's `savedStarGift.from_id` is
    /// set ("set only for the receiver", core.telegram.org/constructor/savedStarGift).
    pub hide_name: bool,
    /// Optional text attached to the gift.
    pub message: Option<String>,
}

/// Input for [`crate::Sim::send_unique_gift`]: mint a collectible owned by `from` and give it
/// to `to`, as when a player transfers a collectible to the deposit account.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SendUniqueGift {
    /// Sending player.
    pub from: i64,
    /// Recipient.
    pub to: i64,
    /// Base catalogue gift id.
    pub gift_id: i64,
    /// Stars the recipient must pay to transfer it onward (`transfer_stars`); None = free.
    pub transfer_stars: Option<i64>,
    /// Seconds from now before the recipient may transfer it (`can_transfer_at`).
    pub transfer_lock_secs: Option<i64>,
    /// Optional text.
    pub message: Option<String>,
    /// Telegram itself delivers the collectible, with no sender the recipient can know (`from` is
    /// ignored): the service message sits in the chat with 777000 and has `assigned` set, and
    /// neither it nor `savedStarGift` has a `from_id`. This is how TDLib expects a collectible
    /// with no known sender (a gift assigned from the TON blockchain): see tgsim/FIDELITY.md.
    pub from_telegram: bool,
}

/// What a gift operation produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SentGift {
    /// Message id of the service message in the recipient's dialog (the saved gift's msg_id).
    pub msg_id: i32,
    /// The recipient.
    pub to: i64,
    /// Base catalogue gift id.
    pub gift_id: i64,
    /// Collectible id, for unique gifts.
    pub unique_id: Option<i64>,
    /// Collectible slug, for unique gifts.
    pub slug: Option<String>,
    /// Collectible number, for unique gifts.
    pub num: Option<i32>,
    /// Service message date.
    pub date: i32,
}

/// A collectible.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UniqueInfo {
    /// Collectible id (`starGiftUnique.id`).
    pub id: i64,
    /// Base gift id.
    pub gift_id: i64,
    /// Title.
    pub title: String,
    /// Slug (`Title-num`).
    pub slug: String,
    /// Number within the collection.
    pub num: i32,
}

/// One saved gift of an account, as the simulator holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedGiftInfo {
    /// Service message id in the owner's dialog.
    pub msg_id: i32,
    /// Sender as the owner sees it (`savedStarGift.from_id`); None only for a collectible
    /// delivered by Telegram with no sender.
    pub from: Option<i64>,
    /// Date received.
    pub date: i32,
    /// Base catalogue gift id.
    pub gift_id: i64,
    /// Set for collectibles.
    pub unique: Option<UniqueInfo>,
    /// Attached text.
    pub message: Option<String>,
    /// Sender hidden.
    pub name_hidden: bool,
    /// Not shown on the profile.
    pub unsaved: bool,
    /// Refunded by the payment provider.
    pub refunded: bool,
    /// Pinned to the top of the profile.
    pub pinned: bool,
    /// Stars for converting (regular gifts).
    pub convert_stars: Option<i64>,
    /// Stars to upgrade (regular, upgradable gifts).
    pub upgrade_stars: Option<i64>,
    /// Stars the owner must pay to transfer (collectibles).
    pub transfer_stars: Option<i64>,
    /// Unix time before which the owner may not transfer it.
    pub can_transfer_at: Option<i32>,
}

/// A message a bot sent to a player, as the simulator saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BotMessage {
    /// Message id in the bot's dialog.
    pub msg_id: i32,
    /// Current text (after edits).
    pub text: String,
    /// Inline keyboard rows: (button text, callback data).
    pub buttons: Vec<Vec<Button>>,
    /// Edited at least once.
    pub edited: bool,
    /// Date sent.
    pub date: i32,
}

/// An inline button.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Button {
    /// Label.
    pub text: String,
    /// Callback data (None for URL and other kinds).
    pub data: Option<Vec<u8>>,
}

/// The answer a bot gave to a button press.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallbackAnswer {
    /// Toast/alert text.
    pub message: Option<String>,
    /// Shown as an alert.
    pub alert: bool,
}

/// A fault to inject; see [`crate::Sim::inject`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// The next `count` calls of `method` (TL name, e.g. `payments.getSavedStarGifts`) fail
    /// with 420 `FLOOD_WAIT_<seconds>`.
    FloodWait {
        /// TL method name.
        method: String,
        /// Seconds in the error.
        seconds: i32,
        /// How many calls fail.
        count: u32,
    },
    /// The next `count` calls of `method` fail with `code message` (e.g. 500 `RPC_CALL_FAIL`,
    /// 500 `INTERNAL`).
    RpcError {
        /// TL method name.
        method: String,
        /// Error code.
        code: i32,
        /// Error message.
        message: String,
        /// How many calls fail.
        count: u32,
    },
    /// Stop pushing updates to clients. With `honest_difference`, `updates.getDifference` still
    /// returns what was missed; without, it lies that nothing happened (the updates are lost and
    /// only polling finds the gifts).
    WithholdUpdates {
        /// Answer getDifference truthfully.
        honest_difference: bool,
    },
    /// Delay every answer (to `method`, or to all RPCs when `None`) by `millis`.
    Delay {
        /// TL method name, or all.
        method: Option<String>,
        /// Delay in milliseconds.
        millis: u64,
    },
    /// Push `updatesTooLong` instead of each batch of updates, as Telegram does under load:
    /// clients must call updates.getDifference to see what happened.
    UpdatesTooLong,
    /// Close every client connection now (a one-off action; nothing stays active).
    DropConnections,
    /// The next `count` payments.getSavedStarGifts answers have the true `count` but no gifts
    /// and no `next_offset` (Telegram does this; see Telethon#4534).
    EmptySavedGiftsPage {
        /// How many answers are empty.
        count: u32,
    },
    /// The next `count` calls of `method` take effect in the world (the gift moves, the Stars
    /// are spent; or the call is refused, whatever it would answer), then the connection they
    /// came on is closed without an answer: the network failed after Telegram applied the
    /// request, so the client cannot know the outcome. The caller's own update is in the
    /// account's update log (`updates.getDifference`) and its other sessions get it pushed.
    DropAnswer {
        /// TL method name.
        method: String,
        /// How many answers are lost.
        count: u32,
    },
    /// Skew the simulator's clock by `secs` (positive: the simulator is ahead of clients).
    /// [`crate::Sim::clear_faults`] restores the configured skew.
    ClockSkew {
        /// Seconds added to the real clock.
        secs: i64,
    },
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

/// Default catalogue: (id, stars, convert, upgrade, title, limited total).
type CatalogueRow = (i64, i64, i64, Option<i64>, &'static str, Option<i32>);
const CATALOGUE: &[CatalogueRow] = &[
    (5170145012310081615, 15, 13, Some(25), "Heart", None),
    (5170233102089322756, 15, 13, Some(25), "Bear", None),
    (5170250947678437525, 25, 21, Some(50), "Gift Box", None),
    (5168103777563050263, 25, 21, Some(50), "Rose", None),
    (5170144170496491616, 50, 43, Some(100), "Cake", None),
    (5170314324215857265, 50, 43, None, "Bouquet", None),
    (5170564780938756245, 50, 43, Some(100), "Rocket", None),
    (5168043875654172773, 100, 85, Some(200), "Trophy", None),
    (5170690322832818290, 100, 85, Some(200), "Ring", None),
    (5170521118301225164, 100, 85, None, "Diamond", None),
    (
        5936013938331222567,
        350,
        300,
        Some(500),
        "Plush Pepe",
        Some(10_000),
    ),
];

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

    /// The server salt valid for `key_id` in the hour containing `t`.
    pub fn salt_for(&self, key_id: u64, t: i64) -> i64 {
        let period = t.div_euclid(3600);
        let mut x = key_id ^ self.salt_secret ^ (period as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // splitmix64 finaliser: a stable, well-mixed salt per (key, hour).
        x ^= x >> 30;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^= x >> 27;
        x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        (x | 1) as i64
    }

    /// Whether `salt` is acceptable now (this hour's or the previous hour's).
    pub fn salt_ok(&self, key_id: u64, salt: i64) -> bool {
        let now = self.now();
        salt == self.salt_for(key_id, now) || salt == self.salt_for(key_id, now - 3600)
    }

    /// `future_salts` content: `num` consecutive hourly salts starting with the current one.
    pub fn future_salts(&self, key_id: u64, num: i32) -> Vec<tl::types::FutureSalt> {
        let now = self.now();
        let start = now.div_euclid(3600) * 3600;
        (0..num.clamp(1, 64) as i64)
            .map(|i| {
                let since = start + i * 3600;
                tl::types::FutureSalt {
                    valid_since: since as i32,
                    valid_until: (since + 3600 + 1800) as i32,
                    salt: self.salt_for(key_id, since),
                }
            })
            .collect()
    }

    /// Ids handed out from now on are above `first`.
    pub fn set_first_id(&mut self, first: i64) {
        self.next_id = self.next_id.max(first);
    }

    fn fresh_id(&mut self) -> i64 {
        self.next_id += 1 + (rnd_i64().rem_euclid(7));
        self.next_id
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_account(
        &mut self,
        id: i64,
        username: String,
        first_name: String,
        phone: String,
        bot: bool,
        stars: i64,
        password: Option<PasswordSetup>,
    ) {
        if !username.is_empty() {
            self.usernames.insert(username.to_lowercase(), id);
        }
        if !phone.is_empty() {
            self.phones.insert(normalize_phone(&phone), id);
        }
        self.accounts.insert(
            id,
            AccountState {
                id,
                access_hash: rnd_i64(),
                username,
                first_name,
                phone,
                bot,
                stars,
                password,
                pts: 0,
                next_msg_id: 1,
                log: Vec::new(),
                messages: BTreeMap::new(),
                saved: BTreeMap::new(),
                texts: BTreeMap::new(),
                commands: Vec::new(),
                lang_commands: BTreeMap::new(),
                disallowed: DisallowedGifts::default(),
                lang_code: None,
                sends: BotSends::default(),
            },
        );
    }

    /// Registers a new random auth key, optionally signed in as `account`.
    pub fn new_key(&mut self, account: Option<i64>) -> [u8; 256] {
        let mut data = [0u8; 256];
        rand::Rng::fill(&mut rand::thread_rng(), &mut data[..]);
        let key = AuthKey::new(data);
        self.keys.insert(
            key.id_u64(),
            KeyEntry {
                key,
                account,
                pending_2fa: None,
                revoked: false,
            },
        );
        data
    }

    /// Looks up a key by id.
    pub fn key(&self, id: u64) -> Option<&KeyEntry> {
        self.keys.get(&id)
    }

    /// The account a key id is signed in as.
    pub fn key_account(&self, id: u64) -> Option<i64> {
        self.keys.get(&id).and_then(|k| k.account)
    }

    fn account_view(&self, id: i64, key: [u8; 256]) -> Account {
        // Callers pass ids of accounts they just created or looked up.
        let a = &self.accounts[&id];
        Account {
            id,
            access_hash: a.access_hash,
            username: a.username.clone(),
            auth_key: key,
            dc_id: self.dc_id,
            addr: self.addr,
        }
    }

    /// Creates a user account with one signed-in key.
    pub fn create_user(&mut self, u: CreateUser) -> Result<Account, RpcErr> {
        if !u.username.is_empty() && self.usernames.contains_key(&u.username.to_lowercase()) {
            return Err(RpcErr::bad("USERNAME_OCCUPIED"));
        }
        let id = self.fresh_id();
        let phone = if u.phone.is_empty() {
            format!("999{id}")
        } else {
            u.phone
        };
        if self.phones.contains_key(&normalize_phone(&phone)) {
            return Err(RpcErr::bad("PHONE_NUMBER_OCCUPIED"));
        }
        let password = u.password.as_deref().map(PasswordSetup::new);
        self.insert_account(
            id,
            u.username,
            u.first_name,
            phone,
            false,
            u.stars,
            password,
        );
        let key = self.new_key(Some(id));
        Ok(self.account_view(id, key))
    }

    /// Creates a bot account; its token is `<id>:<random>`.
    pub fn create_bot(&mut self, username: &str) -> Result<Bot, RpcErr> {
        if self.usernames.contains_key(&username.to_lowercase()) {
            return Err(RpcErr::bad("USERNAME_OCCUPIED"));
        }
        let id = self.fresh_id();
        self.insert_account(
            id,
            username.into(),
            username.into(),
            String::new(),
            true,
            0,
            None,
        );
        let token = format!("{id}:AA{}", hex::encode(rnd_i64().to_le_bytes()));
        self.tokens.insert(token.clone(), id);
        let key = self.new_key(Some(id));
        Ok(Bot {
            account: self.account_view(id, key),
            token,
        })
    }

    /// Looks an account up by username.
    pub fn account_by_username(&self, username: &str) -> Option<i64> {
        self.usernames
            .get(&username.trim_start_matches('@').to_lowercase())
            .copied()
    }

    /// Public view of an account with a fresh signed-in key.
    pub fn account_with_new_key(&mut self, id: i64) -> Result<Account, RpcErr> {
        if !self.accounts.contains_key(&id) {
            return Err(RpcErr::bad("USER_ID_INVALID"));
        }
        let key = self.new_key(Some(id));
        Ok(self.account_view(id, key))
    }

    fn acc(&self, id: i64) -> Result<&AccountState, RpcErr> {
        self.accounts
            .get(&id)
            .ok_or_else(|| RpcErr::bad("USER_ID_INVALID"))
    }

    fn acc_mut(&mut self, id: i64) -> Result<&mut AccountState, RpcErr> {
        self.accounts
            .get_mut(&id)
            .ok_or_else(|| RpcErr::bad("USER_ID_INVALID"))
    }

    /// The TL user `id` as seen by `viewer`.
    pub fn tl_user(&self, id: i64, viewer: i64) -> Option<tl::enums::User> {
        let a = self.accounts.get(&id)?;
        let mut user = tlb::user(
            a.id,
            a.access_hash,
            &a.first_name,
            &a.username,
            (id == viewer && !a.bot).then_some(a.phone.as_str()),
            a.bot,
            id == viewer,
        );
        // `user.lang_code`: "IETF language tag of the user's language", sent to bots only
        // (core.telegram.org/constructor/user; Telegram Desktop never reads it, TDLib exposes it
        // to bots as `User.language_code`).
        if self.accounts.get(&viewer).is_some_and(|v| v.bot)
            && let tl::enums::User::User(u) = &mut user
        {
            u.lang_code = a.lang_code.clone();
        }
        // `user.premium`, as everyone sees it (core.telegram.org/constructor/user).
        if let tl::enums::User::User(u) = &mut user {
            u.premium = self.is_premium(id);
        }
        Some(user)
    }

    /// Sets the language of a user's app (what bots see as `lang_code`).
    pub fn set_lang_code(&mut self, id: i64, lang: Option<String>) -> Result<(), RpcErr> {
        self.acc_mut(id)?.lang_code = lang;
        Ok(())
    }

    fn tl_users(&self, ids: &[i64], viewer: i64) -> Vec<tl::enums::User> {
        let mut seen = Vec::new();
        for id in ids {
            if !seen.contains(id) {
                seen.push(*id);
            }
        }
        seen.iter()
            .filter_map(|id| self.tl_user(*id, viewer))
            .collect()
    }

    /// Resolves an input peer used by `caller` to an account id.
    pub fn resolve_input_peer(
        &self,
        caller: i64,
        peer: &tl::enums::InputPeer,
    ) -> Result<i64, RpcErr> {
        use tl::enums::InputPeer as P;
        match peer {
            P::PeerSelf => Ok(caller),
            P::User(u) => self.check_hash(u.user_id, u.access_hash),
            P::UserFromMessage(u) => Ok(u.user_id),
            _ => Err(RpcErr::bad("PEER_ID_INVALID")),
        }
    }

    /// Resolves an input user used by `caller` to an account id.
    pub fn resolve_input_user(
        &self,
        caller: i64,
        user: &tl::enums::InputUser,
    ) -> Result<i64, RpcErr> {
        use tl::enums::InputUser as U;
        match user {
            U::UserSelf => Ok(caller),
            U::User(u) => self.check_hash(u.user_id, u.access_hash),
            U::FromMessage(u) => Ok(u.user_id),
            U::Empty => Err(RpcErr::bad("USER_ID_INVALID")),
        }
    }

    fn check_hash(&self, id: i64, hash: i64) -> Result<i64, RpcErr> {
        match self.accounts.get(&id) {
            Some(a) if a.access_hash == hash => Ok(id),
            _ => Err(RpcErr::bad("PEER_ID_INVALID")),
        }
    }

    // ----- updates -----------------------------------------------------------------------

    /// Subscribes a connection to its account's updates.
    pub fn subscribe(&mut self, account: i64, conn: u64, tx: mpsc::UnboundedSender<Vec<u8>>) {
        let subs = self.subscribers.entry(account).or_default();
        if !subs.iter().any(|s| s.conn == conn) {
            subs.push(Subscriber { conn, tx });
        }
    }

    /// Removes a connection from every account's subscribers.
    pub fn unsubscribe(&mut self, conn: u64) {
        for subs in self.subscribers.values_mut() {
            subs.retain(|s| s.conn != conn);
        }
    }

    fn withheld(&self) -> Option<bool> {
        self.faults.iter().find_map(|f| match f {
            Fault::WithholdUpdates { honest_difference } => Some(*honest_difference),
            _ => None,
        })
    }

    /// Appends a pts-carrying update to `account`'s log and returns it with its pts.
    fn log_update(
        &mut self,
        account: i64,
        make: impl FnOnce(i32) -> tl::enums::Update,
    ) -> Result<tl::enums::Update, RpcErr> {
        let a = self.acc_mut(account)?;
        a.pts += 1;
        let upd = make(a.pts);
        a.log.push(upd.clone());
        Ok(upd)
    }

    /// Pushes `updates` to every session of `account` except `skip_conn`.
    fn push(&mut self, account: i64, upd: Vec<tl::enums::Update>, skip_conn: Option<u64>) {
        if self.withheld().is_some() {
            return;
        }
        let mut ids = vec![account];
        for u in &upd {
            collect_update_users(u, &mut ids);
        }
        let users = self.tl_users(&ids, account);
        let body = if self.faults.contains(&Fault::UpdatesTooLong) {
            tlb::bytes(&tl::enums::Updates::TooLong)
        } else {
            tlb::bytes(&tlb::updates(upd, users, self.now32()))
        };
        let mut pushed = 0;
        if let Some(subs) = self.subscribers.get_mut(&account) {
            subs.retain(|s| {
                if Some(s.conn) == skip_conn {
                    return true;
                }
                pushed += 1;
                s.tx.send(body.clone()).is_ok()
            });
        }
        self.stats.updates_pushed += pushed;
    }

    /// Stores a new message in `account`'s dialog, logs and pushes updateNewMessage.
    /// Returns the update (for answering the caller's own request).
    fn deliver(
        &mut self,
        account: i64,
        make: impl FnOnce(i32) -> tl::enums::Message,
        skip_conn: Option<u64>,
    ) -> Result<(i32, tl::enums::Update), RpcErr> {
        let a = self.acc_mut(account)?;
        let id = a.next_msg_id;
        a.next_msg_id += 1;
        let msg = make(id);
        a.messages.insert(id, msg.clone());
        let upd = self.log_update(account, |pts| {
            tl::enums::Update::NewMessage(tl::types::UpdateNewMessage {
                message: msg,
                pts,
                pts_count: 1,
            })
        })?;
        self.push(account, vec![upd.clone()], skip_conn);
        Ok((id, upd))
    }

    /// Current pts of `account`.
    pub fn pts(&self, account: i64) -> Result<i32, RpcErr> {
        Ok(self.acc(account)?.pts)
    }

    /// `updates.getState` for `account`.
    pub fn get_state(&self, account: i64) -> Result<tl::enums::updates::State, RpcErr> {
        let a = self.acc(account)?;
        Ok(tlb::state(a.pts, self.now32()))
    }

    /// `updates.getDifference` from `pts` for `account`.
    pub fn get_difference(
        &self,
        account: i64,
        pts: i32,
        limit: Option<i32>,
    ) -> Result<tl::enums::updates::Difference, RpcErr> {
        let a = self.acc(account)?;
        let now = self.now32();
        if pts > a.pts {
            // The client's state is from another world (say, a session file reused across
            // simulator runs): move it to the present, as Telegram does after differenceTooLong.
            return Ok(tl::enums::updates::Difference::TooLong(
                tl::types::updates::DifferenceTooLong { pts: a.pts },
            ));
        }
        if pts == a.pts {
            return Ok(tl::enums::updates::Difference::Empty(
                tl::types::updates::DifferenceEmpty { date: now, seq: 0 },
            ));
        }
        if self.withheld() == Some(false) {
            // The dishonest mode: claim nothing happened but move the client to the present.
            return Ok(tl::enums::updates::Difference::Difference(
                tl::types::updates::Difference {
                    new_messages: Vec::new(),
                    new_encrypted_messages: Vec::new(),
                    other_updates: Vec::new(),
                    chats: Vec::new(),
                    users: Vec::new(),
                    state: tlb::state(a.pts, now),
                },
            ));
        }
        let start = pts.max(0) as usize;
        let max = limit
            .filter(|l| *l > 0)
            .map(|l| l as usize)
            .unwrap_or(DIFFERENCE_SLICE)
            .min(DIFFERENCE_SLICE);
        let end = (start + max).min(a.log.len());
        let mut new_messages = Vec::new();
        let mut other = Vec::new();
        let mut ids = vec![account];
        for u in &a.log[start..end] {
            collect_update_users(u, &mut ids);
            match u {
                tl::enums::Update::NewMessage(m) => new_messages.push(m.message.clone()),
                other_u => other.push(other_u.clone()),
            }
        }
        let users = self.tl_users(&ids, account);
        let state = tlb::state(end as i32, now);
        Ok(if end < a.log.len() {
            tl::enums::updates::Difference::Slice(tl::types::updates::DifferenceSlice {
                new_messages,
                new_encrypted_messages: Vec::new(),
                other_updates: other,
                chats: Vec::new(),
                users,
                intermediate_state: state,
            })
        } else {
            tl::enums::updates::Difference::Difference(tl::types::updates::Difference {
                new_messages,
                new_encrypted_messages: Vec::new(),
                other_updates: other,
                chats: Vec::new(),
                users,
                state,
            })
        })
    }

    // ----- faults -----------------------------------------------------------------------

    /// Adds a fault.
    pub fn inject(&mut self, f: Fault) {
        match f {
            Fault::ClockSkew { secs } => self.skew = secs,
            // Dropping connections is done by the server; nothing to remember.
            Fault::DropConnections => {}
            other => self.faults.push(other),
        }
    }

    /// Removes every fault and restores the configured clock skew.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
        self.skew = self.base_skew;
    }

    /// Active faults.
    pub fn faults(&self) -> Vec<Fault> {
        self.faults.clone()
    }

    /// Consumes one error fault for `method`, if any.
    pub fn take_error_fault(&mut self, method: &str) -> Option<RpcErr> {
        let pos = self.faults.iter().position(|f| match f {
            Fault::FloodWait {
                method: m, count, ..
            }
            | Fault::RpcError {
                method: m, count, ..
            } => m == method && *count > 0,
            _ => false,
        })?;
        let (err, left) = match &mut self.faults[pos] {
            Fault::FloodWait { seconds, count, .. } => {
                *count -= 1;
                (RpcErr::new(420, format!("FLOOD_WAIT_{seconds}")), *count)
            }
            Fault::RpcError {
                code,
                message,
                count,
                ..
            } => {
                *count -= 1;
                (RpcErr::new(*code, message.clone()), *count)
            }
            _ => return None,
        };
        if left == 0 {
            self.faults.remove(pos);
        }
        Some(err)
    }

    /// Consumes one [`Fault::DropAnswer`] for `method`, if any.
    pub fn take_drop_answer(&mut self, method: &str) -> bool {
        let Some(pos) = self.faults.iter().position(
            |f| matches!(f, Fault::DropAnswer { method: m, count } if m == method && *count > 0),
        ) else {
            return false;
        };
        if let Fault::DropAnswer { count, .. } = &mut self.faults[pos] {
            *count -= 1;
            if *count == 0 {
                self.faults.remove(pos);
            }
        }
        true
    }

    /// Consumes one [`Fault::EmptySavedGiftsPage`], if any.
    pub fn take_empty_page_fault(&mut self) -> bool {
        let Some(pos) = self
            .faults
            .iter()
            .position(|f| matches!(f, Fault::EmptySavedGiftsPage { count } if *count > 0))
        else {
            return false;
        };
        if let Fault::EmptySavedGiftsPage { count } = &mut self.faults[pos] {
            *count -= 1;
            if *count == 0 {
                self.faults.remove(pos);
            }
        }
        true
    }

    /// The delay to apply before answering `method`.
    pub fn delay_for(&self, method: &str) -> Option<Duration> {
        self.faults.iter().find_map(|f| match f {
            Fault::Delay { method: m, millis } if m.as_deref().is_none_or(|m| m == method) => {
                Some(Duration::from_millis(*millis))
            }
            _ => None,
        })
    }

    // ----- gifts -----------------------------------------------------------------------

    /// The catalogue.
    pub fn catalogue(&self) -> Vec<GiftInfo> {
        self.catalogue.clone()
    }

    fn gift(&self, id: i64) -> Result<GiftInfo, RpcErr> {
        self.catalogue
            .iter()
            .find(|g| g.id == id)
            .cloned()
            .ok_or_else(|| RpcErr::bad("STARGIFT_INVALID"))
    }

    fn tl_star_gift(&self, g: &GiftInfo) -> tl::enums::StarGift {
        let sold_out = g.limited_total.is_some() && g.limited_remains == Some(0);
        let now = self.now32();
        let mut t = tl::types::StarGift {
            limited: g.limited_total.is_some(),
            sold_out,
            birthday: false,
            require_premium: false,
            limited_per_user: false,
            peer_color_available: false,
            auction: false,
            id: g.id,
            sticker: tlb::sticker(g.id),
            stars: g.stars,
            availability_remains: g.limited_remains.filter(|_| g.limited_total.is_some()),
            availability_total: g.limited_total,
            availability_resale: None,
            convert_stars: g.convert_stars,
            first_sale_date: sold_out.then(|| g.first_sale_date.unwrap_or(now)),
            last_sale_date: sold_out.then(|| g.last_sale_date.unwrap_or(now)),
            upgrade_stars: g.upgrade_stars,
            resell_min_stars: None,
            title: Some(g.title.clone()),
            released_by: None,
            per_user_total: None,
            per_user_remains: None,
            locked_until_date: None,
            auction_slug: None,
            gifts_per_round: None,
            auction_start_date: None,
            upgrade_variants: None,
            background: None,
        };
        self.apply_gift_rules(&mut t, None);
        tl::enums::StarGift::Gift(t)
    }

    fn tl_unique(&self, u: &UniqueInfo, owner: i64) -> tl::enums::StarGift {
        let rarity = |p| {
            tl::enums::StarGiftAttributeRarity::Rarity(tl::types::StarGiftAttributeRarity {
                permille: p,
            })
        };
        let mut t = tl::types::StarGiftUnique {
            require_premium: false,
            resale_ton_only: false,
            theme_available: false,
            burned: false,
            crafted: false,
            id: u.id,
            gift_id: u.gift_id,
            title: u.title.clone(),
            slug: u.slug.clone(),
            num: u.num,
            owner_id: Some(tlb::peer_user(owner)),
            owner_name: None,
            owner_address: None,
            attributes: vec![
                tl::enums::StarGiftAttribute::Model(tl::types::StarGiftAttributeModel {
                    crafted: false,
                    name: format!("{} Model", u.title),
                    document: tlb::sticker(u.id ^ 1),
                    rarity: rarity(15),
                }),
                tl::enums::StarGiftAttribute::Backdrop(tl::types::StarGiftAttributeBackdrop {
                    name: "Onyx".into(),
                    backdrop_id: 1,
                    center_color: 0x202020,
                    edge_color: 0x101010,
                    pattern_color: 0x303030,
                    text_color: 0xffffff,
                    rarity: rarity(20),
                }),
            ],
            availability_issued: self.unique_counts.get(&u.gift_id).copied().unwrap_or(0),
            availability_total: 100_000,
            gift_address: None,
            resell_amount: None,
            released_by: None,
            value_amount: None,
            value_currency: None,
            value_usd_amount: None,
            theme_peer: None,
            peer_color: None,
            host_id: None,
            offer_min_stars: None,
            craft_chance_permille: None,
        };
        self.apply_unique_state(&mut t, owner);
        tl::enums::StarGift::Unique(t)
    }

    fn mint_unique(&mut self, gift_id: i64) -> Result<UniqueInfo, RpcErr> {
        let g = self.gift(gift_id)?;
        let n = self.unique_counts.entry(gift_id).or_insert(0);
        *n += 1;
        let num = *n;
        let id = self.fresh_id() * 1000 + 7;
        let title = g.title.clone();
        let u = UniqueInfo {
            id,
            gift_id,
            slug: format!("{}-{num}", title.replace(' ', "")),
            title,
            num,
        };
        self.uniques.insert(id, u.clone());
        Ok(u)
    }

    /// The `messageActionStarGift` of a freshly received regular gift.
    fn regular_action(&self, s: &Saved) -> Result<tl::enums::MessageAction, RpcErr> {
        let g = self.gift(s.gift_id)?;
        Ok(tl::enums::MessageAction::StarGift(
            tl::types::MessageActionStarGift {
                name_hidden: s.name_hidden,
                saved: !s.unsaved,
                converted: false,
                upgraded: false,
                refunded: s.refunded,
                can_upgrade: s.upgrade_stars.is_some(),
                prepaid_upgrade: false,
                upgrade_separate: false,
                auction_acquired: false,
                gift: self.tl_star_gift(&g),
                message: s.message.as_deref().map(tlb::text),
                convert_stars: s.convert_stars,
                upgrade_msg_id: None,
                upgrade_stars: s.upgrade_stars,
                from_id: None,
                peer: None,
                saved_id: None,
                prepaid_upgrade_hash: None,
                gift_msg_id: None,
                to_id: None,
                gift_num: None,
            },
        ))
    }

    /// A `messageActionStarGiftUnique`. `from` is the action's `from_id`: set only where the
    /// message's own sender is not the gift's sender (an upgrade, whose service message is the
    /// owner's own outgoing message); a transfer in a private chat names its sender through the
    /// chat's peer. `assigned`: delivered by Telegram from the blockchain, with no sender.
    #[allow(clippy::too_many_arguments)]
    fn unique_action(
        &self,
        u: &UniqueInfo,
        owner: i64,
        from: Option<i64>,
        upgrade: bool,
        assigned: bool,
        transfer_stars: Option<i64>,
        can_transfer_at: Option<i32>,
        message: Option<&str>,
    ) -> tl::enums::MessageAction {
        tl::enums::MessageAction::StarGiftUnique(tl::types::MessageActionStarGiftUnique {
            upgrade,
            transferred: !upgrade && !assigned,
            saved: true,
            refunded: false,
            prepaid_upgrade: false,
            assigned,
            from_offer: false,
            craft: false,
            name_hidden: false,
            gift: self.tl_unique(u, owner),
            can_export_at: None,
            transfer_stars,
            from_id: from.map(tlb::peer_user),
            peer: None,
            saved_id: None,
            resale_amount: None,
            can_transfer_at,
            can_resell_at: None,
            drop_original_details_stars: None,
            can_craft_at: None,
            message: message.map(tlb::text),
        })
    }

    /// A player sends a regular gift (the control API's shortcut for the form + payment a client
    /// makes): the sender pays the price, a limited gift's availability goes down.
    pub fn send_gift(&mut self, g: SendGift) -> Result<SentGift, RpcErr> {
        let gift = self.gift(g.gift_id)?;
        self.acc(g.to)?;
        self.check_accepts(g.to, false, gift.limited_total.is_some())?;
        check_available(&gift)?;
        if let Some(e) = self.purchase_refusal(g.from, gift.id) {
            return Err(e);
        }
        let sender = self.acc_mut(g.from)?;
        if sender.stars < gift.stars {
            return Err(RpcErr::bad("BALANCE_TOO_LOW"));
        }
        sender.stars -= gift.stars;
        self.take_one(gift.id);
        self.count_purchase(g.from, gift.id);
        self.deliver_regular(g.from, g.to, &gift, g.hide_name, g.message, false, None)
            .map(|(sent, _)| sent)
    }

    /// Delivers a freshly bought regular gift from `from` to `to` (payment already taken): the
    /// sender's outgoing service message, the recipient's incoming one in the chat with the
    /// sender, the recipient's saved gift. Returns the recipient's SentGift and the sender's own
    /// update (not pushed to `caller_conn`, which gets it in its answer).
    #[allow(clippy::too_many_arguments)]
    fn deliver_regular(
        &mut self,
        from: i64,
        to: i64,
        gift: &GiftInfo,
        hide_name: bool,
        message: Option<String>,
        prepaid_upgrade: bool,
        caller_conn: Option<u64>,
    ) -> Result<(SentGift, tl::enums::Update), RpcErr> {
        let date = self.now32();
        let mut saved = Saved {
            msg_id: 0,
            from: Some(from),
            date,
            gift_id: gift.id,
            unique: None,
            message,
            name_hidden: hide_name,
            unsaved: false,
            refunded: false,
            pinned: false,
            convert_stars: Some(gift.convert_stars),
            upgrade_stars: gift.upgrade_stars,
            transfer_stars: None,
            can_transfer_at: None,
        };
        let mut action = self.regular_action(&saved)?;
        if let tl::enums::MessageAction::StarGift(a) = &mut action {
            a.prepaid_upgrade = prepaid_upgrade;
        }
        // Sender's copy first, as Telegram shows it in the sender's chat. With or without "hide
        // my name", the recipient's copy is an incoming message in the private chat with the
        // sender, without `from_id` (the sender is the chat's peer) and without the action's
        // `from_id` (used where the message's sender is not the gift's: channels, upgrades).
        let sender_action = action.clone();
        let (_, own) = self.deliver(
            from,
            |id| tlb::service_message(id, true, from, to, date, sender_action),
            caller_conn,
        )?;
        let (msg_id, _) = self.deliver(
            to,
            |id| tlb::service_message(id, false, to, from, date, action),
            None,
        )?;
        saved.msg_id = msg_id;
        self.acc_mut(to)?.saved.insert(msg_id, saved);
        let sent = SentGift {
            msg_id,
            to,
            gift_id: gift.id,
            unique_id: None,
            slug: None,
            num: None,
            date,
        };
        Ok((sent, own))
    }

    /// 403 `USER_DISALLOWED_STARGIFTS` when `to` refuses this kind of gift.
    fn check_accepts(&self, to: i64, unique: bool, limited: bool) -> Result<(), RpcErr> {
        let d = self.acc(to)?.disallowed;
        let refused = if unique {
            d.unique
        } else if limited {
            d.limited
        } else {
            d.unlimited
        };
        if refused {
            return Err(RpcErr::new(403, "USER_DISALLOWED_STARGIFTS"));
        }
        Ok(())
    }

    /// One fewer left of a limited gift.
    fn take_one(&mut self, gift_id: i64) {
        let now = self.now32();
        if let Some(g) = self.catalogue.iter_mut().find(|g| g.id == gift_id)
            && g.limited_total.is_some()
            && let Some(left) = g.limited_remains.as_mut()
        {
            *left = (*left - 1).max(0);
            g.first_sale_date.get_or_insert(now);
            g.last_sale_date = Some(now);
        }
    }

    fn catalogue_mut(&mut self, gift_id: i64) -> Result<&mut GiftInfo, RpcErr> {
        self.catalogue
            .iter_mut()
            .find(|g| g.id == gift_id)
            .ok_or_else(|| RpcErr::bad("STARGIFT_INVALID"))
    }

    /// Makes a catalogue gift limited: `total` in the edition, `remains` left to buy.
    pub fn set_gift_limit(&mut self, gift_id: i64, total: i32, remains: i32) -> Result<(), RpcErr> {
        if total <= 0 || remains < 0 || remains > total {
            return Err(RpcErr::bad("LIMIT_INVALID"));
        }
        let g = self.catalogue_mut(gift_id)?;
        g.limited_total = Some(total);
        g.limited_remains = Some(remains);
        Ok(())
    }

    /// Sells a catalogue gift out (limited with none left; an unlimited gift becomes a limited
    /// edition of 1, sold).
    pub fn sell_out_gift(&mut self, gift_id: i64) -> Result<(), RpcErr> {
        let now = self.now32();
        let g = self.catalogue_mut(gift_id)?;
        g.limited_total = Some(g.limited_total.unwrap_or(1).max(1));
        g.limited_remains = Some(0);
        g.first_sale_date.get_or_insert(now);
        g.last_sale_date.get_or_insert(now);
        Ok(())
    }

    /// Changes a catalogue gift's price (forms issued before answer `STARS_FORM_AMOUNT_MISMATCH`).
    pub fn set_gift_price(&mut self, gift_id: i64, stars: i64) -> Result<(), RpcErr> {
        if stars <= 0 {
            return Err(RpcErr::bad("STARS_AMOUNT_INVALID"));
        }
        self.catalogue_mut(gift_id)?.stars = stars;
        Ok(())
    }

    /// Sets the Stars `owner` must pay to transfer collectible `msg_id` (None: free).
    pub fn set_transfer_stars(
        &mut self,
        owner: i64,
        msg_id: i32,
        stars: Option<i64>,
    ) -> Result<(), RpcErr> {
        let s = self
            .acc_mut(owner)?
            .saved
            .get_mut(&msg_id)
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_FOUND"))?;
        if s.unique.is_none() {
            return Err(RpcErr::bad("STARGIFT_NOT_UNIQUE"));
        }
        s.transfer_stars = stars;
        Ok(())
    }

    /// Sets which gifts `account` refuses.
    pub fn set_disallowed_gifts(&mut self, account: i64, d: DisallowedGifts) -> Result<(), RpcErr> {
        self.acc_mut(account)?.disallowed = d;
        Ok(())
    }

    /// Which gifts `account` refuses.
    pub fn disallowed_gifts(&self, account: i64) -> Result<DisallowedGifts, RpcErr> {
        Ok(self.acc(account)?.disallowed)
    }

    /// A player gives a (freshly minted) collectible to `to`.
    pub fn send_unique_gift(&mut self, g: SendUniqueGift) -> Result<SentGift, RpcErr> {
        let from = (!g.from_telegram).then_some(g.from);
        if let Some(from) = from {
            self.acc(from)?;
        }
        self.acc(g.to)?;
        let u = self.mint_unique(g.gift_id)?;
        let can_transfer_at = g
            .transfer_lock_secs
            .map(|s| self.now().saturating_add(s).clamp(0, i32::MAX as i64) as i32);
        self.give_unique(
            u,
            from,
            g.to,
            g.transfer_stars,
            can_transfer_at,
            g.message,
            None,
        )
        .map(|(sent, _)| sent)
    }

    /// Delivers collectible `u` to `to` (transferred from `from`); returns the recipient's
    /// SentGift and the sender's own update (if any) for answering its request.
    #[allow(clippy::too_many_arguments)]
    fn give_unique(
        &mut self,
        u: UniqueInfo,
        from: Option<i64>,
        to: i64,
        transfer_stars: Option<i64>,
        can_transfer_at: Option<i32>,
        message: Option<String>,
        caller_conn: Option<u64>,
    ) -> Result<(SentGift, Option<tl::enums::Update>), RpcErr> {
        let date = self.now32();
        let mut own = None;
        if let Some(from) = from {
            let act =
                self.unique_action(&u, to, None, false, false, None, None, message.as_deref());
            let (_, upd) = self.deliver(
                from,
                |id| tlb::service_message(id, true, from, to, date, act),
                caller_conn,
            )?;
            own = Some(upd);
        }
        // The recipient's copy: incoming, in the private chat with the sender (no `from_id`
        // anywhere: the peer is the sender), or in the chat with 777000 when Telegram delivers
        // it with no sender.
        let act = self.unique_action(
            &u,
            to,
            None,
            false,
            from.is_none(),
            transfer_stars,
            can_transfer_at,
            message.as_deref(),
        );
        let peer = from.unwrap_or(SERVICE_USER_ID);
        let (msg_id, _) = self.deliver(
            to,
            |id| tlb::service_message(id, false, to, peer, date, act),
            None,
        )?;
        self.acc_mut(to)?.saved.insert(
            msg_id,
            Saved {
                msg_id,
                from,
                date,
                gift_id: u.gift_id,
                unique: Some(u.id),
                message,
                name_hidden: false,
                unsaved: false,
                refunded: false,
                pinned: false,
                convert_stars: None,
                upgrade_stars: None,
                transfer_stars,
                can_transfer_at,
            },
        );
        Ok((
            SentGift {
                msg_id,
                to,
                gift_id: u.gift_id,
                unique_id: Some(u.id),
                slug: Some(u.slug.clone()),
                num: Some(u.num),
                date,
            },
            own,
        ))
    }

    /// Edits the gift action of service message `msg_id` in `owner`'s dialog and pushes
    /// `updateEditMessage`, as Telegram does when a gift is upgraded, converted or refunded.
    fn edit_gift_action(
        &mut self,
        owner: i64,
        msg_id: i32,
        edit: impl FnOnce(&mut tl::enums::MessageAction),
    ) -> Result<(), RpcErr> {
        let a = self.acc_mut(owner)?;
        let Some(tl::enums::Message::Service(m)) = a.messages.get_mut(&msg_id) else {
            return Ok(());
        };
        edit(&mut m.action);
        let msg = tl::enums::Message::Service(m.clone());
        let upd = self.log_update(owner, |pts| {
            tl::enums::Update::EditMessage(tl::types::UpdateEditMessage {
                message: msg,
                pts,
                pts_count: 1,
            })
        })?;
        self.push(owner, vec![upd], None);
        Ok(())
    }

    /// Upgrades a regular gift to a collectible; a new service message carries it.
    pub fn upgrade_gift(&mut self, owner: i64, msg_id: i32) -> Result<SentGift, RpcErr> {
        let s = self.saved_gift(owner, msg_id)?;
        if s.unique.is_some() {
            return Err(RpcErr::bad("STARGIFT_ALREADY_UPGRADED"));
        }
        let u = self.mint_unique(s.gift_id)?;
        let date = self.now32();
        // The upgrade is the owner's own act: its service message is the owner's OUTGOING
        // message in the chat with the gift's sender (`from_id` = owner), and the action's
        // `from_id` names the gift's sender. TDLib MessageContent.cpp (messageUpgradedGift):
        // receiver = `is_upgrade != is_outgoing ? dialog : me`, and the received-gift id is
        // taken from the message when `is_upgrade == is_outgoing`. See tgsim/FIDELITY.md.
        let mut act = self.unique_action(
            &u,
            owner,
            s.from,
            true,
            false,
            None,
            None,
            s.message.as_deref(),
        );
        // A third user prepaid this upgrade: the collectible's message says so (TDLib origin
        // `upgradedGiftOriginPrepaidUpgrade`).
        let prepaid = self.upgrade_prepaid(owner, msg_id);
        if let tl::enums::MessageAction::StarGiftUnique(a) = &mut act {
            a.prepaid_upgrade = prepaid;
        }
        let peer = s.from.unwrap_or(SERVICE_USER_ID);
        // The gift's sender sees the same upgrade as an INCOMING message in its chat with the
        // owner (core constructor/messageActionStarGiftUnique `upgrade`: "from a previously
        // received or sent (depending on the out flag ...) gift"; TDLib: receiver =
        // `is_upgrade != is_outgoing ? chat : me`, so incoming + upgrade = the other side
        // upgraded a gift we sent). It gets no saved gift: the collectible is the owner's.
        if let Some(sender) = s.from.filter(|f| *f != SERVICE_USER_ID && *f != owner)
            && self.acc(sender).is_ok()
        {
            let sender_act = act.clone();
            self.deliver(
                sender,
                |id| tlb::service_message(id, false, sender, owner, date, sender_act),
                None,
            )?;
        }
        let (new_id, _) = self.deliver(
            owner,
            |id| tlb::service_message(id, true, owner, peer, date, act),
            None,
        )?;
        self.edit_gift_action(owner, msg_id, |act| {
            if let tl::enums::MessageAction::StarGift(act) = act {
                act.upgraded = true;
                act.upgrade_msg_id = Some(new_id);
            }
        })?;
        let a = self.acc_mut(owner)?;
        a.saved.remove(&msg_id);
        a.saved.insert(
            new_id,
            Saved {
                msg_id: new_id,
                unique: Some(u.id),
                convert_stars: None,
                upgrade_stars: None,
                transfer_stars: None,
                can_transfer_at: None,
                date,
                ..s
            },
        );
        Ok(SentGift {
            msg_id: new_id,
            to: owner,
            gift_id: u.gift_id,
            unique_id: Some(u.id),
            slug: Some(u.slug),
            num: Some(u.num),
            date,
        })
    }

    fn saved_gift(&self, owner: i64, msg_id: i32) -> Result<Saved, RpcErr> {
        self.acc(owner)?
            .saved
            .get(&msg_id)
            .cloned()
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_FOUND"))
    }

    /// Converts a regular gift to stars (it leaves the saved list).
    pub fn convert_gift(&mut self, owner: i64, msg_id: i32) -> Result<i64, RpcErr> {
        let s = self.saved_gift(owner, msg_id)?;
        let Some(stars) = s
            .convert_stars
            .filter(|_| s.unique.is_none() && !s.refunded)
        else {
            return Err(RpcErr::bad("STARGIFT_CONVERT_INVALID"));
        };
        let a = self.acc_mut(owner)?;
        a.saved.remove(&msg_id);
        a.stars = a.stars.saturating_add(stars);
        self.edit_gift_action(owner, msg_id, |act| {
            if let tl::enums::MessageAction::StarGift(act) = act {
                act.converted = true;
            }
        })?;
        Ok(stars)
    }

    /// The payment for a gift is refunded: the gift stays listed with `refunded`.
    pub fn refund_gift(&mut self, owner: i64, msg_id: i32) -> Result<(), RpcErr> {
        let s = self.saved_gift(owner, msg_id)?;
        let price = self.gift(s.gift_id).map(|g| g.stars).unwrap_or(0);
        let a = self.acc_mut(owner)?;
        if let Some(g) = a.saved.get_mut(&msg_id) {
            g.refunded = true;
            g.convert_stars = None;
        }
        if let Some(from) = s.from
            && let Ok(sender) = self.acc_mut(from)
        {
            sender.stars = sender.stars.saturating_add(price);
        }
        self.edit_gift_action(owner, msg_id, |act| match act {
            tl::enums::MessageAction::StarGift(act) => {
                act.refunded = true;
                act.convert_stars = None;
            }
            tl::enums::MessageAction::StarGiftUnique(act) => act.refunded = true,
            _ => {}
        })?;
        Ok(())
    }

    /// Shows or hides a gift on the profile (`unsaved`).
    pub fn set_gift_saved(&mut self, owner: i64, msg_id: i32, saved: bool) -> Result<(), RpcErr> {
        self.acc_mut(owner)?
            .saved
            .get_mut(&msg_id)
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_FOUND"))?
            .unsaved = !saved;
        Ok(())
    }

    /// Pins or unpins a gift.
    pub fn set_gift_pinned(&mut self, owner: i64, msg_id: i32, pinned: bool) -> Result<(), RpcErr> {
        self.acc_mut(owner)?
            .saved
            .get_mut(&msg_id)
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_FOUND"))?
            .pinned = pinned;
        Ok(())
    }

    /// Transfers a collectible `owner` holds to `to` (free transfer, checks applied). `paid`:
    /// the transfer fee was paid through a form (the recipient was checked then).
    pub fn transfer_gift(
        &mut self,
        owner: i64,
        msg_id: i32,
        to: i64,
        caller_conn: Option<u64>,
        paid: bool,
    ) -> Result<(SentGift, Option<tl::enums::Update>), RpcErr> {
        let s = self.check_transfer(owner, msg_id, to)?;
        if !paid {
            self.check_accepts(to, true, false)?;
            if s.transfer_stars.is_some() {
                return Err(RpcErr::bad("PAYMENT_REQUIRED"));
            }
        }
        // check_transfer guarantees a collectible.
        let uid = s.unique.ok_or_else(|| RpcErr::bad("STARGIFT_NOT_UNIQUE"))?;
        let u = self
            .uniques
            .get(&uid)
            .cloned()
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_FOUND"))?;
        self.acc_mut(owner)?.saved.remove(&msg_id);
        self.give_unique(u, Some(owner), to, None, None, None, caller_conn)
    }

    fn check_transfer(&self, owner: i64, msg_id: i32, to: i64) -> Result<Saved, RpcErr> {
        let s = self.saved_gift(owner, msg_id)?;
        self.acc(to)?;
        if s.unique.is_none() {
            return Err(RpcErr::bad("STARGIFT_NOT_UNIQUE"));
        }
        if let Some(at) = s.can_transfer_at {
            let left = at as i64 - self.now();
            if left > 0 {
                return Err(RpcErr::bad(format!("STARGIFT_TRANSFER_TOO_EARLY_{left}")));
            }
        }
        Ok(s)
    }

    fn new_form(&mut self, owner: i64, kind: FormKind, stars: i64) -> i64 {
        let form_id = self.fresh_id() ^ rnd_i64().rotate_left(20);
        let created = self.now();
        self.forms.insert(
            form_id,
            Form {
                owner,
                kind,
                stars,
                created,
                paid: false,
            },
        );
        form_id
    }

    /// `payments.getPaymentForm(inputInvoiceStarGiftTransfer)`: (form_id, stars).
    pub fn payment_form(&mut self, owner: i64, msg_id: i32, to: i64) -> Result<(i64, i64), RpcErr> {
        let s = self.check_transfer(owner, msg_id, to)?;
        self.check_accepts(to, true, false)?;
        let Some(stars) = s.transfer_stars else {
            return Err(RpcErr::bad("NO_PAYMENT_NEEDED"));
        };
        Ok((
            self.new_form(owner, FormKind::Transfer { msg_id, to }, stars),
            stars,
        ))
    }

    /// The price of buying `gift` for someone, with its upgrade paid in advance or not.
    fn gift_price(gift: &GiftInfo, include_upgrade: bool) -> Result<i64, RpcErr> {
        if !include_upgrade {
            return Ok(gift.stars);
        }
        match gift.upgrade_stars {
            Some(up) => Ok(gift.stars + up),
            None => Err(RpcErr::bad("STARGIFT_UPGRADE_UNAVAILABLE")),
        }
    }

    /// `payments.getPaymentForm(inputInvoiceStarGift)`: `owner` buys catalogue gift `gift_id`
    /// for `to`. A sold-out gift still gets a form; paying it answers `STARGIFT_USAGE_LIMITED`.
    /// Returns (form_id, stars).
    pub fn gift_payment_form(
        &mut self,
        owner: i64,
        to: i64,
        gift_id: i64,
        hide_name: bool,
        include_upgrade: bool,
        message: Option<String>,
    ) -> Result<(i64, i64), RpcErr> {
        self.acc(owner)?;
        self.acc(to)?;
        let gift = self.gift(gift_id)?;
        self.check_accepts(to, false, gift.limited_total.is_some())?;
        // Sold-out gifts still get a form (the payment refuses them); the buyer's own limits
        // (per user, Premium, lock, auction) refuse the form.
        if let Some(e) = self
            .purchase_refusal(owner, gift_id)
            .filter(|e| e.message != "STARGIFT_USAGE_LIMITED")
        {
            return Err(e);
        }
        let stars = Self::gift_price(&gift, include_upgrade)?;
        let kind = FormKind::Gift {
            gift_id,
            to,
            hide_name,
            include_upgrade,
            message,
        };
        Ok((self.new_form(owner, kind, stars), stars))
    }

    /// `payments.sendStarsForm`: pays a form issued to `owner`. Returns the payer's own update
    /// (its outgoing service message) for the answer.
    pub fn send_stars_form(
        &mut self,
        owner: i64,
        form_id: i64,
        caller_conn: Option<u64>,
    ) -> Result<Option<tl::enums::Update>, RpcErr> {
        let form = self
            .forms
            .get(&form_id)
            .cloned()
            .filter(|f| f.owner == owner)
            .ok_or_else(|| RpcErr::bad("FORM_ID_INVALID"))?;
        // An expired form is gone, paid or not: FORM_EXPIRED. (Which of the two errors Telegram
        // gives for a paid form after its time is not documented; the one that tells a payer
        // less is modelled, so nothing relies on FORM_SUBMIT_DUPLICATE after expiry.)
        if self.now() - form.created >= self.ttls.payment_form.as_secs() as i64 {
            self.forms.remove(&form_id);
            return Err(RpcErr::bad("FORM_EXPIRED"));
        }
        if form.paid {
            // core.telegram.org/method/payments.sendStarsForm lists FORM_SUBMIT_DUPLICATE.
            return Err(RpcErr::bad("FORM_SUBMIT_DUPLICATE"));
        }
        let price_now = match &form.kind {
            FormKind::Transfer { msg_id, to } => self
                .check_transfer(owner, *msg_id, *to)?
                .transfer_stars
                .unwrap_or(0),
            FormKind::Gift {
                gift_id,
                include_upgrade,
                ..
            } => Self::gift_price(&self.gift(*gift_id)?, *include_upgrade)?,
        };
        if price_now != form.stars {
            return Err(RpcErr::new(406, "STARS_FORM_AMOUNT_MISMATCH"));
        }
        if let FormKind::Gift { gift_id, .. } = &form.kind {
            check_available(&self.gift(*gift_id)?)?;
            if let Some(e) = self.purchase_refusal(owner, *gift_id) {
                return Err(e);
            }
        }
        if self.acc(owner)?.stars < form.stars {
            return Err(RpcErr::bad("BALANCE_TOO_LOW"));
        }
        let own = match form.kind {
            FormKind::Transfer { msg_id, to } => {
                self.transfer_gift(owner, msg_id, to, caller_conn, true)?.1
            }
            FormKind::Gift {
                gift_id,
                to,
                hide_name,
                include_upgrade,
                message,
            } => {
                let gift = self.gift(gift_id)?;
                let (_, own) = self.deliver_regular(
                    owner,
                    to,
                    &gift,
                    hide_name,
                    message,
                    include_upgrade,
                    caller_conn,
                )?;
                self.take_one(gift_id);
                self.record_gift_purchase(owner, to, gift_id, form.stars);
                self.count_purchase(owner, gift_id);
                Some(own)
            }
        };
        self.acc_mut(owner)?.stars -= form.stars;
        if let Some(f) = self.forms.get_mut(&form_id) {
            f.paid = true;
        }
        Ok(own)
    }

    /// Stars balance.
    pub fn stars(&self, account: i64) -> Result<i64, RpcErr> {
        Ok(self.acc(account)?.stars)
    }

    /// Sets a stars balance.
    pub fn set_stars(&mut self, account: i64, stars: i64) -> Result<(), RpcErr> {
        self.acc_mut(account)?.stars = stars;
        Ok(())
    }

    /// Saved gifts, pinned first then newest first.
    pub fn saved_gifts(&self, account: i64) -> Result<Vec<SavedGiftInfo>, RpcErr> {
        let a = self.acc(account)?;
        let mut v: Vec<&Saved> = a.saved.values().collect();
        v.sort_by_key(|s| (!s.pinned, std::cmp::Reverse(s.msg_id)));
        Ok(v.into_iter().map(|s| self.saved_info(s)).collect())
    }

    fn saved_info(&self, s: &Saved) -> SavedGiftInfo {
        SavedGiftInfo {
            msg_id: s.msg_id,
            from: s.from,
            date: s.date,
            gift_id: s.gift_id,
            unique: s.unique.and_then(|u| self.uniques.get(&u).cloned()),
            message: s.message.clone(),
            name_hidden: s.name_hidden,
            unsaved: s.unsaved,
            refunded: s.refunded,
            pinned: s.pinned,
            convert_stars: s.convert_stars,
            upgrade_stars: s.upgrade_stars,
            transfer_stars: s.transfer_stars,
            can_transfer_at: s.can_transfer_at,
        }
    }

    fn tl_saved(&self, s: &Saved, owner: i64) -> Result<tl::enums::SavedStarGift, RpcErr> {
        let gift = match s.unique.and_then(|u| self.uniques.get(&u)) {
            Some(u) => self.tl_unique(u, owner),
            None => {
                let mut g = self.tl_star_gift(&self.gift(s.gift_id)?);
                if let tl::enums::StarGift::Gift(g) = &mut g {
                    self.apply_gift_rules(g, Some(owner));
                }
                g
            }
        };
        let prepaid = self.upgrade_prepaid(owner, s.msg_id);
        Ok(tl::enums::SavedStarGift::Gift(tl::types::SavedStarGift {
            name_hidden: s.name_hidden,
            unsaved: s.unsaved,
            refunded: s.refunded,
            can_upgrade: s.upgrade_stars.is_some() && s.unique.is_none(),
            pinned_to_top: s.pinned,
            // A third user paid the upgrade after the gift was sent (core api/gifts,
            // "Prepaying for someone else's upgrade"; TDLib `is_upgrade_separate`).
            upgrade_separate: prepaid && s.unique.is_none(),
            from_id: s.from.map(tlb::peer_user),
            date: s.date,
            gift,
            message: s.message.as_deref().map(tlb::text),
            msg_id: Some(s.msg_id),
            saved_id: None,
            convert_stars: s.convert_stars,
            upgrade_stars: s.upgrade_stars.filter(|_| s.unique.is_none()),
            can_export_at: None,
            transfer_stars: s.transfer_stars,
            can_transfer_at: s.can_transfer_at,
            can_resell_at: None,
            collection_id: None,
            prepaid_upgrade_hash: self.prepaid_upgrade_hash(owner, s.msg_id),
            drop_original_details_stars: None,
            gift_num: None,
            can_craft_at: None,
        }))
    }

    /// `payments.getSavedStarGifts`.
    pub fn get_saved_star_gifts(
        &self,
        caller: i64,
        req: &tl::functions::payments::GetSavedStarGifts,
    ) -> Result<tl::enums::payments::SavedStarGifts, RpcErr> {
        let owner = self.resolve_input_peer(caller, &req.peer)?;
        let a = self.acc(owner)?;
        let mut v: Vec<&Saved> = a
            .saved
            .values()
            .filter(|s| {
                let unique = s.unique.is_some();
                let limited = self
                    .gift(s.gift_id)
                    .map(|g| g.limited_total.is_some())
                    .unwrap_or(false);
                let upgradable = !unique && s.upgrade_stars.is_some();
                let hidden = owner != caller && s.unsaved;
                // `exclude_hosted`: "gifts that are just hosted and are not owned" (TDLib
                // getReceivedGifts); a hosted collectible has `host_id` set.
                let hosted = s.unique.is_some_and(|u| self.is_hosted(u));
                !(hidden
                    || req.exclude_hosted && hosted
                    || req.exclude_unsaved && s.unsaved
                    || req.exclude_saved && !s.unsaved
                    || req.exclude_unique && unique
                    || req.exclude_unlimited && !unique && !limited
                    || req.exclude_upgradable && upgradable
                    || req.exclude_unupgradable && !unique && !upgradable
                    || req.collection_id.is_some())
            })
            .collect();
        if req.sort_by_value {
            v.sort_by_key(|s| {
                let value = self.gift(s.gift_id).map(|g| g.stars).unwrap_or(0)
                    * if s.unique.is_some() { 10 } else { 1 };
                (
                    !s.pinned,
                    std::cmp::Reverse(value),
                    std::cmp::Reverse(s.msg_id),
                )
            });
        } else {
            v.sort_by_key(|s| (!s.pinned, std::cmp::Reverse(s.msg_id)));
        }
        let offset: usize = if req.offset.is_empty() {
            0
        } else {
            req.offset
                .parse()
                .map_err(|_| RpcErr::bad("OFFSET_INVALID"))?
        };
        if req.limit < 0 {
            return Err(RpcErr::bad("LIMIT_INVALID"));
        }
        let limit = (req.limit as usize).min(1000);
        let end = offset.saturating_add(limit).min(v.len());
        let page = if offset < v.len() {
            &v[offset..end]
        } else {
            &[][..]
        };
        let mut gifts = Vec::with_capacity(page.len());
        let mut ids = vec![owner];
        for s in page {
            gifts.push(self.tl_saved(s, owner)?);
            if let Some(f) = s.from {
                ids.push(f);
            }
        }
        Ok(tl::enums::payments::SavedStarGifts::Gifts(
            tl::types::payments::SavedStarGifts {
                count: v.len() as i32,
                chat_notifications_enabled: None,
                gifts,
                next_offset: (end < v.len()).then(|| end.to_string()),
                chats: Vec::new(),
                users: self.tl_users(&ids, caller),
            },
        ))
    }

    /// `payments.getSavedStarGift` (by input references).
    pub fn get_saved_star_gift(
        &self,
        caller: i64,
        refs: &[tl::enums::InputSavedStarGift],
    ) -> Result<tl::enums::payments::SavedStarGifts, RpcErr> {
        let a = self.acc(caller)?;
        let mut gifts = Vec::new();
        let mut ids = vec![caller];
        for r in refs {
            if let tl::enums::InputSavedStarGift::User(u) = r
                && let Some(s) = a.saved.get(&u.msg_id)
            {
                gifts.push(self.tl_saved(s, caller)?);
                ids.extend(s.from);
            }
        }
        Ok(tl::enums::payments::SavedStarGifts::Gifts(
            tl::types::payments::SavedStarGifts {
                count: gifts.len() as i32,
                chat_notifications_enabled: None,
                gifts,
                next_offset: None,
                chats: Vec::new(),
                users: self.tl_users(&ids, caller),
            },
        ))
    }

    // ----- messages and bots -----------------------------------------------------------

    /// A text message from `from` to `to` (player to bot, bot to player...). Returns the
    /// sender-side message id and the sender's own update.
    pub fn send_text(
        &mut self,
        from: i64,
        to: i64,
        text: &str,
        markup: Option<tl::enums::ReplyMarkup>,
        caller_conn: Option<u64>,
    ) -> Result<(i32, i32, tl::enums::Update), RpcErr> {
        self.acc(from)?;
        self.acc(to)?;
        if text.is_empty() {
            return Err(RpcErr::bad("MESSAGE_EMPTY"));
        }
        let date = self.now32();
        let m2 = markup.clone();
        let (peer_msg_id, _) = self.deliver(
            to,
            |id| tlb::text_message(id, false, to, from, date, text, m2, None),
            None,
        )?;
        let m3 = markup.clone();
        let (msg_id, own) = self.deliver(
            from,
            |id| tlb::text_message(id, true, from, to, date, text, m3, None),
            caller_conn,
        )?;
        self.acc_mut(from)?.texts.insert(
            msg_id,
            TextMsg {
                peer: to,
                peer_msg_id,
                text: text.into(),
                markup,
                edited: false,
                date,
            },
        );
        Ok((msg_id, peer_msg_id, own))
    }

    /// `messages.editMessage` of a text message the caller sent.
    pub fn edit_text(
        &mut self,
        from: i64,
        msg_id: i32,
        text: Option<&str>,
        markup: Option<tl::enums::ReplyMarkup>,
        caller_conn: Option<u64>,
    ) -> Result<tl::enums::Update, RpcErr> {
        let now = self.now32();
        let t = {
            let a = self.acc_mut(from)?;
            let t = a
                .texts
                .get_mut(&msg_id)
                .ok_or_else(|| RpcErr::bad("MESSAGE_ID_INVALID"))?;
            // messages.editMessage replaces the reply markup with the one sent, and an absent
            // `reply_markup` leaves the message without one (TDLib EditMessageQuery sets the flag
            // only for a non-null markup; td_api editMessageText: "pass null if none"). An edit
            // that changes neither the text nor the markup is MESSAGE_NOT_MODIFIED; a change of
            // the markup alone is a real edit.
            let new_text = text.unwrap_or(&t.text).to_owned();
            if new_text == t.text && markup == t.markup {
                return Err(RpcErr::bad("MESSAGE_NOT_MODIFIED"));
            }
            t.text = new_text;
            t.markup = markup;
            t.edited = true;
            t.clone()
        };
        let peer_msg = tlb::text_message(
            t.peer_msg_id,
            false,
            t.peer,
            from,
            t.date,
            &t.text,
            t.markup.clone(),
            Some(now),
        );
        let own_msg = tlb::text_message(
            msg_id,
            true,
            from,
            t.peer,
            t.date,
            &t.text,
            t.markup.clone(),
            Some(now),
        );
        self.acc_mut(t.peer)?
            .messages
            .insert(t.peer_msg_id, peer_msg.clone());
        self.acc_mut(from)?.messages.insert(msg_id, own_msg.clone());
        let upd = self.log_update(t.peer, |pts| {
            tl::enums::Update::EditMessage(tl::types::UpdateEditMessage {
                message: peer_msg,
                pts,
                pts_count: 1,
            })
        })?;
        self.push(t.peer, vec![upd], None);
        let own = self.log_update(from, |pts| {
            tl::enums::Update::EditMessage(tl::types::UpdateEditMessage {
                message: own_msg,
                pts,
                pts_count: 1,
            })
        })?;
        self.push(from, vec![own.clone()], caller_conn);
        Ok(own)
    }

    /// Messages `bot` sent to `player`, oldest first.
    pub fn bot_messages_to(&self, bot: i64, player: i64) -> Result<Vec<BotMessage>, RpcErr> {
        Ok(self
            .acc(bot)?
            .texts
            .iter()
            .filter(|(_, t)| t.peer == player)
            .map(|(id, t)| BotMessage {
                msg_id: *id,
                text: t.text.clone(),
                buttons: markup_buttons(t.markup.as_ref()),
                edited: t.edited,
                date: t.date,
            })
            .collect())
    }

    /// A player presses an inline button under `bot`'s message `msg_id`; returns the query id.
    ///
    /// `forged`: the data need not be one of the message's buttons, as a modified client can
    /// send (Bot API `CallbackQuery.data`: "Be aware that the message originated the query can
    /// contain no callback buttons with this data").
    pub fn press_button(
        &mut self,
        player: i64,
        bot: i64,
        msg_id: i32,
        data: &[u8],
        forged: bool,
    ) -> Result<i64, RpcErr> {
        let t = self
            .acc(bot)?
            .texts
            .get(&msg_id)
            .filter(|t| t.peer == player)
            .cloned()
            .ok_or_else(|| RpcErr::bad("MESSAGE_ID_INVALID"))?;
        let has = markup_buttons(t.markup.as_ref())
            .iter()
            .flatten()
            .any(|b| b.data.as_deref() == Some(data));
        if !has && !forged {
            return Err(RpcErr::bad("DATA_INVALID"));
        }
        let query_id = rnd_i64();
        self.queries.insert(query_id, Query { bot, answer: None });
        let upd = tl::enums::Update::BotCallbackQuery(tl::types::UpdateBotCallbackQuery {
            query_id,
            user_id: player,
            peer: tlb::peer_user(player),
            msg_id,
            chat_instance: player ^ bot,
            data: Some(data.to_vec()),
            game_short_name: None,
        });
        self.push(bot, vec![upd], None);
        Ok(query_id)
    }

    /// `messages.setBotCallbackAnswer`.
    pub fn answer_callback(
        &mut self,
        bot: i64,
        query_id: i64,
        answer: CallbackAnswer,
    ) -> Result<(), RpcErr> {
        match self.queries.get_mut(&query_id) {
            Some(q) if q.bot == bot => {
                q.answer = Some(answer);
                Ok(())
            }
            _ => Err(RpcErr::bad("QUERY_ID_INVALID")),
        }
    }

    /// The answer to a button press, once the bot gave one.
    pub fn callback_answer(&self, query_id: i64) -> Option<CallbackAnswer> {
        self.queries.get(&query_id).and_then(|q| q.answer.clone())
    }

    /// `bots.setBotCommands`.
    /// `lang_code` empty: the commands of every user without dedicated ones for their
    /// language; otherwise the commands of users of that language (core.telegram.org/method/
    /// bots.setBotCommands). Only the default scope is simulated.
    pub fn set_bot_commands(
        &mut self,
        bot: i64,
        lang_code: &str,
        cmds: Vec<(String, String)>,
    ) -> Result<(), RpcErr> {
        let a = self.acc_mut(bot)?;
        if !a.bot {
            return Err(RpcErr::bad("USER_BOT_REQUIRED"));
        }
        if lang_code.is_empty() {
            a.commands = cmds;
        } else {
            a.lang_commands.insert(lang_code.to_owned(), cmds);
        }
        Ok(())
    }

    /// Commands a bot registered for every language.
    pub fn bot_commands(&self, bot: i64) -> Result<Vec<(String, String)>, RpcErr> {
        Ok(self.acc(bot)?.commands.clone())
    }

    /// Commands a user whose app is in `lang` sees: the ones registered for that language,
    /// else the ones for every language.
    pub fn bot_commands_for(&self, bot: i64, lang: &str) -> Result<Vec<(String, String)>, RpcErr> {
        let a = self.acc(bot)?;
        Ok(a.lang_commands
            .get(lang)
            .cloned()
            .unwrap_or_else(|| a.commands.clone()))
    }

    /// Telegram's limits on a bot's messages ([`crate::bot_limits`]): a short burst then one
    /// a second in one chat, 30 a second overall; refused with FLOOD_WAIT_X (X the seconds,
    /// rounded up, until a send would pass). Sends by users are not limited here.
    pub fn check_bot_send(&mut self, from: i64, to: i64) -> Result<(), RpcErr> {
        let now = self.now_ms();
        let a = self.acc_mut(from)?;
        if !a.bot {
            return Ok(());
        }
        a.sends.check(to, now).map_err(|wait_ms| RpcErr {
            code: 420,
            message: format!("FLOOD_WAIT_{}", (wait_ms + 999) / 1000),
        })
    }

    /// `messages.getMessages`: messages of the caller's private dialogs by id (missing ones
    /// come back as `messageEmpty`, as Telegram does).
    pub fn get_messages(
        &self,
        caller: i64,
        ids: &[tl::enums::InputMessage],
    ) -> Result<tl::enums::messages::Messages, RpcErr> {
        let a = self.acc(caller)?;
        let mut messages = Vec::with_capacity(ids.len());
        let mut users = vec![caller];
        for i in ids {
            let tl::enums::InputMessage::Id(i) = i else {
                continue;
            };
            match a.messages.get(&i.id) {
                Some(m) => {
                    users.extend(message_peer(m));
                    messages.push(m.clone());
                }
                None => messages.push(tl::enums::Message::Empty(tl::types::MessageEmpty {
                    id: i.id,
                    peer_id: None,
                })),
            }
        }
        Ok(tl::enums::messages::Messages::Messages(
            tl::types::messages::Messages {
                messages,
                topics: Vec::new(),
                chats: Vec::new(),
                users: self.tl_users(&users, caller),
            },
        ))
    }

    /// `messages.getHistory` of the caller's private chat with `peer`, newest first, paged as
    /// core.telegram.org/api/offsets says: the list is sliced at
    /// `offsetFromID(offset_id) + add_offset` (the number of messages from the newest down to
    /// `offset_id`, inclusive; with `offset_id` 0, down to the first message older than
    /// `offset_date`, or none), `limit` long (0 means 20, at most 100); then `max_id` and
    /// `min_id` (when positive) filter the slice. `hash` is ignored (the full answer is always
    /// sent, as for hash 0). The whole history in one answer is `messages.messages`, a part of
    /// it `messages.messagesSlice` with the dialog's total `count`.
    #[allow(clippy::too_many_arguments)]
    pub fn get_history(
        &self,
        caller: i64,
        peer: i64,
        offset_id: i32,
        offset_date: i32,
        add_offset: i32,
        limit: i32,
        max_id: i32,
        min_id: i32,
    ) -> Result<tl::enums::messages::Messages, RpcErr> {
        if limit < 0 {
            return Err(RpcErr::bad("LIMIT_INVALID"));
        }
        let a = self.acc(caller)?;
        let all: Vec<&tl::enums::Message> = a
            .messages
            .values()
            .rev()
            .filter(|m| message_peer(m) == Some(peer))
            .collect();
        let base = if offset_id != 0 {
            all.iter()
                .take_while(|m| message_id(m) >= offset_id)
                .count()
        } else if offset_date != 0 {
            all.iter()
                .take_while(|m| message_date(m) >= offset_date)
                .count()
        } else {
            0
        } as i64;
        let limit = if limit == 0 { 20 } else { limit.min(100) } as i64;
        let total = all.len() as i64;
        let start = (base + add_offset as i64).clamp(0, total);
        let end = (base + add_offset as i64 + limit).clamp(0, total);
        let messages: Vec<tl::enums::Message> = all[start as usize..end.max(start) as usize]
            .iter()
            .filter(|m| max_id <= 0 || message_id(m) < max_id)
            .filter(|m| min_id <= 0 || message_id(m) > min_id)
            .map(|m| (*m).clone())
            .collect();
        let mut ids = vec![caller, peer];
        for m in &messages {
            if let tl::enums::Message::Service(s) = m
                && let Some(tl::enums::Peer::User(u)) = &s.from_id
            {
                ids.push(u.user_id);
            }
        }
        let users = self.tl_users(&ids, caller);
        if start == 0 && end == total {
            return Ok(tl::enums::messages::Messages::Messages(
                tl::types::messages::Messages {
                    messages,
                    topics: Vec::new(),
                    chats: Vec::new(),
                    users,
                },
            ));
        }
        Ok(tl::enums::messages::Messages::Slice(
            tl::types::messages::MessagesSlice {
                inexact: false,
                count: total as i32,
                next_rate: None,
                offset_id_offset: None,
                search_flood: None,
                messages,
                topics: Vec::new(),
                chats: Vec::new(),
                users,
            },
        ))
    }

    /// `messages.getDialogs` (minimal: every peer with its top message).
    pub fn dialogs(&self, caller: i64) -> Result<tl::enums::messages::Dialogs, RpcErr> {
        let a = self.acc(caller)?;
        let mut top: BTreeMap<i64, i32> = BTreeMap::new();
        for (id, m) in &a.messages {
            let peer = message_peer(m).unwrap_or(0);
            top.insert(peer, *id);
        }
        let mut tops: Vec<(i64, i32)> = top.into_iter().collect();
        tops.sort_by_key(|(_, id)| std::cmp::Reverse(*id));
        let dialogs = tops
            .iter()
            .map(|(peer, id)| {
                tl::enums::Dialog::Dialog(tl::types::Dialog {
                    pinned: false,
                    unread_mark: false,
                    view_forum_as_messages: false,
                    peer: tlb::peer_user(*peer),
                    top_message: *id,
                    read_inbox_max_id: *id,
                    read_outbox_max_id: *id,
                    unread_count: 0,
                    unread_mentions_count: 0,
                    unread_reactions_count: 0,
                    unread_poll_votes_count: 0,
                    notify_settings: tl::enums::PeerNotifySettings::Settings(
                        tl::types::PeerNotifySettings {
                            show_previews: None,
                            silent: None,
                            mute_until: None,
                            ios_sound: None,
                            android_sound: None,
                            other_sound: None,
                            stories_muted: None,
                            stories_hide_sender: None,
                            stories_ios_sound: None,
                            stories_android_sound: None,
                            stories_other_sound: None,
                        },
                    ),
                    pts: None,
                    draft: None,
                    folder_id: None,
                    ttl_period: None,
                })
            })
            .collect();
        let messages = tops
            .iter()
            .filter_map(|(_, id)| a.messages.get(id).cloned())
            .collect();
        let mut ids: Vec<i64> = tops.iter().map(|(p, _)| *p).collect();
        ids.push(caller);
        Ok(tl::enums::messages::Dialogs::Dialogs(
            tl::types::messages::Dialogs {
                dialogs,
                messages,
                chats: Vec::new(),
                users: self.tl_users(&ids, caller),
            },
        ))
    }

    // ----- auth -----------------------------------------------------------------------

    /// `auth.sendCode`: remembers a code for the phone and returns its hash.
    pub fn send_code(&mut self, phone: &str) -> Result<String, RpcErr> {
        let phone = normalize_phone(phone);
        if phone.len() < 4 {
            return Err(RpcErr::bad("PHONE_NUMBER_INVALID"));
        }
        let code = format!("{:05}", rnd_i64().rem_euclid(100_000));
        let hash = hex::encode(rnd_i64().to_le_bytes());
        let created = self.now();
        self.codes.insert(
            hash.clone(),
            LoginCode {
                phone,
                code,
                created,
            },
        );
        Ok(hash)
    }

    /// The last login code sent to `phone` (what the app would show).
    pub fn login_code(&self, phone: &str) -> Option<String> {
        let phone = normalize_phone(phone);
        self.codes
            .values()
            .filter(|c| c.phone == phone)
            .max_by_key(|c| c.created)
            .map(|c| c.code.clone())
    }

    /// `auth.signIn`. `Ok(None)` means the phone has no account (sign-up required).
    pub fn sign_in(
        &mut self,
        key_id: u64,
        phone: &str,
        hash: &str,
        code: &str,
    ) -> Result<Option<i64>, RpcErr> {
        let phone = normalize_phone(phone);
        let entry = self
            .codes
            .get(hash)
            .filter(|c| c.phone == phone)
            .cloned()
            .ok_or_else(|| RpcErr::bad("PHONE_CODE_EXPIRED"))?;
        if self.now() - entry.created > self.ttls.login_code.as_secs() as i64 {
            self.codes.remove(hash);
            return Err(RpcErr::bad("PHONE_CODE_EXPIRED"));
        }
        if entry.code != code {
            return Err(RpcErr::bad("PHONE_CODE_INVALID"));
        }
        self.codes.remove(hash);
        let Some(&id) = self.phones.get(&phone) else {
            return Ok(None);
        };
        let has_password = self.acc(id)?.password.is_some();
        let k = self
            .keys
            .get_mut(&key_id)
            .ok_or_else(|| RpcErr::new(401, "AUTH_KEY_UNREGISTERED"))?;
        if has_password {
            k.pending_2fa = Some(id);
            return Err(RpcErr::new(401, "SESSION_PASSWORD_NEEDED"));
        }
        k.account = Some(id);
        Ok(Some(id))
    }

    /// `account.getPassword`.
    pub fn get_password(&mut self, key_id: u64) -> Result<tl::enums::account::Password, RpcErr> {
        let k = self
            .keys
            .get(&key_id)
            .ok_or_else(|| RpcErr::new(401, "AUTH_KEY_UNREGISTERED"))?;
        let account = k.pending_2fa.or(k.account);
        let setup = account
            .and_then(|a| self.accounts.get(&a))
            .and_then(|a| a.password.clone());
        let mut secure_random = vec![0u8; 256];
        rand::Rng::fill(&mut rand::thread_rng(), &mut secure_random[..]);
        let new_algo = |salt1: Vec<u8>, salt2: Vec<u8>| {
            tl::enums::PasswordKdfAlgo::Sha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow(
                tl::types::PasswordKdfAlgoSha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow {
                    salt1,
                    salt2,
                    g: crate::srp::G,
                    p: crate::srp::p_bytes(),
                },
            )
        };
        let new_secure_algo =
            tl::enums::SecurePasswordKdfAlgo::Sha512(tl::types::SecurePasswordKdfAlgoSha512 {
                salt: secure_random[..8].to_vec(),
            });
        let mut salt = vec![0u8; 8];
        rand::Rng::fill(&mut rand::thread_rng(), &mut salt[..]);
        let (Some(account), Some(setup)) = (account, setup) else {
            return Ok(tl::enums::account::Password::Password(
                tl::types::account::Password {
                    has_recovery: false,
                    has_secure_values: false,
                    has_password: false,
                    current_algo: None,
                    srp_b: None,
                    srp_id: None,
                    hint: None,
                    email_unconfirmed_pattern: None,
                    new_algo: new_algo(salt, Vec::new()),
                    new_secure_algo,
                    secure_random,
                    pending_reset_date: None,
                    login_email_pattern: None,
                },
            ));
        };
        let ch = setup.challenge();
        let srp_id = rnd_i64();
        let srp_b = ch.g_b.to_vec();
        self.srp.insert(srp_id, (account, ch));
        Ok(tl::enums::account::Password::Password(
            tl::types::account::Password {
                has_recovery: false,
                has_secure_values: false,
                has_password: true,
                current_algo: Some(new_algo(setup.salt1.clone(), setup.salt2.clone())),
                srp_b: Some(srp_b),
                srp_id: Some(srp_id),
                hint: Some("tgsim".into()),
                email_unconfirmed_pattern: None,
                new_algo: new_algo(setup.salt1.clone(), setup.salt2.clone()),
                new_secure_algo,
                secure_random,
                pending_reset_date: None,
                login_email_pattern: None,
            },
        ))
    }

    /// `auth.checkPassword`.
    pub fn check_password(
        &mut self,
        key_id: u64,
        srp_id: i64,
        a: &[u8],
        m1: &[u8],
    ) -> Result<i64, RpcErr> {
        let (account, ch) = self
            .srp
            .get(&srp_id)
            .cloned()
            .ok_or_else(|| RpcErr::bad("SRP_ID_INVALID"))?;
        let k = self
            .keys
            .get(&key_id)
            .ok_or_else(|| RpcErr::new(401, "AUTH_KEY_UNREGISTERED"))?;
        if k.pending_2fa != Some(account) && k.account != Some(account) {
            return Err(RpcErr::bad("SRP_ID_INVALID"));
        }
        let setup = self
            .acc(account)?
            .password
            .clone()
            .ok_or_else(|| RpcErr::bad("PASSWORD_EMPTY"))?;
        if !setup.verify(&ch, a, m1) {
            return Err(RpcErr::bad("PASSWORD_HASH_INVALID"));
        }
        self.srp.remove(&srp_id);
        if let Some(k) = self.keys.get_mut(&key_id) {
            k.pending_2fa = None;
            k.account = Some(account);
        }
        Ok(account)
    }

    /// `auth.importBotAuthorization`.
    pub fn import_bot(&mut self, key_id: u64, token: &str) -> Result<i64, RpcErr> {
        let id = *self
            .tokens
            .get(token)
            .ok_or_else(|| RpcErr::bad("ACCESS_TOKEN_INVALID"))?;
        let k = self
            .keys
            .get_mut(&key_id)
            .ok_or_else(|| RpcErr::new(401, "AUTH_KEY_UNREGISTERED"))?;
        k.account = Some(id);
        Ok(id)
    }

    /// Terminates every session of `account`, as the account does from another device
    /// (`auth.resetAuthorizations`, "terminate all other sessions"): each of its keys is
    /// signed out and its calls answer 401 `SESSION_REVOKED`. Returns how many keys.
    pub fn revoke_sessions(&mut self, account: i64) -> usize {
        let mut n = 0;
        for k in self.keys.values_mut() {
            if k.account == Some(account) {
                k.account = None;
                k.pending_2fa = None;
                k.revoked = true;
                n += 1;
            }
        }
        n
    }

    /// Terminates the one session of auth key `key_id` (`account.resetAuthorization` from
    /// another device): its calls answer 401 `SESSION_REVOKED`; the account's other sessions
    /// go on. Returns whether the key was signed in.
    pub fn revoke_key(&mut self, key_id: u64) -> bool {
        match self.keys.get_mut(&key_id) {
            Some(k) if k.account.is_some() => {
                k.account = None;
                k.pending_2fa = None;
                k.revoked = true;
                true
            }
            _ => false,
        }
    }

    /// Whether a key's sessions were terminated ([`World::revoke_sessions`]).
    pub fn key_revoked(&self, id: u64) -> bool {
        self.keys.get(&id).is_some_and(|k| k.revoked)
    }

    /// `auth.logOut`: the key stays known but is no longer signed in.
    pub fn log_out(&mut self, key_id: u64) {
        if let Some(k) = self.keys.get_mut(&key_id) {
            k.account = None;
            k.pending_2fa = None;
        }
    }

    /// Account ids, ascending.
    pub fn account_ids(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.accounts.keys().copied().collect();
        v.sort();
        v
    }
}

/// A serializable copy of the durable parts of a [`World`] (accounts, keys, bots, gifts,
/// dialogs and update logs). Login codes, password challenges, payment forms, callback queries,
/// faults and counters are not kept. TL objects are stored as hex of their boxed encoding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    version: u32,
    next_id: i64,
    salt_secret: u64,
    accounts: Vec<AccountSnap>,
    keys: Vec<(String, Option<i64>)>,
    tokens: Vec<(String, i64)>,
    uniques: Vec<UniqueInfo>,
    unique_counts: Vec<(i64, i32)>,
    /// Prices and availability change through the control API; absent in older snapshots.
    #[serde(default)]
    catalogue: Option<Vec<GiftInfo>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccountSnap {
    id: i64,
    access_hash: i64,
    username: String,
    first_name: String,
    phone: String,
    bot: bool,
    stars: i64,
    password: Option<(String, String, String)>,
    pts: i32,
    next_msg_id: i32,
    log: Vec<String>,
    messages: Vec<(i32, String)>,
    saved: Vec<Saved>,
    texts: Vec<TextSnap>,
    commands: Vec<(String, String)>,
    #[serde(default)]
    lang_commands: BTreeMap<String, Vec<(String, String)>>,
    #[serde(default)]
    disallowed: DisallowedGifts,
    #[serde(default)]
    lang_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TextSnap {
    msg_id: i32,
    peer: i64,
    peer_msg_id: i32,
    text: String,
    markup: Option<String>,
    edited: bool,
    date: i32,
}

fn tl_hex(v: &impl grammers_tl_types::Serializable) -> String {
    hex::encode(v.to_bytes())
}

fn tl_unhex<T: grammers_tl_types::Deserializable>(s: &str) -> Result<T, String> {
    let b = hex::decode(s).map_err(|e| format!("hex: {e}"))?;
    T::from_bytes(&b).map_err(|e| format!("tl: {e}"))
}

impl World {
    /// The durable state, for `--state DIR`.
    pub fn snapshot(&self) -> Snapshot {
        let mut accounts: Vec<AccountSnap> = self
            .accounts
            .values()
            .map(|a| AccountSnap {
                id: a.id,
                access_hash: a.access_hash,
                username: a.username.clone(),
                first_name: a.first_name.clone(),
                phone: a.phone.clone(),
                bot: a.bot,
                stars: a.stars,
                password: a.password.as_ref().map(|p| {
                    let (s1, s2, v) = p.to_parts();
                    (hex::encode(s1), hex::encode(s2), hex::encode(v))
                }),
                pts: a.pts,
                next_msg_id: a.next_msg_id,
                log: a.log.iter().map(tl_hex).collect(),
                messages: a.messages.iter().map(|(id, m)| (*id, tl_hex(m))).collect(),
                saved: a.saved.values().cloned().collect(),
                texts: a
                    .texts
                    .iter()
                    .map(|(id, t)| TextSnap {
                        msg_id: *id,
                        peer: t.peer,
                        peer_msg_id: t.peer_msg_id,
                        text: t.text.clone(),
                        markup: t.markup.as_ref().map(tl_hex),
                        edited: t.edited,
                        date: t.date,
                    })
                    .collect(),
                commands: a.commands.clone(),
                lang_commands: a.lang_commands.clone(),
                lang_code: a.lang_code.clone(),
                disallowed: a.disallowed,
            })
            .collect();
        accounts.sort_by_key(|a| a.id);
        let mut keys: Vec<(String, Option<i64>)> = self
            .keys
            .values()
            .map(|k| (hex::encode(k.key.data), k.account))
            .collect();
        keys.sort();
        let mut tokens: Vec<(String, i64)> =
            self.tokens.iter().map(|(t, id)| (t.clone(), *id)).collect();
        tokens.sort();
        let mut uniques: Vec<UniqueInfo> = self.uniques.values().cloned().collect();
        uniques.sort_by_key(|u| u.id);
        let mut unique_counts: Vec<(i64, i32)> =
            self.unique_counts.iter().map(|(g, n)| (*g, *n)).collect();
        unique_counts.sort();
        Snapshot {
            version: 1,
            next_id: self.next_id,
            salt_secret: self.salt_secret,
            accounts,
            keys,
            tokens,
            uniques,
            unique_counts,
            catalogue: Some(self.catalogue.clone()),
        }
    }

    /// Replaces the durable state with a snapshot's.
    pub fn restore(&mut self, snap: Snapshot) -> Result<(), String> {
        if snap.version != 1 {
            return Err(format!("unsupported snapshot version {}", snap.version));
        }
        let mut accounts = HashMap::new();
        let mut usernames = HashMap::new();
        let mut phones = HashMap::new();
        for a in snap.accounts {
            let password = match a.password {
                Some((s1, s2, v)) => Some(PasswordSetup::from_parts(
                    hex::decode(s1).map_err(|e| e.to_string())?,
                    hex::decode(s2).map_err(|e| e.to_string())?,
                    &hex::decode(v).map_err(|e| e.to_string())?,
                )),
                None => None,
            };
            let mut texts = BTreeMap::new();
            for t in a.texts {
                let markup = match t.markup {
                    Some(m) => Some(tl_unhex(&m)?),
                    None => None,
                };
                texts.insert(
                    t.msg_id,
                    TextMsg {
                        peer: t.peer,
                        peer_msg_id: t.peer_msg_id,
                        text: t.text,
                        markup,
                        edited: t.edited,
                        date: t.date,
                    },
                );
            }
            if !a.username.is_empty() {
                usernames.insert(a.username.to_lowercase(), a.id);
            }
            if !a.phone.is_empty() {
                phones.insert(normalize_phone(&a.phone), a.id);
            }
            let log = a
                .log
                .iter()
                .map(|u| tl_unhex(u))
                .collect::<Result<Vec<_>, _>>()?;
            let mut messages = BTreeMap::new();
            for (id, m) in a.messages {
                messages.insert(id, tl_unhex(&m)?);
            }
            accounts.insert(
                a.id,
                AccountState {
                    id: a.id,
                    access_hash: a.access_hash,
                    username: a.username,
                    first_name: a.first_name,
                    phone: a.phone,
                    bot: a.bot,
                    stars: a.stars,
                    password,
                    pts: a.pts,
                    next_msg_id: a.next_msg_id,
                    log,
                    messages,
                    saved: a.saved.into_iter().map(|s| (s.msg_id, s)).collect(),
                    texts,
                    commands: a.commands,
                    lang_commands: a.lang_commands,
                    disallowed: a.disallowed,
                    lang_code: a.lang_code,
                    sends: BotSends::default(),
                },
            );
        }
        let mut keys = HashMap::new();
        for (k, account) in snap.keys {
            let data: [u8; 256] = hex::decode(k)
                .map_err(|e| e.to_string())?
                .try_into()
                .map_err(|_| "auth key must be 256 bytes".to_string())?;
            let key = AuthKey::new(data);
            keys.insert(
                key.id_u64(),
                KeyEntry {
                    key,
                    account,
                    pending_2fa: None,
                    revoked: false,
                },
            );
        }
        self.accounts = accounts;
        self.usernames = usernames;
        self.phones = phones;
        self.keys = keys;
        self.tokens = snap.tokens.into_iter().collect();
        self.uniques = snap.uniques.into_iter().map(|u| (u.id, u)).collect();
        self.unique_counts = snap.unique_counts.into_iter().collect();
        if let Some(c) = snap.catalogue {
            self.catalogue = c;
        }
        self.next_id = snap.next_id;
        self.salt_secret = snap.salt_secret;
        Ok(())
    }
}

/// `STARGIFT_USAGE_LIMITED` when a limited gift is sold out.
fn check_available(g: &GiftInfo) -> Result<(), RpcErr> {
    if g.limited_total.is_some() && g.limited_remains == Some(0) {
        return Err(RpcErr::bad("STARGIFT_USAGE_LIMITED"));
    }
    Ok(())
}

fn normalize_phone(p: &str) -> String {
    p.chars().filter(|c| c.is_ascii_digit()).collect()
}

fn message_peer(m: &tl::enums::Message) -> Option<i64> {
    let peer = match m {
        tl::enums::Message::Message(m) => &m.peer_id,
        tl::enums::Message::Service(m) => &m.peer_id,
        tl::enums::Message::Empty(_) => return None,
    };
    match peer {
        tl::enums::Peer::User(u) => Some(u.user_id),
        _ => None,
    }
}

fn message_id(m: &tl::enums::Message) -> i32 {
    match m {
        tl::enums::Message::Message(m) => m.id,
        tl::enums::Message::Service(m) => m.id,
        tl::enums::Message::Empty(m) => m.id,
    }
}

fn message_date(m: &tl::enums::Message) -> i32 {
    match m {
        tl::enums::Message::Message(m) => m.date,
        tl::enums::Message::Service(m) => m.date,
        tl::enums::Message::Empty(_) => 0,
    }
}

fn collect_update_users(u: &tl::enums::Update, ids: &mut Vec<i64>) {
    let m = match u {
        tl::enums::Update::NewMessage(m) => &m.message,
        tl::enums::Update::EditMessage(m) => &m.message,
        tl::enums::Update::BotCallbackQuery(q) => {
            ids.push(q.user_id);
            return;
        }
        _ => return,
    };
    ids.extend(message_peer(m));
    let from = match m {
        tl::enums::Message::Message(m) => m.from_id.as_ref(),
        tl::enums::Message::Service(m) => m.from_id.as_ref(),
        tl::enums::Message::Empty(_) => None,
    };
    if let Some(tl::enums::Peer::User(u)) = from {
        ids.push(u.user_id);
    }
}

fn markup_buttons(m: Option<&tl::enums::ReplyMarkup>) -> Vec<Vec<Button>> {
    let Some(tl::enums::ReplyMarkup::ReplyInlineMarkup(m)) = m else {
        return Vec::new();
    };
    m.rows
        .iter()
        .map(|tl::enums::KeyboardInlineButtonRow::Row(r)| {
            r.buttons
                .iter()
                .map(|tl::enums::KeyboardInlineButton::Button(b)| Button {
                    text: b.text.clone(),
                    data: match &b.r#type {
                        tl::enums::InlineButtonType::Callback(c) => Some(c.data.clone()),
                        _ => None,
                    },
                })
                .collect()
        })
        .collect()
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
