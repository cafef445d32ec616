//! Turning SQLite's failures into the domain's [`StoreError`]s, by what an operator
//! can do about them.

use std::io::{ErrorKind, Write};
use std::path::Path;

use queue_core::{QueueError, StoreError};

/// The error of one operation inside a transaction: a refusal by a queue rule (the
/// savepoint rolls back, the batch goes on) or a database failure.
#[derive(Debug)]
pub(crate) enum OpError {
    Queue(QueueError),
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for OpError {
    fn from(e: diesel::result::Error) -> Self {
        OpError::Db(e)
    }
}

impl From<QueueError> for OpError {
    fn from(e: QueueError) -> Self {
        OpError::Queue(e)
    }
}

impl From<OpError> for QueueError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Queue(q) => q,
            OpError::Db(d) => db_error(d).into(),
        }
    }
}

/// Classifies an SQLite message. SQLite's result codes reach diesel only as text, so
/// this matches the fixed wording of `sqlite3_errstr`.
pub(crate) fn classify(message: &str) -> StoreError {
    let m = message.to_ascii_lowercase();
    if m.contains("database is locked")
        || m.contains("database table is locked")
        || m.contains("busy")
    {
        StoreError::Busy
    } else if m.contains("readonly") || m.contains("read-only") {
        StoreError::ReadOnly(message.to_owned())
    } else if m.contains("disk is full") || m.contains("database or disk is full") {
        StoreError::Full
    } else if m.contains("not a database") || m.contains("malformed") || m.contains("corrupt") {
        StoreError::Corrupt(message.to_owned())
    } else {
        StoreError::Other(message.to_owned())
    }
}

pub(crate) fn db_error(e: diesel::result::Error) -> StoreError {
    match e {
        diesel::result::Error::DatabaseError(_, info) => classify(info.message()),
        other => classify(&other.to_string()),
    }
}

/// Sharpens an unclassified failure by looking at the disk itself. SQLite names a
/// read-only or full disk only when a write hits it; opening a WAL database there
/// fails earlier, as "unable to open database file" (the `-shm` file cannot be
/// created) or "disk I/O error" (it cannot be grown), which say nothing an operator
/// can act on.
pub(crate) fn refine(e: StoreError, db: &Path) -> StoreError {
    let StoreError::Other(message) = &e else {
        return e;
    };
    let m = message.to_ascii_lowercase();
    if !(m.contains("unable to open database file") || m.contains("disk i/o error")) {
        return e;
    }
    let dir = folder(db);
    match probe(dir) {
        Some(ErrorKind::ReadOnlyFilesystem) => StoreError::ReadOnly(format!(
            "{} is on a read-only file system ({message})",
            dir.display()
        )),
        Some(ErrorKind::PermissionDenied) => StoreError::ReadOnly(format!(
            "no permission to write in {} ({message})",
            dir.display()
        )),
        Some(ErrorKind::StorageFull | ErrorKind::QuotaExceeded) => StoreError::Full,
        _ => e,
    }
}

/// Refuses a database whose disk has no room left, even when SQLite opened it.
/// SQLite opens without writing when the `-wal` and `-shm` files of an earlier run
/// are still there (a process that exits without closing every connection leaves
/// them), so whether a full disk was noticed at start-up would otherwise depend on
/// how the last process ended. Starting anyway would only fail later, on the first
/// write that needs a new page, with instructions typed and lost in between.
pub(crate) fn check_room(db: &Path) -> Result<(), StoreError> {
    match probe(folder(db)) {
        Some(ErrorKind::StorageFull | ErrorKind::QuotaExceeded) => Err(StoreError::Full),
        _ => Ok(()),
    }
}

/// The folder holding `db`.
fn folder(db: &Path) -> &Path {
    match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes and removes a small file in `dir`; the kind of error it met, if any.
fn probe(dir: &Path) -> Option<ErrorKind> {
    let file = dir.join(format!(".local-mcp-probe-{}", std::process::id()));
    let written = std::fs::File::create(&file).and_then(|mut f| {
        // A page's worth, so a full disk cannot fit it in a block already allocated.
        f.write_all(&[0_u8; 4096])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&file);
    written.err().map(|e| e.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refine_keeps_what_the_disk_does_not_explain() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.sqlite3");
        assert_eq!(refine(StoreError::Busy, &db), StoreError::Busy);
        let other = StoreError::Other("no such table: x".into());
        assert_eq!(refine(other.clone(), &db), other);
        // A writable, roomy folder: the failure stays unexplained, and the probe
        // leaves nothing behind.
        let cantopen = StoreError::Other("unable to open database file".into());
        assert_eq!(refine(cantopen.clone(), &db), cantopen);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
