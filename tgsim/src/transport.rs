//! MTProto TCP transports (Full, Intermediate, padded Intermediate, Abridged), detected from the
//! first bytes a client sends, as a Telegram data centre does.
//!
//! Only framing lives here: no decryption, no MTProto state. A malformed frame is an error for
//! this one connection; it must never panic.

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

/// Framing state of one connection (clone it to give reading and writing their own counters).
#[derive(Debug, Clone)]
pub struct Framing {
    kind: Kind,
    recv_seq: i32,
    send_seq: i32,
    /// Bytes already read while detecting the transport, to be consumed first.
    pending: Vec<u8>,
}

impl Framing {
    /// Reads the first bytes of a connection and decides which transport it speaks.
    pub async fn detect<R: AsyncRead + Unpin>(r: &mut R) -> Result<Self, FrameError> {
        let first = r.read_u8().await?;
        if first == 0xef {
            return Ok(Self::new(Kind::Abridged, Vec::new()));
        }
        let mut rest = [0u8; 3];
        r.read_exact(&mut rest).await?;
        let word = [first, rest[0], rest[1], rest[2]];
        match word {
            [0xee, 0xee, 0xee, 0xee] => Ok(Self::new(Kind::Intermediate, Vec::new())),
            [0xdd, 0xdd, 0xdd, 0xdd] => Ok(Self::new(Kind::PaddedIntermediate, Vec::new())),
            _ => Ok(Self::new(Kind::Full, word.to_vec())),
        }
    }

    /// Framing for the client side of a connection that already chose `kind` (the tag, if any,
    /// is sent separately with [`Framing::client_tag`]).
    pub fn client(kind: Kind) -> Self {
        Self::new(kind, Vec::new())
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

    fn new(kind: Kind, pending: Vec<u8>) -> Self {
        Self {
            kind,
            recv_seq: 0,
            send_seq: 0,
            pending,
        }
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

        let frame = client_full_frame(3, &[1u8; 16]);
        let mut r = &frame[..];
        let mut f = Framing::detect(&mut r).await.expect("detects");
        assert!(matches!(
            f.read_frame(&mut r).await,
            Err(FrameError::Malformed(_))
        ));
    }
}
