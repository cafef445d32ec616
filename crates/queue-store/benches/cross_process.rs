//! Cross-process wake latency: a call waits in this process while a second process
//! on the same database file adds an instruction. Reports p50/p99/max over 200
//! trials of the time from asking the other process to add until the waiting call
//! returns the instruction (the other process's durable commit included).
//!
//! Run with `cargo bench -p queue-store --bench cross_process`.
#![allow(
    clippy::print_stdout,
    reason = "printing results is this program's job"
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use queue_core::{
    AgentId, Clock, Content, FetchOutcome, IdSource, NewInstruction, RandomIds, Store, SystemClock,
};
use queue_store::{SqliteStore, StoreOptions};

const TRIALS: usize = 200;
const CHILD_ENV: &str = "QUEUE_STORE_BENCH_ADDER_DB";

fn main() {
    if let Ok(db) = std::env::var(CHILD_ENV) {
        adder(&db);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cross.sqlite3");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db, StoreOptions::default()).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, &db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    from_child.read_line(&mut ready).unwrap();

    let samples = rt.block_on(async {
        let service = common::waiting_service(store);
        tokio::spawn({
            let service = service.clone();
            async move { service.watch().await }
        });
        let agent = AgentId::parse("waiter").unwrap();
        let mut samples = Vec::with_capacity(TRIALS);
        for _ in 0..TRIALS {
            let call = tokio::spawn({
                let (service, agent) = (service.clone(), agent.clone());
                async move { service.next_instruction(agent).await }
            });
            common::until_a_call_waits(&service).await;
            // Spread the adds over the watcher's polling phase.
            tokio::time::sleep(Duration::from_micros(
                1_000 + (samples.len() as u64 * 37) % 5_000,
            ))
            .await;
            let start = Instant::now();
            to_child.write_all(b"add\n").unwrap();
            to_child.flush().unwrap();
            let fetch = call.await.unwrap().unwrap();
            samples.push(start.elapsed());
            assert!(matches!(fetch.outcome, FetchOutcome::Instruction(_)));
            let mut ack = String::new();
            from_child.read_line(&mut ack).unwrap();
        }
        service.shutdown();
        samples
    });
    drop(to_child);
    let _ = child.wait();

    let mut sorted = samples.clone();
    sorted.sort();
    let pct = |p: f64| sorted[((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    println!("cross-process wake, {TRIALS} trials (add in process B -> result in process A):");
    println!(
        "  p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        sorted.last().unwrap().as_secs_f64() * 1e3
    );
}

/// The second process: adds one instruction per line read, then acknowledges.
fn adder(db: &str) {
    let store = SqliteStore::open(db, StoreOptions::default()).unwrap();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for line in stdin.lock().lines() {
        if line.is_err() {
            break;
        }
        store
            .add(
                NewInstruction::new(
                    RandomIds.next_id(),
                    Content::parse("from the other process").unwrap(),
                ),
                SystemClock.now(),
            )
            .unwrap();
        writeln!(out, "added").unwrap();
        out.flush().unwrap();
    }
}
