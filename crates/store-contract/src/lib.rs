//! The contract of queue-core's [`Store`] port as a test suite any store can run,
//! and [`FaultyStore`], a wrapper that makes a store fail or race on cue.
//!
//! A store implementation proves it keeps the contract by running every clause
//! against a fresh store of its own. In its tests:
//!
//! ```
//! // One #[test] per clause, each on a store the closure makes.
//! mod contract {
//!     store_contract::tests!(|| queue_core::MemoryStore::new());
//! }
//! ```
//!
//! The closure may return the store itself (a [`queue_core::MemoryStore`]), an
//! `Arc` or `Box` of one, a `(store, guard)` pair whose guard (a temporary folder,
//! a scratch database) lives as long as the clause runs, or `None` to skip the
//! clause where its backing service is not available. See [`StoreHandle`].
//!
//! Without the macro, [`CLAUSES`] lists the clauses by name and [`run`] runs one.
//!
//! Only queue-core's pure part is needed: this crate builds on queue-core without
//! its default `runtime` feature.
#![deny(missing_docs)]

use std::sync::Arc;

use queue_core::{MemoryStore, Store};

pub mod clauses;
pub mod faults;
pub mod fixtures;

pub use faults::{FaultyStore, Method};

/// What a contract test's closure returns: something that holds a store for as
/// long as it lives.
pub trait StoreHandle {
    /// The store to run a clause on; `None` skips the clause.
    fn store(&self) -> Option<&dyn Store>;
}

impl StoreHandle for MemoryStore {
    fn store(&self) -> Option<&dyn Store> {
        Some(self)
    }
}

impl StoreHandle for FaultyStore {
    fn store(&self) -> Option<&dyn Store> {
        Some(self)
    }
}

impl<S: Store> StoreHandle for Arc<S> {
    fn store(&self) -> Option<&dyn Store> {
        Some(&**self)
    }
}

impl StoreHandle for Arc<dyn Store> {
    fn store(&self) -> Option<&dyn Store> {
        Some(&**self)
    }
}

impl<S: Store> StoreHandle for Box<S> {
    fn store(&self) -> Option<&dyn Store> {
        Some(&**self)
    }
}

impl StoreHandle for Box<dyn Store> {
    fn store(&self) -> Option<&dyn Store> {
        Some(&**self)
    }
}

/// A store and a guard for what it needs (a folder, a database): the store is
/// dropped first.
impl<H: StoreHandle, G> StoreHandle for (H, G) {
    fn store(&self) -> Option<&dyn Store> {
        self.0.store()
    }
}

/// No store: the clause is skipped (for a store whose server is not configured).
impl<H: StoreHandle> StoreHandle for Option<H> {
    fn store(&self) -> Option<&dyn Store> {
        self.as_ref().and_then(StoreHandle::store)
    }
}

/// A clause of the contract: drives a fresh store, panics where it breaks the
/// contract.
pub type Clause = fn(&dyn Store);

/// Runs `clause` on the store `make` returns, dropping it afterwards; skipped when
/// the handle holds no store.
pub fn run<H: StoreHandle>(clause: Clause, make: impl FnOnce() -> H) {
    let handle = make();
    if let Some(store) = handle.store() {
        clause(store);
    }
}

/// Runs every clause, each on a fresh store from `make`, in the order of
/// [`CLAUSES`]; stops at the first that fails, whose panic says what differed.
/// [`tests!`] gives each clause a test of its own instead.
pub fn run_all<H: StoreHandle>(make: impl Fn() -> H) {
    for (_, clause) in CLAUSES {
        run(*clause, &make);
    }
}

/// The clauses of the contract, listed once: hands the list to
/// [`__clauses_apply!`](crate::__clauses_apply) with what to build from it.
#[doc(hidden)]
#[macro_export]
macro_rules! __clauses {
    ($($then:tt)*) => {
        $crate::__clauses_apply! {
            [$($then)*]
            adds_go_to_the_end_and_are_listed_in_order,
            claims_take_the_oldest_exactly_once,
            only_the_newest_call_of_an_agent_may_claim,
            edit_and_delete_only_while_pending,
            requeue_copies_a_consumed_one_to_the_end,
            reorder_needs_exactly_the_pending_set,
            unclaim_puts_it_back_at_the_head,
            listing_orders_and_pages,
            agents_record_calls,
            begin_and_claim_starts_a_call_and_takes_the_head,
            settings_are_saved_by_key,
            every_change_and_only_changes_are_events,
            queued_writes_make_their_calls_then_report_done,
            queues_keep_their_own_order_counts_and_listings,
            an_addressed_instruction_is_taken_only_by_its_agent,
            agents_are_told_apart_per_queue,
            a_queue_exists_once_used,
        }
    };
}

/// What is built from the list of clauses: the [`CLAUSES`] table, or the tests
/// [`tests!`] expands to.
#[doc(hidden)]
#[macro_export]
macro_rules! __clauses_apply {
    ([@table] $($name:ident),* $(,)?) => {
        /// Every clause of the contract, by name.
        pub const CLAUSES: &[(&str, $crate::Clause)] =
            &[$((stringify!($name), $crate::clauses::$name as $crate::Clause)),*];
    };
    ([@tests $make:expr] $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::run($crate::clauses::$name, $make);
            }
        )*
    };
}

__clauses!(@table);

/// Expands to one `#[test]` per clause of the contract (the names of
/// [`CLAUSES`]), each running on a fresh store from the closure given (see
/// [`StoreHandle`] for what it may return). Invoke it once per module.
#[macro_export]
macro_rules! tests {
    ($make:expr) => {
        $crate::__clauses!(@tests $make);
    };
}
