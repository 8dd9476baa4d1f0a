//! The MTProto 2.0 server: accepts TCP connections, detects the transport, decrypts with the
//! pre-provisioned auth keys, enforces salts and msg_id rules like a real DC, unwraps containers
//! and gzip, answers service messages itself and hands RPC calls to [`crate::rpc`].
//!
//! One task owns each connection (plus a reader task that only frames bytes). Malformed or hostile
//! input closes that one connection; nothing here may take the simulator down.

use std::io::Read as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use grammers_tl_types::{self as tl, Serializable};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::crypto::{self, AuthKey};
use crate::rpc;
use crate::transport::Framing;
use crate::world::{RpcErr, World};

const MSG_CONTAINER: u32 = 0x73f1f8dc;
const GZIP_PACKED: u32 = 0x3072cfa1;
const MSGS_ACK: u32 = 0x62d6b459;
const PING: u32 = 0x7abe77ec;
const PING_DELAY_DISCONNECT: u32 = 0xf3427b8c;
const GET_FUTURE_SALTS: u32 = 0xb921bd04;
const DESTROY_SESSION: u32 = 0xe7512126;
const RPC_DROP_ANSWER: u32 = 0x58e4a740;
const MSGS_STATE_REQ: u32 = 0xda69fb52;
const MSG_RESEND_REQ: u32 = 0x7d861a08;
const RPC_RESULT: u32 = 0xf35c6d01;

/// Results bigger than this are sent gzip_packed, as Telegram does.
const GZIP_THRESHOLD: usize = 16 * 1024;
/// Largest decompressed gzip_packed body accepted from a client.
const MAX_GUNZIP: u64 = 16 * 1024 * 1024;
/// RPCs one connection may have unanswered at once; a client past this is flooding and is
/// disconnected (Telegram answers such clients with transport error -429).
const MAX_IN_FLIGHT: usize = 4096;

/// State shared by the listener, every connection and the [`crate::Sim`] handle.
pub(crate) struct Shared {
    pub world: Mutex<World>,
    pub strict: bool,
    pub drop_tx: watch::Sender<u64>,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
    pub next_conn: AtomicU64,
}

