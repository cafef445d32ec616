//! Hostile input at scale against the MCP side (issue 6): proptest sends raw
//! JSON-RPC lines to the real handler behind the transport the binary uses for
//! stdio (`TrackedTransport` over rmcp's newline-delimited framing), over an
//! in-process pipe: `get_user_request` arguments of every shape, client names of
//! every kind, and arbitrary messages (bytes, JSON values, valid messages with
//! wrong ids, versions, methods and params).
//!
//! The properties, from SPEC §3: nothing panics and the session keeps serving;
//! every line the server writes is a JSON-RPC 2.0 message, errors with an integer
//! code and a message; valid arguments deliver the queued instruction to the
//! agent they name, and anything else is a tool error that consumes nothing and
//! records no agent; the agent id taken from a client's name is always a valid
//! one; and whatever arrives, an instruction that leaves the queue reaches
//! exactly one answer.
//!
//! Quick by default (CI); `LOCAL_MCP_LONG_TESTS=1` runs 20 times the cases. The
//! quick run uses a fixed seed so that CI is repeatable; the long run draws a new
//! seed each time. A failure names its seed; `LOCAL_MCP_FUZZ_SEED=N` replays it.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mcp_adapter::tool::TOOL_NAME;
use mcp_adapter::{Deliveries, QueueServer, TrackedTransport};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use queue_core::{
    AgentId, MemoryStore, Page, QueueName, Service, SettingsPatch, Status, StatusFilter,
};
use rmcp::ServiceExt;
use rmcp::transport::async_rw::AsyncRwTransport;
use serde_json::{Value, json};
use test_support::{Fuzz, json_tree};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};
use tokio::runtime::Runtime;

// ---------------------------------------------------------------------------
// Running a property: bounded cases, a seed that a failure names.
// ---------------------------------------------------------------------------

/// The names of the threads that panicked, kept by the panic hook: a panic in
/// any task (rmcp runs each request in its own) fails the case even when
/// nothing waits on that task. Each test names its runtime's threads after
/// itself, so tests running side by side in one process (`cargo test`) only
/// see their own.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn watch_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().unwrap_or("").to_owned();
            PANICS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(name);
            previous(info);
        }));
    });
}

/// How many panics threads named after `test` have had.
fn panics(test: &str) -> usize {
    PANICS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|name| name.starts_with(test))
        .count()
}

/// Checks `test` on `cases` values of `strategy` (20 times as many on a long run)
/// and fails with the minimal failing value and the seed to replay it.
fn fuzz<S>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    watch_panics();
    Fuzz::new(cases, 256).run("mcp-adapter", name, strategy, |value| {
        let before = panics(name);
        test(value)?;
        prop_assert_eq!(
            panics(name),
            before,
            "something panicked (see the output above)"
        );
        Ok(())
    });
}

/// A runtime whose threads are named after `test`.
fn runtime(test: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("{test}-worker"))
        .enable_all()
        .build()
        .expect("a runtime")
}

// ---------------------------------------------------------------------------
// One session over a pipe, read and written as raw lines.
// ---------------------------------------------------------------------------

/// The one instruction every case starts with.
const JOB: &str = "the only queued job";
/// How long any answer may take: calls return at once (the wait is 0), so only
/// a hang or a lost answer gets near it.
const PATIENCE: Duration = Duration::from_secs(10);

struct Wire {
    service: Service,
    write: WriteHalf<DuplexStream>,
    read: tokio::io::Lines<BufReader<ReadHalf<DuplexStream>>>,
    /// Every message the server wrote, in order.
    seen: Vec<Value>,
    server: tokio::task::JoinHandle<()>,
}

impl Wire {
    /// A fresh queue holding [`JOB`], with no wait on an empty queue, served as
    /// the binary serves stdio.
    async fn open() -> Wire {
        Wire::open_with(0, true).await
    }

