//! stdio hygiene: with `LOG_LEVEL=trace` stdout carries only JSON-RPC, and stdio
//! mode works in a network namespace with no interfaces.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration::{Proc, TempDb, as_store, local_mcp};
use queue_core::{AgentId, Change, Service};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long any single expected answer may take; only bounds a failure.
const SOON: Duration = Duration::from_secs(10);

/// What one stdout line turned out to be.
#[derive(Debug, PartialEq)]
enum Frame {
    Request,
    Notification,
    Response,
}

/// Checks that `line` is one JSON-RPC 2.0 message (a request, a notification or
/// a response, nothing more, nothing less) and returns its kind and value.
fn json_rpc(line: &str) -> Result<(Frame, Value), String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let object = value.as_object().ok_or("not a JSON object")?;
    if object.get("jsonrpc") != Some(&json!("2.0")) {
        return Err("`jsonrpc` is not \"2.0\"".into());
    }
    let known = ["jsonrpc", "id", "method", "params", "result", "error"];
    if let Some(key) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("unexpected member {key:?}"));
    }
    let id_ok = |id: &Value| id.is_string() || id.is_i64() || id.is_u64();
    let frame = if let Some(method) = object.get("method") {
        if !method.is_string() {
            return Err("`method` is not a string".into());
        }
        if object.contains_key("result") || object.contains_key("error") {
            return Err("a request or notification with `result` or `error`".into());
        }
        if object
            .get("params")
            .is_some_and(|p| !p.is_object() && !p.is_array())
        {
            return Err("`params` is neither an object nor an array".into());
        }
        match object.get("id") {
            None => Frame::Notification,
            Some(id) if id_ok(id) => Frame::Request,
            Some(_) => return Err("a request id that is not a string or an integer".into()),
        }
    } else {
        // A response: the id of a request, and exactly one of `result` and
        // `error`. An error about a request that could not be read has no id to
        // give: MCP's schema makes `id` optional there (rmcp leaves it out), plain
        // JSON-RPC 2.0 says `null`; both are accepted, for errors only.
        match object.get("id") {
            Some(id) if id_ok(id) => {}
            None | Some(Value::Null) if object.contains_key("error") => {}
            _ => return Err("a response without a usable `id`".into()),
        }
        match (object.get("result"), object.get("error")) {
            (Some(_), None) => {}
            (None, Some(error)) => {
                let code_ok = error["code"].is_i64();
                let message_ok = error["message"].is_string();
                if !code_ok || !message_ok {
                    return Err("an error without an integer `code` and a string `message`".into());
                }
            }
            _ => return Err("a response needs exactly one of `result` and `error`".into()),
        }
        Frame::Response
    };
    Ok((frame, value))
}

/// `local-mcp stdio` with its stdout read byte for byte: every line is checked by
/// [`json_rpc`] as it arrives, and the raw bytes are kept for a final look.
struct RawStdio {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Every byte written to stdout.
    raw: Arc<Mutex<Vec<u8>>>,
    log: tokio::sync::watch::Receiver<String>,
    /// Messages read but not yet asked for, by id.
    unclaimed: HashMap<u64, Value>,
    /// Every message read, in order.
    frames: Vec<(Frame, Value)>,
    next_id: u64,
}

