//! Collectible values and resale listings (`starGiftUnique.value_*`, `resell_amount`,
//! `resale_ton_only`) and `payments.getUniqueStarGift`.

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use super::Price;
use crate::world::{RpcErr, World};

/// A collectible's value and resale listing (`starGiftUnique.value_*`, `resell_amount`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct UniqueValue {
    /// `value_amount`, in the smallest unit of `value_currency`.
    pub value_amount: Option<i64>,
    /// `value_currency`: an ISO 4217 code (e.g. "USD"), set with `value_amount`.
    pub value_currency: Option<String>,
    /// `value_usd_amount`: the value in US cents.
    pub value_usd_amount: Option<i64>,
    /// `resell_amount`: the listing's prices (Stars and/or TON); empty = not listed.
    pub resell: Vec<Price>,
    /// `resale_ton_only`: the listing accepts TON only.
    pub resale_ton_only: bool,
}

impl World {
    /// Sets a collectible's value and listing.
    pub fn set_unique_value(&mut self, unique_id: i64, v: UniqueValue) -> Result<(), RpcErr> {
        if !self.uniques.contains_key(&unique_id) {
            return Err(RpcErr::bad("STARGIFT_NOT_FOUND"));
        }
        if v.value_amount.is_some() != v.value_currency.is_some() {
            return Err(RpcErr::bad("VALUE_CURRENCY_REQUIRED"));
        }
        self.cases.values.insert(unique_id, v);
        Ok(())
    }

    /// Sets the value and listing of the collectible `owner` holds as saved gift `msg_id`;
    /// returns its collectible id.
    pub fn set_saved_unique_value(
        &mut self,
        owner: i64,
        msg_id: i32,
        v: UniqueValue,
    ) -> Result<i64, RpcErr> {
        let uid = self
            .saved_gift(owner, msg_id)?
            .unique
            .ok_or_else(|| RpcErr::bad("STARGIFT_NOT_UNIQUE"))?;
        self.set_unique_value(uid, v)?;
        Ok(uid)
    }

    /// `payments.getUniqueStarGift`: the collectible with this slug as it is now, with its
    /// current owner (`owner_id`; absent once it was burned by crafting, which the `burned`
    /// flag says) and that owner in `users`.
    pub fn unique_star_gift(
        &self,
        caller: i64,
        slug: &str,
    ) -> Result<tl::enums::payments::UniqueStarGift, RpcErr> {
        let u = self
            .uniques
            .values()
            .find(|u| u.slug == slug)
            .cloned()
            .ok_or_else(|| RpcErr::bad("STARGIFT_SLUG_INVALID"))?;
        let holder = self
            .accounts
            .iter()
            .find(|(_, a)| a.saved.values().any(|s| s.unique == Some(u.id)))
            .map(|(&id, _)| id);
        let mut gift = self.tl_unique(&u, holder.unwrap_or(caller));
        if let (tl::enums::StarGift::Unique(g), None) = (&mut gift, holder) {
            g.owner_id = None;
        }
        let users: Vec<i64> = std::iter::once(caller).chain(holder).collect();
        Ok(tl::enums::payments::UniqueStarGift::Gift(
            tl::types::payments::UniqueStarGift {
                gift,
                chats: Vec::new(),
                users: self.tl_users(&users, caller),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use grammers_tl_types::{Deserializable, Serializable};

    use grammers_tl_types as tl;

    use crate::world::gift_cases::testkit::*;
    use crate::world::gift_cases::{Price, UniqueValue};

    #[test]
    fn values_and_ton_listings_are_on_the_wire() {
        let (mut w, dep, a, _) = world();
        let held = send_unique(&mut w, a, dep);
        w.set_saved_unique_value(
            dep,
            held.msg_id,
            UniqueValue {
                value_amount: Some(12_345),
                value_currency: Some("USD".into()),
                value_usd_amount: Some(12_345),
                resell: vec![Price::Stars(5_000), Price::Ton(2_000_000_000)],
                resale_ton_only: false,
            },
        )
        .expect("valued");
        let s = saved(&w, dep, held.msg_id);
        let bytes = tl::enums::SavedStarGift::Gift(s).to_bytes();
        let tl::enums::SavedStarGift::Gift(s) =
            tl::enums::SavedStarGift::from_bytes(&bytes).expect("decodes");
        let tl::enums::StarGift::Unique(u) = s.gift else {
            panic!("a collectible")
        };
        assert_eq!(u.value_currency.as_deref(), Some("USD"));
        assert_eq!(u.value_usd_amount, Some(12_345));
        assert_eq!(
            u.resell_amount,
            Some(vec![
                Price::Stars(5_000).tl(),
                Price::Ton(2_000_000_000).tl()
            ])
        );
        let bad = w.set_saved_unique_value(
            dep,
            held.msg_id,
            UniqueValue {
                value_amount: Some(1),
                ..UniqueValue::default()
            },
        );
        assert!(bad.is_err(), "an amount needs its currency");
    }
}
