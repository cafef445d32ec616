//! Fixtures shared by the integration tests: temporary databases and child
//! processes that are cleaned up when they go out of scope.

mod pg;
pub use pg::{PG_URL_ENV, REQUIRE_PG_ENV, TempPg};

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;

use queue_core::Store;
use queue_store::{SqliteStore, StoreOptions, Synchronous};

/// A database file in its own temporary folder, removed on drop.
pub struct TempDb {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl TempDb {
    /// A fresh, not yet created, database path.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary folder");
        let path = dir.path().join("queue.sqlite3");
        TempDb { dir, path }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder holding it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Opens the store with default (fully durable) options.
    pub fn open(&self) -> Arc<SqliteStore> {
        Arc::new(SqliteStore::open(&self.path, StoreOptions::default()).expect("open the store"))
    }

    /// Opens the store without fsync on commit, for tests that do many small writes
    /// and do not test durability.
    pub fn open_fast(&self) -> Arc<SqliteStore> {
        let options = StoreOptions {
            synchronous: Synchronous::Normal,
            ..StoreOptions::default()
        };
        Arc::new(SqliteStore::open(&self.path, options).expect("open the store"))
    }
}

impl Default for TempDb {
    fn default() -> Self {
        Self::new()
    }
}

/// Upcasts for code that takes the port.
pub fn as_store(s: Arc<SqliteStore>) -> Arc<dyn Store> {
    s
}

/// A child process killed (SIGKILL) and reaped on drop, so a failing test leaves
/// nothing running.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Spawns `cmd`.
    pub fn spawn(cmd: &mut Command) -> Self {
        ChildGuard(cmd.spawn().expect("spawn the store driver"))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `local-mcp` binary built next to this test binary. `cargo test --workspace`
/// builds it (the binary's own CLI tests need it); run that, not `-p integration`
/// alone, after changing the binary.
pub fn local_mcp_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("LOCAL_MCP_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/debug/deps/integration-HASH -> target/debug/local-mcp
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let bin = dir.join(format!("local-mcp{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p local-mcp`) first",
        bin.display()
    );
    bin
}

/// A `local-mcp` command on the database `db`, quiet and quick to give up waiting.
/// It runs in the database's folder, which is in no git repository, so a stdio
/// agent uses the `default` queue as the tests' adds do.
pub fn local_mcp(db: &Path) -> Command {
    let mut cmd = Command::new(local_mcp_bin());
    if let Some(dir) = db.parent().filter(|d| d.is_dir()) {
        cmd.current_dir(dir);
    }
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DB_PATH", db)
        .env("LOG_LEVEL", "info,local_mcp=debug,mcp_adapter=debug")
        .env("DEFAULT_WAIT_SECONDS", "10");
    cmd
}

/// Runs `cmd` (a `local-mcp` command) expecting it to refuse to start within
/// `within`: it must exit unsuccessfully without ever listening. Returns its
/// stderr; `what` names the command in failure messages.
pub async fn refused_start(cmd: Command, what: &str, within: std::time::Duration) -> String {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(within, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("local-mcp {what} kept running instead of refusing"))
        .expect("run local-mcp");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{what} started: {stderr}");
    assert!(
        !stderr.contains("listening on"),
        "{what} listened before refusing: {stderr}"
    );
    stderr
}

/// A running `local-mcp serve` on a free loopback port; killed on drop.
pub struct Serve {
    child: Option<Child>,
    port: u16,
    log: Arc<std::sync::Mutex<String>>,
}

impl Serve {
    /// Starts `serve` from `cmd` (see [`local_mcp`]) on port 0 and waits until it
    /// listens.
    pub fn start(mut cmd: Command) -> Self {
        use std::io::BufRead;
        cmd.arg("serve")
            .env("HTTP_PORT", "0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn local-mcp serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Logged before the port is announced, so a test that reads the
                // log once `start` returns finds the listening line in it.
                {
                    let mut log = sink
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    log.push_str(&line);
                    log.push('\n');
                }
                if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    if let (Some(tx), Ok(port)) = (tx.take(), port.parse::<u16>()) {
                        let _ = tx.send(port);
                    }
                }
            }
        });
        let port = match rx.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "local-mcp serve did not start listening:\n{}",
                    log.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                );
            }
        };
        Serve {
            child: Some(child),
            port,
            log,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sends SIGTERM and waits for the exit; returns how long that took.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, std::time::Duration) {
        let mut child = self.child.take().expect("still running");
        let started = std::time::Instant::now();
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let status = child.wait().expect("wait for local-mcp serve");
        (status, started.elapsed())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Live events (SSE) and `local-mcp` processes driven from async tests.
// ---------------------------------------------------------------------------

/// One Server-Sent Events message as read off the wire: the fields of one block,
/// up to its blank line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseFrame {
    /// The `id:` field.
    pub id: Option<String>,
    /// The `event:` field.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n` (empty when there were none).
    pub data: String,
    /// The `retry:` field.
    pub retry: Option<String>,
    /// Comment lines (`: text`), without the colon and the one space after it.
    pub comments: Vec<String>,
}

