//! The async queue service: every operation of the product on top of a [`Store`],
//! the waiting `next_instruction` call, and the fan-out of change events.
//!
//! Each waiting call is registered by queue ([`Waiters`]); a change wakes only
//! the calls it can concern, at once for local changes, and through
//! [`Service::watch`] for changes made by other processes, which it finds by
//! polling the store's cheap change token and republishes. Store calls go through an
//! [`Offload`] so a blocking store (SQLite) never stalls the async threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::waiters::{Handed, Reservation, Slot, Turn, Waiters};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, oneshot, watch};
use tokio::time::Instant;

use crate::audit::{Audit, AuditEntry};
use crate::error::{QueueError, StoreError};
use crate::settings::{Settings, SettingsPatch};
use crate::store::{
    CallTicket, Claim, Counts, Event, Listing, Overview, Page, QueueCounts, StatusFilter, Store,
    Write,
};
use crate::types::{
    Agent, AgentId, Caller, Content, Instruction, InstructionId, NewInstruction, QueueName,
    ResultType, Timestamp,
};

/// A claim's outcome, with the count of what is left when it delivered.
type Look = (Claim, Option<Result<Counts, QueueError>>);

/// What the first store trip of a call found: the settings in force, the started
/// call, and the first look at the queue (`None` when it did not look).
type Started = (Settings, CallTicket, Option<Result<Look, QueueError>>);

/// How long a call waits on an empty queue under `settings`.
fn call_wait(settings: &Settings) -> Duration {
    Duration::from_secs(u64::from(settings.default_wait_seconds))
}

/// `claim`, with the count of what is left on the queue when it delivered.
fn counted(s: &dyn Store, queue: &QueueName, claim: Claim) -> Look {
    let counts = matches!(claim, Claim::Claimed(_)).then(|| s.counts(queue));
    (claim, counts)
}

/// What a call that found nothing returns under `settings`.
fn empty_outcome(settings: &Settings) -> FetchOutcome {
    if settings.default_empty_response.is_empty() {
        FetchOutcome::Empty
    } else {
        FetchOutcome::DefaultResponse(settings.default_empty_response.clone())
    }
}

/// How many stored events one store trip publishes at most.
const PUBLISH_BATCH: usize = 512;

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

/// What one `get_user_request` call produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The oldest pending instruction, now consumed.
    Instruction(Instruction),
    /// Nothing came; the default response is the empty string.
    Empty,
    /// Nothing came; here is the default response.
    DefaultResponse(String),
}

impl FetchOutcome {
    /// The result type the tool reports.
    pub fn result_type(&self) -> ResultType {
        match self {
            FetchOutcome::Instruction(_) => ResultType::Instruction,
            FetchOutcome::Empty => ResultType::Empty,
            FetchOutcome::DefaultResponse(_) => ResultType::DefaultResponse,
        }
    }
}

/// Why a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// It delivered an instruction.
    Delivered,
    /// The wait ran out.
    TimedOut,
    /// A newer call of the same agent started.
    Superseded,
    /// The server is shutting down.
    ShuttingDown,
}

impl EndReason {
    /// `delivered`, `timed_out`, `superseded` or `shutting_down`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EndReason::Delivered => "delivered",
            EndReason::TimedOut => "timed_out",
            EndReason::Superseded => "superseded",
            EndReason::ShuttingDown => "shutting_down",
        }
    }
}

/// The result of [`Service::next_instruction`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetch {
    /// The agent the call was made for.
    pub agent: AgentId,
    /// The queue it took from.
    pub queue: QueueName,
    /// What it produced.
    pub outcome: FetchOutcome,
    /// Why it ended.
    pub reason: EndReason,
    /// Pending instructions left on the queue after this call (for any of its
    /// agents); 0 when they could not be counted (see `count_error`).
    pub remaining_pending: u64,
    /// Why the pending instructions could not be counted after a delivery. The
    /// delivery stands: the caller should log this and go on.
    pub count_error: Option<QueueError>,
    /// How long the call waited.
    pub waited: Duration,
}

/// What [`Service::list_each`] gives back.
#[derive(Debug)]
pub struct Listed<S> {
    /// What was built from the items.
    pub state: S,
    /// How many items the filter matches in all.
    pub total: u64,
    /// The change token read before the items; `None` if it could not be read.
    pub token: Option<u64>,
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

    /// Counts one piece of work in progress until the guard drops.
    fn busy(&self) -> Busy {
        self.shared.busy.send_modify(|n| *n += 1);
        Busy(Arc::clone(&self.shared))
    }

