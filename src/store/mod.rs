//! Stores (being written).
