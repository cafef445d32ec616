//! Store writes made on behalf of a caller who may leave: queued to the store
//! (group commit) or run through the offload, answered once durable, and undone
//! exactly once when the caller no longer reads the value ([`Answer`], [`Undo`]).

use std::sync::Arc;

use tokio::sync::oneshot;

use super::Service;
use super::events::PUBLISH_BATCH;
use super::shutdown::Busy;
use crate::error::{QueueError, StoreError};
use crate::store::{Event, Store, Write};

impl Service {
    /// Runs `f` as a write ([`Store::queue_write`], or through the offload for a
    /// store that gives the write back). If the caller stops waiting before it has
    /// read the value `f` produced — whether the write finishes after the caller
    /// left or the answer sits unread when the caller is dropped — `undo` gets that
    /// value instead, exactly once.
    pub(super) async fn write<T, F, U>(&self, f: F, undo: U) -> Result<T, QueueError>
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
    pub(super) async fn write_settled<T, F, U>(
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
    pub(super) fn start_write<T, F, U>(
        &self,
        f: F,
        settle: fn(&Service, &mut T),
        undo: U,
    ) -> Answer<T>
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
pub(super) struct Answer<T> {
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