    /// A fresh queue with `wait` seconds of waiting, holding [`JOB`] or nothing.
    async fn open_with(wait: i64, job: bool) -> Wire {
        let service = Service::builder(Arc::new(MemoryStore::new()))
            .build()
            .expect("a service");
        service
            .update_settings(SettingsPatch::new(Some(wait), None, None).expect("valid"))
            .await
            .expect("settings");
        if job {
            service.add(JOB).await.expect("add");
        }
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let deliveries = Deliveries::new(service.clone());
        let handler = QueueServer::new(service.clone()).with_deliveries(deliveries.clone());
        let (r, w) = tokio::io::split(server_io);
        let transport = TrackedTransport::new(AsyncRwTransport::new_server(r, w), deliveries);
        let server = tokio::spawn(async move {
            if let Ok(running) = handler.serve(transport).await {
                let _ = running.waiting().await;
            }
        });
        let (r, write) = tokio::io::split(client_io);
        Wire {
            service,
            write,
            read: BufReader::new(r).lines(),
            seen: Vec::new(),
            server,
        }
    }

    async fn send_line(&mut self, bytes: &[u8]) -> bool {
        let mut line = bytes.to_vec();
        line.push(b'\n');
        self.write.write_all(&line).await.is_ok() && self.write.flush().await.is_ok()
    }

    async fn send(&mut self, message: &Value) -> bool {
        self.send_line(message.to_string().as_bytes()).await
    }

    /// The next message within `within`; `None` when nothing came or the server
    /// closed the pipe. Every message is checked on arrival.
    async fn next(&mut self, within: Duration) -> Result<Option<Value>, TestCaseError> {
        let line = match tokio::time::timeout(within, self.read.next_line()).await {
            Ok(Ok(Some(line))) => line,
            _ => return Ok(None),
        };
        let message: Value = serde_json::from_str(&line)
            .map_err(|e| TestCaseError::fail(format!("the server wrote non-JSON ({e}): {line}")))?;
        check_message(&message)?;
        self.seen.push(message.clone());
        Ok(Some(message))
    }

    /// Reads until the answer to `id` (or, with `or_null`, an error with a null
    /// id, rmcp's answer to a request it could not read); fails after
    /// [`PATIENCE`].
    async fn answer(&mut self, id: &Value, or_null: bool) -> Result<Value, TestCaseError> {
        if let Some(found) = self.seen.iter().find(|m| answers(m, id, or_null)) {
            return Ok(found.clone());
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await? {
                Some(m) if answers(&m, id, or_null) => return Ok(m),
                Some(_) => {}
                None => {
                    return Err(TestCaseError::fail(format!(
                        "no answer to {id} within {PATIENCE:?}; seen {:?}",
                        self.seen
                    )));
                }
            }
        }
    }

    /// `initialize` with `client_info` as sent, then `notifications/initialized`.
    /// Returns the answer to `initialize`.
    async fn handshake(&mut self, client_info: Option<Value>) -> Result<Value, TestCaseError> {
        let mut params = json!({"protocolVersion": "2025-11-25", "capabilities": {}});
        if let Some(info) = client_info {
            params["clientInfo"] = info;
        }
        self.send(
            &json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": params}),
        )
        .await;
        let answer = self.answer(&json!("init"), true).await?;
        if answer.get("result").is_some() {
            self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .await;
        }
        Ok(answer)
    }

    async fn job(&self) -> (Status, Option<String>) {
        let listing = self
            .service
            .list(
                &QueueName::default_queue(),
                StatusFilter::All,
                Page {
                    offset: 0,
                    limit: None,
                },
            )
            .await
            .expect("list");
        let job = listing
            .items
            .iter()
            .find(|i| i.content.as_str() == JOB)
            .expect("the job is never deleted");
        (
            job.status,
            job.consumed_by.as_ref().map(|a| a.as_str().to_owned()),
        )
    }

    async fn agents(&self) -> Vec<String> {
        self.service
            .agents()
            .await
            .expect("agents")
            .into_iter()
            .map(|a| a.id.as_str().to_owned())
            .collect()
    }

