//! The domain's value types, each checked once at construction so the rest of the code
//! takes proven values.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{Conflict, ValidationError};

/// A point in time: microseconds since the Unix epoch, UTC.
///
/// Kept as an integer so both stores order and compare it exactly; it is only turned
/// into RFC 3339 text at the edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp from microseconds since the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// This timestamp moved forward by `micros` (saturating).
    pub const fn plus_micros(self, micros: i64) -> Self {
        Timestamp(self.0.saturating_add(micros))
    }

    /// This timestamp moved forward by whole seconds (saturating).
    pub const fn plus_secs(self, secs: i64) -> Self {
        self.plus_micros(secs.saturating_mul(1_000_000))
    }

    /// Microseconds from `earlier` to `self`, zero when `earlier` is later.
    pub fn micros_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0).max(0)
    }

    /// RFC 3339 text in UTC with microsecond precision, e.g. `2026-11-21T06:09:22.123456Z`.
    pub fn to_rfc3339(self) -> String {
        // Written by hand for years 0..=9999: a listing prints three of these per
        // item, and the general formatter was a large part of a 10,000-item list.
        const FIRST: i64 = -62_167_219_200_000_000; // 0000-01-01T00:00:00Z
        const LAST: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z
        if (FIRST..=LAST).contains(&self.0) {
            return self.format_fast();
        }
        let nanos = i128::from(self.0) * 1_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => t
                .format(&time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
                ))
                .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000000Z")),
            // Only reachable for values beyond year 9999, which no clock produces.
            Err(_) => String::from("9999-12-31T23:59:59.999999Z"),
        }
    }

    /// `to_rfc3339` for years 0..=9999, through Howard Hinnant's `civil_from_days`.
    fn format_fast(self) -> String {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let mut out = [0_u8; 27];
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, sod / 3_600);
        put(14, 2, sod / 60 % 60);
        put(17, 2, sod % 60);
        put(20, 6, micros);
        for (at, b) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (26, b'Z'),
        ] {
            out[at] = b;
        }
        out.iter().map(|&b| char::from(b)).collect()
    }

    /// Parses RFC 3339 text (any offset) into a UTC timestamp.
    pub fn parse_rfc3339(text: &str) -> Result<Self, ValidationError> {
        let t = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|_| ValidationError::new("timestamp", "is not an RFC 3339 date-time"))?;
        let micros = t.unix_timestamp_nanos() / 1_000;
        i64::try_from(micros)
            .map(Timestamp)
            .map_err(|_| ValidationError::new("timestamp", "is out of range"))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// The identity of an instruction: a UUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstructionId(uuid::Uuid);

impl InstructionId {
    /// Wraps a UUID.
    pub const fn from_uuid(uuid: uuid::Uuid) -> Self {
        InstructionId(uuid)
    }

    /// Builds an id from 128 bits; tests and deterministic id sources use it.
    pub const fn from_u128(bits: u128) -> Self {
        InstructionId(uuid::Uuid::from_u128(bits))
    }

    /// The UUID inside.
    pub const fn as_uuid(&self) -> &uuid::Uuid {
        &self.0
    }

    /// Parses the hyphenated (or any standard) UUID form.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        uuid::Uuid::try_parse(text)
            .map(InstructionId)
            .map_err(|_| ValidationError::new("id", "is not a UUID"))
    }
}

impl fmt::Display for InstructionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// Checks a name (an agent's or a queue's): 1..=128 characters of
/// `[A-Za-z0-9._:@-]`. `field` names it in the error.
fn check_name(field: &'static str, text: &str) -> Result<(), ValidationError> {
    if text.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if text.len() > NAME_MAX_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be at most {NAME_MAX_LEN} characters"),
        ));
    }
    if let Some(bad) = text.chars().find(|c| !name_char(*c)) {
        return Err(ValidationError::new(
            field,
            format!("may only contain letters, digits and . _ : @ - (found {bad:?})"),
        ));
    }
    Ok(())
}

