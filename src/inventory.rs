//! The live inventory (being written).
