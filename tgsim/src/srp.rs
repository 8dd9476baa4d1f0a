//! The server half of Telegram's SRP-2048 two-step verification, so that the real client's
//! `check_password` (grammers-crypto `calculate_2fa`) is exercised end to end.
//!
//! Never store or log the plain password: only the verifier `v = g^x mod p` is kept.

use num_bigint::BigUint;
use sha2::{Digest, Sha256, Sha512};

/// Telegram's 2048-bit safe prime (the one its servers hand out), with g = 3.
pub const P_HEX: &str = "c71caeb9c6b1c9048e6c522f70f13f73980d40238e3e21c14934d037563d930f48198a0aa7c14058229493d22530f4dbfa336f6e0ac925139543aed44cce7c3720fd51f69458705ac68cd4fe6b6b13abdc9746512969328454f18faf8c595f642477fe96bb2a941d5bcd1d4ac8cc49880708fa9b378e3c4f3a9060bee67cf9a4a4a695811051907e162753b56b0f6b410dba74d8a84b2a14b3144e0ef1284754fd17ed950d5965b4b9dd46582db1178d169c6bc465b0d6ff9ca3928fef5b9ae4e418fc15e83ebea0f87fa9ff5eed70050ded2849f47bf959d956850ce929851f0d8115f635b105ee2e4e15d04b2454bf6f4fadf034b10403119cd8e3b92fcc5b";
/// The generator that goes with [`P_HEX`].
pub const G: i32 = 3;

/// The prime as big-endian bytes.
pub fn p_bytes() -> Vec<u8> {
    // P_HEX is a constant valid hex string.
    hex::decode(P_HEX).expect("P_HEX is valid hex")
}

fn h(parts: &[&[u8]]) -> [u8; 32] {
    let mut d = Sha256::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().into()
}

fn pad256(x: &BigUint) -> [u8; 256] {
    let b = x.to_bytes_be();
    let mut out = [0u8; 256];
    let n = b.len().min(256);
    out[256 - n..].copy_from_slice(&b[b.len() - n..]);
    out
}

fn sh(data: &[u8], salt: &[u8]) -> [u8; 32] {
    h(&[salt, data, salt])
}

fn ph2(password: &[u8], salt1: &[u8], salt2: &[u8]) -> [u8; 32] {
    let hash1 = sh(&sh(password, salt1), salt2);
    let mut dk = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(&hash1, salt1, 100_000, &mut dk);
    sh(&dk, salt2)
}

/// What the server stores for an account with a cloud password.
#[derive(Clone)]
pub struct PasswordSetup {
    /// `salt1` of the KDF algorithm (as Telegram: 40 bytes).
    pub salt1: Vec<u8>,
    /// `salt2` of the KDF algorithm (16 bytes).
    pub salt2: Vec<u8>,
    /// The verifier `g^x mod p`.
    v: BigUint,
}

impl std::fmt::Debug for PasswordSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordSetup([redacted])")
    }
}

/// One `account.getPassword` answer waiting for `auth.checkPassword`.
#[derive(Clone)]
pub struct Challenge {
    b: BigUint,
    /// `g^b + k v mod p`, sent as `srp_B`.
    pub g_b: [u8; 256],
}

impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Challenge([redacted])")
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::Rng::fill(&mut rand::thread_rng(), &mut v[..]);
    v
}

impl PasswordSetup {
    /// Derives the verifier for `password` with fresh salts (takes ~100 ms: PBKDF2 100 000).
    pub fn new(password: &str) -> Self {
        let salt1 = random_bytes(40);
        let salt2 = random_bytes(16);
        let x = BigUint::from_bytes_be(&ph2(password.as_bytes(), &salt1, &salt2));
        let p = BigUint::from_bytes_be(&p_bytes());
        let v = BigUint::from(G as u32).modpow(&x, &p);
        Self { salt1, salt2, v }
    }

    /// The stored form: (salt1, salt2, verifier), for snapshots. The verifier is not the
    /// password and cannot be turned back into it.
    pub fn to_parts(&self) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        (self.salt1.clone(), self.salt2.clone(), self.v.to_bytes_be())
    }

    /// Rebuilds a setup from [`PasswordSetup::to_parts`].
    pub fn from_parts(salt1: Vec<u8>, salt2: Vec<u8>, v: &[u8]) -> Self {
        Self {
            salt1,
            salt2,
            v: BigUint::from_bytes_be(v),
        }
    }

    /// Starts one verification: picks a secret `b` and computes `srp_B`.
    pub fn challenge(&self) -> Challenge {
        let p_raw = p_bytes();
        let p = BigUint::from_bytes_be(&p_raw);
        let g = BigUint::from(G as u32);
        let b = BigUint::from_bytes_be(&random_bytes(256)) % &p;
        let k = BigUint::from_bytes_be(&h(&[&p_raw, &pad256(&g)]));
        let g_b = (k * &self.v + g.modpow(&b, &p)) % &p;
        Challenge {
            b,
            g_b: pad256(&g_b),
        }
    }

    /// Checks the client's `A` and `M1` against a challenge.
    pub fn verify(&self, ch: &Challenge, a: &[u8], m1: &[u8]) -> bool {
        let p_raw = p_bytes();
        let p = BigUint::from_bytes_be(&p_raw);
        let g = BigUint::from(G as u32);
        let big_a = BigUint::from_bytes_be(a);
        if big_a <= BigUint::from(1u8) || big_a >= &p - 1u8 {
            return false;
        }
        let g_a = pad256(&big_a);
        let u = BigUint::from_bytes_be(&h(&[&g_a, &ch.g_b]));
        let s = (big_a * self.v.modpow(&u, &p)).modpow(&ch.b, &p);
        let k_s = h(&[&pad256(&s)]);
        let h_p = h(&[&p_raw]);
        let h_g = h(&[&pad256(&g)]);
        let xor: Vec<u8> = h_p.iter().zip(h_g.iter()).map(|(a, b)| a ^ b).collect();
        let expect = h(&[
            &xor,
            &h(&[&self.salt1]),
            &h(&[&self.salt2]),
            &g_a,
            &ch.g_b,
            &k_s,
        ]);
        expect[..] == *m1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prime_passes_the_clients_own_check() {
        assert!(grammers_crypto::two_factor_auth::check_p_and_g(
            &p_bytes(),
            &G
        ));
    }

    #[test]
    fn client_proof_verifies_and_wrong_password_does_not() {
        let setup = PasswordSetup::new("hunter2");
        let ch = setup.challenge();
        let a = random_bytes(256);
        let (m1, g_a) = grammers_crypto::two_factor_auth::calculate_2fa(
            &setup.salt1,
            &setup.salt2,
            &p_bytes(),
            &G,
            ch.g_b.to_vec(),
            a.clone(),
            "hunter2",
        );
        assert!(setup.verify(&ch, &g_a, &m1));
        let (m1, g_a) = grammers_crypto::two_factor_auth::calculate_2fa(
            &setup.salt1,
            &setup.salt2,
            &p_bytes(),
            &G,
            ch.g_b.to_vec(),
            a,
            "wrong",
        );
        assert!(!setup.verify(&ch, &g_a, &m1));
    }
}
