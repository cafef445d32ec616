//! The one owner of a claimed instruction that has not reached its caller yet:
//! unless told it was delivered, it puts the instruction back first in line.
//!
//! A claim is durable before its caller reads it, and the caller may be gone by
//! then (a dropped future, an add that claimed for a call that gave up, a second
//! instruction handed to a call that already has one). Every such path holds the
//! instruction in an [`Undelivered`], so there is one way back to the queue and
//! one place to get it right.

use super::Service;
use crate::audit::AuditEntry;
use crate::types::{Instruction, InstructionId};

/// A claimed instruction on its way to its caller. Dropped (or
/// [`put_back`](Undelivered::put_back)) before [`delivered`](Undelivered::delivered),
/// it returns the instruction to the head of its queue through a queued write.
///
/// Make one only once the claim is durable: a claim rolled back with its commit
/// has nothing to put back, and putting it back anyway would be a second change.
#[derive(Debug)]
#[must_use = "dropped, the instruction goes back first in line; call `delivered` once the caller has it"]
pub(crate) struct Undelivered {
    item: Instruction,
    back: PutBack,
}

/// What puts the instruction back: a separate part so that `delivered` can move
/// the instruction out, which a type with its own `Drop` does not allow.
#[derive(Debug)]
struct PutBack {
    service: Service,
    /// `None` once delivered.
    id: Option<InstructionId>,
}

impl Undelivered {
    /// Takes charge of `item`, claimed in a durable commit and not yet delivered.
    pub(crate) fn new(service: &Service, item: Instruction) -> Self {
        let id = Some(item.id);
        Undelivered {
            item,
            back: PutBack {
                service: service.clone(),
                id,
            },
        }
    }

    /// The instruction, still undelivered.
    pub(crate) fn item(&self) -> &Instruction {
        &self.item
    }

    /// The instruction reached its caller, or is about to with nothing left that
    /// could stop it: it stays consumed.
    pub(crate) fn delivered(self) -> Instruction {
        let Undelivered { item, mut back } = self;
        back.id = None;
        item
    }

    /// Nobody will deliver the instruction: it goes back first in line. The same
    /// as dropping it, said out loud.
    pub(crate) fn put_back(self) {
        drop(self);
    }
}

impl Drop for PutBack {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            put_back_in_background(&self.service, id);
        }
    }
}

/// Puts instruction `id` back at the head of its queue, as a queued write. This
/// often runs on the store's writer thread (a write whose caller left is undone
/// where it finished), so it must never wait for a store call: a synchronous one
/// from there would wait for the thread itself. The write's events wake whoever
/// may take the instruction once it is back.
fn put_back_in_background(service: &Service, id: InstructionId) {
    let now = service.now();
    drop(service.start_write(
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory::MemoryStore;
    use crate::store::{Claim, Page, StatusFilter};
    use crate::types::{AgentId, Caller, InstructionId, QueueName, Status};

    /// Claims the head of the `default` queue for the default agent, straight
    /// from the store, as a call or an add does in its write.
    fn claim_head(service: &Service) -> Instruction {
        let caller = Caller::from(AgentId::default_agent());
        let now = service.now();
        let ticket = service.store().begin_call(&caller, now, now).unwrap();
        match service
            .store()
            .claim(&caller, ticket.generation, now)
            .unwrap()
        {
            Claim::Claimed(item) => item,
            other => panic!("expected the head of the queue, got {other:?}"),
        }
    }

    async fn pending_ids(service: &Service) -> Vec<InstructionId> {
        let listing = service
            .list(
                &QueueName::default_queue(),
                StatusFilter::Pending,
                Page::default(),
            )
            .await
            .unwrap();
        listing.items.iter().map(|item| item.id).collect()
    }

    #[tokio::test]
    async fn an_undelivered_claim_goes_back_first_in_line_and_a_delivered_one_stays() {
        let service = Service::builder(Arc::new(MemoryStore::new()))
            .build()
            .unwrap();
        let first = service.add("first").await.unwrap();
        let second = service.add("second").await.unwrap();

        // Dropped undelivered: pending again, at the head, ahead of the second.
        let claimed = claim_head(&service);
        assert_eq!(claimed.id, first.id);
        assert_eq!(pending_ids(&service).await, [second.id]);
        drop(Undelivered::new(&service, claimed));
        service.drained().await;
        assert_eq!(pending_ids(&service).await, [first.id, second.id]);
        assert_eq!(service.get(first.id).await.unwrap().status, Status::Pending);

        // Put back out loud: the same.
        let claimed = claim_head(&service);
        assert_eq!(claimed.id, first.id);
        Undelivered::new(&service, claimed).put_back();
        service.drained().await;
        assert_eq!(pending_ids(&service).await, [first.id, second.id]);

        // Delivered: it stays consumed, and the caller has it.
        let claimed = claim_head(&service);
        let owner = Undelivered::new(&service, claimed);
        assert_eq!(owner.item().id, first.id);
        let delivered = owner.delivered();
        service.drained().await;
        assert_eq!(delivered.id, first.id);
        assert_eq!(delivered.content.as_str(), "first");
        assert_eq!(pending_ids(&service).await, [second.id]);
        assert_eq!(
            service.get(first.id).await.unwrap().status,
            Status::Consumed
        );
        let counts = service.counts(&QueueName::default_queue()).await.unwrap();
        assert_eq!((counts.pending, counts.consumed), (1, 1));
    }
}
