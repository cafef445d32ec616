//! The JSON shapes of SPEC §4 as typed structs, built from the domain types in one
//! place so the routes, the live events and the terminal commands all print the
//! same thing.

use queue_core::{
    Agent, AgentId, AgentState, Content, Instruction, MAX_EMPTY_RESPONSE_CHARS, MAX_STALE_SECONDS,
    MAX_WAIT_SECONDS, Overview, QueueCounts, QueueError, QueueName, Service, Settings, Timestamp,
};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// The characters a queue or agent name may hold, as a JSON Schema `pattern`.
pub(crate) const NAME_PATTERN: &str = "^[A-Za-z0-9._:@-]+$";

/// The JSON form of an instruction.
pub fn item_json(item: &Instruction) -> Value {
    to_value(&ItemJson::from(item))
}

/// A value of one of this module's structs. Their fields are strings, numbers,
/// booleans and nulls only, which `serde_json` always serializes.
fn to_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// One instruction.
// Serialized straight from the item: a listing of thousands is written without
// building a `Value` per item first.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Item")]
pub(crate) struct ItemJson<'a> {
    #[schemars(extend("format" = "uuid"))]
    id: String,
    /// The queue it is on.
    #[schemars(length(min = 1, max = QueueName::MAX_LEN), regex(pattern = NAME_PATTERN))]
    queue: &'a str,
    /// The text, trimmed.
    #[schemars(length(min = 1, max = Content::MAX_CHARS))]
    content: &'a str,
    /// The one agent of the queue that may take it; `null`: any agent of the queue.
    #[schemars(length(min = 1, max = AgentId::MAX_LEN), regex(pattern = NAME_PATTERN))]
    to_agent_id: Option<&'a str>,
    #[schemars(
        extend("enum" = ["pending", "consumed"]),
        description = "`pending`: queued, may be edited, reordered or deleted. `consumed`: delivered to an agent, read-only."
    )]
    status: &'static str,
    /// When it was queued.
    #[schemars(extend("format" = "date-time"))]
    created_at: String,
    /// When it last changed (creation, edit, reorder, consumption).
    #[schemars(extend("format" = "date-time"))]
    updated_at: String,
    /// When an agent took it; `null` exactly while pending.
    #[schemars(extend("format" = "date-time"))]
    consumed_at: Option<String>,
    /// The agent that took it (letters, digits and `._:@-`); `null` exactly while pending.
    #[schemars(length(min = 1, max = AgentId::MAX_LEN), regex(pattern = NAME_PATTERN))]
    consumed_by_agent_id: Option<&'a str>,
    #[schemars(
        description = "Queue order: pending items are delivered by ascending position. Comparable within one queue only; not contiguous."
    )]
    position: i64,
}

impl<'a> From<&'a Instruction> for ItemJson<'a> {
    fn from(item: &'a Instruction) -> Self {
        ItemJson {
            id: item.id.to_string(),
            queue: item.queue.as_str(),
            content: item.content.as_str(),
            to_agent_id: item.to.as_ref().map(|a| a.as_str()),
            status: item.status.as_str(),
            created_at: item.created_at.to_rfc3339(),
            updated_at: item.updated_at.to_rfc3339(),
            consumed_at: item.consumed_at.map(|t| t.to_rfc3339()),
            consumed_by_agent_id: item.consumed_by.as_ref().map(|a| a.as_str()),
            position: item.position,
        }
    }
}

// `{"item": ...}`: the answer of every route that returns one instruction.
#[derive(Serialize, JsonSchema)]
pub(crate) struct ItemEnvelope<'a> {
    pub(crate) item: ItemJson<'a>,
}

impl<'a> From<&'a Instruction> for ItemEnvelope<'a> {
    fn from(item: &'a Instruction) -> Self {
        ItemEnvelope {
            item: ItemJson::from(item),
        }
    }
}