    /// Closes the pipe and checks the server ends by itself, without a panic.
    async fn close(self) -> Result<(), TestCaseError> {
        let Wire {
            service,
            write,
            read,
            server,
            ..
        } = self;
        drop(write);
        drop(read);
        let ended = tokio::time::timeout(PATIENCE, server).await;
        service.shutdown();
        match ended {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(TestCaseError::fail(format!("the server task failed: {e}"))),
            Err(_) => Err(TestCaseError::fail("the server did not end after EOF")),
        }
    }
}

fn answers(message: &Value, id: &Value, or_null: bool) -> bool {
    let null_id = message.get("id").is_none_or(Value::is_null);
    message.get("method").is_none()
        && (message.get("id") == Some(id) || (or_null && null_id && message.get("error").is_some()))
}

/// What every message from the server must be (JSON-RPC 2.0).
fn check_message(m: &Value) -> Result<(), TestCaseError> {
    prop_assert_eq!(m.get("jsonrpc"), Some(&json!("2.0")), "{}", m);
    if m.get("method").is_some() {
        prop_assert!(m["method"].is_string(), "{}", m);
        return Ok(());
    }
    // rmcp answers a line that is JSON but no message (a batch, a wrong shape)
    // with Invalid Request and leaves the id out, where JSON-RPC 2.0 wants
    // `"id": null`; no client can match it to a request either way.
    let rmcp_invalid_request = m["error"]["code"] == json!(-32600);
    prop_assert!(
        m.get("id").is_some() || rmcp_invalid_request,
        "an answer without an id: {}",
        m
    );
    let id = &m["id"];
    prop_assert!(
        id.is_string() || id.is_i64() || id.is_u64() || id.is_null(),
        "{}",
        m
    );
    match (m.get("result"), m.get("error")) {
        (Some(result), None) => prop_assert!(result.is_object(), "{}", m),
        (None, Some(error)) => {
            prop_assert!(error["code"].is_i64(), "{}", m);
            prop_assert!(error["message"].is_string(), "{}", m);
        }
        _ => prop_assert!(
            false,
            "an answer needs exactly one of result and error: {}",
            m
        ),
    }
    Ok(())
}

/// What a `tools/call` result must be: a tool error with a message, or the
/// documented structured result mirrored in one text block.
fn check_tool_result(result: &Value) -> Result<(), TestCaseError> {
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    prop_assert_eq!(&result["content"][0]["type"], &json!("text"), "{}", result);
    if result["isError"] == json!(true) {
        prop_assert!(
            !text.trim().is_empty(),
            "a tool error without a message: {}",
            result
        );
        return Ok(());
    }
    let structured = &result["structuredContent"];
    let mirrored: Value = serde_json::from_str(text)
        .map_err(|e| TestCaseError::fail(format!("the text is not the JSON ({e}): {result}")))?;
    prop_assert_eq!(&mirrored, structured);
    prop_assert_eq!(&structured["status"], &json!("ok"));
    let kind = structured["result_type"].as_str().unwrap_or_default();
    prop_assert!(
        ["instruction", "empty", "default_response"].contains(&kind),
        "{}",
        result
    );
    prop_assert!(structured["remaining_pending"].is_u64(), "{}", result);
    prop_assert!(
        structured["waited_seconds"]
            .as_f64()
            .is_some_and(|w| w >= 0.0),
        "{}",
        result
    );
    if kind == "instruction" {
        prop_assert!(structured["instruction"]["id"].is_string(), "{}", result);
        prop_assert!(
            structured["instruction"]["consumed_at"].is_string(),
            "{}",
            result
        );
    } else {
        prop_assert!(structured["instruction"].is_null(), "{}", result);
        prop_assert!(structured["response"].is_string(), "{}", result);
    }
    Ok(())
}

/// Whether `message` carries the job to the agent.
fn carries_job(message: &Value) -> bool {
    let result = &message["result"];
    result["structuredContent"]["instruction"]["content"] == json!(JOB)
        || result["content"].as_array().is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b["text"].as_str().is_some_and(|t| t.contains(JOB)))
        })
}

