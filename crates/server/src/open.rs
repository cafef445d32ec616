//! Opens the queue a command works on: the SQLite (or PostgreSQL) store behind
//! the service, with the configured defaults and audit trail; and the watcher and
//! drain every server mode runs around it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use queue_core::{Service, ServiceOptions, Store};
use queue_store::{BlockingPool, PgOptions, PgStore, SqliteStore, StoreOptions};

use audit_log::{AuditContent, AuditLog};

use crate::config::Config;

/// The queue service over the configured database. Its audit lines name `source`,
/// the command that made the change (`serve`, `stdio`, `cli`).
pub fn open_service(config: &Config, source: &'static str) -> anyhow::Result<Service> {
    let db = config.database();
    tracing::debug!(%db, "opening the database");
    let store: Arc<dyn Store> = match &config.db_url {
        Some(url) => Arc::new(
            PgStore::open(url, PgOptions::default())
                .context("could not open the PostgreSQL database")?,
        ),
        None => Arc::new(
            SqliteStore::open(&config.db_path, StoreOptions::default())
                .with_context(|| format!("could not open the database {db}"))?,
        ),
    };
    tracing::debug!(%db, "database ready, migrations applied");
    tracing::info!(
        %db,
        audit = %config.audit.describe(),
        audit_content = match config.audit.content {
            AuditContent::Hash => "hash",
            AuditContent::Full => "full",
        },
        "queue opened"
    );
    let mut builder = Service::builder(store)
        .offload(Arc::new(BlockingPool))
        .options(ServiceOptions {
            defaults: config.defaults.clone(),
            ..ServiceOptions::default()
        });
    if let Some(audit) = &config.audit.path {
        builder = builder.audit(Arc::new(AuditLog::new(
            audit.clone(),
            source,
            config.audit.content,
        )));
    }
    builder
        .build()
        .with_context(|| format!("could not read the database {db}"))
}

/// Publishes changes and picks up other processes' changes until shutdown.
pub fn spawn_watch(service: &Service) -> tokio::task::JoinHandle<()> {
    let service = service.clone();
    tokio::spawn(async move { service.watch().await })
}

/// Lets calls that are ending finish their clean-up (a claim being undone, an
/// agent's end of call) before the runtime stops, for at most `limit`.
pub async fn drain(service: &Service, limit: Duration) {
    if tokio::time::timeout(limit, service.drained())
        .await
        .is_err()
    {
        tracing::warn!("shutting down with store work still in progress");
    }
}