// `{"items": [...]}`: the pending instructions in their new order.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "ReorderResult")]
pub(crate) struct ReorderJson<'a> {
    /// Every pending item, in the new queue order.
    pub(crate) items: Vec<ItemJson<'a>>,
}

// `GET /healthz`.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Health")]
pub(crate) struct HealthJson {
    #[schemars(extend("enum" = ["ok"]))]
    pub(crate) status: &'static str,
    /// The server's clock.
    #[schemars(extend("format" = "date-time"))]
    pub(crate) server_time: String,
}

/// The JSON form of the settings (`GET /api/config`).
pub fn settings_json(settings: &Settings) -> Value {
    to_value(&SettingsJson::from(settings))
}

/// The runtime settings in force.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Config")]
pub(crate) struct SettingsJson<'a> {
    #[schemars(
        range(min = 0, max = MAX_WAIT_SECONDS),
        description = "How long a `get_user_request` call waits on an empty queue before it returns the empty or default response, in seconds."
    )]
    default_wait_seconds: u32,
    #[schemars(
        length(max = MAX_EMPTY_RESPONSE_CHARS),
        description = "What a call that found nothing returns. Empty: the call returns `result_type` `empty`; else `default_response` with this text."
    )]
    default_empty_response: &'a str,
    /// How long after its last call an agent counts as gone, in seconds.
    #[schemars(range(min = 1, max = MAX_STALE_SECONDS))]
    agent_stale_after_seconds: u32,
}

impl<'a> From<&'a Settings> for SettingsJson<'a> {
    fn from(settings: &'a Settings) -> Self {
        SettingsJson {
            default_wait_seconds: settings.default_wait_seconds,
            default_empty_response: &settings.default_empty_response,
            agent_stale_after_seconds: settings.agent_stale_after_seconds,
        }
    }
}

/// The JSON form of an agent as seen at `now`: its record plus what it means —
/// `waiting` (a call is in flight), `connected`, and `state`
/// (`waiting`, `working`, `idle` or `gone`).
pub fn agent_json(agent: &Agent, now: Timestamp, stale_after_seconds: u32) -> Value {
    to_value(&AgentJson::at(agent, now, stale_after_seconds))
}

/// An agent (an MCP client calling `get_user_request`) as seen now.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Agent")]
pub(crate) struct AgentJson<'a> {
    /// Its name: the `agent_id` it passed, else its MCP client name, else `default`.
    #[schemars(length(min = 1, max = AgentId::MAX_LEN), regex(pattern = NAME_PATTERN))]
    agent_id: &'a str,
    /// The queue it calls on. The same name on two queues is two agents.
    #[schemars(length(min = 1, max = QueueName::MAX_LEN), regex(pattern = NAME_PATTERN))]
    queue: &'a str,
    #[schemars(
        with = "String",
        extend("enum" = ["waiting", "working", "idle", "gone"]),
        description = "`waiting`: a call is in flight, the agent waits for an instruction. `working`: it recently took an instruction and has not called again yet. `idle`: it recently called, got nothing, and has not called again yet. `gone`: not seen within `agent_stale_after_seconds`."
    )]
    state: AgentState,
    /// A call is in flight, or its last call started within `agent_stale_after_seconds`.
    connected: bool,
    /// A call is in flight right now.
    waiting: bool,
    /// When its latest call started.
    #[schemars(extend("format" = "date-time"))]
    last_seen_at: String,
    /// When a call of it last returned; `null` before the first one did.
    #[schemars(extend("format" = "date-time"))]
    last_fetch_at: Option<String>,
    /// What that call returned; `null` before the first one returned.
    #[schemars(extend("enum" = ["instruction", "empty", "default_response", null]))]
    last_result_type: Option<&'static str>,
    /// While a call is in flight: when its wait ends. Else `null`.
    #[schemars(extend("format" = "date-time"))]
    waiting_until: Option<String>,
}