/// The longest agent or queue name, in characters.
const NAME_MAX_LEN: usize = 128;

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-')
}

/// Any text made into a valid name: disallowed characters become `-` (runs of
/// them one `-` when `collapse`), it is cut to the longest name and its ends are
/// trimmed of `-`; `None` when nothing usable remains.
fn sanitize_name(text: &str, collapse: bool) -> Option<String> {
    let mut cleaned = String::new();
    for c in text.trim().chars().take(NAME_MAX_LEN) {
        let c = if name_char(c) { c } else { '-' };
        if collapse && c == '-' && cleaned.ends_with('-') {
            continue;
        }
        cleaned.push(c);
    }
    let cleaned = cleaned.trim_matches('-');
    (!cleaned.is_empty()).then(|| cleaned.to_owned())
}

/// The name an agent goes by: 1..=128 characters of `[A-Za-z0-9._:@-]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AgentId(String);

impl AgentId {
    /// The longest agent id accepted, in characters.
    pub const MAX_LEN: usize = NAME_MAX_LEN;

    /// Checks `text` and wraps it.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        check_name("agent_id", text)?;
        Ok(AgentId(text.to_owned()))
    }

    /// Turns any client-supplied name (for example an MCP client's `clientInfo.name`)
    /// into a valid agent id by replacing disallowed characters with `-` and
    /// truncating; `None` when nothing usable remains.
    pub fn sanitize(text: &str) -> Option<Self> {
        sanitize_name(text, false).map(AgentId)
    }

    /// The id used when a call names no agent and the client is unknown.
    pub fn default_agent() -> Self {
        AgentId(String::from("default"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for AgentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AgentId::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of a queue: 1..=128 characters of `[A-Za-z0-9._:@-]`, the same rules
/// as an [`AgentId`]. Every instruction and every agent belongs to one queue;
/// order, consume-once, generations and waiting are all per queue.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct QueueName(String);

impl QueueName {
    /// The longest queue name accepted, in characters.
    pub const MAX_LEN: usize = NAME_MAX_LEN;

    /// The queue's name when none is given.
    pub const DEFAULT: &'static str = "default";

    /// Checks `text` and wraps it.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        check_name("queue", text)?;
        Ok(QueueName(text.to_owned()))
    }

    /// The queue named after a project folder, say `my app` → `my-app`:
    /// disallowed characters become `-`; `None` when nothing usable remains.
    pub fn from_folder_name(name: &str) -> Option<Self> {
        sanitize_name(name, true).map(QueueName)
    }

    /// The queue used when nothing names one: `default`.
    pub fn default_queue() -> Self {
        QueueName(String::from(Self::DEFAULT))
    }

    /// Whether this is the `default` queue.
    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for QueueName {
    fn default() -> Self {
        Self::default_queue()
    }
}

impl<'de> Deserialize<'de> for QueueName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        QueueName::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who makes a `get_user_request` call: an agent on a queue. Agents are told
/// apart per queue, so `claude-code` working on two projects is two agents, each
/// with its own generation counter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Caller {
    /// The queue it takes instructions from.
    pub queue: QueueName,
    /// The agent's name on that queue.
    pub agent: AgentId,
}

impl Caller {
    /// `agent` on `queue`.
    pub fn new(queue: QueueName, agent: AgentId) -> Self {
        Caller { queue, agent }
    }

    /// `agent` on the `default` queue.
    pub fn on_default(agent: AgentId) -> Self {
        Caller::new(QueueName::default_queue(), agent)
    }
}

impl From<AgentId> for Caller {
    fn from(agent: AgentId) -> Self {
        Caller::on_default(agent)
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.agent, self.queue)
    }
}

/// The text of an instruction: trimmed, 1..=32,768 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Content(String);

impl Content {
    /// The longest content accepted, in characters (Unicode scalar values).
    pub const MAX_CHARS: usize = 32_768;

    /// Trims `text` and checks its length.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(ValidationError::new("content", "must not be empty"));
        }
        let n = trimmed.chars().count();
        if n > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "content",
                format!("must be at most {} characters (got {n})", Self::MAX_CHARS),
            ));
        }
        Ok(Content(trimmed.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Content::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Where an instruction is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Queued, waiting for an agent; may be edited, reordered or deleted.
    Pending,
    /// Delivered to an agent; read-only from then on.
    Consumed,
}

impl Status {
    /// `"pending"` or `"consumed"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Consumed => "consumed",
        }
    }

    /// The inverse of [`Status::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Status::Pending),
            "consumed" => Some(Status::Consumed),
            _ => None,
        }
    }
}

