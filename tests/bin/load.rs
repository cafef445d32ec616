//! The load driver behind the performance figures in docs/benchmarks.md: starts
//! `local-mcp serve` (and a `local-mcp stdio` child) on a fresh database in a
//! temporary folder, on a free loopback port, drives it, and prints every figure
//! as a markdown table with its target.
//!
//! Usage:
//!   load [--binary PATH] [--quick] [--timeout SECS] [--env KEY=VALUE]...
//!        [--only PHASE,...] [--drain N] [--postgres ADMIN_URL]
//!
//! `--binary` defaults to `target/release/local-mcp`; `--quick` uses small counts
//! so that it can run as a smoke test against a debug build; `--env` sets an
//! environment variable for the `local-mcp` processes (for experiments such as
//! `--env AUDIT_LOG=off`; the figures are taken with the defaults). `--only` runs
//! some phases (`wake`, `cross`, `fanout`, `consume`, `reads`, `create`; start-up
//! and memory always) and `--drain` changes how many instructions the consume
//! phase queues — both for profiling one phase for longer, not for the figures.
//! `--postgres` keeps every server's queue in a fresh PostgreSQL database created
//! from `ADMIN_URL` (and dropped after), instead of a SQLite file: the figures of
//! the PostgreSQL store.
//! Every request goes
//! over a hand-written HTTP/1.1 keep-alive client on loopback ([`Conn`]): it costs
//! the shared CPU far less than a general-purpose client, so the rates say more
//! about the server. MCP tool calls are plain JSON-RPC POSTs to `/mcp` in the
//! server's default stateless mode (no `initialize`, SPEC §3 rule 9).
//!
//! A figure that cannot be measured (a refused request, a wrong answer, a phase
//! that outlives `--timeout`) ends the run with an error; a missed target is
//! reported in the table, not treated as a failure.
#![allow(
    clippy::print_stdout,
    reason = "printing the figures is this program's job"
)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use integration::{ChildGuard, Proc, RawSse, SseParser, TempDb, TempPg, peak_rss_kib, rss_kib};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const USAGE: &str = "usage: load [--binary PATH] [--quick] [--timeout SECS] [--env KEY=VALUE]... [--only PHASE,...] [--drain N] [--postgres ADMIN_URL]";

/// `--postgres`: the server to create each run's database on.
static POSTGRES: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The phases `--only` can pick, in the order they run.
const PHASES: [&str; 6] = ["wake", "cross", "fanout", "consume", "reads", "create"];

struct Args {
    binary: PathBuf,
    quick: bool,
    timeout: Duration,
    env: Vec<(String, String)>,
    only: Option<Vec<String>>,
    drain: Option<u64>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut binary = PathBuf::from("target/release/local-mcp");
    let mut quick = false;
    let mut timeout = 600;
    let mut env = Vec::new();
    let mut only = None;
    let mut drain = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--binary" => binary = PathBuf::from(value()?),
            "--quick" => quick = true,
            "--timeout" => timeout = value()?.parse().context("--timeout")?,
            "--env" => {
                let pair = value()?;
                let (k, v) = pair.split_once('=').context("--env takes KEY=VALUE")?;
                env.push((k.to_owned(), v.to_owned()));
            }
            "--only" => {
                let list: Vec<String> = value()?.split(',').map(str::to_owned).collect();
                if let Some(bad) = list.iter().find(|p| !PHASES.contains(&p.as_str())) {
                    bail!("unknown phase {bad:?}: pick from {}", PHASES.join(", "));
                }
                only = Some(list);
            }
            "--drain" => drain = Some(value()?.parse().context("--drain")?),
            "--postgres" => {
                let _ = POSTGRES.set(value()?);
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    ensure!(
        binary.is_file(),
        "{} is missing: build it with `cargo build --release -p local-mcp`, or name another with --binary",
        binary.display()
    );
    Ok(Args {
        binary,
        quick,
        timeout: Duration::from_secs(timeout),
        env,
        only,
        drain,
    })
}

/// How much of everything to do.
struct Plan {
    startups: usize,
    wake_trials: usize,
    drain: u64,
    rate_for: Duration,
    connections: usize,
    stored: u64,
    list_trials: usize,
    sse_clients: usize,
    sse_events: usize,
    cross_trials: usize,
}

impl Plan {
    fn full() -> Self {
        Plan {
            startups: 5,
            wake_trials: 200,
            drain: 1_000,
            rate_for: Duration::from_secs(5),
            connections: 32,
            stored: 10_000,
            list_trials: 20,
            sse_clients: 100,
            sse_events: 50,
            cross_trials: 200,
        }
    }

