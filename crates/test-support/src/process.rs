//! `local-mcp` processes: the binary next to the test binary, a `serve` child on
//! a free port, a stdio child driven over JSON-RPC, and what `/proc` says of them.
//! Only tests that need a process of their own (signals, `kill -9`, logs, two
//! processes on one database, stdio) use these; the rest start a
//! [`crate::TestServer`] in their own process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;

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
        let Some(message) = self.response_or_exit(id, within).await else {
            panic!("stdout closed before the response to {id}:\n{}", self.log())
        };
        assert!(
            message.get("error").is_none(),
            "request {id} failed: {message}"
        );
        message["result"].clone()
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
