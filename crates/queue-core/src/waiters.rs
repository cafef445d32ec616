//! The `get_user_request` calls waiting in this process, by queue, so that a
//! change wakes only the calls it can concern: an add wakes the calls of its
//! queue (or only its addressee's), a newer call of an agent wakes that agent's
//! older ones, and nothing else wakes anybody.
//!
//! Each call also has a [`Slot`]: an add in this process can take the head of
//! the queue for a waiting call in the add's own commit and leave it there
//! (see `Service::hand_off`), so that a wake-up costs one durable commit, not
//! two in a row. A call waiting in another process is not handed anything: that
//! process may have died without a word, and what it was handed would be lost
//! with it; it is woken and claims for itself.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::error::QueueError;
use crate::service::Undelivered;
use crate::store::{Change, Counts, Event};
use crate::types::{AgentId, Caller, InstructionId, QueueName, Status};

/// The registry of waiting calls; one per service.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_key: u64,
    by_queue: HashMap<QueueName, Vec<Entry>>,
    /// The newest generation seen in an event, per caller with a call registered:
    /// a call that learns its own generation after a newer call's event went
    /// out finds it here.
    newest: HashMap<Caller, u64>,
}

#[derive(Debug)]
struct Entry {
    key: u64,
    agent: AgentId,
    /// `None` until the call's start is recorded.
    generation: Option<u64>,
    slot: Arc<Slot>,
}

/// One registered call; dropping it unregisters the call.
pub(crate) struct Waiting<'a> {
    waiters: &'a Waiters,
    caller: Caller,
    key: u64,
    slot: Arc<Slot>,
}

/// A call's wake-up, and the place where an add leaves the instruction it claimed
/// for the call.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    notify: Notify,
    state: Mutex<SlotState>,
}

#[derive(Debug, Default)]
enum SlotState {
    /// The call is looking at the queue itself (or has not looked yet): nothing
    /// may be claimed for it.
    #[default]
    Looking,
    /// The call is asleep and takes what an add claims for it.
    Open,
    /// An add is claiming for the call; `waited` once the call found it so and
    /// sleeps until the add is settled.
    Reserved { waited: bool },
    /// Claimed for the call by a durable add, not yet taken.
    Handed(Box<Handed>),
    /// The call is over; what an add claimed for it now goes back to the queue.
    Closed,
}

/// An instruction claimed for a waiting call in an add's durable commit, with
/// the count of what was left on the queue in that commit. Whoever drops it
/// without delivering it puts the instruction back first in line.
#[derive(Debug)]
pub(crate) struct Handed {
    /// The instruction, consumed by the call's agent, until delivered.
    pub(crate) claimed: Undelivered,
    /// What was left on its queue.
    pub(crate) counts: Result<Counts, QueueError>,
}

/// What a call finds in its slot when it looks.
#[derive(Debug)]
pub(crate) enum Turn {
    /// Nothing: the call looks at the queue itself.
    Free,
    /// An add is claiming for the call right now; it sleeps until that settles.
    Reserved,
    /// An add claimed this for the call.
    Handed(Box<Handed>),
}

