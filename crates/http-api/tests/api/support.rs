//! The fixture every test starts from: the real routes and guards in process, over
//! an in-memory queue, with the event hub and the watcher running, plus helpers to
//! send requests, check the invariants every response must keep, and read SSE
//! (with test_support's one parser).

use std::collections::{BTreeSet, VecDeque};
use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, Service as _, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap};
use actix_web::test::TestRequest;
use actix_web::web::Bytes;
use actix_web::{App, Error};
use futures_util::future::LocalBoxFuture;
use http_api::{ApiState, Events, EventsOptions, HostPolicy, Protect, ServerInfo, UiFiles};
use queue_core::{AgentId, Audit, AuditEntry, Fetch, MemoryStore, Service};
use serde_json::{Value, json};
use test_support::{SseFrame, SseParser};

/// The `Host` every ordinary test request carries: a loopback name on the port the
/// fixture's [`HostPolicy`] believes it serves.
pub(crate) const HOST: &str = "127.0.0.1:8000";
/// The server's own origin, the one `Origin` a browser page of ours sends.
pub(crate) const OWN_ORIGIN: &str = "http://127.0.0.1:8000";
/// The port given to [`HostPolicy`], so `http://localhost:3000` is a foreign origin.
pub(crate) const PORT: u16 = 8000;
/// The longest any test waits for something to happen before it fails: far above
/// what the events need (a few hundred milliseconds), so only a real hang trips it.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);
/// The error codes of SPEC §4; no other code may ever appear.
pub(crate) const CODES: [&str; 9] = [
    "bad_request",
    "validation",
    "not_found",
    "conflict",
    "unauthorized",
    "forbidden",
    "unsupported_media_type",
    "payload_too_large",
    "internal",
];
/// An id no instruction has.
pub(crate) const MISSING_ID: &str = "00000000-0000-4000-8000-000000000000";

/// The app as a plain function of a request, so the fixture has a nameable type
/// (`init_service` returns an opaque one). The optional payload replaces the
/// request's body, for bodies streamed without a length.
type Call = Rc<dyn Fn(TestRequest, Option<Payload>) -> LocalBoxFuture<'static, CallResult>>;
type CallResult = Result<ServiceResponse<BoxBody>, Error>;

/// How to start a [`Server`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Setup {
    token: Option<String>,
    allowed_hosts: Vec<String>,
    events: EventsOptions,
    ui: UiFiles,
}

impl Setup {
    pub(crate) fn new() -> Self {
        Setup::default()
    }

    /// Requires `Authorization: Bearer <token>` on `/api`.
    pub(crate) fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Extra names, as `ALLOWED_HOSTS` gives them.
    pub(crate) fn allowed_hosts(mut self, hosts: &[&str]) -> Self {
        self.allowed_hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
        self
    }

    /// Where the web UI's files come from (the embedded copies by default).
    pub(crate) fn ui(mut self, ui: UiFiles) -> Self {
        self.ui = ui;
        self
    }

    pub(crate) fn heartbeat(mut self, every: Duration) -> Self {
        self.events.heartbeat = every;
        self
    }

    pub(crate) fn ring(mut self, n: usize) -> Self {
        self.events.ring = n;
        self
    }

    pub(crate) async fn start(self) -> Server {
        let audit = Arc::new(Recorder::default());
        let service = Service::builder(Arc::new(MemoryStore::new()))
            .audit(Arc::clone(&audit) as Arc<dyn Audit>)
            .build()
            .expect("a service over an empty memory store builds");
        let events = Events::new(service.clone(), ServerInfo::new(service.now()), self.events)
            .await
            .expect("the event hub reads the initial status");
        // The hub subscribes as soon as it is first polled and the watcher only
        // publishes when it is polled; spawned in this order on the test's
        // single-threaded runtime, the hub is listening before anything is published.
        tokio::spawn(events.clone().run());
        let watcher = service.clone();
        tokio::spawn(async move { watcher.watch().await });
        tokio::task::yield_now().await;

        let state = ApiState::new(service.clone(), events.clone())
            .with_token(self.token)
            .with_ui(self.ui);
        let app = actix_web::test::init_service(
            App::new()
                .wrap(Protect::new(HostPolicy::new(
                    &self.allowed_hosts,
                    Some(PORT),
                )))
                .configure(http_api::configure(state)),
        )
        .await;
        let app = Rc::new(app);
        let call: Call = Rc::new(move |req: TestRequest, payload| {
            let app = Rc::clone(&app);
            let mut req = req.to_request();
            if let Some(payload) = payload {
                req = req.replace_payload(payload).0;
            }
            Box::pin(async move {
                app.call(req)
                    .await
                    .map(ServiceResponse::map_into_boxed_body)
            })
        });
        Server {
            call,
            service,
            events,
            audit,
        }
    }
}