/// What a person queues: the text, the queue it goes to, and optionally the one
/// agent of that queue it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInstruction {
    /// Its identity, made by the caller so that every store gives the same result.
    pub id: InstructionId,
    /// The queue it joins, at the end.
    pub queue: QueueName,
    /// What the person asks.
    pub content: Content,
    /// When set, only this agent of the queue may take it; the others skip it.
    pub to: Option<AgentId>,
}

impl NewInstruction {
    /// `content` for any agent of the `default` queue.
    pub fn new(id: InstructionId, content: Content) -> Self {
        NewInstruction {
            id,
            queue: QueueName::default_queue(),
            content,
            to: None,
        }
    }

    /// The same, for `queue`.
    pub fn on(mut self, queue: QueueName) -> Self {
        self.queue = queue;
        self
    }

    /// The same, for `agent` only.
    pub fn to(mut self, agent: Option<AgentId>) -> Self {
        self.to = agent;
        self
    }
}

/// One queued or delivered instruction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instruction {
    /// Its identity.
    pub id: InstructionId,
    /// The queue it belongs to. Events stored before queues existed have none:
    /// they were all on `default`.
    #[serde(default)]
    pub queue: QueueName,
    /// What the person asked.
    pub content: Content,
    /// The one agent of the queue it is for, if any; others skip it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<AgentId>,
    /// Pending or consumed.
    pub status: Status,
    /// When it was queued.
    pub created_at: Timestamp,
    /// When it last changed (creation, edit, reorder, consumption).
    pub updated_at: Timestamp,
    /// When an agent took it; `Some` exactly when consumed.
    pub consumed_at: Option<Timestamp>,
    /// Which agent took it; `Some` exactly when consumed.
    pub consumed_by: Option<AgentId>,
    /// Queue order: pending instructions are delivered by ascending position.
    pub position: i64,
}

impl Instruction {
    /// A new pending instruction at `position`.
    pub fn pending(new: NewInstruction, now: Timestamp, position: i64) -> Self {
        Instruction {
            id: new.id,
            queue: new.queue,
            content: new.content,
            to: new.to,
            status: Status::Pending,
            created_at: now,
            updated_at: now,
            consumed_at: None,
            consumed_by: None,
            position,
        }
    }

    /// Whether `caller` may take this instruction: it is pending on the caller's
    /// queue and addressed to nobody or to the caller.
    pub fn is_for(&self, caller: &Caller) -> bool {
        self.status == Status::Pending
            && self.queue == caller.queue
            && self.to.as_ref().is_none_or(|to| *to == caller.agent)
    }

    /// The pending copy a requeue makes: same queue, text and addressee.
    pub fn copy(&self, id: InstructionId) -> NewInstruction {
        NewInstruction {
            id,
            queue: self.queue.clone(),
            content: self.content.clone(),
            to: self.to.clone(),
        }
    }

    /// Refuses any change to an instruction an agent already took.
    pub fn ensure_pending(&self) -> Result<(), Conflict> {
        match self.status {
            Status::Pending => Ok(()),
            Status::Consumed => Err(Conflict::AlreadyConsumed),
        }
    }

    /// Refuses what only a delivered instruction allows (requeue, return to queue).
    pub fn ensure_consumed(&self) -> Result<(), Conflict> {
        match self.status {
            Status::Consumed => Ok(()),
            Status::Pending => Err(Conflict::NotConsumed),
        }
    }

