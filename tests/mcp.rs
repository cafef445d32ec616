//! get_user_request with real MCP clients: rmcp's client in-process over a duplex
//! pipe, over stdio against the spawned binary, and over streamable HTTP against
//! the server, in both protocol eras (2025-11-25 with `initialize`, 2026-07-28
//! with `server/discover`) and both HTTP modes.
//! `local-mcp serve` is spawned where the process is the point: the abandoned-call
//! tests read its log, SIGTERM, and two processes on one database (stdio and
//! serve waking each other, two servers sharing SQLite or PostgreSQL); the other
//! HTTP tests serve in-process.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration::{
    Serve, TempDb, TestServer, as_store, local_mcp, local_mcp_bin, mcp_post, mcp_tool_result,
};
use mcp_adapter::{QueueServer, ServerOptions, tool::TOOL_NAME};
use queue_core::{MemoryStore, Page, Service, SettingsPatch, StatusFilter};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    JsonObject, ProgressNotificationParam, ProtocolVersion,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, NotificationContext, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

/// A client that records the progress notifications it receives.
#[derive(Clone)]
struct Probe {
    name: &'static str,
    progress: Arc<Mutex<Vec<f64>>>,
}

impl Probe {
    fn new(name: &'static str) -> Self {
        Probe {
            name,
            progress: Arc::default(),
        }
    }
}

impl ClientHandler for Probe {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new(self.name, "1.0"),
        )
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params.progress);
    }
}

type Client = RunningService<RoleClient, Probe>;

#[derive(Clone, Copy, Debug)]
enum Era {
    /// 2025-11-25: `initialize`, sessions when the server keeps them.
    Legacy,
    /// 2026-07-28: `server/discover`, every request stands alone.
    Modern,
}

fn lifecycle(era: Era) -> ClientLifecycleMode {
    match era {
        Era::Legacy => ClientLifecycleMode::Initialize,
        Era::Modern => ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    }
}

async fn http_client(url: &str, era: Era) -> Client {
    let transport = StreamableHttpClientTransport::from_uri(format!("{url}/mcp"));
    Probe::new("probe-http")
        .serve_with_lifecycle(transport, lifecycle(era))
        .await
        .expect("connect over HTTP")
}

async fn stdio_client(db: &Path, wait: u32, era: Era) -> Client {
    let mut cmd = tokio::process::Command::new(local_mcp_bin());
    // Outside any git repository, so the agent's queue is `default`.
    if let Some(dir) = db.parent() {
        cmd.current_dir(dir);
    }
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DB_PATH", db)
        .env("LOG_LEVEL", "warn")
        .env("DEFAULT_WAIT_SECONDS", wait.to_string())
        .arg("stdio");
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn local-mcp stdio");
    Probe::new("probe-stdio")
        .serve_with_lifecycle(transport, lifecycle(era))
        .await
        .expect("connect over stdio")
}

fn args(agent: Option<&str>) -> CallToolRequestParams {
    let params = CallToolRequestParams::new(TOOL_NAME);
    match agent {
        Some(agent) => params.with_arguments(object(json!({ "agent_id": agent }))),
        None => params,
    }
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

/// The structured result, checked against its text mirror.
fn structured(result: &CallToolResult) -> Value {
    assert_eq!(result.is_error, Some(false), "{result:?}");
    let value = result
        .structured_content
        .clone()
        .expect("structuredContent");
    let text = result.content[0]
        .as_text()
        .expect("a text block")
        .text
        .clone();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    value
}

async fn call(client: &Client, agent: Option<&str>) -> Value {
    structured(&client.call_tool(args(agent)).await.expect("tools/call"))
}

/// The test's own view of the database, as another process sees it.
fn service_on(db: &TempDb) -> Service {
    Service::builder(as_store(db.open()))
        .offload(Arc::new(queue_store::BlockingPool))
        .build()
        .unwrap()
}

async fn pending(service: &Service) -> Vec<String> {
    let listing = service
        .list(
            &queue_core::QueueName::default(),
            StatusFilter::Pending,
            Page::default(),
        )
        .await
        .unwrap();
    listing
        .items
        .into_iter()
        .map(|i| i.content.as_str().to_owned())
        .collect()
}

/// Lists the tool, delivers oldest first, and answers an empty queue.
async fn check_contract(client: &Client, queue: &Service) {
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].name, TOOL_NAME);
    assert!(tools[0].output_schema.is_some());
    assert_eq!(tools[0].input_schema["additionalProperties"], json!(false));

    for text in ["one", "two"] {
        queue.add(text).await.unwrap();
    }
    let first = call(client, Some("tester")).await;
    assert_eq!(first["result_type"], "instruction");
    assert_eq!(first["instruction"]["content"], "one");
    assert_eq!(first["remaining_pending"], 1);
    let second = call(client, Some("tester")).await;
    assert_eq!(second["instruction"]["content"], "two");
    let empty = call(client, Some("tester")).await;
    assert_eq!(empty["result_type"], "default_response");
    assert_eq!(empty["instruction"], Value::Null);
    assert!(
        empty["response"]
            .as_str()
            .unwrap()
            .contains("get_user_request")
    );

    let bad = client.call_tool(args(Some("has space"))).await.unwrap();
    assert_eq!(bad.is_error, Some(true));
    let message = &bad.content[0].as_text().unwrap().text;
    assert!(message.contains("invalid `agent_id`"), "{message}");
    let unknown = client
        .call_tool(
            CallToolRequestParams::new(TOOL_NAME).with_arguments(object(json!({"bogus": 1}))),
        )
        .await
        .unwrap();
    assert_eq!(unknown.is_error, Some(true));
}

