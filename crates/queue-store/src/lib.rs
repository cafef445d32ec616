//! The SQLite implementation of queue-core's [`Store`] port.
//!
//! One file holds the queue for every process that opens it. Writes go to one
//! writer thread per process, which commits whatever arrived together in a single
//! `BEGIN IMMEDIATE` transaction (group commit: one fsync for many callers), each
//! operation inside its own savepoint so a refused operation does not spoil the
//! batch; a caller gets its answer only after the commit. Reads use a small pool of
//! connections, which WAL lets run beside the writer. Every mutation appends to the
//! `events` table in its transaction; other processes notice through
//! `PRAGMA data_version` ([`Store::change_token`]) and read the new events.
#![deny(missing_docs)]

mod error;
mod idle;
#[macro_use]
mod queue_sql;
mod ops;
mod rows;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use queue_core::{
    Agent, CallTicket, Caller, Claim, Content, Counts, Event, Instruction, InstructionId, Listing,
    NewInstruction, Offload, Overview, Page, QueueCounts, QueueError, QueueName, ResultType,
    SettingsPatch, StatusFilter, Store, StoreError, StoredSettings, Timestamp,
};

use crate::error::{OpError, classify, db_error};
use crate::writer::Writer;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How durable a commit is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    /// `synchronous=FULL`: a commit survives power loss (the default).
    Full,
    /// `synchronous=NORMAL`: a commit survives a process crash, not a power loss.
    Normal,
}

/// How to open a [`SqliteStore`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// How long to wait for another process's lock before failing with
    /// [`StoreError::Busy`].
    pub busy_timeout: Duration,
    /// Commit durability.
    pub synchronous: Synchronous,
    /// Most operations committed together in one transaction.
    pub max_batch: usize,
    /// Read connections kept open for reuse.
    pub max_idle_readers: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Full,
            max_batch: 512,
            max_idle_readers: 8,
        }
    }
}

/// The queue in one SQLite file, shared safely by threads and processes.
pub struct SqliteStore {
    path: PathBuf,
    options: StoreOptions,
    writer: Writer,
    readers: idle::Idle<SqliteConnection>,
    /// A connection used only to read `PRAGMA data_version`, which changes when any
    /// other connection — in this process or another — commits.
    watcher: Arc<Mutex<SqliteConnection>>,
    /// The last [`Store::overview`] and the change token read just before it: while
    /// the token stays the same, nothing was committed since, by any process.
    overview: Mutex<Option<(u64, Overview)>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to
    /// date. A file written by a newer version is refused and left untouched, and
    /// so is a database on a disk with no room left ([`StoreError::Full`]).
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let store = Self::open_here(path, options).map_err(|e| error::refine(e, path))?;
        error::check_room(path)?;
        Ok(store)
    }

    fn open_here(path: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                let msg = format!("cannot create the folder {}: {e}", dir.display());
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    StoreError::ReadOnly(msg)
                } else {
                    StoreError::Other(msg)
                }
            })?;
        }
        let mut conn = connect(&path, &options)?;
        check_schema(&mut conn, &path)?;
        let sync = match options.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.batch_execute(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;"
        ))
        .map_err(db_error)?;
        conn.run_pending_migrations(MIGRATIONS)
            .map_err(|e| classify(&format!("migrating {}: {e}", path.display())))?;
        // A database whose -wal and -shm files were left behind (a process that
        // exited without closing it) opens read-only on a read-only disk, and with
        // nothing to migrate nothing above has written: ask the file itself, so
        // such a disk is refused at start like any other, not at the first add.
        if let Err(e) = std::fs::OpenOptions::new().append(true).open(&path) {
            let msg = format!("cannot write {}: {e}", path.display());
            return Err(match e.kind() {
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => {
                    StoreError::ReadOnly(msg)
                }
                _ => StoreError::Other(msg),
            });
        }
        let watcher = connect(&path, &options)?;
        conn.batch_execute("PRAGMA busy_timeout = 0;")
            .map_err(db_error)?;
        let writer = Writer::start(conn, options.max_batch, options.busy_timeout)
            .map_err(|e| StoreError::Other(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            path,
            readers: idle::Idle::new(Vec::new(), options.max_idle_readers),
            options,
            writer,
            watcher: Arc::new(Mutex::new(watcher)),
            overview: Mutex::new(None),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `PRAGMA integrity_check`; `Ok(())` when the database is sound.
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let rows: Vec<TextValue> = self
            .read(|c| Ok(diesel::sql_query("PRAGMA integrity_check").load::<TextValue>(c)?))
            .map_err(store_error)?;
        match rows.as_slice() {
            [one] if one.integrity_check == "ok" => Ok(()),
            _ => Err(StoreError::Corrupt(
                rows.into_iter()
                    .map(|r| r.integrity_check)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
        }
    }

    /// Runs `f` while holding the database's write lock, as a long transaction in
    /// another program would: every other writer, in any process, waits and then
    /// fails with [`StoreError::Busy`]. For fault drills and tests; `f` should not
    /// touch this store.
    pub fn with_write_lock<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        self.write(move |_| Ok(f())).map_err(store_error)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, OpError>,
    ) -> Result<T, QueueError> {
        let mut conn = self.readers.take(|| connect(&self.path, &self.options))?;
        // A read transaction gives multi-statement reads (a page and its total) one
        // consistent snapshot.
        let out = conn.transaction(f);
        self.readers.give_back(conn);
        out.map_err(QueueError::from)
    }

    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, OpError> + Send + 'static,
    ) -> Result<T, QueueError> {
        self.writer.submit(f)
    }
}