impl<'a> AgentJson<'a> {
    pub(crate) fn at(agent: &'a Agent, now: Timestamp, stale_after_seconds: u32) -> Self {
        let waiting = agent.is_waiting(now);
        AgentJson {
            agent_id: agent.id.as_str(),
            queue: agent.queue.as_str(),
            state: agent.state(now, stale_after_seconds),
            connected: agent.is_connected(now, stale_after_seconds),
            waiting,
            last_seen_at: agent.last_seen_at.to_rfc3339(),
            last_fetch_at: agent.last_fetch_at.map(|t| t.to_rfc3339()),
            last_result_type: agent.last_result_type.map(|r| r.as_str()),
            // A deadline that passed is no wait any more.
            waiting_until: agent
                .waiting_until
                .filter(|_| waiting)
                .map(|t| t.to_rfc3339()),
        }
    }
}

/// What the server part of `/api/status` says about the process answering.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// When the process started serving.
    pub started_at: Timestamp,
    /// The local-mcp version.
    pub version: &'static str,
}

impl ServerInfo {
    /// This build, started at `started_at`.
    pub fn new(started_at: Timestamp) -> Self {
        ServerInfo {
            started_at,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// The JSON form of a queue (`GET /api/queues`): its name, counts and agents
/// (those of `agents` on it, in the order given) as seen at `now`.
pub fn queue_json(
    queue: &QueueCounts,
    agents: &[Agent],
    now: Timestamp,
    stale_after_seconds: u32,
) -> Value {
    to_value(&QueueJson::at(queue, agents, now, stale_after_seconds))
}

/// A queue: its counts and every agent seen on it.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Queue")]
pub(crate) struct QueueJson<'a> {
    #[schemars(length(min = 1, max = QueueName::MAX_LEN), regex(pattern = NAME_PATTERN))]
    name: &'a str,
    pending_count: u64,
    consumed_count: u64,
    /// Its agents, most recently seen first.
    agents: Vec<AgentJson<'a>>,
}

impl<'a> QueueJson<'a> {
    fn at(
        queue: &'a QueueCounts,
        agents: &'a [Agent],
        now: Timestamp,
        stale_after_seconds: u32,
    ) -> Self {
        QueueJson {
            name: queue.name.as_str(),
            pending_count: queue.counts.pending,
            consumed_count: queue.counts.consumed,
            agents: agents_on(agents, &queue.name, now, stale_after_seconds),
        }
    }
}

fn agents_on<'a>(
    agents: &'a [Agent],
    queue: &QueueName,
    now: Timestamp,
    stale_after_seconds: u32,
) -> Vec<AgentJson<'a>> {
    agents
        .iter()
        .filter(|a| a.queue == *queue)
        .map(|a| AgentJson::at(a, now, stale_after_seconds))
        .collect()
}

// `{"queues": [...]}` (`GET /api/queues`).
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "QueueList")]
pub(crate) struct QueueListJson<'a> {
    pub(crate) queues: Vec<QueueJson<'a>>,
}

// The `/api/status` object.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Status")]
pub(crate) struct StatusJson<'a> {
    /// The process answering.
    server: ServerJson<'a>,
    /// The queue's most recently seen agent; `null` before any agent was seen on it.
    agent: Option<&'a AgentJson<'a>>,
    /// Every agent seen on the queue, most recently seen first.
    agents: &'a [AgentJson<'a>],
    /// The queue asked for (`default` unless `?queue=` names another).
    queue: QueueCountsJson<'a>,
    /// Every queue, by name.
    queues: Vec<QueueJson<'a>>,
    settings: SettingsJson<'a>,
}

// The `server` part of `/api/status`, written out in place.
#[derive(Serialize, JsonSchema)]
#[schemars(inline)]
pub(crate) struct ServerJson<'a> {
    #[schemars(extend("enum" = ["up"]))]
    status: &'static str,
    /// When this process started serving.
    #[schemars(extend("format" = "date-time"))]
    started_at: String,
    /// The local-mcp version.
    version: &'a str,
}