// ---------------------------------------------------------------------------
// Values that break things.
// ---------------------------------------------------------------------------

fn nasty_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => ".{0,24}",
        2 => proptest::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter),
        2 => "[\\x00-\\x1f\"\\\\/ \t\r\n]{0,8}",
        1 => "[a-z\u{301}\u{202e}\u{1f600}\u{ff41}]{1,12}",
        1 => Just(String::new()),
        1 => (100usize..5_000).prop_map(|n| "a".repeat(n)),
    ]
    .boxed()
}

fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        nasty_string().prop_map(Value::String),
    ];
    json_tree(leaf.boxed(), nasty_string(), 3, 24, 5)
}

/// Agent ids: valid ones of every length, and near misses.
fn agent_id_value() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => "[A-Za-z0-9._:@-]{1,128}".prop_map(Value::String),
        1 => "[A-Za-z0-9._:@-]{129,200}".prop_map(Value::String),
        2 => nasty_string().prop_map(Value::String),
        1 => prop::sample::select(vec![
            "", " ", "a b", "a\nb", "é", "ａ", "a/b", "a\u{0}b", "-", ".", "@", "default",
            "\u{1f600}", "a,b", "<script>",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        2 => any_json(),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// (a) The tool's arguments.
// ---------------------------------------------------------------------------

/// Queue names: mostly the job's own queue, else another valid one or a near miss.
fn queue_value() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => Just(json!("default")),
        1 => "[A-Za-z0-9._:@-]{1,20}".prop_map(Value::String),
        2 => agent_id_value(),
    ]
    .boxed()
}

/// `arguments` of a `get_user_request` call; `None` leaves the key out.
fn arguments() -> BoxedStrategy<Option<Value>> {
    let object = (
        proptest::option::of(agent_id_value()),
        proptest::option::of(queue_value()),
        proptest::collection::vec(
            (
                prop_oneof![
                    2 => nasty_string(),
                    1 => prop::sample::select(vec!["agentId", "Agent_id", "agent_id ", "_meta", "wait", "default_wait_seconds"])
                        .prop_map(str::to_owned),
                ],
                any_json(),
            ),
            0..3,
        ),
    )
        .prop_map(|(agent, queue, extra)| {
            let mut object = serde_json::Map::new();
            for (k, v) in extra {
                object.insert(k, v);
            }
            if let Some(agent) = agent {
                object.insert(String::from("agent_id"), agent);
            }
            if let Some(queue) = queue {
                object.insert(String::from("queue"), queue);
            }
            Value::Object(object)
        });
    prop_oneof![
        1 => Just(None),
        8 => object.prop_map(Some),
        2 => any_json().prop_map(Some),
    ]
    .boxed()
}

/// What a call with `arguments` must do: `Ok((agent, queue))` is a call by
/// `agent` on `queue` (the job is on `default`, so only a call there takes it),
/// `Err(true)` is a tool error, `Err(false)` a protocol error (the arguments are
/// not an object, so the request itself is malformed).
fn expected_call(arguments: Option<&Value>, client: &str) -> Result<(String, String), bool> {
    let fallback = || Ok((client.to_owned(), "default".to_owned()));
    let Some(arguments) = arguments else {
        return fallback();
    };
    if arguments.is_null() {
        return fallback();
    }
    let Some(object) = arguments.as_object() else {
        return Err(false);
    };
    if object.keys().any(|k| k != "agent_id" && k != "queue") {
        return Err(true);
    }
    let name = |key: &str, otherwise: &str| match object.get(key) {
        None | Some(Value::Null) => Ok(otherwise.to_owned()),
        Some(Value::String(s))
            if (1..=128).contains(&s.len())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._:@-".contains(c)) =>
        {
            Ok(s.clone())
        }
        Some(_) => Err(true),
    };
    Ok((name("agent_id", client)?, name("queue", "default")?))
}