impl SseFrame {
    /// Whether this is a message (it has an event type or data), not a block of
    /// comments such as `: connected` or `: heartbeat`.
    pub fn is_message(&self) -> bool {
        self.event.is_some() || !self.data.is_empty()
    }

    /// The `event:` field, or `""`.
    pub fn kind(&self) -> &str {
        self.event.as_deref().unwrap_or("")
    }

    /// The `data:` field parsed as JSON (the envelope `{"type","timestamp","data"}`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("the data of {self:?} is not JSON: {e}"))
    }

    /// The `id:` field as the number the server gives out.
    pub fn id_number(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("{self:?} has no numeric id"))
    }
}

/// Splits an SSE byte stream into frames, however the bytes are cut into reads.
/// Lines end with `\n`, `\r\n` or a lone `\r`, as the SSE grammar allows.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    frame: SseFrame,
    /// Whether the block so far had any line, so a blank line ends a frame.
    started: bool,
    /// The previous byte was `\r`: a `\n` right after it ends no second line.
    after_cr: bool,
}

impl SseParser {
    /// Feeds `bytes`; returns the frames they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseFrame> {
        let mut out = Vec::new();
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(&mut out);
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<SseFrame>) {
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
        if line.is_empty() {
            if std::mem::take(&mut self.started) {
                out.push(std::mem::take(&mut self.frame));
            }
            return;
        }
        self.started = true;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        let frame = &mut self.frame;
        match field {
            "" => frame.comments.push(value.to_owned()),
            "id" => frame.id = Some(value.to_owned()),
            "event" => frame.event = Some(value.to_owned()),
            "retry" => frame.retry = Some(value.to_owned()),
            "data" => {
                if !frame.data.is_empty() {
                    frame.data.push('\n');
                }
                frame.data.push_str(value);
            }
            _ => {}
        }
    }
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

/// A live `GET /api/events` over reqwest, read frame by frame. Every read is
/// bounded by a deadline and panics with what it saw when that passes, so a
/// missing event fails the test instead of hanging it.
pub struct SseClient {
    headers: reqwest::header::HeaderMap,
    body: ByteStream,
    parser: SseParser,
    ready: std::collections::VecDeque<SseFrame>,
}