/// The newest of the `applied` migrations this build does not know: the mark of
/// a database written by a newer build.
pub(crate) fn newest_unknown<'a>(
    applied: impl Iterator<Item = &'a String>,
    known: &[String],
) -> Option<String> {
    applied.filter(|v| !known.contains(v)).max().cloned()
}

/// The versions of the migrations this build carries, to tell a database written
/// by a newer build (it has versions this one does not know).
pub(crate) fn migration_versions<DB: diesel::backend::Backend>(
    migrations: &impl diesel::migration::MigrationSource<DB>,
) -> Result<Vec<String>, StoreError> {
    Ok(migrations
        .migrations()
        .map_err(|e| StoreError::Other(e.to_string()))?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect())
}

fn store_error(e: QueueError) -> StoreError {
    match e {
        QueueError::Store(s) => s,
        other => StoreError::Other(other.to_string()),
    }
}

diesel::table! {
    /// SQLite's `pragma_data_version` table-valued function: one row, whose value
    /// changes when another connection (of any process) has committed.
    pragma_data_version (data_version) {
        /// The connection's view of the database's version.
        data_version -> BigInt,
    }
}

#[derive(QueryableByName)]
struct TextValue {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

#[derive(QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

fn connect(path: &Path, options: &StoreOptions) -> Result<SqliteConnection, StoreError> {
    let text = path
        .to_str()
        .ok_or_else(|| StoreError::Other(format!("the path {} is not UTF-8", path.display())))?;
    let mut conn = SqliteConnection::establish(text)
        .map_err(|e| classify(&format!("opening {}: {e}", path.display())))?;
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {};",
        options.busy_timeout.as_millis()
    ))
    .map_err(db_error)?;
    Ok(conn)
}

/// Refuses a database whose applied migrations include one this build does not know,
/// before anything writes to the file.
fn check_schema(conn: &mut SqliteConnection, path: &Path) -> Result<(), StoreError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let has_table = diesel::sql_query(
        "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '__diesel_schema_migrations'",
    )
    .get_result::<Count>(conn)
    .map_err(|e| match db_error(e) {
        StoreError::Corrupt(m) => StoreError::Corrupt(format!("{}: {m}", path.display())),
        other => other,
    })?;
    if has_table.n == 0 {
        return Ok(());
    }
    let applied: Vec<VersionRow> =
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
            .load(conn)
            .map_err(db_error)?;
    let known = migration_versions::<diesel::sqlite::Sqlite>(&MIGRATIONS)?;
    let newest_known = known.iter().max().cloned().unwrap_or_default();
    if let Some(unknown) = newest_unknown(applied.iter().map(|r| &r.version), &known) {
        return Err(StoreError::NewerSchema {
            path: path.display().to_string(),
            found: unknown,
            known: newest_known,
        });
    }
    Ok(())
}

