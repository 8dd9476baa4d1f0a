//! MTProto TCP transports (Full, Intermediate, padded Intermediate, Abridged, and the obfuscated
//! wrapping of the last three that official apps and TDLib use), detected from the first bytes a
//! client sends, as a Telegram data centre does.
//!
//! Only framing lives here: no MTProto decryption, no MTProto state. A malformed frame is an
//! error for this one connection; it must never panic.

use grammers_crypto::ObfuscatedCipher;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest frame accepted from a client; Telegram's own limit is about 1 MB per container.
pub const MAX_FRAME: usize = 2 * 1024 * 1024;

/// Which framing a connection uses; chosen from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `len | seq | payload | crc32`, the default of grammers and Telethon.
    Full,
    /// Tag `0xeeeeeeee`, then `len | payload`.
    Intermediate,
    /// Tag `0xdddddddd`, then `len | payload | random padding`.
    PaddedIntermediate,
    /// Tag `0xef`, then a 1- or 4-byte length in words.
    Abridged,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed or the socket failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A length, sequence number or checksum that a correct client never sends.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// The AES-256-CTR keystream of one direction of an obfuscated connection.
struct Obf {
    cipher: ObfuscatedCipher,
    /// The client-to-server stream (keyed from the init) rather than the server-to-client one
    /// (keyed from the reversed init).
    forward: bool,
}

impl Obf {
    fn apply(&mut self, buf: &mut [u8]) {
        if self.forward {
            self.cipher.encrypt(buf);
        } else {
            self.cipher.decrypt(buf);
        }
    }
}

/// Framing state of one direction of a connection: reading and writing each get their own
/// (see [`Framing::for_writing`]), as they keep separate counters and keystreams.
pub struct Framing {
    kind: Kind,
    recv_seq: i32,
    send_seq: i32,
    /// Bytes already read while detecting the transport, to be consumed first.
    pending: Vec<u8>,
    /// The obfuscation init (64 bytes) if the connection is obfuscated.
    init: Option<[u8; 64]>,
    /// This side is the server (decides which keystream each direction uses).
    server: bool,
    obf: Option<Obf>,
}

impl std::fmt::Debug for Framing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framing")
            .field("kind", &self.kind)
            .field("obfuscated", &self.init.is_some())
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

fn tag_word(kind: Kind) -> [u8; 4] {
    match kind {
        Kind::Abridged => [0xef; 4],
        Kind::Intermediate | Kind::Full => [0xee; 4],
        Kind::PaddedIntermediate => [0xdd; 4],
    }
}

impl Framing {
    /// Reads the first bytes of a connection and decides which transport it speaks.
    pub async fn detect<R: AsyncRead + Unpin>(r: &mut R) -> Result<Self, FrameError> {
        let mut head = [0u8; 8];
        r.read_exact(&mut head[..1]).await?;
        if head[0] == 0xef {
            return Ok(Self::new(Kind::Abridged, Vec::new(), true));
        }
        r.read_exact(&mut head[1..4]).await?;
        match head[..4] {
            [0xee, 0xee, 0xee, 0xee] => return Ok(Self::new(Kind::Intermediate, Vec::new(), true)),
            [0xdd, 0xdd, 0xdd, 0xdd] => {
                return Ok(Self::new(Kind::PaddedIntermediate, Vec::new(), true));
            }
            _ => {}
        }
        r.read_exact(&mut head[4..]).await?;
        if head[4..] == [0, 0, 0, 0] {
            // A Full frame: length, then sequence number 0.
            return Ok(Self::new(Kind::Full, head.to_vec(), true));
        }
        // Anything else is the 64-byte init of the obfuscated transport.
        let mut init = [0u8; 64];
        init[..8].copy_from_slice(&head);
        r.read_exact(&mut init[8..]).await?;
        let mut cipher = ObfuscatedCipher::new(&init);
        let mut plain = init;
        cipher.encrypt(&mut plain);
        let kind = match plain[56..60] {
            [0xef, 0xef, 0xef, 0xef] => Kind::Abridged,
            [0xee, 0xee, 0xee, 0xee] => Kind::Intermediate,
            [0xdd, 0xdd, 0xdd, 0xdd] => Kind::PaddedIntermediate,
            _ => return Err(FrameError::Malformed("unknown transport".into())),
        };
        let mut f = Self::new(kind, Vec::new(), true);
        f.init = Some(init);
        f.obf = Some(Obf {
            cipher,
            forward: true,
        });
        Ok(f)
    }

