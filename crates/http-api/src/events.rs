//! Live events over Server-Sent Events (`GET /api/events`, SPEC §4).
//!
//! One hub per process turns the service's change events (local ones at once,
//! other processes' through `Service::watch`) into SSE messages, numbers them, and
//! keeps the newest in a bounded ring. Every client reads from that ring, so a live
//! client and one reconnecting with `Last-Event-ID` take the same path, and a
//! thousand clients share one copy of each message. A client that asks for
//! something the ring no longer holds gets `status.changed` with `"refetch": true`.
//!
//! The hub also derives what no stored event says: `status.changed` (coalesced to
//! at most one per [`STATUS_SPACING`]) and `agent.updated` when an agent's state
//! changes with time alone (its wait ran out, or it went stale).
//!
//! Every message about an instruction or an agent names its queue, and a client
//! may ask for one queue's only (`?queue=`); settings and status messages go to
//! every client.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::Bytes;
use queue_core::{AgentState, Caller, Change, Event, QueueName, Service, Settings, Timestamp};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::json::{AgentJson, ItemJson, ServerInfo, SettingsJson, StatusJson, StatusParts};

/// The least time between two `status.changed` messages.
pub const STATUS_SPACING: Duration = Duration::from_millis(250);

/// Tuning for the hub.
#[derive(Clone, Debug)]
pub struct EventsOptions {
    /// How many messages the replay ring keeps.
    pub ring: usize,
    /// How often an idle stream gets a comment line, so proxies and dead
    /// connections are noticed.
    pub heartbeat: Duration,
}

impl Default for EventsOptions {
    fn default() -> Self {
        EventsOptions {
            ring: 1_024,
            heartbeat: Duration::from_secs(15),
        }
    }
}

/// The process's event hub; cheap to clone.
#[derive(Clone, Debug)]
pub struct Events {
    hub: Arc<Hub>,
}

struct Hub {
    service: Service,
    server: ServerInfo,
    options: EventsOptions,
    ring: Mutex<Ring>,
    /// The newest message id; clients wait on it.
    newest: watch::Sender<u64>,
    /// The last `/api/status` object, for refetch messages.
    status: Mutex<Value>,
    closed: AtomicBool,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A numbered message, with the queue it is about (`None`: every queue's).
struct Message {
    id: u64,
    queue: Option<QueueName>,
    bytes: Bytes,
}

struct Ring {
    messages: VecDeque<Message>,
    /// The id the next message gets.
    next_id: u64,
}

/// What a client missed since the id it last saw.
enum Missed {
    /// These messages, oldest first, and the newest id among them.
    Messages(Vec<Bytes>, u64),
    /// Nothing new.
    Nothing,
    /// Only messages the client does not want, up to this id.
    Skipped(u64),
    /// More than the ring holds, or an id this process never gave out.
    Gap(u64),
}

impl Ring {
    fn newest(&self) -> u64 {
        self.next_id - 1
    }

    /// What came after `last`, leaving out other queues' messages when `only` names
    /// a queue.
    fn after(&self, last: u64, only: Option<&QueueName>) -> Missed {
        let newest = self.newest();
        if last == newest {
            return Missed::Nothing;
        }
        let oldest = self.messages.front().map_or(self.next_id, |m| m.id);
        if last > newest || last + 1 < oldest {
            return Missed::Gap(newest);
        }
        let skip = usize::try_from(last + 1 - oldest).unwrap_or(usize::MAX);
        let out: Vec<Bytes> = self
            .messages
            .iter()
            .skip(skip)
            .filter(|m| match (only, &m.queue) {
                (Some(only), Some(queue)) => only == queue,
                _ => true,
            })
            .map(|m| m.bytes.clone())
            .collect();
        if out.is_empty() {
            // All of them for other queues: seen, and nothing to send.
            return Missed::Skipped(newest);
        }
        Missed::Messages(out, newest)
    }
}

/// The JSON on a message's `data` line.
#[derive(Serialize, JsonSchema)]
#[schemars(
    rename = "EventEnvelope",
    description = "The `data:` line of a message on `GET /api/events`.",
    bound = ""
)]
pub(crate) struct Envelope<'a, T> {
    #[serde(rename = "type")]
    #[schemars(
        extend("enum" = [
            "instruction.created",
            "instruction.updated",
            "instruction.deleted",
            "instruction.consumed",
            "instruction.reordered",
            "config.updated",
            "agent.updated",
            "status.changed",
        ]),
        description = "The same as the message's `event:` line."
    )]
    kind: &'a str,
    #[schemars(extend("format" = "date-time"), description = "When the change happened.")]
    timestamp: String,
    #[schemars(
        with = "EventData<'a>",
        description = "`Item` for `instruction.*` but `instruction.reordered` (`{\"queue\", \"ids\"}`), `Config` for `config.updated`, `Agent` for `agent.updated`, `Status` for `status.changed`."
    )]
    data: &'a T,
    /// Only on the message that tells a client it missed some.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schemars(
        extend("const" = true),
        description = "Only on a `status.changed` sent because messages were missed beyond the replay buffer: reload everything."
    )]
    refetch: bool,
}