/// The [`Store`] methods [`SqliteStore`] and [`TxStore`] share: each names the
/// `ops` function it is and whether it reads or writes, and the type's own `read`
/// and `write` say where that runs.
macro_rules! store_calls {
    () => {
        fn add(&self, new: NewInstruction, now: Timestamp) -> Result<Instruction, QueueError> {
            self.write(move |c| ops::add(c, new, now))
        }

        fn get(&self, id: InstructionId) -> Result<Option<Instruction>, QueueError> {
            self.read(|c| ops::get(c, id))
        }

        fn edit(
            &self,
            id: InstructionId,
            content: Content,
            now: Timestamp,
        ) -> Result<Instruction, QueueError> {
            self.write(move |c| ops::edit(c, id, content, now))
        }

        fn delete(&self, id: InstructionId, now: Timestamp) -> Result<Instruction, QueueError> {
            self.write(move |c| ops::delete(c, id, now))
        }

        fn requeue(
            &self,
            id: InstructionId,
            new_id: InstructionId,
            now: Timestamp,
        ) -> Result<Instruction, QueueError> {
            self.write(move |c| ops::requeue(c, id, new_id, now))
        }

        fn reorder(
            &self,
            queue: &QueueName,
            ids: &[InstructionId],
            now: Timestamp,
        ) -> Result<Vec<Instruction>, QueueError> {
            let (queue, ids) = (queue.clone(), ids.to_vec());
            self.write(move |c| ops::reorder(c, &queue, &ids, now))
        }

        fn list(
            &self,
            queue: &QueueName,
            filter: StatusFilter,
            page: Page,
        ) -> Result<Listing, QueueError> {
            self.read(|c| ops::list(c, queue, filter, page))
        }

        fn list_each(
            &self,
            queue: &QueueName,
            filter: StatusFilter,
            page: Page,
            each: &mut dyn FnMut(&Instruction),
        ) -> Result<u64, QueueError> {
            self.read(|c| ops::list_each(c, queue, filter, page, &mut |item| each(&item)))
        }

        fn counts(&self, queue: &QueueName) -> Result<Counts, QueueError> {
            self.read(|c| ops::counts(c, queue))
        }

        fn queues(&self) -> Result<Vec<QueueCounts>, QueueError> {
            self.read(ops::queues)
        }

        fn begin_call(
            &self,
            caller: &Caller,
            now: Timestamp,
            until: Timestamp,
        ) -> Result<CallTicket, QueueError> {
            let caller = caller.clone();
            self.write(move |c| ops::begin_call(c, &caller, now, until))
        }

        fn claim(
            &self,
            caller: &Caller,
            generation: u64,
            now: Timestamp,
        ) -> Result<Claim, QueueError> {
            let caller = caller.clone();
            self.write(move |c| ops::claim(c, &caller, generation, now))
        }

        fn claim_and_end(
            &self,
            caller: &Caller,
            generation: u64,
            now: Timestamp,
        ) -> Result<Claim, QueueError> {
            let caller = caller.clone();
            self.write(move |c| ops::claim_and_end(c, &caller, generation, now))
        }

        fn begin_and_claim(
            &self,
            caller: &Caller,
            now: Timestamp,
            until: Timestamp,
        ) -> Result<(CallTicket, Result<Claim, QueueError>), QueueError> {
            let caller = caller.clone();
            // One transaction: if the claim fails, the start is rolled back with it.
            self.write(move |c| {
                let ticket = ops::begin_call(c, &caller, now, until)?;
                let claim = ops::claim_and_end(c, &caller, ticket.generation, now)?;
                Ok((ticket, Ok(claim)))
            })
        }

        fn end_call(
            &self,
            caller: &Caller,
            generation: u64,
            result: ResultType,
            now: Timestamp,
        ) -> Result<Agent, QueueError> {
            let caller = caller.clone();
            self.write(move |c| ops::end_call(c, &caller, generation, result, now))
        }

        fn unclaim(&self, id: InstructionId, now: Timestamp) -> Result<Instruction, QueueError> {
            self.write(move |c| ops::unclaim(c, id, now))
        }

        fn agents(&self) -> Result<Vec<Agent>, QueueError> {
            self.read(ops::agents)
        }

        fn settings(&self) -> Result<StoredSettings, QueueError> {
            self.read(ops::stored_settings)
        }

        fn update_settings(
            &self,
            patch: &SettingsPatch,
            now: Timestamp,
        ) -> Result<StoredSettings, QueueError> {
            let patch = patch.clone();
            self.write(move |c| ops::update_settings(c, &patch, now))
        }

        fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, QueueError> {
            self.read(|c| ops::events_after(c, after, limit))
        }

        fn last_event_seq(&self) -> Result<u64, QueueError> {
            self.read(ops::last_event_seq)
        }
    };
}

