//! `giftd withdrawals`: the operator's view of the withdrawal queue and the moves only an
//! operator makes (approve, retry, cancel). Every move goes through the store's state machine,
//! like the worker's: a request that moved meanwhile is refused with what it is now.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

use super::{Env, aligned, open_store, utc};
use crate::gift::{ItemKey, UserId};
use crate::store::{Canceller, RequestState, Store, Withdrawal, WithdrawalFilter, WithdrawalMove};

#[derive(Debug, Subcommand)]
pub enum Action {
    /// The requests as a table, newest first (default: the open ones).
    List {
        /// Only this deposit account's.
        #[arg(long, value_name = "ID")]
        account: Option<UserId>,
        /// Only this player's.
        #[arg(long, value_name = "ID")]
        owner: Option<UserId>,
        /// Only requests in these states (requested, approval, waiting, claimed, sending,
        /// unknown, sent, failed, cancelled; comma-separated), or `all`.
        #[arg(long, value_name = "STATES", default_value = "open")]
        state: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One request in full.
    Show { id: i64 },
    /// Let a request waiting for approval go: up to the fee Telegram quoted, or `--stars`.
    Approve {
        id: i64,
        #[arg(long)]
        stars: Option<i64>,
    },
    /// Send a waiting request (too early, no Stars) back to the queue now.
    Retry { id: i64 },
    /// Cancel a request nothing was sent for yet; the item is the player's again.
    Cancel { id: i64 },
    /// Ask for a player's held item, as the player would (`ACCOUNT/MSG` as `giftd inventory`
    /// shows it).
    Request {
        #[arg(long, value_name = "ID")]
        owner: UserId,
        #[arg(long, value_name = "ACCOUNT/MSG")]
        item: String,
    },
}

pub async fn run(
    path: &Path,
    env: Env<'_>,
    action: Action,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let store = open_store(path, env).await?;
    match action {
        Action::List {
            account,
            owner,
            state,
            limit,
        } => {
            let states = parse_states(&state)?;
            let list = store
                .list_withdrawals(&WithdrawalFilter {
                    account_id: account,
                    owner,
                    states,
                    limit,
                })
                .await
                .context("cannot read the withdrawal requests")?;
            out.write_all(render_list(&list).as_bytes())?;
        }
        Action::Show { id } => {
            let w = get(&*store, id).await?;
            out.write_all(render_one(&w).as_bytes())?;
        }
        Action::Approve { id, stars } => {
            let w = get(&*store, id).await?;
            let moved = apply(&*store, WithdrawalMove::approve(&w, stars)).await?;
            writeln!(
                out,
                "withdrawal {id} approved up to {} Stars; it is back in the queue",
                moved.approved_stars.unwrap_or(0)
            )?;
        }
        Action::Retry { id } => {
            let w = get(&*store, id).await?;
            apply(&*store, WithdrawalMove::retry(&w)).await?;
            writeln!(out, "withdrawal {id} is back in the queue")?;
        }
        Action::Cancel { id } => {
            let w = get(&*store, id).await?;
            apply(&*store, WithdrawalMove::cancel(&w, Canceller::Operator)).await?;
            writeln!(
                out,
                "withdrawal {id} cancelled; the item is held for its player again"
            )?;
        }
        Action::Request { owner, item } => {
            let key = parse_key(&item)?;
            let id = store
                .create_withdrawal(owner, key)
                .await
                .with_context(|| format!("cannot request item {key} for user {owner}"))?;
            writeln!(out, "withdrawal {id} requested for item {key}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(store: &dyn Store, id: i64) -> anyhow::Result<Withdrawal> {
    store
        .withdrawal(id)
        .await
        .context("cannot read the withdrawal request")?
        .ok_or_else(|| {
            anyhow::anyhow!("no withdrawal {id}: `giftd withdrawals list --state all` lists them")
        })
}

async fn apply(store: &dyn Store, mv: WithdrawalMove) -> anyhow::Result<Withdrawal> {
    let id = mv.id;
    store
        .move_withdrawal(&mv)
        .await
        .with_context(|| format!("withdrawal {id} was not changed"))
}

fn parse_states(s: &str) -> anyhow::Result<Vec<RequestState>> {
    match s {
        "all" => Ok(Vec::new()),
        "open" => Ok(RequestState::ALL
            .into_iter()
            .filter(|r| !r.is_final())
            .collect()),
        list => list
            .split(',')
            .map(|name| {
                RequestState::parse(name.trim()).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--state: unknown state {name:?}; expected open, all, or some of \
                         requested, approval, waiting, claimed, sending, unknown, sent, failed, \
                         cancelled"
                    )
                })
            })
            .collect(),
    }
}

fn parse_key(s: &str) -> anyhow::Result<ItemKey> {
    let parsed = s
        .split_once('/')
        .and_then(|(a, m)| Some(ItemKey::new(a.parse().ok()?, m.parse().ok()?)));
    parsed.ok_or_else(|| {
        anyhow::anyhow!("--item: expected ACCOUNT/MSG as `giftd inventory` shows it, found {s:?}")
    })
}

fn ms_utc(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_owned(), |ms| utc(ms / 1000))
}