#[test]
fn fuzz_tool_arguments() {
    let rt = runtime("fuzz_tool_arguments");
    fuzz("fuzz_tool_arguments", 3000, arguments(), |arguments| {
        rt.block_on(async {
            let mut wire = Wire::open().await;
            let init = wire
                .handshake(Some(json!({"name": "fuzz-client", "version": "1"})))
                .await?;
            prop_assert!(init.get("result").is_some(), "{}", init);
            let mut params = json!({"name": TOOL_NAME});
            if let Some(arguments) = &arguments {
                params["arguments"] = arguments.clone();
            }
            wire.send(
                &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}),
            )
            .await;
            let expected = expected_call(arguments.as_ref(), "fuzz-client");
            let answer = wire.answer(&json!(7), expected == Err(false)).await?;
            let (status, by) = wire.job().await;
            let agents = wire.agents().await;
            match expected {
                Ok((agent, queue)) if queue != "default" => {
                    // Another queue: the call waits there (0 s) and leaves the job.
                    let result = &answer["result"];
                    check_tool_result(result)?;
                    prop_assert_eq!(&result["structuredContent"]["queue"], &json!(queue));
                    prop_assert!(!carries_job(&answer), "{}", answer);
                    prop_assert_ne!(
                        &result["structuredContent"]["result_type"],
                        &json!("instruction")
                    );
                    prop_assert_eq!(status, Status::Pending);
                    prop_assert_eq!(agents, vec![agent]);
                }
                Ok((agent, _)) => {
                    let result = &answer["result"];
                    check_tool_result(result)?;
                    prop_assert_eq!(&result["structuredContent"]["queue"], &json!("default"));
                    prop_assert_eq!(
                        &result["structuredContent"]["result_type"],
                        &json!("instruction"),
                        "{}",
                        answer
                    );
                    prop_assert!(carries_job(&answer), "{}", answer);
                    prop_assert_eq!(status, Status::Consumed);
                    prop_assert_eq!(by.as_deref(), Some(agent.as_str()));
                    prop_assert_eq!(agents, vec![agent]);
                }
                Err(tool_error) => {
                    if tool_error {
                        prop_assert_eq!(&answer["result"]["isError"], &json!(true), "{}", answer);
                        check_tool_result(&answer["result"])?;
                    } else {
                        prop_assert!(
                            answer.get("error").is_some()
                                || answer["result"]["isError"] == json!(true),
                            "{}",
                            answer
                        );
                    }
                    prop_assert_eq!(status, Status::Pending, "a refused call consumed the job");
                    prop_assert!(agents.is_empty(), "a refused call recorded {:?}", agents);
                }
            }
            wire.close().await
        })
    });
}

// ---------------------------------------------------------------------------
// (b) Client names.
// ---------------------------------------------------------------------------

/// `clientInfo` as a client might send it, or `None` for none at all.
fn client_info() -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        6 => (nasty_string(), proptest::option::of(nasty_string())).prop_map(|(name, version)| {
            let mut info = json!({"name": name});
            if let Some(v) = version {
                info["version"] = json!(v);
            }
            Some(info)
        }),
        2 => "[A-Za-z0-9 ._:@/-]{0,150}".prop_map(|name| Some(json!({"name": name, "version": "1"}))),
        1 => any_json().prop_map(Some),
        1 => Just(None),
    ]
    .boxed()
}

