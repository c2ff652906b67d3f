//! What the `serve` tests share: a store on the fault-injecting file system, and poisoning it.

#![cfg(feature = "fault-injection")]

use std::sync::Arc;

use evlog::io::fault::{Fault, FaultFs};
use evlog::{Durability, EventData, ExpectedVersion, Store, StoreOptions};

/// A store at `/store` on a fresh fault-injecting file system, fsyncing every append.
pub fn fault_store() -> (FaultFs, Arc<Store>) {
    let fs = FaultFs::new();
    let store = StoreOptions::new()
        .durability(Durability::Always)
        .vfs(Arc::new(fs.clone()))
        .open("/store")
        .unwrap();
    (fs, Arc::new(store))
}

/// Fails every later file operation, so that the next append poisons the store.
pub fn poison(fs: &FaultFs, store: &Store) {
    fs.set_fault(Some(Fault::PersistentEio(fs.ops())));
    let e = EventData::new("T", b"{}".to_vec());
    assert!(store.append("a", ExpectedVersion::Any, &[e]).is_err());
    assert!(store.is_poisoned());
}
