//! The gift catalogue in the embedded store: every kind of gift seen, with the title and price
//! Telegram gave it, read back at start so a restarted daemon names gifts before Telegram is
//! asked again.
//!
//! Must never: write; the catalogue is written with the batches that carry its rows.

use libsql::Connection;

use super::sql_err;
use crate::gift::GiftType;
use crate::store::StoreError;

/// Every row of `gifts`, by gift id.
pub(super) async fn gift_types(conn: &Connection) -> Result<Vec<GiftType>, StoreError> {
    let mut rows = conn
        .query(
            "SELECT gift_id, title, stars, is_unique FROM gifts ORDER BY gift_id",
            (),
        )
        .await
        .map_err(sql_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.map_err(sql_err)? {
        out.push(GiftType {
            gift_id: row.get(0).map_err(sql_err)?,
            title: row.get(1).map_err(sql_err)?,
            stars: row.get(2).map_err(sql_err)?,
            unique: row.get(3).map_err(sql_err)?,
        });
    }
    Ok(out)
}