impl SseClient {
    /// Opens `{base}/api/events`, with `Last-Event-ID` when given.
    pub async fn connect(base: &str, last_event_id: Option<&str>) -> Self {
        let mut request = reqwest::Client::new().get(format!("{base}/api/events"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        Self::open(request).await
    }

    /// Sends `request` (a GET of the events route) and checks it is an event stream.
    pub async fn open(request: reqwest::RequestBuilder) -> Self {
        use futures_util::StreamExt;
        let response = request.send().await.expect("GET /api/events");
        assert_eq!(response.status().as_u16(), 200, "GET /api/events");
        let kind = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(
            kind.starts_with("text/event-stream"),
            "content type {kind:?}"
        );
        let headers = response.headers().clone();
        // Copied into a Vec so the stream's type names no crate outside reqwest.
        let body = response
            .bytes_stream()
            .map(|chunk| chunk.map(|b| b.to_vec()))
            .boxed();
        SseClient {
            headers,
            body,
            parser: SseParser::default(),
            ready: std::collections::VecDeque::new(),
        }
    }

    /// The response headers.
    pub fn headers(&self) -> &reqwest::header::HeaderMap {
        &self.headers
    }

    /// The next frame, comments included, before `deadline`; `None` when the
    /// deadline passes first. Panics when the stream ends or fails.
    pub async fn next_before(&mut self, deadline: tokio::time::Instant) -> Option<SseFrame> {
        use futures_util::StreamExt;
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Some(frame);
            }
            let chunk = match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return None,
                Ok(None) => panic!("the event stream ended"),
                Ok(Some(Err(e))) => panic!("the event stream failed: {e}"),
                Ok(Some(Ok(chunk))) => chunk,
            };
            self.ready.extend(self.parser.feed(&chunk));
        }
    }

    /// The next frame, comments included, within `within`.
    pub async fn next_frame(&mut self, within: std::time::Duration) -> SseFrame {
        let deadline = tokio::time::Instant::now() + within;
        self.next_before(deadline)
            .await
            .unwrap_or_else(|| panic!("no event frame within {within:?}"))
    }

    /// The next message (comment blocks skipped) within `within`.
    pub async fn next_message(&mut self, within: std::time::Duration) -> SseFrame {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.next_before(deadline).await {
                Some(frame) if frame.is_message() => return frame,
                Some(_) => {}
                None => panic!("no event message within {within:?}"),
            }
        }
    }

    /// Messages up to and including the first one `done` accepts, within `within`;
    /// panics with everything seen when it does not come.
    pub async fn until(
        &mut self,
        within: std::time::Duration,
        mut done: impl FnMut(&SseFrame) -> bool,
    ) -> Vec<SseFrame> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            match self.next_before(deadline).await {
                Some(frame) if frame.is_message() => {
                    let last = done(&frame);
                    seen.push(frame);
                    if last {
                        return seen;
                    }
                }
                Some(_) => {}
                None => panic!(
                    "the awaited event did not come within {within:?}; saw:\n{}",
                    seen.iter()
                        .map(|f| format!(
                            "{} {} {}",
                            f.id.as_deref().unwrap_or("-"),
                            f.kind(),
                            f.data
                        ))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
}

/// Undoes HTTP/1.1 chunked transfer coding as bytes arrive.
#[derive(Debug, Default)]
pub struct Dechunk {
    state: ChunkState,
    size_line: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// This many data bytes are left in the chunk.
    Data(usize),
    /// This many bytes of the CRLF after the chunk's data are left.
    DataEnd(u8),
    /// The last chunk was read.
    Done,
}

impl Dechunk {
    /// Appends the body bytes in `input` to `out`; `false` once the body has ended
    /// or the coding is broken.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> bool {
        while !input.is_empty() {
            match self.state {
                ChunkState::Done => return false,
                ChunkState::Size => {
                    let b = input[0];
                    input = &input[1..];
                    if b != b'\n' {
                        self.size_line.push(b);
                        continue;
                    }
                    let line = String::from_utf8_lossy(&self.size_line).into_owned();
                    self.size_line.clear();
                    let hex = line.trim().split(';').next().unwrap_or("");
                    let Ok(size) = usize::from_str_radix(hex, 16) else {
                        self.state = ChunkState::Done;
                        return false;
                    };
                    self.state = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    let n = left.min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = if n == left {
                        ChunkState::DataEnd(2)
                    } else {
                        ChunkState::Data(left - n)
                    };
                }
                ChunkState::DataEnd(left) => {
                    input = &input[1..];
                    self.state = if left == 1 {
                        ChunkState::Size
                    } else {
                        ChunkState::DataEnd(left - 1)
                    };
                }
            }
        }
        self.state != ChunkState::Done
    }
}

/// `GET /api/events` over a bare TCP socket: a few kilobytes per stream, so one
/// test can hold a thousand of them where an HTTP client would cost far more.
pub struct RawSse {
    stream: tokio::net::TcpStream,
    chunked: bool,
    dechunk: Dechunk,
    parser: SseParser,
    ready: std::collections::VecDeque<SseFrame>,
    /// Body bytes read along with the response head.
    early: Vec<u8>,
}