fn in_process(service: Service, options: ServerOptions) -> tokio::io::DuplexStream {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let server = QueueServer::new(service)
            .with_options(options)
            .serve(server_io)
            .await
            .expect("server handshake");
        let _ = server.waiting().await;
    });
    client_io
}

fn memory_service(wait: u32) -> Service {
    let service = Service::builder(Arc::new(MemoryStore::new()))
        .build()
        .unwrap();
    let patch = SettingsPatch::new(Some(i64::from(wait)), None, None).unwrap();
    let s = service.clone();
    // MemoryStore answers inline, so this completes on the first poll.
    futures_util::FutureExt::now_or_never(async move { s.update_settings(patch).await })
        .expect("memory store is synchronous")
        .unwrap();
    service
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_duplex_serves_the_contract() {
    let service = memory_service(0);
    let io = in_process(service.clone(), ServerOptions::default());
    let client = Probe::new("duplex").serve(io).await.unwrap();
    let info = client.peer_info().expect("initialize result");
    let instructions = info.instructions.clone().unwrap_or_default();
    assert!(
        instructions.contains("call `get_user_request` again"),
        "{instructions}"
    );
    check_contract(&client, &service).await;

    // With no agent_id the client's name from the handshake names the agent.
    service.add("named").await.unwrap();
    call(&client, None).await;
    let agents: Vec<String> = service
        .agents()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id.as_str().to_owned())
        .collect();
    assert!(agents.contains(&"duplex".to_owned()), "{agents:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_notifications_flow_while_waiting() {
    let service = memory_service(1);
    let options = ServerOptions {
        progress_interval: Duration::from_millis(100),
        ..ServerOptions::default()
    };
    let probe = Probe::new("progress");
    let seen = Arc::clone(&probe.progress);
    let client = probe.serve(in_process(service, options)).await.unwrap();

    // rmcp's client puts a progress token on every request it sends.
    let result = structured(&client.call_tool(args(Some("p"))).await.unwrap());
    assert_eq!(result["result_type"], "default_response");
    let notes = seen.lock().unwrap().clone();
    assert!(
        notes.len() >= 5,
        "a 1 s wait at 100 ms gives several notes: {notes:?}"
    );
    assert!(
        notes.windows(2).all(|w| w[0] < w[1]),
        "progress increases: {notes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_over_stdio_serves_both_protocol_eras() {
    for era in [Era::Legacy, Era::Modern] {
        let db = TempDb::new();
        let queue = service_on(&db);
        let client = stdio_client(db.path(), 1, era).await;
        check_contract(&client, &queue).await;
        client.cancel().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_over_http_serves_both_eras_and_both_modes() {
    for (stateless, era) in [
        (true, Era::Legacy),
        (true, Era::Modern),
        (false, Era::Legacy),
        (false, Era::Modern),
    ] {
        let db = TempDb::new();
        let queue = service_on(&db);
        let server = TestServer::start_on(db.path(), |c| {
            c.http.stateless = stateless;
            c.defaults.default_wait_seconds = 1;
        })
        .await;
        let client = http_client(&server.url(), era).await;
        check_contract(&client, &queue).await;
        client.cancel().await.unwrap();
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_http_needs_no_initialize() {
    let db = TempDb::new();
    let queue = service_on(&db);
    queue.add("raw").await.unwrap();
    let server = TestServer::start_on(db.path(), |_| {}).await;
    let http = reqwest::Client::new();
    let post = |body: Value| {
        mcp_post(&http, &format!("{}/mcp", server.url()))
            .json(&body)
            .send()
    };
    let list = post(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains("get_user_request"), "{list}");
    let call = post(json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"get_user_request","arguments":{"agent_id":"raw"}}}))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(call.contains("\"content\":\"raw\""), "{call}");
}

/// Issue 15: the URL names the queue (`/mcp/q/NAME`), the argument beats it, and
/// a name no queue can have is refused before anything is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_url_names_the_queue_and_bad_names_get_a_422() {
    let db = TempDb::new();
    let queue = service_on(&db);
    let shop = queue_core::QueueName::parse("shop").unwrap();
    queue.add("for default").await.unwrap();
    queue.add_to(&shop, None, "for shop").await.unwrap();
    queue
        .add_to(
            &queue_core::QueueName::parse("web").unwrap(),
            None,
            "for web",
        )
        .await
        .unwrap();
    let server = TestServer::start_on(db.path(), |c| {
        c.defaults.default_wait_seconds = 0;
    })
    .await;

    let transport = StreamableHttpClientTransport::from_uri(format!("{}/mcp/q/shop", server.url()));
    let client = Probe::new("probe-http")
        .serve_with_lifecycle(transport, lifecycle(Era::Legacy))
        .await
        .expect("connect over HTTP");
    let got = call(&client, Some("a1")).await;
    assert_eq!(got["queue"], "shop");
    assert_eq!(got["instruction"]["content"], "for shop");
    let again = call(&client, Some("a1")).await;
    assert_eq!(again["instruction"], Value::Null, "{again}");
    let params = CallToolRequestParams::new(TOOL_NAME)
        .with_arguments(object(json!({"agent_id": "a1", "queue": "web"})));
    let web = structured(&client.call_tool(params).await.unwrap());
    assert_eq!(web["instruction"]["content"], "for web");
    client.cancel().await.unwrap();
    assert_eq!(pending(&queue).await, ["for default"]);

    let refused = reqwest::Client::new()
        .post(format!("{}/mcp/q/my%20shop", server.url()))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["field"], "queue", "{body}");
    assert_eq!(pending(&queue).await, ["for default"]);
}

/// Issue 15: a stdio agent started in a git project takes from the queue named
/// after the project's folder, and leaves every other queue alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_agent_in_a_git_project_uses_its_folders_queue() {
    let db = TempDb::new();
    let queue = service_on(&db);
    let project = tempfile::tempdir().unwrap();
    let repo = project.path().join("my shop");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::create_dir_all(repo.join("src")).unwrap();
    queue.add("for default").await.unwrap();
    let named = queue_core::QueueName::parse("my-shop").unwrap();
    queue.add_to(&named, None, "for my shop").await.unwrap();

    let mut cmd = tokio::process::Command::new(local_mcp_bin());
    cmd.current_dir(repo.join("src"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DB_PATH", db.path())
        .env("LOG_LEVEL", "warn")
        .env("DEFAULT_WAIT_SECONDS", "0")
        .arg("stdio");
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn local-mcp stdio");
    let client = Probe::new("probe-stdio")
        .serve_with_lifecycle(transport, lifecycle(Era::Legacy))
        .await
        .expect("connect over stdio");
    let got = call(&client, None).await;
    assert_eq!(got["queue"], "my-shop");
    assert_eq!(got["instruction"]["content"], "for my shop");
    client.cancel().await.unwrap();
    assert_eq!(pending(&queue).await, ["for default"]);
    let agents = queue.agents().await.unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].queue, named);
}

