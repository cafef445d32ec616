//! The `Store` port: the few operations the queue needs from persistence, each
//! atomic, plus the change events every mutation records.

use serde::{Deserialize, Serialize};

use crate::error::{QueueError, StoreError};
use crate::settings::{SettingsPatch, StoredSettings};
use crate::types::{
    Agent, Caller, Content, Instruction, InstructionId, NewInstruction, QueueName, ResultType,
    Timestamp,
};

/// Which instructions a listing returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StatusFilter {
    /// Pending ones, in queue order.
    Pending,
    /// Consumed ones, by consumption time.
    Consumed,
    /// Consumed ones first (by consumption time), then pending ones (queue order).
    #[default]
    All,
}

/// A window into a listing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Page {
    /// Items to skip.
    pub offset: u64,
    /// Most items to return; `None` returns all.
    pub limit: Option<u64>,
}

/// One page of a listing and the size of the whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// The items in the window.
    pub items: Vec<Instruction>,
    /// How many items the filter matches in all.
    pub total: u64,
}

/// Instruction counts by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Waiting for an agent.
    pub pending: u64,
    /// Delivered.
    pub consumed: u64,
}

/// One queue and how many instructions it holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCounts {
    /// The queue.
    pub name: QueueName,
    /// Its instructions by status.
    pub counts: Counts,
}

/// What a status page shows from the store: every queue with its counts, every
/// agent and the saved settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overview {
    /// Every agent seen on any queue, most recently seen first.
    pub agents: Vec<Agent>,
    /// Every queue ([`Store::queues`]), by name.
    pub queues: Vec<QueueCounts>,
    /// The settings a person saved.
    pub settings: StoredSettings,
}

impl Overview {
    /// The counts of `queue`; zero for a queue the overview does not list.
    pub fn counts(&self, queue: &QueueName) -> Counts {
        self.queues
            .iter()
            .find(|q| q.name == *queue)
            .map(|q| q.counts)
            .unwrap_or_default()
    }

    /// Whether `queue` exists: it is listed.
    pub fn has_queue(&self, queue: &QueueName) -> bool {
        self.queues.iter().any(|q| q.name == *queue)
    }
}

/// The outcome of a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The oldest pending instruction for the caller, now consumed by it.
    Claimed(Instruction),
    /// Nothing is pending for the caller.
    Empty,
    /// A newer call of the same agent has started; this call may not claim.
    Superseded,
}

/// What changed, as recorded in the same transaction as the change itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Change {
    /// A new pending instruction (added or requeued).
    InstructionCreated(Instruction),
    /// A pending instruction's content changed, or a claimed one went back to the
    /// head of the queue because its delivery failed.
    InstructionUpdated(Instruction),
    /// A pending instruction was deleted; the item as it was.
    InstructionDeleted(Instruction),
    /// An agent took an instruction.
    InstructionConsumed(Instruction),
    /// The pending instructions' new order on one queue.
    InstructionReordered(Reordered),
    /// A person saved settings; the stored values after the change.
    ConfigUpdated(StoredSettings),
    /// An agent's record changed (a call started or returned).
    AgentUpdated(Agent),
}

impl Change {
    /// The event type as the HTTP API names it, e.g. `instruction.created`.
    pub const fn event_type(&self) -> &'static str {
        match self {
            Change::InstructionCreated(_) => "instruction.created",
            Change::InstructionUpdated(_) => "instruction.updated",
            Change::InstructionDeleted(_) => "instruction.deleted",
            Change::InstructionConsumed(_) => "instruction.consumed",
            Change::InstructionReordered(_) => "instruction.reordered",
            Change::ConfigUpdated(_) => "config.updated",
            Change::AgentUpdated(_) => "agent.updated",
        }
    }
}

/// The new order of a queue's pending instructions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reordered {
    /// The queue.
    pub queue: QueueName,
    /// Its pending instructions, in their new order.
    pub ids: Vec<InstructionId>,
}

impl<'de> Deserialize<'de> for Reordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Events stored before queues existed hold the bare list of ids: their
        // queue was `default`.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Now {
                queue: QueueName,
                ids: Vec<InstructionId>,
            },
            Before(Vec<InstructionId>),
        }
        Ok(match Stored::deserialize(d)? {
            Stored::Now { queue, ids } => Reordered { queue, ids },
            Stored::Before(ids) => Reordered {
                queue: QueueName::default_queue(),
                ids,
            },
        })
    }
}

