//! Which instance this process is: a stable identity (configured, or written once to the state
//! directory), the holder name each process takes leases under, and telling a dead predecessor
//! of the same identity (whose terms this process ends at once) from a live twin (which refuses
//! this start). Must never let two live processes act as one instance.

use super::LeaseTimes;
use crate::store::Store;

/// The file in the state directory that keeps the instance identity once derived.
pub const IDENTITY_FILE: &str = "instance-id";

/// Why the instance identity cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "instance identity {0:?}: use 1 to 64 letters, digits, '.', '_' or '-' (lease.instance, \
         or the file {IDENTITY_FILE} in the state directory)"
    )]
    Invalid(String),
    #[error(
        "cannot read or write the instance identity {path}: {source}; check that the state \
         directory exists and is writable, or set lease.instance"
    )]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

use crate::term::valid_identity;

/// This instance's stable identity: `configured` (`lease.instance`) when set, else the one
/// kept in `<state_dir>/instance-id`, written there once (the host name and a random part) by
/// the first start. A restart with the same state directory is the same instance, and takes
/// over its own leases at once ([`take_over_predecessor`]).
pub fn identity(
    configured: Option<&str>,
    state_dir: &std::path::Path,
) -> Result<String, IdentityError> {
    if let Some(id) = configured {
        return if valid_identity(id) {
            Ok(id.to_owned())
        } else {
            Err(IdentityError::Invalid(id.to_owned()))
        };
    }
    let path = state_dir.join(IDENTITY_FILE);
    let io = |source| IdentityError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let id = s.trim();
            return if valid_identity(id) {
                Ok(id.to_owned())
            } else {
                Err(IdentityError::Invalid(id.to_owned()))
            };
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let host: String = host_name()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(40)
        .collect();
    let id = format!(
        "{}-{:08x}",
        if host.is_empty() { "giftd" } else { &host },
        rand::random::<u32>()
    );
    // Written to a temporary file and linked into place without replacing: two first starts
    // at once agree on whichever identity got there first.
    let tmp = state_dir.join(format!(".{IDENTITY_FILE}.{}", std::process::id()));
    std::fs::write(&tmp, format!("{id}\n")).map_err(io)?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(id),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => identity(None, state_dir),
        Err(e) => Err(io(e)),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The holder string of this process in lease rows: `<identity>/<host>:<pid>:<random>`. The
/// identity says which instance it is (stable across restarts); the rest tells this process
/// from its predecessors, so a survivor of an old process never renews the new one's term.
pub fn holder_for(identity: &str) -> String {
    format!(
        "{identity}/{}:{}:{:08x}",
        host_name(),
        std::process::id(),
        rand::random::<u32>()
    )
}

/// The parts of a holder string made by [`holder_for`]: identity, host, pid.
fn parse_holder(holder: &str) -> Option<(&str, &str, u32)> {
    let (identity, process) = holder.split_once('/')?;
    let mut parts = process.rsplitn(3, ':');
    let _random = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    let host = parts.next()?;
    Some((identity, host, pid))
}

/// Whether process `pid` of this host may be alive: it exists and is not a zombie.
fn process_may_live(pid: u32) -> bool {
    if pid == std::process::id() {
        return true; // a predecessor with our pid (a container's pid 1): cannot tell
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command in parentheses: `pid (comm) S ...`.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Two live processes claim one instance identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "another live giftd process claims instance identity {identity:?}: it holds lease {lease:?} \
     as {holder:?} and renewed it while this one waited a renewal period; stop it first, or give \
     this instance its own identity (lease.instance, or its own state directory)"
)]
pub struct TwinError {
    pub identity: String,
    pub lease: String,
    pub holder: String,
}

/// Before this process first takes lease `name`: when the live holder is an earlier process of
/// the same instance identity, ends its term so this one takes the lease at once with a new
/// epoch (the store fences whatever a survivor of the old process still writes).
///
/// Dead predecessor or live twin: a holder on this host whose process is gone is dead for
/// certain and its term is ended at once. Otherwise (another host, or its pid is in use) this
/// waits one renewal period past the holder's last renewal: a live holder renews within it
/// ([`LeaseTimes::renew_every`]), and then this start is refused ([`TwinError`]); a silent one
/// is dead and its term is ended. Store failures are not errors: the keeper's ordinary takes
/// follow. Returns the holder whose term was ended.
pub async fn take_over_predecessor(
    store: &dyn Store,
    name: &str,
    identity: &str,
    holder: &str,
    times: LeaseTimes,
) -> Result<Option<String>, TwinError> {
    let Ok(Some(seen)) = store.lease(name).await else {
        return Ok(None);
    };
    let Some((their_identity, host, pid)) = parse_holder(&seen.holder) else {
        return Ok(None);
    };
    if !seen.is_live() || seen.holder == holder || their_identity != identity {
        return Ok(None);
    }
    if host != host_name() || process_may_live(pid) {
        // A holder renews every `renew_every` from the start of its last renewal; its last
        // renewal was `ttl - remaining` ago (instances sharing a store share lease times).
        let since = times.ttl.saturating_sub(seen.remaining());
        let wait = (times.renew_every + times.take_every).saturating_sub(since);
        tracing::info!(
            lease = name,
            holder = seen.holder,
            wait_ms = wait.as_millis() as u64,
            "the lease is held by another process of this instance's identity: waiting a \
             renewal period to tell a dead predecessor from a live twin"
        );
        tokio::time::sleep(wait).await;
        let Ok(Some(now)) = store.lease(name).await else {
            return Ok(None);
        };
        if now.holder != seen.holder || now.epoch != seen.epoch || !now.is_live() {
            return Ok(None); // someone else's term now, or over: the ordinary take decides
        }
        if now.expires_at_ms > seen.expires_at_ms {
            return Err(TwinError {
                identity: identity.to_owned(),
                lease: name.to_owned(),
                holder: seen.holder,
            });
        }
    }
    match store.release_lease(name, &seen.holder, seen.epoch).await {
        Ok(true) => {
            tracing::info!(
                lease = name,
                predecessor = seen.holder,
                epoch = seen.epoch,
                "ended the term of this instance's dead predecessor: taking the lease over at once"
            );
            Ok(Some(seen.holder))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_name_their_identity_host_and_process() {
        let h = holder_for("edge-1");
        let (identity, host, pid) = parse_holder(&h).expect("parsed");
        assert_eq!(
            (identity, host, pid),
            ("edge-1", host_name().as_str(), std::process::id())
        );
        assert_ne!(holder_for("edge-1"), h, "each process its own");
        assert_eq!(parse_holder("1234:abcd"), None, "an id without identity");
        assert!(valid_identity("host-1.a_b"));
        assert!(!valid_identity(""));
        assert!(!valid_identity("a/b"));
        assert!(!valid_identity(&"x".repeat(65)));
    }

    #[test]
    fn the_identity_is_written_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = identity(None, dir.path()).unwrap();
        assert!(valid_identity(&first), "{first}");
        assert_eq!(identity(None, dir.path()).unwrap(), first, "read back");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(IDENTITY_FILE))
                .unwrap()
                .trim(),
            first
        );
        assert_eq!(identity(Some("edge-2"), dir.path()).unwrap(), "edge-2");
        assert!(matches!(
            identity(Some("a b"), dir.path()),
            Err(IdentityError::Invalid(_))
        ));
        std::fs::write(dir.path().join(IDENTITY_FILE), "bad id\n").unwrap();
        assert!(matches!(
            identity(None, dir.path()),
            Err(IdentityError::Invalid(_))
        ));
        let missing = dir.path().join("nope");
        assert!(matches!(
            identity(None, &missing),
            Err(IdentityError::Io { .. })
        ));
    }

    #[test]
    fn a_reaped_process_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_may_live(pid));
        assert!(process_may_live(std::process::id()));
    }
}