/// One app under test. Dropping it shuts the service down, which ends the event hub,
/// the watcher and every open event stream.
pub(crate) struct Server {
    call: Call,
    pub(crate) service: Service,
    pub(crate) events: Events,
    pub(crate) audit: Arc<Recorder>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.service.shutdown();
    }
}

impl Server {
    /// A server with no token, loopback names only, default event options.
    pub(crate) async fn start() -> Server {
        Setup::new().start().await
    }

    /// A request with the loopback `Host` every normal client sends.
    pub(crate) fn req(method: Method, uri: &str) -> TestRequest {
        TestRequest::default()
            .method(method)
            .uri(uri)
            .insert_header((header::HOST, HOST))
    }

    /// A request with a JSON body and `Content-Type: application/json`.
    pub(crate) fn json_req(method: Method, uri: &str, body: &Value) -> TestRequest {
        Server::req(method, uri)
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(body.to_string())
    }

    pub(crate) async fn get(&self, uri: &str) -> Reply {
        self.send(Server::req(Method::GET, uri)).await
    }

    pub(crate) async fn delete(&self, uri: &str) -> Reply {
        self.send(Server::req(Method::DELETE, uri)).await
    }

    pub(crate) async fn post(&self, uri: &str, body: &Value) -> Reply {
        self.send(Server::json_req(Method::POST, uri, body)).await
    }

    pub(crate) async fn patch(&self, uri: &str, body: &Value) -> Reply {
        self.send(Server::json_req(Method::PATCH, uri, body)).await
    }

    /// Sends `req`, reads the whole body and checks what every response must be.
    pub(crate) async fn send(&self, req: TestRequest) -> Reply {
        self.send_with(req, None).await
    }

    /// Like [`Server::send`], with `payload` as the body instead of the request's.
    pub(crate) async fn send_with(&self, req: TestRequest, payload: Option<Payload>) -> Reply {
        let res = self.raw(req, payload).await;
        let what = format!("{} {}", res.request().method(), res.request().uri());
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = actix_web::body::to_bytes(res.into_body())
            .await
            .unwrap_or_else(|e| panic!("{what}: the body could not be read: {e}"));
        let reply = Reply {
            what,
            status,
            headers,
            body,
        };
        reply.check_invariants();
        reply
    }

    /// The response with its body unread (for the endless event stream).
    pub(crate) async fn raw(
        &self,
        req: TestRequest,
        payload: Option<Payload>,
    ) -> ServiceResponse<BoxBody> {
        (self.call)(req, payload)
            .await
            .unwrap_or_else(|e| panic!("the app returned an error, not a response: {e}"))
    }

    /// Queues `content` through the API and returns the created item.
    pub(crate) async fn add(&self, content: &str) -> Value {
        let reply = self
            .post("/api/instructions", &json!({ "content": content }))
            .await;
        reply.expect_status(201);
        reply.json()["item"].clone()
    }

    /// The item as `GET /api/instructions/{id}` shows it now.
    pub(crate) async fn item(&self, id: &str) -> Value {
        let reply = self.get(&format!("/api/instructions/{id}")).await;
        reply.expect_status(200);
        reply.json()["item"].clone()
    }

    /// The ids `GET /api/instructions?status=...` lists, in order.
    pub(crate) async fn listed_ids(&self, status: &str) -> Vec<String> {
        let reply = self
            .get(&format!("/api/instructions?status={status}"))
            .await;
        reply.expect_status(200);
        ids(&reply.json()["items"])
    }