fn render_list(list: &[Withdrawal]) -> String {
    const HEADER: [&str; 9] = [
        "ID",
        "ITEM",
        "OWNER",
        "KIND",
        "STATE",
        "ATTEMPT",
        "STARS",
        "UNTIL (UTC)",
        "REASON",
    ];
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|w| {
            vec![
                w.id.to_string(),
                w.key.to_string(),
                w.owner.to_string(),
                w.kind.as_str().to_owned(),
                match w.wait_reason {
                    Some(r)
                        if matches!(w.state, RequestState::Waiting | RequestState::Approval) =>
                    {
                        format!("{} ({})", w.state, r.as_str())
                    }
                    _ => w.state.to_string(),
                },
                w.attempt.to_string(),
                w.fee_stars
                    .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                ms_utc(w.not_before_ms),
                w.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut s = aligned(&HEADER, &rows, &[]);
    let noun = if list.len() == 1 {
        "request"
    } else {
        "requests"
    };
    s.push_str(&format!("{} {noun}\n", list.len()));
    s
}

fn render_one(w: &Withdrawal) -> String {
    let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    format!(
        "withdrawal {}\n  item       {}\n  owner      {}\n  kind       {}\n  state      {}\n  \
         waiting    {}\n  attempt    {}\n  worker     {}\n  stars      {}\n  approved   {}\n  \
         form       {}\n  until      {}\n  sent at    {}\n  requested  {}\n  reason     {}\n",
        w.id,
        w.key,
        w.owner,
        w.kind.as_str(),
        w.state,
        w.wait_reason.map_or("-", |r| r.as_str()),
        w.attempt,
        w.worker.as_deref().unwrap_or("-"),
        opt(w.fee_stars),
        opt(w.approved_stars),
        opt(w.form_id),
        ms_utc(w.not_before_ms),
        ms_utc(w.sending_at_ms),
        utc(w.requested_at),
        w.reason.as_deref().unwrap_or("-"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_and_keys_parse_with_clear_errors() {
        assert_eq!(parse_states("all").unwrap(), Vec::new());
        assert_eq!(parse_states("open").unwrap().len(), 6);
        assert_eq!(
            parse_states("unknown, sending").unwrap(),
            [RequestState::Unknown, RequestState::Sending]
        );
        let e = parse_states("stuck").unwrap_err().to_string();
        assert!(e.contains("unknown state \"stuck\""), "{e}");
        assert_eq!(parse_key("100/22").unwrap(), ItemKey::new(100, 22));
        let e = parse_key("100-22").unwrap_err().to_string();
        assert!(e.contains("ACCOUNT/MSG"), "{e}");
    }
}
