//! [`FaultyStore`]: one wrapper for every test that needs a store to fail, or
//! something to happen right before or after a store call (another process
//! committing, a second call racing in), instead of a hand-written `impl Store`
//! per test.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use queue_core::{
    Agent, CallTicket, Caller, ChangeHook, Claim, Content, Counts, Event, Instruction,
    InstructionId, Listing, NewInstruction, Overview, Page, QueueCounts, QueueError, QueueName,
    ResultType, SettingsPatch, StatusFilter, Store, StoreError, StoredSettings, Timestamp, Write,
};

/// A method of [`Store`], to aim a fault or a hook at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each is the `Store` method of the same name
pub enum Method {
    Add,
    Get,
    Edit,
    Delete,
    Requeue,
    Reorder,
    List,
    ListEach,
    Counts,
    Queues,
    BeginCall,
    Claim,
    ClaimAndEnd,
    BeginAndClaim,
    QueueWrite,
    EndCall,
    Unclaim,
    Agents,
    Settings,
    Overview,
    OverviewAtOnce,
    UpdateSettings,
    EventsAfter,
    LastEventSeq,
    ChangeToken,
    NotifyChanges,
}

impl Method {
    /// Every method of the port.
    pub const ALL: [Method; 26] = [
        Method::Add,
        Method::Get,
        Method::Edit,
        Method::Delete,
        Method::Requeue,
        Method::Reorder,
        Method::List,
        Method::ListEach,
        Method::Counts,
        Method::Queues,
        Method::BeginCall,
        Method::Claim,
        Method::ClaimAndEnd,
        Method::BeginAndClaim,
        Method::QueueWrite,
        Method::EndCall,
        Method::Unclaim,
        Method::Agents,
        Method::Settings,
        Method::Overview,
        Method::OverviewAtOnce,
        Method::UpdateSettings,
        Method::EventsAfter,
        Method::LastEventSeq,
        Method::ChangeToken,
        Method::NotifyChanges,
    ];
}

type Before = Arc<dyn Fn(&FaultyStore) -> Result<(), QueueError> + Send + Sync>;
type After = Arc<dyn Fn(&FaultyStore, &dyn Any) + Send + Sync>;

#[derive(Default)]
struct Hooks {
    before: HashMap<Method, Vec<Before>>,
    after: HashMap<Method, Vec<After>>,
    calls: HashMap<Method, u64>,
}

/// A [`Store`] that passes every call to the store it wraps, except where a test
/// told it otherwise: a method may be made to fail ([`FaultyStore::fail`]), or a
/// hook may run before or after it ([`FaultyStore::before`],
/// [`FaultyStore::after`]). It counts the calls of each method.
///
/// The port's shortcuts — [`Store::claim_and_end`], [`Store::begin_and_claim`],
/// [`Store::list_each`], [`Store::overview`], [`Store::overview_at_once`] and
/// [`Store::queue_write`] — run through the basic methods they are made of, as the
/// port's default implementations do, so a fault aimed at [`Method::Claim`] also
/// hits the claim inside a `begin_and_claim`, and a queued write is given back to
/// its caller, which then makes its calls here. [`FaultyStore::forwarding_shortcuts`]
/// passes them to the wrapped store whole instead (its own atomic versions), where
/// only faults aimed at the shortcut itself apply.
///
/// Hooks get this store: [`FaultyStore::inner`] reaches the wrapped store without
/// faults (a change "by another process"), and a hook may add or remove faults.
/// No lock is held while a hook runs.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    forward_shortcuts: bool,
    hooks: Mutex<Hooks>,
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore")
            .field("forward_shortcuts", &self.forward_shortcuts)
            .finish_non_exhaustive()
    }
}