    /// Makes an agent's call return at once on an empty queue.
    pub(crate) async fn no_wait(&self) {
        self.patch("/api/config", &json!({ "default_wait_seconds": 0 }))
            .await
            .expect_status(200);
    }

    /// One `get_user_request` call of `agent`, as the MCP side makes it.
    pub(crate) async fn fetch(&self, agent: &str) -> Fetch {
        let agent = AgentId::parse(agent).expect("a valid agent id");
        tokio::time::timeout(PATIENCE, self.service.next_instruction(agent))
            .await
            .expect("the call returns (is default_wait_seconds 0?)")
            .expect("the call succeeds")
    }

    /// Opens `GET /api/events`, optionally resuming after `last_event_id`.
    pub(crate) async fn events(&self, last_event_id: Option<&str>) -> EventStream {
        self.events_with(Server::req(Method::GET, "/api/events"), last_event_id)
            .await
    }

    pub(crate) async fn events_with(
        &self,
        req: TestRequest,
        last_event_id: Option<&str>,
    ) -> EventStream {
        let req = match last_event_id {
            Some(id) => req.insert_header(("Last-Event-ID", id)),
            None => req,
        };
        let res = self.raw(req, None).await;
        assert_eq!(res.status().as_u16(), 200, "GET /api/events");
        let content_type = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_no_cors(res.headers(), "GET /api/events");
        EventStream {
            content_type,
            headers: res.headers().clone(),
            body: res.into_body(),
            parser: SseParser::default(),
            ready: VecDeque::new(),
            seen: Vec::new(),
            cursor: 0,
        }
    }
}

/// The ids of a JSON array of items, in order.
pub(crate) fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("expected an array of items, got {items}"))
        .iter()
        .map(|i| id_of(i).to_owned())
        .collect()
}

pub(crate) fn id_of(item: &Value) -> &str {
    item["id"]
        .as_str()
        .unwrap_or_else(|| panic!("item without an id: {item}"))
}

/// A response read to its end.
#[derive(Debug)]
pub(crate) struct Reply {
    /// `METHOD uri`, for failure messages.
    pub(crate) what: String,
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: the body is not JSON ({e}): {:?}",
                self.what,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub(crate) fn expect_status(&self, status: u16) {
        assert_eq!(
            self.status,
            status,
            "{}: unexpected status; body {:?}",
            self.what,
            String::from_utf8_lossy(&self.body)
        );
    }

    /// Asserts the documented error: this status, this code, a message.
    #[track_caller]
    pub(crate) fn expect_error(&self, status: u16, code: &str) {
        self.expect_status(status);
        assert_eq!(self.json()["error"]["code"], code, "{}", self.what);
    }

    /// What every response must be (SPEC §4, §5): never a 5xx for anything a
    /// client sends, never a CORS header, and every error in the one documented
    /// shape with a documented code that matches its status.
    fn check_invariants(&self) {
        let what = &self.what;
        assert!(
            self.status < 500,
            "{what}: answered {} {:?}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        assert_no_cors(&self.headers, what);
        if self.status < 400 {
            return;
        }
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{what}: an error is JSON"
        );
        let body = self.json();
        let keys: BTreeSet<_> = body
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([&String::from("error")]),
            "{what}: {body}"
        );
        let error = &body["error"];
        let keys: BTreeSet<_> = error
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        // `field` names the one field at fault, on validation errors only.
        let allowed = if self.status == 422 {
            BTreeSet::from(["code", "message", "field"])
        } else {
            BTreeSet::from(["code", "message"])
        };
        assert!(
            keys.contains("code") && keys.contains("message") && keys.is_subset(&allowed),
            "{what}: {body}"
        );
        if keys.contains("field") {
            assert!(
                error["field"].as_str().is_some_and(|f| !f.is_empty()),
                "{what}: {body}"
            );
        }
        let code = error["code"].as_str().unwrap_or_default();
        assert!(CODES.contains(&code), "{what}: undocumented code in {body}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            !message.trim().is_empty(),
            "{what}: empty message in {body}"
        );
        let expected = match self.status {
            400 | 405 => "bad_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            409 => "conflict",
            413 => "payload_too_large",
            415 => "unsupported_media_type",
            422 => "validation",
            other => panic!("{what}: undocumented status {other}: {body}"),
        };
        assert_eq!(code, expected, "{what}: the code does not match the status");
        if self.status == 401 {
            assert_eq!(
                self.header("www-authenticate"),
                Some("Bearer"),
                "{what}: a 401 names the scheme"
            );
        }
    }
}

