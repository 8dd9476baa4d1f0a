//! Authorization: provisioned auth keys and their server salts, login codes (`auth.sendCode`,
//! `auth.signIn`), the 2FA password check (SRP), bot tokens, logging out and revoked sessions.

use grammers_tl_types as tl;

use super::accounts::normalize_phone;
use super::{KeyEntry, LoginCode, RpcErr, World, rnd_i64};
use crate::crypto::AuthKey;

impl World {
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
}