impl FaultyStore {
    /// Wraps `inner`, without faults yet.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FaultyStore {
            inner,
            forward_shortcuts: false,
            hooks: Mutex::new(Hooks::default()),
        }
    }

    /// Passes the shortcuts to the wrapped store whole rather than through their
    /// parts (see [`FaultyStore`]).
    pub fn forwarding_shortcuts(mut self) -> Self {
        self.forward_shortcuts = true;
        self
    }

    /// The wrapped store, which no fault or hook reaches.
    pub fn inner(&self) -> &dyn Store {
        &*self.inner
    }

    /// Makes every call of `method` from now on fail with `error`, without reaching
    /// the wrapped store. A method that returns no error answers as it does when it
    /// cannot: [`Store::overview_at_once`] `None`, [`Store::notify_changes`]
    /// `false`, [`Store::queue_write`] gives the write back;
    /// [`Store::change_token`] fails with the error's [`StoreError`] (or
    /// [`StoreError::Other`] with its message).
    pub fn fail(&self, method: Method, error: QueueError) {
        self.before(method, move |_| Err(error.clone()));
    }

    /// [`FaultyStore::fail`] for every method at once: the store is down.
    pub fn fail_all(&self, error: QueueError) {
        for method in Method::ALL {
            self.fail(method, error.clone());
        }
    }

    /// Runs `hook` before every call of `method`; an error it returns is the call's
    /// outcome (as with [`FaultyStore::fail`]) and the wrapped store is not called.
    pub fn before(
        &self,
        method: Method,
        hook: impl Fn(&FaultyStore) -> Result<(), QueueError> + Send + Sync + 'static,
    ) {
        self.lock()
            .before
            .entry(method)
            .or_default()
            .push(Arc::new(hook));
    }

    /// Runs `hook` after every call of `method` with what the call returns, as
    /// `&dyn Any`: the method's return type, e.g. `Result<Claim, QueueError>` for
    /// [`Method::Claim`], to downcast.
    pub fn after(
        &self,
        method: Method,
        hook: impl Fn(&FaultyStore, &dyn Any) + Send + Sync + 'static,
    ) {
        self.lock()
            .after
            .entry(method)
            .or_default()
            .push(Arc::new(hook));
    }

    /// Removes every fault and hook of `method`.
    pub fn heal(&self, method: Method) {
        let mut hooks = self.lock();
        hooks.before.remove(&method);
        hooks.after.remove(&method);
    }

    /// Removes every fault and hook.
    pub fn heal_all(&self) {
        let mut hooks = self.lock();
        hooks.before.clear();
        hooks.after.clear();
    }

    /// How many times `method` was called, failed calls included.
    pub fn calls(&self, method: Method) -> u64 {
        self.lock().calls.get(&method).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, Hooks> {
        // A hook that panicked never holds this lock, so a poisoned one is sound.
        self.hooks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a call of `method` and runs its before-hooks; the first error stops.
    fn enter(&self, method: Method) -> Result<(), QueueError> {
        let before = {
            let mut hooks = self.lock();
            *hooks.calls.entry(method).or_default() += 1;
            hooks.before.get(&method).cloned().unwrap_or_default()
        };
        before.iter().try_for_each(|hook| hook(self))
    }

    fn leave(&self, method: Method, out: &dyn Any) {
        let after = self.lock().after.get(&method).cloned().unwrap_or_default();
        for hook in after {
            hook(self, out);
        }
    }

    /// A call of `method`: hooks around `f`, or `fault` of the injected error.
    fn call<R: Any>(
        &self,
        method: Method,
        fault: impl FnOnce(QueueError) -> R,
        f: impl FnOnce() -> R,
    ) -> R {
        let out = match self.enter(method) {
            Ok(()) => f(),
            Err(e) => fault(e),
        };
        self.leave(method, &out);
        out
    }

    /// A call of a shortcut: `f` on the wrapped store, or on its parts here.
    fn shortcut<R: Any>(
        &self,
        method: Method,
        fault: impl FnOnce(QueueError) -> R,
        f: impl FnOnce(&dyn Store) -> R,
    ) -> R {
        self.call(method, fault, || {
            if self.forward_shortcuts {
                f(&*self.inner)
            } else {
                f(&Parts(self))
            }
        })
    }
}

/// The methods a store must implement, passed to a [`FaultyStore`] with its
/// faults; everything else is the port's default, made of these.
struct Parts<'a>(&'a FaultyStore);

