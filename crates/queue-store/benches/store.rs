//! Store benchmarks behind the foundation's targets: durable adds with 32
//! concurrent callers (group commit versus a commit per add), the latency of a
//! claim, and how fast a waiting call wakes after an add in the same process.
//!
//! Run with `cargo bench -p queue-store --bench store`; figures go in
//! `docs/benchmarks.md`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use queue_core::{
    AgentId, Caller, Claim, Content, FetchOutcome, InstructionId, NewInstruction, Store, Timestamp,
};
use queue_store::{SqliteStore, StoreOptions};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> InstructionId {
    InstructionId::from_u128(u128::from(NEXT_ID.fetch_add(1, Ordering::Relaxed)))
}

fn open(dir: &tempfile::TempDir, name: &str, max_batch: usize) -> Arc<SqliteStore> {
    let options = StoreOptions {
        max_batch,
        ..StoreOptions::default()
    };
    Arc::new(SqliteStore::open(dir.path().join(name), options).expect("open the bench store"))
}

/// `iters` durable adds spread over `callers` threads; the wall time they took.
fn concurrent_adds(store: &Arc<SqliteStore>, callers: u64, iters: u64) -> Duration {
    let per = iters.div_ceil(callers);
    let content = Content::parse("benchmark instruction").unwrap();
    let barrier = std::sync::Barrier::new(callers as usize + 1);
    std::thread::scope(|s| {
        for _ in 0..callers {
            let (store, content, barrier) = (store, content.clone(), &barrier);
            s.spawn(move || {
                barrier.wait();
                for _ in 0..per {
                    store
                        .add(
                            NewInstruction::new(next_id(), content.clone()),
                            Timestamp::from_micros(1),
                        )
                        .expect("add");
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // The scope joins every caller before returning.
        start
    })
    .elapsed()
}

fn adds(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("durable_adds");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));

    let grouped = open(&dir, "grouped.sqlite3", StoreOptions::default().max_batch);
    group.bench_function("32_callers_group_commit", |b| {
        b.iter_custom(|iters| concurrent_adds(&grouped, 32, iters))
    });
    let single = open(&dir, "single.sqlite3", 1);
    group.bench_function("32_callers_commit_per_add", |b| {
        b.iter_custom(|iters| concurrent_adds(&single, 32, iters))
    });
    group.bench_function("1_caller", |b| {
        b.iter_custom(|iters| concurrent_adds(&grouped, 1, iters))
    });
    group.finish();
}

fn claims(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "claims.sqlite3", StoreOptions::default().max_batch);
    let agent = Caller::from(AgentId::parse("bench").unwrap());
    let content = Content::parse("queued").unwrap();
    let now = Timestamp::from_micros(1);
    let ticket = store.begin_call(&agent, now, now.plus_secs(3600)).unwrap();
    let mut group = c.benchmark_group("claim");
    group.sample_size(50);
    group.bench_function("queued_instruction", |b| {
        b.iter_custom(|iters| {
            // Queue exactly what the timed claims will take, outside the timing.
            for _ in 0..iters {
                store
                    .add(NewInstruction::new(next_id(), content.clone()), now)
                    .unwrap();
            }
            let start = Instant::now();
            for _ in 0..iters {
                let claim = store.claim(&agent, ticket.generation, now).unwrap();
                assert!(matches!(claim, Claim::Claimed(_)));
            }
            start.elapsed()
        })
    });
    group.finish();
}

/// From an add's durable commit to the waiting call's result, in one process: the
/// wake-up plus the waiter's own claim (a durable commit) and bookkeeping.
fn wake(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = open(&dir, "wake.sqlite3", StoreOptions::default().max_batch);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let service = rt.block_on(async { common::waiting_service(store) });
    let agent = AgentId::parse("waiter").unwrap();
    let mut group = c.benchmark_group("wake");
    group.sample_size(100);
    group.bench_function("same_process_commit_to_result", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let call = tokio::spawn({
                        let (service, agent) = (service.clone(), agent.clone());
                        async move { service.next_instruction(agent).await }
                    });
                    // Let the call find the queue empty and start waiting.
                    common::until_a_call_waits(&service).await;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    service.add("wake up").await.unwrap();
                    // The add is durable now; the waiter was woken as it committed.
                    let committed = Instant::now();
                    let fetch = call.await.unwrap().unwrap();
                    total += committed.elapsed();
                    assert!(matches!(fetch.outcome, FetchOutcome::Instruction(_)));
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, adds, claims, wake);
criterion_main!(benches);
