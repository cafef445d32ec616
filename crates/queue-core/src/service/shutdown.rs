//! Stopping: [`Service::shutdown`] ends the waiting calls and `watch`, and
//! [`Service::drained`] waits for the work still in progress (counted by [`Busy`]),
//! so that a claim being put back is not cut off.

use std::sync::Arc;

use super::{Service, Shared};

impl Service {
    /// Makes every waiting call return at once with nothing consumed, refuses new
    /// waits, and stops [`Service::watch`].
    pub fn shutdown(&self) {
        // Waiting calls watch this too, and return at once.
        self.shared.shutdown.send_replace(true);
    }

    /// Whether [`Service::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        *self.shared.shutdown.borrow()
    }

    /// Resolves once [`Service::shutdown`] has been called.
    pub async fn until_shutdown(&self) {
        let mut rx = self.shared.shutdown.subscribe();
        // The sender lives in `self`, so `wait_for` only returns once it is true.
        let _ = rx.wait_for(|down| *down).await;
    }

    /// Waits until no store job and no `next_instruction` call is in progress,
    /// including the clean-up of calls whose caller went away. After
    /// [`Service::shutdown`], await this (with a time limit) before the runtime
    /// stops, so that a claim being undone is not cut off.
    pub async fn drained(&self) {
        let mut rx = self.shared.busy.subscribe();
        // The sender lives in `self`, so this only returns once the count is zero.
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Counts one piece of work in progress until the guard drops.
    pub(super) fn busy(&self) -> Busy {
        self.shared.busy.send_modify(|n| *n += 1);
        Busy(Arc::clone(&self.shared))
    }
}

/// One unit of work counted in `Shared::busy`.
pub(super) struct Busy(Arc<Shared>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.send_modify(|n| *n = n.saturating_sub(1));
    }
}
