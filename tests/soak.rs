//! Soak: a long agent loop with adds interleaved and SSE clients connected, with
//! the server's memory and open files watched.
//! Its one test spawns `local-mcp serve`: the memory and open files measured
//! must be the server's alone, read from `/proc/PID`, and its log is checked.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use integration::{
    RawSse, Serve, TempDb, local_mcp, mcp_messages, mcp_post, open_fds, quick_or_long, rss_kib,
};
use serde_json::{Value, json};
use tokio::sync::watch;

/// `get_user_request` calls in the measured part: the quick run keeps the test
/// well under 45 s on a debug build and 2 cores; `LOCAL_MCP_LONG_TESTS=1` asks for
/// the long one.
const QUICK_CALLS: u64 = 1_000;
const LONG_CALLS: u64 = 10_000;
/// Calls before anything is measured. The quick count fills the event hub's
/// replay ring (1,024 messages, about five per call) and the SQLite reader pool.
/// The long count also lets the memory that grows with a fresh database settle:
/// SQLite's page caches (up to 2 MB per connection) and the allocator's arenas
/// fill over the first few thousand calls, then stay flat (docs/soak.md).
const WARM_UP_CALLS: (u64, u64) = (500, 5_000);
const SSE_CLIENTS: usize = 50;
/// Every this many calls the agent waits until every SSE client has read every
/// event so far. No client then trails by more than the replay ring holds (which
/// would end its stream with a refetch and fail the count), and the server's
/// per-connection write buffers stay small: they keep the capacity of their
/// largest backlog until the client hangs up, so a large lag would show up as
/// RSS growth that is no leak.
const CATCH_UP_EVERY: u64 = 20;
/// How long any single expected thing may take; only bounds a failure.
const SOON: Duration = Duration::from_secs(10);
/// RSS may grow by less than this over the measured calls.
const RSS_GROWTH_LIMIT_KIB: u64 = 5 * 1024;
/// Open files other than the database's may differ from the baseline by this
/// much: a connection the server has not yet noticed closing. Nothing is opened
/// per request or per stream beyond its socket.
const FD_SLACK: usize = 2;
/// The database's own handles are counted apart: the store opens a reader
/// connection (database and WAL handles) whenever every pooled one is busy and
/// keeps up to `max_idle_readers` of them, so their number follows how reads
/// happened to overlap, within that bound. A leak per call would pass it within
/// a few dozen calls.
const DB_FD_GROWTH_LIMIT: usize = 2 * 8;
/// The database file's name, as `TempDb` makes it (checked by the test).
const DB_FILE_NAME: &str = "queue.sqlite3";

/// The agent: adds over the JSON API, `get_user_request` over serve's stateless
/// `/mcp`, on one keep-alive connection.
struct Agent {
    http: reqwest::Client,
    base: String,
    /// Added, not yet delivered, oldest first: (index, id).
    queue: VecDeque<(u64, Value)>,
    next_index: u64,
    calls: u64,
}

impl Agent {
    fn new(base: String) -> Self {
        Agent {
            http: reqwest::Client::new(),
            base,
            queue: VecDeque::new(),
            next_index: 0,
            calls: 0,
        }
    }

    async fn add(&mut self) {
        let index = self.next_index;
        self.next_index += 1;
        let res = self
            .http
            .post(format!("{}/api/instructions", self.base))
            .json(&json!({ "content": content(index) }))
            .send()
            .await
            .expect("POST /api/instructions");
        assert_eq!(res.status().as_u16(), 201, "POST /api/instructions");
        let item = res.json::<Value>().await.expect("the created item")["item"].clone();
        self.queue.push_back((index, item["id"].clone()));
    }

    /// One `get_user_request`; returns the structured result.
    async fn get_user_request(&mut self) -> Value {
        self.calls += 1;
        let body = json!({"jsonrpc":"2.0","id":self.calls,"method":"tools/call",
            "params":{"name":"get_user_request","arguments":{"agent_id":"soak"}}});
        let text = mcp_post(&self.http, &format!("{}/mcp", self.base))
            .json(&body)
            .send()
            .await
            .expect("POST /mcp")
            .text()
            .await
            .expect("the /mcp answer");
        // The answer is an SSE body or plain JSON, at the transport's choice.
        let message = mcp_messages(&text)
            .into_iter()
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
            .unwrap_or_else(|| panic!("no JSON-RPC response in {text}"));
        let result = &message["result"];
        assert_eq!(result["isError"], json!(false), "{message}");
        result["structuredContent"].clone()
    }

