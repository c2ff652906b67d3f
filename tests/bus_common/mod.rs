//! What the bus tests share: a store that does not fsync (the tests check behaviour, not
//! durability, which the store's own tests cover).

use std::sync::Arc;

use evlog::{Durability, Store, StoreOptions};

/// A store in `dir` without fsyncs.
pub fn store(dir: &std::path::Path) -> Arc<Store> {
    Arc::new(
        StoreOptions::new()
            .durability(Durability::Never)
            .open(dir)
            .unwrap(),
    )
}
