//! The server started in the test's own process on a free loopback port: no
//! child to spawn, no port to read from a log, and the service at hand.

use std::path::Path;

use local_mcp_server::{AuditConfig, Config, Server};
use queue_core::Service;

use crate::TempDb;

/// A `local-mcp serve` equivalent running in this process on `127.0.0.1:0`,
/// over its own temporary database unless given one. Call [`TestServer::stop`]
/// to see it stop as `serve` does on SIGTERM; dropped, it is torn down with the
/// test's runtime.
pub struct TestServer {
    server: Server,
    config: Config,
    _db: Option<TempDb>,
}

impl TestServer {
    /// What the spawned binary would use on `db` with no flags: the audit trail
    /// next to the database, loopback, stateless MCP, no token.
    pub fn config(db: &Path) -> Config {
        let mut config = Config::new(db);
        config.audit = AuditConfig {
            path: Some(db.parent().unwrap_or(Path::new("")).join("audit.jsonl")),
            content: audit_log::AuditContent::Hash,
        };
        config
    }

    /// Serves a fresh temporary database with the binary's defaults.
    pub async fn start() -> TestServer {
        Self::start_changed(|_| {}).await
    }

    /// Serves a fresh temporary database with the binary's defaults as `change`
    /// adjusts them.
    pub async fn start_changed(change: impl FnOnce(&mut Config)) -> TestServer {
        let db = TempDb::new();
        let mut server = Self::start_on(db.path(), change).await;
        server._db = Some(db);
        server
    }

    /// Serves `db` with the binary's defaults as `change` adjusts them, the usual
    /// start of a test that needs one setting other than the default.
    pub async fn start_on(db: &Path, change: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Self::config(db);
        change(&mut config);
        Self::start_with(config).await
    }

    /// Serves `config` on a free loopback port (its host and port are replaced).
    pub async fn start_with(mut config: Config) -> TestServer {
        config.http.host = "127.0.0.1".to_owned();
        config.http.port = 0;
        let listener = local_mcp_server::bind(&config).expect("bind 127.0.0.1:0");
        let server = Server::start(&config, listener)
            .await
            .unwrap_or_else(|e| panic!("the server did not start: {e:#}"));
        config.http.port = server.addr().port();
        TestServer {
            server,
            config,
            _db: None,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.server.addr().port()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The configuration it runs with (its real port filled in).
    pub fn config_used(&self) -> &Config {
        &self.config
    }

    /// The database file it serves.
    pub fn db_path(&self) -> &Path {
        &self.config.db_path
    }

    /// The queue it serves.
    pub fn service(&self) -> &Service {
        self.server.service()
    }

    /// Stops it as SIGTERM stops `serve`: waiting calls answer with nothing
    /// consumed, event streams end, connections close.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}
