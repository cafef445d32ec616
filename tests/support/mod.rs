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