    /// Adds `n` instructions, then calls once per instruction: each call returns
    /// the oldest one not yet delivered.
    async fn round(&mut self, n: u64) {
        for _ in 0..n {
            self.add().await;
        }
        for _ in 0..n {
            let (index, id) = self.queue.pop_front().expect("one per add");
            let got = self.get_user_request().await;
            assert_eq!(
                got["result_type"], "instruction",
                "call {}: {got}",
                self.calls
            );
            let instruction = &got["instruction"];
            assert_eq!(
                (&instruction["id"], instruction["content"].as_str()),
                (&id, Some(content(index).as_str())),
                "call {} must return the oldest pending instruction, #{index}",
                self.calls
            );
            assert_eq!(
                got["remaining_pending"],
                json!(self.queue.len()),
                "call {}",
                self.calls
            );
        }
    }

    /// Runs rounds of one to three adds until `calls` more calls were made.
    async fn run(&mut self, calls: u64, sse: &mut [Subscriber]) {
        let end = self.calls + calls;
        let mut next_catch_up = self.calls + CATCH_UP_EVERY;
        while self.calls < end {
            let n = (self.calls % 3 + 1).min(end - self.calls);
            self.round(n).await;
            if self.calls >= next_catch_up || self.calls == end {
                next_catch_up = self.calls + CATCH_UP_EVERY;
                caught_up(sse, self.next_index).await;
            }
        }
    }
}

fn content(index: u64) -> String {
    format!("soak {index}")
}

fn index_of(envelope: &Value) -> Option<u64> {
    envelope["data"]["content"]
        .as_str()?
        .strip_prefix("soak ")?
        .parse()
        .ok()
}

/// What one SSE client has read: the next instruction index it expects to see
/// created and consumed, or why it stopped.
#[derive(Clone, Debug, Default)]
struct Seen {
    created: u64,
    consumed: u64,
    messages: u64,
    error: Option<String>,
}