impl RawSse {
    /// Connects to `addr`, sends the request (with `Last-Event-ID` when given) and
    /// reads the response head, which must be `200`.
    pub async fn connect(
        addr: std::net::SocketAddr,
        last_event_id: Option<&str>,
    ) -> std::io::Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{resume}\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::with_capacity(512);
        let mut buf = [0_u8; 1024];
        let end = loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed before answering",
                ));
            }
            head.extend_from_slice(&buf[..n]);
        };
        let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
        if !text.starts_with("http/1.1 200") {
            return Err(std::io::Error::other(format!("unexpected answer: {text}")));
        }
        Ok(RawSse {
            stream,
            chunked: text.contains("transfer-encoding: chunked"),
            dechunk: Dechunk::default(),
            parser: SseParser::default(),
            ready: std::collections::VecDeque::new(),
            early: head[end..].to_vec(),
        })
    }

    /// The next frame, comments included; `None` when the stream has ended.
    pub async fn next_frame(&mut self) -> std::io::Result<Option<SseFrame>> {
        use tokio::io::AsyncReadExt;
        let mut buf = [0_u8; 4096];
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Ok(Some(frame));
            }
            let input = if self.early.is_empty() {
                let n = self.stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf[..n].to_vec()
            } else {
                std::mem::take(&mut self.early)
            };
            let body = if self.chunked {
                let mut body = Vec::with_capacity(input.len());
                let open = self.dechunk.feed(&input, &mut body);
                if !open && body.is_empty() {
                    return Ok(None);
                }
                body
            } else {
                input
            };
            self.ready.extend(self.parser.feed(&body));
        }
    }
}

/// A `local-mcp` child driven from async tests: stdin and stdout piped for
/// JSON-RPC, stderr collected so a test can wait on a log line. Killed on drop.
pub struct Proc {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    log: tokio::sync::watch::Receiver<String>,
    next_id: u64,
}

impl Proc {
    /// Spawns `cmd` (see [`local_mcp`]; add the subcommand first) with its three
    /// standard streams piped. Call within a Tokio runtime.
    pub fn spawn(cmd: Command) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn local-mcp");
        let stdin = child.stdin.take();
        let stdout = tokio::io::BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, log) = tokio::sync::watch::channel(String::new());
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tx.send_modify(|log| {
                    log.push_str(&line);
                    log.push('\n');
                });
            }
        });
        Proc {
            child,
            stdin,
            stdout,
            log,
            next_id: 1,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("still running")
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.borrow().clone()
    }

    /// Waits until the log contains `needle`; returns the log. Panics with the log
    /// after `within`.
    pub async fn wait_for_log(&mut self, needle: &str, within: std::time::Duration) -> String {
        let found = tokio::time::timeout(within, self.log.wait_for(|log| log.contains(needle)))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|log| log.clone());
        found.unwrap_or_else(|| {
            panic!(
                "{needle:?} was not logged within {within:?}:\n{}",
                self.log()
            )
        })
    }

    /// The address from its `local-mcp listening on http://ADDR` line.
    pub async fn listening(&mut self, within: std::time::Duration) -> std::net::SocketAddr {
        const MARK: &str = "local-mcp listening on http://";
        let log = self.wait_for_log(MARK, within).await;
        let rest = log.split(MARK).nth(1).unwrap_or("");
        let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
        addr.parse()
            .unwrap_or_else(|e| panic!("{addr:?} is not an address ({e}):\n{log}"))
    }

    /// Writes one JSON-RPC message as a line on its stdin.
    pub async fn send(&mut self, message: &serde_json::Value) {
        use tokio::io::AsyncWriteExt;
        let stdin = self.stdin.as_mut().expect("stdin is open");
        let mut line = message.to_string();
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to stdin");
        stdin.flush().await.expect("flush stdin");
    }

    /// Sends a request; returns its id, for [`Proc::response`].
    pub async fn start_request(&mut self, method: &str, params: serde_json::Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let message = serde_json::json!({"jsonrpc":"2.0","id":id,"method":method,"params":params});
        self.send(&message).await;
        id
    }

    /// The `result` of the response to request `id`, skipping notifications;
    /// panics on an error response, on a stdout line that is not JSON, or after
    /// `within`.
    pub async fn response(&mut self, id: u64, within: std::time::Duration) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.stdout.next_line()).await {
                Err(_) => panic!(
                    "no response to request {id} within {within:?}:\n{}",
                    self.log()
                ),
                Ok(Ok(Some(line))) => line,
                Ok(other) => panic!("stdout closed ({other:?}):\n{}", self.log()),
            };
            let message: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
            if message["id"] != serde_json::json!(id) {
                continue;
            }
            assert!(
                message.get("error").is_none(),
                "request {id} failed: {message}"
            );
            return message["result"].clone();
        }
    }

    /// A request and its result.
    pub async fn request(
        &mut self,
        method: &str,
        params: serde_json::Value,
        within: std::time::Duration,
    ) -> serde_json::Value {
        let id = self.start_request(method, params).await;
        self.response(id, within).await
    }

    /// The MCP handshake: `initialize`, then `notifications/initialized`.
    pub async fn initialize(&mut self, client: &str) -> serde_json::Value {
        let params = serde_json::json!({"protocolVersion":"2025-11-25","capabilities":{},
            "clientInfo":{"name":client,"version":"1"}});
        let result = self
            .request("initialize", params, std::time::Duration::from_secs(10))
            .await;
        self.send(&serde_json::json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        result
    }

    /// Starts a `get_user_request` call for `agent`; returns the request id.
    pub async fn start_get_user_request(&mut self, agent: &str) -> u64 {
        let params = serde_json::json!({"name":"get_user_request","arguments":{"agent_id":agent}});
        self.start_request("tools/call", params).await
    }

    /// The structured result of the `get_user_request` call `id`.
    pub async fn tool_result(&mut self, id: u64, within: std::time::Duration) -> serde_json::Value {
        let result = self.response(id, within).await;
        assert_eq!(result["isError"], serde_json::json!(false), "{result}");
        result["structuredContent"].clone()
    }

    /// Closes its stdin, which ends an MCP session over stdio.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for it to exit; panics (and the drop kills it) after `within`.
    pub async fn wait_exit(&mut self, within: std::time::Duration) -> std::process::ExitStatus {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.expect("wait for local-mcp"),
            Err(_) => panic!("local-mcp did not exit within {within:?}:\n{}", self.log()),
        }
    }
}

