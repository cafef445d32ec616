//! The PostgreSQL implementation of queue-core's [`Store`] port, for a queue that
//! several servers — on one machine or many — share.
//!
//! Each call runs in a transaction of its own on a pooled connection; writers run
//! side by side and lock rows in one fixed order (see `ops`), a claim taking the
//! first pending instruction no other writer holds (`FOR UPDATE SKIP LOCKED`).
//! Every mutation writes its events in its transaction, numbered in commit order,
//! and sends `NOTIFY`, which a listener thread of every store turns into a push
//! to the service ([`Store::notify_changes`]): no polling.

mod listen;
mod ops;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use queue_core::{
    Agent, CallTicket, Caller, ChangeHook, Claim, Content, Counts, Event, Instruction,
    InstructionId, Listing, NewInstruction, Overview, Page, QueueCounts, QueueError, QueueName,
    ResultType, SettingsPatch, StatusFilter, Store, StoreError, StoredSettings, Timestamp,
};

use crate::error::OpError;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations-pg");

/// The `LISTEN`/`NOTIFY` channel; PostgreSQL keeps channels per database.
const CHANNEL: &str = "local_mcp_events";

/// The session advisory lock held while a store brings the schema up to date, so
/// servers starting together migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6c6d_6370_6d69;

/// How to open a [`PgStore`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// How long a call waits for a row another server's transaction holds before
    /// failing with [`StoreError::Busy`].
    pub lock_timeout: Duration,
    /// Connections kept open for reuse.
    pub max_idle: usize,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            lock_timeout: Duration::from_secs(5),
            max_idle: 16,
        }
    }
}