impl Change {
    /// The queue the change is about; `None` for settings, which every queue shares.
    pub fn queue(&self) -> Option<&QueueName> {
        match self {
            Change::InstructionCreated(item)
            | Change::InstructionUpdated(item)
            | Change::InstructionDeleted(item)
            | Change::InstructionConsumed(item) => Some(&item.queue),
            Change::InstructionReordered(r) => Some(&r.queue),
            Change::AgentUpdated(agent) => Some(&agent.queue),
            Change::ConfigUpdated(_) => None,
        }
    }
}

/// A recorded change with its place in the database-wide sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Strictly increasing across all processes sharing the store.
    pub seq: u64,
    /// When the change was made.
    pub at: Timestamp,
    /// What changed.
    pub change: Change,
}

/// The start of an agent's call: its generation and its record afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallTicket {
    /// Only a claim carrying this generation can succeed, until a newer call starts.
    pub generation: u64,
    /// The agent's record with this call in flight.
    pub agent: Agent,
}

/// Store calls to make as one write, handed to [`Store::queue_write`], and what to do
/// with their outcome.
///
/// The store calls [`Write::run`] at most once, with a store to make the calls on,
/// and then [`Write::done`] exactly once: with `Ok` once everything `run` changed is
/// durable, or with the error that kept it from being so. A write the store could
/// not start at all gets `done` without `run`.
pub trait Write: Send {
    /// Makes the store calls. Keep the results for [`Write::done`]: until then
    /// they are not durable.
    fn run(&mut self, store: &dyn Store);

    /// The outcome of the calls `run` made: `Ok` when they are durable.
    fn done(self: Box<Self>, outcome: Result<(), StoreError>);
}

/// Persistence for the queue.
///
/// # Contract
///
/// Every method is atomic: it happens entirely or not at all, and concurrent
/// callers — threads or other processes sharing the same store — observe some
/// serial order of them. Every successful mutation appends its [`Change`]s to the
/// event log in that same atomic step, so a reader of [`Store::events_after`] sees
/// a change if and only if it happened. A mutation that returns `Ok` is durable.
///
/// Every instruction and every agent belongs to one queue ([`QueueName`]); the
/// queues share nothing but the settings. Within a queue, order is ascending
/// `position`, then `created_at`, then `id`. Pending instructions may be edited,
/// deleted and reordered; consumed ones are read-only except for
/// [`Store::unclaim`]. An agent is known by its [`Caller`]: its name on its queue.
/// [`Store::claim`] consumes the first pending instruction of the caller's queue
/// that is [for the caller](Instruction::is_for) — addressed to nobody or to it —
/// only if `generation` is still the caller's newest; checking the generation,
/// picking the head and marking it consumed are one step, so no instruction is
/// ever delivered twice or lost to a race.
///
/// A queue exists once an instruction was queued on it or an agent called on it;
/// `default` always exists. Reads and reorders of a queue that does not exist
/// fail with [`QueueError::UnknownQueue`].
///
/// Methods take the time as an argument and never read a clock, so the same calls
/// give the same results in every implementation.
///
/// # The rules are queue-core's
///
/// A store decides nothing itself: what a claim may take, what an edit, delete,
/// requeue, unclaim or reorder may do in which state, the generation check, the
/// bookkeeping of a call's start and end and where positions go are the
/// transitions of [`Instruction`] and [`Agent`] and the functions of
/// [`rules`](crate::rules), which every store applies to what it read. A store
/// only finds, locks and writes. Where it must sort or filter in its own query
/// language, it mirrors the rule named there (`rules::queue_order`, ...).
///
/// # Required and provided methods
///
/// A store implements the basic methods, each one atomic step: [`add`](Store::add),
/// [`get`](Store::get), [`edit`](Store::edit), [`delete`](Store::delete),
/// [`requeue`](Store::requeue), [`reorder`](Store::reorder),
/// [`list`](Store::list), [`counts`](Store::counts), [`queues`](Store::queues),
/// [`begin_call`](Store::begin_call), [`claim`](Store::claim),
/// [`end_call`](Store::end_call), [`unclaim`](Store::unclaim),
/// [`agents`](Store::agents), [`settings`](Store::settings),
/// [`update_settings`](Store::update_settings),
/// [`events_after`](Store::events_after), [`last_event_seq`](Store::last_event_seq)
/// and [`change_token`](Store::change_token).
///
/// The rest have default implementations made of those, correct for every store.
/// They are part of the contract because the service needs what only a store can
/// give, never because a rule lives in them: a store overrides one only to give
/// the same answer cheaper or more atomically.
///
/// - [`claim_and_end`](Store::claim_and_end) and
///   [`begin_and_claim`](Store::begin_and_claim): a delivery's claim and the
///   records of its call in one transaction, so one durable commit (one fsync)
///   instead of two or three, and no call left "in flight" after a crash between
///   them. Defaults: the steps one after the other.
/// - [`queue_write`](Store::queue_write): hands calls to the store's writer
///   thread, which commits many writes as one group; the one way an async caller
///   gets group commit without a blocking thread of its own. Default: the write
///   is given back and the caller makes its calls.
/// - [`list_each`](Store::list_each): a listing streamed row by row. Default:
///   [`list`](Store::list), then each item.
/// - [`overview`](Store::overview) and
///   [`overview_at_once`](Store::overview_at_once): the status page's three reads
///   as one consistent snapshot, and without blocking from a cache while it is
///   current. Defaults: the three reads; no answer at once.
/// - [`notify_changes`](Store::notify_changes): pushed news of commits instead of
///   polling [`change_token`](Store::change_token). Default: no push.
///
/// What an override must keep is on each method. The contract suite
/// (`store-contract`) holds a store's overrides to the same results as the
/// defaults.
pub trait Store: Send + Sync {
    /// Queues a new pending instruction at the end of its queue, which comes into
    /// being if it is new.
    fn add(&self, new: NewInstruction, now: Timestamp) -> Result<Instruction, QueueError>;