/// A process's resident memory in KiB, from `/proc/PID/status` (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A process's peak resident memory in KiB (`VmHWM` in `/proc/PID/status`).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// How many files (sockets included) a process holds open.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Whether the long versions of the soak, fault and fuzz runs were asked for
/// (`LOCAL_MCP_LONG_TESTS=1`, set by `bash .ci/run --long`); CI runs the quick ones.
pub fn long_tests() -> bool {
    std::env::var("LOCAL_MCP_LONG_TESTS").is_ok_and(|v| v == "1")
}

/// `quick` normally, `long` when [`long_tests`] is on.
pub fn quick_or_long<T>(quick: T, long: T) -> T {
    if long_tests() { long } else { quick }
}

// ---------------------------------------------------------------------------
// Fault tests: talking to a process that may be killed at any moment.
// ---------------------------------------------------------------------------

impl Proc {
    /// The whole response message (`result` or `error`) to request `id`, skipping
    /// other lines; `None` once its stdout closes, as when the process was killed.
    /// Panics after `within`.
    pub async fn response_or_exit(
        &mut self,
        id: u64,
        within: std::time::Duration,
    ) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.stdout.next_line()).await {
                Err(_) => panic!(
                    "no response to request {id} within {within:?}:\n{}",
                    self.log()
                ),
                Ok(Ok(Some(line))) => line,
                Ok(_) => return None,
            };
            let message: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
            if message["id"] == serde_json::json!(id) {
                return Some(message);
            }
        }
    }

    /// Sends a request like [`Proc::start_request`]; `None` when its stdin is
    /// closed, as when the process was killed.
    pub async fn try_start_request(
        &mut self,
        method: &str,
        params: serde_json::Value,
    ) -> Option<u64> {
        use tokio::io::AsyncWriteExt;
        let id = self.next_id;
        self.next_id += 1;
        let message = serde_json::json!({"jsonrpc":"2.0","id":id,"method":method,"params":params});
        let mut line = message.to_string();
        line.push('\n');
        let stdin = self.stdin.as_mut()?;
        stdin.write_all(line.as_bytes()).await.ok()?;
        stdin.flush().await.ok()?;
        Some(id)
    }
}

impl Serve {
    /// The server's process id, for reading its memory and open files in `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("still running").id()
    }
}
