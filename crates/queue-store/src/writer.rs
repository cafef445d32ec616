//! Group commit: one thread owns the write connection and commits every write that
//! arrived together in one transaction, answering each caller only after the commit.
//!
//! Why a thread and not a lock around the connection: with a lock, 32 callers make
//! 32 commits and 32 fsyncs; with a queue, the writer drains whatever piled up while
//! the previous commit was syncing, so the fsync cost is shared by the whole batch.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::Connection;
use diesel::sqlite::SqliteConnection;

use queue_core::{EVENT_RETENTION, QueueError, StoreError, Write};

use crate::error::{OpError, db_error};
use crate::{TxStore, ops};

/// How many batches pass between prunes of the event log.
const PRUNE_EVERY: u64 = 256;

/// One queued write: run inside the batch's transaction, then told how the commit
/// went, or failed without running when the transaction could not start. `Err`
/// from `run` means the job panicked and the batch must not commit.
trait Job: Send {
    fn run(self: Box<Self>, c: &mut SqliteConnection) -> Result<Box<dyn Finish>, Box<dyn Finish>>;
    fn fail(self: Box<Self>, e: StoreError);
}

trait Finish: Send {
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Op<T, F> {
    f: F,
    reply: mpsc::SyncSender<Result<T, QueueError>>,
}

struct Done<T> {
    result: Result<T, OpError>,
    reply: mpsc::SyncSender<Result<T, QueueError>>,
}

impl<T, F> Job for Op<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut SqliteConnection) -> Result<T, OpError> + Send + 'static,
{
    fn run(self: Box<Self>, c: &mut SqliteConnection) -> Result<Box<dyn Finish>, Box<dyn Finish>> {
        // A nested diesel transaction is a savepoint: a refused or failed operation
        // rolls back alone and the rest of the batch still commits.
        let result = c.transaction(self.f);
        Ok(Box::new(Done {
            result,
            reply: self.reply,
        }))
    }

    fn fail(self: Box<Self>, e: StoreError) {
        let _ = self.reply.send(Err(e.into()));
    }
}

/// A write queued through [`queue_core::Store::queue_write`], with the watcher
/// connection its store reads change tokens from.
struct Queued {
    write: Box<dyn Write>,
    watcher: Arc<Mutex<SqliteConnection>>,
}

struct QueuedDone(Box<dyn Write>);

impl Job for Queued {
    fn run(self: Box<Self>, c: &mut SqliteConnection) -> Result<Box<dyn Finish>, Box<dyn Finish>> {
        let Queued { mut write, watcher } = *self;
        let store = TxStore::new(c, watcher);
        // The calls are the caller's code, run on this thread: a panic in them must
        // not take down the thread every write goes through, nor commit half of
        // what they meant to do.
        match std::panic::catch_unwind(AssertUnwindSafe(|| write.run(&store))) {
            Ok(()) => Ok(Box::new(QueuedDone(write))),
            Err(_) => Err(Box::new(Failed(write))),
        }
    }

    fn fail(self: Box<Self>, e: StoreError) {
        self.write.done(Err(e));
    }
}

impl Finish for QueuedDone {
    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        self.0.done(commit);
    }
}

/// A queued write whose calls panicked: whatever they did is reported as failed.
struct Failed(Box<dyn Write>);

impl Finish for Failed {
    fn finish(self: Box<Self>, _: Result<(), StoreError>) {
        self.0.done(Err(StoreError::Other(String::from(
            "a queued write failed unexpectedly",
        ))));
    }
}

impl<T: Send> Finish for Done<T> {
    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let out = match commit {
            Ok(()) => self.result.map_err(QueueError::from),
            Err(e) => Err(e.into()),
        };
        let _ = self.reply.send(out);
    }
}