    /// One instruction, if it exists.
    fn get(&self, id: InstructionId) -> Result<Option<Instruction>, QueueError>;

    /// Replaces a pending instruction's content. `NotFound`, or `Conflict` if consumed.
    fn edit(
        &self,
        id: InstructionId,
        content: Content,
        now: Timestamp,
    ) -> Result<Instruction, QueueError>;

    /// Deletes a pending instruction and returns it as it was. `NotFound`, or
    /// `Conflict` if consumed.
    fn delete(&self, id: InstructionId, now: Timestamp) -> Result<Instruction, QueueError>;

    /// Queues a pending copy (with id `new_id`) of a consumed instruction at the end
    /// of its queue, for the same agent if it was addressed. `NotFound`, or
    /// `Conflict` if it is still pending.
    fn requeue(
        &self,
        id: InstructionId,
        new_id: InstructionId,
        now: Timestamp,
    ) -> Result<Instruction, QueueError>;

    /// Puts the pending instructions of `queue` in the order of `ids`, which must
    /// name each of them exactly once (else `Conflict`). Returns them in order.
    fn reorder(
        &self,
        queue: &QueueName,
        ids: &[InstructionId],
        now: Timestamp,
    ) -> Result<Vec<Instruction>, QueueError>;

    /// A page of the instructions of `queue` (see [`StatusFilter`] for the order).
    fn list(
        &self,
        queue: &QueueName,
        filter: StatusFilter,
        page: Page,
    ) -> Result<Listing, QueueError>;

    /// [`Store::list`], handing the items to `each` one at a time as they are read
    /// and returning the total; a store that can read row by row never holds the
    /// whole listing, so a listing of thousands costs no more memory than its
    /// output. The default lists, then hands the items over.
    fn list_each(
        &self,
        queue: &QueueName,
        filter: StatusFilter,
        page: Page,
        each: &mut dyn FnMut(&Instruction),
    ) -> Result<u64, QueueError> {
        let listing = self.list(queue, filter, page)?;
        listing.items.iter().for_each(each);
        Ok(listing.total)
    }

    /// Pending and consumed counts of `queue`.
    fn counts(&self, queue: &QueueName) -> Result<Counts, QueueError>;

    /// Every queue that exists, by name, with its counts.
    fn queues(&self) -> Result<Vec<QueueCounts>, QueueError>;

