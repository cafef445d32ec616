//! Events out and changes in: what a write stored goes to subscribers in order
//! and wakes the calls it concerns, and [`Service::watch`] picks up what other
//! processes committed (pushed by the store, or found by polling its change token).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::Service;
use crate::error::QueueError;
use crate::store::Event;

/// How many stored events one store trip publishes at most.
pub(super) const PUBLISH_BATCH: usize = 512;

impl Service {
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

    /// Publishes local changes as soon as they are made and picks up changes from
    /// other processes: told by the store where it pushes them
    /// ([`Store::notify_changes`](crate::Store::notify_changes)), else by polling
    /// its change token. Runs until [`Service::shutdown`]. Spawn it once per
    /// process.
    pub async fn watch(&self) {
        let pushed = {
            let shared = Arc::downgrade(&self.shared);
            self.shared.store.notify_changes(Arc::new(move || {
                if let Some(shared) = shared.upgrade() {
                    shared.unpublished.store(true, Ordering::Release);
                    shared.kick.notify_one();
                }
            }))
        };
        // None: the first poll counts as a change, so a commit made before the watcher
        // started still wakes the waiters.
        let mut token = None;
        // A store that pushes is polled once, now, for what came before it was
        // asked to tell; never again.
        let mut next_poll = Some(Instant::now());
        loop {
            let polled = tokio::select! {
                _ = self.until_shutdown() => return,
                _ = self.shared.kick.notified() => false,
                _ = async {
                    match next_poll {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => true,
            };
            if pushed {
                next_poll = None;
            } else if polled {
                // Every call starts with a kick, so a newly waiting call switches
                // this to the short interval at once.
                let options = &self.shared.options;
                next_poll = Some(
                    Instant::now()
                        + if *self.shared.busy.borrow() > 0 {
                            options.poll_interval
                        } else if self.shared.events.receiver_count() > 0 {
                            options.listen_poll_interval
                        } else {
                            options.idle_poll_interval
                        },
                );
            } else {
                let soon = Instant::now() + self.shared.options.poll_interval;
                next_poll = Some(next_poll.map_or(soon, |at| at.min(soon)));
            }
            if !polled && !self.shared.unpublished.swap(false, Ordering::AcqRel) {
                // Only a call starting to wait: the interval is set above.
                continue;
            }
            if polled && !pushed {
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
            // Publishing wakes the calls each event concerns. When the events
            // could not be read, the next poll tries again whatever the token says.
            if !self.publish_new_events().await {
                token = None;
                if pushed {
                    // Nobody will push the change that was missed: look again soon.
                    next_poll = Some(Instant::now() + self.shared.options.poll_interval);
                }
            }
        }
    }

    /// Sends every stored event newer than the last published one to subscribers,
    /// waking the calls they concern; `false` when the events could not be read.
    async fn publish_new_events(&self) -> bool {
        loop {
            let after = self.published_seq();
            let Ok(batch) = self.events_after(after, PUBLISH_BATCH).await else {
                // Something may have changed and nobody can say what: every
                // waiting call looks again, and the next poll retries.
                self.shared.waiters.wake_all();
                return false;
            };
            if batch.is_empty() {
                return true;
            }
            // A short batch was everything there was: asking again would only cost
            // another store trip per change to learn that nothing followed it.
            let complete = batch.len() < PUBLISH_BATCH;
            // A write may have published some of these since they were read.
            self.send_events(batch, false);
            if complete {
                return true;
            }
        }
    }

    /// Has `watch` publish the stored events nobody published yet.
    pub(super) fn publish_soon(&self) {
        self.shared.unpublished.store(true, Ordering::Release);
        self.shared.kick.notify_one();
    }

    /// Sends `events` (oldest first) to subscribers, skipping those already out,
    /// under the lock that keeps `watch` and the writes in order. With `gapless`
    /// — a write's own events — nothing goes out unless they follow what went out
    /// last, and `false` says so: changes of another process that `watch` has not
    /// published yet come first, and only `watch`, reading from the store, can
    /// send them in order. `watch` itself reads everything from the store, so a
    /// gap there is events pruned away and nothing to wait for, but what they were
    /// is unknown, so every waiting call looks again.
    ///
    /// The calls the events that go out concern are woken (see [`Waiters`](crate::waiters::Waiters)):
    /// whoever publishes an event wakes for it, so no change is published
    /// without its wake-up.
    pub(super) fn send_events(&self, events: Vec<Event>, gapless: bool) -> bool {
        let _order = self
            .shared
            .publishing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let published = self.published_seq();
        let fresh: Vec<Event> = events.into_iter().filter(|e| e.seq > published).collect();
        // The calls the events concern are woken whether or not the events go out
        // here: a write's own events wake at once, before `watch` publishes them.
        self.shared.waiters.wake_for(&fresh);
        if fresh
            .first()
            .is_some_and(|first| first.seq != published + 1)
        {
            if gapless {
                return false;
            }
            self.shared.waiters.wake_all();
        }
        let mut last = published;
        for event in fresh {
            last = event.seq;
            let _ = self.shared.events.send(Arc::new(event));
        }
        self.shared.published_seq.store(last, Ordering::Release);
        true
    }
}
