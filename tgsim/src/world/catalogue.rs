//! The gift catalogue: the default gifts, their prices in Stars, conversion and upgrade prices,
//! edition limits, and the `starGift` objects built from them.

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use super::{RpcErr, World};
use crate::tlb;

/// A gift in the catalogue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GiftInfo {
    /// Catalogue id (`starGift.id`).
    pub id: i64,
    /// Price in stars.
    pub stars: i64,
    /// Stars the recipient gets when converting it.
    pub convert_stars: i64,
    /// Stars to upgrade it to a collectible, if upgradable.
    pub upgrade_stars: Option<i64>,
    /// Title.
    pub title: String,
    /// Limited edition total, if limited.
    pub limited_total: Option<i32>,
    /// Limited edition: how many are left to buy (`starGift.availability_remains`); 0 is sold
    /// out (`sold_out`), and buying one answers `STARGIFT_USAGE_LIMITED`.
    #[serde(default)]
    pub limited_remains: Option<i32>,
    /// When one was first and last bought (unix seconds). Telegram sends both on a sold-out
    /// gift only (`starGift.first_sale_date`/`last_sale_date`, "for sold out gifts only"; they
    /// share flag 1 with `sold_out`, so a sold-out gift without them does not decode).
    #[serde(default)]
    pub first_sale_date: Option<i32>,
    /// See `first_sale_date`.
    #[serde(default)]
    pub last_sale_date: Option<i32>,
}

/// Default catalogue: (id, stars, convert, upgrade, title, limited total).
type CatalogueRow = (i64, i64, i64, Option<i64>, &'static str, Option<i32>);

pub(super) const CATALOGUE: &[CatalogueRow] = &[
    (5170145012310081615, 15, 13, Some(25), "Heart", None),
    (5170233102089322756, 15, 13, Some(25), "Bear", None),
    (5170250947678437525, 25, 21, Some(50), "Gift Box", None),
    (5168103777563050263, 25, 21, Some(50), "Rose", None),
    (5170144170496491616, 50, 43, Some(100), "Cake", None),
    (5170314324215857265, 50, 43, None, "Bouquet", None),
    (5170564780938756245, 50, 43, Some(100), "Rocket", None),
    (5168043875654172773, 100, 85, Some(200), "Trophy", None),
    (5170690322832818290, 100, 85, Some(200), "Ring", None),
    (5170521118301225164, 100, 85, None, "Diamond", None),
    (
        5936013938331222567,
        350,
        300,
        Some(500),
        "Plush Pepe",
        Some(10_000),
    ),
];

/// `STARGIFT_USAGE_LIMITED` when a limited gift is sold out.
pub(super) fn check_available(g: &GiftInfo) -> Result<(), RpcErr> {
    if g.limited_total.is_some() && g.limited_remains == Some(0) {
        return Err(RpcErr::bad("STARGIFT_USAGE_LIMITED"));
    }
    Ok(())
}

impl World {
    /// The catalogue.
    pub fn catalogue(&self) -> Vec<GiftInfo> {
        self.catalogue.clone()
    }

    pub(super) fn gift(&self, id: i64) -> Result<GiftInfo, RpcErr> {
        self.catalogue
            .iter()
            .find(|g| g.id == id)
            .cloned()
            .ok_or_else(|| RpcErr::bad("STARGIFT_INVALID"))
    }

    pub(super) fn tl_star_gift(&self, g: &GiftInfo) -> tl::enums::StarGift {
        let sold_out = g.limited_total.is_some() && g.limited_remains == Some(0);
        let now = self.now32();
        let mut t = tl::types::StarGift {
            limited: g.limited_total.is_some(),
            sold_out,
            birthday: false,
            require_premium: false,
            limited_per_user: false,
            peer_color_available: false,
            auction: false,
            id: g.id,
            sticker: tlb::sticker(g.id),
            stars: g.stars,
            availability_remains: g.limited_remains.filter(|_| g.limited_total.is_some()),
            availability_total: g.limited_total,
            availability_resale: None,
            convert_stars: g.convert_stars,
            first_sale_date: sold_out.then(|| g.first_sale_date.unwrap_or(now)),
            last_sale_date: sold_out.then(|| g.last_sale_date.unwrap_or(now)),
            upgrade_stars: g.upgrade_stars,
            resell_min_stars: None,
            title: Some(g.title.clone()),
            released_by: None,
            per_user_total: None,
            per_user_remains: None,
            locked_until_date: None,
            auction_slug: None,
            gifts_per_round: None,
            auction_start_date: None,
            upgrade_variants: None,
            background: None,
        };
        self.apply_gift_rules(&mut t, None);
        tl::enums::StarGift::Gift(t)
    }

    /// One fewer left of a limited gift.
    pub(super) fn take_one(&mut self, gift_id: i64) {
        let now = self.now32();
        if let Some(g) = self.catalogue.iter_mut().find(|g| g.id == gift_id)
            && g.limited_total.is_some()
            && let Some(left) = g.limited_remains.as_mut()
        {
            *left = (*left - 1).max(0);
            g.first_sale_date.get_or_insert(now);
            g.last_sale_date = Some(now);
        }
    }

    fn catalogue_mut(&mut self, gift_id: i64) -> Result<&mut GiftInfo, RpcErr> {
        self.catalogue
            .iter_mut()
            .find(|g| g.id == gift_id)
            .ok_or_else(|| RpcErr::bad("STARGIFT_INVALID"))
    }

    /// Makes a catalogue gift limited: `total` in the edition, `remains` left to buy.
    pub fn set_gift_limit(&mut self, gift_id: i64, total: i32, remains: i32) -> Result<(), RpcErr> {
        if total <= 0 || remains < 0 || remains > total {
            return Err(RpcErr::bad("LIMIT_INVALID"));
        }
        let g = self.catalogue_mut(gift_id)?;
        g.limited_total = Some(total);
        g.limited_remains = Some(remains);
        Ok(())
    }

    /// Sells a catalogue gift out (limited with none left; an unlimited gift becomes a limited
    /// edition of 1, sold).
    pub fn sell_out_gift(&mut self, gift_id: i64) -> Result<(), RpcErr> {
        let now = self.now32();
        let g = self.catalogue_mut(gift_id)?;
        g.limited_total = Some(g.limited_total.unwrap_or(1).max(1));
        g.limited_remains = Some(0);
        g.first_sale_date.get_or_insert(now);
        g.last_sale_date.get_or_insert(now);
        Ok(())
    }

    /// Changes a catalogue gift's price (forms issued before answer `STARS_FORM_AMOUNT_MISMATCH`).
    pub fn set_gift_price(&mut self, gift_id: i64, stars: i64) -> Result<(), RpcErr> {
        if stars <= 0 {
            return Err(RpcErr::bad("STARS_AMOUNT_INVALID"));
        }
        self.catalogue_mut(gift_id)?.stars = stars;
        Ok(())
    }
}
