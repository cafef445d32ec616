//! A helper process for the multi-process tests: claims, adds under load, or adds
//! once, on a database file shared with the test process.
//!
//! Usage:
//!   store-driver claim DB THREADS NAME  after a line on stdin, claim until nothing is left
//!                                     for each thread; thread T is agent NAME-tT on queue
//!                                     `alpha` (T even) or `beta` (T odd); print `ID QUEUE AGENT`
//!                                     for each claim
//!   store-driver add-load DB THREADS  add forever; print each id once its add is durable
//!   store-driver add DB TEXT          add one instruction; print its id
//!   store-driver mixed DB THREADS     add, edit and claim forever; print each change once durable
//!   store-driver lock DB              hold the write lock; print `locked`, release on a stdin line
#![allow(
    clippy::print_stdout,
    reason = "printing results is this program's job"
)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use queue_core::{
    AgentId, Caller, Claim, Clock, Content, IdSource, NewInstruction, QueueName, RandomIds,
    ResultType, Store, SystemClock,
};
use queue_store::{SqliteStore, StoreOptions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, db, rest @ ..] = args.as_slice() else {
        bail!("usage: store-driver claim|add-load|mixed|lock|add DB [ARG]");
    };
    let store = Arc::new(
        SqliteStore::open(db, StoreOptions::default()).with_context(|| format!("opening {db}"))?,
    );
    match (mode.as_str(), rest) {
        ("claim", [threads, name]) => claim(store, threads.parse()?, name),
        ("add-load", [threads]) => add_load(store, threads.parse()?),
        ("mixed", [threads]) => mixed(store, threads.parse()?),
        ("lock", []) => lock(&store),
        ("add", [text]) => {
            let item = store.add(
                NewInstruction::new(RandomIds.next_id(), Content::parse(text)?),
                SystemClock.now(),
            )?;
            println!("{}", item.id);
            Ok(())
        }
        _ => bail!("unknown mode {mode:?} or wrong arguments"),
    }
}

fn claim(store: Arc<SqliteStore>, threads: usize, name: &str) -> anyhow::Result<()> {
    // Start only when told, so that several claimer processes really compete.
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = Arc::clone(&store);
            let name = format!("{name}-t{t}");
            std::thread::spawn(move || -> anyhow::Result<Vec<String>> {
                let queue = QueueName::parse(if t % 2 == 0 { "alpha" } else { "beta" })?;
                let caller = Caller::new(queue, AgentId::parse(&name)?);
                let mut got = Vec::new();
                loop {
                    let now = SystemClock.now();
                    let ticket = store.begin_call(&caller, now, now)?;
                    match store.claim(&caller, ticket.generation, SystemClock.now())? {
                        Claim::Claimed(item) => got.push(format!(
                            "{} {} {}",
                            item.id,
                            item.queue,
                            item.consumed_by.as_ref().map_or("-", |a| a.as_str())
                        )),
                        Claim::Empty => return Ok(got),
                        Claim::Superseded => bail!("a lone claimer was superseded"),
                    }
                }
            })
        })
        .collect();
    let mut out = std::io::stdout().lock();
    for h in handles {
        let ids = h
            .join()
            .map_err(|_| anyhow::anyhow!("claimer thread panicked"))??;
        for id in ids {
            writeln!(out, "{id}")?;
        }
    }
    Ok(())
}

fn add_load(store: Arc<SqliteStore>, threads: usize) -> anyhow::Result<()> {
    let n = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (store, n) = (Arc::clone(&store), Arc::clone(&n));
            std::thread::spawn(move || -> anyhow::Result<()> {
                loop {
                    let i = n.fetch_add(1, Ordering::Relaxed);
                    let item = store.add(
                        NewInstruction::new(
                            RandomIds.next_id(),
                            Content::parse(&format!("load {i}"))?,
                        ),
                        SystemClock.now(),
                    )?;
                    // Printed only after the add returned, i.e. after its commit.
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{}", item.id)?;
                    out.flush()?;
                }
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("adder thread panicked"))??;
    }
    Ok(())
}

/// Prints one line at once: the test reads it as an acknowledgement, and a line
/// still in a buffer when the process is killed was never acknowledged.
fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Adds, edits its own pending instructions and claims, in a cycle per thread.
/// Lines: `add ID CONTENT` and `edit ID CONTENT` after the commit, `try ID CONTENT`
/// before an edit is sent (so an edit cut off by a kill is known), `claim ID` for
/// each instruction handed to this process.
fn mixed(store: Arc<SqliteStore>, threads: usize) -> anyhow::Result<()> {
    let pid = std::process::id();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || -> anyhow::Result<()> {
                let agent = Caller::from(AgentId::parse(&format!("driver-{pid}-{t}"))?);
                let mut mine = Vec::new();
                for i in 0_u64.. {
                    let text = format!("driver {pid}/{t} #{i}");
                    let item = store.add(
                        NewInstruction::new(RandomIds.next_id(), Content::parse(&text)?),
                        SystemClock.now(),
                    )?;
                    say(&format!("add {} {text}", item.id))?;
                    mine.push(item.id);
                    if i % 2 == 1
                        && let Some(&id) = mine.get(mine.len().saturating_sub(2))
                    {
                        let text = format!("driver {pid}/{t} #{i} edited");
                        say(&format!("try {id} {text}"))?;
                        // A claim by another process may have taken it first.
                        if store
                            .edit(id, Content::parse(&text)?, SystemClock.now())
                            .is_ok()
                        {
                            say(&format!("edit {id} {text}"))?;
                        }
                    }
                    if i % 3 == 2 {
                        let now = SystemClock.now();
                        let ticket = store.begin_call(&agent, now, now)?;
                        let claim = store.claim(&agent, ticket.generation, SystemClock.now())?;
                        if let Claim::Claimed(item) = &claim {
                            say(&format!("claim {}", item.id))?;
                        }
                        let result = match claim {
                            Claim::Claimed(_) => ResultType::Instruction,
                            _ => ResultType::Empty,
                        };
                        store.end_call(&agent, ticket.generation, result, SystemClock.now())?;
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("mixed-load thread panicked"))??;
    }
    Ok(())
}

/// Holds the write lock until a line (or the end) arrives on stdin.
fn lock(store: &SqliteStore) -> anyhow::Result<()> {
    store.with_write_lock(|| -> anyhow::Result<()> {
        say("locked")?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(())
    })??;
    say("released")
}
