//! A minimal MTProto 2.0 client used by the benchmark and by tests that need a transport or a
//! message layout grammers does not produce (Intermediate, Abridged, hand-made containers).
//!
//! It is deliberately small: it tracks salt, session, msg_ids and seq_no, follows
//! bad_server_salt and time corrections, and returns RPC results for its own requests. It is
//! not a general client and must never be used by giftd.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grammers_tl_types::{Deserializable, Serializable};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::crypto::{self, AuthKey};
use crate::transport::{Framing, Kind};

/// What came back for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `rpc_result` body (not an error).
    Result(Vec<u8>),
    /// `rpc_error`.
    Error(i32, String),
    /// A bare answer to a service call (pong, future_salts).
    Bare(Vec<u8>),
}

/// Errors of the raw client.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    /// Socket or framing failure (including the server closing).
    #[error("transport: {0}")]
    Transport(String),
    /// A transport error code such as -404.
    #[error("transport error {0}")]
    Status(i32),
    /// The server's packet did not decrypt or parse.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// A connected raw client.
#[derive(Debug)]
pub struct RawClient {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    key: AuthKey,
    read_framing: Framing,
    write_framing: Framing,
    session_id: i64,
    salt: i64,
    last_msg_id: i64,
    seq: i32,
    time_offset: i64,
    /// Update bodies received (pushed by the server) while waiting for answers.
    pub updates: Vec<Vec<u8>>,
    /// bad_msg_notification codes received.
    pub bad_msgs: Vec<i32>,
}

const RPC_RESULT: u32 = 0xf35c6d01;
const MSG_CONTAINER: u32 = 0x73f1f8dc;
const GZIP_PACKED: u32 = 0x3072cfa1;
const BAD_SERVER_SALT: u32 = 0xedab447b;
const BAD_MSG: u32 = 0xa7eff811;
const NEW_SESSION: u32 = 0x9ec20908;
const PONG: u32 = 0x347773c5;
const FUTURE_SALTS: u32 = 0xae500895;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn i64_at(b: &[u8], at: usize) -> Option<i64> {
    b.get(at..at + 8).map(|s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        i64::from_le_bytes(a)
    })
}

impl RawClient {
    /// Connects with `kind` framing and the given auth key.
    pub async fn connect(
        addr: std::net::SocketAddr,
        key: [u8; 256],
        kind: Kind,
    ) -> Result<Self, RawError> {
        Self::connect_with(addr, key, kind, false).await
    }

    /// Connects with the obfuscated transport wrapping `kind` (not Full).
    pub async fn connect_obfuscated(
        addr: std::net::SocketAddr,
        key: [u8; 256],
        kind: Kind,
    ) -> Result<Self, RawError> {
        Self::connect_with(addr, key, kind, true).await
    }

    async fn connect_with(
        addr: std::net::SocketAddr,
        key: [u8; 256],
        kind: Kind,
        obfuscated: bool,
    ) -> Result<Self, RawError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| RawError::Transport(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (rd, mut wr) = stream.into_split();
        let (read_framing, write_framing) = if obfuscated {
            let (init, reader) = Framing::client_obfuscated(kind);
            wr.write_all(&init)
                .await
                .map_err(|e| RawError::Transport(e.to_string()))?;
            let writer = reader.for_writing();
            (reader, writer)
        } else {
            let tag = Framing::client_tag(kind);
            if !tag.is_empty() {
                wr.write_all(tag)
                    .await
                    .map_err(|e| RawError::Transport(e.to_string()))?;
            }
            (Framing::client(kind), Framing::client(kind))
        };
        Ok(Self {
            rd,
            wr,
            key: AuthKey::new(key),
            read_framing,
            write_framing,
            session_id: rand::Rng::r#gen(&mut rand::thread_rng()),
            salt: 0,
            last_msg_id: 0,
            seq: 0,
            time_offset: 0,
            updates: Vec::new(),
            bad_msgs: Vec::new(),
        })
    }

    fn new_msg_id(&mut self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs() as i64 + self.time_offset;
        let mut id = (secs << 32) | ((now.subsec_nanos() as i64) << 2);
        id &= !3;
        if id <= self.last_msg_id {
            id = self.last_msg_id + 4;
        }
        self.last_msg_id = id;
        id
    }

    /// Sends one message with `body`; returns its msg_id.
    pub async fn send(&mut self, body: &[u8]) -> Result<i64, RawError> {
        let msg_id = self.new_msg_id();
        self.seq += 1;
        let seq = self.seq * 2 - 1;
        self.send_raw(msg_id, seq, body).await?;
        Ok(msg_id)
    }

    /// Sends a message with an explicit msg_id and seq_no (for tests of the server's checks).
    pub async fn send_raw(&mut self, msg_id: i64, seq: i32, body: &[u8]) -> Result<(), RawError> {
        let mut plain = Vec::with_capacity(body.len() + 32);
        self.salt.serialize(&mut plain);
        self.session_id.serialize(&mut plain);
        msg_id.serialize(&mut plain);
        seq.serialize(&mut plain);
        (body.len() as i32).serialize(&mut plain);
        plain.extend_from_slice(body);
        let packet = crypto::encrypt_as_client(&self.key, &plain);
        let frame = self.write_framing.frame(&packet);
        self.wr
            .write_all(&frame)
            .await
            .map_err(|e| RawError::Transport(e.to_string()))
    }

