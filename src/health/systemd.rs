//! The systemd notify protocol (`READY=1`, `WATCHDOG=1`, `STATUS=...`) under `Type=notify`, and
//! the watchdog interval systemd asks for.

/// Sends a message to systemd when run under `Type=notify` (`NOTIFY_SOCKET` set); returns
/// whether it was sent.
pub fn sd_notify(message: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let socket = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return false,
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| socket.send_to_addr(message.as_bytes(), &addr))
    } else {
        socket.send_to(message.as_bytes(), &path)
    };
    sent.is_ok()
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`), halved as sd_watchdog_enabled(3)
/// recommends.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| std::time::Duration::from_micros(usec / 2))
}
