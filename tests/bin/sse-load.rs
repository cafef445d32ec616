//! A load driver for live events: N SSE clients on one running `local-mcp serve`,
//! M instructions posted one after another, and how long each event takes to
//! reach each client. Loopback only, bounded in time, stops by itself.
//!
//! Usage:
//!   sse-load --url http://127.0.0.1:PORT --clients N --events M [--pid PID] [--timeout SECS]
//!            [--handshakes K]
//!
//! For each event it records the time from sending the POST to each client
//! reading the `instruction.created` frame, and also from the POST's 201 answer
//! (the server pushes the event before it writes the answer, so a client may read
//! it first; those count as 0). With `--pid` it prints the server's resident
//! memory (VmRSS) and open file count before the clients connect, with them
//! connected, after the events, and after they hang up. At most K clients (64
//! unless told; 0 for no limit) are in their connection handshake at once: the
//! server's listen backlog is 128, and SYNs beyond it are retried by the kernel
//! only after a second.
#![allow(
    clippy::print_stdout,
    reason = "printing the figures is this program's job"
)]

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use integration::{RawSse, open_fds, rss_kib};
use serde_json::{Value, json};

struct Args {
    url: String,
    addr: SocketAddr,
    clients: usize,
    events: usize,
    pid: Option<u32>,
    timeout: Duration,
    handshakes: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut url = None;
    let mut clients = 100;
    let mut events = 10;
    let mut pid = None;
    let mut timeout = 120;
    let mut handshakes = 64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => url = Some(value()?),
            "--clients" => clients = value()?.parse().context("--clients")?,
            "--events" => events = value()?.parse().context("--events")?,
            "--pid" => pid = Some(value()?.parse().context("--pid")?),
            "--timeout" => timeout = value()?.parse().context("--timeout")?,
            "--handshakes" => handshakes = value()?.parse().context("--handshakes")?,
            other => bail!(
                "unknown argument {other:?}\nusage: sse-load --url http://127.0.0.1:PORT --clients N --events M [--pid PID] [--timeout SECS] [--handshakes K]"
            ),
        }
    }
    let url = url.context("--url http://127.0.0.1:PORT is required")?;
    let url = url.trim_end_matches('/').to_owned();
    let authority = url
        .strip_prefix("http://")
        .context("--url must start with http://")?;
    ensure!(
        !authority.contains('/'),
        "--url is the server's base URL, with no path"
    );
    let (host, _) = authority
        .rsplit_once(':')
        .context("--url needs an explicit port")?;
    // This driver opens many connections at once: it must never be pointed at
    // anything but this machine.
    ensure!(
        ["127.0.0.1", "localhost", "[::1]"].contains(&host),
        "--url must be a loopback address (127.0.0.1, localhost or [::1]), not {host}"
    );
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .find(|a| a.ip().is_loopback())
        .context("no loopback address")?;
    ensure!(
        clients > 0 && events > 0,
        "--clients and --events must be at least 1"
    );
    Ok(Args {
        url,
        addr,
        clients,
        events,
        pid,
        timeout: Duration::from_secs(timeout),
        handshakes,
    })
}

fn show_rss(pid: Option<u32>, when: &str) {
    if let Some(pid) = pid {
        let fds = open_fds(pid).map_or_else(|| String::from("?"), |n| n.to_string());
        match rss_kib(pid) {
            Some(kib) => println!(
                "server {when}: RSS {:.1} MiB, {fds} open fds",
                kib as f64 / 1024.0
            ),
            None => println!("server {when}: RSS unreadable (/proc/{pid}/status)"),
        }
    }
}

