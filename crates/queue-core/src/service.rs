//! The async queue service: every operation of the product on top of a [`Store`],
//! the waiting `next_instruction` call, and the fan-out of change events.
//!
//! Waiters sleep on a [`Notify`] that every local change fires at once; changes made
//! by other processes are found by [`Service::watch`], which polls the store's cheap
//! change token and republishes the new events. Store calls go through an
//! [`Offload`] so a blocking store (SQLite) never stalls the async threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, oneshot, watch};
use tokio::time::Instant;

use crate::audit::{Audit, AuditEntry};
use crate::error::{QueueError, StoreError};
use crate::settings::{Settings, SettingsPatch};
use crate::store::{
    CallTicket, Claim, Counts, Event, Listing, Overview, Page, StatusFilter, Store, Write,
};
use crate::types::{Agent, AgentId, Content, Instruction, InstructionId, ResultType, Timestamp};

/// A claim's outcome, with the count of what is left when it delivered.
type Look = (Claim, Option<Result<Counts, QueueError>>);

/// What the first store trip of a call found: the settings in force, the started
/// call, and the first look at the queue (`None` when it did not look).
type Started = (Settings, CallTicket, Option<Result<Look, QueueError>>);

/// How long a call waits on an empty queue under `settings`.
fn call_wait(settings: &Settings) -> Duration {
    Duration::from_secs(u64::from(settings.default_wait_seconds))
}

