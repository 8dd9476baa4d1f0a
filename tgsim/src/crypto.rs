//! Server side of MTProto 2.0 message encryption.
//!
//! grammers-crypto only ships the client half (encrypt with x = 0, decrypt with x = 8); a data
//! centre does the mirror image: it decrypts with x = 0 and encrypts with x = 8. This module must
//! never log or expose key material.

use grammers_crypto::aes;
use sha1::Digest as _;
use sha2::Sha256;

/// A 256-byte authorisation key with its derived 64-bit id.
#[derive(Clone)]
pub struct AuthKey {
    /// The raw key.
    pub data: [u8; 256],
    /// `SHA1(key)[12..20]`, as little-endian bytes sent in front of every encrypted packet.
    pub id: [u8; 8],
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthKey(id={:016x})", self.id_u64())
    }
}

impl AuthKey {
    /// Derives the key id from the key.
    pub fn new(data: [u8; 256]) -> Self {
        let sha = sha1::Sha1::digest(data);
        let mut id = [0u8; 8];
        id.copy_from_slice(&sha[12..20]);
        Self { data, id }
    }

    /// The key id as an integer (little endian, as on the wire).
    pub fn id_u64(&self) -> u64 {
        u64::from_le_bytes(self.id)
    }
}

/// Why a client packet could not be decrypted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecryptError {
    /// Shorter than the header or not a multiple of 16 bytes.
    #[error("invalid ciphertext length {0}")]
    BadLength(usize),
    /// The msg_key does not match the decrypted payload: wrong key or tampered data.
    #[error("msg_key mismatch")]
    MsgKeyMismatch,
}

fn calc_key(key: &AuthKey, msg_key: &[u8; 16], x: usize) -> ([u8; 32], [u8; 32]) {
    let sha256_a: [u8; 32] = Sha256::new()
        .chain_update(msg_key)
        .chain_update(&key.data[x..x + 36])
        .finalize()
        .into();
    let sha256_b: [u8; 32] = Sha256::new()
        .chain_update(&key.data[40 + x..76 + x])
        .chain_update(msg_key)
        .finalize()
        .into();
    let mut aes_key = [0u8; 32];
    aes_key[..8].copy_from_slice(&sha256_a[..8]);
    aes_key[8..24].copy_from_slice(&sha256_b[8..24]);
    aes_key[24..].copy_from_slice(&sha256_a[24..]);
    let mut aes_iv = [0u8; 32];
    aes_iv[..8].copy_from_slice(&sha256_b[..8]);
    aes_iv[8..24].copy_from_slice(&sha256_a[8..24]);
    aes_iv[24..].copy_from_slice(&sha256_b[24..]);
    (aes_key, aes_iv)
}

fn msg_key_for(key: &AuthKey, plaintext: &[u8], x: usize) -> [u8; 16] {
    let large: [u8; 32] = Sha256::new()
        .chain_update(&key.data[88 + x..120 + x])
        .chain_update(plaintext)
        .finalize()
        .into();
    let mut msg_key = [0u8; 16];
    msg_key.copy_from_slice(&large[8..24]);
    msg_key
}

/// Decrypts a client packet (`auth_key_id | msg_key | ciphertext`) whose key id was already
/// matched to `key`. Returns the plaintext (salt, session id, message, padding).
pub fn decrypt_from_client(key: &AuthKey, packet: &[u8]) -> Result<Vec<u8>, DecryptError> {
    decrypt(key, packet, 0)
}

/// Encrypts a server plaintext (salt, session id, message) into a packet for the client,
/// adding random padding so the length is a multiple of 16.
pub fn encrypt_to_client(key: &AuthKey, plaintext: &[u8]) -> Vec<u8> {
    encrypt(key, plaintext, 8)
}

/// Encrypts like a client would (x = 0); used by tests and the benchmark's raw client.
pub fn encrypt_as_client(key: &AuthKey, plaintext: &[u8]) -> Vec<u8> {
    encrypt(key, plaintext, 0)
}

/// Decrypts like a client would (x = 8); used by tests and the benchmark's raw client.
pub fn decrypt_as_client(key: &AuthKey, packet: &[u8]) -> Result<Vec<u8>, DecryptError> {
    decrypt(key, packet, 8)
}

/// MTProto 2.0 encryption with `x` = 0 (client to server) or 8 (server to client); pads with
/// 17..32 random bytes (within the protocol's 12..1024) to a multiple of 16.
fn encrypt(key: &AuthKey, plaintext: &[u8], x: usize) -> Vec<u8> {
    let mut buf = plaintext.to_vec();
    let pad = 16 + (16 - (buf.len() % 16));
    let mut padding = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut padding[..]);
    buf.extend_from_slice(&padding[..pad]);
    let msg_key = msg_key_for(key, &buf, x);
    let (aes_key, aes_iv) = calc_key(key, &msg_key, x);
    aes::ige_encrypt(&mut buf, &aes_key, &aes_iv);
    let mut out = Vec::with_capacity(24 + buf.len());
    out.extend_from_slice(&key.id);
    out.extend_from_slice(&msg_key);
    out.extend_from_slice(&buf);
    out
}

/// The inverse of [`encrypt`] for the same `x`, checking the msg_key.
fn decrypt(key: &AuthKey, packet: &[u8], x: usize) -> Result<Vec<u8>, DecryptError> {
    if packet.len() < 24 + 16 || !(packet.len() - 24).is_multiple_of(16) {
        return Err(DecryptError::BadLength(packet.len()));
    }
    let mut msg_key = [0u8; 16];
    msg_key.copy_from_slice(&packet[8..24]);
    let (aes_key, aes_iv) = calc_key(key, &msg_key, x);
    let mut plain = packet[24..].to_vec();
    aes::ige_decrypt(&mut plain, &aes_key, &aes_iv);
    if msg_key_for(key, &plain, x) != msg_key {
        return Err(DecryptError::MsgKeyMismatch);
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuthKey {
        let mut data = [0u8; 256];
        data.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        AuthKey::new(data)
    }

    #[test]
    fn server_packet_decrypts_with_grammers_client_code() {
        let key = key();
        let plain = vec![7u8; 40];
        let mut packet = encrypt_to_client(&key, &plain);
        let gk = grammers_crypto::AuthKey::from_bytes(key.data);
        let out = grammers_crypto::decrypt_data_v2(&mut packet, &gk).expect("decrypts");
        assert_eq!(&out[..40], &plain[..]);
    }

    #[test]
    fn grammers_client_packet_decrypts_on_server() {
        let key = key();
        let mut buf = grammers_crypto::DequeBuffer::with_capacity(64, 32);
        buf.extend(vec![9u8; 48]);
        let gk = grammers_crypto::AuthKey::from_bytes(key.data);
        grammers_crypto::encrypt_data_v2(&mut buf, &gk);
        let packet = buf.as_ref().to_vec();
        assert_eq!(&packet[..8], &key.id);
        let out = decrypt_from_client(&key, &packet).expect("decrypts");
        assert_eq!(&out[..48], &[9u8; 48][..]);
    }

    #[test]
    fn tampered_packet_is_rejected() {
        let key = key();
        let mut packet = encrypt_as_client(&key, &[1u8; 32]);
        let last = packet.len() - 1;
        packet[last] ^= 1;
        assert_eq!(
            decrypt_from_client(&key, &packet),
            Err(DecryptError::MsgKeyMismatch)
        );
        assert!(matches!(
            decrypt_from_client(&key, &packet[..30]),
            Err(DecryptError::BadLength(30))
        ));
    }
}
