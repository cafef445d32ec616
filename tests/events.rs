//! Live events over SSE: the frames a change produces, replay with
//! `Last-Event-ID`, refetch when the id is out of reach, changes made by other
//! processes on the same database, and a thousand clients on one server.
//! Only the thousand-clients test spawns `local-mcp serve`, to check the
//! server's own log for panics under that load; the rest serve in-process.

use std::time::{Duration, Instant};

use integration::{
    Proc, RawSse, Serve, SseClient, SseFrame, TempDb, TestServer, local_mcp, mcp_post,
    mcp_tool_result,
};
use serde_json::{Value, json};

/// How long any single expected event may take. Events from the same process are
/// pushed at once and other processes' within about 25 ms; this only bounds a
/// failure.
const SOON: Duration = Duration::from_secs(5);

async fn post_instruction(base: &str, text: &str) -> Value {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/instructions"))
        .json(&json!({ "content": text }))
        .send()
        .await
        .expect("POST /api/instructions");
    assert_eq!(res.status().as_u16(), 201);
    res.json::<Value>().await.unwrap()["item"].clone()
}

async fn get_json(base: &str, path: &str) -> Value {
    let res = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "GET {path}");
    res.json().await.unwrap()
}

/// `get_user_request` over the server's own `/mcp` (stateless, so one POST is a whole
/// MCP exchange); returns the structured result.
async fn mcp_get_user_request(base: &str, agent: &str) -> Value {
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":"get_user_request","arguments":{"agent_id":agent}}});
    let text = mcp_post(&reqwest::Client::new(), &format!("{base}/mcp"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    mcp_tool_result(&text)
}

/// Every message frame: a numeric id, `event` equal to the envelope's `type`,
/// an RFC 3339 UTC timestamp, and a `data` member.
fn check_envelope(frame: &SseFrame) -> Value {
    frame.id_number();
    let envelope = frame.json();
    assert_eq!(envelope["type"], frame.kind(), "{frame:?}");
    let at = envelope["timestamp"].as_str().unwrap_or("");
    assert!(at.ends_with('Z') && at.contains('T'), "timestamp {at:?}");
    assert!(envelope.get("data").is_some(), "{frame:?}");
    envelope
}

/// Ids go up by one per message (docs/api.md), so a client that saw every
/// message since it connected has no gaps.
fn consecutive(frames: &[SseFrame]) {
    let ids: Vec<u64> = frames.iter().map(SseFrame::id_number).collect();
    assert!(
        ids.windows(2).all(|w| w[0] + 1 == w[1]),
        "ids must go up by one: {ids:?}"
    );
}

/// Messages until each of `checks` has accepted at least one, in any order: the
/// hub derives `status.changed` from the database, so it may overtake the event
/// that caused it.
async fn until_all(sse: &mut SseClient, checks: &[&dyn Fn(&SseFrame) -> bool]) -> Vec<SseFrame> {
    let mut met = vec![false; checks.len()];
    sse.until(SOON, |f| {
        for (check, met) in checks.iter().zip(&mut met) {
            *met |= check(f);
        }
        met.iter().all(|m| *m)
    })
    .await
}

fn is_created(frame: &SseFrame, id: &Value) -> bool {
    frame.kind() == "instruction.created" && frame.json()["data"]["id"] == *id
}

/// The stream opens with a retry hint and a `: connected` comment, so a client
/// knows it is subscribed before anything happens.
async fn preamble(sse: &mut SseClient) {
    let first = sse.next_frame(SOON).await;
    assert!(!first.is_message(), "{first:?}");
    assert_eq!(first.comments, ["connected"], "{first:?}");
    assert!(first.retry.is_some(), "{first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_and_an_mcp_consumption_produce_their_events() {
    let server = TestServer::start().await;
    let base = server.url();
    let mut sse = SseClient::connect(&base, None).await;
    let cache = sse
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok());
    assert_eq!(cache, Some("no-cache"));
    preamble(&mut sse).await;

    let item = post_instruction(&base, "  ship it  ").await;
    assert_eq!(item["content"], "ship it");
    let created = sse.next_message(SOON).await;
    assert_eq!(created.kind(), "instruction.created");
    let envelope = check_envelope(&created);
    assert_eq!(
        envelope["data"], item,
        "the full item, as the POST answered"
    );

    // The pending count reaches the status within the coalescing window.
    let mut frames = vec![created];
    frames.extend(
        sse.until(SOON, |f| {
            f.kind() == "status.changed" && f.json()["data"]["queue"]["pending_count"] == 1
        })
        .await,
    );

    let result = mcp_get_user_request(&base, "sse-agent").await;
    assert_eq!(result["instruction"]["id"], item["id"]);
    let mut consumed = None;
    let mut agent_updates = Vec::new();
    let after = until_all(
        &mut sse,
        &[
            &|f| f.kind() == "instruction.consumed",
            &|f| {
                f.kind() == "agent.updated" && f.json()["data"]["last_result_type"] == "instruction"
            },
            &|f| {
                let data = &f.json()["data"];
                f.kind() == "status.changed"
                    && data["queue"]["consumed_count"] == 1
                    && data["agent"]["agent_id"] == "sse-agent"
                    && data["agent"]["waiting"] == false
            },
        ],
    )
    .await;
    for frame in &after {
        let envelope = check_envelope(frame);
        match frame.kind() {
            "instruction.consumed" => consumed = Some(envelope["data"].clone()),
            "agent.updated" => agent_updates.push(envelope["data"].clone()),
            _ => {}
        }
    }
    frames.extend(after);
    consecutive(&frames);

    let consumed = consumed.expect("an instruction.consumed frame");
    assert_eq!(consumed["id"], item["id"]);
    assert_eq!(consumed["content"], "ship it");
    assert_eq!(consumed["status"], "consumed");
    assert_eq!(consumed["consumed_by_agent_id"], "sse-agent");
    assert!(consumed["consumed_at"].is_string(), "{consumed}");
    assert!(
        agent_updates.iter().all(|a| a["agent_id"] == "sse-agent"),
        "{agent_updates:?}"
    );
    let returned = agent_updates
        .iter()
        .find(|a| a["last_result_type"] == "instruction")
        .expect("agent.updated for the call's return");
    assert_eq!(returned["last_result_type"], "instruction", "{returned}");
    assert!(returned["last_fetch_at"].is_string(), "{returned}");
    assert_eq!(returned["connected"], true, "{returned}");
}

/// A client that drops and reconnects with `Last-Event-ID` gets exactly what a
/// client that stayed connected saw after that id, then live events again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_replays_exactly_the_missed_frames() {
    let server = TestServer::start().await;
    let base = server.url();
    let http = reqwest::Client::new();
    let mut witness = SseClient::connect(&base, None).await;
    preamble(&mut witness).await;
    let mut dropper = SseClient::connect(&base, None).await;
    preamble(&mut dropper).await;

    let first = post_instruction(&base, "first").await;
    let seen = dropper.until(SOON, |f| is_created(f, &first["id"])).await;
    let last_seen = seen.last().unwrap().clone();
    drop(dropper);

    // Changes while it is away, one of each kind the API makes.
    let second = post_instruction(&base, "second").await;
    let id2 = second["id"].as_str().unwrap();
    let patch = http
        .patch(format!("{base}/api/instructions/{id2}"))
        .json(&json!({"content": "second, reworded"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status().as_u16(), 200);
    let third = post_instruction(&base, "third").await;
    let id3 = third["id"].as_str().unwrap();
    let delete = http
        .delete(format!("{base}/api/instructions/{id3}"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status().as_u16(), 204);
    let reorder = http
        .post(format!("{base}/api/instructions/reorder"))
        .json(&json!({"ids": [id2, first["id"]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(reorder.status().as_u16(), 200);
    let config = http
        .patch(format!("{base}/api/config"))
        .json(&json!({"default_wait_seconds": 7}))
        .send()
        .await
        .unwrap();
    assert_eq!(config.status().as_u16(), 200);

    // The witness has everything once the status shows the last change.
    let witnessed = until_all(
        &mut witness,
        &[&|f| f.kind() == "config.updated", &|f| {
            let data = &f.json()["data"];
            f.kind() == "status.changed"
                && data["settings"]["default_wait_seconds"] == 7
                && data["queue"]["pending_count"] == 2
        }],
    )
    .await;
    let at = witnessed
        .iter()
        .position(|f| f.id == last_seen.id)
        .expect("the witness saw the frame the dropper saw last");
    let missed = &witnessed[at + 1..];
    let kinds: Vec<&str> = missed
        .iter()
        .map(SseFrame::kind)
        .filter(|k| *k != "status.changed")
        .collect();
    assert_eq!(
        kinds,
        [
            "instruction.created",
            "instruction.updated",
            "instruction.created",
            "instruction.deleted",
            "instruction.reordered",
            "config.updated",
        ]
    );
    consecutive(missed);
    let newest = missed.last().unwrap().id.clone().unwrap();

    let mut back = SseClient::connect(&base, last_seen.id.as_deref()).await;
    let replayed = back.until(SOON, |f| f.id.as_ref() == Some(&newest)).await;
    assert_eq!(replayed, missed, "exactly the frames missed, in order");

    // Resuming from the newest id replays nothing; all three then see the same
    // live frame with the same id.
    let mut current = SseClient::connect(&base, Some(&newest)).await;
    let fourth = post_instruction(&base, "fourth").await;
    let live = [
        back.next_message(SOON).await,
        witness.next_message(SOON).await,
        current.next_message(SOON).await,
    ];
    for frame in &live {
        assert!(is_created(frame, &fourth["id"]), "{frame:?}");
    }
    assert!(live.iter().all(|f| f == &live[0]), "{live:?}");
    assert!(live[0].id_number() > newest.parse::<u64>().unwrap());
}

/// An id the server never gave out (from an earlier run, malformed, or ahead of
/// it) cannot be replayed: the client is told to refetch, with the current status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_last_event_id_gets_a_refetch() {
    let server = TestServer::start().await;
    let base = server.url();
    post_instruction(&base, "already queued").await;
    let mut witness = SseClient::connect(&base, None).await;
    let mut pending = 1;
    // The refetch message carries the status the server last announced, so each
    // round first waits until the witness has seen it catch up with the queue.
    let settled = async |witness: &mut SseClient, pending: u64| {
        witness
            .until(SOON, |f| {
                f.kind() == "status.changed"
                    && f.json()["data"]["queue"]["pending_count"] == pending
            })
            .await
    };
    // A change seen live gives the newest id, to ask for one beyond it.
    let item = post_instruction(&base, "seen live").await;
    pending += 1;
    let frames = settled(&mut witness, pending).await;
    assert!(
        frames.iter().any(|f| is_created(f, &item["id"])),
        "{frames:?}"
    );
    let newest = frames.last().unwrap().id_number();

    for id in ["1", "not-a-number", &(newest + 1_000).to_string()] {
        let status = get_json(&base, "/api/status").await;
        let mut sse = SseClient::connect(&base, Some(id)).await;
        let frame = sse.next_message(SOON).await;
        assert_eq!(
            frame.kind(),
            "status.changed",
            "Last-Event-ID {id}: {frame:?}"
        );
        let envelope = check_envelope(&frame);
        assert_eq!(envelope["refetch"], true, "Last-Event-ID {id}: {envelope}");
        let data = &envelope["data"];
        assert_eq!(data["queue"], status["queue"], "{data}");
        assert_eq!(data["settings"], status["settings"], "{data}");
        assert_eq!(data["server"], status["server"], "{data}");

        // And the stream then goes on live.
        let item = post_instruction(&base, &format!("after {id}")).await;
        pending += 1;
        sse.until(SOON, |f| is_created(f, &item["id"])).await;
        settled(&mut witness, pending).await;
    }
}

/// A `local-mcp add` process and a `local-mcp stdio` process on the same file:
/// their changes appear live on the stream of the server in this process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_processes_changes_appear_live() {
    let db = TempDb::new();
    let server = TestServer::start_on(db.path(), |c| {
        c.defaults.default_wait_seconds = 30;
    })
    .await;
    let base = server.url();
    let mut sse = SseClient::connect(&base, None).await;
    preamble(&mut sse).await;

    let add = async |text: &str| {
        let mut cmd = local_mcp(db.path());
        cmd.args(["add", text]);
        let out = tokio::time::timeout(SOON, tokio::process::Command::from(cmd).output())
            .await
            .expect("local-mcp add finishes")
            .expect("run local-mcp add");
        assert!(
            out.status.success(),
            "local-mcp add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    add("from the terminal").await;
    let created = sse
        .until(SOON, |f| f.kind() == "instruction.created")
        .await
        .pop()
        .unwrap();
    let item = check_envelope(&created)["data"].clone();
    assert_eq!(item["content"], "from the terminal");
    assert_eq!(item["status"], "pending");

    let mut cmd = local_mcp(db.path());
    cmd.env("DEFAULT_WAIT_SECONDS", "30").arg("stdio");
    let mut agent = Proc::spawn(cmd);
    agent.initialize("cross-process").await;
    let call = agent.start_get_user_request("stdio-agent").await;
    let result = agent.tool_result(call, SOON).await;
    assert_eq!(result["instruction"]["id"], item["id"]);

    let frames = until_all(
        &mut sse,
        &[
            &|f| f.kind() == "instruction.consumed",
            &|f| {
                let data = &f.json()["data"];
                f.kind() == "agent.updated"
                    && data["agent_id"] == "stdio-agent"
                    && data["last_result_type"] == "instruction"
            },
            &|f| {
                let data = &f.json()["data"];
                f.kind() == "status.changed"
                    && data["queue"]["consumed_count"] == 1
                    && data["agent"]["agent_id"] == "stdio-agent"
            },
        ],
    )
    .await;
    let consumed = frames
        .iter()
        .find(|f| f.kind() == "instruction.consumed")
        .map(|f| f.json()["data"].clone())
        .expect("instruction.consumed from the stdio process");
    assert_eq!(consumed["id"], item["id"]);
    assert_eq!(consumed["consumed_by_agent_id"], "stdio-agent");

    // Now the agent waits on an empty queue: the server shows it waiting, and a
    // terminal add wakes it, all three processes apart.
    let call = agent.start_get_user_request("stdio-agent").await;
    sse.until(SOON, |f| {
        let data = &f.json()["data"];
        f.kind() == "agent.updated" && data["agent_id"] == "stdio-agent" && data["waiting"] == true
    })
    .await;
    add("wake up").await;
    let result = agent.tool_result(call, SOON).await;
    assert_eq!(result["instruction"]["content"], "wake up");
    let frames = sse
        .until(SOON, |f| {
            f.kind() == "instruction.consumed" && f.json()["data"]["content"] == "wake up"
        })
        .await;
    assert!(
        frames
            .iter()
            .any(|f| f.kind() == "instruction.created" && f.json()["data"]["content"] == "wake up"),
        "{frames:?}"
    );
    sse.until(SOON, |f| {
        let data = &f.json()["data"];
        f.kind() == "agent.updated" && data["agent_id"] == "stdio-agent" && data["waiting"] == false
    })
    .await;

    agent.close_stdin();
    assert!(agent.wait_exit(SOON).await.success());
}

/// A thousand subscribers on one server each get the event of one add, within a
/// bounded time, and the server is fine once they all hang up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_each_receive_the_event() {
    const CLIENTS: usize = 1_000;
    let db = TempDb::new();
    let server = Serve::start(local_mcp(db.path()));
    let base = server.url();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], server.port()).into();

    let started = Instant::now();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<Result<(), String>>(CLIENTS);
    let (go_tx, _) = tokio::sync::broadcast::channel::<Value>(1);
    // The server's listen backlog is 128 (std's default): a burst of a thousand
    // SYNs overflows it and the dropped ones retry after a second. Keeping at most
    // 64 handshakes in flight measures the server, not the kernel's retry timer.
    let handshakes = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let ready = ready_tx.clone();
            let mut go = go_tx.subscribe();
            let handshakes = std::sync::Arc::clone(&handshakes);
            tokio::spawn(async move {
                let permit = handshakes.acquire_owned().await.expect("never closed");
                let subscribed = async {
                    let mut sse = RawSse::connect(addr, None).await?;
                    loop {
                        let frame = sse.next_frame().await?.ok_or_else(|| {
                            std::io::Error::other("the stream ended before `: connected`")
                        })?;
                        if frame.comments.iter().any(|c| c == "connected") {
                            return std::io::Result::Ok(sse);
                        }
                    }
                };
                let subscribed = subscribed.await;
                drop(permit);
                let mut sse = match subscribed {
                    Ok(sse) => {
                        let _ = ready.send(Ok(())).await;
                        sse
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string())).await;
                        return Err(e);
                    }
                };
                let id = go.recv().await.expect("the test posts");
                loop {
                    let frame = sse.next_frame().await?.expect("the stream stays open");
                    if frame.kind() == "instruction.created" && frame.json()["data"]["id"] == id {
                        return std::io::Result::Ok(Instant::now());
                    }
                }
            })
        })
        .collect();
    drop(ready_tx);
    let mut ready = 0;
    let mut failures = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while ready + failures.len() < CLIENTS
            && let Some(outcome) = ready_rx.recv().await
        {
            match outcome {
                Ok(()) => ready += 1,
                Err(e) => failures.push(e),
            }
        }
    })
    .await;
    assert!(
        failures.is_empty(),
        "clients failed to subscribe: {failures:?}"
    );
    assert_eq!(
        ready, CLIENTS,
        "every client got its `: connected` preamble within 10 s"
    );
    let connected = started.elapsed();

    // The POST's answer and the event race; the id is handed out as soon as the
    // answer is read, and each client looks for it in what it has read since.
    let posted = Instant::now();
    let item = post_instruction(&base, "to everyone").await;
    go_tx.send(item["id"].clone()).unwrap();
    let mut latest = posted;
    for client in clients {
        let arrived = tokio::time::timeout_at((posted + Duration::from_secs(5)).into(), client)
            .await
            .expect("every client receives the event within 5 s")
            .unwrap()
            .expect("the stream stays healthy");
        latest = latest.max(arrived);
    }
    let fan_out = latest - posted;
    eprintln!(
        "{CLIENTS} SSE clients: connected in {connected:?}, all received one event {fan_out:?} after the POST was sent"
    );

    // Every client task has ended and dropped its socket.
    let health = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .timeout(SOON)
        .send()
        .await
        .expect("the server still answers");
    assert_eq!(health.status().as_u16(), 200);
    let mut sse = SseClient::connect(&base, None).await;
    preamble(&mut sse).await;
    let item = post_instruction(&base, "after the crowd").await;
    sse.until(SOON, |f| is_created(f, &item["id"])).await;
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
