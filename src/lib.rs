//! giftd
