//! `giftd inventory`: the items the store holds for one deposit account, one owner or nobody yet
//! (anonymous gifts waiting for an operator), as a table with a total.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use super::{Env, aligned, open_store, utc};
use crate::gift::{Item, Owner, UserId};

/// Which items `giftd inventory` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Which {
    Account(UserId),
    Owner(Owner),
}

/// `giftd inventory`: a table of the items the store holds.
pub(super) async fn run(
    path: &Path,
    env: Env<'_>,
    which: Which,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let store = open_store(path, env).await?;
    let mut items = match which {
        Which::Account(account) => store.load_items(account).await,
        Which::Owner(owner) => store.list_owner(owner).await,
    }
    .context("cannot read the inventory from the store")?;
    items.sort_by_key(|i| (i.received_at, i.key));
    out.write_all(render_table(&items).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The inventory as an aligned text table with a total line.
fn render_table(items: &[Item]) -> String {
    const HEADER: [&str; 8] = [
        "ITEM",
        "OWNER",
        "STATUS",
        "GIFT",
        "STARS",
        "COLLECTIBLE",
        "RECEIVED (UTC)",
        "TRANSFER",
    ];
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                i.key.to_string(),
                i.owner.to_string(),
                i.status.to_string(),
                i.gift_id.to_string(),
                i.stars.to_string(),
                i.unique
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |u| format!("{} #{}", u.slug, u.number)),
                utc(i.received_at),
                match i.transfer_stars {
                    Some(stars) => format!("{stars} stars"),
                    None => "free".to_owned(),
                },
            ]
        })
        .collect();
    // Stars right-aligned, the rest left-aligned.
    let mut s = aligned(&HEADER, &rows, &[4]);
    let stars: i64 = items.iter().map(|i| i.stars).sum();
    let noun = if items.len() == 1 { "item" } else { "items" };
    s.push_str(&format!("{} {noun}, {stars} stars\n", items.len()));
    s
}

#[cfg(test)]
mod tests {
    use super::super::tests::{EMBEDDED, check, run_cli};
    use super::*;

    #[tokio::test]
    async fn inventory_of_an_empty_store() {
        check(
            run_cli(Some(EMBEDDED), &[], &["inventory", "--owner", "42"]).await,
            true,
            "ITEM  OWNER  STATUS  GIFT  STARS  COLLECTIBLE  RECEIVED (UTC)  TRANSFER
             0 items, 0 stars"
                .replace("\n             ", "\n")
                .as_str(),
        );
    }

    #[tokio::test]
    async fn inventory_with_a_bad_config_fails_with_the_problem() {
        let (ok, out) = run_cli(
            Some("[telegram]\napi_id = 1\n"),
            &[],
            &["inventory", "--unattributed"],
        )
        .await;
        assert!(!ok);
        assert_eq!(
            out,
            "error: telegram.api_hash: missing: set it in the file or in TELEGRAM_API_HASH (get it from https://my.telegram.org)"
        );
    }

    #[test]
    fn tables() {
        let item = |msg_id, owner, stars, unique: bool| Item {
            key: crate::gift::ItemKey::new(100, msg_id),
            owner,
            gift_id: 5,
            stars,
            unique: unique.then(|| {
                Box::new(crate::gift::UniqueInfo {
                    collectible_id: 9,
                    slug: "PlushPepe-12".to_owned(),
                    number: 12,
                    value: Default::default(),
                })
            }),
            status: crate::gift::Status::Held,
            received_at: 1_700_000_000,
            convert_stars: None,
            transfer_stars: unique.then_some(25),
            can_transfer_at: None,
            upgraded_from: None,
        };
        assert_eq!(
            render_table(&[
                item(1, Owner::User(42), 15, false),
                item(22, Owner::Unattributed, 2500, true)
            ]),
            "ITEM    OWNER         STATUS  GIFT  STARS  COLLECTIBLE       RECEIVED (UTC)    TRANSFER
100/1   42            held    5        15  -                 2023-11-14 22:13  free
100/22  unattributed  held    5      2500  PlushPepe-12 #12  2023-11-14 22:13  25 stars
2 items, 2515 stars
"
        );
    }
}