/// A waiting call an add may claim for, reserved so that the call does not claim
/// for itself meanwhile. Dropped without [`Reservation::give`], it lets the call
/// look for itself again.
pub(crate) struct Reservation {
    key: u64,
    caller: Caller,
    generation: u64,
    slot: Arc<Slot>,
    settled: bool,
}

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update below is complete before it can panic: a poisoned lock
        // holds nothing half-done.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a call of `caller`, before its first look at the queue, so that
    /// a change committed after that look wakes it.
    pub(crate) fn register(&self, caller: &Caller) -> Waiting<'_> {
        let slot = Arc::new(Slot::default());
        let mut inner = self.lock();
        inner.next_key += 1;
        let key = inner.next_key;
        inner
            .by_queue
            .entry(caller.queue.clone())
            .or_default()
            .push(Entry {
                key,
                agent: caller.agent.clone(),
                generation: None,
                slot: Arc::clone(&slot),
            });
        Waiting {
            waiters: self,
            caller: caller.clone(),
            key,
            slot,
        }
    }

    /// Wakes every call the events can concern. An instruction that a later event
    /// of the same batch shows taken or deleted wakes nobody: an add handed to a
    /// waiting call gives the others nothing to look for.
    pub(crate) fn wake_for<'e>(&self, events: impl IntoIterator<Item = &'e Event>) {
        let events: Vec<&Event> = events.into_iter().collect();
        let gone: HashSet<InstructionId> = events
            .iter()
            .filter_map(|e| match &e.change {
                Change::InstructionConsumed(item) | Change::InstructionDeleted(item) => {
                    Some(item.id)
                }
                _ => None,
            })
            .collect();
        let mut inner = self.lock();
        for event in events {
            match &event.change {
                Change::InstructionCreated(item) | Change::InstructionUpdated(item)
                    if gone.contains(&item.id) => {}
                change => inner.wake_for(change),
            }
        }
    }

    /// Reserves the longest-waiting call on `queue` that may take an instruction
    /// for `to` (anyone when `None`) and is asleep, passing over the calls in
    /// `passed` (reservation keys an add already tried).
    pub(crate) fn reserve(
        &self,
        queue: &QueueName,
        to: Option<&AgentId>,
        passed: &[u64],
    ) -> Option<Reservation> {
        let inner = self.lock();
        let entries = inner.by_queue.get(queue)?;
        entries.iter().find_map(|entry| {
            let generation = entry.generation?;
            let caller = Caller::new(queue.clone(), entry.agent.clone());
            let superseded = inner
                .newest
                .get(&caller)
                .is_some_and(|&newest| newest > generation);
            if superseded || passed.contains(&entry.key) || to.is_some_and(|to| *to != entry.agent)
            {
                return None;
            }
            let mut state = entry.slot.lock();
            if !matches!(*state, SlotState::Open) {
                return None;
            }
            *state = SlotState::Reserved { waited: false };
            Some(Reservation {
                key: entry.key,
                caller,
                generation,
                slot: Arc::clone(&entry.slot),
                settled: false,
            })
        })
    }

    /// Wakes every waiting call: something changed that cannot be told apart
    /// (events that could not be read, or were pruned unread).
    pub(crate) fn wake_all(&self) {
        let inner = self.lock();
        for entry in inner.by_queue.values().flatten() {
            entry.slot.notify.notify_one();
        }
    }

    /// How many calls are registered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().by_queue.values().map(Vec::len).sum()
    }
}

impl Inner {
    fn wake_for(&mut self, change: &Change) {
        match change {
            // A new instruction, or one back in line: the calls that may take it.
            Change::InstructionCreated(item) | Change::InstructionUpdated(item)
                if item.status == Status::Pending =>
            {
                let Some(entries) = self.by_queue.get(&item.queue) else {
                    return;
                };
                for entry in entries {
                    if item.to.as_ref().is_none_or(|to| *to == entry.agent) {
                        entry.slot.notify.notify_one();
                    }
                }
            }
            // A call started: the agent's older calls are superseded.
            Change::AgentUpdated(agent) => {
                let caller = agent.caller();
                let Some(entries) = self.by_queue.get(&caller.queue) else {
                    return;
                };
                let mut any = false;
                for entry in entries.iter().filter(|e| e.agent == caller.agent) {
                    any = true;
                    if entry.generation.is_some_and(|g| g < agent.generation) {
                        entry.slot.notify.notify_one();
                    }
                }
                if any {
                    let newest = self.newest.entry(caller).or_default();
                    *newest = (*newest).max(agent.generation);
                }
            }
            // Taking, deleting or reordering gives nobody anything new, and the
            // settings apply to the next call.
            _ => {}
        }
    }
}