#[test]
fn fuzz_client_names() {
    let rt = runtime("fuzz_client_names");
    fuzz("fuzz_client_names", 2000, client_info(), |info| {
        rt.block_on(async {
            let mut wire = Wire::open().await;
            let name = info
                .as_ref()
                .and_then(|i| i.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let init = wire.handshake(info.clone()).await?;
            if init.get("result").is_none() {
                // A handshake rmcp refused: the session serves nothing, and the
                // queue is as it was.
                let (status, _) = wire.job().await;
                prop_assert_eq!(status, Status::Pending);
                return wire.close().await;
            }
            wire.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": TOOL_NAME}}))
                .await;
            let answer = wire.answer(&json!(1), false).await?;
            check_tool_result(&answer["result"])?;
            prop_assert!(carries_job(&answer), "{}", answer);
            let agents = wire.agents().await;
            prop_assert_eq!(agents.len(), 1);
            let agent = &agents[0];
            prop_assert!(AgentId::parse(agent).is_ok(), "an invalid agent id {:?}", agent);
            let expected = name
                .as_deref()
                .and_then(AgentId::sanitize)
                .map_or_else(|| String::from("default"), |a| a.as_str().to_owned());
            prop_assert_eq!(agent, &expected, "client name {:?}", name);
            wire.close().await
        })
    });
}

// ---------------------------------------------------------------------------
// (c) Arbitrary messages.
// ---------------------------------------------------------------------------

/// A JSON-RPC id: what the spec allows and what it does not. Never `"probe"`,
/// the id of the call that checks the session still serves.
fn request_id() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (0i64..5).prop_map(Value::from),
        1 => prop::sample::select(vec![
            json!(-1),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(1.5),
            json!(""),
            json!("x"),
            json!(null),
            json!(true),
            json!([]),
            json!({}),
        ]),
        1 => "[a-z0-9]{1,8}".prop_filter("not the probe", |s| s != "probe").prop_map(Value::String),
    ]
    .boxed()
}

/// A message as a client would send it, before any damage.
fn valid_message() -> BoxedStrategy<Value> {
    let method = prop::sample::select(vec![
        "tools/call",
        "tools/call",
        "tools/call",
        "tools/list",
        "ping",
        "initialize",
        "resources/list",
        "prompts/list",
        "logging/setLevel",
        "completion/complete",
        "server/discover",
        "notifications/cancelled",
        "notifications/initialized",
        "notifications/progress",
        "no/such/method",
    ]);
    (method, request_id(), arguments(), any::<bool>()).prop_map(|(method, id, arguments, progress)| {
        let params = match method {
            "tools/call" => {
                let mut p = json!({"name": TOOL_NAME});
                if let Some(a) = arguments {
                    p["arguments"] = a;
                }
                if progress {
                    p["_meta"] = json!({"progressToken": "fuzz"});
                }
                p
            }
            "notifications/cancelled" => json!({"requestId": id, "reason": "fuzz"}),
            "notifications/progress" => json!({"progressToken": id, "progress": 1}),
            "logging/setLevel" => json!({"level": "debug"}),
            "initialize" => json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "again", "version": "1"}}),
            _ => json!({}),
        };
        if method.starts_with("notifications/") {
            json!({"jsonrpc": "2.0", "method": method, "params": params})
        } else {
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        }
    })
    .boxed()
}

/// One change a broken or hostile client makes to a message.
#[derive(Clone, Debug)]
enum Mutation {
    Set(String, Value),
    Remove(String),
    SetParam(String, Value),
    ToolName(String),
    Batch,
}