pub(crate) struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread. `conn` must have `busy_timeout = 0`: the thread waits
    /// for other processes' locks itself, up to `busy_timeout`.
    pub(crate) fn start(
        conn: SqliteConnection,
        max_batch: usize,
        busy_timeout: Duration,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new()
            .name("queue-store-writer".into())
            .spawn(move || run(conn, rx, max_batch.max(1), busy_timeout))?;
        Ok(Writer {
            queue: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues `f` and blocks until its batch has committed (or failed).
    pub(crate) fn submit<T, F>(&self, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<T, OpError> + Send + 'static,
    {
        let closed = || QueueError::from(StoreError::Other("the store is closed".into()));
        let (reply, answer) = mpsc::sync_channel(1);
        self.queue
            .as_ref()
            .ok_or_else(closed)?
            .send(Box::new(Op { f, reply }))
            .map_err(|_| closed())?;
        answer.recv().map_err(|_| closed())?
    }
}

impl Writer {
    /// Queues `write` for the next batch and returns at once; it is told how its
    /// batch's commit went. A closed store tells it so at once.
    pub(crate) fn queue(&self, write: Box<dyn Write>, watcher: Arc<Mutex<SqliteConnection>>) {
        let job = Box::new(Queued { write, watcher });
        let refused = match &self.queue {
            Some(queue) => queue.send(job).err().map(|e| e.0),
            None => Some(job as Box<dyn Job>),
        };
        if let Some(job) = refused {
            job.fail(StoreError::Other("the store is closed".into()));
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue lets the thread finish the batch in hand and exit.
        self.queue.take();
        if let Some(t) = self.thread.take() {
            // A queued write runs the caller's code on the writer thread, and what
            // it drops there may be the store's last owner: the thread then ends by
            // itself once this returns, and must not wait for itself.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

fn run(
    mut conn: SqliteConnection,
    queue: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    busy_timeout: Duration,
) {
    let mut batches: u64 = 0;
    let mut jitter = Jitter::new();
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        batches += 1;
        let prune = batches.is_multiple_of(PRUNE_EVERY);
        let mut finishes: Vec<Box<dyn Finish>> = Vec::with_capacity(batch.len());
        let deadline = Instant::now() + busy_timeout;
        let commit = loop {
            let committed = conn.immediate_transaction::<_, diesel::result::Error, _>(|c| {
                let mut jobs = batch.drain(..);
                for job in jobs.by_ref() {
                    match job.run(c) {
                        Ok(finish) => finishes.push(finish),
                        Err(finish) => {
                            finishes.push(finish);
                            for untouched in jobs {
                                untouched.fail(StoreError::Other(String::from(
                                    "another write in the same batch failed unexpectedly; try again",
                                )));
                            }
                            return Err(diesel::result::Error::RollbackTransaction);
                        }
                    }
                }
                if prune {
                    // Pruning is housekeeping; its failure must not fail the batch.
                    let _ = c.transaction(|c| ops::prune_events(c, EVENT_RETENTION));
                }
                Ok(())
            });
            match committed.map_err(db_error) {
                // The batch is untouched: another process holds the write lock.
                // SQLite's own busy handler sleeps ever longer (up to 100 ms) and so
                // loses every race against a busy writer in another process; short
                // jittered polls get a fair turn in the gaps between its commits.
                Err(StoreError::Busy) if !batch.is_empty() && Instant::now() < deadline => {
                    std::thread::sleep(jitter.next_pause());
                }
                other => break other,
            }
        };
        // Jobs left in `batch` never ran: the transaction could not begin.
        for job in batch.drain(..) {
            job.fail(commit.clone().err().unwrap_or(StoreError::Busy));
        }
        for f in finishes {
            f.finish(commit.clone());
        }
    }
}

/// A tiny xorshift generator for retry pauses; randomness keeps two waiting
/// processes from polling in lockstep.
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        let seed = u64::from(std::process::id())
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos().into())
                .unwrap_or(0x9e37_79b9);
        Jitter(seed | 1)
    }

    /// A pause of 20..=120 µs.
    fn next_pause(&mut self) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_micros(20 + self.0 % 101)
    }
}
