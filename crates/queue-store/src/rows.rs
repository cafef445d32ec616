//! The rows of the queue's tables as diesel reads and writes them, shared by the
//! SQLite and PostgreSQL stores, and their conversions to and from domain types.

use diesel::prelude::*;

use queue_core::{
    Agent, AgentId, Conflict, Content, Instruction, InstructionId, QueueError, QueueName,
    ResultType, Status, StoreError, Timestamp,
};

use crate::error::OpError;
use crate::schema::{agents, events, instructions};

pub(crate) type Result<T> = std::result::Result<T, OpError>;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = instructions)]
pub(crate) struct InstructionRow {
    pub(crate) id: String,
    pub(crate) content: String,
    pub(crate) status: String,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) consumed_at: Option<i64>,
    pub(crate) consumed_by: Option<String>,
    pub(crate) position: i64,
    pub(crate) queue: String,
    pub(crate) to_agent: Option<String>,
}

impl InstructionRow {
    pub(crate) fn from_domain(i: &Instruction) -> Self {
        InstructionRow {
            queue: i.queue.as_str().to_owned(),
            to_agent: i.to.as_ref().map(|a| a.as_str().to_owned()),
            id: i.id.to_string(),
            content: i.content.as_str().to_owned(),
            status: i.status.as_str().to_owned(),
            created_at: i.created_at.as_micros(),
            updated_at: i.updated_at.as_micros(),
            consumed_at: i.consumed_at.map(Timestamp::as_micros),
            consumed_by: i.consumed_by.as_ref().map(|a| a.as_str().to_owned()),
            position: i.position,
        }
    }

    pub(crate) fn into_domain(self) -> Result<Instruction> {
        Ok(Instruction {
            id: InstructionId::parse(&self.id).map_err(corrupt)?,
            queue: QueueName::parse(&self.queue).map_err(corrupt)?,
            content: Content::parse(&self.content).map_err(corrupt)?,
            to: self
                .to_agent
                .as_deref()
                .map(AgentId::parse)
                .transpose()
                .map_err(corrupt)?,
            status: Status::parse(&self.status)
                .ok_or_else(|| corrupt(format!("unknown status {:?}", self.status)))?,
            created_at: Timestamp::from_micros(self.created_at),
            updated_at: Timestamp::from_micros(self.updated_at),
            consumed_at: self.consumed_at.map(Timestamp::from_micros),
            consumed_by: self
                .consumed_by
                .as_deref()
                .map(AgentId::parse)
                .transpose()
                .map_err(corrupt)?,
            position: self.position,
        })
    }
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = agents)]
#[diesel(treat_none_as_null = true)]
pub(crate) struct AgentRow {
    pub(crate) queue: String,
    pub(crate) id: String,
    pub(crate) last_seen_at: i64,
    pub(crate) last_fetch_at: Option<i64>,
    pub(crate) last_result_type: Option<String>,
    pub(crate) generation: i64,
    pub(crate) waiting_until: Option<i64>,
}

impl AgentRow {
    pub(crate) fn from_domain(a: &Agent) -> Self {
        AgentRow {
            queue: a.queue.as_str().to_owned(),
            id: a.id.as_str().to_owned(),
            last_seen_at: a.last_seen_at.as_micros(),
            last_fetch_at: a.last_fetch_at.map(Timestamp::as_micros),
            last_result_type: a.last_result_type.map(|r| r.as_str().to_owned()),
            generation: i64::try_from(a.generation).unwrap_or(i64::MAX),
            waiting_until: a.waiting_until.map(Timestamp::as_micros),
        }
    }

    pub(crate) fn into_domain(self) -> Result<Agent> {
        Ok(Agent {
            queue: QueueName::parse(&self.queue).map_err(corrupt)?,
            id: AgentId::parse(&self.id).map_err(corrupt)?,
            last_seen_at: Timestamp::from_micros(self.last_seen_at),
            last_fetch_at: self.last_fetch_at.map(Timestamp::from_micros),
            last_result_type: self
                .last_result_type
                .as_deref()
                .map(|t| {
                    ResultType::parse(t).ok_or_else(|| corrupt(format!("unknown result {t:?}")))
                })
                .transpose()?,
            generation: u64::try_from(self.generation).unwrap_or(0),
            waiting_until: self.waiting_until.map(Timestamp::from_micros),
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = events)]
pub(crate) struct EventRow {
    pub(crate) seq: i64,
    pub(crate) at: i64,
    #[allow(dead_code)]
    pub(crate) kind: String,
    pub(crate) payload: String,
}

pub(crate) fn conflict(c: Conflict) -> OpError {
    OpError::Queue(QueueError::Conflict(c))
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> OpError {
    OpError::Queue(StoreError::Corrupt(e.to_string()).into())
}

impl EventRow {
    pub(crate) fn into_domain(self) -> Result<queue_core::Event> {
        Ok(queue_core::Event {
            seq: u64::try_from(self.seq).unwrap_or(0),
            at: Timestamp::from_micros(self.at),
            change: serde_json::from_str(&self.payload).map_err(corrupt)?,
        })
    }
}