    /// Waits until no store job and no `next_instruction` call is in progress,
    /// including the clean-up of calls whose caller went away. After
    /// [`Service::shutdown`], await this (with a time limit) before the runtime
    /// stops, so that a claim being undone is not cut off.
    pub async fn drained(&self) {
        let mut rx = self.shared.busy.subscribe();
        // The sender lives in `self`, so this only returns once the count is zero.
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Runs `f` against the store through the offload.
    async fn call<T, F>(&self, f: F) -> Result<T, QueueError>
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

    /// Has `watch` publish the stored events nobody published yet.
    fn publish_soon(&self) {
        self.shared.unpublished.store(true, Ordering::Release);
        self.shared.kick.notify_one();
    }

    /// Sends `events` (oldest first) to subscribers, skipping those already out,
    /// under the lock that keeps `watch` and the writes in order. With `gapless`
    /// — a write's own events — nothing goes out unless they follow what went out
    /// last, and `false` says so: changes of another process that `watch` has not
    /// published yet come first, and only `watch`, reading from the store, can
    /// send them in order. `watch` itself reads everything from the store, so a
    /// gap there is events pruned away and nothing to wait for, but what they were
    /// is unknown, so every waiting call looks again.
    ///
    /// The calls the events that go out concern are woken (see [`Waiters`]):
    /// whoever publishes an event wakes for it, so no change is published
    /// without its wake-up.
    fn send_events(&self, events: Vec<Event>, gapless: bool) -> bool {
        let _order = self
            .shared
            .publishing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let published = self.published_seq();
        let fresh: Vec<Event> = events.into_iter().filter(|e| e.seq > published).collect();
        // The calls the events concern are woken whether or not the events go out
        // here: a write's own events wake at once, before `watch` publishes them.
        self.shared.waiters.wake_for(&fresh);
        if fresh
            .first()
            .is_some_and(|first| first.seq != published + 1)
        {
            if gapless {
                return false;
            }
            self.shared.waiters.wake_all();
        }
        let mut last = published;
        for event in fresh {
            last = event.seq;
            let _ = self.shared.events.send(Arc::new(event));
        }
        self.shared.published_seq.store(last, Ordering::Release);
        true
    }

    /// Makes a change through [`Service::write`] (which wakes the waiters), then
    /// audits it with `audit`, exactly once, even when the caller goes away before
    /// the change is durable.
    async fn mutate<T, F, A>(&self, f: F, audit: A) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, QueueError> + Send + 'static,
        A: Fn(&Service, &T) + Send + Sync + 'static,
    {
        self.mutate_settled(f, |_, _| {}, audit).await
    }

    /// [`Service::mutate`], with `settle` run on the value as soon as it is
    /// durable (see [`Service::write_settled`]).
    async fn mutate_settled<T, F, A>(
        &self,
        f: F,
        settle: fn(&Service, &mut T),
        audit: A,
    ) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, QueueError> + Send + 'static,
        A: Fn(&Service, &T) + Send + Sync + 'static,
    {
        let audit = Arc::new(audit);
        let unread = Arc::clone(&audit);
        let out = self
            .write_settled(f, settle, move |service: &Service, value: T| {
                unread(service, &value)
            })
            .await?;
        // No await from here on: nothing can stop the line from being written.
        audit(self, &out);
        Ok(out)
    }

    /// Queues an instruction at the end of the `default` queue, for any agent.
    /// The text is trimmed and checked.
    pub async fn add(&self, text: &str) -> Result<Instruction, QueueError> {
        self.add_to(&QueueName::default_queue(), None, text).await
    }

    /// Queues an instruction at the end of `queue` (which comes into being if it
    /// is new), for `to` alone when given, else for any agent of the queue.
    pub async fn add_to(
        &self,
        queue: &QueueName,
        to: Option<AgentId>,
        text: &str,
    ) -> Result<Instruction, QueueError> {
        let content = Content::parse(text)?;
        let new = NewInstruction::new(self.shared.ids.next_id(), content)
            .on(queue.clone())
            .to(to);
        let now = self.now();
        let service = self.clone();
        let added = self
            .mutate_settled(
                move |s| {
                    let item = s.add(new, now)?;
                    // Taken a moment after it was added, and stamped so: a page
                    // that sees both copies keeps the later one.
                    let hand_off = service.hand_off(s, &item, service.now());
                    Ok(Added { item, hand_off })
                },
                Added::hand_over,
                |service, added| {
                    service.audit(&AuditEntry::InstructionCreated {
                        item: &added.item,
                        requeued_from: None,
                    })
                },
            )
            .await?;
        Ok(added.item)
    }

    /// In the write that added `item`, claims the head of its queue for the
    /// longest-waiting call of this process that may take it, so that the wake-up
    /// costs no second commit. Calls that turn out superseded or unable to take
    /// anything are passed over, a few at most; a claim that fails leaves the
    /// instruction to the calls its event wakes.
    fn hand_off(&self, s: &dyn Store, item: &Instruction, now: Timestamp) -> Option<HandOff> {
        const TRIES: usize = 4;
        let mut passed = Vec::new();
        while passed.len() < TRIES {
            let reservation =
                self.shared
                    .waiters
                    .reserve(&item.queue, item.to.as_ref(), &passed)?;
            match s.claim_and_end(reservation.caller(), reservation.generation(), now) {
                Ok(Claim::Claimed(claimed)) => {
                    let counts = s.counts(&item.queue);
                    return Some(HandOff {
                        reservation,
                        handed: Box::new(Handed {
                            item: claimed,
                            counts,
                        }),
                    });
                }
                Ok(Claim::Superseded | Claim::Empty) => passed.push(reservation.key()),
                Err(_) => return None,
            }
        }
        None
    }

    /// One instruction.
    pub async fn get(&self, id: InstructionId) -> Result<Instruction, QueueError> {
        self.call(move |s| s.get(id)?.ok_or(QueueError::NotFound(id)))
            .await
    }

    /// Rewords a pending instruction.
    pub async fn edit(&self, id: InstructionId, text: &str) -> Result<Instruction, QueueError> {
        let content = Content::parse(text)?;
        let now = self.now();
        self.mutate(
            move |s| s.edit(id, content, now),
            |service, item| service.audit(&AuditEntry::InstructionUpdated { item }),
        )
        .await
    }

    /// Deletes a pending instruction, returning it as it was.
    pub async fn delete(&self, id: InstructionId) -> Result<Instruction, QueueError> {
        let now = self.now();
        self.mutate(
            move |s| s.delete(id, now),
            |service, item| service.audit(&AuditEntry::InstructionDeleted { item }),
        )
        .await
    }

    /// Queues a copy of a consumed instruction at the end.
    pub async fn requeue(&self, id: InstructionId) -> Result<Instruction, QueueError> {
        let new_id = self.shared.ids.next_id();
        let now = self.now();
        self.mutate(
            move |s| s.requeue(id, new_id, now),
            move |service, item| {
                service.audit(&AuditEntry::InstructionCreated {
                    item,
                    requeued_from: Some(id),
                })
            },
        )
        .await
    }

    /// Puts the pending instructions of `queue` in the given order.
    pub async fn reorder(
        &self,
        queue: &QueueName,
        ids: Vec<InstructionId>,
    ) -> Result<Vec<Instruction>, QueueError> {
        let now = self.now();
        let (audited, queue, audited_queue) = (ids.clone(), queue.clone(), queue.clone());
        self.mutate(
            move |s| s.reorder(&queue, &ids, now),
            move |service, _| {
                service.audit(&AuditEntry::InstructionReordered {
                    queue: &audited_queue,
                    ids: &audited,
                })
            },
        )
        .await
    }

    /// Returns a delivered instruction whose result could not be written to the head
    /// of the queue, pending again; `reason` says why, for the audit trail.
    pub async fn return_to_queue(
        &self,
        id: InstructionId,
        reason: &str,
    ) -> Result<Instruction, QueueError> {
        let now = self.now();
        let reason = reason.to_owned();
        self.mutate(
            move |s| s.unclaim(id, now),
            move |service, item| {
                service.audit(&AuditEntry::InstructionReturned {
                    item,
                    reason: &reason,
                })
            },
        )
        .await
    }

    /// A page of the instructions of `queue`.
    pub async fn list(
        &self,
        queue: &QueueName,
        filter: StatusFilter,
        page: Page,
    ) -> Result<Listing, QueueError> {
        let queue = queue.clone();
        self.call(move |s| s.list(&queue, filter, page)).await
    }

    /// A listing handed item by item to `each`, together with `state` to build on,
    /// on the store's side (see [`Store::list_each`]). Returns the built state, the
    /// total, and the store's change token as read before the items, so that output
    /// built from them can be reused while [`Service::change_token`] still gives
    /// that token.
    pub async fn list_each<S, F>(
        &self,
        queue: &QueueName,
        filter: StatusFilter,
        page: Page,
        mut state: S,
        mut each: F,
    ) -> Result<Listed<S>, QueueError>
    where
        S: Send + 'static,
        F: FnMut(&mut S, &Instruction) + Send + 'static,
    {
        let queue = queue.clone();
        self.call(move |s| {
            let token = s.change_token().ok();
            let total = s.list_each(&queue, filter, page, &mut |item| each(&mut state, item))?;
            Ok(Listed {
                state,
                total,
                token,
            })
        })
        .await
    }

    /// The store's change token ([`Store::change_token`]): it moves whenever any
    /// process may have committed a change.
    pub async fn change_token(&self) -> Result<u64, QueueError> {
        self.call(|s| Ok(s.change_token()?)).await
    }

    /// Pending and consumed counts of `queue`.
    pub async fn counts(&self, queue: &QueueName) -> Result<Counts, QueueError> {
        let queue = queue.clone();
        self.call(move |s| s.counts(&queue)).await
    }

    /// Every queue that exists, by name, with its counts.
    pub async fn queues(&self) -> Result<Vec<QueueCounts>, QueueError> {
        self.call(|s| s.queues()).await
    }

    /// Every agent seen on any queue, most recent first.
    pub async fn agents(&self) -> Result<Vec<Agent>, QueueError> {
        self.call(|s| s.agents()).await
    }

    /// Every agent, the counts and the saved settings, in one store call: what a
    /// status page needs (see [`Store::overview`]).
    pub async fn overview(&self) -> Result<Overview, QueueError> {
        if let Some(overview) = self.shared.store.overview_at_once() {
            return Ok(overview);
        }
        self.call(|s| s.overview()).await
    }

    /// The settings in force.
    pub async fn settings(&self) -> Result<Settings, QueueError> {
        let stored = self.call(|s| s.settings()).await?;
        Ok(Settings::effective(&self.shared.options.defaults, &stored))
    }

    /// Saves settings and returns those in force afterwards.
    pub async fn update_settings(&self, patch: SettingsPatch) -> Result<Settings, QueueError> {
        let now = self.now();
        let (service, audited) = (self.clone(), patch.clone());
        self.mutate(
            move |s| Ok(service.effective_settings(&s.update_settings(&patch, now)?)),
            move |service, settings| {
                service.audit(&AuditEntry::ConfigUpdated {
                    patch: &audited,
                    settings,
                })
            },
        )
        .await
    }

    /// The settings in force given the stored values in `change` (for event payloads).
    pub fn effective_settings(&self, stored: &crate::StoredSettings) -> Settings {
        Settings::effective(&self.shared.options.defaults, stored)
    }

    /// Stored events after `seq`, for replaying to a reconnecting client.
    pub async fn events_after(&self, seq: u64, limit: usize) -> Result<Vec<Event>, QueueError> {
        self.call(move |s| s.events_after(seq, limit)).await
    }

    /// The newest event published to subscribers so far.
    pub fn published_seq(&self) -> u64 {
        self.shared.published_seq.load(Ordering::Acquire)
    }

    /// Live events, local and (while [`Service::watch`] runs) from other processes.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.shared.events.subscribe()
    }