impl RawStdio {
    fn spawn(cmd: Command) -> Self {
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn local-mcp stdio");
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn({
            let raw = Arc::clone(&raw);
            async move {
                let mut pending = Vec::new();
                let mut buf = [0_u8; 8192];
                while let Ok(n) = stdout.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    raw.lock().unwrap().extend_from_slice(&buf[..n]);
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        let line = String::from_utf8_lossy(&line[..end]).into_owned();
                        let _ = tx.send(line);
                    }
                }
            }
        });
        let (log_tx, log) = tokio::sync::watch::channel(String::new());
        tokio::spawn(async move {
            let mut buf = [0_u8; 8192];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                log_tx.send_modify(|log| log.push_str(&String::from_utf8_lossy(&buf[..n])));
            }
        });
        RawStdio {
            child,
            stdin,
            lines,
            raw,
            log,
            unclaimed: HashMap::new(),
            frames: Vec::new(),
            next_id: 1,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    fn log(&self) -> String {
        self.log.borrow().clone()
    }

    async fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to stdin");
        stdin.flush().await.expect("flush stdin");
    }

    async fn send(&mut self, message: &Value) {
        self.send_line(&message.to_string()).await;
    }

    async fn start_request(&mut self, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}))
            .await;
        id
    }

    /// Takes the next stdout line, checks it and files it; `false` at the end of
    /// stdout.
    async fn read_one(&mut self, within: Duration) -> bool {
        let line = match tokio::time::timeout(within, self.lines.recv()).await {
            Err(_) => panic!("nothing on stdout within {within:?}:\n{}", self.log()),
            Ok(None) => return false,
            Ok(Some(line)) => line,
        };
        let (frame, value) = json_rpc(&line).unwrap_or_else(|e| {
            panic!(
                "stdout carried something other than JSON-RPC ({e}): {line:?}\nstderr:\n{}",
                self.log()
            )
        });
        if frame == Frame::Response
            && let Some(id) = value["id"].as_u64()
        {
            let earlier = self.unclaimed.insert(id, value.clone());
            assert!(earlier.is_none(), "two responses to request {id}: {value}");
        }
        self.frames.push((frame, value));
        true
    }

    /// The whole response to request `id`.
    async fn response(&mut self, id: u64) -> Value {
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            if let Some(message) = self.unclaimed.remove(&id) {
                return message;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                self.read_one(left).await,
                "stdout ended before the response to {id}:\n{}",
                self.log()
            );
        }
    }

    async fn result(&mut self, id: u64) -> Value {
        let message = self.response(id).await;
        assert!(
            message.get("error").is_none(),
            "request {id} failed: {message}"
        );
        message["result"].clone()
    }

    async fn start_get_user_request(&mut self, agent: &str) -> u64 {
        let params = json!({"name":"get_user_request","arguments":{"agent_id":agent}});
        self.start_request("tools/call", params).await
    }

    /// The structured result of the `get_user_request` call `id`.
    async fn tool_result(&mut self, id: u64) -> Value {
        let result = self.result(id).await;
        assert_eq!(result["isError"], json!(false), "{result}");
        result["structuredContent"].clone()
    }

    async fn wait_for_log(&mut self, needle: &str) {
        let found = tokio::time::timeout(SOON, self.log.wait_for(|log| log.contains(needle)))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(found, "{needle:?} was not logged:\n{}", self.log());
    }

    /// Closes stdin and reads stdout to its end; returns the exit status.
    async fn close(&mut self) -> std::process::ExitStatus {
        self.stdin = None;
        while self.read_one(SOON).await {}
        match tokio::time::timeout(SOON, self.child.wait()).await {
            Ok(status) => status.expect("wait for local-mcp"),
            Err(_) => panic!("local-mcp did not exit after stdin closed:\n{}", self.log()),
        }
    }
}

