//! The audit hook: what a process did to the queue, handed to an [`Audit`] sink
//! that keeps a trail (the binary writes a hash-chained file).
//!
//! Entries borrow their data so that a sink which keeps only hashes never copies
//! an instruction's text.

use std::time::Duration;

use crate::settings::{Settings, SettingsPatch};
use crate::types::{Caller, Instruction, InstructionId, QueueName, ResultType};

/// Receives one entry per change this process makes, per tool call and per refused
/// request. Called from the thread that did the work, right after it succeeded;
/// it must not call back into the service.
pub trait Audit: Send + Sync {
    /// Records `entry`. Failures are the sink's to report; the change stands.
    fn record(&self, entry: &AuditEntry<'_>);
}

/// One auditable action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditEntry<'a> {
    /// A new pending instruction; `requeued_from` names the consumed one it copies.
    InstructionCreated {
        /// The new instruction.
        item: &'a Instruction,
        /// The consumed instruction it was requeued from, if any.
        requeued_from: Option<InstructionId>,
    },
    /// A pending instruction was reworded.
    InstructionUpdated {
        /// The instruction after the change.
        item: &'a Instruction,
    },
    /// A pending instruction was deleted.
    InstructionDeleted {
        /// The instruction as it was.
        item: &'a Instruction,
    },
    /// The pending instructions of a queue were put in a new order.
    InstructionReordered {
        /// The queue.
        queue: &'a QueueName,
        /// The new order.
        ids: &'a [InstructionId],
    },
    /// A delivered instruction went back to the head of the queue because its
    /// result could not be handed to the agent.
    InstructionReturned {
        /// The instruction, pending again.
        item: &'a Instruction,
        /// Why the delivery failed.
        reason: &'a str,
    },
    /// Settings were saved.
    ConfigUpdated {
        /// What the request changed.
        patch: &'a SettingsPatch,
        /// The settings in force afterwards.
        settings: &'a Settings,
    },
    /// A `get_user_request` call ended.
    ToolCall {
        /// The calling agent, on its queue.
        caller: &'a Caller,
        /// What the call returned.
        result: ResultType,
        /// How it ended: `delivered`, `timed_out`, `superseded`, `shutting_down`,
        /// or `abandoned` when its caller went away first.
        end: &'static str,
        /// The instruction it delivered.
        instruction: Option<&'a Instruction>,
        /// How long it waited; unknown for an abandoned call.
        waited: Option<Duration>,
    },
    /// A request was refused for want of the right credentials.
    AuthFailure {
        /// The HTTP method.
        method: &'a str,
        /// The request path, without the query.
        path: &'a str,
        /// Why: no token, or a wrong one.
        reason: &'a str,
    },
}

impl AuditEntry<'_> {
    /// The entry's action name, e.g. `instruction.created` or `tool.call`.
    pub const fn action(&self) -> &'static str {
        match self {
            AuditEntry::InstructionCreated { .. } => "instruction.created",
            AuditEntry::InstructionUpdated { .. } => "instruction.updated",
            AuditEntry::InstructionDeleted { .. } => "instruction.deleted",
            AuditEntry::InstructionReordered { .. } => "instruction.reordered",
            AuditEntry::InstructionReturned { .. } => "instruction.returned",
            AuditEntry::ConfigUpdated { .. } => "config.updated",
            AuditEntry::ToolCall { .. } => "tool.call",
            AuditEntry::AuthFailure { .. } => "auth.failure",
        }
    }
}