impl Shared {
    /// Locks the world. A panic while holding the lock would be a simulator bug; the state is
    /// still usable for a test to report on, so poisoning is ignored.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Accepts connections until cancelled.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
                let sh = shared.clone();
                shared.tracker.spawn(async move {
                    {
                        let mut w = sh.world();
                        w.stats.connections_open += 1;
                        w.stats.connections_total += 1;
                    }
                    let res = Conn::run(stream, sh.clone(), conn).await;
                    let mut w = sh.world();
                    w.unsubscribe(conn);
                    w.stats.connections_open -= 1;
                    if let Err(e) = res {
                        if e.malformed {
                            w.stats.malformed += 1;
                        }
                        tracing::debug!(conn, %peer, error = %e.msg, "connection closed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

struct Close {
    malformed: bool,
    msg: String,
}

fn malformed(msg: impl Into<String>) -> Close {
    Close {
        malformed: true,
        msg: msg.into(),
    }
}

fn closed(msg: impl Into<String>) -> Close {
    Close {
        malformed: false,
        msg: msg.into(),
    }
}

/// Something to send to the client, before encryption.
enum Out {
    /// A bare message body (pong, future_salts, new_session_created, bad_msg...).
    Bare { body: Vec<u8>, content: bool },
    /// An RPC answer to `req_msg_id`.
    Result {
        req_msg_id: i64,
        result: Result<Vec<u8>, RpcErr>,
    },
    /// Close the connection without sending anything ([`crate::Fault::DropAnswer`]: the request
    /// took effect, its answer is lost with the connection).
    Drop,
}

/// The MTProto state of one connection, owned by its task.
struct Conn {
    shared: Arc<Shared>,
    /// Connection id, for subscriptions and logs.
    id: u64,
    /// The auth key, fixed by the first packet (a different key later closes the connection).
    key: Option<AuthKey>,
    /// The client's session id, echoed in every answer (grammers panics otherwise).
    session_id: Option<i64>,
    /// Last server msg_id, so ids strictly increase.
    last_msg_id: i64,
    /// Content-related messages sent in this session (server seq_no).
    seq: i32,
    /// Answers from RPC tasks and service replies, to encrypt and write.
    out_tx: mpsc::UnboundedSender<Out>,
    /// Handed to the world when subscribing; pushed updates arrive here.
    push_tx: mpsc::UnboundedSender<Vec<u8>>,
    /// A new session id was seen; new_session_created goes out with the first accepted message.
    new_session_pending: bool,
    /// RPCs being answered, to disconnect a client that floods.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Set by ping_delay_disconnect: close the connection at this instant.
    disconnect_at: Option<tokio::time::Instant>,
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le_i64(b: &[u8], at: usize) -> Option<i64> {
    b.get(at..at + 8).map(|s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        i64::from_le_bytes(a)
    })
}

impl Conn {
    async fn run(stream: TcpStream, shared: Arc<Shared>, id: u64) -> Result<(), Close> {
        let (mut rd, mut wr) = stream.into_split();
        let detect = tokio::time::timeout(Duration::from_secs(30), Framing::detect(&mut rd));
        let mut read_framing = match detect.await {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => return Err(closed(format!("detect: {e}"))),
            Err(_) => return Err(closed("no data")),
        };
        let mut write_framing = read_framing.for_writing();
        let (frame_tx, mut frame_rx) = mpsc::channel::<Result<Vec<u8>, Close>>(16);
        let cancel = shared.cancel.child_token();
        let reader_cancel = cancel.clone();
        let reader = tokio::spawn(async move {
            loop {
                let r = tokio::select! {
                    _ = reader_cancel.cancelled() => return,
                    r = read_framing.read_frame(&mut rd) => r,
                };
                let item = r.map_err(|e| match e {
                    crate::transport::FrameError::Io(e) => closed(format!("io: {e}")),
                    crate::transport::FrameError::Malformed(m) => malformed(m),
                });
                let stop = item.is_err();
                if frame_tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        let _guard = cancel.clone().drop_guard();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel();
        let (push_tx, mut push_rx) = mpsc::unbounded_channel();
        let mut drop_rx = shared.drop_tx.subscribe();
        let mut conn = Conn {
            shared: shared.clone(),
            id,
            key: None,
            session_id: None,
            last_msg_id: 0,
            seq: 0,
            out_tx,
            push_tx,
            new_session_pending: false,
            in_flight: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            disconnect_at: None,
        };
        let result = loop {
            let deadline = conn.disconnect_at;
            tokio::select! {
                _ = cancel.cancelled() => break Err(closed("shutdown")),
                _ = drop_rx.changed() => break Err(closed("dropped by fault")),
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => break Err(closed("ping_delay_disconnect expired")),
                frame = frame_rx.recv() => {
                    let frame = match frame {
                        Some(Ok(f)) => f,
                        Some(Err(e)) => break Err(e),
                        None => break Err(closed("reader ended")),
                    };
                    match conn.on_frame(&frame) {
                        Ok(()) => {}
                        Err(FrameOutcome::TransportError(code)) => {
                            let bytes = write_framing.error_frame(code);
                            let _ = write_with_timeout(&mut wr, &bytes).await;
                            let _ = wr.flush().await;
                            break Err(closed(format!("transport error -{code}")));
                        }
                        Err(FrameOutcome::Close(c)) => break Err(c),
                    }
                }
                Some(out) = out_rx.recv() => {
                    if matches!(out, Out::Drop) {
                        break Err(closed("answer dropped by fault"));
                    }
                    let bytes = conn.encrypt_out(out, false);
                    if let Some(bytes) = bytes {
                        let framed = write_framing.frame(&bytes);
                        if let Err(e) = write_with_timeout(&mut wr, &framed).await {
                            break Err(closed(format!("write: {e}")));
                        }
                    }
                }
                Some(push) = push_rx.recv() => {
                    if let Some(bytes) = conn.encrypt_out(Out::Bare { body: push, content: true }, true) {
                        let framed = write_framing.frame(&bytes);
                        if let Err(e) = write_with_timeout(&mut wr, &framed).await {
                            break Err(closed(format!("write: {e}")));
                        }
                    }
                }
            }
        };
        cancel.cancel();
        let _ = reader.await;
        let _ = wr.shutdown().await;
        result
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.shared.world()
    }

    fn now_server(&self) -> i64 {
        self.world().now()
    }

    fn next_msg_id(&mut self, server_initiated: bool) -> i64 {
        let now = self.now_server();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0) as i64;
        let bits = if server_initiated { 3 } else { 1 };
        let mut id = ((now << 32) | (nanos << 2)) & !3 | bits;
        if id <= self.last_msg_id {
            id = ((self.last_msg_id + 4) & !3) | bits;
        }
        self.last_msg_id = id;
        id
    }

    fn encrypt_out(&mut self, out: Out, server_initiated: bool) -> Option<Vec<u8>> {
        let key = self.key.clone()?;
        let session_id = self.session_id?;
        let (body, content) = match out {
            Out::Bare { body, content } => (body, content),
            Out::Drop => return None,
            Out::Result { req_msg_id, result } => {
                let mut b = Vec::with_capacity(16);
                RPC_RESULT.serialize(&mut b);
                req_msg_id.serialize(&mut b);
                match result {
                    Ok(r) if r.len() > GZIP_THRESHOLD => {
                        b.extend(gzip_packed(&r));
                    }
                    Ok(r) => b.extend(r),
                    Err(e) => {
                        b.extend(
                            tl::enums::RpcError::Error(tl::types::RpcError {
                                error_code: e.code,
                                error_message: e.message,
                            })
                            .to_bytes(),
                        );
                    }
                }
                (b, true)
            }
        };
        let msg_id = self.next_msg_id(server_initiated);
        let seq = if content {
            self.seq += 1;
            self.seq * 2 - 1
        } else {
            self.seq * 2
        };
        let salt = {
            let w = self.world();
            w.salt_for(key.id_u64(), w.now())
        };
        let mut plain = Vec::with_capacity(body.len() + 32);
        salt.serialize(&mut plain);
        session_id.serialize(&mut plain);
        msg_id.serialize(&mut plain);
        seq.serialize(&mut plain);
        (body.len() as i32).serialize(&mut plain);
        plain.extend(body);
        Some(crypto::encrypt_to_client(&key, &plain))
    }

    fn on_frame(&mut self, frame: &[u8]) -> Result<(), FrameOutcome> {
        let Some(key_id) = le_i64(frame, 0).map(|k| k as u64) else {
            return Err(FrameOutcome::Close(malformed("short frame")));
        };
        if key_id == 0 {
            // An unencrypted message: a DH handshake. Keys are provisioned, never negotiated.
            let mut w = self.world();
            w.stats.unknown_auth_key += 1;
            return Err(FrameOutcome::TransportError(404));
        }
        let key = match &self.key {
            Some(k) if k.id_u64() == key_id => k.clone(),
            Some(_) => return Err(FrameOutcome::TransportError(404)),
            None => {
                let mut w = self.world();
                match w.key(key_id) {
                    Some(entry) => {
                        let k = entry.key.clone();
                        drop(w);
                        self.key = Some(k.clone());
                        k
                    }
                    None => {
                        w.stats.unknown_auth_key += 1;
                        return Err(FrameOutcome::TransportError(404));
                    }
                }
            }
        };
        let plain = crypto::decrypt_from_client(&key, frame)
            .map_err(|e| FrameOutcome::Close(malformed(format!("decrypt: {e}"))))?;
        let (Some(salt), Some(session_id), Some(msg_id), Some(seq_no), Some(len)) = (
            le_i64(&plain, 0),
            le_i64(&plain, 8),
            le_i64(&plain, 16),
            le_u32(&plain, 24),
            le_u32(&plain, 28),
        ) else {
            return Err(FrameOutcome::Close(malformed("short plaintext")));
        };
        let len = len as usize;
        if !len.is_multiple_of(4) || 32 + len > plain.len() {
            return Err(FrameOutcome::Close(malformed("bad message length")));
        }
        let body = &plain[32..32 + len];
        let seq_no = seq_no as i32;

        if self.session_id != Some(session_id) {
            self.session_id = Some(session_id);
            self.seq = 0;
            self.new_session_pending = true;
        }
        if let Some(code) = self.check_msg_id(msg_id) {
            self.bad_msg(msg_id, seq_no, code);
            return Ok(());
        }
        let salt_ok = !self.shared.strict || self.world().salt_ok(key.id_u64(), salt);
        if !salt_ok {
            let new_salt = {
                let mut w = self.world();
                w.stats.bad_server_salt += 1;
                w.salt_for(key.id_u64(), w.now())
            };
            let body = tl::enums::BadMsgNotification::BadServerSalt(tl::types::BadServerSalt {
                bad_msg_id: msg_id,
                bad_msg_seqno: seq_no,
                error_code: 48,
                new_server_salt: new_salt,
            })
            .to_bytes();
            tracing::debug!(conn = self.id, msg_id, "bad_server_salt");
            let _ = self.out_tx.send(Out::Bare {
                body,
                content: false,
            });
            return Ok(());
        }
        if self.new_session_pending {
            self.new_session_pending = false;
            let server_salt = {
                let w = self.world();
                w.salt_for(key.id_u64(), w.now())
            };
            let body = tl::enums::NewSession::Created(tl::types::NewSessionCreated {
                first_msg_id: msg_id,
                unique_id: rand::Rng::r#gen(&mut rand::thread_rng()),
                server_salt,
            })
            .to_bytes();
            let _ = self.out_tx.send(Out::Bare {
                body,
                content: true,
            });
        }
        if self.shared.strict
            && let Some(code) = seq_parity_error(body, seq_no)
        {
            self.bad_msg(msg_id, seq_no, code);
            return Ok(());
        }
        self.handle_message(msg_id, body, 0)
            .map_err(FrameOutcome::Close)
    }

    fn check_msg_id(&self, msg_id: i64) -> Option<i32> {
        if msg_id % 4 != 0 {
            return Some(18);
        }
        if !self.shared.strict {
            return None;
        }
        let t = msg_id >> 32;
        let now = self.now_server();
        if t < now - 300 {
            Some(16)
        } else if t > now + 30 {
            Some(17)
        } else {
            None
        }
    }

    fn bad_msg(&self, msg_id: i64, seq_no: i32, code: i32) {
        tracing::debug!(conn = self.id, msg_id, seq_no, code, "bad_msg_notification");
        {
            let mut w = self.world();
            match code {
                16 => w.stats.bad_msg_16 += 1,
                17 => w.stats.bad_msg_17 += 1,
                18 => w.stats.bad_msg_18 += 1,
                _ => w.stats.bad_msg_other += 1,
            }
        }
        let body = tl::enums::BadMsgNotification::Notification(tl::types::BadMsgNotification {
            bad_msg_id: msg_id,
            bad_msg_seqno: seq_no,
            error_code: code,
        })
        .to_bytes();
        let _ = self.out_tx.send(Out::Bare {
            body,
            content: false,
        });
    }

    fn handle_message(&mut self, msg_id: i64, body: &[u8], depth: u8) -> Result<(), Close> {
        let Some(ctor) = le_u32(body, 0) else {
            return Err(malformed("empty message body"));
        };
        let key_id = self.key.as_ref().map(|k| k.id_u64()).unwrap_or(0);
        match ctor {
            MSG_CONTAINER if depth == 0 => {
                let count = le_u32(body, 4).ok_or_else(|| malformed("container count"))? as usize;
                let mut pos = 8;
                for _ in 0..count.min(1024) {
                    let inner_id = le_i64(body, pos).ok_or_else(|| malformed("container"))?;
                    let len =
                        le_u32(body, pos + 12).ok_or_else(|| malformed("container"))? as usize;
                    let start = pos + 16;
                    let inner = body
                        .get(start..start + len)
                        .ok_or_else(|| malformed("container item length"))?;
                    let inner_seq = le_u32(body, pos + 8).ok_or_else(|| malformed("container"))?;
                    if self.shared.strict
                        && let Some(code) = seq_parity_error(inner, inner_seq as i32)
                    {
                        self.bad_msg(inner_id, inner_seq as i32, code);
                    } else {
                        self.handle_message(inner_id, inner, depth + 1)?;
                    }
                    pos = start + len;
                }
                Ok(())
            }
            GZIP_PACKED if depth < 3 => {
                let data = <Vec<u8> as grammers_tl_types::Deserializable>::from_bytes(&body[4..])
                    .map_err(|_| malformed("gzip_packed bytes"))?;
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&data[..])
                    .take(MAX_GUNZIP)
                    .read_to_end(&mut out)
                    .map_err(|e| malformed(format!("gunzip: {e}")))?;
                self.handle_message(msg_id, &out, depth + 1)
            }
            MSGS_ACK | MSGS_STATE_REQ | MSG_RESEND_REQ => Ok(()),
            PING | PING_DELAY_DISCONNECT => {
                let ping_id = le_i64(body, 4).ok_or_else(|| malformed("ping"))?;
                if ctor == PING_DELAY_DISCONNECT {
                    let delay = le_u32(body, 12).ok_or_else(|| malformed("ping"))? as u64;
                    self.disconnect_at =
                        Some(tokio::time::Instant::now() + Duration::from_secs(delay.min(86_400)));
                }
                let body = tl::enums::Pong::Pong(tl::types::Pong { msg_id, ping_id }).to_bytes();
                let _ = self.out_tx.send(Out::Bare {
                    body,
                    content: true,
                });
                Ok(())
            }
            GET_FUTURE_SALTS => {
                let num = le_u32(body, 4).ok_or_else(|| malformed("get_future_salts"))? as i32;
                let (salts, now) = {
                    let w = self.world();
                    (w.future_salts(key_id, num), w.now() as i32)
                };
                let body = tl::enums::FutureSalts::Salts(tl::types::FutureSalts {
                    req_msg_id: msg_id,
                    now,
                    salts: grammers_tl_types::RawVec(salts),
                })
                .to_bytes();
                let _ = self.out_tx.send(Out::Bare {
                    body,
                    content: true,
                });
                Ok(())
            }
            DESTROY_SESSION => {
                let session_id = le_i64(body, 4).ok_or_else(|| malformed("destroy_session"))?;
                let body = tl::enums::DestroySessionRes::DestroySessionNone(
                    tl::types::DestroySessionNone { session_id },
                )
                .to_bytes();
                let _ = self.out_tx.send(Out::Bare {
                    body,
                    content: true,
                });
                Ok(())
            }
            RPC_DROP_ANSWER => {
                let _ = self.out_tx.send(Out::Result {
                    req_msg_id: msg_id,
                    result: Ok(tl::enums::RpcDropAnswer::RpcAnswerUnknown.to_bytes()),
                });
                Ok(())
            }
            _ => {
                if self.in_flight.fetch_add(1, Ordering::Relaxed) >= MAX_IN_FLIGHT {
                    return Err(malformed("too many requests in flight"));
                }
                self.spawn_rpc(msg_id, body.to_vec());
                Ok(())
            }
        }
    }

    fn spawn_rpc(&mut self, msg_id: i64, body: Vec<u8>) {
        let Some(key) = self.key.as_ref() else {
            return;
        };
        let ctx = rpc::Ctx {
            key_id: key.id_u64(),
            conn: self.id,
        };
        let shared = self.shared.clone();
        let out = self.out_tx.clone();
        let push_tx = self.push_tx.clone();
        let conn_id = self.id;
        let in_flight = self.in_flight.clone();
        self.shared.tracker.spawn(async move {
            let result = match rpc::unwrap(&body) {
                Err(e) => Err(e),
                Ok(unwrapped) => {
                    let name = rpc::method_name(unwrapped.query);
                    let delay = shared.world().delay_for(name);
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    let mut w = shared.world();
                    // Subscribe before answering so no update falls between the answer and
                    // the subscription.
                    if !unwrapped.without_updates
                        && let Some(acc) = w.key_account(ctx.key_id)
                    {
                        w.subscribe(acc, conn_id, push_tx.clone());
                    }
                    w.stats.requests += 1;
                    *w.stats.calls.entry(name.to_owned()).or_default() += 1;
                    // A simulator bug must cost one answer (500 INTERNAL), not the connection.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        rpc::dispatch(&mut w, ctx, unwrapped.query)
                    }))
                    .unwrap_or_else(|_| {
                        tracing::error!(method = name, "rpc handler panicked");
                        Err(RpcErr {
                            code: 500,
                            message: "INTERNAL".into(),
                        })
                    });
                    match &r {
                        Ok(_) => tracing::debug!(conn = conn_id, method = name, "rpc answered"),
                        Err(e) => tracing::debug!(
                            conn = conn_id,
                            method = name,
                            code = e.code,
                            error = %e.message,
                            "rpc error"
                        ),
                    }
                    if !unwrapped.without_updates
                        && let Some(acc) = w.key_account(ctx.key_id)
                    {
                        w.subscribe(acc, conn_id, push_tx);
                    }
                    // The call took effect (or was refused); a DropAnswer fault loses the answer
                    // with the connection, as when the network fails after Telegram applied it.
                    if w.take_drop_answer(name) {
                        tracing::debug!(conn = conn_id, method = name, "answer dropped by fault");
                        drop(w);
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                        let _ = out.send(Out::Drop);
                        return;
                    }
                    r
                }
            };
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let _ = out.send(Out::Result {
                req_msg_id: msg_id,
                result,
            });
        });
    }
}

/// Messages that are not content-related (MTProto: they need no acknowledgement) carry an
/// even seq_no; every other message an odd one. A real DC answers 34 or 35 otherwise.
fn seq_parity_error(body: &[u8], seq_no: i32) -> Option<i32> {
    let ctor = le_u32(body, 0)?;
    let content_related = !matches!(
        ctor,
        MSG_CONTAINER | MSGS_ACK | MSGS_STATE_REQ | MSG_RESEND_REQ
    );
    match (content_related, seq_no % 2 != 0) {
        (true, false) => Some(35),
        (false, true) => Some(34),
        _ => None,
    }
}

enum FrameOutcome {
    TransportError(i32),
    Close(Close),
}

/// A client that stops reading must not pin its connection task (and delay shutdown) forever.
async fn write_with_timeout(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    bytes: &[u8],
) -> std::io::Result<()> {
    match tokio::time::timeout(Duration::from_secs(30), wr.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::other("client stopped reading")),
    }
}

fn gzip_packed(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    let gz = enc.finish().unwrap_or_default();
    let mut out = Vec::with_capacity(gz.len() + 8);
    GZIP_PACKED.serialize(&mut out);
    gz.serialize(&mut out);
    out
}