    /// The framing for writing on the same connection: same transport, its own counters and,
    /// when obfuscated, the other direction's keystream.
    pub fn for_writing(&self) -> Framing {
        let mut f = Self::new(self.kind, Vec::new(), self.server);
        if let Some(init) = self.init {
            f.init = Some(init);
            let mut cipher = ObfuscatedCipher::new(&init);
            // The client's own stream starts after the 64 init bytes it encrypted.
            let forward = !self.server;
            if forward {
                let mut skip = init;
                cipher.encrypt(&mut skip);
            }
            f.obf = Some(Obf { cipher, forward });
        }
        f
    }

    /// Framing for the client side of a connection that already chose `kind` (the tag, if any,
    /// is sent separately with [`Framing::client_tag`]).
    pub fn client(kind: Kind) -> Self {
        Self::new(kind, Vec::new(), false)
    }

    /// Client side of an obfuscated connection: the 64-byte init to send first, and the framing
    /// for reading (get the writing one with [`Framing::for_writing`]). `kind` must not be Full.
    pub fn client_obfuscated(kind: Kind) -> ([u8; 64], Framing) {
        const FORBIDDEN: [[u8; 4]; 7] = [
            *b"HEAD",
            *b"POST",
            *b"GET ",
            *b"OPTI",
            [0x16, 0x03, 0x01, 0x02],
            [0xdd; 4],
            [0xee; 4],
        ];
        let mut init = [0u8; 64];
        while init[4..8] == [0; 4] || init[0] == 0xef || FORBIDDEN.iter().any(|f| f == &init[..4]) {
            rand::Rng::fill(&mut rand::thread_rng(), &mut init[..]);
        }
        init[56..60].copy_from_slice(&tag_word(kind));
        let mut enc = init;
        ObfuscatedCipher::new(&init).encrypt(&mut enc);
        init[56..64].copy_from_slice(&enc[56..64]);
        let mut reader = Self::new(kind, Vec::new(), false);
        reader.init = Some(init);
        reader.obf = Some(Obf {
            cipher: ObfuscatedCipher::new(&init),
            forward: false,
        });
        (init, reader)
    }