impl Waiting<'_> {
    /// The wake-up of this call: a wake that came while it was not waiting is
    /// kept, so a change between a look and the wait is not missed.
    #[cfg(test)]
    pub(crate) fn notify(&self) -> &Notify {
        &self.slot.notify
    }

    /// The call's slot, for the call to look in and close.
    pub(crate) fn slot(&self) -> Arc<Slot> {
        Arc::clone(&self.slot)
    }

    /// Records the call's generation once its start is recorded; when a newer
    /// call of the agent was seen meanwhile, the call is woken to find out.
    pub(crate) fn started(&self, generation: u64) {
        let mut inner = self.waiters.lock();
        if let Some(entry) = inner
            .by_queue
            .get_mut(&self.caller.queue)
            .and_then(|entries| entries.iter_mut().find(|e| e.key == self.key))
        {
            entry.generation = Some(generation);
        }
        if inner
            .newest
            .get(&self.caller)
            .is_some_and(|&newest| newest > generation)
        {
            self.slot.notify.notify_one();
        }
    }
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // Every update is one assignment: a poisoned lock holds nothing half-done.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The call's wake-up.
    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }

    /// The call is about to look at the queue: what an add left it, or leave to
    /// look itself (nothing can be claimed for it until it sleeps again).
    pub(crate) fn take_turn(&self) -> Turn {
        let mut state = self.lock();
        match std::mem::take(&mut *state) {
            SlotState::Reserved { .. } => {
                *state = SlotState::Reserved { waited: true };
                Turn::Reserved
            }
            SlotState::Handed(handed) => Turn::Handed(handed),
            SlotState::Closed => {
                *state = SlotState::Closed;
                Turn::Free
            }
            SlotState::Looking | SlotState::Open => Turn::Free,
        }
    }

    /// The call found nothing and goes to sleep: an add may claim for it now.
    pub(crate) fn open(&self) {
        let mut state = self.lock();
        if matches!(*state, SlotState::Looking) {
            *state = SlotState::Open;
        }
    }

    /// The call is returning: nothing more may be claimed for it. Gives what an
    /// add left it, or [`Turn::Reserved`] while an add is still settling (the call
    /// is woken when it has).
    pub(crate) fn close(&self) -> Turn {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, SlotState::Closed) {
            SlotState::Reserved { .. } => {
                *state = SlotState::Reserved { waited: true };
                Turn::Reserved
            }
            SlotState::Handed(handed) => Turn::Handed(handed),
            _ => Turn::Free,
        }
    }

    /// The call is gone without returning: nothing more may be claimed for it,
    /// and what an add left it is given back, to go back in line when dropped.
    /// An add still settling finds the slot closed and puts its claim back itself.
    pub(crate) fn abandon(&self) -> Option<Box<Handed>> {
        // Taken out under the lock, dropped by the caller after it: putting an
        // instruction back is a write, whose events wake calls through `Waiters`,
        // whose lock is taken before a slot's.
        let state = std::mem::replace(&mut *self.lock(), SlotState::Closed);
        match state {
            SlotState::Handed(handed) => Some(handed),
            _ => None,
        }
    }
}

