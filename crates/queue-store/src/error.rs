//! Turning SQLite's failures into the domain's [`StoreError`]s, by what an operator
//! can do about them.

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