    /// Makes every waiting call return at once with nothing consumed, refuses new
    /// waits, and stops [`Service::watch`].
    pub fn shutdown(&self) {
        // Waiting calls watch this too, and return at once.
        self.shared.shutdown.send_replace(true);
    }

    /// Whether [`Service::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        *self.shared.shutdown.borrow()
    }

    /// Resolves once [`Service::shutdown`] has been called.
    pub async fn until_shutdown(&self) {
        let mut rx = self.shared.shutdown.subscribe();
        // The sender lives in `self`, so `wait_for` only returns once it is true.
        let _ = rx.wait_for(|down| *down).await;
    }

    /// Publishes local changes as soon as they are made and picks up changes from
    /// other processes: told by the store where it pushes them
    /// ([`Store::notify_changes`]), else by polling its change token. Runs until
    /// [`Service::shutdown`]. Spawn it once per process.
    pub async fn watch(&self) {
        let pushed = {
            let shared = Arc::downgrade(&self.shared);
            self.shared.store.notify_changes(Arc::new(move || {
                if let Some(shared) = shared.upgrade() {
                    shared.unpublished.store(true, Ordering::Release);
                    shared.kick.notify_one();
                }
            }))
        };
        // None: the first poll counts as a change, so a commit made before the watcher
        // started still wakes the waiters.
        let mut token = None;
        // A store that pushes is polled once, now, for what came before it was
        // asked to tell; never again.
        let mut next_poll = Some(Instant::now());
        loop {
            let polled = tokio::select! {
                _ = self.until_shutdown() => return,
                _ = self.shared.kick.notified() => false,
                _ = async {
                    match next_poll {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => true,
            };
            if pushed {
                next_poll = None;
            } else if polled {
                // Every call starts with a kick, so a newly waiting call switches
                // this to the short interval at once.
                let options = &self.shared.options;
                next_poll = Some(
                    Instant::now()
                        + if *self.shared.busy.borrow() > 0 {
                            options.poll_interval
                        } else if self.shared.events.receiver_count() > 0 {
                            options.listen_poll_interval
                        } else {
                            options.idle_poll_interval
                        },
                );
            } else {
                let soon = Instant::now() + self.shared.options.poll_interval;
                next_poll = Some(next_poll.map_or(soon, |at| at.min(soon)));
            }
            if !polled && !self.shared.unpublished.swap(false, Ordering::AcqRel) {
                // Only a call starting to wait: the interval is set above.
                continue;
            }
            if polled && !pushed {
                let now = self.call(|s| Ok(s.change_token())).await;
                let now = match now {
                    Ok(Ok(t)) => Some(t),
                    _ => None,
                };
                if now.is_some() && now == token {
                    continue;
                }
                token = now;
            }
            // Publishing wakes the calls each event concerns. When the events
            // could not be read, the next poll tries again whatever the token says.
            if !self.publish_new_events().await {
                token = None;
                if pushed {
                    // Nobody will push the change that was missed: look again soon.
                    next_poll = Some(Instant::now() + self.shared.options.poll_interval);
                }
            }
        }
    }

    /// Sends every stored event newer than the last published one to subscribers,
    /// waking the calls they concern; `false` when the events could not be read.
    async fn publish_new_events(&self) -> bool {
        loop {
            let after = self.published_seq();
            let Ok(batch) = self.events_after(after, PUBLISH_BATCH).await else {
                // Something may have changed and nobody can say what: every
                // waiting call looks again, and the next poll retries.
                self.shared.waiters.wake_all();
                return false;
            };
            if batch.is_empty() {
                return true;
            }
            // A short batch was everything there was: asking again would only cost
            // another store trip per change to learn that nothing followed it.
            let complete = batch.len() < PUBLISH_BATCH;
            // A write may have published some of these since they were read.
            self.send_events(batch, false);
            if complete {
                return true;
            }
        }
    }

    /// The `get_user_request` call of `caller` (an agent on a queue; an
    /// [`AgentId`] alone means the `default` queue): delivers the oldest pending
    /// instruction of the queue that is for the caller, waiting up to the
    /// `default_wait_seconds` setting for one to arrive. Only changes to its own
    /// queue wake it.
    ///
    /// Cancel-safe: dropping the returned future at any point consumes nothing; a
    /// claim that completes after the drop is returned to the head of the queue.
    /// A newer call for the same agent on the same queue makes this one return at
    /// once, empty.
    pub async fn next_instruction(&self, caller: impl Into<Caller>) -> Result<Fetch, QueueError> {
        let caller: Caller = caller.into();
        // Declared first so it drops last, after `CallGuard` has queued its clean-up.
        let _busy = self.busy();
        let started = Instant::now();
        let now = self.now();
        let (c, undo_caller, service) = (caller.clone(), caller.clone(), self.clone());
        // Registered before the first look, which the start below makes, so a change
        // between that look and the wait is not missed: its wake-up is kept.
        let waiting = self.shared.waiters.register(&caller);
        // A call that starts during shutdown takes nothing.
        let look_now = !self.is_shutting_down();
        // One store trip reads the settings, records the start and takes the head of
        // the queue if there is one, with the count of what is left: a call that finds
        // an instruction waiting needs no other trip before its audit line.
        // A call dropped while its start is being recorded must still record its end,
        // or the agent would look like it is waiting until the deadline passes; an
        // instruction it took goes back first in line.
        let (settings, ticket, mut first_look) = self
            .write(
                move |s| {
                    let settings = service.effective_settings(&s.settings()?);
                    let wait = call_wait(&settings).as_micros();
                    let until = now.plus_micros(i64::try_from(wait).unwrap_or(i64::MAX));
                    if !look_now {
                        return Ok((settings, s.begin_call(&c, now, until)?, None));
                    }
                    let (ticket, claim) = s.begin_and_claim(&c, now, until)?;
                    Ok((
                        settings,
                        ticket,
                        Some(claim.map(|claim| counted(s, &c.queue, claim))),
                    ))
                },
                move |service: &Service, (settings, ticket, look): Started| {
                    if let Some(Ok((Claim::Claimed(item), _))) = look {
                        service.unclaim_in_background(item.id);
                    }
                    let empty_type = empty_outcome(&settings).result_type();
                    service.end_call_in_background(&undo_caller, ticket.generation, empty_type);
                },
            )
            .await?;
        // The start's write woke any older call of this agent, which it superseded,
        // and published its events; a newer call's start seen in the meantime wakes
        // this one now. The kick switches `watch` to its short interval while this
        // call waits.
        let slot = waiting.slot();
        let deadline = started + call_wait(&settings);
        let empty = empty_outcome(&settings);
        let mut guard = CallGuard {
            service: self.clone(),
            caller: caller.clone(),
            generation: ticket.generation,
            result: empty.result_type(),
            claimed: None,
            slot: Arc::clone(&slot),
            armed: true,
        };
        waiting.started(ticket.generation);
        self.shared.kick.notify_one();

        let mut shutdown = self.shared.shutdown.subscribe();
        // What is left after a delivery, counted in the claim's own store trip.
        let mut remaining = None;
        let (mut outcome, mut reason) = loop {
            let look = match first_look.take() {
                Some(look) => Some(look?),
                None => {
                    if *shutdown.borrow_and_update() {
                        break (empty.clone(), EndReason::ShuttingDown);
                    }
                    match slot.take_turn() {
                        Turn::Free => Some(self.claim(&caller, ticket.generation).await?),
                        // An add is claiming for this call: its answer wakes the call.
                        Turn::Reserved => None,
                        Turn::Handed(handed) => {
                            remaining = Some(handed.counts);
                            guard.claimed = Some(handed.item.id);
                            break (FetchOutcome::Instruction(handed.item), EndReason::Delivered);
                        }
                    }
                }
            };
            match look {
                Some((Claim::Claimed(item), counts)) => {
                    remaining = counts;
                    // From here until the caller has the result, dropping this future
                    // puts the instruction back (see `CallGuard`).
                    guard.claimed = Some(item.id);
                    break (FetchOutcome::Instruction(item), EndReason::Delivered);
                }
                Some((Claim::Superseded, _)) => break (empty.clone(), EndReason::Superseded),
                Some((Claim::Empty, _)) => slot.open(),
                None => {}
            }
            tokio::select! {
                _ = slot.notify().notified() => {}
                _ = tokio::time::sleep_until(deadline) => break (empty.clone(), EndReason::TimedOut),
                _ = shutdown.changed() => {}
            }
        };
        // Nothing more can be claimed for this call. An add that claimed for it
        // while it was giving up is delivered all the same: the claim was made
        // while the call was the agent's newest and waiting, and its end is
        // recorded with it.
        loop {
            match slot.close() {
                Turn::Free => break,
                Turn::Reserved => slot.notify().notified().await,
                Turn::Handed(handed) => {
                    if matches!(outcome, FetchOutcome::Instruction(_)) {
                        self.unclaim_in_background(handed.item.id);
                    } else {
                        remaining = Some(handed.counts);
                        guard.claimed = Some(handed.item.id);
                        (outcome, reason) =
                            (FetchOutcome::Instruction(handed.item), EndReason::Delivered);
                    }
                    break;
                }
            }
        }
        drop(waiting);

        // Once an instruction is claimed it is the caller's: failing the call over
        // the count would leave it consumed and undelivered if putting it back
        // failed too. The count is only informative, so it gives way instead.
        let delivering = matches!(outcome, FetchOutcome::Instruction(_));
        let counted = match remaining {
            Some(counted) => counted,
            None => self.counts(&caller.queue).await,
        };
        let (remaining_pending, count_error) = match counted {
            Ok(counts) => (counts.pending, None),
            Err(e) if delivering => (0, Some(e)),
            Err(e) => return Err(e),
        };
        let waited = started.elapsed();
        let (c, generation, result, now) = (
            caller.clone(),
            ticket.generation,
            outcome.result_type(),
            self.now(),
        );
        let audit = move |service: &Service, delivered: &FetchOutcome| {
            service.audit(&AuditEntry::ToolCall {
                caller: &c,
                result,
                end: reason.as_str(),
                instruction: match delivered {
                    FetchOutcome::Instruction(item) => Some(item),
                    _ => None,
                },
                waited: Some(waited),
            })
        };
        if delivering {
            // The claim recorded the call's end in its own commit; only the audit
            // line is left. It is written before the answer goes out, so the log
            // never lags behind what the agent was told, and with no await before
            // it, so a dropped call cannot skip it.
            audit(self, &outcome);
        } else {
            // The end is recorded after the answer, which waits for no commit of
            // its own: the write is queued here and its audit line follows once it
            // is durable, whoever learns that. The store runs writes in the order
            // they come, so the agent's next call starts after this one ended.
            let (c, ended) = (caller.clone(), outcome.clone());
            drop(self.start_write(
                move |s| s.end_call(&c, generation, result, now),
                |_, _| {},
                move |service: &Service, _| audit(service, &ended),
            ));
        }
        guard.armed = false;
        let Caller { queue, agent } = caller;
        Ok(Fetch {
            agent,
            queue,
            outcome,
            reason,
            remaining_pending,
            count_error,
            waited,
        })
    }

    /// Claims through the offload such that a claim finishing after the caller gave
    /// up is undone instead of lost.
    ///
    /// A delivering claim also counts what is left, in the same store trip; the
    /// count is `None` otherwise.
    async fn claim(&self, caller: &Caller, generation: u64) -> Result<Look, QueueError> {
        let caller = caller.clone();
        let now = self.now();
        let out = self
            .write(
                move |s| {
                    let claim = s.claim_and_end(&caller, generation, now)?;
                    Ok(counted(s, &caller.queue, claim))
                },
                |service: &Service, (claim, _): Look| {
                    if let Claim::Claimed(item) = claim {
                        // Nobody is waiting for this instruction any more: put it back
                        // first in line.
                        service.unclaim_in_background(item.id);
                    }
                },
            )
            .await?;
        Ok(out)
    }

    /// Runs `f` as a write ([`Store::queue_write`], or through the offload for a
    /// store that gives the write back). If the caller stops waiting before it has
    /// read the value `f` produced — whether the write finishes after the caller
    /// left or the answer sits unread when the caller is dropped — `undo` gets that
    /// value instead, exactly once.
    async fn write<T, F, U>(&self, f: F, undo: U) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, QueueError> + Send + 'static,
        U: Fn(&Service, T) + Send + Sync + 'static,
    {
        self.write_settled(f, |_, _| {}, undo).await
    }

    /// [`Service::write`], with `settle` run on the value the moment it is
    /// durable, on the thread that learns so, before the events go out and before
    /// the caller is answered; a value that never became durable is dropped
    /// instead.
    async fn write_settled<T, F, U>(
        &self,
        f: F,
        settle: fn(&Service, &mut T),
        undo: U,
    ) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, QueueError> + Send + 'static,
        U: Fn(&Service, T) + Send + Sync + 'static,
    {
        let mut answer = self.start_write(f, settle, undo);
        let out = (&mut answer.rx).await;
        answer.answered = true;
        out.map_err(|_| QueueError::from(StoreError::Other(String::from("store job was dropped"))))?
    }

    /// Hands `f` to the store as a write and returns its answer to await. Dropped
    /// unread, the answer gives the value to `undo` once the write is done.
    fn start_write<T, F, U>(&self, f: F, settle: fn(&Service, &mut T), undo: U) -> Answer<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, QueueError> + Send + 'static,
        U: Fn(&Service, T) + Send + Sync + 'static,
    {
        let undo: Undo<T> = Arc::new(undo);
        let (tx, rx) = oneshot::channel();
        let write = Box::new(WriteCall {
            f: Some(f),
            settle,
            out: None,
            events: None,
            reply: tx,
            service: self.clone(),
            undo: Arc::clone(&undo),
            _busy: self.busy(),
        });
        if let Err(mut write) = self.shared.store.queue_write(write) {
            let store = Arc::clone(&self.shared.store);
            // The write counts itself busy until done; no second guard needed.
            self.shared.offload.run(Box::new(move || {
                write.run(&*store);
                write.done(Ok(()));
            }));
        }
        Answer {
            rx,
            answered: false,
            service: self.clone(),
            undo,
        }
    }

    /// Puts a claimed instruction that never reached its caller back at the head
    /// of its queue, as a queued write. These clean-ups often start on the store's
    /// writer thread (a write whose caller left is undone where it finished), so
    /// they must never wait for a store call: a synchronous one from there would
    /// wait for the thread itself. A queued write's events wake whoever may take
    /// the instruction once it is back.
    fn unclaim_in_background(&self, id: InstructionId) {
        let now = self.now();
        drop(self.start_write(
            move |s| s.unclaim(id, now),
            |_, _| {},
            |service: &Service, item: Instruction| {
                service.audit(&AuditEntry::InstructionReturned {
                    item: &item,
                    reason: "the call ended before the instruction reached the agent",
                });
            },
        ));
    }

    /// Records the end of a call that went away, as a queued write (see
    /// [`Service::unclaim_in_background`]).
    fn end_call_in_background(&self, caller: &Caller, generation: u64, result: ResultType) {
        let c = caller.clone();
        let now = self.now();
        drop(self.start_write(
            move |s| s.end_call(&c, generation, result, now),
            |_, _| {},
            move |service: &Service, agent: Agent| {
                service.audit(&AuditEntry::ToolCall {
                    caller: &agent.caller(),
                    result,
                    end: "abandoned",
                    instruction: None,
                    waited: None,
                });
            },
        ));
    }
}

/// What an add stored: the instruction, and what it claimed for a waiting call.
struct Added {
    item: Instruction,
    hand_off: Option<HandOff>,
}

/// An instruction claimed for a reserved waiting call in an add's write.
struct HandOff {
    reservation: Reservation,
    handed: Box<Handed>,
}

impl Added {
    /// Once the add is durable: leaves the claimed instruction for its call, or
    /// puts it back first in line if the call has gone meanwhile. (An add that
    /// never became durable drops its reservation, and the call looks itself.)
    fn hand_over(service: &Service, added: &mut Added) {
        let Some(HandOff {
            reservation,
            handed,
        }) = added.hand_off.take()
        else {
            return;
        };
        if let Err(handed) = reservation.give(handed) {
            service.unclaim_in_background(handed.item.id);
        }
    }
}

/// One unit of work counted in `Shared::busy`.
struct Busy(Arc<Shared>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// What to do with a value its caller no longer waits for.
type Undo<T> = Arc<dyn Fn(&Service, T) + Send + Sync>;

/// A write of the service's: `f`'s store calls, answered through `reply` once
/// durable. A value nobody waits for any more goes to `undo`.
struct WriteCall<T, F> {
    f: Option<F>,
    settle: fn(&Service, &mut T),
    out: Option<Result<T, QueueError>>,
    /// The events `f`'s calls stored, read back in the same write so that the
    /// write publishes them itself once durable; `None` if they could not be read.
    events: Option<Vec<Event>>,
    reply: oneshot::Sender<Result<T, QueueError>>,
    service: Service,
    undo: Undo<T>,
    /// Counts the write in progress until it is done, wherever it runs.
    _busy: Busy,
}

impl<T, F> Write for WriteCall<T, F>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, QueueError> + Send + 'static,
{
    fn run(&mut self, store: &dyn Store) {
        if let Some(f) = self.f.take() {
            let before = store.last_event_seq();
            self.out = Some(f(store));
            // Where the store queues the write, nothing else commits between these
            // reads, so what follows `before` is this write's own. Where the caller
            // runs it, another change may slip in between; its events are stored
            // too, and follow on without a gap, so publishing them here is as right.
            self.events = before
                .and_then(|seq| store.events_after(seq, PUBLISH_BATCH))
                .ok()
                .filter(|events| events.len() < PUBLISH_BATCH);
        }
    }

    fn done(mut self: Box<Self>, outcome: Result<(), StoreError>) {
        let durable = outcome.is_ok();
        if durable && let Some(Ok(value)) = self.out.as_mut() {
            (self.settle)(&self.service, value);
        }
        // Published (and the calls they concern woken) from here, not once the
        // caller has the answer: a call waiting for this change starts its claim
        // one thread hand-off sooner. A claim that found nothing stored no event
        // and wakes nobody, so a waiting call never wakes itself.
        match self.events {
            Some(events) if durable => {
                if !self.service.send_events(events, true) {
                    self.service.publish_soon();
                }
            }
            None if durable => {
                // The write's events could not be read back: nobody can tell whom
                // they concern.
                self.service.shared.waiters.wake_all();
                self.service.publish_soon();
            }
            // A failed commit that may still have left some.
            _ => self.service.publish_soon(),
        }
        let out = match (outcome, self.out) {
            (Ok(()), Some(out)) => out,
            (Ok(()), None) => Err(StoreError::Other(String::from(
                "the store reported a write done that it never ran",
            ))
            .into()),
            // Nothing the calls did was kept, so there is nothing to undo either.
            (Err(e), _) => Err(e.into()),
        };
        if let Err(Ok(value)) = self.reply.send(out) {
            (self.undo)(&self.service, value);
        }
    }
}

/// The unread answer of an undoable store call. After `close`, a job that has not
/// answered yet sees its send fail and undoes its value itself; one that already
/// answered left the value here, and dropping this undoes it.
struct Answer<T> {
    rx: oneshot::Receiver<Result<T, QueueError>>,
    answered: bool,
    service: Service,
    undo: Undo<T>,
}

impl<T> Drop for Answer<T> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        self.rx.close();
        if let Ok(Ok(value)) = self.rx.try_recv() {
            (self.undo)(&self.service, value);
        }
    }
}

