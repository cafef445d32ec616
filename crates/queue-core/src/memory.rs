//! An in-memory [`Store`] for tests and embedders: the reference model the SQLite
//! store is checked against.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use crate::error::{QueueError, StoreError};
use crate::rules;
use crate::settings::{SettingsPatch, StoredSettings};
use crate::store::{
    CallTicket, Change, Claim, Counts, Event, Listing, Page, QueueCounts, Reordered, StatusFilter,
    Store,
};
use crate::types::{
    Agent, Caller, Content, Instruction, InstructionId, NewInstruction, QueueName, ResultType,
    Status, Timestamp,
};

/// How many events a store keeps for replay; older ones are pruned.
pub const EVENT_RETENTION: u64 = 10_000;

/// A [`Store`] that keeps everything in memory behind one lock.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    items: HashMap<InstructionId, Instruction>,
    agents: HashMap<Caller, Agent>,
    /// Every queue an instruction was ever queued on (agents add theirs).
    used: BTreeSet<QueueName>,
    settings: StoredSettings,
    events: std::collections::VecDeque<Event>,
    last_seq: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave half a change behind (every
        // change is applied after its checks), so a poisoned lock is still sound.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn record(&mut self, now: Timestamp, change: Change) {
        self.last_seq += 1;
        self.events.push_back(Event {
            seq: self.last_seq,
            at: now,
            change,
        });
        while self.events.len() as u64 > EVENT_RETENTION {
            self.events.pop_front();
        }
    }

    /// Every queue that exists: `default`, those with instructions, those with agents.
    fn queue_names(&self) -> BTreeSet<QueueName> {
        let mut names = self.used.clone();
        names.insert(QueueName::default_queue());
        names.extend(self.agents.keys().map(|c| c.queue.clone()));
        names
    }

    fn ensure_queue(&self, queue: &QueueName) -> Result<(), QueueError> {
        rules::check_queue(queue, || {
            Ok::<_, QueueError>(
                self.used.contains(queue) || self.agents.keys().any(|c| c.queue == *queue),
            )
        })
    }

    fn pending_sorted(&self, queue: &QueueName) -> Vec<&Instruction> {
        let mut v: Vec<_> = self
            .items
            .values()
            .filter(|i| i.status == Status::Pending && i.queue == *queue)
            .collect();
        v.sort_by(|a, b| rules::queue_order(a, b));
        v
    }

    fn consumed_sorted(&self, queue: &QueueName) -> Vec<&Instruction> {
        let mut v: Vec<_> = self
            .items
            .values()
            .filter(|i| i.status == Status::Consumed && i.queue == *queue)
            .collect();
        v.sort_by(|a, b| rules::consumed_order(a, b));
        v
    }

    fn counts(&self, queue: &QueueName) -> Counts {
        let mut counts = Counts::default();
        for item in self.items.values().filter(|i| i.queue == *queue) {
            match item.status {
                Status::Pending => counts.pending += 1,
                Status::Consumed => counts.consumed += 1,
            }
        }
        counts
    }

    fn next_position(&self) -> i64 {
        rules::next_position(self.items.values().map(|i| i.position).max())
    }

    fn get_mut(&mut self, id: InstructionId) -> Result<&mut Instruction, QueueError> {
        self.items.get_mut(&id).ok_or(QueueError::NotFound(id))
    }

    fn insert_pending(
        &mut self,
        new: NewInstruction,
        now: Timestamp,
    ) -> Result<Instruction, QueueError> {
        if self.items.contains_key(&new.id) {
            return Err(StoreError::Other(format!("duplicate instruction id {}", new.id)).into());
        }
        let item = Instruction::pending(new, now, self.next_position());
        self.used.insert(item.queue.clone());
        self.items.insert(item.id, item.clone());
        self.record(now, Change::InstructionCreated(item.clone()));
        Ok(item)
    }
}

/// A page of `all` with the size of the whole.
fn listing(all: &[Instruction], page: Page) -> Listing {
    Listing {
        items: window(all, page),
        total: all.len() as u64,
    }
}

fn window<T: Clone>(items: &[T], page: Page) -> Vec<T> {
    let start = usize::try_from(page.offset)
        .unwrap_or(usize::MAX)
        .min(items.len());
    let end = match page.limit {
        Some(limit) => start.saturating_add(usize::try_from(limit).unwrap_or(usize::MAX)),
        None => items.len(),
    }
    .min(items.len());
    items[start..end].to_vec()
}

impl Store for MemoryStore {
    fn add(&self, new: NewInstruction, now: Timestamp) -> Result<Instruction, QueueError> {
        self.lock().insert_pending(new, now)
    }

    fn get(&self, id: InstructionId) -> Result<Option<Instruction>, QueueError> {
        Ok(self.lock().items.get(&id).cloned())
    }

    fn edit(
        &self,
        id: InstructionId,
        content: Content,
        now: Timestamp,
    ) -> Result<Instruction, QueueError> {
        let mut g = self.lock();
        let item = g.get_mut(id)?;
        *item = item.clone().edited(content, now)?;
        let item = item.clone();
        g.record(now, Change::InstructionUpdated(item.clone()));
        Ok(item)
    }

    fn delete(&self, id: InstructionId, now: Timestamp) -> Result<Instruction, QueueError> {
        let mut g = self.lock();
        g.get_mut(id)?.ensure_pending()?;
        let item = g.items.remove(&id).ok_or(QueueError::NotFound(id))?;
        g.record(now, Change::InstructionDeleted(item.clone()));
        Ok(item)
    }