#[track_caller]
pub(crate) fn assert_no_cors(headers: &HeaderMap, what: &str) {
    for name in headers.keys() {
        assert!(
            !name.as_str().starts_with("access-control-"),
            "{what}: sent the CORS header {name}"
        );
    }
}

/// An audit entry as the test keeps it: the action and the fields that matter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub(crate) action: &'static str,
    pub(crate) detail: Value,
}

/// An audit sink that keeps every entry in memory.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    entries: Mutex<Vec<Recorded>>,
}

impl Recorder {
    /// Everything recorded so far.
    pub(crate) fn entries(&self) -> Vec<Recorded> {
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Everything recorded so far, forgetting it.
    pub(crate) fn take(&self) -> Vec<Recorded> {
        self.entries
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }
}

impl Audit for Recorder {
    fn record(&self, entry: &AuditEntry<'_>) {
        let detail = match entry {
            AuditEntry::InstructionCreated {
                item,
                requeued_from,
            } => json!({
                "id": item.id.to_string(),
                "requeued_from": requeued_from.map(|id| id.to_string()),
            }),
            AuditEntry::InstructionUpdated { item } => {
                json!({"id": item.id.to_string(), "content": item.content.as_str()})
            }
            AuditEntry::InstructionDeleted { item } => json!({"id": item.id.to_string()}),
            AuditEntry::InstructionReordered { queue, ids } => json!({
                "queue": queue.as_str(),
                "ids": ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
            AuditEntry::ConfigUpdated { patch, settings } => json!({
                "patch": {
                    "default_wait_seconds": patch.default_wait_seconds(),
                    "default_empty_response": patch.default_empty_response(),
                    "agent_stale_after_seconds": patch.agent_stale_after_seconds(),
                },
                "settings": http_api::settings_json(settings),
            }),
            AuditEntry::ToolCall {
                caller,
                result,
                end,
                ..
            } => json!({
                "agent": caller.agent.as_str(),
                "queue": caller.queue.as_str(),
                "result": result.as_str(),
                "end": end,
            }),
            AuditEntry::AuthFailure {
                method,
                path,
                reason,
            } => json!({"method": method, "path": path, "reason": reason}),
            _ => Value::Null,
        };
        if let Ok(mut entries) = self.entries.lock() {
            entries.push(Recorded {
                action: entry.action(),
                detail,
            });
        }
    }
}

/// One SSE message (or a comment-only block) as a client parses it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Frame {
    pub(crate) id: Option<u64>,
    pub(crate) event: Option<String>,
    /// The `data` lines joined, parsed as JSON.
    pub(crate) data: Option<Value>,
    pub(crate) retry: Option<u64>,
    pub(crate) comments: Vec<String>,
}

impl Frame {
    /// The typed view of a frame test_support's parser read: a numeric id and
    /// JSON data, as every message of ours has.
    fn from_wire(wire: SseFrame) -> Frame {
        let block = format!("{wire:?}");
        assert!(
            wire.unknown.is_empty(),
            "unknown SSE field {:?} in {block}",
            wire.unknown
        );
        let id = wire.id.as_deref().map(|id| {
            id.parse()
                .unwrap_or_else(|_| panic!("a non-numeric id in {block}"))
        });
        let data = (!wire.data.is_empty()).then(|| {
            serde_json::from_str(&wire.data)
                .unwrap_or_else(|e| panic!("data is not JSON ({e}): {:?}", wire.data))
        });
        Frame {
            id,
            event: wire.event,
            data,
            retry: wire.retry.and_then(|r| r.parse().ok()),
            comments: wire.comments,
        }
    }

