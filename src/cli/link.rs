//! `giftd link-token`: an operator mints a link token for a web account (a Supabase auth user)
//! and hands it to the player, who opens `t.me/<bot>?start=<token>`; the bot links their
//! Telegram account to that web account. The web app mints its own through the
//! `request_link_token` RPC.
//!
//! The token is printed once, on purpose (the operator asked for it); it is never logged.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use super::{Env, open_store, utc};
use crate::store::{LinkLabel, MAX_LINK_TOKEN_TTL, WebUserId};

/// The shortest lifetime worth minting: the player needs time to open the link.
const MIN_TTL: Duration = Duration::from_secs(60);

/// `--ttl`: a duration such as `15m`, `1h`, between a minute and a day.
pub(super) fn parse_ttl(s: &str) -> Result<Duration, String> {
    let ttl = crate::config::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration: write it like 15m, 90s, 1h or 1h30m"))?;
    if !(MIN_TTL..=MAX_LINK_TOKEN_TTL).contains(&ttl) {
        return Err(format!(
            "{s} is out of range: a link token lives between 1m and 24h"
        ));
    }
    Ok(ttl)
}

/// `--label`: what the player is shown.
pub(super) fn parse_label(s: &str) -> Result<LinkLabel, String> {
    LinkLabel::new(s).map_err(|e| e.to_string())
}

/// `--bot`: the bot's username, with or without `@` (Telegram bot usernames are 5 to 32
/// letters, digits or underscores and end in `bot`).
pub(super) fn parse_bot(s: &str) -> Result<String, String> {
    let name = s.trim().trim_start_matches('@');
    let ok = (5..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.to_ascii_lowercase().ends_with("bot");
    if ok {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a bot username: 5 to 32 letters, digits or underscores, ending in \
             `bot` (as BotFather shows it)"
        ))
    }
}

pub(super) async fn run(
    path: &Path,
    env: Env<'_>,
    web_user: WebUserId,
    label: &LinkLabel,
    ttl: Duration,
    bot: Option<String>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let store = open_store(path, env).await?;
    let token = store
        .create_link_token(web_user, label, ttl)
        .await
        .context("cannot create the link token")?;
    let secret = token.token.expose();
    writeln!(out, "token:    {secret}")?;
    match bot {
        Some(bot) => writeln!(out, "link:     https://t.me/{bot}?start={secret}")?,
        None => writeln!(
            out,
            "link:     https://t.me/<bot>?start={secret}\n          \
             (giftd does not know the bot's username offline: put it in place of <bot>, or \
             pass --bot USERNAME)"
        )?,
    }
    writeln!(out, "web user: {web_user}")?;
    writeln!(out, "label:    {}", label.as_str())?;
    writeln!(
        out,
        "expires:  {} UTC, in {}; single use",
        utc(token.expires_at_ms / 1000),
        humanize(ttl)
    )?;
    writeln!(
        out,
        "The player opens the link in Telegram and presses Start: the bot shows the label and \
         links their Telegram account to this web account when they press Link."
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `15m`, `1h30m`, `90s`.
fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    let mut text = String::new();
    if h > 0 {
        text.push_str(&format!("{h}h"));
    }
    if m > 0 {
        text.push_str(&format!("{m}m"));
    }
    if sec > 0 || text.is_empty() {
        text.push_str(&format!("{sec}s"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_and_bot_names() {
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "15", "soon", "30s", "25h", "-1m"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_bot("@GiftDeskBot"), Ok("GiftDeskBot".to_owned()));
        assert_eq!(parse_bot("gift_desk_bot"), Ok("gift_desk_bot".to_owned()));
        for bad in ["", "bot", "giftdesk", "gift desk bot", "t.me/GiftDeskBot"] {
            assert!(parse_bot(bad).is_err(), "{bad}");
        }
        assert_eq!(humanize(Duration::from_secs(900)), "15m");
        assert_eq!(humanize(Duration::from_secs(5400)), "1h30m");
        assert_eq!(humanize(Duration::from_secs(90)), "1m30s");
    }
}
