//! Temporary databases: a SQLite file in its own folder, and a throwaway
//! PostgreSQL database on the test server.

use std::path::{Path, PathBuf};
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