    fn quick() -> Self {
        Plan {
            startups: 2,
            wake_trials: 20,
            drain: 100,
            rate_for: Duration::from_secs(1),
            connections: 8,
            stored: 500,
            list_trials: 5,
            sse_clients: 10,
            sse_events: 5,
            cross_trials: 10,
        }
    }
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client: one keep-alive connection, one request at a time.
// ---------------------------------------------------------------------------

/// One answer.
struct Reply {
    status: u16,
    body: Vec<u8>,
    /// When the body first held the awaited bytes (see [`Conn::send`]).
    seen: Option<Instant>,
}

impl Reply {
    fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "the answer is not JSON: {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A keep-alive connection to the server.
struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::new(stream),
        })
    }

    /// Sends `request` (a whole HTTP/1.1 request) and reads the answer. With
    /// `awaited`, notes when the body first contains it — for a streamed answer,
    /// the moment that part arrived rather than the end of the stream.
    async fn send(&mut self, request: &[u8], awaited: Option<&[u8]>) -> anyhow::Result<Reply> {
        self.stream.get_mut().write_all(request).await?;
        let mut line = Vec::with_capacity(128);
        self.read_line(&mut line).await?;
        let status_line = String::from_utf8_lossy(&line).into_owned();
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("not an HTTP status line: {status_line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            self.read_line(&mut line).await?;
            if line == b"\r\n" {
                break;
            }
            let header = String::from_utf8_lossy(&line).to_ascii_lowercase();
            if let Some(v) = header.strip_prefix("content-length:") {
                length = Some(v.trim().parse::<usize>().context("content-length")?);
            } else if header.starts_with("transfer-encoding:") && header.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        let mut seen = None;
        let mut look = |body: &[u8]| {
            if seen.is_none() && awaited.is_some_and(|a| contains(body, a)) {
                seen = Some(Instant::now());
            }
        };
        if chunked {
            loop {
                self.read_line(&mut line).await?;
                let text = String::from_utf8_lossy(&line);
                let hex = text.trim().split(';').next().unwrap_or("");
                let size = usize::from_str_radix(hex, 16)
                    .with_context(|| format!("bad chunk size {text:?}"))?;
                if size == 0 {
                    // No trailers: the blank line that ends the body.
                    self.read_line(&mut line).await?;
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                self.stream.read_exact(&mut body[start..]).await?;
                let mut crlf = [0_u8; 2];
                self.stream.read_exact(&mut crlf).await?;
                look(&body);
            }
        } else {
            body.resize(length.unwrap_or(0), 0);
            self.stream.read_exact(&mut body).await?;
            look(&body);
        }
        Ok(Reply { status, body, seen })
    }

    async fn read_line(&mut self, line: &mut Vec<u8>) -> anyhow::Result<()> {
        line.clear();
        let n = self.stream.read_until(b'\n', line).await?;
        ensure!(n > 0, "the server closed the connection");
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Request bytes, built once per kind of request.
#[derive(Clone)]
struct Requests {
    host: String,
}

impl Requests {
    fn get(&self, path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host).into_bytes()
    }

    fn post(&self, path: &str, body: &Value, extra: &str) -> Vec<u8> {
        let body = body.to_string();
        format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        )
        .into_bytes()
    }

    fn add(&self, content: &str) -> Vec<u8> {
        self.post("/api/instructions", &json!({ "content": content }), "")
    }

    /// A stateless `tools/call` of `get_user_request` for `agent`.
    fn call(&self, agent: &str) -> Vec<u8> {
        self.post(
            "/mcp",
            &json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                "params":{"name":"get_user_request","arguments":{"agent_id":agent}}}),
            "Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\n",
        )
    }
}