impl Reservation {
    /// The reserved call's agent and queue.
    pub(crate) fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The reserved call's generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// The key to pass over this call on the next try.
    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    /// Leaves `handed`, claimed in a durable commit, for the call and wakes it;
    /// gives it back if the call is gone meanwhile.
    pub(crate) fn give(mut self, handed: Box<Handed>) -> Result<(), Box<Handed>> {
        self.settled = true;
        let mut state = self.slot.lock();
        if !matches!(*state, SlotState::Reserved { .. }) {
            return Err(handed);
        }
        *state = SlotState::Handed(handed);
        drop(state);
        self.slot.notify.notify_one();
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut state = self.slot.lock();
        if let SlotState::Reserved { waited } = *state {
            *state = SlotState::Open;
            drop(state);
            // Only a call that found the reservation sleeps on it; one still asleep
            // from before has nothing new to look at.
            if waited {
                self.slot.notify.notify_one();
            }
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut inner = self.waiters.lock();
        let queue = &self.caller.queue;
        let Some(entries) = inner.by_queue.get_mut(queue) else {
            return;
        };
        entries.retain(|e| e.key != self.key);
        let agent_left = entries.iter().any(|e| e.agent == self.caller.agent);
        if entries.is_empty() {
            inner.by_queue.remove(queue);
        }
        if !agent_left {
            inner.newest.remove(&self.caller);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{
        Agent, Content, Instruction, InstructionId, NewInstruction, QueueName, Timestamp,
    };
    use std::time::Duration;

    fn caller(queue: &str, agent: &str) -> Caller {
        Caller::new(
            QueueName::parse(queue).unwrap(),
            AgentId::parse(agent).unwrap(),
        )
    }

    fn event(change: Change) -> Event {
        Event {
            seq: 1,
            at: Timestamp::EPOCH,
            change,
        }
    }

    fn added(queue: &str, to: Option<&str>) -> Event {
        let new = NewInstruction::new(InstructionId::from_u128(1), Content::parse("x").unwrap())
            .on(QueueName::parse(queue).unwrap())
            .to(to.map(|a| AgentId::parse(a).unwrap()));
        event(Change::InstructionCreated(Instruction::pending(
            new,
            Timestamp::EPOCH,
            1,
        )))
    }

    fn started(c: &Caller, generation: u64) -> Event {
        let mut agent = Agent::first_seen(c, Timestamp::EPOCH);
        agent.generation = generation;
        event(Change::AgentUpdated(agent))
    }

    /// Whether a wake is waiting for `w`, taking it.
    async fn woken(w: &Waiting<'_>) -> bool {
        tokio::time::timeout(Duration::from_millis(1), w.notify().notified())
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn an_add_wakes_only_the_calls_that_may_take_it() {
        let waiters = Waiters::default();
        let (anna, bob, other) = (
            waiters.register(&caller("web", "anna")),
            waiters.register(&caller("web", "bob")),
            waiters.register(&caller("api", "anna")),
        );
        waiters.wake_for([&added("web", None)]);
        assert!(woken(&anna).await && woken(&bob).await);
        assert!(!woken(&other).await, "another queue's add");
        waiters.wake_for([&added("web", Some("bob"))]);
        assert!(!woken(&anna).await, "addressed to bob");
        assert!(woken(&bob).await);
        assert_eq!(waiters.len(), 3);
        drop((anna, bob, other));
        assert_eq!(waiters.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_call_wakes_only_the_older_calls_of_its_agent() {
        let waiters = Waiters::default();
        let c = caller("web", "anna");
        let old = waiters.register(&c);
        old.started(1);
        let bob = waiters.register(&caller("web", "bob"));
        bob.started(1);
        let new = waiters.register(&c);
        // The newer call's own start does not wake it, nor another agent.
        waiters.wake_for([&started(&c, 2)]);
        new.started(2);
        assert!(woken(&old).await);
        assert!(!woken(&new).await);
        assert!(!woken(&bob).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_learns_its_generation_late_still_sees_a_newer_one() {
        let waiters = Waiters::default();
        let c = caller("web", "anna");
        let slow = waiters.register(&c);
        // Generation 3 went out before the call learnt it is generation 2.
        waiters.wake_for([&started(&c, 3)]);
        assert!(!woken(&slow).await);
        slow.started(2);
        assert!(woken(&slow).await);
    }

    /// An instruction handed to a call, owned by a service over an empty store:
    /// one that is put back is not there, and nothing changes.
    fn handed(queue: &str) -> Box<Handed> {
        let Change::InstructionCreated(item) = added(queue, None).change else {
            unreachable!("added makes a created event")
        };
        let service = crate::Service::builder(std::sync::Arc::new(crate::MemoryStore::new()))
            .build()
            .unwrap();
        Box::new(Handed {
            claimed: Undelivered::new(&service, item),
            counts: Ok(Counts::default()),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn an_add_reserves_the_longest_waiting_asleep_call_that_may_take_it() {
        let waiters = Waiters::default();
        let web = QueueName::parse("web").unwrap();
        let (anna, bob) = (
            waiters.register(&caller("web", "anna")),
            waiters.register(&caller("web", "bob")),
        );
        anna.started(1);
        bob.started(1);
        assert!(waiters.reserve(&web, None, &[]).is_none(), "nobody asleep");
        bob.slot().open();
        anna.slot().open();
        let first = waiters.reserve(&web, None, &[]).unwrap();
        assert_eq!(first.caller(), &caller("web", "anna"), "anna came first");
        // anna is reserved now; bob is next, and the only one for bob.
        let second = waiters.reserve(&web, None, &[]).unwrap();
        assert_eq!(second.caller(), &caller("web", "bob"));
        drop(second);
        let bob_agent = AgentId::parse("bob").unwrap();
        let for_bob = waiters.reserve(&web, Some(&bob_agent), &[]).unwrap();
        assert_eq!(for_bob.caller(), &caller("web", "bob"));
        let key = for_bob.key();
        drop((first, for_bob));
        assert_eq!(
            waiters.reserve(&web, None, &[key]).unwrap().caller(),
            &caller("web", "anna"),
            "bob passed over"
        );
        assert!(
            waiters
                .reserve(&QueueName::default_queue(), None, &[])
                .is_none()
        );
        // A call superseded by a newer one seen in an event is not reserved.
        waiters.wake_for([&started(&caller("web", "anna"), 2)]);
        let anna_agent = AgentId::parse("anna").unwrap();
        assert!(waiters.reserve(&web, Some(&anna_agent), &[]).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_reservation_is_given_or_released_exactly_once() {
        let waiters = Waiters::default();
        let web = QueueName::parse("web").unwrap();
        let anna = waiters.register(&caller("web", "anna"));
        anna.started(1);
        let slot = anna.slot();
        slot.open();

        // Released unused while the call still sleeps: nothing to wake it for.
        drop(waiters.reserve(&web, None, &[]).unwrap());
        assert!(!woken(&anna).await);
        // Released after the call found it reserved: the call looks again.
        let reservation = waiters.reserve(&web, None, &[]).unwrap();
        assert!(matches!(slot.take_turn(), Turn::Reserved));
        drop(reservation);
        assert!(woken(&anna).await);
        assert!(matches!(slot.take_turn(), Turn::Free));
        assert!(waiters.reserve(&web, None, &[]).is_none(), "looking itself");

        // Given: the call is woken and finds it, once.
        slot.open();
        let reservation = waiters.reserve(&web, None, &[]).unwrap();
        assert!(reservation.give(handed("web")).is_ok());
        assert!(woken(&anna).await);
        assert!(matches!(slot.take_turn(), Turn::Handed(_)));
        assert!(matches!(slot.take_turn(), Turn::Free));

        // A call that closes while an add settles waits for it, then has it.
        slot.open();
        let reservation = waiters.reserve(&web, None, &[]).unwrap();
        assert!(matches!(slot.close(), Turn::Reserved));
        assert!(reservation.give(handed("web")).is_ok());
        assert!(matches!(slot.close(), Turn::Handed(_)));
        assert!(matches!(slot.close(), Turn::Free));

        // A call gone before the add settles gets nothing: the add takes it back.
        let bob = waiters.register(&caller("web", "bob"));
        bob.started(1);
        bob.slot().open();
        let reservation = waiters.reserve(&web, None, &[]).unwrap();
        assert_eq!(reservation.caller(), &caller("web", "bob"));
        assert!(bob.slot().abandon().is_none());
        assert!(reservation.give(handed("web")).is_err());
        // And one gone after it settled gives it back.
        let carol = waiters.register(&caller("web", "carol"));
        carol.started(1);
        carol.slot().open();
        let reservation = waiters.reserve(&web, None, &[]).unwrap();
        assert!(reservation.give(handed("web")).is_ok());
        assert!(carol.slot().abandon().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn an_instruction_taken_in_the_same_batch_wakes_nobody() {
        let waiters = Waiters::default();
        let anna = waiters.register(&caller("web", "anna"));
        let created = added("web", None);
        let Change::InstructionCreated(item) = &created.change else {
            unreachable!()
        };
        let mut item = item.clone();
        item.status = Status::Consumed;
        let taken = event(Change::InstructionConsumed(item));
        waiters.wake_for([&created, &taken]);
        assert!(!woken(&anna).await, "handed to another call in the add");
        waiters.wake_for([&created]);
        assert!(woken(&anna).await);
    }

    #[tokio::test(start_paused = true)]
    async fn wake_all_wakes_every_queue() {
        let waiters = Waiters::default();
        let a = waiters.register(&caller("a", "x"));
        let b = waiters.register(&caller("b", "y"));
        waiters.wake_all();
        assert!(woken(&a).await && woken(&b).await);
    }
}