    /// Starts a call of `caller`: creates the agent on its queue if new (and the
    /// queue with it), bumps its generation, sets `last_seen_at = now` and
    /// `waiting_until = until`.
    fn begin_call(
        &self,
        caller: &Caller,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<CallTicket, QueueError>;

    /// Consumes the first pending instruction for `caller` on its queue if
    /// `generation` is its newest.
    fn claim(&self, caller: &Caller, generation: u64, now: Timestamp) -> Result<Claim, QueueError>;

    /// [`Store::claim`], and when that delivers an instruction, [`Store::end_call`]
    /// of the same call with [`ResultType::Instruction`] at `now`.
    ///
    /// Why it is in the port: a delivery is the hot path, and a store that commits
    /// the two in one transaction pays one durable commit instead of two. An
    /// override must make them one atomic step: either both happened or neither
    /// did (so an error means nothing was claimed). The default runs the two one
    /// after the other; the claim stands even if recording the end fails, since
    /// the instruction is already the caller's.
    fn claim_and_end(
        &self,
        caller: &Caller,
        generation: u64,
        now: Timestamp,
    ) -> Result<Claim, QueueError> {
        let claim = self.claim(caller, generation, now)?;
        if matches!(claim, Claim::Claimed(_)) {
            let _ = self.end_call(caller, generation, ResultType::Instruction, now);
        }
        Ok(claim)
    }

    /// [`Store::begin_call`] and then [`Store::claim_and_end`] of the call it
    /// started. The outer error means the call was not started; the inner result
    /// is the claim's.
    ///
    /// Why it is in the port: a call that finds an instruction waiting — most
    /// calls of a busy agent — then costs one durable commit instead of two. An
    /// override must make it one atomic step, so a failed claim rolls back the
    /// start too (and it answers with the outer error). The default runs the two
    /// one after the other, so the call may have started though the claim failed,
    /// and the caller must then end it.
    fn begin_and_claim(
        &self,
        caller: &Caller,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<(CallTicket, Result<Claim, QueueError>), QueueError> {
        let ticket = self.begin_call(caller, now, until)?;
        let claim = self.claim_and_end(caller, ticket.generation, now);
        Ok((ticket, claim))
    }

    /// Queues `write` (see [`Write`]) to run on a thread the store keeps for its
    /// writes, and returns at once without blocking: an async task can hand a
    /// write over this way without a thread of its own to wait on, and the store
    /// may make the calls of several writes in one transaction. Calls made by
    /// `run` still happen in some serial order with every other call, and each
    /// is atomic on its own, as the contract says.
    ///
    /// A store without such a thread gives the write back (the default), and the
    /// caller runs it where it may block: `run` with this store, then `done`
    /// with `Ok`, since each call of a store is durable when it returns.
    fn queue_write(&self, write: Box<dyn Write>) -> Result<(), Box<dyn Write>> {
        Err(write)
    }

    /// Ends a call: records `last_fetch_at = now` and `last_result_type`, and, if
    /// `generation` is still the newest, clears `waiting_until`.
    fn end_call(
        &self,
        caller: &Caller,
        generation: u64,
        result: ResultType,
        now: Timestamp,
    ) -> Result<Agent, QueueError>;

    /// Returns a consumed instruction whose delivery failed to the head of its
    /// queue, pending again. `NotFound`, or `Conflict` if it is pending.
    fn unclaim(&self, id: InstructionId, now: Timestamp) -> Result<Instruction, QueueError>;

    /// Every agent seen on any queue, most recently seen first.
    fn agents(&self) -> Result<Vec<Agent>, QueueError>;

    /// The settings a person saved.
    fn settings(&self) -> Result<StoredSettings, QueueError>;

    /// [`Store::agents`], [`Store::queues`] and [`Store::settings`] together.
    ///
    /// Why it is in the port: a status page asks for this on every refresh, and a
    /// store can read the three in one consistent snapshot, or answer from a cache.
    /// An override may cache, as long as every change committed before the call
    /// (by any process) shows. The default makes the three reads.
    fn overview(&self) -> Result<Overview, QueueError> {
        Ok(Overview {
            agents: self.agents()?,
            queues: self.queues()?,
            settings: self.settings()?,
        })
    }

    /// [`Store::overview`], if the store can give it at once without blocking:
    /// from a cache that is still current, checked without waiting on a lock or
    /// the disk. `None` (the default) sends the caller to [`Store::overview`]
    /// where it may block. A status page asks on every refresh, and most refreshes
    /// find nothing changed.
    fn overview_at_once(&self) -> Option<Overview> {
        None
    }

    /// Saves the given settings and returns all saved values afterwards.
    fn update_settings(
        &self,
        patch: &SettingsPatch,
        now: Timestamp,
    ) -> Result<StoredSettings, QueueError>;

    /// Up to `limit` events with `seq > after`, oldest first. Old events may have been
    /// pruned; the first returned `seq` then exceeds `after + 1`.
    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, QueueError>;

    /// The newest event's `seq`, 0 when there is none.
    fn last_event_seq(&self) -> Result<u64, QueueError>;

    /// A cheap value that changes whenever a change may have been committed by any
    /// process; pollers compare it before reading events.
    fn change_token(&self) -> Result<u64, StoreError>;

    /// Has the store call `hook` whenever any process may have committed a change,
    /// so that a watcher is told instead of polling [`Store::change_token`]; `true`
    /// if it will. The store calls `hook` on a thread of its own, also after it
    /// lost and regained its source of news, when it cannot tell what it missed;
    /// `hook` must return at once. The default does not push (`false`), and the
    /// caller polls.
    fn notify_changes(&self, hook: ChangeHook) -> bool {
        let _ = hook;
        false
    }
}

/// What [`Store::notify_changes`] calls when a change may have been committed.
pub type ChangeHook = std::sync::Arc<dyn Fn() + Send + Sync>;
