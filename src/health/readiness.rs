//! Readiness: what each deposit account is doing in this process ([`AccountState`]), whether the
//! companion bot is connected here ([`BotLink`]), and the rule that makes the daemon ready (it
//! finished starting, no account is down or left unserved by a silent lease holder, the bot has
//! not failed), written out as the `/readyz` body.

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use super::{Health, unix_now};

/// What one deposit account is doing in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountState {
    /// Connecting, loading its items, reconciling.
    Starting,
    /// Its intake paths and withdrawal worker run here.
    Serving,
    /// Another giftd instance holds the account's lease; this one takes over if that one
    /// stops. Healthy: only one instance serves an account at a time.
    Standby,
    /// Another instance holds the account's lease but has not renewed it past its renewal
    /// period: it may be dead, and nobody serves the account until the lease runs out and
    /// this instance takes over. Not ready.
    HolderSilent {
        /// The holder as the lease row names it.
        holder: String,
        /// Unix ms (the database's clock) of its last renewal.
        since_ms: i64,
    },
    /// Not served, with why and what to do (retried in the background).
    Down(String),
}

impl AccountState {
    /// The `state` label of `giftd_account`.
    pub fn label(&self) -> &'static str {
        match self {
            AccountState::Starting => "starting",
            AccountState::Serving => "serving",
            AccountState::Standby | AccountState::HolderSilent { .. } => "standby",
            AccountState::Down(_) => "down",
        }
    }
}

/// One deposit account as `/readyz` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    /// The configured name (`[account.NAME]`).
    pub name: String,
    /// The Telegram user id, once a connection learned it.
    pub id: Option<i64>,
    pub state: AccountState,
}

impl AccountView {
    /// Down, counting a serving account whose polls went stale as down too, and a standby
    /// account whose holder stopped renewing (nobody serves it).
    pub fn is_down(&self) -> bool {
        matches!(
            self.state,
            AccountState::Down(_) | AccountState::HolderSilent { .. }
        )
    }
}

impl std::fmt::Display for AccountView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "account {}", self.name)?;
        if let Some(id) = self.id {
            write!(f, " ({id})")?;
        }
        match &self.state {
            AccountState::Starting => write!(f, ": starting"),
            AccountState::Serving => write!(f, ": serving"),
            AccountState::Standby => {
                write!(f, ": standby (another instance serves it; healthy)")
            }
            AccountState::HolderSilent { holder, since_ms } => {
                let ago = (unix_now() * 1000 - since_ms).max(0) / 1000;
                write!(
                    f,
                    ": standby, but its holder {holder} has not renewed the lease since unix \
                     {} ({ago} s ago, past its renewal period): nobody serves it until the lease \
                     runs out and this instance takes over",
                    since_ms / 1000
                )
            }
            AccountState::Down(why) => write!(f, ": down: {why}"),
        }
    }
}

pub(super) type Accounts = Mutex<Vec<AccountView>>;

/// Whether the companion bot is connected in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BotLink {
    /// Signing in or reconnecting to Telegram; retried in the background.
    Connecting,
    /// Signed in and answering.
    Connected,
    /// Cannot start until an operator acts (a refused token, an unusable session): why and
    /// what to do. Not ready.
    Failed(String),
}