/// The value at quantile `q` (nearest rank) of sorted `samples`.
fn quantile(samples: &[Duration], q: f64) -> Duration {
    let rank = ((samples.len() as f64) * q).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
        ms(quantile(&samples, 0.50)),
        ms(quantile(&samples, 0.99)),
        ms(*samples.last().unwrap_or(&Duration::ZERO)),
        samples.len()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One client: subscribes, says when it is ready, then reports every
/// `instruction.created` it reads with the time it read it.
async fn client(
    addr: SocketAddr,
    handshakes: Arc<tokio::sync::Semaphore>,
    ready: tokio::sync::mpsc::Sender<()>,
    seen: tokio::sync::mpsc::UnboundedSender<(String, Instant)>,
) -> anyhow::Result<()> {
    let permit = handshakes.acquire_owned().await?;
    let mut sse = RawSse::connect(addr, None).await?;
    loop {
        let frame = sse.next_frame().await?.context("the stream ended")?;
        if frame.comments.iter().any(|c| c == "connected") {
            break;
        }
    }
    drop(permit);
    let _ = ready.send(()).await;
    while let Some(frame) = sse.next_frame().await? {
        if frame.kind() == "instruction.created" {
            let at = Instant::now();
            let id = frame.json()["data"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if seen.send((id, at)).is_err() {
                break;
            }
        }
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        url,
        addr,
        clients,
        events,
        pid,
        handshakes,
        ..
    } = args;
    show_rss(pid, "before the clients connect");

    let started = Instant::now();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(clients);
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let handshakes = Arc::new(tokio::sync::Semaphore::new(if handshakes == 0 {
        tokio::sync::Semaphore::MAX_PERMITS
    } else {
        handshakes
    }));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        tasks.spawn(client(
            addr,
            Arc::clone(&handshakes),
            ready_tx.clone(),
            seen_tx.clone(),
        ));
    }
    drop((ready_tx, seen_tx));
    for n in 0..clients {
        tokio::select! {
            got = ready_rx.recv() => got.with_context(|| format!("only {n} of {clients} clients connected"))?,
            Some(failed) = tasks.join_next() => {
                failed??;
                bail!("a client stopped before it was connected");
            }
        }
    }
    println!(
        "{clients} clients connected in {:.0} ms",
        ms(started.elapsed())
    );
    show_rss(pid, &format!("with {clients} clients connected"));

    let http = reqwest::Client::new();
    let mut from_send = Vec::with_capacity(clients * events);
    let mut from_201 = Vec::with_capacity(clients * events);
    let mut post_times = Vec::with_capacity(events);
    let mut last_client = Vec::with_capacity(events);
    // Receipts read before this side learned the id from the POST's answer.
    let mut early: HashMap<String, Vec<Instant>> = HashMap::new();
    for i in 0..events {
        let sent = Instant::now();
        let res = http
            .post(format!("{url}/api/instructions"))
            .json(&json!({"content": format!("sse-load event {i}")}))
            .send()
            .await
            .context("POST /api/instructions")?;
        let answered = Instant::now();
        ensure!(
            res.status().as_u16() == 201,
            "POST answered {}",
            res.status()
        );
        let body: Value = res.json().await?;
        let id = body["item"]["id"].as_str().unwrap_or_default().to_owned();
        post_times.push(answered - sent);
        let mut arrivals = early.remove(&id).unwrap_or_default();
        while arrivals.len() < clients {
            let (got, at) = seen_rx
                .recv()
                .await
                .context("every client stopped before the event arrived")?;
            if got == id {
                arrivals.push(at);
            } else {
                early.entry(got).or_default().push(at);
            }
        }
        for at in &arrivals {
            from_send.push(*at - sent);
            from_201.push(at.saturating_duration_since(answered));
        }
        last_client.push(
            arrivals
                .iter()
                .max()
                .map_or(Duration::ZERO, |at| *at - sent),
        );
    }
    println!("{events} events, each to {clients} clients:");
    summary("  POST -> 201", post_times);
    summary("  POST sent -> a client reads the event", from_send);
    summary("  POST's 201 -> a client reads the event", from_201);
    summary(
        "  POST sent -> the last client reads the event",
        last_client,
    );
    show_rss(pid, "after the events");

    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    // The server notices the hang-ups as it next writes or reads; give it a moment
    // before reading its memory again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let health = http.get(format!("{url}/healthz")).send().await?;
    ensure!(
        health.status().is_success(),
        "/healthz answered {}",
        health.status()
    );
    show_rss(pid, "after the clients hung up");
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let limit = args.timeout;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        tokio::time::timeout(limit, run(args))
            .await
            .with_context(|| format!("gave up after {limit:?} (--timeout)"))?
    })
}