/// Cleans up after a call whose future was dropped: puts back an instruction it had
/// claimed but not handed over, and records the end of the call so the agent does
/// not look like it is waiting until the deadline passes.
struct CallGuard {
    service: Service,
    caller: Caller,
    generation: u64,
    /// What the call returns when it delivers nothing: `DefaultResponse` unless the
    /// default response is the empty string. A dropped call delivered nothing.
    result: ResultType,
    claimed: Option<InstructionId>,
    /// Where an add leaves what it claimed for the call.
    slot: Arc<Slot>,
    armed: bool,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(id) = self.claimed {
            self.service.unclaim_in_background(id);
        }
        if let Some(handed) = self.slot.abandon() {
            self.service.unclaim_in_background(handed.item.id);
        }
        self.service
            .end_call_in_background(&self.caller, self.generation, self.result);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::memory::MemoryStore;
    use crate::settings::StoredSettings;
    use crate::store::Page;

    /// A [`MemoryStore`] whose counts fail once an instruction has been claimed.
    #[derive(Default)]
    struct CountsFailAfterClaim {
        inner: MemoryStore,
        claimed: AtomicBool,
    }

    impl Store for CountsFailAfterClaim {
        fn add(&self, new: NewInstruction, now: Timestamp) -> Result<Instruction, QueueError> {
            self.inner.add(new, now)
        }
        fn get(&self, id: InstructionId) -> Result<Option<Instruction>, QueueError> {
            self.inner.get(id)
        }
        fn edit(
            &self,
            id: InstructionId,
            content: Content,
            now: Timestamp,
        ) -> Result<Instruction, QueueError> {
            self.inner.edit(id, content, now)
        }
        fn delete(&self, id: InstructionId, now: Timestamp) -> Result<Instruction, QueueError> {
            self.inner.delete(id, now)
        }
        fn requeue(
            &self,
            id: InstructionId,
            new_id: InstructionId,
            now: Timestamp,
        ) -> Result<Instruction, QueueError> {
            self.inner.requeue(id, new_id, now)
        }
        fn reorder(
            &self,
            queue: &QueueName,
            ids: &[InstructionId],
            now: Timestamp,
        ) -> Result<Vec<Instruction>, QueueError> {
            self.inner.reorder(queue, ids, now)
        }
        fn list(
            &self,
            queue: &QueueName,
            filter: StatusFilter,
            page: Page,
        ) -> Result<Listing, QueueError> {
            self.inner.list(queue, filter, page)
        }
        fn counts(&self, queue: &QueueName) -> Result<Counts, QueueError> {
            if self.claimed.load(Ordering::SeqCst) {
                return Err(StoreError::Busy.into());
            }
            self.inner.counts(queue)
        }
        fn queues(&self) -> Result<Vec<QueueCounts>, QueueError> {
            self.inner.queues()
        }
        fn begin_call(
            &self,
            caller: &Caller,
            now: Timestamp,
            until: Timestamp,
        ) -> Result<CallTicket, QueueError> {
            self.inner.begin_call(caller, now, until)
        }
        fn claim(
            &self,
            caller: &Caller,
            generation: u64,
            now: Timestamp,
        ) -> Result<Claim, QueueError> {
            let claim = self.inner.claim(caller, generation, now)?;
            if matches!(claim, Claim::Claimed(_)) {
                self.claimed.store(true, Ordering::SeqCst);
            }
            Ok(claim)
        }
        fn end_call(
            &self,
            caller: &Caller,
            generation: u64,
            result: ResultType,
            now: Timestamp,
        ) -> Result<Agent, QueueError> {
            self.inner.end_call(caller, generation, result, now)
        }
        fn unclaim(&self, id: InstructionId, now: Timestamp) -> Result<Instruction, QueueError> {
            self.inner.unclaim(id, now)
        }
        fn agents(&self) -> Result<Vec<Agent>, QueueError> {
            self.inner.agents()
        }
        fn settings(&self) -> Result<StoredSettings, QueueError> {
            self.inner.settings()
        }
        fn update_settings(
            &self,
            patch: &SettingsPatch,
            now: Timestamp,
        ) -> Result<StoredSettings, QueueError> {
            self.inner.update_settings(patch, now)
        }
        fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, QueueError> {
            self.inner.events_after(after, limit)
        }
        fn last_event_seq(&self) -> Result<u64, QueueError> {
            self.inner.last_event_seq()
        }
        fn change_token(&self) -> Result<u64, StoreError> {
            self.inner.change_token()
        }
    }