macro_rules! required {
    ($target:ident) => {
        fn add(&self, new: NewInstruction, now: Timestamp) -> Result<Instruction, QueueError> {
            required!(@call self, $target, Add, add(new, now))
        }
        fn get(&self, id: InstructionId) -> Result<Option<Instruction>, QueueError> {
            required!(@call self, $target, Get, get(id))
        }
        fn edit(
            &self,
            id: InstructionId,
            content: Content,
            now: Timestamp,
        ) -> Result<Instruction, QueueError> {
            required!(@call self, $target, Edit, edit(id, content, now))
        }
        fn delete(&self, id: InstructionId, now: Timestamp) -> Result<Instruction, QueueError> {
            required!(@call self, $target, Delete, delete(id, now))
        }
        fn requeue(
            &self,
            id: InstructionId,
            new_id: InstructionId,
            now: Timestamp,
        ) -> Result<Instruction, QueueError> {
            required!(@call self, $target, Requeue, requeue(id, new_id, now))
        }
        fn reorder(
            &self,
            queue: &QueueName,
            ids: &[InstructionId],
            now: Timestamp,
        ) -> Result<Vec<Instruction>, QueueError> {
            required!(@call self, $target, Reorder, reorder(queue, ids, now))
        }
        fn list(
            &self,
            queue: &QueueName,
            filter: StatusFilter,
            page: Page,
        ) -> Result<Listing, QueueError> {
            required!(@call self, $target, List, list(queue, filter, page))
        }
        fn counts(&self, queue: &QueueName) -> Result<Counts, QueueError> {
            required!(@call self, $target, Counts, counts(queue))
        }
        fn queues(&self) -> Result<Vec<QueueCounts>, QueueError> {
            required!(@call self, $target, Queues, queues())
        }
        fn begin_call(
            &self,
            caller: &Caller,
            now: Timestamp,
            until: Timestamp,
        ) -> Result<CallTicket, QueueError> {
            required!(@call self, $target, BeginCall, begin_call(caller, now, until))
        }
        fn claim(
            &self,
            caller: &Caller,
            generation: u64,
            now: Timestamp,
        ) -> Result<Claim, QueueError> {
            required!(@call self, $target, Claim, claim(caller, generation, now))
        }
        fn end_call(
            &self,
            caller: &Caller,
            generation: u64,
            result: ResultType,
            now: Timestamp,
        ) -> Result<Agent, QueueError> {
            required!(@call self, $target, EndCall, end_call(caller, generation, result, now))
        }
        fn unclaim(&self, id: InstructionId, now: Timestamp) -> Result<Instruction, QueueError> {
            required!(@call self, $target, Unclaim, unclaim(id, now))
        }
        fn agents(&self) -> Result<Vec<Agent>, QueueError> {
            required!(@call self, $target, Agents, agents())
        }
        fn settings(&self) -> Result<StoredSettings, QueueError> {
            required!(@call self, $target, Settings, settings())
        }
        fn update_settings(
            &self,
            patch: &SettingsPatch,
            now: Timestamp,
        ) -> Result<StoredSettings, QueueError> {
            required!(@call self, $target, UpdateSettings, update_settings(patch, now))
        }
        fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, QueueError> {
            required!(@call self, $target, EventsAfter, events_after(after, limit))
        }
        fn last_event_seq(&self) -> Result<u64, QueueError> {
            required!(@call self, $target, LastEventSeq, last_event_seq())
        }
        fn change_token(&self) -> Result<u64, StoreError> {
            required!(@token self, $target)
        }
    };
    (@call $self:ident, faulty, $method:ident, $name:ident($($arg:expr),*)) => {
        $self.call(Method::$method, Err, || $self.inner.$name($($arg),*))
    };
    (@call $self:ident, parts, $method:ident, $name:ident($($arg:expr),*)) => {
        $self.0.$name($($arg),*)
    };
    (@token $self:ident, faulty) => {
        $self.call(
            Method::ChangeToken,
            |e| {
                Err(match e {
                    QueueError::Store(e) => e,
                    other => StoreError::Other(other.to_string()),
                })
            },
            || $self.inner.change_token(),
        )
    };
    (@token $self:ident, parts) => {
        $self.0.change_token()
    };
}

impl Store for Parts<'_> {
    required!(parts);
}

impl Store for FaultyStore {
    required!(faulty);

    fn list_each(
        &self,
        queue: &QueueName,
        filter: StatusFilter,
        page: Page,
        each: &mut dyn FnMut(&Instruction),
    ) -> Result<u64, QueueError> {
        self.shortcut(Method::ListEach, Err, |s| {
            s.list_each(queue, filter, page, each)
        })
    }

    fn claim_and_end(
        &self,
        caller: &Caller,
        generation: u64,
        now: Timestamp,
    ) -> Result<Claim, QueueError> {
        self.shortcut(Method::ClaimAndEnd, Err, |s| {
            s.claim_and_end(caller, generation, now)
        })
    }

    fn begin_and_claim(
        &self,
        caller: &Caller,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<(CallTicket, Result<Claim, QueueError>), QueueError> {
        self.shortcut(Method::BeginAndClaim, Err, |s| {
            s.begin_and_claim(caller, now, until)
        })
    }

    fn queue_write(&self, write: Box<dyn Write>) -> Result<(), Box<dyn Write>> {
        let out = match self.enter(Method::QueueWrite) {
            Ok(()) if self.forward_shortcuts => self.inner.queue_write(write),
            // Given back, the write's calls are made on this store, faults and all.
            _ => Err(write),
        };
        self.leave(Method::QueueWrite, &out);
        out
    }

    fn overview(&self) -> Result<Overview, QueueError> {
        self.shortcut(Method::Overview, Err, |s| s.overview())
    }

    fn overview_at_once(&self) -> Option<Overview> {
        self.shortcut(Method::OverviewAtOnce, |_| None, |s| s.overview_at_once())
    }

    fn notify_changes(&self, hook: ChangeHook) -> bool {
        // Not a shortcut: whether the wrapped store pushes news is its own to say.
        self.call(
            Method::NotifyChanges,
            |_| false,
            || self.inner.notify_changes(hook),
        )
    }
}
