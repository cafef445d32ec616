//! The instruction queue of local-mcp, for the server and for embedders.
//!
//! A person queues instructions; an agent takes them one at a time, oldest first,
//! each exactly once. This crate holds the domain: the types ([`Instruction`],
//! [`AgentId`], [`Settings`], ...) with their invariants checked at construction,
//! the [`Store`] port that persistence implements (with [`MemoryStore`] here and a
//! SQLite store in `queue-store`), and — with the default `runtime` feature — the
//! async [`Service`] that waits for instructions, wakes on change and fans out
//! events.
//!
//! The pure part does no I/O and reads no clock: times and ids come in as
//! arguments. Build with `--no-default-features` for it alone, without tokio.
//!
//! ```
//! use std::sync::Arc;
//! use queue_core::{AgentId, FetchOutcome, MemoryStore, Service};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), queue_core::QueueError> {
//! let service = Service::builder(Arc::new(MemoryStore::new())).build()?;
//! service.add("write the failing test").await?;
//! let fetch = service.next_instruction(AgentId::parse("my-agent")?).await?;
//! let FetchOutcome::Instruction(item) = fetch.outcome else {
//!     panic!("the queued instruction comes first");
//! };
//! assert_eq!(item.content.as_str(), "write the failing test");
//! assert_eq!(fetch.remaining_pending, 0);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod audit;
mod error;
mod memory;
pub mod rules;
mod settings;
mod store;
mod types;

#[cfg(feature = "runtime")]
mod service;
#[cfg(feature = "runtime")]
mod waiters;

pub use audit::{Audit, AuditEntry};
pub use error::{Conflict, QueueError, StoreError, ValidationError};
pub use memory::{EVENT_RETENTION, MemoryStore};
pub use rules::check_reorder;
pub use settings::{
    DEFAULT_EMPTY_RESPONSE, MAX_EMPTY_RESPONSE_CHARS, MAX_STALE_SECONDS, MAX_WAIT_SECONDS, Setting,
    SettingValue, Settings, SettingsPatch, StoredSettings,
};
pub use store::{
    CallTicket, Change, ChangeHook, Claim, Counts, Event, Listing, Overview, Page, QueueCounts,
    Reordered, StatusFilter, Store, Write,
};
pub use types::{
    Agent, AgentId, AgentState, Caller, Content, Instruction, InstructionId, NewInstruction,
    QueueName, ResultType, Status, Timestamp,
};

#[cfg(feature = "runtime")]
pub use service::{
    Clock, EndReason, Fetch, FetchOutcome, IdSource, Inline, Listed, Offload, RandomIds, Service,
    ServiceBuilder, ServiceOptions, SystemClock,
};
