//! Leases in the Supabase store: a lease as the `giftd_*_lease` functions return it (with the
//! database's clock, the one every instance shares), and the calls that take, renew, release
//! and read one.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::SupabaseStore;
use crate::store::lease::{check_lease_args, millis};
use crate::store::{Epoch, Lease, LeaseAnswer, StoreError};

/// A lease as the giftd_*_lease functions return it.
#[derive(Debug, Deserialize)]
struct LeaseRow {
    name: String,
    holder: String,
    epoch: Epoch,
    expires_at_ms: i64,
    db_now_ms: i64,
}

impl LeaseRow {
    fn into_lease(self) -> Lease {
        Lease {
            name: self.name,
            holder: self.holder,
            epoch: self.epoch,
            expires_at_ms: self.expires_at_ms,
            db_now_ms: self.db_now_ms,
        }
    }
}

#[derive(Debug, Deserialize)]
struct LeaseReply {
    held: bool,
    lease: Option<LeaseRow>,
}

impl LeaseReply {
    fn into_answer(self) -> LeaseAnswer {
        match (self.held, self.lease) {
            (true, Some(l)) => LeaseAnswer::Held(l.into_lease()),
            (_, l) => LeaseAnswer::Refused(l.map(LeaseRow::into_lease)),
        }
    }
}

/// [`Store::take_lease`](crate::store::Store::take_lease), through PostgREST.
pub(super) async fn take_lease(
    store: &SupabaseStore,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<LeaseAnswer, StoreError> {
    check_lease_args(name, holder, Some(ttl))?;
    let a: LeaseReply = store
        .rpc(
            "giftd_take_lease",
            json!({ "p_name": name, "p_holder": holder, "p_ttl_ms": millis(ttl) }),
        )
        .await?;
    Ok(a.into_answer())
}

/// [`Store::renew_lease`](crate::store::Store::renew_lease), through PostgREST.
pub(super) async fn renew_lease(
    store: &SupabaseStore,
    name: &str,
    holder: &str,
    epoch: Epoch,
    ttl: Duration,
) -> Result<LeaseAnswer, StoreError> {
    check_lease_args(name, holder, Some(ttl))?;
    let a: LeaseReply = store
        .rpc(
            "giftd_renew_lease",
            json!({
                "p_name": name, "p_holder": holder, "p_epoch": epoch,
                "p_ttl_ms": millis(ttl),
            }),
        )
        .await?;
    Ok(a.into_answer())
}

/// [`Store::release_lease`](crate::store::Store::release_lease), through PostgREST.
pub(super) async fn release_lease(
    store: &SupabaseStore,
    name: &str,
    holder: &str,
    epoch: Epoch,
) -> Result<bool, StoreError> {
    check_lease_args(name, holder, None)?;
    store
        .rpc(
            "giftd_release_lease",
            json!({ "p_name": name, "p_holder": holder, "p_epoch": epoch }),
        )
        .await
}

/// [`Store::lease`](crate::store::Store::lease), through PostgREST.
pub(super) async fn lease(store: &SupabaseStore, name: &str) -> Result<Option<Lease>, StoreError> {
    let row: Option<LeaseRow> = store
        .rpc("giftd_get_lease", json!({ "p_name": name }))
        .await?;
    Ok(row.map(LeaseRow::into_lease))
}