    fn requeue(
        &self,
        id: InstructionId,
        new_id: InstructionId,
        now: Timestamp,
    ) -> Result<Instruction, QueueError> {
        let mut g = self.lock();
        let source = g.get_mut(id)?;
        source.ensure_consumed()?;
        let copy = source.copy(new_id);
        g.insert_pending(copy, now)
    }

    fn reorder(
        &self,
        queue: &QueueName,
        ids: &[InstructionId],
        now: Timestamp,
    ) -> Result<Vec<Instruction>, QueueError> {
        let mut g = self.lock();
        g.ensure_queue(queue)?;
        let pending = g.pending_sorted(queue).into_iter().cloned().collect();
        let mut out = Vec::with_capacity(ids.len());
        for (item, moved) in rules::reordered(pending, ids, now)? {
            if moved {
                g.items.insert(item.id, item.clone());
            }
            out.push(item);
        }
        g.record(
            now,
            Change::InstructionReordered(Reordered {
                queue: queue.clone(),
                ids: ids.to_vec(),
            }),
        );
        Ok(out)
    }

    fn list(
        &self,
        queue: &QueueName,
        filter: StatusFilter,
        page: Page,
    ) -> Result<Listing, QueueError> {
        let g = self.lock();
        g.ensure_queue(queue)?;
        let pending = || {
            g.pending_sorted(queue)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        let consumed = || {
            g.consumed_sorted(queue)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        Ok(match filter {
            StatusFilter::Pending => listing(&pending(), page),
            StatusFilter::Consumed => listing(&consumed(), page),
            StatusFilter::All => {
                let (consumed, pending) = (consumed(), pending());
                let (consumed_page, pending_page) =
                    rules::split_all_page(page, consumed.len() as u64);
                let mut items = window(&consumed, consumed_page);
                items.extend(window(&pending, pending_page));
                Listing {
                    items,
                    total: (consumed.len() + pending.len()) as u64,
                }
            }
        })
    }

    fn counts(&self, queue: &QueueName) -> Result<Counts, QueueError> {
        let g = self.lock();
        g.ensure_queue(queue)?;
        Ok(g.counts(queue))
    }

    fn queues(&self) -> Result<Vec<QueueCounts>, QueueError> {
        let g = self.lock();
        Ok(g.queue_names()
            .into_iter()
            .map(|name| QueueCounts {
                counts: g.counts(&name),
                name,
            })
            .collect())
    }

    fn begin_call(
        &self,
        caller: &Caller,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<CallTicket, QueueError> {
        let mut g = self.lock();
        let record = rules::call_started(g.agents.remove(caller), caller, now, until);
        g.agents.insert(caller.clone(), record.clone());
        g.record(now, Change::AgentUpdated(record.clone()));
        Ok(CallTicket {
            generation: record.generation,
            agent: record,
        })
    }

    fn claim(&self, caller: &Caller, generation: u64, now: Timestamp) -> Result<Claim, QueueError> {
        let mut g = self.lock();
        if rules::is_superseded(g.agents.get(caller).map(|a| a.generation), generation) {
            return Ok(Claim::Superseded);
        }
        let head = g
            .pending_sorted(&caller.queue)
            .into_iter()
            .find(|i| i.is_for(caller))
            .map(|i| i.id);
        let Some(head) = head else {
            return Ok(Claim::Empty);
        };
        let item = g.get_mut(head)?;
        *item = item.clone().consumed(caller, now)?;
        let item = item.clone();
        g.record(now, Change::InstructionConsumed(item.clone()));
        Ok(Claim::Claimed(item))
    }

    fn end_call(
        &self,
        caller: &Caller,
        generation: u64,
        result: ResultType,
        now: Timestamp,
    ) -> Result<Agent, QueueError> {
        let mut g = self.lock();
        let record = rules::call_ended(g.agents.remove(caller), caller, generation, result, now)?;
        g.agents.insert(caller.clone(), record.clone());
        g.record(now, Change::AgentUpdated(record.clone()));
        Ok(record)
    }

    fn unclaim(&self, id: InstructionId, now: Timestamp) -> Result<Instruction, QueueError> {
        let mut g = self.lock();
        let item = g.get_mut(id)?;
        item.ensure_consumed()?;
        let queue = item.queue.clone();
        let first = g.pending_sorted(&queue).first().map(|i| i.position);
        let head = rules::head_position(first, || Ok::<_, QueueError>(g.next_position()))?;
        let item = g.get_mut(id)?;
        *item = item.clone().returned(head, now)?;
        let item = item.clone();
        g.record(now, Change::InstructionUpdated(item.clone()));
        Ok(item)
    }

    fn agents(&self) -> Result<Vec<Agent>, QueueError> {
        let g = self.lock();
        let mut v: Vec<_> = g.agents.values().cloned().collect();
        v.sort_by(rules::agent_order);
        Ok(v)
    }

    fn settings(&self) -> Result<StoredSettings, QueueError> {
        Ok(self.lock().settings.clone())
    }

    fn update_settings(
        &self,
        patch: &SettingsPatch,
        now: Timestamp,
    ) -> Result<StoredSettings, QueueError> {
        let mut g = self.lock();
        g.settings = g.settings.patched(patch);
        let stored = g.settings.clone();
        g.record(now, Change::ConfigUpdated(stored.clone()));
        Ok(stored)
    }

    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, QueueError> {
        let g = self.lock();
        Ok(g.events
            .iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .cloned()
            .collect())
    }

    fn last_event_seq(&self) -> Result<u64, QueueError> {
        Ok(self.lock().last_seq)
    }

    fn change_token(&self) -> Result<u64, StoreError> {
        Ok(self.lock().last_seq)
    }
}
