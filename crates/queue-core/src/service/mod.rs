//! The async queue service: every operation of the product on top of a [`Store`],
//! the waiting `next_instruction` call, and the fan-out of change events.
//!
//! Each waiting call is registered by queue ([`Waiters`]); a change wakes only
//! the calls it can concern, at once for local changes, and through
//! [`Service::watch`] for changes made by other processes, which it finds by
//! polling the store's cheap change token and republishes. Store calls go through an
//! [`Offload`] so a blocking store (SQLite) never stalls the async threads.
//!
//! This file holds the [`Service`] itself, its builder and options, and the seams
//! it is built from (clock, ids, offload). The rest is split by concern:
//!
//! - `operations`: what people and adapters ask of the queue (add, edit, list, ...);
//! - `call`: one waiting `get_user_request` call, from its start to its end;
//! - `handoff`: an add that claims for a call already waiting, in its own commit;
//! - `writes`: store writes whose value goes to an undo when nobody reads it;
//! - `undelivered`: the one owner of a claimed instruction not yet delivered,
//!   which puts it back first in line unless told it was delivered;
//! - `events`: publishing events and picking up other processes' changes;
//! - `shutdown`: stopping, and waiting for the work in progress.

mod call;
mod events;
mod handoff;
mod operations;
mod shutdown;
mod undelivered;
mod writes;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, oneshot, watch};

use crate::audit::{Audit, AuditEntry};
use crate::error::{QueueError, StoreError};
use crate::settings::Settings;
use crate::store::{Event, Store};
use crate::types::{InstructionId, Timestamp};
use crate::waiters::Waiters;

pub use call::{EndReason, Fetch, FetchOutcome};
pub use operations::Listed;
pub(crate) use undelivered::Undelivered;

/// Where the time comes from.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_micros(micros)
    }
}

/// Where new instruction ids come from.
pub trait IdSource: Send + Sync {
    /// A fresh, never used id.
    fn next_id(&self) -> InstructionId;
}

/// Random time-ordered ids (UUID v7).
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn next_id(&self) -> InstructionId {
        InstructionId::from_uuid(uuid::Uuid::now_v7())
    }
}

/// Runs a blocking job somewhere it may block. The job must run exactly once.
pub trait Offload: Send + Sync {
    /// Runs `job`, now or on another thread.
    fn run(&self, job: Box<dyn FnOnce() + Send>);
}

/// Runs jobs on the calling thread: right for a store that never blocks, such as
/// [`MemoryStore`](crate::MemoryStore).
#[derive(Clone, Copy, Debug, Default)]
pub struct Inline;

impl Offload for Inline {
    fn run(&self, job: Box<dyn FnOnce() + Send>) {
        job()
    }
}

/// Tuning for a [`Service`]; the defaults suit a desktop server.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Settings in force where the store has none saved.
    pub defaults: Settings,
    /// How often [`Service::watch`] checks for changes made by other processes
    /// while a call is waiting: the bound on cross-process wake-up latency.
    pub poll_interval: Duration,
    /// How often it checks while nobody waits but someone subscribes to events
    /// (a live web page): fast enough to look instant, cheap enough to leave on.
    pub listen_poll_interval: Duration,
    /// How often it checks when nobody waits or listens: an idle server then
    /// costs next to nothing.
    pub idle_poll_interval: Duration,
    /// How many events a slow subscriber may fall behind before it is told it lagged.
    pub event_buffer: usize,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            defaults: Settings::default(),
            poll_interval: Duration::from_millis(5),
            listen_poll_interval: Duration::from_millis(25),
            idle_poll_interval: Duration::from_millis(100),
            event_buffer: 4_096,
        }
    }
}

/// The queue service. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Service {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    offload: Arc<dyn Offload>,
    options: ServiceOptions,
    /// The waiting calls, woken by the events that concern them (local ones at
    /// once, foreign ones through `watch`).
    waiters: Waiters,
    /// Wakes `watch`: to publish what `unpublished` says is waiting, and to
    /// shorten its poll interval when a call starts waiting.
    kick: Notify,
    /// Set when a local change's events are stored but not yet published.
    unpublished: AtomicBool,
    events: broadcast::Sender<Arc<Event>>,
    published_seq: AtomicU64,
    /// Held while events go out, so they go out once each and in order whether
    /// `watch` or a write publishes them.
    publishing: std::sync::Mutex<()>,
    shutdown: watch::Sender<bool>,
    /// Store jobs and `next_instruction` calls in progress, for [`Service::drained`].
    busy: watch::Sender<usize>,
    audit: Option<Arc<dyn Audit>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Service`]; everything but the store has a default.
pub struct ServiceBuilder {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    offload: Arc<dyn Offload>,
    options: ServiceOptions,
    audit: Option<Arc<dyn Audit>>,
}

impl ServiceBuilder {
    /// Records every change, tool call and refused request in `audit`.
    pub fn audit(mut self, audit: Arc<dyn Audit>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Uses `clock` instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `ids` instead of random UUIDs.
    pub fn ids(mut self, ids: Arc<dyn IdSource>) -> Self {
        self.ids = ids;
        self
    }

    /// Runs store calls through `offload` (default: inline).
    pub fn offload(mut self, offload: Arc<dyn Offload>) -> Self {
        self.offload = offload;
        self
    }

    /// Replaces the options.
    pub fn options(mut self, options: ServiceOptions) -> Self {
        self.options = options;
        self
    }

    /// Builds the service. Events from before this moment are not republished.
    pub fn build(self) -> Result<Service, QueueError> {
        let start_seq = self.store.last_event_seq()?;
        let (events, _) = broadcast::channel(self.options.event_buffer.max(16));
        let (shutdown, _) = watch::channel(false);
        Ok(Service {
            shared: Arc::new(Shared {
                store: self.store,
                clock: self.clock,
                ids: self.ids,
                offload: self.offload,
                options: self.options,
                waiters: Waiters::default(),
                kick: Notify::new(),
                unpublished: AtomicBool::new(false),
                events,
                published_seq: AtomicU64::new(start_seq),
                publishing: std::sync::Mutex::new(()),
                shutdown,
                busy: watch::channel(0).0,
                audit: self.audit,
            }),
        })
    }
}

impl Service {
    /// Starts building a service over `store`.
    pub fn builder(store: Arc<dyn Store>) -> ServiceBuilder {
        ServiceBuilder {
            store,
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
            offload: Arc::new(Inline),
            options: ServiceOptions::default(),
            audit: None,
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// The current time by the service's clock.
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// Hands `entry` to the audit sink, if there is one. Adapters use it for what
    /// only they see, such as a refused token.
    pub fn audit(&self, entry: &AuditEntry<'_>) {
        if let Some(audit) = &self.shared.audit {
            audit.record(entry);
        }
    }

    /// Runs a store job through the offload, counted until it finishes.
    fn run_job(&self, job: Box<dyn FnOnce() + Send>) {
        let busy = self.busy();
        self.shared.offload.run(Box::new(move || {
            let _busy = busy;
            job()
        }));
    }

    /// Runs `f` against the store through the offload.
    pub(super) async fn call<T, F>(&self, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, QueueError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let store = Arc::clone(&self.shared.store);
        self.run_job(Box::new(move || {
            let _ = tx.send(f(&*store));
        }));
        rx.await
            .map_err(|_| StoreError::Other(String::from("store job was dropped")).into())
            .and_then(|r| r)
    }
}