#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "postgres")]
pub use pg::{PgOptions, PgStore};

impl Store for SqliteStore {
    store_calls!();

    fn change_token(&self) -> Result<u64, StoreError> {
        data_version(&self.watcher)
    }

    fn overview(&self) -> Result<Overview, QueueError> {
        // Read before the data, so a commit landing in between moves the token
        // past the one cached and the next call reads again.
        let token = self.change_token()?;
        if let Some((cached, overview)) = &*self.overview.lock().unwrap_or_else(|e| e.into_inner())
            && *cached == token
        {
            return Ok(overview.clone());
        }
        let overview = self.read(|c| {
            Ok(Overview {
                agents: ops::agents(c)?,
                queues: ops::queues(c)?,
                settings: ops::stored_settings(c)?,
            })
        })?;
        *self.overview.lock().unwrap_or_else(|e| e.into_inner()) = Some((token, overview.clone()));
        Ok(overview)
    }

    fn overview_at_once(&self) -> Option<Overview> {
        // `try_lock` throughout: a lock someone holds means waiting, and waiting is
        // what the caller asked not to do. Reading `data_version` costs a few
        // microseconds — the WAL's shared-memory index — and never waits on a lock.
        let version = {
            let mut conn = self.watcher.try_lock().ok()?;
            data_version_on(&mut conn).ok()?
        };
        match &*self.overview.try_lock().ok()? {
            Some((cached, overview)) if *cached == version => Some(overview.clone()),
            _ => None,
        }
    }

    /// Queues the write for the writer thread, which makes its calls inside the
    /// batch it commits next and reports it done after that commit.
    fn queue_write(
        &self,
        write: Box<dyn queue_core::Write>,
    ) -> Result<(), Box<dyn queue_core::Write>> {
        self.writer.queue(write, Arc::clone(&self.watcher));
        Ok(())
    }
}

/// The store a queued [`queue_core::Write`] makes its calls on: the writer
/// thread's connection, inside the transaction of the batch being committed. Each
/// call is a savepoint of its own, so a refused one leaves the rest of the batch
/// alone; nothing is durable until the batch commits.
pub(crate) struct TxStore<'c> {
    conn: Mutex<&'c mut SqliteConnection>,
    watcher: Arc<Mutex<SqliteConnection>>,
}

impl<'c> TxStore<'c> {
    pub(crate) fn new(
        conn: &'c mut SqliteConnection,
        watcher: Arc<Mutex<SqliteConnection>>,
    ) -> Self {
        TxStore {
            conn: Mutex::new(conn),
            watcher,
        }
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, OpError>,
    ) -> Result<T, QueueError> {
        // The batch's transaction already gives a read one snapshot, and a read has
        // nothing to roll back: no savepoint (each costs two statements parsed).
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).map_err(QueueError::from)
    }

    fn write<T>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, OpError>,
    ) -> Result<T, QueueError> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.transaction(f).map_err(QueueError::from)
    }
}

impl Store for TxStore<'_> {
    store_calls!();

    fn change_token(&self) -> Result<u64, StoreError> {
        data_version(&self.watcher)
    }
}

/// Reads `PRAGMA data_version` on `watcher`: the change token.
fn data_version(watcher: &Mutex<SqliteConnection>) -> Result<u64, StoreError> {
    data_version_on(&mut watcher.lock().unwrap_or_else(|e| e.into_inner()))
}

fn data_version_on(conn: &mut SqliteConnection) -> Result<u64, StoreError> {
    // Through the query builder rather than `sql_query`, so that diesel keeps the
    // statement prepared: this runs for every status request and every poll.
    pragma_data_version::table
        .select(pragma_data_version::data_version)
        .get_result::<i64>(conn)
        .map(|v| u64::try_from(v).unwrap_or(0))
        .map_err(db_error)
}