    /// This pending instruction reworded.
    pub fn edited(mut self, content: Content, now: Timestamp) -> Result<Self, Conflict> {
        self.ensure_pending()?;
        self.content = content;
        self.updated_at = now;
        Ok(self)
    }

    /// This pending instruction as taken by `caller` at `now`. Refused unless it
    /// is [for](Instruction::is_for) the caller.
    pub fn consumed(mut self, caller: &Caller, now: Timestamp) -> Result<Self, Conflict> {
        self.ensure_pending()?;
        if !self.is_for(caller) {
            return Err(Conflict::NotForCaller);
        }
        self.status = Status::Consumed;
        self.consumed_at = Some(now);
        self.consumed_by = Some(caller.agent.clone());
        self.updated_at = now;
        Ok(self)
    }

    /// This delivered instruction pending again at `position` (its delivery failed).
    pub fn returned(mut self, position: i64, now: Timestamp) -> Result<Self, Conflict> {
        self.ensure_consumed()?;
        self.status = Status::Pending;
        self.consumed_at = None;
        self.consumed_by = None;
        self.position = position;
        self.updated_at = now;
        Ok(self)
    }
}

/// What a finished `get_user_request` call returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultType {
    /// An instruction was delivered.
    Instruction,
    /// Nothing was delivered and the default response is empty.
    Empty,
    /// Nothing was delivered; the default response text was returned.
    DefaultResponse,
}

impl ResultType {
    /// `"instruction"`, `"empty"` or `"default_response"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResultType::Instruction => "instruction",
            ResultType::Empty => "empty",
            ResultType::DefaultResponse => "default_response",
        }
    }

    /// The inverse of [`ResultType::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "instruction" => Some(ResultType::Instruction),
            "empty" => Some(ResultType::Empty),
            "default_response" => Some(ResultType::DefaultResponse),
            _ => None,
        }
    }
}

/// What the server knows of one agent on one queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// The queue it calls on. Records stored before queues existed have none:
    /// they were all on `default`.
    #[serde(default)]
    pub queue: QueueName,
    /// Its name.
    pub id: AgentId,
    /// When any call of it last started.
    pub last_seen_at: Timestamp,
    /// When a call of it last returned; `None` before the first one did.
    pub last_fetch_at: Option<Timestamp>,
    /// What that call returned.
    pub last_result_type: Option<ResultType>,
    /// The generation of its newest call; only that call may claim.
    pub generation: u64,
    /// While the newest call is in flight: the moment its wait ends. A call whose
    /// process died leaves this behind, so it counts only until that moment passes.
    pub waiting_until: Option<Timestamp>,
}

/// How an agent looks from outside, derived from its record, the time and the
/// stale threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// A call is in flight right now: the agent is waiting for the person.
    Waiting,
    /// Recently took an instruction and has not called again yet.
    Working,
    /// Recently called, got nothing, and has not called again yet.
    Idle,
    /// Not seen within the stale threshold.
    Gone,
}

impl Agent {
    /// The record of `caller` first seen at `now`, before its first call counts.
    pub fn first_seen(caller: &Caller, now: Timestamp) -> Self {
        Agent {
            queue: caller.queue.clone(),
            id: caller.agent.clone(),
            last_seen_at: now,
            last_fetch_at: None,
            last_result_type: None,
            generation: 0,
            waiting_until: None,
        }
    }

    /// The record once a new call started at `now`, waiting until `until`: the new
    /// call's generation supersedes every older one.
    pub fn call_started(mut self, now: Timestamp, until: Timestamp) -> Self {
        self.generation += 1;
        self.last_seen_at = now;
        self.waiting_until = Some(until);
        self
    }