    #[tokio::test]
    async fn a_failed_count_after_a_claim_still_delivers() {
        let store = Arc::new(CountsFailAfterClaim::default());
        let service = Service::builder(store.clone()).build().unwrap();
        let queued = service.add("ship it").await.unwrap();
        let default = QueueName::default_queue();
        assert_eq!(service.counts(&default).await.unwrap().pending, 1);

        let fetch = service
            .next_instruction(AgentId::default_agent())
            .await
            .unwrap();

        let FetchOutcome::Instruction(item) = &fetch.outcome else {
            panic!("expected the instruction, got {:?}", fetch.outcome)
        };
        assert_eq!(item.id, queued.id);
        assert_eq!(item.content.as_str(), "ship it");
        assert_eq!(fetch.reason, EndReason::Delivered);
        assert_eq!(fetch.remaining_pending, 0);
        assert_eq!(fetch.count_error, Some(StoreError::Busy.into()));
        // Delivered once and left consumed: not put back behind the caller's back.
        let consumed = store
            .inner
            .list(&default, StatusFilter::Consumed, Page::default())
            .unwrap();
        assert_eq!(consumed.total, 1);
        assert_eq!(consumed.items[0].id, queued.id);
        assert_eq!(store.inner.counts(&default).unwrap().pending, 0);
    }
}
