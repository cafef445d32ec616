//! The PostgreSQL store's ear: one thread per store that `LISTEN`s on the queue's
//! channel with a connection of its own and calls the hooks on every notification,
//! so a server learns of another server's commit the moment it happens.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use queue_core::ChangeHook;

/// How long the thread waits for a notification before it looks whether its store
/// is gone; bounds how long the thread outlives it.
const STOP_CHECK: Duration = Duration::from_millis(250);

/// The pause before connecting again after the connection was lost, doubling up
/// to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Ear {
    hooks: Mutex<Vec<ChangeHook>>,
    stop: AtomicBool,
}

impl Ear {
    fn wake(&self) {
        let hooks = self.hooks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for hook in hooks {
            hook();
        }
    }
}

/// Started on the first hook; stops when dropped.
#[derive(Default)]
pub(super) struct Listener {
    ear: Arc<Ear>,
    started: AtomicBool,
}

impl Listener {
    /// Adds `hook`, starting the thread if it is the first.
    pub(super) fn add(&self, url: &str, channel: &'static str, hook: ChangeHook) {
        self.ear
            .hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let (ear, url) = (Arc::clone(&self.ear), url.to_owned());
        let spawned = std::thread::Builder::new()
            .name("pg-listen".into())
            .spawn(move || listen(&ear, &url, channel));
        if spawned.is_err() {
            // Without the thread nobody would be told; better to say so loudly
            // than to wait for wake-ups that never come.
            self.started.store(false, Ordering::Release);
            tracing::error!("could not start the PostgreSQL listener thread");
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.ear.stop.store(true, Ordering::Release);
    }
}

fn listen(ear: &Ear, url: &str, channel: &str) {
    let mut backoff = FIRST_BACKOFF;
    let mut said = false;
    while !ear.stop.load(Ordering::Acquire) {
        let client = postgres::Client::connect(url, postgres::NoTls).and_then(|mut client| {
            client.batch_execute(&format!("LISTEN {channel}"))?;
            Ok(client)
        });
        let mut client = match client {
            Ok(client) => client,
            Err(e) => {
                if !said {
                    tracing::warn!(error = %e, "cannot listen for changes on PostgreSQL; trying again");
                    said = true;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        said = false;
        // Whatever was committed while nobody listened: look now.
        ear.wake();
        loop {
            if ear.stop.load(Ordering::Acquire) {
                return;
            }
            let mut notifications = client.notifications();
            let next = notifications.timeout_iter(STOP_CHECK).next();
            match next {
                Ok(Some(_)) => {
                    // One look covers every notification already here.
                    while let Ok(Some(_)) = notifications.iter().next() {}
                    ear.wake();
                }
                Ok(None) => {}
                Err(_) => break,
            }
        }
    }
}