    pub(crate) fn is(&self, event: &str) -> bool {
        self.event.as_deref() == Some(event)
    }

    /// The `data` field of the envelope: the item or object itself.
    pub(crate) fn payload(&self) -> &Value {
        self.data
            .as_ref()
            .map(|d| &d["data"])
            .unwrap_or(&Value::Null)
    }
}

/// A client's view of `GET /api/events`: everything it read, in order.
pub(crate) struct EventStream {
    pub(crate) content_type: String,
    pub(crate) headers: HeaderMap,
    body: BoxBody,
    parser: SseParser,
    /// Frames parsed but not yet read.
    ready: VecDeque<Frame>,
    /// Every frame read so far.
    pub(crate) seen: Vec<Frame>,
    /// Where [`EventStream::next_matching`] looks next.
    cursor: usize,
}

impl EventStream {
    /// Reads one more frame off the wire; `None` when the stream ended.
    async fn read_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.ready.pop_front() {
                self.seen.push(frame.clone());
                return Some(frame);
            }
            let body = &mut self.body;
            let chunk = poll_fn(|cx| Pin::new(&mut *body).poll_next(cx)).await;
            match chunk {
                Some(Ok(bytes)) => self
                    .ready
                    .extend(self.parser.feed(&bytes).into_iter().map(Frame::from_wire)),
                Some(Err(e)) => panic!("the event stream failed: {e}"),
                None => return None,
            }
        }
    }

    /// Reads until `pred` holds for a frame at or after the cursor, which then moves
    /// past it: successive calls find frames in the order they were sent.
    pub(crate) async fn next_matching(
        &mut self,
        what: &str,
        pred: impl Fn(&Frame) -> bool,
    ) -> Frame {
        let i = self
            .read_until(what, |seen, cursor| {
                seen[cursor..].iter().position(&pred).map(|i| cursor + i)
            })
            .await;
        self.cursor = i + 1;
        self.seen[i].clone()
    }

    /// The next frame of type `event` after the cursor.
    pub(crate) async fn next_event(&mut self, event: &str) -> Frame {
        self.next_matching(event, |f| f.is(event)).await
    }

    /// Reads until `pred` holds for any frame seen so far, not moving the cursor:
    /// for messages whose place among the others is not fixed (`status.changed`).
    pub(crate) async fn find(&mut self, what: &str, pred: impl Fn(&Frame) -> bool) -> Frame {
        let i = self
            .read_until(what, |seen, _| seen.iter().position(&pred))
            .await;
        self.seen[i].clone()
    }

    /// Reads until `pick` finds a frame among those seen (given the cursor) and
    /// returns its index; fails naming `what` when the stream ends or stalls.
    async fn read_until(
        &mut self,
        what: &str,
        pick: impl Fn(&[Frame], usize) -> Option<usize>,
    ) -> usize {
        let found = tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(i) = pick(&self.seen, self.cursor) {
                    return Some(i);
                }
                self.read_frame().await?;
            }
        })
        .await;
        match found {
            Ok(Some(i)) => i,
            Ok(None) => panic!("the stream ended before {what}; seen {:#?}", self.seen),
            Err(_) => panic!("no {what} within {PATIENCE:?}; seen {:#?}", self.seen),
        }
    }

    /// Reads until the frame with id `id` (or a later one) has been seen.
    pub(crate) async fn read_through(&mut self, id: u64) {
        self.find(&format!("the message with id {id}"), |f| {
            f.id.is_some_and(|i| i >= id)
        })
        .await;
    }

    /// Reads to the end of the stream, failing if it does not end in time.
    pub(crate) async fn expect_end(&mut self) {
        let ended = tokio::time::timeout(PATIENCE, async {
            while self.read_frame().await.is_some() {}
        })
        .await;
        assert!(
            ended.is_ok(),
            "the stream did not end; seen {:#?}",
            self.seen
        );
    }

    /// The frames that are messages (have an id), in order.
    pub(crate) fn messages(&self) -> Vec<&Frame> {
        self.seen.iter().filter(|f| f.id.is_some()).collect()
    }
}