fn mutation() -> BoxedStrategy<Mutation> {
    let top = prop::sample::select(vec![
        "jsonrpc", "id", "method", "params", "result", "error", "extra",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        3 => (top.clone(), any_json()).prop_map(|(k, v)| Mutation::Set(k, v)),
        1 => (Just(String::from("jsonrpc")), prop::sample::select(vec![json!("1.0"), json!(2.0), json!("2.0 "), json!(null)]))
            .prop_map(|(k, v)| Mutation::Set(k, v)),
        2 => top.prop_map(Mutation::Remove),
        2 => (
            prop::sample::select(vec!["name", "arguments", "_meta", "task", "extra"]).prop_map(str::to_owned),
            any_json(),
        )
            .prop_map(|(k, v)| Mutation::SetParam(k, v)),
        1 => prop::sample::select(vec!["GET_USER_REQUEST", "get_user_request ", "", "other_tool", "get_user_request\u{0}"])
            .prop_map(|s| Mutation::ToolName(s.to_owned())),
        1 => Just(Mutation::Batch),
    ]
    .boxed()
}

fn mutate(mut message: Value, m: &Mutation) -> Value {
    match m {
        Mutation::Set(k, v) => {
            if let Some(o) = message.as_object_mut() {
                o.insert(k.clone(), v.clone());
            }
        }
        Mutation::Remove(k) => {
            if let Some(o) = message.as_object_mut() {
                o.remove(k);
            }
        }
        Mutation::SetParam(k, v) => {
            if let Some(p) = message.get_mut("params").and_then(Value::as_object_mut) {
                p.insert(k.clone(), v.clone());
            }
        }
        Mutation::ToolName(name) => {
            if let Some(p) = message.get_mut("params").and_then(Value::as_object_mut) {
                p.insert(String::from("name"), json!(name));
            }
        }
        Mutation::Batch => message = json!([message]),
    }
    message
}

/// One line: raw bytes (no newline), any JSON value, or a damaged message.
fn line() -> BoxedStrategy<Vec<u8>> {
    let to_bytes = |v: Value| v.to_string().into_bytes();
    prop_oneof![
        2 => proptest::collection::vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 0..200),
        2 => any_json().prop_map(to_bytes),
        4 => valid_message().prop_map(to_bytes),
        6 => (valid_message(), proptest::collection::vec(mutation(), 1..3))
            .prop_map(move |(m, ms)| to_bytes(ms.iter().fold(m, mutate))),
        1 => prop::sample::select(vec![
            b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}".to_vec(),
            b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}\r".to_vec(),
            b"{\"jsonrpc\":\"2.0\",\"id\":1e400,\"method\":\"ping\"}".to_vec(),
            b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\",\"method\":\"tools/list\"}".to_vec(),
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec(),
            b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"get_user_request\",\"arguments\":{\"agent_id\":\"\\ud800\"}}}".to_vec(),
            b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"get_user_request\",\"arguments\":{\"agent_id\":\"a\\u0000\"}}}".to_vec(),
            b"{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{}}".to_vec(),
            b"{\"jsonrpc\":\"2.0\",\"id\":0,\"error\":{\"code\":1,\"message\":\"x\"}}".to_vec(),
            Vec::new(),
        ]),
    ]
    .boxed()
}

#[derive(Clone)]
struct Session {
    /// Lines sent before the handshake: rmcp must refuse the session cleanly.
    early: Vec<Vec<u8>>,
    lines: Vec<Vec<u8>>,
}

/// The lines as text, so that a failure shows what was sent.
impl Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |lines: &[Vec<u8>]| -> Vec<String> {
            lines
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect()
        };
        f.debug_struct("Session")
            .field("early", &text(&self.early))
            .field("lines", &text(&self.lines))
            .finish()
    }
}

fn session() -> BoxedStrategy<Session> {
    (
        prop_oneof![
            6 => Just(Vec::new()),
            1 => proptest::collection::vec(line(), 1..3),
        ],
        proptest::collection::vec(line(), 1..6),
    )
        .prop_map(|(early, lines)| Session { early, lines })
        .boxed()
}