/// One SSE client reading everything in a task of its own.
struct Subscriber {
    seen: watch::Receiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// Connects and returns once the stream's `: connected` preamble arrived, so
    /// every event from then on is its to see. Instructions numbered below
    /// `first` were made earlier; their late events are ignored.
    async fn connect(addr: SocketAddr, first: u64) -> Self {
        let mut sse = RawSse::connect(addr, None).await.expect("GET /api/events");
        loop {
            let frame = sse
                .next_frame()
                .await
                .expect("read the event stream")
                .expect("the stream stays open until `: connected`");
            if frame.comments.iter().any(|c| c == "connected") {
                break;
            }
        }
        let (tx, seen) = watch::channel(Seen {
            created: first,
            consumed: first,
            ..Seen::default()
        });
        let task = tokio::spawn(async move {
            let mut last_id = None;
            let error = loop {
                let frame = match sse.next_frame().await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break "the stream ended".to_owned(),
                    Err(e) => break format!("the stream failed: {e}"),
                };
                if !frame.is_message() {
                    continue;
                }
                // Ids go up by one per message: a gap is a lost message.
                let id = frame.id_number();
                if let Some(last) = last_id
                    && id != last + 1
                {
                    break format!("message id {id} after {last}");
                }
                last_id = Some(id);
                let envelope = frame.json();
                let kind = frame.kind();
                if kind == "status.changed" && envelope["data"]["refetch"] == true {
                    break format!("told to refetch at message {id}: it fell behind");
                }
                let created = match kind {
                    "instruction.created" => true,
                    "instruction.consumed" => false,
                    _ => {
                        tx.send_modify(|s| s.messages += 1);
                        continue;
                    }
                };
                let Some(index) = index_of(&envelope) else {
                    break format!("{kind} without a soak instruction: {}", frame.data);
                };
                let mut wrong = None;
                tx.send_modify(|s| {
                    s.messages += 1;
                    let next = if created {
                        &mut s.created
                    } else {
                        &mut s.consumed
                    };
                    if index == *next {
                        *next += 1;
                    } else if index > *next {
                        wrong = Some(format!("{kind} of #{index} when #{next} was due"));
                    }
                });
                if let Some(wrong) = wrong {
                    break wrong;
                }
            };
            tx.send_modify(|s| s.error = Some(error));
        });
        Subscriber { seen, task }
    }

    /// Hangs up: the task and its socket are dropped.
    async fn hang_up(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Waits until every client has seen instructions `..upto` both created and
/// consumed, in order.
async fn caught_up(sse: &mut [Subscriber], upto: u64) {
    for (n, client) in sse.iter_mut().enumerate() {
        let seen = tokio::time::timeout(
            SOON,
            client
                .seen
                .wait_for(|s| (s.created >= upto && s.consumed >= upto) || s.error.is_some()),
        )
        .await
        .map(|s| s.map(|s| s.clone()));
        let seen = match seen {
            Ok(Ok(seen)) => seen,
            Ok(Err(_)) => panic!("SSE client {n}'s task is gone"),
            Err(_) => panic!(
                "SSE client {n} has not seen #{upto} within {SOON:?}: {:?}",
                *client.seen.borrow()
            ),
        };
        assert_eq!(seen.error, None, "SSE client {n}: {seen:?}");
        assert_eq!(
            (seen.created, seen.consumed),
            (upto, upto),
            "SSE client {n} saw every instruction created and consumed, once each"
        );
    }
}

async fn connect_all(addr: SocketAddr, first: u64) -> Vec<Subscriber> {
    let connecting = (0..SSE_CLIENTS).map(|_| Subscriber::connect(addr, first));
    tokio::time::timeout(SOON, futures_util::future::join_all(connecting))
        .await
        .unwrap_or_else(|_| panic!("{SSE_CLIENTS} SSE clients not connected within {SOON:?}"))
}

async fn hang_up_all(sse: Vec<Subscriber>) {
    futures_util::future::join_all(sse.into_iter().map(Subscriber::hang_up)).await;
}

/// The server's open files, listed for a failure message.
fn fd_list(pid: u32) -> String {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return String::new();
    };
    let mut targets: Vec<String> = dir
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.display().to_string())
        .collect();
    targets.sort();
    targets.join("\n")
}

/// Open files that are not the database's (sockets, the audit log, pipes...).
fn fds(pid: u32) -> usize {
    open_fds(pid).expect("read the server's open files") - db_fds(pid)
}

/// Handles on the database file and its WAL and shared-memory files.
fn db_fds(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|t| {
            t.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(DB_FILE_NAME))
        })
        .count()
}

fn rss(pid: u32) -> u64 {
    rss_kib(pid).expect("read the server's RSS")
}

