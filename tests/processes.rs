//! Several OS processes on one database file: exactly-once delivery under
//! contention, crash safety under `kill -9`, and wake-up across processes.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;

use integration::{ChildGuard, TempDb, as_store};
use queue_core::{
    AgentId, Content, EndReason, FetchOutcome, InstructionId, NewInstruction, Page, QueueName,
    Service, ServiceOptions, Settings, StatusFilter, Store, Timestamp,
};
use queue_store::BlockingPool;

/// The `store-driver` helper binary built with this package.
fn driver() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_store-driver"));
    cmd.stdin(Stdio::null()).stderr(Stdio::inherit());
    cmd
}

fn lines(output: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(output)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Where instruction `i` of the exactly-once test goes: queue `alpha` or `beta`
/// in turn, and one in five addressed to one claimer thread of that queue (the
/// driver's thread T is on `alpha` when T is even).
fn placement(i: usize) -> (&'static str, Option<String>) {
    let queue = if i.is_multiple_of(2) { "alpha" } else { "beta" };
    let to = i.is_multiple_of(5).then(|| {
        let process = (i / 5) % 2;
        let thread = (i / 10) % 4 * 2 + i % 2;
        format!("p{process}-t{thread}")
    });
    (queue, to)
}

#[test]
fn two_processes_of_eight_claimers_deliver_each_instruction_exactly_once() {
    const N: usize = 5_000;
    let db = TempDb::new();
    let store = db.open_fast();
    // Fill from 8 threads so group commit keeps this quick.
    let added: Vec<(String, &str, Option<String>)> = thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    (0..N / 8)
                        .map(|i| {
                            let n = t * (N / 8) + i;
                            let id = InstructionId::from_u128(n as u128 + 1);
                            let content = Content::parse(&format!("job {t}/{i}")).unwrap();
                            let (queue, to) = placement(n);
                            let new = NewInstruction::new(id, content)
                                .on(QueueName::parse(queue).unwrap())
                                .to(to.as_deref().map(|a| AgentId::parse(a).unwrap()));
                            let item = store.add(new, Timestamp::from_micros(1)).unwrap();
                            (item.id.to_string(), queue, to)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(added.len(), N);
    drop(store);

    let path = db.path().to_str().unwrap();
    let mut children: Vec<_> = (0..2)
        .map(|p| {
            driver()
                .args(["claim", path, "8", &format!("p{p}")])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Both are up and have opened the database: release them together.
    for child in &mut children {
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    let mut delivered = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "claimer failed: {:?}", out.status);
        let got = lines(&out.stdout);
        // Both processes really competed.
        assert!(!got.is_empty(), "a claimer process got nothing");
        eprintln!("a claimer process took {}", got.len());
        delivered.extend(got);
    }
    let by_id: std::collections::HashMap<String, (String, String)> = delivered
        .iter()
        .map(|line| {
            let [id, queue, agent] = line.split(' ').collect::<Vec<_>>()[..] else {
                panic!("not `ID QUEUE AGENT`: {line:?}")
            };
            (id.to_owned(), (queue.to_owned(), agent.to_owned()))
        })
        .collect();
    assert_eq!(delivered.len(), N, "every instruction delivered once");
    assert_eq!(by_id.len(), N, "no instruction delivered twice");
    let mut addressed = 0;
    for (id, queue, to) in &added {
        let (got_queue, got_agent) = &by_id[id];
        assert_eq!(got_queue, queue, "{id} left its queue");
        // The driver's even threads are on alpha, the odd ones on beta.
        let thread: usize = got_agent.rsplit("-t").next().unwrap().parse().unwrap();
        assert_eq!(
            thread.is_multiple_of(2),
            *queue == "alpha",
            "{id} taken by {got_agent}"
        );
        if let Some(to) = to {
            addressed += 1;
            assert_eq!(got_agent, to, "{id} was for {to}");
        }
    }
    assert_eq!(addressed, N / 5);

    let store = db.open();
    for queue in ["alpha", "beta"] {
        let counts = store.counts(&QueueName::parse(queue).unwrap()).unwrap();
        assert_eq!(
            (counts.pending, counts.consumed),
            (0, N as u64 / 2),
            "{queue}"
        );
    }
    store.integrity_check().unwrap();
}

#[test]
fn kill_9_during_a_write_load_loses_no_acknowledged_add() {
    let db = TempDb::new();
    drop(db.open()); // create the schema before the race starts
    let path = db.path().to_str().unwrap();
    let mut acked: HashSet<String> = HashSet::new();
    for round in 0..3 {
        let mut child = ChildGuard::spawn(
            driver()
                .args(["add-load", path, "4"])
                .stdout(Stdio::piped()),
        );
        let stdout = child.0.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        // Kill at a different point each round, always mid-load.
        let kill_after = 150 + round * 170;
        let mut line = String::new();
        let mut seen = 0;
        while seen < kill_after {
            line.clear();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "the load stopped early"
            );
            acked.insert(line.trim().to_owned());
            seen += 1;
        }
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        // Lines already in the pipe were acknowledged before the kill, too.
        for rest in reader.lines() {
            let rest = rest.unwrap();
            if !rest.is_empty() {
                acked.insert(rest);
            }
        }

        let store = db.open();
        store.integrity_check().unwrap();
        let stored: HashSet<String> = store
            .list(&QueueName::default(), StatusFilter::All, Page::default())
            .unwrap()
            .items
            .into_iter()
            .map(|i| i.id.to_string())
            .collect();
        let lost: Vec<_> = acked.difference(&stored).collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged adds lost: {lost:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_in_another_process_wakes_a_waiting_call() {
    let db = TempDb::new();
    let store = as_store(db.open());
    let options = ServiceOptions {
        defaults: Settings {
            default_wait_seconds: 60,
            ..Settings::default()
        },
        ..ServiceOptions::default()
    };
    let service = Service::builder(store)
        .offload(Arc::new(BlockingPool))
        .options(options)
        .build()
        .unwrap();
    let watcher = tokio::spawn({
        let service = service.clone();
        async move { service.watch().await }
    });
    let mut events = service.subscribe();

    for round in 0..3 {
        let call = tokio::spawn({
            let service = service.clone();
            async move {
                service
                    .next_instruction(AgentId::parse("waiter").unwrap())
                    .await
            }
        });
        // Wait until the call is registered as waiting before the other process adds.
        loop {
            let event = events.recv().await.unwrap();
            if let queue_core::Change::AgentUpdated(a) = &event.change
                && a.waiting_until.is_some()
            {
                break;
            }
        }
        let text = format!("from another process {round}");
        let out = tokio::task::spawn_blocking({
            let path = db.path().to_str().unwrap().to_owned();
            let text = text.clone();
            move || driver().args(["add", &path, &text]).output().unwrap()
        })
        .await
        .unwrap();
        assert!(out.status.success());
        let added_id = lines(&out.stdout).pop().unwrap();

        let fetch = call.await.unwrap().unwrap();
        assert_eq!(fetch.reason, EndReason::Delivered);
        let FetchOutcome::Instruction(item) = fetch.outcome else {
            panic!("expected the instruction, got {:?}", fetch.outcome)
        };
        assert_eq!(item.id.to_string(), added_id);
        assert_eq!(item.content.as_str(), text);
        // Well before the 60 s deadline: it was woken, not timed out.
        assert!(fetch.waited.as_secs() < 30, "waited {:?}", fetch.waited);
    }
    service.shutdown();
    watcher.await.unwrap();
}