    /// The bytes a client sends first to select this transport.
    pub fn client_tag(kind: Kind) -> &'static [u8] {
        match kind {
            Kind::Full => &[],
            Kind::Intermediate => &[0xee, 0xee, 0xee, 0xee],
            Kind::PaddedIntermediate => &[0xdd, 0xdd, 0xdd, 0xdd],
            Kind::Abridged => &[0xef],
        }
    }

    fn new(kind: Kind, pending: Vec<u8>, server: bool) -> Self {
        Self {
            kind,
            recv_seq: 0,
            send_seq: 0,
            pending,
            init: None,
            server,
            obf: None,
        }
    }

    /// Whether the connection uses the obfuscated transport.
    pub fn is_obfuscated(&self) -> bool {
        self.init.is_some()
    }

    /// The detected transport.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    async fn read_exact<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        buf: &mut [u8],
    ) -> Result<(), FrameError> {
        let from_pending = self.pending.len().min(buf.len());
        buf[..from_pending].copy_from_slice(&self.pending[..from_pending]);
        self.pending.drain(..from_pending);
        if from_pending < buf.len() {
            r.read_exact(&mut buf[from_pending..]).await?;
            if let Some(obf) = &mut self.obf {
                obf.apply(&mut buf[from_pending..]);
            }
        }
        Ok(())
    }

    /// Reads one frame and returns its payload.
    pub async fn read_frame<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> Result<Vec<u8>, FrameError> {
        match self.kind {
            Kind::Full => {
                let mut head = [0u8; 8];
                self.read_exact(r, &mut head).await?;
                let len = i32::from_le_bytes([head[0], head[1], head[2], head[3]]);
                let seq = i32::from_le_bytes([head[4], head[5], head[6], head[7]]);
                if len < 12 || len as usize > MAX_FRAME || len % 4 != 0 {
                    return Err(FrameError::Malformed(format!("full frame length {len}")));
                }
                if seq != self.recv_seq {
                    return Err(FrameError::Malformed(format!(
                        "full frame seq {seq}, expected {}",
                        self.recv_seq
                    )));
                }
                let mut rest = vec![0u8; len as usize - 8];
                self.read_exact(r, &mut rest).await?;
                let crc_pos = rest.len() - 4;
                let got = u32::from_le_bytes([
                    rest[crc_pos],
                    rest[crc_pos + 1],
                    rest[crc_pos + 2],
                    rest[crc_pos + 3],
                ]);
                let mut h = crc32fast::Hasher::new();
                h.update(&head);
                h.update(&rest[..crc_pos]);
                if h.finalize() != got {
                    return Err(FrameError::Malformed("full frame crc mismatch".into()));
                }
                self.recv_seq += 1;
                rest.truncate(crc_pos);
                Ok(rest)
            }
            Kind::Intermediate | Kind::PaddedIntermediate => {
                let mut head = [0u8; 4];
                self.read_exact(r, &mut head).await?;
                let len = i32::from_le_bytes(head);
                if len <= 0 || len as usize > MAX_FRAME {
                    return Err(FrameError::Malformed(format!("intermediate length {len}")));
                }
                let mut body = vec![0u8; len as usize];
                self.read_exact(r, &mut body).await?;
                if self.kind == Kind::PaddedIntermediate {
                    // Encrypted payloads are 24 + 16k bytes; anything past that is padding.
                    let keep = if body.len() >= 24 {
                        24 + (body.len() - 24) / 16 * 16
                    } else {
                        body.len()
                    };
                    body.truncate(keep);
                }
                Ok(body)
            }
            Kind::Abridged => {
                let mut first = [0u8; 1];
                self.read_exact(r, &mut first).await?;
                let words = if first[0] < 0x7f {
                    first[0] as usize
                } else {
                    let mut b = [0u8; 3];
                    self.read_exact(r, &mut b).await?;
                    u32::from_le_bytes([b[0], b[1], b[2], 0]) as usize
                };
                let len = words * 4;
                if len == 0 || len > MAX_FRAME {
                    return Err(FrameError::Malformed(format!("abridged length {len}")));
                }
                let mut body = vec![0u8; len];
                self.read_exact(r, &mut body).await?;
                Ok(body)
            }
        }
    }

    /// Wraps a payload (a multiple of 4 bytes) into one frame for the client.
    pub fn frame(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + 16);
        match self.kind {
            Kind::Full => {
                let len = payload.len() as i32 + 12;
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&self.send_seq.to_le_bytes());
                out.extend_from_slice(payload);
                let crc = crc32fast::hash(&out);
                out.extend_from_slice(&crc.to_le_bytes());
                self.send_seq += 1;
            }
            Kind::Intermediate | Kind::PaddedIntermediate => {
                out.extend_from_slice(&(payload.len() as i32).to_le_bytes());
                out.extend_from_slice(payload);
            }
            Kind::Abridged => {
                let words = payload.len() / 4;
                if words < 0x7f {
                    out.push(words as u8);
                } else {
                    out.extend_from_slice(&((words as u32) << 8 | 0x7f).to_le_bytes());
                }
                out.extend_from_slice(payload);
            }
        }
        if let Some(obf) = &mut self.obf {
            obf.apply(&mut out);
        }
        out
    }

    /// A transport error (such as -404 for an unknown auth key), as a 4-byte payload frame.
    /// The Full transport sends the negative code in place of the length, as Telegram does.
    pub fn error_frame(&mut self, code: i32) -> Vec<u8> {
        let neg = (-code.abs()).to_le_bytes();
        match self.kind {
            Kind::Full => neg.to_vec(),
            _ => self.frame(&neg),
        }
    }
}

