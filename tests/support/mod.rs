//! Fixtures shared by the integration tests: temporary databases and child
//! processes that are cleaned up when they go out of scope.

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
pub fn local_mcp(db: &Path) -> Command {
    let mut cmd = Command::new(local_mcp_bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DB_PATH", db)
        .env("LOG_LEVEL", "info,local_mcp=debug,mcp_adapter=debug")
        .env("DEFAULT_WAIT_SECONDS", "10");
    cmd
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
                if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    if let (Some(tx), Ok(port)) = (tx.take(), port.parse::<u16>()) {
                        let _ = tx.send(port);
                    }
                }
                let mut log = sink
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                log.push_str(&line);
                log.push('\n');
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
