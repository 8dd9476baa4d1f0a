//! Configuration (the loader is being written; these resolved types are what the rest of giftd
//! consumes).

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// Where the mirror of the inventory lives.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// Embedded SQLite database file (the default when no `[supabase]` section is given).
    Embedded(EmbeddedStoreConfig),
    /// Supabase (or any PostgREST) database.
    Supabase(SupabaseConfig),
}

#[derive(Debug, Clone)]
pub struct EmbeddedStoreConfig {
    /// The SQLite file, by default `<state_dir>/giftd.sqlite3`.
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct SupabaseConfig {
    /// Base URL of the PostgREST API, e.g. `https://<project>.supabase.co/rest/v1` or
    /// `http://127.0.0.1:3000` for a bare PostgREST.
    pub rest_url: String,
    /// The `service_role` key (a JWT); sent as `apikey` and `Authorization: Bearer`.
    pub service_role_key: Secret,
    /// Timeout of each HTTP request.
    pub request_timeout: Duration,
}