/// Client-side framing helper for tests and the benchmark's raw client (Full transport).
pub fn client_full_frame(seq: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.extend_from_slice(&(payload.len() as i32 + 12).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn roundtrip(prefix: &[u8], frame: Vec<u8>, expect: Kind) -> Vec<u8> {
        let mut data = prefix.to_vec();
        data.extend(frame);
        let mut r = &data[..];
        let mut f = Framing::detect(&mut r).await.expect("detects");
        assert_eq!(f.kind(), expect);
        f.read_frame(&mut r).await.expect("reads")
    }

    #[tokio::test]
    async fn detects_all_transports() {
        let payload = vec![5u8; 40];
        let full = client_full_frame(0, &payload);
        assert_eq!(roundtrip(&[], full, Kind::Full).await, payload);

        let mut inter = (payload.len() as i32).to_le_bytes().to_vec();
        inter.extend(&payload);
        assert_eq!(
            roundtrip(&[0xee; 4], inter, Kind::Intermediate).await,
            payload
        );

        let mut abr = vec![(payload.len() / 4) as u8];
        abr.extend(&payload);
        assert_eq!(roundtrip(&[0xef], abr, Kind::Abridged).await, payload);

        let big = vec![1u8; 4 * 200];
        let mut abr = ((200u32 << 8) | 0x7f).to_le_bytes().to_vec();
        abr.extend(&big);
        assert_eq!(roundtrip(&[0xef], abr, Kind::Abridged).await, big);
    }

    #[tokio::test]
    async fn obfuscated_round_trip_in_both_directions() {
        for kind in [Kind::Abridged, Kind::Intermediate, Kind::PaddedIntermediate] {
            let (init, client_reader) = Framing::client_obfuscated(kind);
            let mut client_writer = client_reader.for_writing();
            let mut client_reader = client_reader;
            // 24 + 16k bytes, the shape of an encrypted MTProto packet.
            let payload = vec![7u8; 56];
            let mut wire = init.to_vec();
            wire.extend(client_writer.frame(&payload));
            wire.extend(client_writer.frame(&payload[..40]));
            let mut r = &wire[..];
            let mut server_reader = Framing::detect(&mut r).await.expect("detects");
            assert!(server_reader.is_obfuscated());
            assert_eq!(server_reader.kind(), kind);
            assert_eq!(server_reader.read_frame(&mut r).await.expect("1"), payload);
            assert_eq!(
                server_reader.read_frame(&mut r).await.expect("2"),
                &payload[..40]
            );
            let mut server_writer = server_reader.for_writing();
            let back = server_writer.frame(&[9u8; 40]);
            let back2 = server_writer.frame(&[8u8; 56]);
            let mut both = back;
            both.extend(back2);
            let mut r = &both[..];
            assert_eq!(
                client_reader.read_frame(&mut r).await.expect("back"),
                [9u8; 40]
            );
            assert_eq!(
                client_reader.read_frame(&mut r).await.expect("back2"),
                [8u8; 56]
            );
        }
    }

    #[tokio::test]
    async fn bad_crc_and_bad_seq_are_errors() {
        let mut frame = client_full_frame(0, &[1u8; 16]);
        let n = frame.len();
        frame[n - 1] ^= 0xff;
        let mut r = &frame[..];
        let mut f = Framing::detect(&mut r).await.expect("detects");
        assert!(matches!(
            f.read_frame(&mut r).await,
            Err(FrameError::Malformed(_))
        ));

        // A second frame with the wrong sequence number.
        let mut frames = client_full_frame(0, &[1u8; 16]);
        frames.extend(client_full_frame(3, &[1u8; 16]));
        let mut r = &frames[..];
        let mut f = Framing::detect(&mut r).await.expect("detects");
        f.read_frame(&mut r).await.expect("first frame");
        assert!(matches!(
            f.read_frame(&mut r).await,
            Err(FrameError::Malformed(_))
        ));

        // A first frame whose sequence number is not 0 reads as an obfuscated init with an
        // unknown tag.
        let frame = client_full_frame(3, &[1u8; 64]);
        let mut r = &frame[..];
        assert!(matches!(
            Framing::detect(&mut r).await,
            Err(FrameError::Malformed(_))
        ));
    }
}
