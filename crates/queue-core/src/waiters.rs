//! The `get_user_request` calls waiting in this process, by queue, so that a
//! change wakes only the calls it can concern: an add wakes the calls of its
//! queue (or only its addressee's), a newer call of an agent wakes that agent's
//! older ones, and nothing else wakes anybody.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::store::{Change, Event};
use crate::types::{AgentId, Caller, QueueName, Status};

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
    notify: Arc<Notify>,
}

/// One registered call; dropping it unregisters the call.
pub(crate) struct Waiting<'a> {
    waiters: &'a Waiters,
    caller: Caller,
    key: u64,
    notify: Arc<Notify>,
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
        let notify = Arc::new(Notify::new());
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
                notify: Arc::clone(&notify),
            });
        Waiting {
            waiters: self,
            caller: caller.clone(),
            key,
            notify,
        }
    }

    /// Wakes every call the events can concern.
    pub(crate) fn wake_for<'e>(&self, events: impl IntoIterator<Item = &'e Event>) {
        let mut inner = self.lock();
        for event in events {
            inner.wake_for(&event.change);
        }
    }

    /// Wakes every waiting call: something changed that cannot be told apart
    /// (events that could not be read, or were pruned unread).
    pub(crate) fn wake_all(&self) {
        let inner = self.lock();
        for entry in inner.by_queue.values().flatten() {
            entry.notify.notify_one();
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
                        entry.notify.notify_one();
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
                        entry.notify.notify_one();
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
    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
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
            self.notify.notify_one();
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

    #[tokio::test(start_paused = true)]
    async fn wake_all_wakes_every_queue() {
        let waiters = Waiters::default();
        let a = waiters.register(&caller("a", "x"));
        let b = waiters.register(&caller("b", "y"));
        waiters.wake_all();
        assert!(woken(&a).await && woken(&b).await);
    }
}