/// Waits until the server holds at most `target` open files. A hung-up client's
/// socket is closed when the server notices the hang-up, which it announces
/// nowhere, so `/proc` is polled; the deadline bounds a leak.
async fn fds_down_to(pid: u32, target: usize) -> usize {
    let deadline = Instant::now() + SOON;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let now = fds(pid);
        if now <= target || Instant::now() > deadline {
            return now;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_loop_with_fifty_sse_clients_keeps_memory_and_files_flat() {
    let calls = quick_or_long(QUICK_CALLS, LONG_CALLS);
    let db = TempDb::new();
    assert_eq!(
        db.path().file_name().and_then(|n| n.to_str()),
        Some(DB_FILE_NAME)
    );
    let mut cmd = local_mcp(db.path());
    cmd.env("LOG_LEVEL", "info")
        .env("DEFAULT_WAIT_SECONDS", "0");
    let server = Serve::start(cmd);
    let pid = server.pid();
    let addr: SocketAddr = ([127, 0, 0, 1], server.port()).into();
    let mut agent = Agent::new(server.url());

    // Warm-up, with a first set of SSE clients, then without them: the baseline
    // is the server with its warm caches and the agent's connection, no stream.
    let mut sse = connect_all(addr, agent.next_index).await;
    agent
        .run(quick_or_long(WARM_UP_CALLS.0, WARM_UP_CALLS.1), &mut sse)
        .await;
    let fds_with_streams = fds(pid);
    hang_up_all(sse).await;
    let fds_base = fds_down_to(pid, fds_with_streams - SSE_CLIENTS).await;
    let rss_base = rss(pid);
    assert!(
        fds_base <= fds_with_streams - SSE_CLIENTS,
        "the first {SSE_CLIENTS} SSE clients hung up but the server still holds {fds_base} files (it held {fds_with_streams} with them):\n{}",
        fd_list(pid)
    );

    // The measured part: a fresh set of clients, settled by a short run.
    let mut sse = connect_all(addr, agent.next_index).await;
    agent.run(100, &mut sse).await;
    let (rss_start, fds_start, db_fds_start) = (rss(pid), fds(pid), db_fds(pid));
    let started = Instant::now();
    let first_call = agent.calls;
    // RSS along the way, in tenths of the run: a plateau is a cache filling up,
    // a steady climb a leak.
    let mut trend = vec![format!("{rss_start}")];
    for tenth in 1..=10 {
        agent
            .run(calls * tenth / 10 - (agent.calls - first_call), &mut sse)
            .await;
        trend.push(format!("{}", rss(pid)));
    }
    let took = started.elapsed();
    let (rss_end, fds_end, db_fds_end) = (rss(pid), fds(pid), db_fds(pid));
    caught_up(&mut sse, agent.next_index).await;
    let messages: Vec<u64> = sse.iter().map(|s| s.seen.borrow().messages).collect();

    let status: Value = agent
        .http
        .get(format!("{}/api/status", agent.base))
        .send()
        .await
        .expect("GET /api/status")
        .json()
        .await
        .expect("the status");
    let total = agent.next_index;
    assert_eq!(
        (
            &status["queue"]["pending_count"],
            &status["queue"]["consumed_count"]
        ),
        (&json!(0), &json!(total)),
        "every instruction added was consumed once: {status}"
    );
    let empty = agent.get_user_request().await;
    assert_eq!(
        empty["result_type"], "default_response",
        "the queue is empty: {empty}"
    );

    hang_up_all(sse).await;
    let fds_after = fds_down_to(pid, fds_base + FD_SLACK).await;
    let rss_after = rss(pid);

    let measured = agent.calls - 1 - first_call;
    let per_second = measured as f64 / took.as_secs_f64();
    eprintln!(
        "soak: {measured} get_user_request calls ({total} instructions in all) in {took:.1?} ({per_second:.0} calls/s) with {SSE_CLIENTS} SSE clients reading {}..={} messages each",
        messages.iter().min().unwrap_or(&0),
        messages.iter().max().unwrap_or(&0),
    );
    eprintln!(
        "soak: server RSS (KiB) at each tenth of the run: {}",
        trend.join(" ")
    );
    eprintln!(
        "soak: server RSS {rss_start} KiB -> {rss_end} KiB ({:+} KiB) with {SSE_CLIENTS} streams; without streams {rss_base} KiB after the warm-up, {rss_after} KiB after the clients hung up; open files: baseline {fds_base}, with {SSE_CLIENTS} streams {fds_start} -> {fds_end}, after hang-up {fds_after}; database handles {db_fds_start} -> {db_fds_end}",
        rss_end as i64 - rss_start as i64,
    );

    assert!(
        rss_end < rss_start + RSS_GROWTH_LIMIT_KIB,
        "RSS grew from {rss_start} KiB to {rss_end} KiB over {measured} calls"
    );
    assert!(
        fds_end.abs_diff(fds_start) <= FD_SLACK,
        "open files went from {fds_start} to {fds_end} over {measured} calls:\n{}",
        fd_list(pid)
    );
    assert!(
        db_fds_end <= db_fds_start + DB_FD_GROWTH_LIMIT,
        "database handles went from {db_fds_start} to {db_fds_end} over {measured} calls:\n{}",
        fd_list(pid)
    );
    assert!(
        fds_after.abs_diff(fds_base) <= FD_SLACK,
        "after the SSE clients hung up the server holds {fds_after} files, baseline {fds_base}:\n{}",
        fd_list(pid)
    );
    assert!(
        !server.log().contains("panicked"),
        "the server panicked:\n{}",
        server.log()
    );
}