/// `claim`, with the count of what is left when it delivered.
fn counted(s: &dyn Store, claim: Claim) -> Look {
    let counts = matches!(claim, Claim::Claimed(_)).then(|| s.counts());
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
    /// What it produced.
    pub outcome: FetchOutcome,
    /// Why it ended.
    pub reason: EndReason,
    /// Pending instructions left after this call; 0 when they could not be
    /// counted (see `count_error`).
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
    /// Fired on every change seen (local at once, foreign through `watch`).
    changed: Notify,
    /// How many times `changed` has fired, so a call can tell whether a wake-up
    /// was only the one its own start caused.
    wakes: AtomicU64,
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
                changed: Notify::new(),
                wakes: AtomicU64::new(0),
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

    /// Marks a local change: waiters re-check at once and `watch` publishes.
    fn changed(&self) {
        self.wake_waiters();
        self.publish_soon();
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
    /// gap there is events pruned away and nothing to wait for.
    fn send_events(&self, events: Vec<Event>, gapless: bool) -> bool {
        let _order = self
            .shared
            .publishing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let published = self.published_seq();
        let mut fresh = events.into_iter().filter(|e| e.seq > published).peekable();
        if gapless && fresh.peek().is_some_and(|first| first.seq != published + 1) {
            return false;
        }
        let mut last = published;
        for event in fresh {
            last = event.seq;
            let _ = self.shared.events.send(Arc::new(event));
        }
        self.shared.published_seq.store(last, Ordering::Release);
        true
    }

    /// Makes every waiting call look at the queue again.
    fn wake_waiters(&self) {
        // Counted before the wake, so a woken call that reads the count sees it.
        self.shared.wakes.fetch_add(1, Ordering::AcqRel);
        self.shared.changed.notify_waiters();
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
        let audit = Arc::new(audit);
        let unread = Arc::clone(&audit);
        let out = self
            .write(f, move |service: &Service, value: T| {
                unread(service, &value)
            })
            .await?;
        // No await from here on: nothing can stop the line from being written.
        audit(self, &out);
        Ok(out)
    }

    /// Queues an instruction at the end. The text is trimmed and checked.
    pub async fn add(&self, text: &str) -> Result<Instruction, QueueError> {
        let content = Content::parse(text)?;
        let id = self.shared.ids.next_id();
        let now = self.now();
        self.mutate(
            move |s| s.add(id, content, now),
            |service, item| {
                service.audit(&AuditEntry::InstructionCreated {
                    item,
                    requeued_from: None,
                })
            },
        )
        .await
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

    /// Puts the pending instructions in the given order.
    pub async fn reorder(&self, ids: Vec<InstructionId>) -> Result<Vec<Instruction>, QueueError> {
        let now = self.now();
        let audited = ids.clone();
        self.mutate(
            move |s| s.reorder(&ids, now),
            move |service, _| service.audit(&AuditEntry::InstructionReordered { ids: &audited }),
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

    /// A page of instructions.
    pub async fn list(&self, filter: StatusFilter, page: Page) -> Result<Listing, QueueError> {
        self.call(move |s| s.list(filter, page)).await
    }

    /// A listing handed item by item to `each`, together with `state` to build on,
    /// on the store's side (see [`Store::list_each`]). Returns the built state, the
    /// total, and the store's change token as read before the items, so that output
    /// built from them can be reused while [`Service::change_token`] still gives
    /// that token.
    pub async fn list_each<S, F>(
        &self,
        filter: StatusFilter,
        page: Page,
        mut state: S,
        mut each: F,
    ) -> Result<Listed<S>, QueueError>
    where
        S: Send + 'static,
        F: FnMut(&mut S, &Instruction) + Send + 'static,
    {
        self.call(move |s| {
            let token = s.change_token().ok();
            let total = s.list_each(filter, page, &mut |item| each(&mut state, item))?;
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

    /// Pending and consumed counts.
    pub async fn counts(&self) -> Result<Counts, QueueError> {
        self.call(|s| s.counts()).await
    }

    /// Every agent seen, most recent first.
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
        self.shared.shutdown.send_replace(true);
        self.wake_waiters();
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

    /// Publishes local changes as soon as they are made and polls for changes from
    /// other processes; runs until [`Service::shutdown`]. Spawn it once per process.
    pub async fn watch(&self) {
        // None: the first poll counts as a change, so a commit made before the watcher
        // started still wakes the waiters.
        let mut token = None;
        let mut next_poll = Instant::now();
        loop {
            let polled = tokio::select! {
                _ = self.until_shutdown() => return,
                _ = self.shared.kick.notified() => false,
                _ = tokio::time::sleep_until(next_poll) => true,
            };
            if polled {
                // Every call starts with a kick, so a newly waiting call switches
                // this to the short interval at once.
                let options = &self.shared.options;
                next_poll = Instant::now()
                    + if *self.shared.busy.borrow() > 0 {
                        options.poll_interval
                    } else if self.shared.events.receiver_count() > 0 {
                        options.listen_poll_interval
                    } else {
                        options.idle_poll_interval
                    };
            } else {
                next_poll = next_poll.min(Instant::now() + self.shared.options.poll_interval);
            }
            if !polled && !self.shared.unpublished.swap(false, Ordering::AcqRel) {
                // Only a call starting to wait: the interval is set above.
                continue;
            }
            if polled {
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
            let published = self.publish_new_events().await;
            // A moved token means something was committed since the last poll, maybe
            // by another process. Its events may already have gone out after a kick
            // for a local change, which wakes nobody, so `published` alone would miss
            // it: wake the waiters whenever the token moved.
            if polled && (published || token.is_some()) {
                self.wake_waiters();
            }
        }
    }

    /// Sends every stored event newer than the last published one to subscribers.
    /// Returns whether there were any.
    async fn publish_new_events(&self) -> bool {
        let mut any = false;
        loop {
            let after = self.published_seq();
            let Ok(batch) = self.events_after(after, PUBLISH_BATCH).await else {
                return any;
            };
            if batch.is_empty() {
                return any;
            }
            any = true;
            // A short batch was everything there was: asking again would only cost
            // another store trip per change to learn that nothing followed it.
            let complete = batch.len() < PUBLISH_BATCH;
            // A write may have published some of these since they were read.
            self.send_events(batch, false);
            if complete {
                return any;
            }
        }
    }

    /// The `get_user_request` call: delivers the oldest pending instruction, waiting
    /// up to the `default_wait_seconds` setting for one to arrive.
    ///
    /// Cancel-safe: dropping the returned future at any point consumes nothing; a
    /// claim that completes after the drop is returned to the head of the queue.
    /// A newer call for the same agent makes this one return at once, empty.
    pub async fn next_instruction(&self, agent: AgentId) -> Result<Fetch, QueueError> {
        // Declared first so it drops last, after `CallGuard` has queued its clean-up.
        let _busy = self.busy();
        let started = Instant::now();
        let now = self.now();
        let a = agent.clone();
        let undo_agent = agent.clone();
        let service = self.clone();
        // Registered before the first look, which the start below makes, so a change
        // between that look and the wait is not missed.
        let mut notified = Box::pin(self.shared.changed.notified());
        notified.as_mut().enable();
        let wakes_before = self.shared.wakes.load(Ordering::Acquire);
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
                        return Ok((settings, s.begin_call(&a, now, until)?, None));
                    }
                    let (ticket, claim) = s.begin_and_claim(&a, now, until)?;
                    Ok((settings, ticket, Some(claim.map(|c| counted(s, c)))))
                },
                move |service: &Service, (settings, ticket, look): Started| {
                    if let Some(Ok((Claim::Claimed(item), _))) = look {
                        service.unclaim_in_background(item.id);
                    }
                    let empty_type = empty_outcome(&settings).result_type();
                    service.end_call_in_background(&undo_agent, ticket.generation, empty_type);
                },
            )
            .await?;
        // The start's write woke any older call of this agent, which it superseded,
        // and published its events. The kick switches `watch` to its short interval
        // while this call waits.
        self.shared.kick.notify_one();
        // When no other wake-up came between the look and this call's own, the one
        // just sent is the call's own: it needs no second look.
        let mut own_wake =
            Some(wakes_before + 1).filter(|&n| self.shared.wakes.load(Ordering::Acquire) == n);
        let deadline = started + call_wait(&settings);
        let empty = empty_outcome(&settings);
        let mut guard = CallGuard {
            service: self.clone(),
            agent: agent.clone(),
            generation: ticket.generation,
            result: empty.result_type(),
            claimed: None,
            armed: true,
        };

        let mut shutdown = self.shared.shutdown.subscribe();
        // What is left after a delivery, counted in the claim's own store trip.
        let mut remaining = None;
        let (outcome, reason) = loop {
            let (claim, counts) = match first_look.take() {
                Some(look) => look?,
                None => {
                    // Register for wake-ups before looking, so a change between the
                    // look and the wait is not missed.
                    notified = Box::pin(self.shared.changed.notified());
                    notified.as_mut().enable();
                    if *shutdown.borrow_and_update() {
                        break (empty.clone(), EndReason::ShuttingDown);
                    }
                    let own = own_wake.take();
                    if own.is_some_and(|n| self.shared.wakes.load(Ordering::Acquire) == n) {
                        (Claim::Empty, None)
                    } else {
                        self.claim(&agent, ticket.generation).await?
                    }
                }
            };
            match claim {
                Claim::Claimed(item) => {
                    remaining = counts;
                    // From here until the caller has the result, dropping this future
                    // puts the instruction back (see `CallGuard`).
                    guard.claimed = Some(item.id);
                    break (FetchOutcome::Instruction(item), EndReason::Delivered);
                }
                Claim::Superseded => break (empty.clone(), EndReason::Superseded),
                Claim::Empty => {}
            }
            tokio::select! {
                _ = notified.as_mut() => {}
                _ = tokio::time::sleep_until(deadline) => break (empty.clone(), EndReason::TimedOut),
                _ = shutdown.changed() => {}
            }
        };

        // Once an instruction is claimed it is the caller's: failing the call over
        // the count would leave it consumed and undelivered if putting it back
        // failed too. The count is only informative, so it gives way instead.
        let delivering = matches!(outcome, FetchOutcome::Instruction(_));
        let counted = match remaining {
            Some(counted) => counted,
            None => self.counts().await,
        };
        let (remaining_pending, count_error) = match counted {
            Ok(counts) => (counts.pending, None),
            Err(e) if delivering => (0, Some(e)),
            Err(e) => return Err(e),
        };
        let waited = started.elapsed();
        let (a, generation, result, now) = (
            agent.clone(),
            ticket.generation,
            outcome.result_type(),
            self.now(),
        );
        let audit = move |service: &Service, delivered: &FetchOutcome| {
            service.audit(&AuditEntry::ToolCall {
                agent: &a,
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
            let (agent, ended) = (agent.clone(), outcome.clone());
            self.mutate(
                move |s| s.end_call(&agent, generation, result, now),
                move |service, _| audit(service, &ended),
            )
            .await?;
        }
        guard.armed = false;
        Ok(Fetch {
            agent,
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
    async fn claim(&self, agent: &AgentId, generation: u64) -> Result<Look, QueueError> {
        let agent = agent.clone();
        let now = self.now();
        let out = self
            .write(
                move |s| Ok(counted(s, s.claim_and_end(&agent, generation, now)?)),
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
        let undo: Undo<T> = Arc::new(undo);
        let (tx, rx) = oneshot::channel();
        let write = Box::new(WriteCall {
            f: Some(f),
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
        let mut answer = Answer {
            rx,
            answered: false,
            service: self.clone(),
            undo,
        };
        let out = (&mut answer.rx).await;
        answer.answered = true;
        out.map_err(|_| QueueError::from(StoreError::Other(String::from("store job was dropped"))))?
    }

    fn unclaim_in_background(&self, id: InstructionId) {
        let store = Arc::clone(&self.shared.store);
        let service = self.clone();
        let now = self.now();
        self.run_job(Box::new(move || {
            if let Ok(item) = store.unclaim(id, now) {
                service.audit(&AuditEntry::InstructionReturned {
                    item: &item,
                    reason: "the call ended before the instruction reached the agent",
                });
                service.changed();
            }
        }));
    }

    fn end_call_in_background(&self, agent: &AgentId, generation: u64, result: ResultType) {
        let store = Arc::clone(&self.shared.store);
        let service = self.clone();
        let agent = agent.clone();
        let now = self.now();
        self.run_job(Box::new(move || {
            if store.end_call(&agent, generation, result, now).is_ok() {
                service.audit(&AuditEntry::ToolCall {
                    agent: &agent,
                    result,
                    end: "abandoned",
                    instruction: None,
                    waited: None,
                });
                service.changed();
            }
        }));
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

    fn done(self: Box<Self>, outcome: Result<(), StoreError>) {
        let durable = outcome.is_ok();
        // Whether the calls changed anything: only then may a waiting call find
        // something new. A claim that found nothing changes nothing, and waking on
        // it would wake the claiming call itself into another claim, forever.
        let changed = self.events.as_ref().is_none_or(|e| !e.is_empty());
        match self.events {
            Some(events) if durable => {
                if !self.service.send_events(events, true) {
                    self.service.publish_soon();
                }
            }
            // Unread events, or a failed commit that may still have left some.
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
        if durable && changed {
            // From here, not once the caller has the answer: a call waiting for
            // this change starts its claim one thread hand-off sooner.
            self.service.wake_waiters();
        }
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
    agent: AgentId,
    generation: u64,
    /// What the call returns when it delivers nothing: `DefaultResponse` unless the
    /// default response is the empty string. A dropped call delivered nothing.
    result: ResultType,
    claimed: Option<InstructionId>,
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
        self.service
            .end_call_in_background(&self.agent, self.generation, self.result);
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
        fn add(
            &self,
            id: InstructionId,
            content: Content,
            now: Timestamp,
        ) -> Result<Instruction, QueueError> {
            self.inner.add(id, content, now)
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
            ids: &[InstructionId],
            now: Timestamp,
        ) -> Result<Vec<Instruction>, QueueError> {
            self.inner.reorder(ids, now)
        }
        fn list(&self, filter: StatusFilter, page: Page) -> Result<Listing, QueueError> {
            self.inner.list(filter, page)
        }
        fn counts(&self) -> Result<Counts, QueueError> {
            if self.claimed.load(Ordering::SeqCst) {
                return Err(StoreError::Busy.into());
            }
            self.inner.counts()
        }
        fn begin_call(
            &self,
            agent: &AgentId,
            now: Timestamp,
            until: Timestamp,
        ) -> Result<CallTicket, QueueError> {
            self.inner.begin_call(agent, now, until)
        }
        fn claim(
            &self,
            agent: &AgentId,
            generation: u64,
            now: Timestamp,
        ) -> Result<Claim, QueueError> {
            let claim = self.inner.claim(agent, generation, now)?;
            if matches!(claim, Claim::Claimed(_)) {
                self.claimed.store(true, Ordering::SeqCst);
            }
            Ok(claim)
        }
        fn end_call(
            &self,
            agent: &AgentId,
            generation: u64,
            result: ResultType,
            now: Timestamp,
        ) -> Result<Agent, QueueError> {
            self.inner.end_call(agent, generation, result, now)
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
        assert_eq!(service.counts().await.unwrap().pending, 1);

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
            .list(StatusFilter::Consumed, Page::default())
            .unwrap();
        assert_eq!(consumed.total, 1);
        assert_eq!(consumed.items[0].id, queued.id);
        assert_eq!(store.inner.counts().unwrap().pending, 0);
    }
}
