//! Accounts: users and bots, their access hashes and usernames, how input peers resolve to them,
//! the `user` object each viewer sees, and the gifts an account refuses (its privacy settings).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use super::{AccountState, RpcErr, World, rnd_i64};
use crate::bot_limits::BotSends;
use crate::srp::PasswordSetup;
use crate::tlb;

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

pub(super) fn normalize_phone(p: &str) -> String {
    p.chars().filter(|c| c.is_ascii_digit()).collect()
}

impl World {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn insert_account(
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

    pub(super) fn acc(&self, id: i64) -> Result<&AccountState, RpcErr> {
        self.accounts
            .get(&id)
            .ok_or_else(|| RpcErr::bad("USER_ID_INVALID"))
    }

    pub(super) fn acc_mut(&mut self, id: i64) -> Result<&mut AccountState, RpcErr> {
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

    pub(super) fn tl_users(&self, ids: &[i64], viewer: i64) -> Vec<tl::enums::User> {
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

    /// 403 `USER_DISALLOWED_STARGIFTS` when `to` refuses this kind of gift.
    pub(super) fn check_accepts(&self, to: i64, unique: bool, limited: bool) -> Result<(), RpcErr> {
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

    /// Sets which gifts `account` refuses.
    pub fn set_disallowed_gifts(&mut self, account: i64, d: DisallowedGifts) -> Result<(), RpcErr> {
        self.acc_mut(account)?.disallowed = d;
        Ok(())
    }

    /// Which gifts `account` refuses.
    pub fn disallowed_gifts(&self, account: i64) -> Result<DisallowedGifts, RpcErr> {
        Ok(self.acc(account)?.disallowed)
    }

    /// Account ids, ascending.
    pub fn account_ids(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.accounts.keys().copied().collect();
        v.sort();
        v
    }
}