/// Runs the service's store calls on tokio's blocking pool, so SQLite never blocks
/// an async worker thread. Outside a tokio runtime it runs them inline.
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockingPool;

impl Offload for BlockingPool {
    fn run(&self, job: Box<dyn FnOnce() + Send>) {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(job);
            }
            Err(_) => job(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use queue_core::{Content, InstructionId};

    fn fresh() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/folder/q.sqlite3");
        (dir, path)
    }

    #[test]
    fn migrates_an_empty_file_and_creates_missing_folders() {
        let (_dir, path) = fresh();
        let store = SqliteStore::open(&path, StoreOptions::default()).unwrap();
        assert!(path.exists());
        assert_eq!(
            store.counts(&QueueName::default()).unwrap(),
            Counts::default()
        );
        store.integrity_check().unwrap();
        #[derive(QueryableByName)]
        struct Mode {
            #[diesel(sql_type = diesel::sql_types::Text)]
            journal_mode: String,
        }
        let mode = store
            .read(|c| Ok(diesel::sql_query("PRAGMA journal_mode").get_result::<Mode>(c)?))
            .unwrap();
        assert_eq!(mode.journal_mode, "wal");
        drop(store);
        // Opening again applies nothing new and keeps working.
        let store = SqliteStore::open(&path, StoreOptions::default()).unwrap();
        assert_eq!(store.last_event_seq().unwrap(), 0);
    }

