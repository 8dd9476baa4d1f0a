//! The gift catalogue kept by the store: what `Store::gift_types` reads back at start is what
//! the batches wrote, and a later sighting without a title never erases a known one.

use giftd::gift::{GiftType, Owner};
use giftd::store::ChangeBatch;

use crate::store_contract::{deposit, regular};
use crate::support::{Backend, unique_id};

contract!(the_catalogue_is_read_back_with_its_titles);

async fn the_catalogue_is_read_back_with_its_titles(backend: Backend) {
    let store = backend.open().await;
    let (account, player) = (unique_id(), unique_id());
    let (bear, untitled) = (unique_id(), unique_id());
    let mut item = regular(account, 1, Owner::User(player));
    item.gift_id = bear;
    let mut batch = deposit(vec![item]);
    batch.gifts = vec![
        GiftType {
            gift_id: bear,
            title: Some("Bear".into()),
            stars: 15,
            unique: false,
        },
        GiftType {
            gift_id: untitled,
            title: None,
            stars: 50,
            unique: true,
        },
    ];
    store.apply_batch(&batch).await.unwrap();
    // Seen again without a title (a path that could not tell): the title stays.
    store
        .apply_batch(&ChangeBatch {
            gifts: vec![GiftType {
                gift_id: bear,
                title: None,
                stars: 15,
                unique: false,
            }],
            ..ChangeBatch::default()
        })
        .await
        .unwrap();
    let kinds = store.gift_types().await.unwrap();
    let find = |id: i64| kinds.iter().find(|g| g.gift_id == id).cloned();
    assert_eq!(
        find(bear),
        Some(GiftType {
            gift_id: bear,
            title: Some("Bear".into()),
            stars: 15,
            unique: false,
        })
    );
    assert_eq!(
        find(untitled),
        Some(GiftType {
            gift_id: untitled,
            title: None,
            stars: 50,
            unique: true,
        })
    );
}