impl Health {
    /// Ready: the daemon finished starting, no deposit account is down and the companion bot
    /// (when it runs here) has not failed. A standby account (served by another instance that
    /// renews its lease) is healthy.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
            && !self.accounts().iter().any(AccountView::is_down)
            && !self.bot_failed()
    }

    fn bot_failed(&self) -> bool {
        matches!(self.bot_link(), Some(BotLink::Failed(_)))
    }

    /// The companion bot's connection here (`None`: it does not run in this process).
    pub fn bot_link(&self) -> Option<BotLink> {
        self.bot_link
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records the companion bot's connection (`None`: it stopped running here).
    pub fn set_bot_link(&self, link: Option<BotLink>) {
        let mut now = self.bot_link.lock().unwrap_or_else(|e| e.into_inner());
        if *now != link {
            match &link {
                Some(BotLink::Failed(why)) => {
                    tracing::error!(reason = %why, "the companion bot is not connected")
                }
                Some(BotLink::Connected) => tracing::info!("the companion bot is connected"),
                _ => {}
            }
            *now = link;
        }
    }

    /// Whether the daemon finished starting (whatever its accounts are doing).
    pub fn is_ready_flag(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Adds a deposit account (state `starting`) or, when known, leaves it as it is.
    pub fn add_account(&self, name: &str) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if !accounts.iter().any(|a| a.name == name) {
            accounts.push(AccountView {
                name: name.to_owned(),
                id: None,
                state: AccountState::Starting,
            });
        }
    }

    /// Records what account `name` is doing now (and its Telegram id once known).
    pub fn set_account(&self, name: &str, id: Option<i64>, state: AccountState) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(a) = accounts.iter_mut().find(|a| a.name == name) else {
            return;
        };
        if id.is_some() {
            a.id = id;
        }
        if a.state != state {
            match &state {
                AccountState::Down(why) => {
                    tracing::error!(account = name, reason = %why, "deposit account down")
                }
                AccountState::HolderSilent { holder, since_ms } => tracing::warn!(
                    account = name,
                    holder,
                    last_renewal_unix_ms = since_ms,
                    "deposit account unserved: the instance holding its lease stopped renewing; taking over when the lease runs out"
                ),
                s => tracing::info!(account = name, state = s.label(), "deposit account"),
            }
            a.state = state;
        }
    }

    /// Records whether this instance holds the `bot` lease (it runs the bot only then).
    pub fn set_bot_lease(&self, held: bool) {
        *self.bot_lease.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
    }

    /// Every deposit account, in the configuration's order.
    pub fn accounts(&self) -> Vec<AccountView> {
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The `/readyz` body: the verdict and status, then one line per deposit account.
    pub fn readiness(&self) -> String {
        let accounts = self.accounts();
        let mut out = if self.is_ready() {
            format!("ready: {}\n", self.status())
        } else if !self.ready.load(Ordering::Relaxed) {
            format!("not ready: {}\n", self.status())
        } else {
            let down: Vec<&str> = accounts
                .iter()
                .filter(|a| a.is_down())
                .map(|a| a.name.as_str())
                .collect();
            if down.is_empty() {
                "not ready: the companion bot is not connected\n".to_owned()
            } else {
                format!("not ready: deposit account down: {}\n", down.join(", "))
            }
        };
        for a in &accounts {
            out.push_str(&a.to_string());
            out.push('\n');
        }
        let lease = *self.bot_lease.lock().unwrap_or_else(|e| e.into_inner());
        let holds = if lease == Some(true) {
            " (this instance holds the bot lease)"
        } else {
            ""
        };
        match (lease, self.bot_link()) {
            (Some(false), _) => {
                out.push_str("bot: standby (another instance runs it; healthy)\n");
            }
            (_, Some(BotLink::Failed(why))) => {
                out.push_str(&format!("bot: not connected: {why}\n"));
            }
            (_, Some(BotLink::Connected)) => out.push_str(&format!("bot: runs here{holds}\n")),
            (Some(true), None) | (_, Some(BotLink::Connecting)) => out.push_str(&format!(
                "bot: not connected yet: signing in to telegram (retried){holds}\n"
            )),
            (None, None) => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    #[test]
    fn a_silent_holder_and_a_failed_bot_are_not_ready() {
        let h = Health::new();
        h.add_account("alpha");
        h.set_ready(true, "watching");
        h.set_account("alpha", Some(7), AccountState::Standby);
        assert!(h.is_ready(), "{}", h.readiness());
        let since_ms = (unix_now() - 20) * 1000;
        h.set_account(
            "alpha",
            None,
            AccountState::HolderSilent {
                holder: "edge-1/host:12:ab".into(),
                since_ms,
            },
        );
        assert!(!h.is_ready());
        let body = h.readiness();
        assert!(
            body.contains(&format!(
                "account alpha (7): standby, but its holder edge-1/host:12:ab has not renewed \
                 the lease since unix {} (20 s ago",
                since_ms / 1000
            )),
            "{body}"
        );
        assert!(
            h.render_metrics()
                .contains("giftd_account{name=\"alpha\",state=\"standby\"} 1\n")
        );
        h.set_account("alpha", None, AccountState::Serving);
        h.set_bot_link(Some(BotLink::Connecting));
        assert!(h.is_ready());
        assert!(h.readiness().contains("bot: not connected yet: signing in"));
        h.set_bot_link(Some(BotLink::Failed(
            "bot token refused: check bot.token".into(),
        )));
        assert!(!h.is_ready());
        let body = h.readiness();
        assert!(
            body.starts_with("not ready: the companion bot is not connected\n")
                && body.contains("bot: not connected: bot token refused: check bot.token\n"),
            "{body}"
        );
        assert!(h.render_metrics().contains("giftd_ready 0\n"));
        h.set_bot_link(Some(BotLink::Connected));
        assert!(h.is_ready());
        assert!(h.readiness().contains("bot: runs here\n"));
        assert!(h.render_metrics().contains("giftd_bot_connected 1\n"));
    }
}
