//! Writes grammers 0.11 SQLite session files (grammers-session `SqliteSession`) that point at
//! the simulator, so giftd runs against tgsim with its ordinary configuration.
//!
//! Only the session storage's public API is used: DC option with address and auth key, home DC,
//! and the self user once signed in.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::Path;

use grammers_session::Session as _;
use grammers_session::storages::SqliteSession;
use grammers_session::types::{DcOption, PeerAuth, PeerInfo, UpdateState, UpdatesState};

/// What goes into a session file.
#[derive(Clone)]
pub struct SessionSpec {
    /// DC id (the simulator's).
    pub dc_id: i32,
    /// Simulator address (IPv4).
    pub addr: SocketAddr,
    /// The auth key.
    pub auth_key: [u8; 256],
    /// The signed-in user: (id, access_hash, is_bot).
    pub user: Option<(i64, i64, bool)>,
    /// The account's update state (pts, date), as a client has it right after login.
    pub state: Option<(i32, i32)>,
}

impl std::fmt::Debug for SessionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSpec")
            .field("dc_id", &self.dc_id)
            .field("addr", &self.addr)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Why a session file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SessionFileError {
    /// grammers-session failed.
    #[error("session storage: {0}")]
    Storage(String),
    /// Only IPv4 simulator addresses can be written.
    #[error("simulator address {0} is not IPv4")]
    NotIpv4(SocketAddr),
}

/// Writes (or updates) the SQLite session at `path`.
pub async fn write(path: &Path, spec: &SessionSpec) -> Result<(), SessionFileError> {
    let SocketAddr::V4(v4) = spec.addr else {
        return Err(SessionFileError::NotIpv4(spec.addr));
    };
    let err = |e: grammers_session::storages::SqliteSessionError| {
        SessionFileError::Storage(e.to_string())
    };
    // The file holds an auth key: create it readable by its owner only, as `giftd login` does
    // (giftd refuses a session file others can read).
    if !path.exists() {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                SessionFileError::Storage(format!("cannot create {}: {e}", path.display()))
            })?;
    }
    let session = SqliteSession::open(path).await.map_err(err)?;
    for id in 1..=5 {
        let auth_key = (id == spec.dc_id).then_some(spec.auth_key);
        let ipv4 = SocketAddrV4::new(*v4.ip(), v4.port());
        let ipv6 = SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0);
        session
            .set_dc_option(&DcOption {
                id,
                ipv4,
                ipv6,
                auth_key,
            })
            .await
            .map_err(err)?;
    }
    session.set_home_dc_id(spec.dc_id).await.map_err(err)?;
    if let Some((id, hash, bot)) = spec.user {
        session
            .cache_peer(PeerInfo::User {
                id,
                auth: Some(PeerAuth::from_hash(hash)),
                bot: Some(bot),
                is_self: Some(true),
            })
            .await
            .map_err(err)?;
    }
    if let Some((pts, date)) = spec.state {
        session
            .set_update_state(UpdateState::All(UpdatesState {
                pts,
                qts: 0,
                date,
                seq: 0,
                channels: Vec::new(),
            }))
            .await
            .map_err(err)?;
    }
    Ok(())
}
