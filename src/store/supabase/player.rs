//! Players' languages in the Supabase store. Semantics in [`crate::store::player`].

use serde::Deserialize;
use serde_json::json;

use super::SupabaseStore;
use crate::gift::UserId;
use crate::store::{PlayerLanguage, StoreError};

/// A player's language as `giftd_note_language` and `giftd_player_language` return it.
#[derive(Debug, Deserialize)]
struct LanguageRow {
    code: String,
    chosen: bool,
}

impl From<LanguageRow> for PlayerLanguage {
    fn from(r: LanguageRow) -> Self {
        PlayerLanguage {
            code: r.code,
            chosen: r.chosen,
        }
    }
}

/// [`Store::note_language`](crate::store::Store::note_language), through PostgREST.
pub(super) async fn note_language(
    store: &SupabaseStore,
    user: UserId,
    code: &str,
    chosen: bool,
) -> Result<PlayerLanguage, StoreError> {
    crate::store::player::check_language_code(code)?;
    let row: LanguageRow = store
        .rpc(
            "giftd_note_language",
            json!({ "p_user_id": user, "p_lang": code, "p_chosen": chosen }),
        )
        .await?;
    Ok(row.into())
}

/// [`Store::language`](crate::store::Store::language), through PostgREST.
pub(super) async fn language(
    store: &SupabaseStore,
    user: UserId,
) -> Result<Option<PlayerLanguage>, StoreError> {
    let row: Option<LanguageRow> = store
        .rpc("giftd_player_language", json!({ "p_user_id": user }))
        .await?;
    Ok(row.map(Into::into))
}