// The `queue` part of `/api/status`: a queue's counts without its agents,
// written out in place.
#[derive(Serialize, JsonSchema)]
#[schemars(inline)]
pub(crate) struct QueueCountsJson<'a> {
    name: &'a str,
    pending_count: u64,
    consumed_count: u64,
}

/// The pieces of `/api/status`, read together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusParts {
    /// Every agent seen on any queue, most recently seen first.
    pub agents: Vec<Agent>,
    /// Every queue with its counts, by name.
    pub queues: Vec<QueueCounts>,
    /// The settings in force.
    pub settings: Settings,
}

impl StatusParts {
    /// Reads the parts from `service`.
    pub async fn read(service: &Service) -> Result<Self, QueueError> {
        // One store call, not three: `/api/status` is polled by every open page.
        Ok(Self::of(service, service.overview().await?))
    }

    /// The parts an overview read from `service` makes.
    pub fn of(service: &Service, overview: Overview) -> Self {
        StatusParts {
            settings: service.effective_settings(&overview.settings),
            agents: overview.agents,
            queues: overview.queues,
        }
    }

    /// Microseconds from `now` until some agent's state changes by time alone;
    /// until then (inclusive) [`StatusParts::to_json`] gives the same object.
    pub fn next_transition(&self, now: Timestamp) -> Option<i64> {
        let stale = i64::from(self.settings.agent_stale_after_seconds) * 1_000_000;
        self.agents
            .iter()
            .flat_map(|a| {
                let wait_end = a
                    .waiting_until
                    .map(|u| u.plus_micros(queue_core::Agent::IN_FLIGHT_GRACE_MICROS));
                let stale_at = a.last_seen_at.plus_micros(stale);
                [wait_end, Some(stale_at)]
            })
            .flatten()
            // Only what is still ahead: `micros_since` gives 0 for the past, and a
            // transition long gone would make every moment look like one.
            .filter(|t| *t >= now)
            .map(|t| t.micros_since(now))
            .min()
    }

    /// Whether `queue` exists.
    pub fn has_queue(&self, queue: &QueueName) -> bool {
        self.queues.iter().any(|q| q.name == *queue)
    }

    /// Every queue as `GET /api/queues` lists it, at `now`.
    pub fn queues_json(&self, now: Timestamp) -> Value {
        to_value(&self.queue_list(now))
    }

    pub(crate) fn queue_list(&self, now: Timestamp) -> Vec<QueueJson<'_>> {
        let stale = self.settings.agent_stale_after_seconds;
        self.queues
            .iter()
            .map(|q| QueueJson::at(q, &self.agents, now, stale))
            .collect()
    }

    /// The `/api/status` object at `now`, seen from `queue`: `agent`, `agents` and
    /// `queue` are that queue's, `queues` lists them all. A queue that does not
    /// exist shows empty.
    pub fn to_json(&self, server: &ServerInfo, now: Timestamp, queue: &QueueName) -> Value {
        self.with_status(server, now, queue, |status| to_value(status))
    }

    /// Hands the `/api/status` object of [`StatusParts::to_json`] to `f`, typed:
    /// it borrows the agents it lists, so it cannot be returned.
    pub(crate) fn with_status<T>(
        &self,
        server: &ServerInfo,
        now: Timestamp,
        queue: &QueueName,
        f: impl FnOnce(&StatusJson<'_>) -> T,
    ) -> T {
        let agents = agents_on(
            &self.agents,
            queue,
            now,
            self.settings.agent_stale_after_seconds,
        );
        let counts = self
            .queues
            .iter()
            .find(|q| q.name == *queue)
            .map(|q| q.counts)
            .unwrap_or_default();
        f(&StatusJson {
            server: ServerJson {
                status: "up",
                started_at: server.started_at.to_rfc3339(),
                version: server.version,
            },
            agent: agents.first(),
            agents: &agents,
            queue: QueueCountsJson {
                name: queue.as_str(),
                pending_count: counts.pending,
                consumed_count: counts.consumed,
            },
            queues: self.queue_list(now),
            settings: SettingsJson::from(&self.settings),
        })
    }
}
