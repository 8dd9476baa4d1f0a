//! Snapshots: the serializable copy of the durable part of the world ([`Snapshot`]) and restoring
//! a world from it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::accounts::normalize_phone;
use super::{AccountState, DisallowedGifts, GiftInfo, KeyEntry, Saved, TextMsg, UniqueInfo, World};
use crate::bot_limits::BotSends;
use crate::crypto::AuthKey;
use crate::srp::PasswordSetup;

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