/// What an envelope's `data` may be, for its schema: [`frame`] takes each as
/// it comes, so no value of this type is ever made.
#[derive(JsonSchema)]
#[schemars(inline)]
#[serde(untagged)]
#[expect(dead_code, reason = "only its schema is used")]
enum EventData<'a> {
    Item(ItemJson<'a>),
    Reordered(ReorderedJson<'a>),
    Config(SettingsJson<'a>),
    Agent(AgentJson<'a>),
    Status(StatusJson<'a>),
}

// The data of `instruction.reordered` (a doc comment would become its
// description in the document).
#[derive(Serialize, JsonSchema)]
#[schemars(inline)]
struct ReorderedJson<'a> {
    queue: &'a str,
    #[schemars(transform = crate::routes::uuid_items)]
    ids: Vec<String>,
}

/// One SSE message: `id`, `event` and the JSON envelope on one `data` line.
fn frame(id: u64, kind: &str, at: Timestamp, data: &impl Serialize, refetch: bool) -> Bytes {
    let envelope = Envelope {
        kind,
        timestamp: at.to_rfc3339(),
        data,
        refetch,
    };
    let mut out = format!("id: {id}\nevent: {kind}\ndata: ").into_bytes();
    // Writing to a Vec cannot fail, and every payload is plain JSON data.
    let _ = serde_json::to_writer(&mut out, &envelope);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

impl Events {
    /// A hub over `service`. Nothing is published until [`Events::run`] runs;
    /// spawn it once.
    pub async fn new(
        service: Service,
        server: ServerInfo,
        options: EventsOptions,
    ) -> Result<Self, queue_core::QueueError> {
        let now = service.now();
        let status =
            StatusParts::read(&service)
                .await?
                .to_json(&server, now, &QueueName::default());
        // Ids start at the clock in microseconds, so a restarted server never hands
        // out an id an old client already holds: its Last-Event-ID is simply older
        // than the ring and it is told to refetch.
        let first = u64::try_from(now.as_micros()).unwrap_or(1).max(1);
        let (newest, _) = watch::channel(first - 1);
        Ok(Events {
            hub: Arc::new(Hub {
                service,
                server,
                options,
                ring: Mutex::new(Ring {
                    messages: VecDeque::new(),
                    next_id: first,
                }),
                newest,
                status: Mutex::new(status),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// What `/api/status` says about this process.
    pub fn server(&self) -> &ServerInfo {
        &self.hub.server
    }

    /// The id of the newest message so far.
    pub fn newest_id(&self) -> u64 {
        *self.hub.newest.borrow()
    }

    /// The last `/api/status` object the hub computed.
    pub fn status(&self) -> Value {
        lock(&self.hub.status).clone()
    }

    fn push(&self, kind: &str, at: Timestamp, data: &impl Serialize, queue: Option<&QueueName>) {
        self.append(false, queue, |id| frame(id, kind, at, data, false));
    }

    /// Numbers the message `make` builds, keeps it in the ring (emptied first when
    /// `forget_older`) and wakes the clients.
    fn append(
        &self,
        forget_older: bool,
        queue: Option<&QueueName>,
        make: impl FnOnce(u64) -> Bytes,
    ) {
        let mut ring = lock(&self.hub.ring);
        if forget_older {
            ring.messages.clear();
        }
        let id = ring.next_id;
        ring.next_id += 1;
        ring.messages.push_back(Message {
            id,
            queue: queue.cloned(),
            bytes: make(id),
        });
        while ring.messages.len() > self.hub.options.ring.max(1) {
            ring.messages.pop_front();
        }
        drop(ring);
        self.hub.newest.send_replace(id);
    }

    /// Publishes until the service shuts down, then ends every stream.
    pub async fn run(self) {
        let service = self.hub.service.clone();
        let mut rx = service.subscribe();
        let mut tracker = Tracker::default();
        let mut settings = Settings::default();
        if let Ok(parts) = StatusParts::read(&service).await {
            tracker.seed(&parts, service.now());
            settings = parts.settings;
        }
        let mut last_status = Instant::now();
        let mut status_due: Option<Instant> = None;
        let mut shutdown = std::pin::pin!(service.until_shutdown());
        loop {
            let due = status_due;
            tokio::select! {
                event = rx.recv() => {
                    match event {
                        Ok(event) => {
                            self.publish(&event, &mut settings, &mut tracker);
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "the event hub fell behind; clients will refetch");
                            self.push_refetch();
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                    let soonest = (last_status + STATUS_SPACING).max(Instant::now());
                    status_due = Some(due.map_or(soonest, |d| d.min(soonest)));
                }
                _ = sleep_until_opt(due) => {
                    last_status = Instant::now();
                    status_due = self.refresh_status(&mut settings, &mut tracker).await;
                }
                _ = &mut shutdown => break,
            }
        }
        self.hub.closed.store(true, Ordering::Release);
        self.hub.newest.send_modify(|_| {});
    }

    fn publish(&self, event: &Event, settings: &mut Settings, tracker: &mut Tracker) {
        let now = self.hub.service.now();
        let (kind, at, queue) = (event.change.event_type(), event.at, event.change.queue());
        match &event.change {
            Change::InstructionCreated(item)
            | Change::InstructionUpdated(item)
            | Change::InstructionDeleted(item)
            | Change::InstructionConsumed(item) => {
                self.push(kind, at, &ItemJson::from(item), queue);
            }
            Change::InstructionReordered(reordered) => {
                let data = ReorderedJson {
                    queue: reordered.queue.as_str(),
                    ids: reordered.ids.iter().map(ToString::to_string).collect(),
                };
                self.push(kind, at, &data, queue);
            }
            Change::ConfigUpdated(stored) => {
                *settings = self.hub.service.effective_settings(stored);
                self.push(kind, at, &SettingsJson::from(&*settings), queue);
            }
            Change::AgentUpdated(agent) => {
                let stale = settings.agent_stale_after_seconds;
                tracker
                    .states
                    .insert(agent.caller(), agent.state(now, stale));
                self.push(kind, at, &AgentJson::at(agent, now, stale), queue);
            }
        }
    }

    fn push_refetch(&self) {
        let now = self.hub.service.now();
        let status = self.status();
        // Every older id is now a gap: drop them so reconnecting clients refetch.
        self.append(true, None, |id| {
            frame(id, "status.changed", now, &status, true)
        });
    }

    /// Recomputes `/api/status`, announces what changed, and returns when the next
    /// change by time alone (a wait running out, an agent going stale) is due.
    async fn refresh_status(
        &self,
        settings: &mut Settings,
        tracker: &mut Tracker,
    ) -> Option<Instant> {
        let service = &self.hub.service;
        let parts = match StatusParts::read(service).await {
            Ok(parts) => parts,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the status for live events; retrying");
                return Some(Instant::now() + Duration::from_secs(1));
            }
        };
        let now = service.now();
        *settings = parts.settings.clone();
        let stale = parts.settings.agent_stale_after_seconds;
        for agent in &parts.agents {
            let state = agent.state(now, stale);
            let caller = agent.caller();
            if tracker.states.get(&caller) != Some(&state) {
                tracker.states.insert(caller, state);
                let data = AgentJson::at(agent, now, stale);
                self.push("agent.updated", now, &data, Some(&agent.queue));
            }
        }
        let status = parts.to_json(&self.hub.server, now, &QueueName::default());
        let changed = {
            let mut last = lock(&self.hub.status);
            let changed = *last != status;
            *last = status.clone();
            changed
        };
        if changed {
            self.push("status.changed", now, &status, None);
        }
        parts.next_transition(now).map(|micros| {
            Instant::now()
                + Duration::from_micros(u64::try_from(micros).unwrap_or(0))
                + Duration::from_millis(5)
        })
    }

    /// The stream for one client. `last_event_id` is the `Last-Event-ID` header;
    /// with `only`, messages about other queues are left out.
    pub fn stream(
        &self,
        last_event_id: Option<&str>,
        only: Option<QueueName>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
        let newest = self.newest_id();
        let (last, resume) = match last_event_id.map(|s| s.trim().parse::<u64>()) {
            None => (newest, false),
            Some(Ok(id)) => (id, true),
            // Not an id we give out: certainly a gap.
            Some(Err(_)) => (u64::MAX, true),
        };
        let state = Client {
            events: self.clone(),
            last,
            newest: self.hub.newest.subscribe(),
            heartbeat: tokio::time::interval_at(
                Instant::now() + self.hub.options.heartbeat,
                self.hub.options.heartbeat,
            ),
            opened: false,
            resume,
            only,
            sent: None,
        };
        futures_util::stream::unfold(state, |mut client| async move {
            let chunk = client.next_chunk().await?;
            Some((Ok(chunk), client))
        })
    }
}

/// The guarded value; a panic elsewhere while holding the lock left nothing
/// half-written here (every update is a single assignment or push), so a
/// poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Agent states as last announced, so time-driven changes are told once.
#[derive(Default)]
struct Tracker {
    states: HashMap<Caller, AgentState>,
}

impl Tracker {
    fn seed(&mut self, parts: &StatusParts, now: Timestamp) {
        let stale = parts.settings.agent_stale_after_seconds;
        for agent in &parts.agents {
            self.states.insert(agent.caller(), agent.state(now, stale));
        }
    }
}

struct Client {
    events: Events,
    last: u64,
    newest: watch::Receiver<u64>,
    heartbeat: tokio::time::Interval,
    opened: bool,
    resume: bool,
    /// The one queue whose messages this client wants, if it asked for one.
    only: Option<QueueName>,
    /// When the last messages went out to this client.
    sent: Option<Instant>,
}

/// The least time between two writes of messages to one client. The first
/// message after a quiet spell goes out at once; messages that follow it closely
/// go out together, one write per client instead of one per message. With many
/// clients each write costs a system call and a wake-up of the reader, and those
/// would otherwise take the CPU the next changes need (issue 18: a burst of 50
/// adds to 100 clients).
const CLIENT_SPACING: Duration = Duration::from_millis(4);

impl Client {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        let hub = Arc::clone(&self.events.hub);
        if !self.opened {
            self.opened = true;
            let mut first = String::from("retry: 2000\n: connected\n\n").into_bytes();
            if self.resume
                && let Some(missed) = self.catch_up()
            {
                first.extend_from_slice(&missed);
            }
            return Some(Bytes::from(first));
        }
        loop {
            if hub.closed.load(Ordering::Acquire) {
                return None;
            }
            // A timer only when there is something to hold back: most messages
            // come after a quiet spell and go out at once.
            if let Some(sent) = self.sent
                && *self.newest.borrow() > self.last
                && Instant::now() < sent + CLIENT_SPACING
            {
                tokio::time::sleep_until(sent + CLIENT_SPACING).await;
            }
            if let Some(chunk) = self.catch_up() {
                self.sent = Some(Instant::now());
                return Some(chunk);
            }
            tokio::select! {
                changed = self.newest.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = self.heartbeat.tick() => return Some(Bytes::from_static(b": heartbeat\n\n")),
            }
        }
    }

    /// Everything after `last`, or a refetch message when that is out of reach.
    fn catch_up(&mut self) -> Option<Bytes> {
        // Marked seen before the ring is read: a message pushed in between then
        // wakes this client again instead of waiting for the next one.
        self.newest.borrow_and_update();
        let missed = lock(&self.events.hub.ring).after(self.last, self.only.as_ref());
        match missed {
            Missed::Nothing => None,
            Missed::Skipped(newest) => {
                self.last = newest;
                None
            }
            Missed::Messages(messages, newest) => {
                self.last = newest;
                if messages.len() == 1 {
                    return messages.into_iter().next();
                }
                Some(Bytes::from(messages.concat()))
            }
            Missed::Gap(newest) => {
                self.last = newest;
                let status = self.events.status();
                let now = self.events.hub.service.now();
                Some(frame(newest, "status.changed", now, &status, true))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures_util::StreamExt;
    use queue_core::{MemoryStore, Service, Timestamp};
    use serde_json::json;
    use tokio::time::{Instant, timeout};

    use super::{CLIENT_SPACING, Events, EventsOptions};
    use crate::json::ServerInfo;

    /// A burst of messages reaches a client in few writes: the first at once, the
    /// ones that follow within [`CLIENT_SPACING`] together once it has passed, and
    /// the first after a quiet spell at once again.
    #[tokio::test(start_paused = true)]
    async fn messages_close_together_go_out_in_one_write() {
        let service = Service::builder(Arc::new(MemoryStore::new()))
            .build()
            .unwrap();
        let info = ServerInfo::new(Timestamp::EPOCH);
        let events = Events::new(service, info, EventsOptions::default())
            .await
            .unwrap();
        let push = |n: u32| events.push("test.message", Timestamp::EPOCH, &json!({ "n": n }), None);
        let mut stream = Box::pin(events.stream(None, None));
        let text = |chunk: Option<Result<actix_web::web::Bytes, actix_web::Error>>| {
            String::from_utf8(chunk.unwrap().unwrap().to_vec()).unwrap()
        };
        assert!(text(stream.next().await).contains(": connected"));

        push(1);
        let first = text(stream.next().await);
        let sent = Instant::now();
        assert!(first.contains(r#""n":1"#), "{first}");
        push(2);
        assert!(
            timeout(Duration::from_micros(1), stream.next())
                .await
                .is_err(),
            "a message right after another waits for the spacing"
        );
        push(3);
        let burst = text(stream.next().await);
        assert_eq!(sent.elapsed(), CLIENT_SPACING);
        assert!(
            burst.contains(r#""n":2"#) && burst.contains(r#""n":3"#),
            "both in one write: {burst}"
        );

        tokio::time::advance(CLIENT_SPACING * 3).await;
        push(4);
        let quiet = Instant::now();
        let alone = text(stream.next().await);
        assert!(alone.contains(r#""n":4"#), "{alone}");
        assert_eq!(
            quiet.elapsed(),
            Duration::ZERO,
            "after a quiet spell, at once"
        );
    }
}