    /// Reads one packet and returns its (msg_id, body) messages, containers and gzip unwrapped.
    pub async fn recv(&mut self) -> Result<Vec<(i64, Vec<u8>)>, RawError> {
        let frame = self
            .read_framing
            .read_frame(&mut self.rd)
            .await
            .map_err(|e| RawError::Transport(e.to_string()))?;
        if frame.len() == 4 {
            let code = i32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
            return Err(RawError::Status(code));
        }
        let plain = crypto::decrypt_as_client(&self.key, &frame)
            .map_err(|e| RawError::Protocol(e.to_string()))?;
        let session = i64_at(&plain, 8).ok_or_else(|| RawError::Protocol("short".into()))?;
        if session != self.session_id {
            return Err(RawError::Protocol("wrong session id".into()));
        }
        let msg_id = i64_at(&plain, 16).ok_or_else(|| RawError::Protocol("short".into()))?;
        let len = u32_at(&plain, 28).ok_or_else(|| RawError::Protocol("short".into()))? as usize;
        let body = plain
            .get(32..32 + len)
            .ok_or_else(|| RawError::Protocol("bad length".into()))?;
        let mut out = Vec::new();
        unwrap_into(msg_id, body, &mut out)?;
        Ok(out)
    }

    /// Sends `body` as an RPC and waits for its answer, following salt and time corrections.
    pub async fn call(&mut self, body: &[u8]) -> Result<Answer, RawError> {
        let mut msg_id = self.send(body).await?;
        loop {
            let msgs = tokio::time::timeout(Duration::from_secs(20), self.recv())
                .await
                .map_err(|_| RawError::Transport("timeout".into()))??;
            for (server_msg_id, m) in msgs {
                match u32_at(&m, 0).unwrap_or(0) {
                    RPC_RESULT => {
                        let req = i64_at(&m, 4).unwrap_or(0);
                        if req != msg_id {
                            continue;
                        }
                        let inner = m[12..].to_vec();
                        if u32_at(&inner, 0) == Some(0x2144ca19) {
                            let e = grammers_tl_types::enums::RpcError::from_bytes(&inner)
                                .map_err(|e| RawError::Protocol(e.to_string()))?;
                            let grammers_tl_types::enums::RpcError::Error(e) = e;
                            return Ok(Answer::Error(e.error_code, e.error_message));
                        }
                        return Ok(Answer::Result(inner));
                    }
                    BAD_SERVER_SALT => {
                        self.salt = i64_at(&m, 20).unwrap_or(0);
                        msg_id = self.send(body).await?;
                    }
                    BAD_MSG => {
                        let code = u32_at(&m, 16).unwrap_or(0) as i32;
                        self.bad_msgs.push(code);
                        if code == 16 || code == 17 {
                            let now = SystemTime::now()
                                .duration_since(UNIX_EPOCH)
                                .unwrap_or_default()
                                .as_secs() as i64;
                            self.time_offset = (server_msg_id >> 32) - now;
                            self.last_msg_id = 0;
                            msg_id = self.send(body).await?;
                        } else {
                            return Err(RawError::Protocol(format!("bad_msg {code}")));
                        }
                    }
                    NEW_SESSION => {
                        self.salt = i64_at(&m, 20).unwrap_or(self.salt);
                    }
                    PONG | FUTURE_SALTS => {
                        if i64_at(&m, 4) == Some(msg_id) {
                            return Ok(Answer::Bare(m));
                        }
                    }
                    _ => self.updates.push(m),
                }
            }
        }
    }

    /// Waits for the next pushed update body.
    pub async fn next_update(&mut self, timeout: Duration) -> Result<Vec<u8>, RawError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if !self.updates.is_empty() {
                return Ok(self.updates.remove(0));
            }
            let msgs = tokio::time::timeout_at(deadline, self.recv())
                .await
                .map_err(|_| RawError::Transport("timeout".into()))??;
            for (_, m) in msgs {
                match u32_at(&m, 0).unwrap_or(0) {
                    RPC_RESULT | BAD_SERVER_SALT | BAD_MSG | NEW_SESSION | PONG | FUTURE_SALTS => {}
                    _ => self.updates.push(m),
                }
            }
        }
    }
}

fn unwrap_into(msg_id: i64, body: &[u8], out: &mut Vec<(i64, Vec<u8>)>) -> Result<(), RawError> {
    match u32_at(body, 0) {
        Some(MSG_CONTAINER) => {
            let n = u32_at(body, 4).unwrap_or(0) as usize;
            let mut pos = 8;
            for _ in 0..n {
                let id = i64_at(body, pos).ok_or_else(|| RawError::Protocol("container".into()))?;
                let len = u32_at(body, pos + 12)
                    .ok_or_else(|| RawError::Protocol("container".into()))?
                    as usize;
                let inner = body
                    .get(pos + 16..pos + 16 + len)
                    .ok_or_else(|| RawError::Protocol("container".into()))?;
                unwrap_into(id, inner, out)?;
                pos += 16 + len;
            }
            Ok(())
        }
        Some(GZIP_PACKED) => {
            use std::io::Read as _;
            let data =
                Vec::<u8>::from_bytes(&body[4..]).map_err(|e| RawError::Protocol(e.to_string()))?;
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&data[..])
                .read_to_end(&mut plain)
                .map_err(|e| RawError::Protocol(e.to_string()))?;
            unwrap_into(msg_id, &plain, out)
        }
        Some(RPC_RESULT) if u32_at(body, 12) == Some(GZIP_PACKED) => {
            use std::io::Read as _;
            let data = Vec::<u8>::from_bytes(&body[16..])
                .map_err(|e| RawError::Protocol(e.to_string()))?;
            let mut plain = body[..12].to_vec();
            flate2::read::GzDecoder::new(&data[..])
                .read_to_end(&mut plain)
                .map_err(|e| RawError::Protocol(e.to_string()))?;
            out.push((msg_id, plain));
            Ok(())
        }
        _ => {
            out.push((msg_id, body.to_vec()));
            Ok(())
        }
    }
}