#[test]
fn fuzz_jsonrpc_messages() {
    let rt = runtime("fuzz_jsonrpc_messages");
    fuzz("fuzz_jsonrpc_messages", 3000, session(), |session| {
        rt.block_on(async {
            let mut wire = Wire::open().await;
            for line in &session.early {
                wire.send_line(line).await;
            }
            let init = wire
                .handshake(Some(json!({"name": "fuzz", "version": "1"})))
                .await;
            let handshake_ok = matches!(&init, Ok(answer) if answer.get("result").is_some());
            if !handshake_ok {
                // The session was refused (or never answered): nothing served,
                // nothing consumed, and the server still ends cleanly.
                prop_assert!(
                    !session.early.is_empty(),
                    "a clean handshake failed: {:?}",
                    init
                );
                let (status, _) = wire.job().await;
                prop_assert_eq!(status, Status::Pending);
                return wire.close().await;
            }
            for line in &session.lines {
                wire.send_line(line).await;
            }
            // The session still serves: a valid call answers.
            wire.send(&json!({
                "jsonrpc": "2.0", "id": "probe", "method": "tools/call",
                "params": {"name": TOOL_NAME, "arguments": {"agent_id": "probe"}},
            }))
            .await;
            let probe = wire.answer(&json!("probe"), false).await?;
            check_tool_result(&probe["result"])?;
            prop_assert_ne!(&probe["result"]["isError"], &json!(true), "{}", probe);
            // The job is pending again, or exactly one answer carried it.
            let deadline = tokio::time::Instant::now() + PATIENCE;
            loop {
                let (status, _) = wire.job().await;
                let carriers = wire.seen.iter().filter(|m| carries_job(m)).count();
                prop_assert!(
                    carriers <= 1,
                    "the job was delivered {} times: {:?}",
                    carriers,
                    wire.seen
                );
                if status == Status::Pending || carriers == 1 {
                    break;
                }
                prop_assert!(
                    tokio::time::Instant::now() < deadline,
                    "the job was consumed but no answer carried it: {:?}",
                    wire.seen
                );
                wire.next(Duration::from_millis(50)).await?;
            }
            for m in &wire.seen {
                if m["result"].get("content").is_some() {
                    check_tool_result(&m["result"])?;
                }
            }
            wire.close().await
        })
    });
}

/// Found by `fuzz_jsonrpc_messages`: a request that reuses the id of one still
/// in flight made rmcp drop one of the two answers, and when that answer
/// carried the instruction, the instruction was consumed and delivered to no
/// one. The reused id is now refused at once and the first call goes on.
#[test]
fn fuzz_found_a_reused_request_id_loses_no_instruction() {
    watch_panics();
    let rt = runtime("fuzz_found_a_reused_request_id_loses_no_instruction");
    rt.block_on(async {
        let mut wire = Wire::open_with(30, false).await;
        let init = wire
            .handshake(Some(json!({"name": "reuser", "version": "1"})))
            .await
            .expect("handshake");
        assert!(init.get("result").is_some(), "{init}");
        let call = |agent: &str| {
            json!({
                "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": TOOL_NAME, "arguments": {"agent_id": agent}},
            })
        };
        wire.send(&call("first")).await;
        // The first call is waiting once its agent shows up as waiting.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !wire
            .service
            .agents()
            .await
            .expect("agents")
            .iter()
            .any(|a| a.id.as_str() == "first")
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the first call never started"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        wire.send(&call("second")).await;
        let refusal = wire.answer(&json!(1), false).await.expect("an answer");
        assert_eq!(refusal["error"]["code"], json!(-32600), "{refusal}");
        wire.service.add(JOB).await.expect("add");
        let delivered = wire.answer(&json!(1), false).await;
        let delivered = match delivered {
            Ok(m) if m.get("error").is_some() => {
                // `answer` returns the first match; the refusal was seen already.
                let deadline = tokio::time::Instant::now() + PATIENCE;
                loop {
                    let next = wire
                        .next(deadline - tokio::time::Instant::now())
                        .await
                        .expect("a message");
                    match next {
                        Some(m) if m.get("result").is_some() => break m,
                        Some(_) => {}
                        None => panic!("no answer carried the job: {:?}", wire.seen),
                    }
                }
            }
            other => other.expect("an answer"),
        };
        assert!(carries_job(&delivered), "{delivered}");
        let (status, by) = wire.job().await;
        assert_eq!(status, Status::Consumed);
        assert_eq!(by.as_deref(), Some("first"));
        assert_eq!(wire.seen.iter().filter(|m| carries_job(m)).count(), 1);
        wire.close().await.expect("the server ends cleanly");
    });
    assert_eq!(
        panics("fuzz_found_a_reused_request_id_loses_no_instruction"),
        0,
        "something panicked"
    );
}
