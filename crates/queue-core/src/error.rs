//! The errors of the queue domain: rejected input, refused changes, and failures of
//! the store underneath.

use std::fmt;

use crate::types::{InstructionId, QueueName};

/// Input that breaks a domain rule, naming the field at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// The field, as the API names it (`content`, `agent_id`, ...).
    pub field: &'static str,
    /// What is wrong, phrased to follow the field name.
    pub message: String,
}

impl ValidationError {
    /// A new error for `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        ValidationError {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.message)
    }
}

impl std::error::Error for ValidationError {}

/// Why a change was refused although the input was well formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Conflict {
    /// Edit or delete of an instruction an agent already took.
    AlreadyConsumed,
    /// Requeue of an instruction that is still pending.
    NotConsumed,
    /// A reorder whose ids are not exactly the pending set.
    PendingSetChanged,
    /// A claim of an instruction that is on another queue or for another agent.
    NotForCaller,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conflict::AlreadyConsumed => {
                "the instruction was already delivered to an agent and can no longer change"
            }
            Conflict::NotConsumed => "only a delivered instruction can be sent again",
            Conflict::PendingSetChanged => {
                "the ids given are not exactly the pending instructions of the queue; reload and try again"
            }
            Conflict::NotForCaller => {
                "the instruction is on another queue or for another agent"
            }
        })
    }
}

impl std::error::Error for Conflict {}

/// A failure of the storage underneath, in terms an operator can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process held the database locked for longer than the busy timeout.
    #[error("the database is busy (locked by another process); try again shortly")]
    Busy,
    /// The database file or its folder cannot be written.
    #[error("the database is read-only: {0}")]
    ReadOnly(String),
    /// The disk is full.
    #[error("the disk holding the database is full")]
    Full,
    /// The file was written by a newer version of local-mcp.
    #[error(
        "the database {path} was written by a newer version of local-mcp (schema {found}, this build knows up to {known}); upgrade local-mcp or point it at another file; the file was left untouched"
    )]
    NewerSchema {
        /// The database file.
        path: String,
        /// The newest schema version found in the file.
        found: String,
        /// The newest schema version this build knows.
        known: String,
    },
    /// The file is not a database or is damaged.
    #[error("the database is damaged or not a local-mcp database: {0}")]
    Corrupt(String),
    /// Anything else; the text is for logs, not for clients.
    #[error("storage failure: {0}")]
    Other(String),
}

/// Everything a queue operation can refuse or fail with. Normal outcomes (an empty
/// queue, a superseded call) are values, not errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// Bad input.
    #[error("{0}")]
    Validation(#[from] ValidationError),
    /// No instruction has this id.
    #[error("no instruction with id {0}")]
    NotFound(InstructionId),
    /// No instruction was ever queued on this queue and no agent called on it.
    #[error(
        "there is no queue named \"{0}\": no instruction was queued on it and no agent called on it yet"
    )]
    UnknownQueue(QueueName),
    /// The change breaks a queue rule.
    #[error("{0}")]
    Conflict(#[from] Conflict),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