/// The tool result in an `/mcp` answer (an SSE stream of JSON-RPC messages).
fn tool_result(reply: &Reply) -> anyhow::Result<Value> {
    ensure!(reply.status == 200, "/mcp answered {}", reply.status);
    let text = String::from_utf8_lossy(&reply.body);
    let frames = SseParser::parse_all(&reply.body);
    for data in frames.iter().map(|f| &f.data).filter(|d| !d.is_empty()) {
        let message: Value = serde_json::from_str(data).context("an /mcp message")?;
        if let Some(result) = message.get("result") {
            ensure!(result["isError"] == json!(false), "tool error: {result}");
            return Ok(result["structuredContent"].clone());
        }
        ensure!(message.get("error").is_none(), "JSON-RPC error: {message}");
    }
    bail!("no result in the /mcp answer: {text}")
}

// ---------------------------------------------------------------------------
// The server under test.
// ---------------------------------------------------------------------------

/// A `local-mcp serve` on its own fresh database; killed on drop.
struct Server {
    child: ChildGuard,
    addr: SocketAddr,
    db: TempDb,
    /// The PostgreSQL database holding the queue, with `--postgres`.
    pg: Option<TempPg>,
    requests: Requests,
    /// Spawn to `/healthz` answering.
    startup: Duration,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    async fn conn(&self) -> anyhow::Result<Conn> {
        Conn::open(self.addr).await
    }

    /// `GET /api/status`.
    async fn status(&self) -> anyhow::Result<Value> {
        let reply = self
            .conn()
            .await?
            .send(&self.requests.get("/api/status"), None)
            .await?;
        ensure!(reply.status == 200, "/api/status answered {}", reply.status);
        reply.json()
    }