    #[test]
    fn refuses_a_newer_schema_and_leaves_the_file_untouched() {
        let (_dir, path) = fresh();
        {
            let store = SqliteStore::open(&path, StoreOptions::default()).unwrap();
            store
                .add(
                    NewInstruction::new(
                        InstructionId::from_u128(1),
                        Content::parse("keep me").unwrap(),
                    ),
                    Timestamp::from_micros(1),
                )
                .unwrap();
            store
                .write(|c| {
                    diesel::sql_query(
                        "INSERT INTO __diesel_schema_migrations (version) VALUES ('29990101000000')",
                    )
                    .execute(c)?;
                    Ok(())
                })
                .unwrap();
        }
        // The last connection to close folded the WAL into the main file, so these
        // bytes are the whole state.
        assert!(!path.with_extension("sqlite3-wal").exists());
        let before = std::fs::read(&path).unwrap();
        let err = SqliteStore::open(&path, StoreOptions::default()).unwrap_err();
        let StoreError::NewerSchema { found, known, .. } = &err else {
            panic!("expected NewerSchema, got {err:?}")
        };
        assert_eq!(found, "29990101000000");
        assert_eq!(known, "20261202000003");
        let message = err.to_string();
        assert!(message.contains("newer version of local-mcp"), "{message}");
        assert!(message.contains("left untouched"), "{message}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn the_counts_migration_counts_what_an_older_database_holds() {
        let (_dir, path) = fresh();
        {
            let store = SqliteStore::open(&path, StoreOptions::default()).unwrap();
            for n in 1..=5u128 {
                store
                    .add(
                        NewInstruction::new(
                            InstructionId::from_u128(n),
                            Content::parse(&format!("item {n}")).unwrap(),
                        ),
                        Timestamp::from_micros(1),
                    )
                    .unwrap();
            }
            let agent = queue_core::Caller::from(queue_core::AgentId::parse("a").unwrap());
            for _ in 0..2 {
                let ticket = store
                    .begin_call(&agent, Timestamp::from_micros(2), Timestamp::from_micros(3))
                    .unwrap();
                store
                    .claim(&agent, ticket.generation, Timestamp::from_micros(2))
                    .unwrap();
            }
            // Back to the first schema, as a database from before the counts table.
            roll_back(&store, "2026-12-02-000003_queues");
            roll_back(&store, "2026-11-21-000002_counts");
        }
        let store = SqliteStore::open(&path, StoreOptions::default()).unwrap();
        assert_eq!(
            store.counts(&QueueName::default()).unwrap(),
            Counts {
                pending: 3,
                consumed: 2
            }
        );
        // And the triggers keep them from then on.
        store
            .delete(InstructionId::from_u128(5), Timestamp::from_micros(4))
            .unwrap();
        assert_eq!(store.counts(&QueueName::default()).unwrap().pending, 2);
    }

    /// Undoes the migration in `dir` on `store`'s file, as if this build had
    /// never applied it.
    fn roll_back(store: &SqliteStore, dir: &'static str) {
        let down = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("migrations/{dir}/down.sql")),
        )
        .unwrap();
        let version: String = dir.chars().filter(char::is_ascii_digit).collect();
        store
            .write(move |c| {
                c.batch_execute(&down)?;
                diesel::sql_query(format!(
                    "DELETE FROM __diesel_schema_migrations WHERE version = '{version}'"
                ))
                .execute(c)?;
                Ok(())
            })
            .unwrap();
    }

    /// A database from before named queues: every instruction, agent, event and
    /// count lands on `default`, and the stored events still read.
    #[test]
    fn the_queues_migration_puts_what_was_there_on_default() {
        let (_dir, path) = fresh();
        let agent = queue_core::AgentId::parse("claude-code").unwrap();
        let caller = queue_core::Caller::from(agent.clone());
        let t = Timestamp::from_micros;
        {
            let store = SqliteStore::open(&path, StoreOptions::default()).unwrap();
            for n in 1..=4u128 {
                let text = Content::parse(&format!("item {n}")).unwrap();
                store
                    .add(NewInstruction::new(InstructionId::from_u128(n), text), t(1))
                    .unwrap();
            }
            let ticket = store.begin_call(&caller, t(2), t(3)).unwrap();
            store
                .claim_and_end(&caller, ticket.generation, t(2))
                .unwrap();
            let ids = [3u128, 2, 4].map(InstructionId::from_u128);
            store.reorder(&QueueName::default(), &ids, t(4)).unwrap();
            roll_back(&store, "2026-12-02-000003_queues");
            // Rows as the schema before queues wrote them: events whose payloads
            // have no queue, the reorder as a bare list.
            store
                .write(|c| {
                    c.batch_execute(
                        "UPDATE events SET payload = replace(payload, '\"queue\":\"default\",', '');
                         UPDATE events SET payload = '{\"kind\":\"instruction_reordered\",\"data\":[' ||
                             '\"00000000-0000-0000-0000-000000000003\",' ||
                             '\"00000000-0000-0000-0000-000000000002\",' ||
                             '\"00000000-0000-0000-0000-000000000004\"]}'
                         WHERE kind = 'instruction.reordered';",
                    )?;
                    Ok(())
                })
                .unwrap();
            let payloads: Vec<String> = store
                .read(|c| {
                    Ok(schema::events::table
                        .select(schema::events::payload)
                        .load(c)?)
                })
                .unwrap();
            assert!(
                payloads.iter().all(|p| !p.contains("queue")),
                "{payloads:?}"
            );
        }

        let store = SqliteStore::open(&path, StoreOptions::default()).unwrap();
        let default = QueueName::default();
        let all = store
            .list(&default, StatusFilter::All, Page::default())
            .unwrap();
        let contents: Vec<_> = all.items.iter().map(|i| i.content.as_str()).collect();
        assert_eq!(contents, ["item 1", "item 3", "item 2", "item 4"]);
        assert!(
            all.items
                .iter()
                .all(|i| i.queue.is_default() && i.to.is_none())
        );
        assert_eq!(
            store.counts(&default).unwrap(),
            Counts {
                pending: 3,
                consumed: 1
            }
        );
        let queues = store.queues().unwrap();
        assert_eq!(queues.len(), 1);
        assert_eq!(queues[0].name, default);
        let agents = store.agents().unwrap();
        assert_eq!(agents.len(), 1);
        assert_eq!(
            (agents[0].caller(), agents[0].generation),
            (caller.clone(), 1)
        );
        let events = store.events_after(0, 100).unwrap();
        assert_eq!(
            events.len(),
            4 + 1 + 1 + 1 + 1,
            "four adds, start, claim, end, reorder"
        );
        let Some(queue_core::Change::InstructionReordered(reordered)) =
            events.last().map(|e| &e.change)
        else {
            panic!("the reorder comes last: {events:?}")
        };
        assert_eq!(reordered.queue, default);
        assert_eq!(reordered.ids, [3u128, 2, 4].map(InstructionId::from_u128));
        // The agent keeps its generation: its next call is the second.
        let ticket = store.begin_call(&caller, t(5), t(6)).unwrap();
        assert_eq!(ticket.generation, 2);
        let Claim::Claimed(next) = store.claim(&caller, 2, t(5)).unwrap() else {
            panic!("the head is item 3")
        };
        assert_eq!(next.content.as_str(), "item 3");
        // New queues come and count on their own from now on.
        let web = QueueName::parse("web").unwrap();
        let new = NewInstruction::new(InstructionId::from_u128(9), Content::parse("w").unwrap())
            .on(web.clone());
        store.add(new, t(7)).unwrap();
        assert_eq!(store.counts(&web).unwrap().pending, 1);
        assert_eq!(store.counts(&default).unwrap().pending, 2);
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_clearly() {
        let (_dir, path) = fresh();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            b"this is a text file, not SQLite, and it is long enough",
        )
        .unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = SqliteStore::open(&path, StoreOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert!(err.to_string().contains("not a database"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn sqlite_messages_map_to_actionable_errors() {
        assert_eq!(classify("database is locked"), StoreError::Busy);
        assert_eq!(classify("database or disk is full"), StoreError::Full);
        assert!(matches!(
            classify("attempt to write a readonly database"),
            StoreError::ReadOnly(_)
        ));
        assert!(matches!(
            classify("database disk image is malformed"),
            StoreError::Corrupt(_)
        ));
        assert!(matches!(classify("no such table: x"), StoreError::Other(_)));
    }

    #[test]
    fn the_change_token_moves_on_a_commit_by_another_store_on_the_file() {
        let (_dir, path) = fresh();
        let here = SqliteStore::open(&path, StoreOptions::default()).unwrap();
        let there = SqliteStore::open(&path, StoreOptions::default()).unwrap();
        let before = here.change_token().unwrap();
        assert_eq!(here.change_token().unwrap(), before, "nothing committed");
        assert_eq!(
            here.overview()
                .unwrap()
                .counts(&QueueName::default())
                .pending,
            0
        );
        there
            .add(
                NewInstruction::new(
                    InstructionId::from_u128(1),
                    Content::parse("from elsewhere").unwrap(),
                ),
                Timestamp::from_micros(1),
            )
            .unwrap();
        assert_ne!(here.change_token().unwrap(), before);
        assert_eq!(
            here.overview()
                .unwrap()
                .counts(&QueueName::default())
                .pending,
            1
        );
    }

    #[test]
    fn overview_at_once_answers_only_while_the_cache_is_current() {
        let (_dir, path) = fresh();
        let here = SqliteStore::open(&path, StoreOptions::default()).unwrap();
        let there = SqliteStore::open(&path, StoreOptions::default()).unwrap();
        assert_eq!(here.overview_at_once(), None, "nothing cached yet");
        let read = here.overview().unwrap();
        assert_eq!(here.overview_at_once(), Some(read.clone()));
        for (n, store) in [(1u128, &there), (2, &here)] {
            // A commit by another process or by this one's writer alike.
            store
                .add(
                    NewInstruction::new(
                        InstructionId::from_u128(n),
                        Content::parse("new").unwrap(),
                    ),
                    Timestamp::from_micros(1),
                )
                .unwrap();
            assert_eq!(here.overview_at_once(), None, "stale after commit {n}");
            let fresh = here.overview().unwrap();
            assert_eq!(
                fresh.counts(&QueueName::default()).pending,
                u64::try_from(n).unwrap()
            );
            assert_eq!(here.overview_at_once(), Some(fresh));
        }
        // A lock held elsewhere means no answer rather than a wait.
        let _held = here.watcher.lock().unwrap();
        assert_eq!(here.overview_at_once(), None);
    }

    #[test]
    fn a_queued_write_may_drop_the_last_owner_of_its_store() {
        struct Last {
            store: Option<Arc<SqliteStore>>,
            go: std::sync::mpsc::Receiver<()>,
            done: std::sync::mpsc::Sender<Result<(), StoreError>>,
        }
        impl queue_core::Write for Last {
            fn run(&mut self, store: &dyn Store) {
                // Until the test has let go of the store, so that this write holds
                // the last reference to it.
                self.go.recv().unwrap();
                store
                    .add(
                        NewInstruction::new(
                            InstructionId::from_u128(1),
                            Content::parse("kept").unwrap(),
                        ),
                        Timestamp::from_micros(1),
                    )
                    .unwrap();
            }
            fn done(mut self: Box<Self>, outcome: Result<(), StoreError>) {
                // The store goes away here, on its own writer thread.
                drop(self.store.take());
                let _ = self.done.send(outcome);
            }
        }
        let (_dir, path) = fresh();
        let store = Arc::new(SqliteStore::open(&path, StoreOptions::default()).unwrap());
        let (done, outcome) = std::sync::mpsc::channel();
        let (go, wait) = std::sync::mpsc::channel();
        let write = Last {
            store: Some(Arc::clone(&store)),
            go: wait,
            done,
        };
        assert!(store.queue_write(Box::new(write)).is_ok());
        drop(store);
        go.send(()).unwrap();
        assert_eq!(
            outcome.recv_timeout(Duration::from_secs(30)),
            Ok(Ok(())),
            "the writer thread finished the write after dropping its store"
        );
        let reopened = SqliteStore::open(&path, StoreOptions::default()).unwrap();
        assert_eq!(reopened.counts(&QueueName::default()).unwrap().pending, 1);
    }

    #[test]
    fn list_each_hands_over_what_list_returns() {
        let (_dir, path) = fresh();
        let store = SqliteStore::open(&path, StoreOptions::default()).unwrap();
        for n in 1..=5u128 {
            store
                .add(
                    NewInstruction::new(
                        InstructionId::from_u128(n),
                        Content::parse(&format!("item {n}")).unwrap(),
                    ),
                    Timestamp::from_micros(1),
                )
                .unwrap();
        }
        let agent = queue_core::Caller::from(queue_core::AgentId::parse("a").unwrap());
        let ticket = store
            .begin_call(&agent, Timestamp::from_micros(2), Timestamp::from_micros(3))
            .unwrap();
        store
            .claim(&agent, ticket.generation, Timestamp::from_micros(2))
            .unwrap();
        for filter in [
            StatusFilter::All,
            StatusFilter::Pending,
            StatusFilter::Consumed,
        ] {
            for (offset, limit) in [(0, None), (0, Some(2)), (1, Some(3)), (4, None), (9, None)] {
                let page = Page { offset, limit };
                let listing = store.list(&QueueName::default(), filter, page).unwrap();
                let mut items = Vec::new();
                let total = store
                    .list_each(&QueueName::default(), filter, page, &mut |i| {
                        items.push(i.clone())
                    })
                    .unwrap();
                assert_eq!(
                    (items, total),
                    (listing.items, listing.total),
                    "{filter:?} {page:?}"
                );
            }
        }
    }

    #[test]
    fn group_commit_answers_every_caller_with_its_own_result() {
        let (_dir, path) = fresh();
        let store = SqliteStore::open(&path, StoreOptions::default()).unwrap();
        std::thread::scope(|s| {
            for t in 0..16u128 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..50u128 {
                        let id = InstructionId::from_u128(t * 1_000 + i + 1);
                        let item = store
                            .add(
                                NewInstruction::new(
                                    id,
                                    Content::parse(&format!("{t}-{i}")).unwrap(),
                                ),
                                Timestamp::from_micros(1),
                            )
                            .unwrap();
                        assert_eq!(item.id, id);
                        assert_eq!(item.content.as_str(), format!("{t}-{i}"));
                        // A refused operation in the same batch does not spoil it.
                        let missing = InstructionId::from_u128(u128::MAX - t);
                        assert_eq!(
                            store.delete(missing, Timestamp::from_micros(2)),
                            Err(QueueError::NotFound(missing))
                        );
                    }
                });
            }
        });
        assert_eq!(store.counts(&QueueName::default()).unwrap().pending, 800);
        // Positions stay unique under concurrency.
        let items = store
            .list(
                &QueueName::default(),
                StatusFilter::Pending,
                Page::default(),
            )
            .unwrap()
            .items;
        let mut positions: Vec<_> = items.iter().map(|i| i.position).collect();
        positions.dedup();
        assert_eq!(positions.len(), 800);
    }
}