/// SPEC §3 rule 5, the same scenario per transport: a client with a 1 s time
/// limit calls while the server would wait 5 s, and gives up; an instruction added
/// 2 s later must still be pending after the server's wait is over, and goes to
/// the next call.
async fn abandoned_call_loses_nothing<F, Fut>(db: &TempDb, give_up: F, next: Fut)
where
    F: AsyncFnOnce(),
    Fut: Future<Output = Value>,
{
    let queue = service_on(db);
    let started = Instant::now();
    give_up().await;
    let gave_up = started.elapsed();
    assert!(
        gave_up < Duration::from_secs(3),
        "gave up after {gave_up:?}"
    );
    tokio::time::sleep_until((started + Duration::from_secs(2)).into()).await;
    queue.add("after the timeout").await.unwrap();
    // Past the end of the abandoned call's 5 s wait.
    tokio::time::sleep_until((started + Duration::from_millis(5_500)).into()).await;
    assert_eq!(
        pending(&queue).await,
        ["after the timeout"],
        "the abandoned call took it"
    );
    let result = next.await;
    assert_eq!(result["instruction"]["content"], "after the timeout");
    assert!(pending(&queue).await.is_empty());
}

async fn time_out_after_1s(client: &Client) {
    let call = client.call_tool(args(Some("quitter")));
    let outcome = tokio::time::timeout(Duration::from_secs(1), call).await;
    assert!(outcome.is_err(), "the call should still be waiting at 1 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_call_over_stdio_loses_nothing() {
    for era in [Era::Legacy, Era::Modern] {
        let db = TempDb::new();
        let client = stdio_client(db.path(), 5, era).await;
        abandoned_call_loses_nothing(&db, async || time_out_after_1s(&client).await, async {
            call(&client, Some("quitter")).await
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_call_in_process_loses_nothing() {
    let db = TempDb::new();
    let service = Service::builder(as_store(db.open()))
        .offload(Arc::new(queue_store::BlockingPool))
        .build()
        .unwrap();
    service
        .update_settings(SettingsPatch::new(Some(5), None, None).unwrap())
        .await
        .unwrap();
    let watcher = {
        let s = service.clone();
        tokio::spawn(async move { s.watch().await })
    };
    let client = Probe::new("duplex")
        .serve(in_process(service.clone(), ServerOptions::default()))
        .await
        .unwrap();
    abandoned_call_loses_nothing(&db, async || time_out_after_1s(&client).await, async {
        call(&client, Some("quitter")).await
    })
    .await;
    service.shutdown();
    watcher.await.unwrap();
}

async fn abandoned_over_http(stateless: &str, era: Era) {
    let db = TempDb::new();
    let mut cmd = local_mcp(db.path());
    cmd.env("MCP_STATELESS", stateless)
        .env("DEFAULT_WAIT_SECONDS", "5");
    let server = Serve::start(cmd);
    let client = http_client(&server.url(), era).await;
    abandoned_call_loses_nothing(&db, async || time_out_after_1s(&client).await, async {
        call(&client, Some("quitter")).await
    })
    .await;
    let log = server.log();
    assert!(log.contains("abandoned by the client"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_call_over_stateless_http_loses_nothing() {
    abandoned_over_http("true", Era::Legacy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_call_over_stateful_http_loses_nothing() {
    abandoned_over_http("false", Era::Legacy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_call_over_http_2026_era_loses_nothing() {
    abandoned_over_http("false", Era::Modern).await;
}

/// A client that just drops the connection at its time limit, sending nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_http_connection_loses_nothing() {
    let db = TempDb::new();
    let server = TestServer::start_on(db.path(), |c| {
        c.defaults.default_wait_seconds = 5;
    })
    .await;
    let url = format!("{}/mcp", server.url());
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":"get_user_request","arguments":{"agent_id":"quitter"}}});
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let post = |client: &reqwest::Client| mcp_post(client, &url).json(&body).send();
    abandoned_call_loses_nothing(
        &db,
        async || {
            // Headers arrive at once; the body times out at 1 s and the connection
            // is dropped.
            let res = post(&client).await.expect("headers");
            assert!(res.text().await.is_err(), "the body should time out");
        },
        async {
            let text = post(&reqwest::Client::new())
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            mcp_tool_result(&text)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_call_of_the_same_agent_supersedes_the_older_over_http() {
    let db = TempDb::new();
    let queue = service_on(&db);
    let server = TestServer::start_on(db.path(), |c| {
        c.defaults.default_wait_seconds = 30;
    })
    .await;
    let old = http_client(&server.url(), Era::Legacy).await;
    let new = http_client(&server.url(), Era::Legacy).await;
    let other = http_client(&server.url(), Era::Legacy).await;

    let older = tokio::spawn(async move { call(&old, Some("twin")).await });
    let bystander = tokio::spawn(async move { call(&other, Some("other")).await });
    wait_until_in_flight(&queue, &["twin", "other"]).await;
    let started = Instant::now();
    let newer = tokio::spawn(async move { call(&new, Some("twin")).await });

    let superseded = older.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "returned at once"
    );
    assert_eq!(superseded["result_type"], "default_response");
    assert_eq!(superseded["instruction"], Value::Null);

    queue.add("for the newest").await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::select! {
            r = newer => ("twin", r.unwrap()),
            r = bystander => ("other", r.unwrap()),
        }
    })
    .await
    .expect("someone takes it");
    assert_eq!(first.1["instruction"]["content"], "for the newest");
    assert!(pending(&queue).await.is_empty());
}

/// Polls the agents table until each agent has a call in flight (bounded).
async fn wait_until_in_flight(queue: &Service, agents: &[&str]) {
    for _ in 0..1_000 {
        let now = queue.now();
        let live = queue.agents().await.unwrap();
        if agents.iter().all(|name| {
            live.iter()
                .any(|a| a.id.as_str() == *name && a.is_waiting(now))
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("agents {agents:?} never started waiting");
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let rank = ((samples.len() as f64) * 0.99).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Thirty times: `agent` waits through `client`, `add` queues an instruction, and
/// the time from the add to the result arriving is recorded.
async fn wake_trials(
    queue: &Service,
    client: &Arc<Client>,
    agent: &'static str,
    add: impl AsyncFn(String),
) -> Vec<Duration> {
    let mut samples = Vec::new();
    for i in 0..30 {
        let client = Arc::clone(client);
        let waiting = tokio::spawn(async move {
            let result = call(&client, Some(agent)).await;
            (result, Instant::now())
        });
        wait_until_in_flight(queue, &[agent]).await;
        let text = format!("for {agent} {i}");
        let added = Instant::now();
        add(text.clone()).await;
        let (result, arrived) = waiting.await.unwrap();
        assert_eq!(result["instruction"]["content"], text);
        samples.push(arrived - added);
    }
    samples
}

/// A `stdio` process and a `serve` process on one file: an add through either side
/// wakes a call waiting in the other within 100 ms (p99).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_and_serve_processes_wake_each_other() {
    let db = TempDb::new();
    let queue = service_on(&db);
    let mut cmd = local_mcp(db.path());
    cmd.env("DEFAULT_WAIT_SECONDS", "30");
    let server = Serve::start(cmd);
    let stdio = Arc::new(stdio_client(db.path(), 30, Era::Legacy).await);
    let http = Arc::new(http_client(&server.url(), Era::Legacy).await);
    let web = reqwest::Client::new();

    // Added through serve's HTTP API, taken by a call waiting in the stdio process.
    let serve_to_stdio = wake_trials(&queue, &stdio, "stdio-agent", async |text: String| {
        let res = web
            .post(format!("{}/api/instructions", server.url()))
            .json(&json!({ "content": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
    })
    .await;
    // Added by another process (this one, on the same file), taken by a call
    // waiting in serve.
    let other_to_serve = wake_trials(&queue, &http, "http-agent", async |text: String| {
        queue.add(&text).await.unwrap();
    })
    .await;
    let (a, b) = (p99(serve_to_stdio), p99(other_to_serve));
    eprintln!("cross-process wake p99: serve->stdio {a:?}, other->serve {b:?}");
    assert!(a < Duration::from_millis(100), "serve -> stdio p99 {a:?}");
    assert!(
        b < Duration::from_millis(100),
        "other process -> serve p99 {b:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_waiting_calls_and_exits_within_2s() {
    let db = TempDb::new();
    let queue = service_on(&db);
    let mut cmd = local_mcp(db.path());
    cmd.env("DEFAULT_WAIT_SECONDS", "60");
    let mut server = Serve::start(cmd);
    let client = http_client(&server.url(), Era::Legacy).await;
    let waiting = tokio::spawn(async move { client.call_tool(args(Some("b"))).await });
    wait_until_in_flight(&queue, &["b"]).await;

    let (status, took) = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(2), "exit took {took:?}");
    let result = waiting
        .await
        .unwrap()
        .expect("the waiting call is answered");
    assert_eq!(structured(&result)["result_type"], "default_response");
    assert_eq!(
        queue
            .counts(&queue_core::QueueName::default())
            .await
            .unwrap()
            .consumed,
        0
    );
}

/// `local-mcp stdio` driven by hand: its child, stdin, and stdout line by line.
fn raw_stdio(
    db: &TempDb,
    env: &[(&str, &str)],
) -> (
    integration::ChildGuard,
    std::process::ChildStdin,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    let mut cmd = local_mcp(db.path());
    cmd.envs(env.iter().copied())
        .arg("stdio")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = integration::ChildGuard(cmd.spawn().unwrap());
    let stdin = child.0.stdin.take().unwrap();
    let stdout = std::io::BufReader::new(child.0.stdout.take().unwrap()).lines();
    (child, stdin, stdout)
}

fn initialize_request() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}})
}

/// With trace logging on, stdout carries JSON-RPC frames and nothing else.
#[test]
fn stdio_stdout_carries_only_json_rpc() {
    use std::io::Write;
    let db = TempDb::new();
    let (mut child, mut stdin, stdout) = raw_stdio(
        &db,
        &[("LOG_LEVEL", "trace"), ("DEFAULT_WAIT_SECONDS", "0")],
    );
    let requests = [
        initialize_request(),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_user_request","arguments":{}}}),
    ];
    for r in &requests {
        writeln!(stdin, "{r}").unwrap();
    }
    let mut ids = Vec::new();
    for line in stdout.take(3) {
        let line = line.unwrap();
        let frame: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
        assert_eq!(frame["jsonrpc"], "2.0", "{line}");
        ids.push(frame["id"].clone());
    }
    assert_eq!(ids, [json!(1), json!(2), json!(3)]);
    drop(stdin);
    let status = child.0.wait().unwrap();
    assert!(
        status.success(),
        "stdio exits cleanly when stdin closes: {status:?}"
    );
}

/// SIGTERM in stdio mode: the waiting call is answered "call again" with nothing
/// consumed, and the process exits within 2 s.
#[test]
fn stdio_sigterm_answers_the_waiting_call_and_exits_within_2s() {
    use std::io::Write;
    let db = TempDb::new();
    let (mut child, mut stdin, mut stdout) = raw_stdio(&db, &[("DEFAULT_WAIT_SECONDS", "60")]);
    let init = initialize_request();
    writeln!(stdin, "{init}").unwrap();
    let _ = stdout.next().unwrap().unwrap();
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc":"2.0","method":"notifications/initialized"})
    )
    .unwrap();
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_user_request","arguments":{"agent_id":"w"}}});
    writeln!(stdin, "{call}").unwrap();

    // Wait (bounded) until the call is in flight, as another process sees it.
    let store = db.open();
    let mut waiting = false;
    for _ in 0..500 {
        let now = queue_core::Clock::now(&queue_core::SystemClock);
        if queue_core::Store::agents(&*store)
            .unwrap()
            .iter()
            .any(|a| a.id.as_str() == "w" && a.is_waiting(now))
        {
            waiting = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(waiting, "the call never started waiting");

    let started = Instant::now();
    let sent = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
    let line = stdout.next().expect("an answer").unwrap();
    let answer: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(answer["id"], 2);
    assert_eq!(
        answer["result"]["structuredContent"]["result_type"],
        "default_response"
    );
    let status = child.0.wait().unwrap();
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(2), "exit took {took:?}");
    assert_eq!(
        queue_core::Store::counts(&*store, &queue_core::QueueName::default())
            .unwrap()
            .consumed,
        0
    );
}

/// A `serve` process on the PostgreSQL database `pg`, its calls waiting `wait` s.
fn serve_on_postgres(pg: &integration::TempPg, scratch: &TempDb, wait: u32) -> Serve {
    let mut cmd = local_mcp(scratch.path());
    cmd.env("DB_URL", pg.url())
        .env("DEFAULT_WAIT_SECONDS", wait.to_string());
    Serve::start(cmd)
}

/// The test's own view of the PostgreSQL database, as a third server sees it.
fn service_on_postgres(pg: &integration::TempPg) -> Service {
    Service::builder(pg.open())
        .offload(Arc::new(queue_store::BlockingPool))
        .build()
        .unwrap()
}

/// Two `serve` processes on one PostgreSQL database, eight agents calling each:
/// 5,000 instructions are drained with every one delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_postgres_deliver_5000_instructions_exactly_once() {
    const N: usize = 5_000;
    let Some(pg) = integration::TempPg::new() else {
        return;
    };
    let store = pg.open();
    let added: Vec<String> = tokio::task::spawn_blocking(move || {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let store = &store;
                    s.spawn(move || {
                        (0..N / 8)
                            .map(|i| {
                                let new = queue_core::NewInstruction::new(
                                    queue_core::InstructionId::from_u128((t * N + i + 1) as u128),
                                    queue_core::Content::parse(&format!("job {t}/{i}")).unwrap(),
                                );
                                let now = queue_core::Timestamp::from_micros(1);
                                queue_core::Store::add(&**store, new, now)
                                    .unwrap()
                                    .id
                                    .to_string()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        })
    })
    .await
    .unwrap();
    assert_eq!(added.len(), N);

    let scratch = TempDb::new();
    let servers = [
        serve_on_postgres(&pg, &scratch, 1),
        serve_on_postgres(&pg, &scratch, 1),
    ];
    let mut claimers = Vec::new();
    for (s, server) in servers.iter().enumerate() {
        for c in 0..8 {
            let client = http_client(&server.url(), Era::Legacy).await;
            claimers.push(tokio::spawn(async move {
                let agent = format!("s{s}-c{c}");
                let mut got = Vec::new();
                // Each call takes the head or, once nothing is left, waits its
                // second and says so; the queue only shrinks, so that is the end.
                loop {
                    let result = call(&client, Some(&agent)).await;
                    match result["instruction"]["id"].as_str() {
                        Some(id) => got.push(id.to_owned()),
                        None => break,
                    }
                }
                (s, got)
            }));
        }
    }
    let mut by_server = [0_usize; 2];
    let mut delivered = Vec::new();
    for claimer in claimers {
        let (s, got) = claimer.await.unwrap();
        by_server[s] += got.len();
        delivered.extend(got);
    }
    eprintln!("deliveries by server: {by_server:?}");
    assert_eq!(delivered.len(), N, "every instruction delivered once");
    let unique: std::collections::HashSet<_> = delivered.iter().collect();
    assert_eq!(unique.len(), N, "no instruction delivered twice");
    assert!(added.iter().all(|id| unique.contains(id)), "none lost");
    assert!(
        by_server.iter().all(|n| *n > 0),
        "both servers delivered: {by_server:?}"
    );
    let counts = service_on_postgres(&pg)
        .counts(&queue_core::QueueName::default())
        .await
        .unwrap();
    assert_eq!((counts.pending, counts.consumed), (0, N as u64));
}

/// Two `serve` processes on one PostgreSQL database: an add through either wakes
/// a call waiting in the other within 100 ms (p99), told by `NOTIFY`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_on_one_postgres_server_wakes_a_call_waiting_on_another() {
    let Some(pg) = integration::TempPg::new() else {
        return;
    };
    let scratch = TempDb::new();
    let queue = service_on_postgres(&pg);
    let (a, b) = (
        serve_on_postgres(&pg, &scratch, 30),
        serve_on_postgres(&pg, &scratch, 30),
    );
    let web = reqwest::Client::new();
    let mut p99s = Vec::new();
    for (waits_on, adds_to, agent) in [(&b, &a, "on-b"), (&a, &b, "on-a")] {
        let client = Arc::new(http_client(&waits_on.url(), Era::Legacy).await);
        let url = adds_to.url();
        let samples = wake_trials(&queue, &client, agent, async |text: String| {
            let res = web
                .post(format!("{url}/api/instructions"))
                .json(&json!({ "content": text }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 201);
        })
        .await;
        p99s.push(p99(samples));
    }
    eprintln!(
        "cross-server wake p99 on PostgreSQL: a->b {:?}, b->a {:?}",
        p99s[0], p99s[1]
    );
    for p in p99s {
        assert!(
            p < Duration::from_millis(100),
            "cross-server wake p99 {p:?}"
        );
    }
}

/// A PostgreSQL server that cannot be reached, or a TLS demand this build cannot
/// meet, is refused at once with a message that says why and never shows the
/// password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_postgres_database_is_refused_clearly() {
    let scratch = TempDb::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (url, why) in [
        (
            format!("postgres://me:s3cret@127.0.0.1:{port}/queue"),
            "Connection refused",
        ),
        (
            format!("postgres://me:s3cret@127.0.0.1:{port}/queue?sslmode=require"),
            "SSL support is not compiled in",
        ),
    ] {
        let mut cmd = local_mcp(scratch.path());
        cmd.env("DB_URL", &url).arg("serve").env("HTTP_PORT", "0");
        let stderr =
            integration::refused_start(cmd, "serve on PostgreSQL", Duration::from_secs(20)).await;
        assert!(
            stderr.contains("could not open the PostgreSQL database"),
            "{stderr}"
        );
        assert!(stderr.contains(why), "{stderr}");
        assert!(stderr.contains("me:***@127.0.0.1"), "{stderr}");
        assert!(!stderr.contains("s3cret"), "the password leaked: {stderr}");
    }
}

/// Issue 18: adds that find calls waiting are claimed for them in the add's own
/// commit. Two `serve` processes share one database, four agents wait in each,
/// and `N` instructions are posted one after another, by turns to either
/// server: every one is delivered exactly once, whether the server that took the
/// add handed it to one of its own waiting calls or the other server's call
/// claimed it after the wake-up.
async fn adds_to_waiting_calls_are_delivered_exactly_once(servers: [Serve; 2], queue: Service) {
    const N: usize = 400;
    let delivered_so_far = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let give_up = Instant::now() + Duration::from_secs(120);
    let mut agents = Vec::new();
    for (s, server) in servers.iter().enumerate() {
        for c in 0..4 {
            let client = http_client(&server.url(), Era::Legacy).await;
            let so_far = Arc::clone(&delivered_so_far);
            agents.push(tokio::spawn(async move {
                let agent = format!("s{s}-c{c}");
                let mut got = Vec::new();
                // Calls until every instruction is out (or time is up); each
                // waits at most its second.
                while so_far.load(std::sync::atomic::Ordering::SeqCst) < N
                    && Instant::now() < give_up
                {
                    let result = call(&client, Some(&agent)).await;
                    if let Some(id) = result["instruction"]["id"].as_str() {
                        let waited = result["waited_seconds"].as_f64().unwrap_or(0.0) > 0.0;
                        got.push((id.to_owned(), waited));
                        so_far.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                got
            }));
        }
    }
    let web = reqwest::Client::new();
    let mut added = Vec::with_capacity(N);
    for i in 0..N {
        let res = web
            .post(format!("{}/api/instructions", servers[i % 2].url()))
            .json(&json!({ "content": format!("job {i}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
        let item: Value = res.json().await.unwrap();
        added.push(item["item"]["id"].as_str().unwrap().to_owned());
    }
    let mut delivered = Vec::new();
    for agent in agents {
        delivered.extend(agent.await.unwrap());
    }
    let after_a_wait = delivered.iter().filter(|(_, waited)| *waited).count();
    eprintln!(
        "{} delivered, {after_a_wait} of them to a call that had waited",
        delivered.len()
    );
    let unique: std::collections::HashSet<_> = delivered.iter().map(|(id, _)| id).collect();
    assert_eq!(
        unique.len(),
        delivered.len(),
        "an instruction delivered twice"
    );
    assert_eq!(delivered.len(), N, "every instruction delivered");
    assert!(added.iter().all(|id| unique.contains(id)), "none lost");
    assert!(after_a_wait > 0, "no add found a call waiting");
    let counts = queue
        .counts(&queue_core::QueueName::default())
        .await
        .unwrap();
    assert_eq!((counts.pending, counts.consumed), (0, N as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_to_calls_waiting_in_two_serve_processes_are_delivered_exactly_once() {
    let db = TempDb::new();
    let serve = || {
        let mut cmd = local_mcp(db.path());
        cmd.env("DEFAULT_WAIT_SECONDS", "1");
        Serve::start(cmd)
    };
    adds_to_waiting_calls_are_delivered_exactly_once([serve(), serve()], service_on(&db)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_to_calls_waiting_on_two_postgres_servers_are_delivered_exactly_once() {
    let Some(pg) = integration::TempPg::new() else {
        return;
    };
    let scratch = TempDb::new();
    adds_to_waiting_calls_are_delivered_exactly_once(
        [
            serve_on_postgres(&pg, &scratch, 1),
            serve_on_postgres(&pg, &scratch, 1),
        ],
        service_on_postgres(&pg),
    )
    .await;
}

/// Issue 18, the races of a hand-off: on the SQLite store, whose writer thread
/// runs each add and the claim it makes for a waiting call, four agents call
/// again and again and give up after 0–5 ms, while 300 instructions are added
/// one after another. Calls are dropped before, during and after adds claim for
/// them. Afterwards every instruction has been delivered exactly once: to a call
/// that returned it, or, put back by one that gave up, to the final drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_giving_up_while_adds_are_claimed_for_them_lose_and_repeat_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};

    use queue_core::{AgentId, FetchOutcome};

    const N: usize = 300;
    let db = TempDb::new();
    let service = service_on(&db);
    service
        .update_settings(SettingsPatch::new(Some(1), None, None).unwrap())
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut agents = Vec::new();
    for a in 0..4_u64 {
        let (service, stop) = (service.clone(), Arc::clone(&stop));
        agents.push(tokio::spawn(async move {
            let agent = AgentId::parse(&format!("racer-{a}")).unwrap();
            let (mut got, mut gave_up) = (Vec::new(), 0);
            let mut i = a;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let limit = Duration::from_micros(i * 7_919 % 5_000);
                match tokio::time::timeout(limit, service.next_instruction(agent.clone())).await {
                    Ok(fetch) => {
                        if let FetchOutcome::Instruction(item) = fetch.unwrap().outcome {
                            got.push(item.id);
                        }
                    }
                    Err(_) => gave_up += 1,
                }
            }
            (got, gave_up)
        }));
    }
    // A store that waits for itself (as one did: a clean-up on the writer thread
    // calling the store synchronously) hangs here; say so instead.
    let added = tokio::time::timeout(Duration::from_secs(120), async {
        let mut added = Vec::with_capacity(N);
        for i in 0..N {
            added.push(service.add(&format!("race {i}")).await.unwrap().id);
        }
        added
    })
    .await
    .expect("the adds hung");
    stop.store(true, Ordering::SeqCst);
    let (mut delivered, mut gave_up) = (Vec::new(), 0);
    for agent in agents {
        let (got, n) = agent.await.unwrap();
        delivered.extend(got);
        gave_up += n;
    }
    // What the calls that gave up put back is back once the service is idle.
    tokio::time::timeout(Duration::from_secs(60), service.drained())
        .await
        .expect("the clean-ups hung");
    let raced = delivered.len();
    service
        .update_settings(SettingsPatch::new(Some(0), None, None).unwrap())
        .await
        .unwrap();
    loop {
        let fetch = service
            .next_instruction(AgentId::parse("drain").unwrap())
            .await
            .unwrap();
        match fetch.outcome {
            FetchOutcome::Instruction(item) => delivered.push(item.id),
            _ => break,
        }
    }
    eprintln!(
        "{raced} delivered to racing calls ({gave_up} calls gave up), {} to the drain",
        delivered.len() - raced
    );
    let unique: std::collections::HashSet<_> = delivered.iter().collect();
    assert_eq!(
        unique.len(),
        delivered.len(),
        "an instruction delivered twice"
    );
    assert_eq!(delivered.len(), N, "every instruction delivered");
    assert!(added.iter().all(|id| unique.contains(id)), "none lost");
    assert!(raced > 0 && gave_up > 0, "the race did not happen");
    let counts = service
        .counts(&queue_core::QueueName::default())
        .await
        .unwrap();
    assert_eq!((counts.pending, counts.consumed), (0, N as u64));
}