    /// Instructions stored, pending and consumed.
    async fn stored(&self) -> anyhow::Result<u64> {
        let status = self.status().await?;
        let queue = &status["queue"];
        Ok(queue["pending_count"].as_u64().unwrap_or(0)
            + queue["consumed_count"].as_u64().unwrap_or(0))
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `serve` with the built-in defaults (logs at `info` to a file, audit log
/// on, `synchronous=FULL`, stateless MCP) and times it until `/healthz` answers.
async fn start_server(binary: &Path, env: &[(String, String)]) -> anyhow::Result<Server> {
    let mut last = None;
    // The free port is found by binding and letting go, so another program may
    // take it first; then the server exits and another port is tried.
    for _ in 0..3 {
        match try_start(binary, env).await {
            Ok(server) => return Ok(server),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("serve did not start")))
}

async fn try_start(binary: &Path, env: &[(String, String)]) -> anyhow::Result<Server> {
    let db = TempDb::new();
    let pg = POSTGRES.get().map(|admin| TempPg::on(admin));
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = std::fs::File::create(db.dir().join("serve.log"))?;
    let mut cmd = Command::new(binary);
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", db.dir())
        .env("DB_PATH", db.path())
        .env("HTTP_PORT", port.to_string())
        .envs(pg.iter().map(|pg| ("DB_URL", pg.url())))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let requests = Requests {
        host: addr.to_string(),
    };
    let healthz = requests.get("/healthz");
    let started = Instant::now();
    let mut child = ChildGuard(
        cmd.spawn()
            .with_context(|| format!("spawning {}", binary.display()))?,
    );
    let startup = loop {
        if let Some(status) = child.0.try_wait()? {
            let log = std::fs::read_to_string(db.dir().join("serve.log")).unwrap_or_default();
            bail!("serve exited ({status}) before answering:\n{log}");
        }
        if let Ok(mut conn) = Conn::open(addr).await
            && let Ok(reply) = conn.send(&healthz, None).await
            && reply.status == 200
        {
            break started.elapsed();
        }
        ensure!(
            started.elapsed() < Duration::from_secs(20),
            "/healthz did not answer within 20 s"
        );
        // Short, so the figure is not rounded up by the polling.
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    Ok(Server {
        child,
        addr,
        db,
        pg,
        requests,
        startup,
    })
}

// ---------------------------------------------------------------------------
// Statistics and the report.
// ---------------------------------------------------------------------------

/// The value at quantile `q` (nearest rank) of `samples`, which must be sorted.
fn quantile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((samples.len() as f64) * q).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One row of the table.
struct Row {
    figure: String,
    measured: String,
    target: String,
    met: bool,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
}

impl Report {
    fn row(&mut self, figure: &str, measured: String, target: &str, met: bool) {
        println!("  {figure}: {measured} (target {target}: {})", verdict(met));
        self.rows.push(Row {
            figure: figure.to_owned(),
            measured,
            target: target.to_owned(),
            met,
        });
    }

    fn print(&self) {
        println!();
        println!("| figure | measured | target | |");
        println!("|---|---|---|---|");
        for r in &self.rows {
            println!(
                "| {} | {} | {} | {} |",
                r.figure,
                r.measured,
                r.target,
                verdict(r.met)
            );
        }
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

// ---------------------------------------------------------------------------
// The measurements.
// ---------------------------------------------------------------------------

async fn measure_startup(
    binary: &Path,
    env: &[(String, String)],
    plan: &Plan,
    report: &mut Report,
) -> anyhow::Result<Server> {
    let mut times = Vec::with_capacity(plan.startups);
    for _ in 1..plan.startups {
        times.push(start_server(binary, env).await?.startup);
    }
    let server = start_server(binary, env).await?;
    times.push(server.startup);
    times.sort();
    let median = quantile(&times, 0.5);
    report.row(
        "start-up: spawn → `/healthz` answers",
        format!(
            "median {:.1} ms, max {:.1} ms ({} starts, fresh database each)",
            ms(median),
            ms(*times.last().unwrap_or(&Duration::ZERO)),
            times.len()
        ),
        "≤ 25 ms",
        median <= Duration::from_millis(25),
    );
    // Settle: what lingers after start-up (the first idle poll, allocator caches).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = rss_kib(server.pid()).context("reading serve's RSS")?;
    report.row(
        "idle memory: RSS 0.5 s after start-up",
        format!("{:.1} MiB", mib(rss)),
        "≤ 12 MiB",
        rss <= 12 * 1024,
    );
    Ok(server)
}

/// Reads `sse` until it shows `agent` with a call in flight.
async fn until_waiting(sse: &mut RawSse, agent: &str) -> anyhow::Result<()> {
    loop {
        let frame = sse.next_frame().await?.context("the event stream ended")?;
        if frame.kind() == "agent.updated" {
            let data = &frame.json()["data"];
            if data["agent_id"] == json!(agent) && data["waiting"] == json!(true) {
                return Ok(());
            }
        }
    }
}

/// An MCP call over HTTP waits on an empty queue; an instruction is added through
/// the API; the time from sending that POST to the call's result arriving.
async fn measure_wake(server: &Server, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    const AGENT: &str = "load-wake";
    let mut sse = RawSse::connect(server.addr, None).await?;
    let mut adder = server.conn().await?;
    let mut samples = Vec::with_capacity(plan.wake_trials);
    for trial in 0..plan.wake_trials {
        let mut caller = server.conn().await?;
        let call = server.requests.call(AGENT);
        let waiting = tokio::spawn(async move {
            let reply = caller.send(&call, Some(b"\"result\"")).await;
            (caller, reply)
        });
        until_waiting(&mut sse, AGENT).await?;
        // `waiting` is recorded before the call's first look at the queue; let
        // that look (an empty claim) finish so the call is really asleep.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let content = format!("wake {trial}");
        let sent = Instant::now();
        let added = adder.send(&server.requests.add(&content), None).await?;
        let (_, reply) = waiting.await?;
        let reply = reply?;
        ensure!(added.status == 201, "POST answered {}", added.status);
        let result = tool_result(&reply)?;
        ensure!(
            result["instruction"]["content"] == json!(content),
            "the call returned {result} instead of {content:?}"
        );
        let seen = reply.seen.context("the result was never seen")?;
        samples.push(seen - sent);
    }
    samples.sort();
    let (p50, p99) = (quantile(&samples, 0.5), quantile(&samples, 0.99));
    report.row(
        "wake latency: POST sent → waiting MCP HTTP call's result",
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} trials)",
            ms(p50),
            ms(p99),
            ms(*samples.last().unwrap_or(&Duration::ZERO)),
            samples.len()
        ),
        "p50 ≤ 1 ms, p99 ≤ 3 ms",
        p50 <= Duration::from_millis(1) && p99 <= Duration::from_millis(3),
    );
    Ok(())
}

/// Adds `n` instructions over `connections` connections at once, each answered
/// 201; returns how long it took.
async fn add_many(
    server: &Server,
    n: u64,
    connections: usize,
    tag: &str,
) -> anyhow::Result<Duration> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (next, addr, requests, tag) = (
            Arc::clone(&next),
            server.addr,
            server.requests.clone(),
            tag.to_owned(),
        );
        tasks.spawn(async move {
            let mut conn = Conn::open(addr).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let reply = conn
                    .send(&requests.add(&format!("{tag} {i}")), None)
                    .await?;
                ensure!(reply.status == 201, "POST answered {}", reply.status);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

/// Queues `plan.drain` instructions, then drains them with MCP calls over HTTP
/// from `clients` agents at once; returns calls per second.
async fn drain(server: &Server, plan: &Plan, clients: usize) -> anyhow::Result<f64> {
    add_many(server, plan.drain, plan.connections, "drain").await?;
    // One call per queued instruction, so no call ever waits on an empty queue.
    let tickets = Arc::new(AtomicU64::new(plan.drain));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (tickets, addr, call) = (
            Arc::clone(&tickets),
            server.addr,
            server.requests.call(&format!("load-drain-{clients}-{c}")),
        );
        tasks.spawn(async move {
            let mut conn = Conn::open(addr).await?;
            while tickets
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| t.checked_sub(1))
                .is_ok()
            {
                let result = tool_result(&conn.send(&call, None).await?)?;
                ensure!(
                    result["result_type"] == json!("instruction"),
                    "a drain call got {result}"
                );
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(plan.drain as f64 / started.elapsed().as_secs_f64())
}

async fn measure_consume(server: &Server, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let one = drain(server, plan, 1).await?;
    let eight = drain(server, plan, 8).await?;
    report.row(
        &format!(
            "consume rate: {} queued, drained by MCP calls over HTTP",
            plan.drain
        ),
        format!("1 client {one:.0} calls/s; 8 clients {eight:.0} calls/s"),
        "≥ 5,000 calls/s with 8 clients",
        eight >= 5_000.0,
    );
    Ok(())
}

/// `connections` connections send `request` back to back for `plan.rate_for`;
/// every answer must have status `expect`. Returns answers per second and the
/// p99 latency.
async fn hammer(
    server: &Server,
    plan: &Plan,
    request: Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>,
    expect: u16,
) -> anyhow::Result<(u64, f64, Duration)> {
    let deadline = Instant::now() + plan.rate_for;
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.connections {
        let (addr, request, counter) = (server.addr, Arc::clone(&request), Arc::clone(&counter));
        tasks.spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let reply = conn.send(&request(i), None).await?;
                latencies.push(sent.elapsed());
                ensure!(
                    reply.status == expect,
                    "answered {} instead of {expect}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                );
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let n = latencies.len() as u64;
    Ok((
        n,
        n as f64 / elapsed.as_secs_f64(),
        quantile(&latencies, 0.99),
    ))
}

async fn measure_reads(server: &Server, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let have = server.stored().await?;
    if have < plan.stored {
        add_many(server, plan.stored - have, plan.connections, "stored").await?;
    }
    let stored = server.stored().await?;
    ensure!(
        stored == plan.stored.max(have),
        "{stored} instructions stored"
    );

    let status = server.requests.get("/api/status");
    let (_, rate, p99) = hammer(server, plan, Arc::new(move |_| status.clone()), 200).await?;
    report.row(
        &format!(
            "status rate: `GET /api/status`, {} connections, {} s, {stored} stored",
            plan.connections,
            plan.rate_for.as_secs()
        ),
        format!("{rate:.0} req/s (p99 {:.2} ms)", ms(p99)),
        "≥ 30,000 req/s",
        rate >= 30_000.0,
    );
    println!(
        "    serve's peak RSS after the status rate: {:.1} MiB",
        mib(peak_rss_kib(server.pid()).unwrap_or(0))
    );

    let mut conn = server.conn().await?;
    let list = server.requests.get("/api/instructions");
    let mut times = Vec::with_capacity(plan.list_trials);
    let mut size = 0;
    for _ in 0..plan.list_trials {
        let sent = Instant::now();
        let reply = conn.send(&list, None).await?;
        times.push(sent.elapsed());
        ensure!(reply.status == 200, "the list answered {}", reply.status);
        let body = reply.json()?;
        let n = body["items"].as_array().map_or(0, Vec::len) as u64;
        ensure!(n == stored, "the list held {n} of {stored} items");
        size = reply.body.len();
    }
    times.sort();
    let median = quantile(&times, 0.5);
    report.row(
        &format!("list: `GET /api/instructions`, {stored} items"),
        format!(
            "median {:.1} ms, max {:.1} ms ({} requests, {:.1} MiB each)",
            ms(median),
            ms(*times.last().unwrap_or(&Duration::ZERO)),
            times.len(),
            size as f64 / 1_048_576.0
        ),
        "≤ 10 ms",
        median <= Duration::from_millis(10),
    );
    Ok(())
}

async fn measure_create(server: &Server, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let before = server.stored().await?;
    let requests = server.requests.clone();
    let (n, rate, p99) = hammer(
        server,
        plan,
        Arc::new(move |i| requests.add(&format!("rate {i}"))),
        201,
    )
    .await?;
    let after = server.stored().await?;
    ensure!(
        after == before + n,
        "{n} adds answered 201 but the store went from {before} to {after}"
    );
    report.row(
        &format!(
            "create rate: `POST /api/instructions`, {} connections, {} s",
            plan.connections,
            plan.rate_for.as_secs()
        ),
        format!("{rate:.0} req/s (p99 {:.2} ms, {n} durable adds)", ms(p99)),
        "≥ 20,000 req/s",
        rate >= 20_000.0,
    );
    Ok(())
}

/// `plan.sse_clients` event streams; `plan.sse_events` adds posted one after
/// another; the time from the first POST to the last client having seen every one.
async fn measure_fan_out(server: &Server, plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(plan.sse_clients);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(plan.sse_clients);
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..plan.sse_clients {
        let (addr, ready, done, want) = (
            server.addr,
            ready_tx.clone(),
            done_tx.clone(),
            plan.sse_events,
        );
        clients.spawn(async move {
            let mut sse = RawSse::connect(addr, None).await?;
            loop {
                let frame = sse.next_frame().await?.context("the stream ended")?;
                if frame.comments.iter().any(|c| c == "connected") {
                    break;
                }
            }
            let _ = ready.send(()).await;
            let mut seen = 0;
            while seen < want {
                let frame = sse.next_frame().await?.context("the stream ended")?;
                if frame.kind() == "instruction.created"
                    && frame.data.contains("\"content\":\"fan-out ")
                {
                    seen += 1;
                }
            }
            let _ = done.send(Instant::now()).await;
            anyhow::Ok(())
        });
    }
    drop((ready_tx, done_tx));
    for n in 0..plan.sse_clients {
        ready_rx
            .recv()
            .await
            .with_context(|| format!("only {n} event clients connected"))?;
    }
    // The adds go one after another over one connection opened first (so the
    // figure holds no handshake), each POST waiting for its 201 before the next,
    // as a person's browser or a script sends them.
    let mut poster = server.conn().await?;
    let sent = Instant::now();
    for i in 0..plan.sse_events {
        let reply = poster
            .send(&server.requests.add(&format!("fan-out {i}")), None)
            .await?;
        ensure!(reply.status == 201, "POST answered {}", reply.status);
    }
    let mut last = sent;
    for n in 0..plan.sse_clients {
        let at = done_rx
            .recv()
            .await
            .with_context(|| format!("only {n} event clients saw every event"))?;
        last = last.max(at);
    }
    clients.abort_all();
    let took = last - sent;
    report.row(
        &format!(
            "SSE fan-out: {} clients, {} adds posted one after another",
            plan.sse_clients, plan.sse_events
        ),
        format!("{:.1} ms until every client saw all", ms(took)),
        "≤ 50 ms",
        took <= Duration::from_millis(50),
    );
    Ok(())
}

/// A call waits in a `local-mcp stdio` process on the same database; `serve`
/// gets the add.
async fn measure_cross(
    binary: &Path,
    env: &[(String, String)],
    server: &Server,
    plan: &Plan,
    report: &mut Report,
) -> anyhow::Result<()> {
    const AGENT: &str = "load-cross";
    // Absolute: the process starts in another folder.
    let mut cmd = Command::new(std::fs::canonicalize(binary)?);
    // In the database's folder, in no git repository: the agent's queue is
    // `default`, where the adds go.
    cmd.arg("stdio")
        .current_dir(server.db.dir())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", server.db.dir())
        .env("DB_PATH", server.db.path())
        .envs(server.pg.iter().map(|pg| ("DB_URL", pg.url())))
        .envs(env.iter().map(|(k, v)| (k, v)));
    let mut stdio = Proc::spawn(cmd);
    stdio.initialize("load").await;
    let mut sse = RawSse::connect(server.addr, None).await?;
    let mut adder = server.conn().await?;
    let mut samples = Vec::with_capacity(plan.cross_trials);
    for trial in 0..plan.cross_trials {
        let id = stdio.start_get_user_request(AGENT).await;
        // `serve` learns of the waiting call through its own poll of the database.
        until_waiting(&mut sse, AGENT).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        let content = format!("cross {trial}");
        let sent = Instant::now();
        let added = adder.send(&server.requests.add(&content), None).await?;
        ensure!(added.status == 201, "POST answered {}", added.status);
        let result = stdio.tool_result(id, Duration::from_secs(10)).await;
        samples.push(sent.elapsed());
        ensure!(
            result["instruction"]["content"] == json!(content),
            "the stdio call returned {result} instead of {content:?}"
        );
    }
    samples.sort();
    let p99 = quantile(&samples, 0.99);
    report.row(
        "cross-process wake: add in `serve` → call waiting in `stdio`",
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} trials)",
            ms(quantile(&samples, 0.5)),
            ms(p99),
            ms(*samples.last().unwrap_or(&Duration::ZERO)),
            samples.len()
        ),
        "p99 ≤ 50 ms",
        p99 <= Duration::from_millis(50),
    );
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(n) = args.drain {
        plan.drain = n;
    }
    let runs = |phase: &str| {
        args.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|p| p == phase))
    };
    let mut report = Report::default();
    println!(
        "local-mcp load driver: {} ({}), {} CPUs",
        args.binary.display(),
        if args.quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    for (k, v) in &args.env {
        println!("  with {k}={v} (not a default)");
    }
    let server = measure_startup(&args.binary, &args.env, &plan, &mut report).await?;
    // The two wake figures need an empty queue, so they come first; the fan-out
    // leaves its adds pending, and the drains take only what they queued.
    let pid = server.pid();
    let peak = || {
        println!(
            "    serve's peak RSS so far: {:.1} MiB",
            mib(peak_rss_kib(pid).unwrap_or(0))
        );
    };
    if runs("wake") {
        measure_wake(&server, &plan, &mut report).await?;
        peak();
    }
    if runs("cross") {
        measure_cross(&args.binary, &args.env, &server, &plan, &mut report).await?;
        peak();
    }
    if runs("fanout") {
        measure_fan_out(&server, &plan, &mut report).await?;
        peak();
    }
    if runs("consume") {
        measure_consume(&server, &plan, &mut report).await?;
        peak();
    }
    if runs("reads") {
        measure_reads(&server, &plan, &mut report).await?;
        peak();
    }
    if runs("create") {
        measure_create(&server, &plan, &mut report).await?;
    }
    let peak = peak_rss_kib(server.pid()).context("reading serve's VmHWM")?;
    report.row(
        "memory under load: serve's peak RSS (VmHWM) over the run",
        format!("{:.1} MiB", mib(peak)),
        "≤ 40 MiB",
        peak <= 40 * 1024,
    );
    report.print();
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let limit = args.timeout;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        tokio::time::timeout(limit, run(args))
            .await
            .with_context(|| format!("gave up after {limit:?} (--timeout)"))?
    })
}