/// The test's own view of the queue, as another process on the same database;
/// its events say when a stdio process's call is waiting.
struct Observer {
    service: Service,
    events: tokio::sync::broadcast::Receiver<Arc<queue_core::Event>>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Observer {
    fn new(db: &TempDb) -> Self {
        let service = Service::builder(as_store(db.open()))
            .offload(Arc::new(queue_store::BlockingPool))
            .build()
            .expect("build the observing service");
        let events = service.subscribe();
        let watcher = tokio::spawn({
            let service = service.clone();
            async move { service.watch().await }
        });
        Observer {
            service,
            events,
            watcher,
        }
    }

    /// Waits until the `nth` call of `agent` (counting from 1: its generation) has
    /// started and is in flight, as recorded in the database. Counting calls keeps
    /// an older call's event, which may reach this process late, from passing for
    /// a newer one.
    async fn until_call(&mut self, agent: &str, nth: u64) {
        let agent = AgentId::parse(agent).expect("a valid agent id");
        let started = async {
            loop {
                let event = self.events.recv().await.expect("the observer's events");
                if let Change::AgentUpdated(a) = &event.change
                    && a.id == agent
                    && a.generation == nth
                    && a.waiting_until.is_some()
                {
                    return;
                }
            }
        };
        tokio::time::timeout(SOON, started)
            .await
            .unwrap_or_else(|_| panic!("call {nth} of {agent} was not seen within {SOON:?}"));
    }

    async fn stop(self) {
        self.service.shutdown();
        self.watcher.await.expect("the observer's watcher");
    }
}

/// `local-mcp add TEXT` in a process of its own; `wrap` may run it in another
/// namespace.
async fn add(cmd: Command, text: &str) {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.arg("add").arg(text).stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(SOON, cmd.output())
        .await
        .expect("local-mcp add finished")
        .expect("run local-mcp add");
    assert!(
        out.status.success(),
        "local-mcp add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

/// A whole stdio session at trace level with every kind of traffic, stdout read
/// raw: handshake, listing, a delivery, a call superseded while waiting, a call
/// woken by an add from another process, a cancelled call, bad input, ping, and a
/// call still waiting when the client closes stdin.
async fn session_at_trace_level(format: LogFormat) {
    let db = TempDb::new();
    add(local_mcp(db.path()), "queued before the session").await;
    let mut observer = Observer::new(&db);

    let mut cmd = local_mcp(db.path());
    cmd.env("LOG_LEVEL", "trace")
        .env("DEFAULT_WAIT_SECONDS", "60")
        .arg("stdio");
    if let LogFormat::Json = format {
        cmd.env("LOG_FORMAT", "json");
    }
    let mut agent = RawStdio::spawn(cmd);

    let id = agent
        .start_request(
            "initialize",
            json!({"protocolVersion":"2025-11-25","capabilities":{},
                "clientInfo":{"name":"hygiene","version":"1"}}),
        )
        .await;
    let init = agent.result(id).await;
    assert_eq!(init["serverInfo"]["name"], "local-mcp", "{init}");
    agent
        .send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;

    let id = agent.start_request("tools/list", json!({})).await;
    let tools = agent.result(id).await;
    assert_eq!(tools["tools"][0]["name"], "get_user_request", "{tools}");

    let id = agent.start_get_user_request("hygiene").await;
    let first = agent.tool_result(id).await;
    assert_eq!(
        first["instruction"]["content"], "queued before the session",
        "{first}"
    );

    // A waiting call superseded by a newer call of the same agent returns at once.
    let older = agent.start_get_user_request("hygiene").await;
    observer.until_call("hygiene", 2).await;
    let newer = agent.start_get_user_request("hygiene").await;
    let superseded = agent.tool_result(older).await;
    assert_eq!(
        superseded["result_type"], "default_response",
        "{superseded}"
    );

    // The newer one waits until another process adds an instruction.
    observer.until_call("hygiene", 3).await;
    add(local_mcp(db.path()), "from another process").await;
    let woken = agent.tool_result(newer).await;
    assert_eq!(
        woken["instruction"]["content"], "from another process",
        "{woken}"
    );

    // A waiting call the client cancels.
    let cancelled = agent.start_get_user_request("cancelled").await;
    observer.until_call("cancelled", 1).await;
    agent
        .send(&json!({"jsonrpc":"2.0","method":"notifications/cancelled",
            "params":{"requestId":cancelled,"reason":"the client gave up"}}))
        .await;
    agent.wait_for_log("abandoned by the client").await;

    // Bad input of every kind: unreadable, unknown method, bad arguments, unknown
    // tool, wrong protocol version.
    agent.send_line("{this is not json").await;
    let id = agent.start_request("no/such/method", json!({})).await;
    let unknown = agent.response(id).await;
    assert!(unknown["error"]["code"].is_i64(), "{unknown}");
    let id = agent
        .start_request(
            "tools/call",
            json!({"name":"get_user_request","arguments":{"agent_id":"has space"}}),
        )
        .await;
    let refused = agent.result(id).await;
    assert_eq!(refused["isError"], json!(true), "{refused}");
    let id = agent
        .start_request("tools/call", json!({"name":"no_such_tool","arguments":{}}))
        .await;
    let no_tool = agent.response(id).await;
    let no_tool_failed = no_tool.get("error").is_some() || no_tool["result"]["isError"] == true;
    assert!(no_tool_failed, "{no_tool}");
    agent
        .send_line(r#"{"jsonrpc":"1.0","id":999,"method":"ping"}"#)
        .await;

    let id = agent.start_request("ping", json!({})).await;
    assert_eq!(agent.result(id).await, json!({}));

    // Shut down by closing stdin while a call waits: it ends, nothing consumed.
    let _left_waiting = agent.start_get_user_request("at-close").await;
    observer.until_call("at-close", 1).await;
    let pid = agent.pid();
    let closed = std::time::Instant::now();
    let status = agent.close().await;
    let exit_took = closed.elapsed();
    assert!(status.success(), "exit {status:?}:\n{}", agent.log());
    // SPEC §3 rule 5: a closed connection is noticed within 2 s.
    assert!(
        exit_took < Duration::from_secs(2),
        "stdio took {exit_took:?} to exit after stdin closed during a waiting call"
    );
    let counts = observer
        .service
        .counts(&queue_core::QueueName::default())
        .await
        .expect("the queue's counts");
    assert_eq!(
        (counts.pending, counts.consumed),
        (0, 2),
        "exactly the two delivered instructions were consumed"
    );
    observer.stop().await;

    let raw = agent.raw.lock().unwrap().clone();
    assert!(
        raw.is_empty() || raw.ends_with(b"\n"),
        "stdout ended in the middle of a line: {:?}",
        String::from_utf8_lossy(&raw[raw.len().saturating_sub(200)..])
    );
    let lines = raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
    assert_eq!(
        lines,
        agent.frames.len(),
        "every stdout line was one checked message (blank lines count as noise)"
    );
    let requests = agent.frames.iter().filter(|(f, _)| *f == Frame::Request);
    assert_eq!(requests.count(), 0, "the server asked the client something");

    // The logs really were at trace level, on stderr: were they on stdout, the
    // checks above would have failed.
    let log = agent.log();
    let (trace_mark, kind) = match format {
        LogFormat::Text => (" TRACE ", "text"),
        LogFormat::Json => (r#""level":"TRACE""#, "JSON"),
    };
    let traces = log.lines().filter(|l| l.contains(trace_mark)).count();
    assert!(
        traces >= 10,
        "only {traces} {kind} trace lines on stderr:\n{log}"
    );
    if let LogFormat::Json = format {
        for line in log.lines().filter(|l| !l.trim().is_empty()) {
            let parsed = serde_json::from_str::<Value>(line);
            assert!(
                parsed.is_ok_and(|v| v.is_object()),
                "stderr line is not JSON: {line}"
            );
        }
    }
    eprintln!(
        "stdio pid {pid} ({kind} logs): {} JSON-RPC messages on stdout ({} bytes), {} lines on stderr ({traces} at trace)",
        agent.frames.len(),
        raw.len(),
        log.lines().count()
    );
}

/// `cmd` (a `local-mcp` command from [`local_mcp`]) run under `unshare -n`: in a
/// new network namespace that has only a loopback interface, and that one down.
fn without_network(cmd: &Command) -> Command {
    let mut wrapped = Command::new("unshare");
    wrapped
        .arg("-n")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped.env_clear();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            wrapped.env(key, value);
        }
    }
    wrapped
}

fn proc_net(pid: u32, file: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/net/{file}"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/net/{file}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_carries_only_json_rpc_with_trace_logs() {
    session_at_trace_level(LogFormat::Text).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_carries_only_json_rpc_with_trace_logs_as_json() {
    session_at_trace_level(LogFormat::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_works_in_a_network_namespace_without_interfaces() {
    let db = TempDb::new();
    add(
        without_network(&local_mcp(db.path())),
        "added with no network",
    )
    .await;
    let mut observer = Observer::new(&db);

    let mut cmd = local_mcp(db.path());
    cmd.env("DEFAULT_WAIT_SECONDS", "60").arg("stdio");
    let mut agent = Proc::spawn(without_network(&cmd));
    let init = agent.initialize("no-network").await;
    assert_eq!(init["serverInfo"]["name"], "local-mcp", "{init}");

    // `unshare` execs local-mcp, so the pid is the server's own; the handshake above
    // proves the exec is done.
    let pid = agent.pid();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("the process's binary");
    assert!(
        exe.to_string_lossy().contains("local-mcp"),
        "pid {pid} runs {}",
        exe.display()
    );
    let own = std::fs::read_link("/proc/self/ns/net").expect("our network namespace");
    let its = std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("its network namespace");
    assert_ne!(
        own, its,
        "local-mcp stdio runs in a network namespace of its own"
    );
    let interfaces: Vec<String> = proc_net(pid, "dev")
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|name| name.trim().to_owned())
        .collect();
    assert_eq!(interfaces, ["lo"], "only the loopback interface exists");
    // A loopback that is up holds 127.0.0.1 (and ::1); down, it holds no address,
    // so nothing could be bound or reached.
    assert_eq!(
        proc_net(pid, "fib_trie").trim(),
        "",
        "no IPv4 address at all"
    );
    assert_eq!(
        proc_net(pid, "if_inet6").trim(),
        "",
        "no IPv6 address at all"
    );

    let id = agent.start_get_user_request("offline").await;
    let first = agent.tool_result(id, SOON).await;
    assert_eq!(
        first["instruction"]["content"], "added with no network",
        "{first}"
    );

    // A waiting call is woken by an add from another process, itself without
    // network: the wake-up goes through the database file alone.
    let id = agent.start_get_user_request("offline").await;
    observer.until_call("offline", 2).await;
    add(
        without_network(&local_mcp(db.path())),
        "woken with no network",
    )
    .await;
    let woken = agent.tool_result(id, SOON).await;
    assert_eq!(
        woken["instruction"]["content"], "woken with no network",
        "{woken}"
    );

    agent.close_stdin();
    let status = agent.wait_exit(SOON).await;
    assert!(status.success(), "exit {status:?}:\n{}", agent.log());
    let log = agent.log();
    assert!(!log.contains("ERROR"), "errors without a network:\n{log}");
    observer.stop().await;
}
