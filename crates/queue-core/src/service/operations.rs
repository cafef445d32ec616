//! What people and adapters ask of the queue: add, edit, delete, requeue,
//! reorder, list, count, settings. Changes go through the service's writes and
//! are audited exactly once.

use std::sync::Arc;

use super::Service;
use super::handoff::Added;
use crate::audit::AuditEntry;
use crate::error::QueueError;
use crate::settings::{Settings, SettingsPatch};
use crate::store::{Counts, Listing, Overview, Page, QueueCounts, StatusFilter, Store};
use crate::types::{
    Agent, AgentId, Content, Instruction, InstructionId, NewInstruction, QueueName,
};

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

impl Service {
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
}