    /// The record once the call of `generation` returned `result` at `now`. The end
    /// of an outdated call does not end the newer call's wait.
    pub fn call_ended(mut self, generation: u64, result: ResultType, now: Timestamp) -> Self {
        self.last_fetch_at = Some(now);
        self.last_result_type = Some(result);
        if self.generation == generation {
            self.waiting_until = None;
        }
        self
    }

    /// Who this is: the agent on its queue.
    pub fn caller(&self) -> Caller {
        Caller::new(self.queue.clone(), self.id.clone())
    }

    /// Grace added to `waiting_until` before an unfinished call is assumed dead: it
    /// covers the time a call takes to record its end after its deadline.
    pub const IN_FLIGHT_GRACE_MICROS: i64 = 5_000_000;

    /// Whether a call of this agent is in flight at `now`.
    pub fn is_waiting(&self, now: Timestamp) -> bool {
        self.waiting_until
            .is_some_and(|until| now <= until.plus_micros(Self::IN_FLIGHT_GRACE_MICROS))
    }

    /// Connected: a call is in flight, or the agent was seen within `stale_after_secs`.
    pub fn is_connected(&self, now: Timestamp, stale_after_secs: u32) -> bool {
        self.is_waiting(now)
            || now.micros_since(self.last_seen_at) <= i64::from(stale_after_secs) * 1_000_000
    }

