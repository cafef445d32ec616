//! An in-memory [`Store`] for tests and embedders: the reference model the SQLite
//! store is checked against.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::error::{QueueError, StoreError};
use crate::settings::{SettingsPatch, StoredSettings};
use crate::store::{
    CallTicket, Change, Claim, Counts, Event, Listing, Page, StatusFilter, Store, check_reorder,
};
use crate::types::{
    Agent, AgentId, Content, Instruction, InstructionId, ResultType, Status, Timestamp,
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
    agents: HashMap<AgentId, Agent>,
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

    fn pending_sorted(&self) -> Vec<&Instruction> {
        let mut v: Vec<_> = self
            .items
            .values()
            .filter(|i| i.status == Status::Pending)
            .collect();
        v.sort_by(|a, b| queue_order(a, b));
        v
    }

    fn consumed_sorted(&self) -> Vec<&Instruction> {
        let mut v: Vec<_> = self
            .items
            .values()
            .filter(|i| i.status == Status::Consumed)
            .collect();
        v.sort_by_key(|a| (a.consumed_at, a.position, a.id));
        v
    }

    fn next_position(&self) -> i64 {
        self.items.values().map(|i| i.position).max().unwrap_or(0) + 1
    }

    fn get_mut(&mut self, id: InstructionId) -> Result<&mut Instruction, QueueError> {
        self.items.get_mut(&id).ok_or(QueueError::NotFound(id))
    }

    fn insert_pending(
        &mut self,
        id: InstructionId,
        content: Content,
        now: Timestamp,
    ) -> Result<Instruction, QueueError> {
        if self.items.contains_key(&id) {
            return Err(StoreError::Other(format!("duplicate instruction id {id}")).into());
        }
        let item = Instruction::pending(id, content, now, self.next_position());
        self.items.insert(id, item.clone());
        self.record(now, Change::InstructionCreated(item.clone()));
        Ok(item)
    }
}

/// Queue order: position, then creation time, then id.
pub(crate) fn queue_order(a: &Instruction, b: &Instruction) -> std::cmp::Ordering {
    (a.position, a.created_at, a.id).cmp(&(b.position, b.created_at, b.id))
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
    fn add(
        &self,
        id: InstructionId,
        content: Content,
        now: Timestamp,
    ) -> Result<Instruction, QueueError> {
        self.lock().insert_pending(id, content, now)
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
        let content = source.content.clone();
        g.insert_pending(new_id, content, now)
    }

    fn reorder(
        &self,
        ids: &[InstructionId],
        now: Timestamp,
    ) -> Result<Vec<Instruction>, QueueError> {
        let mut g = self.lock();
        let pending = g.pending_sorted();
        let current: Vec<_> = pending.iter().map(|i| i.id).collect();
        check_reorder(&current, ids)?;
        // Reuse the existing positions in the new order, so positions stay unique and
        // instructions added later still go to the end.
        let positions: Vec<_> = pending.iter().map(|i| i.position).collect();
        let mut out = Vec::with_capacity(ids.len());
        for (id, position) in ids.iter().zip(positions) {
            let item = g.get_mut(*id)?;
            if item.position != position {
                item.position = position;
                item.updated_at = now;
            }
            out.push(item.clone());
        }
        g.record(now, Change::InstructionReordered(ids.to_vec()));
        Ok(out)
    }

    fn list(&self, filter: StatusFilter, page: Page) -> Result<Listing, QueueError> {
        let g = self.lock();
        let all: Vec<Instruction> = match filter {
            StatusFilter::Pending => g.pending_sorted().into_iter().cloned().collect(),
            StatusFilter::Consumed => g.consumed_sorted().into_iter().cloned().collect(),
            StatusFilter::All => g
                .consumed_sorted()
                .into_iter()
                .chain(g.pending_sorted())
                .cloned()
                .collect(),
        };
        Ok(Listing {
            items: window(&all, page),
            total: all.len() as u64,
        })
    }

    fn counts(&self) -> Result<Counts, QueueError> {
        let g = self.lock();
        let pending = g
            .items
            .values()
            .filter(|i| i.status == Status::Pending)
            .count() as u64;
        Ok(Counts {
            pending,
            consumed: g.items.len() as u64 - pending,
        })
    }

    fn begin_call(
        &self,
        agent: &AgentId,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<CallTicket, QueueError> {
        let mut g = self.lock();
        let record = g
            .agents
            .remove(agent)
            .unwrap_or_else(|| Agent::first_seen(agent.clone(), now))
            .call_started(now, until);
        g.agents.insert(agent.clone(), record.clone());
        g.record(now, Change::AgentUpdated(record.clone()));
        Ok(CallTicket {
            generation: record.generation,
            agent: record,
        })
    }

    fn claim(&self, agent: &AgentId, generation: u64, now: Timestamp) -> Result<Claim, QueueError> {
        let mut g = self.lock();
        if g.agents.get(agent).map(|a| a.generation) != Some(generation) {
            return Ok(Claim::Superseded);
        }
        let Some(head) = g.pending_sorted().first().map(|i| i.id) else {
            return Ok(Claim::Empty);
        };
        let item = g.get_mut(head)?;
        *item = item.clone().consumed(agent, now)?;
        let item = item.clone();
        g.record(now, Change::InstructionConsumed(item.clone()));
        Ok(Claim::Claimed(item))
    }

    fn end_call(
        &self,
        agent: &AgentId,
        generation: u64,
        result: ResultType,
        now: Timestamp,
    ) -> Result<Agent, QueueError> {
        let mut g = self.lock();
        let record = g
            .agents
            .get_mut(agent)
            .ok_or_else(|| StoreError::Other(format!("end of a call of unknown agent {agent}")))?;
        *record = record.clone().call_ended(generation, result, now);
        let record = record.clone();
        g.record(now, Change::AgentUpdated(record.clone()));
        Ok(record)
    }

    fn unclaim(&self, id: InstructionId, now: Timestamp) -> Result<Instruction, QueueError> {
        let mut g = self.lock();
        g.get_mut(id)?.ensure_consumed()?;
        let head = match g.pending_sorted().first() {
            Some(first) => first.position - 1,
            None => g.next_position(),
        };
        let item = g.get_mut(id)?;
        *item = item.clone().returned(head, now)?;
        let item = item.clone();
        g.record(now, Change::InstructionUpdated(item.clone()));
        Ok(item)
    }

    fn agents(&self) -> Result<Vec<Agent>, QueueError> {
        let g = self.lock();
        let mut v: Vec<_> = g.agents.values().cloned().collect();
        v.sort_by(|a, b| b.last_seen_at.cmp(&a.last_seen_at).then(a.id.cmp(&b.id)));
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
