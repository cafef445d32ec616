//! The contract run against queue-core's `MemoryStore`, the reference model, and
//! against `FaultyStore` without faults, which must keep it too.

use std::sync::Arc;

use queue_core::MemoryStore;
use store_contract::FaultyStore;

mod memory {
    store_contract::tests!(queue_core::MemoryStore::new);
}

mod faulty_without_faults {
    store_contract::tests!(|| super::FaultyStore::new(std::sync::Arc::new(
        super::MemoryStore::new()
    )));
}

mod faulty_forwarding_shortcuts {
    store_contract::tests!(
        || super::FaultyStore::new(super::Arc::new(super::MemoryStore::new()))
            .forwarding_shortcuts()
    );
}