    /// The agent's state at `now`.
    pub fn state(&self, now: Timestamp, stale_after_secs: u32) -> AgentState {
        if self.is_waiting(now) {
            AgentState::Waiting
        } else if !self.is_connected(now, stale_after_secs) {
            AgentState::Gone
        } else if self.last_result_type == Some(ResultType::Instruction) {
            AgentState::Working
        } else {
            AgentState::Idle
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_id_rules() {
        assert!(AgentId::parse("claude-code@host:1.2_x").is_ok());
        assert_eq!(
            AgentId::parse("").unwrap_err().to_string(),
            "agent_id must not be empty"
        );
        assert!(AgentId::parse(&"a".repeat(128)).is_ok());
        assert!(AgentId::parse(&"a".repeat(129)).is_err());
        assert!(AgentId::parse("has space").is_err());
        assert!(AgentId::parse("é").is_err());
        assert_eq!(
            AgentId::sanitize("Claude Code").map(|a| a.0),
            Some("Claude-Code".into())
        );
        assert_eq!(AgentId::sanitize("  ✨ "), None);
    }

    #[test]
    fn queue_name_rules() {
        assert_eq!(
            QueueName::parse("web-app_2.0").unwrap().as_str(),
            "web-app_2.0"
        );
        assert_eq!(
            QueueName::parse("").unwrap_err().to_string(),
            "queue must not be empty"
        );
        assert_eq!(
            QueueName::parse("my app").unwrap_err().to_string(),
            "queue may only contain letters, digits and . _ : @ - (found ' ')"
        );
        assert!(QueueName::parse(&"q".repeat(128)).is_ok());
        assert!(QueueName::parse(&"q".repeat(129)).is_err());
        assert_eq!(QueueName::default().as_str(), "default");
        assert!(QueueName::default().is_default());
        // Folder names: spaces and other characters become one dash each run.
        let folder = |s: &str| QueueName::from_folder_name(s).map(|q| q.0);
        assert_eq!(folder("my  app (old)"), Some("my-app-old".into()));
        assert_eq!(folder("Ünïcode"), Some("n-code".into()));
        assert_eq!(folder("///"), None);
        assert_eq!(folder(&"x".repeat(300)).map(|q| q.len()), Some(128));
        // An old stored record without a queue reads as `default`.
        let item: Instruction = serde_json::from_str(
            r#"{"id":"00000000-0000-0000-0000-000000000001","content":"old","status":"pending",
                "created_at":1,"updated_at":1,"consumed_at":null,"consumed_by":null,"position":1}"#,
        )
        .unwrap();
        assert!(item.queue.is_default());
        assert_eq!(item.to, None);
    }

    #[test]
    fn only_the_addressee_of_the_queue_may_take_an_instruction() {
        let at = Timestamp::from_micros(1);
        let web = QueueName::parse("web").unwrap();
        let anna = AgentId::parse("anna").unwrap();
        let bob = AgentId::parse("bob").unwrap();
        let new = NewInstruction::new(InstructionId::from_u128(1), Content::parse("x").unwrap())
            .on(web.clone());
        let open = Instruction::pending(new.clone(), at, 1);
        let for_anna = Instruction::pending(new.to(Some(anna.clone())), at, 2);
        let (anna_web, bob_web) = (
            Caller::new(web.clone(), anna.clone()),
            Caller::new(web.clone(), bob),
        );
        assert!(open.is_for(&anna_web) && open.is_for(&bob_web));
        assert!(!open.is_for(&Caller::on_default(anna)));
        assert!(for_anna.is_for(&anna_web) && !for_anna.is_for(&bob_web));
        assert_eq!(
            for_anna.clone().consumed(&bob_web, at),
            Err(Conflict::NotForCaller)
        );
        let taken = for_anna.consumed(&anna_web, at).unwrap();
        assert!(!taken.is_for(&anna_web), "consumed: nobody's any more");
    }

    #[test]
    fn content_rules() {
        assert_eq!(Content::parse("  hi \n").unwrap().as_str(), "hi");
        assert!(Content::parse(" \n\t ").is_err());
        assert!(Content::parse(&"é".repeat(32_768)).is_ok());
        let err = Content::parse(&"x".repeat(32_769)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "content must be at most 32768 characters (got 32769)"
        );
    }

    #[test]
    fn timestamps_round_trip_as_rfc3339() {
        let t = Timestamp::from_micros(1_795_000_000_123_456);
        let text = t.to_rfc3339();
        assert_eq!(text, "2026-11-18T11:06:40.123456Z");
        assert_eq!(Timestamp::parse_rfc3339(&text).unwrap(), t);
        assert_eq!(Timestamp::EPOCH.to_rfc3339(), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn the_fast_rfc3339_agrees_with_the_time_crate() {
        let slow = |t: Timestamp| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1_000)
                .unwrap()
                .format(&time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
                ))
                .unwrap()
        };
        let edges = [
            -62_167_219_200_000_000,
            -1,
            0,
            951_782_400_000_000 - 1, // 2000-02-28T23:59:59.999999
            951_868_800_000_000,     // 2000-03-01 (after a leap day)
            4_107_542_400_000_000,   // 2100-03-01 (no leap day)
            253_402_300_799_999_999,
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let random = (0..20_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            -62_167_219_200_000_000 + (x % 315_569_520_000_000_000) as i64
        });
        for micros in edges.into_iter().chain(random) {
            let t = Timestamp::from_micros(micros);
            assert_eq!(t.to_rfc3339(), slow(t), "{micros}");
        }
        // Out of the four-digit years, the general formatter answers.
        assert_eq!(
            Timestamp::from_micros(i64::MAX).to_rfc3339(),
            "9999-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn agent_states() {
        let seen = Timestamp::from_micros(1_000_000_000);
        let mut a = Agent {
            queue: QueueName::default_queue(),
            id: AgentId::default_agent(),
            last_seen_at: seen,
            last_fetch_at: None,
            last_result_type: None,
            generation: 1,
            waiting_until: Some(seen.plus_secs(10)),
        };
        assert_eq!(a.state(seen.plus_secs(9), 30), AgentState::Waiting);
        // A call whose process died stops counting once its deadline and grace pass.
        assert_eq!(a.state(seen.plus_secs(16), 30), AgentState::Idle);
        assert_eq!(a.state(seen.plus_secs(60), 30), AgentState::Gone);
        a.waiting_until = None;
        a.last_result_type = Some(ResultType::Instruction);
        assert_eq!(a.state(seen.plus_secs(30), 30), AgentState::Working);
        assert_eq!(a.state(seen.plus_secs(31), 30), AgentState::Gone);
    }
}