/// The queue in a PostgreSQL database, shared safely by threads, processes and
/// machines.
pub struct PgStore {
    url: String,
    options: PgOptions,
    idle: crate::idle::Idle<PgConnection>,
    listener: listen::Listener,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &redacted(&self.url))
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`,
    /// or libpq's `key=value` form) and brings its schema up to date. A database
    /// migrated by a newer version is refused and left untouched.
    pub fn open(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let mut conn = connect(url, &options)?;
        migrate(&mut conn, url)?;
        Ok(PgStore {
            url: url.to_owned(),
            idle: crate::idle::Idle::new(vec![conn], options.max_idle),
            options,
            listener: listen::Listener::default(),
        })
    }

    /// The database's address with any password masked, for messages.
    pub fn describe(&self) -> String {
        redacted(&self.url)
    }

    /// `url` with any password masked, for messages about a database not opened.
    pub fn describe_url(url: &str) -> String {
        redacted(url)
    }

    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut PgConnection) -> Result<T, OpError>,
    ) -> Result<T, QueueError> {
        let mut conn = self.idle.take(|| connect(&self.url, &self.options))?;
        let out = f(&mut conn);
        // A database failure may have broken the connection: a fresh one is cheap
        // next to finding out.
        if !matches!(out, Err(OpError::Db(_))) {
            self.idle.give_back(conn);
        }
        out.map_err(|e| match e {
            OpError::Queue(q) => q,
            OpError::Db(d) => pg_error(d).into(),
        })
    }

    /// A read in one snapshot, so a page and its total agree.
    fn read<T>(
        &self,
        f: impl FnOnce(&mut PgConnection) -> Result<T, OpError>,
    ) -> Result<T, QueueError> {
        self.with_conn(|c| c.build_transaction().read_only().repeatable_read().run(f))
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut PgConnection) -> Result<T, OpError>,
    ) -> Result<T, QueueError> {
        self.with_conn(|c| {
            ops::discard_events();
            let out = c.transaction(|c| {
                let out = f(c)?;
                ops::flush_events(c)?;
                Ok(out)
            });
            ops::discard_events();
            out
        })
    }
}

impl Store for PgStore {
    store_calls!();

    fn change_token(&self) -> Result<u64, StoreError> {
        // The event counter moves with every committed change, of any server.
        self.with_conn(ops::last_event_seq).map_err(|e| match e {
            QueueError::Store(s) => s,
            other => StoreError::Other(other.to_string()),
        })
    }

    fn overview(&self) -> Result<Overview, QueueError> {
        self.read(|c| {
            Ok(Overview {
                agents: ops::agents(c)?,
                queues: ops::queues(c)?,
                settings: ops::stored_settings(c)?,
            })
        })
    }

    fn notify_changes(&self, hook: ChangeHook) -> bool {
        self.listener.add(&self.url, CHANNEL, hook);
        true
    }
}

fn connect(url: &str, options: &PgOptions) -> Result<PgConnection, StoreError> {
    let mut conn = PgConnection::establish(url).map_err(|e| {
        StoreError::Other(format!(
            "cannot connect to PostgreSQL at {}: {}",
            redacted(url),
            e.to_string().trim()
        ))
    })?;
    conn.batch_execute(&format!(
        "SET lock_timeout = {}; SET application_name = 'local-mcp';",
        options.lock_timeout.as_millis().max(1)
    ))
    .map_err(pg_error)?;
    Ok(conn)
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// Refuses a schema newer than this build knows, then applies what is missing,
/// one server at a time.
fn migrate(conn: &mut PgConnection, url: &str) -> Result<(), StoreError> {
    let lock = |conn: &mut PgConnection, sql: &str| {
        diesel::sql_query(sql)
            .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
            .execute(conn)
            .map_err(pg_error)
    };
    lock(conn, "SELECT pg_advisory_lock($1)")?;
    let out = migrate_locked(conn, url);
    let unlocked = lock(conn, "SELECT pg_advisory_unlock($1)");
    out.and(unlocked.map(drop))
}

fn migrate_locked(conn: &mut PgConnection, url: &str) -> Result<(), StoreError> {
    let applied: Vec<VersionRow> = diesel::sql_query(
        "SELECT version FROM __diesel_schema_migrations \
         WHERE to_regclass('__diesel_schema_migrations') IS NOT NULL",
    )
    .load(conn)
    .or_else(|e| match &e {
        // No table yet: a new database.
        diesel::result::Error::DatabaseError(_, info)
            if info.message().contains("does not exist") =>
        {
            Ok(Vec::new())
        }
        _ => Err(e),
    })
    .map_err(pg_error)?;
    let known = crate::migration_versions::<diesel::pg::Pg>(&MIGRATIONS)?;
    if let Some(unknown) = crate::newest_unknown(applied.iter().map(|r| &r.version), &known) {
        return Err(StoreError::NewerSchema {
            path: redacted(url),
            found: unknown,
            known: known.iter().max().cloned().unwrap_or_default(),
        });
    }
    conn.run_pending_migrations(MIGRATIONS)
        .map_err(|e| StoreError::Other(format!("migrating {}: {e}", redacted(url))))?;
    Ok(())
}

/// Turns a PostgreSQL failure into a [`StoreError`] by what an operator can do.
fn pg_error(e: diesel::result::Error) -> StoreError {
    let message = match &e {
        diesel::result::Error::DatabaseError(_, info) => info.message().to_owned(),
        other => other.to_string(),
    };
    let m = message.to_ascii_lowercase();
    if m.contains("lock timeout")
        || m.contains("deadlock detected")
        || m.contains("could not serialize")
    {
        StoreError::Busy
    } else if m.contains("read-only transaction") || m.contains("permission denied") {
        StoreError::ReadOnly(format!("PostgreSQL: {message}"))
    } else if m.contains("no space left") || m.contains("could not extend file") {
        StoreError::Full
    } else {
        StoreError::Other(format!("PostgreSQL: {message}"))
    }
}

/// `url` with its password, if any, masked.
fn redacted(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some((userinfo, host)) = authority.rsplit_once('@')
            && let Some((user, _)) = userinfo.split_once(':')
        {
            return format!("{scheme}://{user}:***@{host}{tail}");
        }
        return url.to_owned();
    }
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redacted("postgres://me:s3cret@db.local:5432/queue"),
            "postgres://me:***@db.local:5432/queue"
        );
        assert_eq!(redacted("postgres://me@db/queue"), "postgres://me@db/queue");
        assert_eq!(
            redacted("host=db user=me password=s3cret dbname=queue"),
            "host=db user=me password=*** dbname=queue"
        );
    }
}
