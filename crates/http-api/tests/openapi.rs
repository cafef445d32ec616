//! Conformance of `/openapi.json` with the server it describes: every documented
//! route is served and every served route documented; every operation, driven
//! through its successes and refusals, answers only with statuses its entry lists
//! and bodies that validate against the documented schemas (with a small JSON
//! Schema validator below); the document itself is well-formed OpenAPI 3.1; and
//! `/docs` is a page that loads only files this server serves.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use actix_web::App;
use actix_web::body::MessageBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::test::{self, TestRequest};
use actix_web::web::Bytes;
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::LocalBoxStream;
use http_api::{
    ApiState, BODY_LIMIT, Events, EventsOptions, HostPolicy, Protect, ServerInfo, configure,
    openapi_document,
};
use queue_core::{AgentId, MemoryStore, QueueError, QueueName, Service, StoreError};
use serde_json::{Value, json};
use test_support::{FaultyStore, SseFrame, SseParser};

const HOST: &str = "127.0.0.1:8000";
const TOKEN: &str = "conformance-token";

/// Every route the server answers, as the document should list it.
const ROUTES: [(&str, &str); 17] = [
    ("GET", "/healthz"),
    ("GET", "/api/status"),
    ("GET", "/api/queues"),
    ("GET", "/api/instructions"),
    ("POST", "/api/instructions"),
    ("POST", "/api/instructions/reorder"),
    ("GET", "/api/instructions/{id}"),
    ("PATCH", "/api/instructions/{id}"),
    ("DELETE", "/api/instructions/{id}"),
    ("POST", "/api/instructions/{id}/requeue"),
    ("GET", "/api/config"),
    ("PATCH", "/api/config"),
    ("GET", "/api/events"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/"),
    ("GET", "/docs/{file}"),
];

const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

fn doc() -> &'static Value {
    openapi_document()
}

// ---------------------------------------------------------------------------
// The server in-process, and what it answers.
// ---------------------------------------------------------------------------

/// An answer: status, headers, and the body as a stream of chunks.
struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: LocalBoxStream<'static, Bytes>,
}

/// An answer read to its end.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

type Sender = Rc<dyn Fn(TestRequest) -> LocalBoxFuture<'static, Raw>>;

fn body_stream<B: MessageBody + 'static>(body: B) -> LocalBoxStream<'static, Bytes> {
    let mut body = Box::pin(body);
    futures_util::stream::poll_fn(move |cx| match body.as_mut().poll_next(cx) {
        Poll::Ready(Some(Ok(chunk))) => Poll::Ready(Some(chunk)),
        Poll::Ready(Some(Err(e))) => {
            let e: Box<dyn std::error::Error> = e.into();
            panic!("the body failed: {e}")
        }
        Poll::Ready(None) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
    .boxed_local()
}

/// The app as the binary builds it, over a store that can be told to fail.
struct Server {
    send: Sender,
    service: Service,
    store: Arc<FaultyStore>,
    /// (operationId, status) pairs seen answered, for the coverage check.
    seen: RefCell<BTreeSet<(String, u16)>>,
}

impl Server {
    async fn start(token: Option<&str>) -> Server {
        let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
        let service = Service::builder(store.clone()).build().unwrap();
        let events = Events::new(
            service.clone(),
            ServerInfo::new(service.now()),
            EventsOptions::default(),
        )
        .await
        .unwrap();
        actix_web::rt::spawn(events.clone().run());
        let watcher = service.clone();
        actix_web::rt::spawn(async move { watcher.watch().await });
        let state = ApiState::new(service.clone(), events).with_token(token.map(str::to_owned));
        let app = Rc::new(
            test::init_service(
                App::new()
                    .wrap(Protect::new(HostPolicy::new(&[], Some(8000))))
                    .configure(configure(state)),
            )
            .await,
        );
        let send: Sender = Rc::new(move |req: TestRequest| {
            let app = Rc::clone(&app);
            Box::pin(async move {
                let res = test::call_service(&*app, req.to_request()).await;
                let status = res.status();
                let headers = res.headers().clone();
                Raw {
                    status,
                    headers,
                    body: body_stream(res.into_body()),
                }
            })
        });
        Server {
            send,
            service,
            store,
            seen: RefCell::default(),
        }
    }

    async fn raw(&self, req: TestRequest) -> Raw {
        (self.send)(req).await
    }

    async fn call(&self, req: TestRequest) -> Reply {
        let raw = self.raw(req).await;
        read(raw).await
    }

    /// Sends `req`, an instance of the documented `method template`, checks that it
    /// got `status` and that the answer is one the document lists, and returns it.
    async fn expect(&self, method: &str, template: &str, req: TestRequest, status: u16) -> Reply {
        let raw = self.raw(req).await;
        let streams = response_of(method, template, raw.status.as_u16())
            .and_then(|r| r.get("content"))
            .is_some_and(|c| c.get("text/event-stream").is_some());
        let reply = if streams {
            Reply {
                status: raw.status.as_u16(),
                headers: raw.headers,
                body: Bytes::new(),
            }
        } else {
            read(raw).await
        };
        assert_eq!(
            reply.status,
            status,
            "{method} {template}: {}",
            reply.text()
        );
        self.conforms(method, template, &reply);
        reply
    }

    /// [`Server::expect`] for `GET path` with `If-None-Match: etag`.
    async fn revalidate(&self, template: &str, path: &str, etag: &str, status: u16) -> Reply {
        let req = req("GET", path).insert_header((header::IF_NONE_MATCH, etag));
        self.expect("GET", template, req, status).await
    }

    /// [`Server::expect`] for `uri` with `body` sent as it is, under `content_type`.
    async fn expect_raw(
        &self,
        method: &str,
        template: &str,
        uri: &str,
        content_type: Option<&str>,
        body: &str,
        status: u16,
    ) -> Reply {
        self.expect(
            method,
            template,
            raw_req(method, uri, content_type, body),
            status,
        )
        .await
    }

    /// Sends every request and fails listing each one (named by its `String`)
    /// not refused with `status`, so one run shows them all.
    async fn all_answer(&self, status: u16, cases: Vec<(String, TestRequest)>) {
        let mut wrong = Vec::new();
        for (what, req) in cases {
            let reply = self.call(req).await;
            if reply.status != status {
                wrong.push(format!("{what}: {} {}", reply.status, reply.text()));
            }
        }
        assert!(
            wrong.is_empty(),
            "not refused with {status}:\n{}",
            wrong.join("\n")
        );
    }

    /// Like [`Server::expect`] for a request with a JSON body, and checks that the
    /// documented request schema accepts the body exactly when `schema_accepts`.
    async fn expect_body(
        &self,
        method: &str,
        template: &str,
        uri: &str,
        body: &Value,
        schema_accepts: bool,
        status: u16,
    ) -> Reply {
        let request_schema =
            &operation(method, template)["requestBody"]["content"]["application/json"]["schema"];
        let errors = validate(request_schema, body, false);
        assert_eq!(
            errors.is_empty(),
            schema_accepts,
            "{method} {template}: the documented request schema {} {body}: {errors:?}",
            if schema_accepts {
                "should accept"
            } else {
                "should refuse"
            }
        );
        self.expect(method, template, json_req(method, uri, body), status)
            .await
    }

    /// Whether `reply` is an answer the document lists for `method template`.
    fn conforms(&self, method: &str, template: &str, reply: &Reply) {
        let op = operation(method, template);
        let id = op["operationId"].as_str().unwrap();
        let response = response_of(method, template, reply.status).unwrap_or_else(|| {
            panic!(
                "{method} {template} answered {} ({}), which its entry does not list",
                reply.status,
                reply.text()
            )
        });
        self.seen.borrow_mut().insert((id.to_owned(), reply.status));
        check_response(&format!("{method} {template}"), response, reply);
    }

    /// Adds an instruction, returns its id.
    async fn add(&self, text: &str) -> String {
        let reply = self
            .expect_body(
                "POST",
                "/api/instructions",
                "/api/instructions",
                &json!({"content": text}),
                true,
                201,
            )
            .await;
        reply.json()["item"]["id"].as_str().unwrap().to_owned()
    }

    /// Lets an agent take the head of the queue, returns its id.
    async fn consume(&self) -> String {
        let fetch = self
            .service
            .next_instruction(AgentId::parse("conformance-agent").unwrap())
            .await
            .unwrap();
        match fetch.outcome {
            queue_core::FetchOutcome::Instruction(item) => item.id.to_string(),
            other => panic!("nothing was delivered: {other:?}"),
        }
    }

    fn failing(&self, on: bool) {
        if on {
            self.store.fail_all(QueueError::Store(StoreError::Busy));
        } else {
            self.store.heal_all();
        }
    }
}

async fn read(raw: Raw) -> Reply {
    let mut body = Vec::new();
    let mut stream = raw.body;
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("the body did not end")
    {
        body.extend_from_slice(&chunk);
    }
    Reply {
        status: raw.status.as_u16(),
        headers: raw.headers,
        body: Bytes::from(body),
    }
}

fn req(method: &str, uri: &str) -> TestRequest {
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    TestRequest::default()
        .method(method)
        .uri(uri)
        .insert_header((header::HOST, HOST))
}

fn json_req(method: &str, uri: &str, body: &Value) -> TestRequest {
    req(method, uri)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body.to_string())
}

fn raw_req(method: &str, uri: &str, content_type: Option<&str>, body: &str) -> TestRequest {
    let mut r = req(method, uri).set_payload(body.to_owned());
    if let Some(ct) = content_type {
        r = r.insert_header((header::CONTENT_TYPE, ct));
    }
    r
}

// ---------------------------------------------------------------------------
// Reading the document.
// ---------------------------------------------------------------------------

fn resolve(value: &Value) -> &'static Value {
    let reference = value["$ref"].as_str().unwrap();
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("not a local reference: {reference}"));
    doc()
        .pointer(pointer)
        .unwrap_or_else(|| panic!("{reference} does not resolve"))
}

/// `value`, or what it refers to.
fn deref(value: &Value) -> &Value {
    if value.get("$ref").is_some() {
        resolve(value)
    } else {
        value
    }
}

fn operation(method: &str, template: &str) -> &'static Value {
    let op = &doc()["paths"][template][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {template} is not documented");
    op
}

fn response_of(method: &str, template: &str, status: u16) -> Option<&'static Value> {
    operation(method, template)["responses"]
        .get(status.to_string())
        .map(deref)
}

/// Every documented (method, path template).
fn documented() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc()["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if method != "parameters" {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// A request path for a path template.
fn instance(template: &str) -> String {
    template
        .replace("{id}", "00000000-0000-4000-8000-000000000000")
        .replace("{file}", "init.js")
}

/// Checks `reply` against one documented response.
fn check_response(what: &str, response: &Value, reply: &Reply) {
    let content_type = reply.header("content-type");
    if let Some(headers) = response.get("headers").and_then(Value::as_object) {
        for (name, spec) in headers {
            let spec = deref(spec);
            let value = reply.header(name);
            assert!(
                reply.headers.contains_key(name.as_str()),
                "{what} {}: the documented header {name} is missing",
                reply.status
            );
            let errors = validate(&spec["schema"], &json!(value), false);
            assert!(errors.is_empty(), "{what}: header {name}: {errors:?}");
        }
    }
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        assert!(
            reply.body.is_empty(),
            "{what} {}: the document lists no body, but one came: {}",
            reply.status,
            reply.text()
        );
        return;
    };
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let media = content
        .get(essence)
        .or_else(|| content.get("*/*"))
        .unwrap_or_else(|| {
            panic!(
                "{what} {}: Content-Type {content_type:?} is not among the documented {:?}",
                reply.status,
                content.keys().collect::<Vec<_>>()
            )
        });
    if essence == "application/json" {
        let errors = validate(&media["schema"], &reply.json(), true);
        assert!(
            errors.is_empty(),
            "{what} {}: the body does not match the document:\n{}\n{}",
            reply.status,
            errors.join("\n"),
            reply.text()
        );
    }
}

// ---------------------------------------------------------------------------
// A JSON Schema validator for the subset the document uses.
// ---------------------------------------------------------------------------

/// Keywords that only describe.
const ANNOTATIONS: [&str; 7] = [
    "description",
    "title",
    "default",
    "example",
    "examples",
    "readOnly",
    "writeOnly",
];

/// Keywords the validator checks.
const ASSERTIONS: [&str; 18] = [
    "$ref",
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "uniqueItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "anyOf",
    "allOf",
    "minProperties",
];

/// The errors of `value` against `schema`, none when it validates. With `strict`,
/// an object schema with `properties` refuses undocumented properties even
/// without `additionalProperties: false`: an answer must not carry fields the
/// document does not list.
fn validate(schema: &Value, value: &Value, strict: bool) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, strict, "$", &mut errors);
    errors
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        other => panic!("unknown type {other}"),
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// RFC 3339, loosely: `YYYY-MM-DDTHH:MM:SS[.fraction]` and then `Z` (the server
/// writes UTC only) or an offset.
fn is_date_time(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let Some((date, time)) = s.split_once('T') else {
        return false;
    };
    let date: Vec<&str> = date.split('-').collect();
    if date.len() != 3 || date[0].len() != 4 || date[1].len() != 2 || date[2].len() != 2 {
        return false;
    }
    if !date.iter().all(|p| digits(p)) {
        return false;
    }
    let (clock, zone_ok) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, true)
    } else if time.len() > 6 {
        let (clock, zone) = time.split_at(time.len() - 6);
        let zone_ok = (zone.starts_with('+') || zone.starts_with('-'))
            && digits(&zone[1..3])
            && &zone[3..4] == ":"
            && digits(&zone[4..6]);
        (clock, zone_ok)
    } else {
        return false;
    };
    let (hms, fraction) = match clock.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (clock, None),
    };
    let hms: Vec<&str> = hms.split(':').collect();
    zone_ok
        && hms.len() == 3
        && hms.iter().all(|p| p.len() == 2 && digits(p))
        && fraction.is_none_or(digits)
}

fn check(schema: &Value, value: &Value, strict: bool, at: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                errors.push(format!("{at}: nothing is allowed here"));
                return;
            }
            other => panic!("{at}: not a schema: {other}"),
        }
    };
    for key in schema.keys() {
        assert!(
            ANNOTATIONS.contains(&key.as_str()) || ASSERTIONS.contains(&key.as_str()),
            "the validator does not know the keyword {key:?} (at {at})"
        );
    }
    if let Some(reference) = schema.get("$ref") {
        check(
            resolve(&json!({"$ref": reference})),
            value,
            strict,
            at,
            errors,
        );
    }
    if let Some(types) = schema.get("type") {
        let names: Vec<&str> = match types {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().map(|t| t.as_str().unwrap()).collect(),
            other => panic!("{at}: bad type {other}"),
        };
        if !names.iter().any(|n| type_matches(n, value)) {
            errors.push(format!("{at}: {value} is not of type {types}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        errors.push(format!("{at}: {value} is not {constant}"));
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for sub in all {
            check(sub, value, strict, at, errors);
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any
            .iter()
            .any(|sub| validate_at(sub, value, strict, at).is_empty())
    {
        let why: Vec<String> = any
            .iter()
            .flat_map(|sub| validate_at(sub, value, strict, at))
            .collect();
        errors.push(format!("{at}: matches none of anyOf: {why:?}"));
    }
    if let Some(s) = value.as_str() {
        let n = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && n < min
        {
            errors.push(format!("{at}: {n} characters, fewer than {min}"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && n > max
        {
            errors.push(format!("{at}: {n} characters, more than {max}"));
        }
        match schema.get("pattern").and_then(Value::as_str) {
            None => {}
            // The one pattern the document uses: queue and agent names.
            Some("^[A-Za-z0-9._:@-]+$")
                if s.is_empty()
                    || !s
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._:@-".contains(c)) =>
            {
                errors.push(format!("{at}: {s:?} does not match the name pattern"));
            }
            Some("^[A-Za-z0-9._:@-]+$") => {}
            Some(other) => errors.push(format!("{at}: the pattern {other:?} is not checked here")),
        }
        match schema.get("format").and_then(Value::as_str) {
            Some("uuid") if !is_uuid(s) => errors.push(format!("{at}: {s:?} is not a UUID")),
            Some("date-time") if !is_date_time(s) => {
                errors.push(format!("{at}: {s:?} is not an RFC 3339 date-time"));
            }
            _ => {}
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            errors.push(format!("{at}: {value} is below {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            errors.push(format!("{at}: {value} is above {max}"));
        }
        if schema.get("format").and_then(Value::as_str) == Some("int64") && !value.is_i64() {
            errors.push(format!("{at}: {value} is not a 64-bit integer"));
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(item_schema, item, strict, &format!("{at}[{i}]"), errors);
            }
        }
        if schema.get("uniqueItems") == Some(&Value::Bool(true)) {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    errors.push(format!("{at}: {item} appears twice"));
                }
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required {
                let name = name.as_str().unwrap();
                if !object.contains_key(name) {
                    errors.push(format!("{at}: the required property {name:?} is missing"));
                }
            }
        }
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
            && (object.len() as u64) < min
        {
            errors.push(format!("{at}: fewer than {min} properties"));
        }
        if let Some(properties) = properties {
            for (name, sub) in properties {
                if let Some(v) = object.get(name) {
                    check(sub, v, strict, &format!("{at}.{name}"), errors);
                }
            }
        }
        let closed = match schema.get("additionalProperties") {
            Some(Value::Bool(false)) => true,
            Some(Value::Bool(true)) => false,
            Some(other) => panic!("{at}: additionalProperties {other} is not supported"),
            None => {
                strict
                    && properties.is_some()
                    && schema.get("type").is_some_and(|t| {
                        t == "object" || t.as_array().is_some_and(|a| a.contains(&json!("object")))
                    })
            }
        };
        if closed {
            for name in object.keys() {
                if !properties.is_some_and(|p| p.contains_key(name)) {
                    errors.push(format!("{at}: the property {name:?} is not documented"));
                }
            }
        }
    }
}

fn validate_at(schema: &Value, value: &Value, strict: bool, at: &str) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, strict, at, &mut errors);
    errors
}

#[test]
fn the_validator_checks_what_it_claims() {
    let schema = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["id", "at", "n", "tag"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "at": {"type": ["string", "null"], "format": "date-time"},
            "n": {"type": "integer", "minimum": 1, "maximum": 3},
            "tag": {"type": "string", "enum": ["a", "b"], "minLength": 1, "maxLength": 1},
            "list": {"type": "array", "items": {"type": "integer"}, "uniqueItems": true},
            "either": {"anyOf": [{"type": "null"}, {"$ref": "#/components/schemas/Health"}]},
        },
    });
    let good = json!({
        "id": "0190f0e4-4b1a-7c3e-9f00-000000000001",
        "at": "2026-01-02T03:04:05.123456Z",
        "n": 2,
        "tag": "a",
        "list": [1, 2],
        "either": {"status": "ok", "server_time": "2026-01-02T03:04:05+01:00"},
    });
    assert_eq!(validate(&schema, &good, false), Vec::<String>::new());
    assert!(
        validate(
            &schema,
            &json!({"id": "x", "at": null, "n": 2, "tag": "a"}),
            false
        )
        .len()
            == 1
    );
    for (field, bad) in [
        ("id", json!("0190f0e4-4b1a-7c3e-9f00-00000000000")),
        ("at", json!("2026-01-02 03:04:05Z")),
        ("at", json!(5)),
        ("n", json!(0)),
        ("n", json!(4)),
        ("n", json!(2.5)),
        ("tag", json!("c")),
        ("tag", json!("")),
        ("list", json!([1, 1])),
        ("list", json!(["1"])),
        ("either", json!({"status": "ok"})),
        ("extra", json!(1)),
    ] {
        let mut v = good.clone();
        v[field] = bad.clone();
        assert!(!validate(&schema, &v, false).is_empty(), "{field}: {bad}");
    }
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("tag");
    assert!(!validate(&schema, &missing, false).is_empty());
    // Strict mode closes documented objects.
    let open = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    assert!(validate(&open, &json!({"a": 1, "b": 2}), false).is_empty());
    assert!(!validate(&open, &json!({"a": 1, "b": 2}), true).is_empty());
    // The error responses pin the code.
    let not_found = &deref(&doc()["components"]["responses"]["NotFound"])["content"]["application/json"]
        ["schema"];
    let body = |code: &str| json!({"error": {"code": code, "message": "m"}});
    assert!(validate(not_found, &body("not_found"), true).is_empty());
    assert!(!validate(not_found, &body("conflict"), true).is_empty());
    assert!(!validate(not_found, &json!({"error": {"code": "not_found"}}), true).is_empty());
}

// ---------------------------------------------------------------------------
// (c) The document itself.
// ---------------------------------------------------------------------------

fn walk<'a>(value: &'a Value, at: String, visit: &mut impl FnMut(&str, &'a Value)) {
    visit(&at, value);
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                walk(v, format!("{at}/{k}"), visit);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, format!("{at}/{i}"), visit);
            }
        }
        _ => {}
    }
}

#[test]
fn the_document_is_well_formed_openapi_3_1() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(
        doc["servers"],
        json!([{"url": "/", "description": "this server"}])
    );
    assert_eq!(BODY_LIMIT, 262_144, "the 413 description quotes the limit");

    // Every $ref resolves; no 3.0 leftovers.
    walk(doc, String::from("#"), &mut |at, v| {
        if let Some(r) = v.get("$ref") {
            let r = r
                .as_str()
                .unwrap_or_else(|| panic!("{at}: $ref is not a string"));
            assert!(
                r.strip_prefix('#').and_then(|p| doc.pointer(p)).is_some(),
                "{at}: {r} does not resolve"
            );
        }
        if let Some(map) = v.as_object() {
            assert!(
                !map.contains_key("nullable"),
                "{at}: `nullable` is OpenAPI 3.0; use a type array"
            );
        }
    });

    // Every schema uses only keywords the validator knows.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Item",
        "ItemEnvelope",
        "ItemList",
        "Agent",
        "Status",
        "Config",
        "ConfigPatch",
        "NewInstruction",
        "EditInstruction",
        "Reorder",
        "Error",
        "Health",
    ] {
        assert!(
            schemas.contains_key(name),
            "components/schemas/{name} is missing"
        );
    }
    for (name, schema) in schemas {
        // Validating something against each schema visits every keyword in it.
        visit_keywords(schema, &format!("components/schemas/{name}"));
    }

    // The shapes the brief pins down.
    let agent = &schemas["Agent"];
    assert_eq!(
        agent["properties"]["state"]["enum"],
        json!(["waiting", "working", "idle", "gone"])
    );
    for nullable in ["last_fetch_at", "last_result_type", "waiting_until"] {
        assert_eq!(
            agent["properties"][nullable]["type"],
            json!(["string", "null"]),
            "{nullable}"
        );
    }
    assert_eq!(schemas["ItemList"]["required"], json!(["items", "total"]));
    assert_eq!(
        schemas["Error"]["properties"]["error"]["properties"]["code"]["enum"],
        json!([
            "bad_request",
            "validation",
            "not_found",
            "conflict",
            "unauthorized",
            "forbidden",
            "unsupported_media_type",
            "payload_too_large",
            "internal"
        ])
    );
    let content = &schemas["NewInstruction"]["properties"]["content"];
    assert_eq!(
        (content["minLength"].as_u64(), content["maxLength"].as_u64()),
        (Some(1), Some(32_768))
    );
    assert!(content["description"].as_str().unwrap().contains("trimmed"));
    let config = &schemas["ConfigPatch"]["properties"];
    assert_eq!(config["default_wait_seconds"]["minimum"], 0);
    assert_eq!(config["default_wait_seconds"]["maximum"], 86_400);
    assert_eq!(config["agent_stale_after_seconds"]["minimum"], 1);
    assert_eq!(config["agent_stale_after_seconds"]["maximum"], 86_400);
    assert_eq!(config["default_empty_response"]["maxLength"], 4_096);

    // Every operation: an id (unique), a summary, its path parameters declared,
    // closed request bodies, and responses keyed by real status codes.
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let shared: Vec<&Value> = item
            .get("parameters")
            .and_then(Value::as_array)
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let what = format!("{method} {path}");
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: no operationId"));
            assert!(
                ids.insert(id.to_owned()),
                "{what}: operationId {id} is used twice"
            );
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{what}: no summary"
            );
            let params: Vec<&Value> = shared
                .iter()
                .copied()
                .chain(
                    op.get("parameters")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten(),
                )
                .map(deref)
                .collect();
            for segment in path.split('/') {
                if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    assert!(
                        params.iter().any(|p| p["in"] == "path"
                            && p["name"] == name
                            && p["required"] == true),
                        "{what}: the path parameter {name} is not declared"
                    );
                }
            }
            if let Some(body) = op.get("requestBody") {
                let schema = deref(&body["content"]["application/json"]["schema"]);
                if body["required"] == true {
                    assert_eq!(
                        schema["additionalProperties"],
                        json!(false),
                        "{what}: the request body is not closed"
                    );
                }
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{what}: no responses");
            for (status, response) in responses {
                let code: u16 = status
                    .parse()
                    .unwrap_or_else(|_| panic!("{what}: {status}"));
                assert!((200..600).contains(&code), "{what}: {status}");
                assert!(
                    deref(response)["description"].as_str().is_some(),
                    "{what} {status}: no description"
                );
            }
            // Under /api: the bearer scheme (optional: only with API_TOKEN).
            if path.starts_with("/api/") {
                assert_eq!(op["security"], json!([{"bearerAuth": []}, {}]), "{what}");
                assert!(responses.contains_key("401"), "{what}: no 401");
            } else {
                assert!(op.get("security").is_none(), "{what}");
                assert!(!responses.contains_key("401"), "{what}: 401 outside /api");
            }
            assert!(responses.contains_key("403"), "{what}: no 403");
        }
    }
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(
        (scheme["type"].as_str(), scheme["scheme"].as_str()),
        (Some("http"), Some("bearer"))
    );
    assert!(
        scheme["description"]
            .as_str()
            .unwrap()
            .contains("API_TOKEN")
    );

    // The events entry explains the stream.
    let events = operation("GET", "/api/events");
    let text = events["description"].as_str().unwrap();
    for needle in [
        "instruction.created",
        "instruction.updated",
        "instruction.deleted",
        "instruction.consumed",
        "instruction.reordered",
        "config.updated",
        "agent.updated",
        "status.changed",
        "Last-Event-ID",
        "refetch",
        "heartbeat",
        "id:",
        "EventEnvelope",
    ] {
        assert!(
            text.contains(needle),
            "the events description does not mention {needle}"
        );
    }
}

/// Runs every keyword of `schema` (and its subschemas) past the validator's list.
fn visit_keywords(schema: &Value, at: &str) {
    let Some(map) = schema.as_object() else {
        return;
    };
    for (key, sub) in map {
        assert!(
            ANNOTATIONS.contains(&key.as_str()) || ASSERTIONS.contains(&key.as_str()),
            "{at}: the validator does not know the keyword {key:?}"
        );
        match key.as_str() {
            "properties" => {
                for (name, s) in sub.as_object().unwrap() {
                    visit_keywords(s, &format!("{at}/properties/{name}"));
                }
            }
            "items" => visit_keywords(sub, &format!("{at}/items")),
            "anyOf" | "allOf" => {
                for (i, s) in sub.as_array().unwrap().iter().enumerate() {
                    visit_keywords(s, &format!("{at}/{key}/{i}"));
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------
// (a) Documented routes are served; served routes are documented.
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn every_documented_route_is_served_and_every_served_one_documented() {
    let mut table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        documented(),
        table,
        "the document and the table of served routes differ"
    );
    let server = Server::start(None).await;
    let generic_404 = |reply: &Reply| {
        reply.status == 404
            && reply.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("nothing is served at"))
    };
    let method_not_allowed = deref(&doc()["components"]["responses"]["MethodNotAllowed"]);
    for (path, item) in doc()["paths"].as_object().unwrap() {
        let uri = instance(path);
        for method in METHODS {
            let documented = item.get(method.to_ascii_lowercase()).is_some();
            // Every state-changing method carries the JSON content type, so the
            // guard lets it through to the router.
            let request = if matches!(method, "POST" | "PUT" | "PATCH") {
                json_req(method, &uri, &json!({}))
            } else {
                req(method, &uri)
            };
            let reply = if documented && path == "/api/events" {
                let raw = server.raw(request).await;
                Reply {
                    status: raw.status.as_u16(),
                    headers: raw.headers,
                    body: Bytes::new(),
                }
            } else {
                server.call(request).await
            };
            if documented {
                assert!(
                    !generic_404(&reply) && reply.status != 405,
                    "{method} {path} is documented but not served: {} {}",
                    reply.status,
                    reply.text()
                );
                server.conforms(method, path, &reply);
                table.remove(&(method.to_owned(), path.clone()));
            } else {
                assert_eq!(
                    reply.status,
                    405,
                    "{method} {path} is not documented, yet answered {}",
                    reply.text()
                );
                if method != "HEAD" {
                    check_response(&format!("{method} {path}"), method_not_allowed, &reply);
                }
            }
        }
    }
    assert!(table.is_empty(), "never tried: {table:?}");

    // Paths outside the document get the generic JSON 404 (`/` is the web UI's
    // page, which is not part of the API).
    for path in [
        "/nope",
        "/api",
        "/api/",
        "/api/nothing",
        "/api/instructions/",
        "/api/instructions/00000000-0000-4000-8000-000000000000/nothing",
        "/api/config/x",
        "/healthz/",
        "/openapi.yaml",
        "/openapi.json/x",
        "/doc",
        "/mcp",
    ] {
        let reply = server.call(req("GET", path)).await;
        assert!(
            generic_404(&reply),
            "GET {path}: {} {}",
            reply.status,
            reply.text()
        );
        let errors = validate(
            &json!({"$ref": "#/components/schemas/Error"}),
            &reply.json(),
            true,
        );
        assert!(errors.is_empty(), "{path}: {errors:?}");
    }
}

// ---------------------------------------------------------------------------
// (b) Every operation, through its successes and refusals.
// ---------------------------------------------------------------------------

#[actix_web::test]
async fn every_operation_answers_only_as_documented() {
    let server = Server::start(None).await;
    health_and_docs(&server).await;
    instructions(&server).await;
    listing(&server).await;
    reorder(&server).await;
    config(&server).await;
    status_with_agents(&server).await;
    queues(&server).await;
    bodies_refused_by_the_guard(&server).await;
    unavailable(&server).await;
    events_stream(&server).await;
    foreign_hosts(&server).await;

    let guarded = Server::start(Some(TOKEN)).await;
    token(&guarded).await;

    // Every documented answer was seen at least once.
    let mut seen = server.seen.borrow().clone();
    seen.extend(guarded.seen.borrow().iter().cloned());
    let mut missing = Vec::new();
    for (path, item) in doc()["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let id = op["operationId"].as_str().unwrap();
            for status in op["responses"].as_object().unwrap().keys() {
                let status: u16 = status.parse().unwrap();
                if !seen.contains(&(id.to_owned(), status)) {
                    missing.push(format!("{} {path} {status} ({id})", method.to_uppercase()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "documented but never answered:\n{}",
        missing.join("\n")
    );
}

async fn health_and_docs(server: &Server) {
    let reply = server
        .expect("GET", "/healthz", req("GET", "/healthz"), 200)
        .await;
    assert_eq!(reply.json()["status"], "ok");

    let reply = server
        .expect("GET", "/openapi.json", req("GET", "/openapi.json"), 200)
        .await;
    assert_eq!(&reply.json(), doc(), "the served document is the built one");
    assert!(reply.header("content-type").starts_with("application/json"));
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
    assert_eq!(reply.header("cache-control"), "no-cache");
    let etag = reply.header("etag").to_owned();
    server
        .revalidate("/openapi.json", "/openapi.json", &etag, 304)
        .await;
    server
        .revalidate("/openapi.json", "/openapi.json", "\"stale\"", 200)
        .await;

    let reply = server
        .expect("GET", "/docs", req("GET", "/docs"), 308)
        .await;
    assert_eq!(reply.header("location"), "/docs/");
    let reply = server
        .expect("GET", "/docs", req("GET", "/docs?x=1"), 308)
        .await;
    assert_eq!(reply.header("location"), "/docs/?x=1");
    let page = server
        .expect("GET", "/docs/", req("GET", "/docs/"), 200)
        .await;
    let etag = page.header("etag").to_owned();
    server.revalidate("/docs/", "/docs/", &etag, 304).await;
    let file = server
        .expect("GET", "/docs/{file}", req("GET", "/docs/init.js"), 200)
        .await;
    let etag = file.header("etag").to_owned();
    server
        .revalidate("/docs/{file}", "/docs/init.js", &etag, 304)
        .await;
    for missing in [
        "/docs/nothing.js",
        "/docs/vendor/",
        "/docs/../Cargo.toml",
        "/docs/vendor/swagger-ui/x",
    ] {
        let reply = server
            .expect("GET", "/docs/{file}", req("GET", missing), 404)
            .await;
        assert_eq!(reply.json()["error"]["code"], "not_found", "{missing}");
    }
}

async fn instructions(server: &Server) {
    const ONE: &str = "/api/instructions/{id}";
    const REQUEUE: &str = "/api/instructions/{id}/requeue";
    let missing = "/api/instructions/00000000-0000-4000-8000-000000000000";

    // Create: successes and refusals.
    let id = server.add("  first  ").await;
    let reply = server
        .expect(
            "GET",
            ONE,
            req("GET", &format!("/api/instructions/{id}")),
            200,
        )
        .await;
    assert_eq!(
        reply.json()["item"]["content"],
        "first",
        "content is trimmed"
    );
    assert_eq!(reply.json()["item"]["status"], "pending");
    let longest = "é".repeat(32_768);
    server
        .expect_body(
            "POST",
            "/api/instructions",
            "/api/instructions",
            &json!({"content": longest}),
            true,
            201,
        )
        .await;
    for (body, schema_accepts) in [
        (json!({"content": "é".repeat(32_769)}), false),
        (json!({"content": ""}), false),
        // Whitespace only passes minLength but is empty once trimmed, as the
        // description says.
        (json!({"content": " \n\t "}), true),
        (json!({"content": "x", "extra": 1}), false),
        (json!({"content": 5}), false),
        (json!({"content": null}), false),
        (json!({}), false),
    ] {
        let reply = server
            .expect_body(
                "POST",
                "/api/instructions",
                "/api/instructions",
                &body,
                schema_accepts,
                422,
            )
            .await;
        assert_eq!(reply.json()["error"]["code"], "validation");
    }
    for bad in [
        "{",
        "{\"content\": }",
        "",
        "content=x",
        "{\"content\":\"x\"} trailing",
    ] {
        server
            .expect_raw(
                "POST",
                "/api/instructions",
                "/api/instructions",
                Some("application/json"),
                bad,
                400,
            )
            .await;
    }
    server
        .expect_raw(
            "POST",
            "/api/instructions",
            "/api/instructions",
            Some("application/json; charset=utf-8"),
            "{\"content\":\"with a charset\"}",
            201,
        )
        .await;

    // Get, edit, delete: missing, malformed id, pending, consumed.
    server.expect("GET", ONE, req("GET", missing), 404).await;
    server
        .expect("GET", ONE, req("GET", "/api/instructions/not-a-uuid"), 422)
        .await;
    let one = format!("/api/instructions/{id}");
    let reply = server
        .expect_body(
            "PATCH",
            ONE,
            &one,
            &json!({"content": " edited "}),
            true,
            200,
        )
        .await;
    assert_eq!(reply.json()["item"]["content"], "edited");
    server
        .expect_body("PATCH", ONE, missing, &json!({"content": "x"}), true, 404)
        .await;
    server
        .expect_body(
            "PATCH",
            ONE,
            "/api/instructions/nope",
            &json!({"content": "x"}),
            true,
            422,
        )
        .await;
    server
        .expect_body("PATCH", ONE, &one, &json!({"content": "   "}), true, 422)
        .await;
    server
        .expect_body(
            "PATCH",
            ONE,
            &one,
            &json!({"content": "x", "status": "consumed"}),
            false,
            422,
        )
        .await;
    server
        .expect_raw(
            "PATCH",
            ONE,
            &one,
            Some("application/json"),
            "not json",
            400,
        )
        .await;

    // `first` is the head of the queue: an agent takes it.
    let consumed = server.consume().await;
    assert_eq!(consumed, id);
    let reply = server.expect("GET", ONE, req("GET", &one), 200).await;
    assert_eq!(reply.json()["item"]["status"], "consumed");
    assert_eq!(
        reply.json()["item"]["consumed_by_agent_id"],
        "conformance-agent"
    );
    server
        .expect_body(
            "PATCH",
            ONE,
            &one,
            &json!({"content": "too late"}),
            true,
            409,
        )
        .await;
    server.expect("DELETE", ONE, req("DELETE", &one), 409).await;
    server
        .expect("DELETE", ONE, req("DELETE", missing), 404)
        .await;
    server
        .expect("DELETE", ONE, req("DELETE", "/api/instructions/123"), 422)
        .await;

    // Requeue: a consumed one gets a pending copy; a pending one cannot.
    let reply = server
        .expect_body(
            "POST",
            REQUEUE,
            &format!("{one}/requeue"),
            &json!({}),
            true,
            201,
        )
        .await;
    let copy = reply.json()["item"]["id"].as_str().unwrap().to_owned();
    assert_ne!(copy, id);
    assert_eq!(reply.json()["item"]["status"], "pending");
    // No body at all is fine too, with the content type.
    server
        .expect_raw(
            "POST",
            REQUEUE,
            &format!("{one}/requeue"),
            Some("application/json"),
            "",
            201,
        )
        .await;
    server
        .expect_body(
            "POST",
            REQUEUE,
            &format!("/api/instructions/{copy}/requeue"),
            &json!({}),
            true,
            409,
        )
        .await;
    server
        .expect_body(
            "POST",
            REQUEUE,
            &format!("{missing}/requeue"),
            &json!({}),
            true,
            404,
        )
        .await;
    server
        .expect_body(
            "POST",
            REQUEUE,
            "/api/instructions/zzz/requeue",
            &json!({}),
            true,
            422,
        )
        .await;

    // Delete a pending one; then it is gone.
    let copy_uri = format!("/api/instructions/{copy}");
    server
        .expect("DELETE", ONE, req("DELETE", &copy_uri), 204)
        .await;
    server.expect("GET", ONE, req("GET", &copy_uri), 404).await;
}

async fn listing(server: &Server) {
    const LIST: &str = "/api/instructions";
    let mut totals = BTreeMap::new();
    for status in ["pending", "consumed", "all"] {
        let reply = server
            .expect(
                "GET",
                LIST,
                req("GET", &format!("{LIST}?status={status}")),
                200,
            )
            .await;
        let body = reply.json();
        let items = body["items"].as_array().unwrap();
        assert_eq!(
            items.len() as u64,
            body["total"].as_u64().unwrap(),
            "{status}"
        );
        if status != "all" {
            assert!(items.iter().all(|i| i["status"] == status), "{status}");
        } else {
            // Consumed first, then pending.
            let first_pending = items.iter().position(|i| i["status"] == "pending");
            if let Some(p) = first_pending {
                assert!(items[p..].iter().all(|i| i["status"] == "pending"));
            }
        }
        totals.insert(status, body["total"].as_u64().unwrap());
    }
    assert_eq!(totals["all"], totals["pending"] + totals["consumed"]);
    assert!(totals["consumed"] >= 1 && totals["pending"] >= 2);
    let reply = server.expect("GET", LIST, req("GET", LIST), 200).await;
    assert_eq!(
        reply.json()["total"].as_u64(),
        Some(totals["all"]),
        "status defaults to all"
    );
    let reply = server
        .expect(
            "GET",
            LIST,
            req("GET", &format!("{LIST}?limit=1&offset=1")),
            200,
        )
        .await;
    assert_eq!(reply.json()["items"].as_array().unwrap().len(), 1);
    assert_eq!(reply.json()["total"].as_u64(), Some(totals["all"]));
    let reply = server
        .expect("GET", LIST, req("GET", &format!("{LIST}?limit=0")), 200)
        .await;
    assert!(reply.json()["items"].as_array().unwrap().is_empty());
    for bad in [
        "status=bogus",
        "status=",
        "limit=-1",
        "limit=x",
        "offset=1.5",
        "limit=1&limit=2",
    ] {
        let reply = server
            .expect("GET", LIST, req("GET", &format!("{LIST}?{bad}")), 422)
            .await;
        assert_eq!(reply.json()["error"]["code"], "validation", "{bad}");
    }
}

async fn pending_ids(server: &Server) -> Vec<String> {
    let reply = server
        .expect(
            "GET",
            "/api/instructions",
            req("GET", "/api/instructions?status=pending"),
            200,
        )
        .await;
    reply.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn reorder(server: &Server) {
    const REORDER: &str = "/api/instructions/reorder";
    server.add("reorder me").await;
    let mut ids = pending_ids(server).await;
    assert!(ids.len() >= 2);
    ids.reverse();
    let reply = server
        .expect_body("POST", REORDER, REORDER, &json!({"ids": ids}), true, 200)
        .await;
    let got: Vec<String> = reply.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ids);
    assert_eq!(pending_ids(server).await, ids);

    let mut fewer = ids.clone();
    fewer.pop();
    let mut twice = ids.clone();
    twice.push(ids[0].clone());
    let mut foreign = ids.clone();
    foreign[0] = String::from("00000000-0000-4000-8000-000000000000");
    for (body, schema_accepts) in [
        (json!({"ids": fewer}), true),
        (json!({"ids": foreign}), true),
        (json!({"ids": []}), true),
        (json!({"ids": twice}), true),
    ] {
        let reply = server
            .expect_body("POST", REORDER, REORDER, &body, schema_accepts, 409)
            .await;
        assert_eq!(reply.json()["error"]["code"], "conflict");
    }
    for body in [
        json!({"ids": ["not-a-uuid"]}),
        json!({"ids": ids, "extra": true}),
        json!({"ids": "x"}),
        json!({}),
    ] {
        server
            .expect_body("POST", REORDER, REORDER, &body, false, 422)
            .await;
    }
    server
        .expect_raw(
            "POST",
            REORDER,
            REORDER,
            Some("application/json"),
            "{\"ids\": [",
            400,
        )
        .await;
}

async fn config(server: &Server) {
    const CONFIG: &str = "/api/config";
    let reply = server.expect("GET", CONFIG, req("GET", CONFIG), 200).await;
    let before = reply.json();
    let reply = server
        .expect_body("PATCH", CONFIG, CONFIG, &json!({}), true, 200)
        .await;
    assert_eq!(reply.json(), before, "an empty patch changes nothing");
    for body in [
        json!({"default_wait_seconds": 0}),
        json!({"default_wait_seconds": 86_400}),
        json!({"agent_stale_after_seconds": 1}),
        json!({"agent_stale_after_seconds": 86_400}),
        json!({"default_empty_response": ""}),
        json!({"default_empty_response": "x".repeat(4_096)}),
        json!({"default_wait_seconds": 5, "default_empty_response": "again", "agent_stale_after_seconds": 60}),
    ] {
        let reply = server
            .expect_body("PATCH", CONFIG, CONFIG, &body, true, 200)
            .await;
        for (k, v) in body.as_object().unwrap() {
            assert_eq!(&reply.json()[k], v, "{k}");
        }
    }
    for body in [
        json!({"default_wait_seconds": -1}),
        json!({"default_wait_seconds": 86_401}),
        json!({"default_wait_seconds": 1.5}),
        json!({"default_wait_seconds": "10"}),
        json!({"agent_stale_after_seconds": 0}),
        json!({"agent_stale_after_seconds": 86_401}),
        json!({"default_empty_response": "x".repeat(4_097)}),
        json!({"default_empty_response": 1}),
        json!({"unknown": 1}),
        json!({"default_wait_seconds": 1, "agent_stale_after_seconds": 0}),
        json!([]),
    ] {
        let reply = server
            .expect_body("PATCH", CONFIG, CONFIG, &body, false, 422)
            .await;
        assert_eq!(reply.json()["error"]["code"], "validation", "{body}");
    }
    let reply = server.expect("GET", CONFIG, req("GET", CONFIG), 200).await;
    assert_eq!(
        reply.json()["default_wait_seconds"],
        5,
        "a refused patch saves nothing"
    );
    server
        .expect_raw("PATCH", CONFIG, CONFIG, Some("application/json"), "{", 400)
        .await;
}

async fn status_with_agents(server: &Server) {
    const STATUS: &str = "/api/status";
    // An agent waits on an empty queue (the wait is 5 s, from `config`).
    for id in pending_ids(server).await {
        server
            .expect(
                "DELETE",
                "/api/instructions/{id}",
                req("DELETE", &format!("/api/instructions/{id}")),
                204,
            )
            .await;
    }
    let service = server.service.clone();
    let waiting = actix_web::rt::spawn(async move {
        service
            .next_instruction(AgentId::parse("waiting-agent").unwrap())
            .await
            .unwrap()
    });
    let mut seen_waiting = false;
    for _ in 0..100 {
        let reply = server.expect("GET", STATUS, req("GET", STATUS), 200).await;
        let body = reply.json();
        if body["agent"]["agent_id"] == "waiting-agent" && body["agent"]["waiting"] == true {
            assert_eq!(body["agent"]["state"], "waiting");
            assert!(body["agent"]["waiting_until"].is_string());
            assert_eq!(body["agents"].as_array().unwrap().len(), 2);
            seen_waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen_waiting, "the waiting agent never showed");
    server.add("wake up").await;
    let fetch = waiting.await.unwrap();
    assert!(matches!(
        fetch.outcome,
        queue_core::FetchOutcome::Instruction(_)
    ));
    let reply = server.expect("GET", STATUS, req("GET", STATUS), 200).await;
    let body = reply.json();
    assert_eq!(body["agent"]["last_result_type"], "instruction");
    assert_eq!(body["agent"]["state"], "working");
    assert_eq!(body["server"]["version"], env!("CARGO_PKG_VERSION"));
}

async fn bodies_refused_by_the_guard(server: &Server) {
    let big = format!("{{\"content\":\"{}\"}}", "x".repeat(BODY_LIMIT));
    for (method, template) in [
        ("POST", "/api/instructions"),
        ("PATCH", "/api/instructions/{id}"),
        ("POST", "/api/instructions/{id}/requeue"),
        ("POST", "/api/instructions/reorder"),
        ("PATCH", "/api/config"),
    ] {
        let uri = instance(template);
        let reply = server
            .expect_raw(method, template, &uri, Some("application/json"), &big, 413)
            .await;
        assert_eq!(reply.json()["error"]["code"], "payload_too_large");
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
        ] {
            let reply = server
                .expect_raw(method, template, &uri, content_type, "{}", 415)
                .await;
            assert_eq!(reply.json()["error"]["code"], "unsupported_media_type");
        }
    }
    // A length over the limit is refused on every route, before the route is
    // looked at, also where no body is read (found by tests/fuzz.rs).
    for (method, template) in documented() {
        if operation(&method, &template).get("requestBody").is_some() {
            continue;
        }
        let too_long = req(&method, &instance(&template))
            .insert_header((header::CONTENT_LENGTH, (BODY_LIMIT + 1).to_string()));
        let reply = server.expect(&method, &template, too_long, 413).await;
        assert_eq!(reply.json()["error"]["code"], "payload_too_large");
    }
    // Just under the limit is read, and refused only for what it says.
    let under = format!("{{\"content\":\"{}\"}}", " ".repeat(BODY_LIMIT - 20));
    server
        .expect_raw(
            "POST",
            "/api/instructions",
            "/api/instructions",
            Some("application/json"),
            &under,
            422,
        )
        .await;
}

/// Named queues through every route that takes one: a second queue with an
/// addressed instruction and an agent, and the refusals of bad and unknown names.
async fn queues(server: &Server) {
    const LIST: &str = "/api/instructions";
    const ONE: &str = "/api/instructions/{id}";
    let created = server
        .expect_body(
            "POST",
            LIST,
            LIST,
            &json!({"content": "for the web app", "queue": "web", "to_agent_id": "anna"}),
            true,
            201,
        )
        .await
        .json();
    assert_eq!(created["item"]["queue"], "web");
    assert_eq!(created["item"]["to_agent_id"], "anna");
    let id = created["item"]["id"].as_str().unwrap().to_owned();
    let second = server
        .expect_body(
            "POST",
            LIST,
            "/api/instructions?queue=web",
            &json!({"content": "also web"}),
            true,
            201,
        )
        .await
        .json();
    assert_eq!(second["item"]["queue"], "web");
    assert_eq!(second["item"]["to_agent_id"], Value::Null);
    let second_id = second["item"]["id"].as_str().unwrap().to_owned();
    // The names break the documented pattern; the disagreement is a rule between
    // two values, which the schema cannot say.
    for (body, uri, schema_accepts) in [
        (json!({"content": "x", "queue": "no spaces"}), LIST, false),
        (
            json!({"content": "x", "to_agent_id": "no spaces"}),
            LIST,
            false,
        ),
        (
            json!({"content": "x", "queue": "web"}),
            "/api/instructions?queue=api",
            true,
        ),
    ] {
        let reply = server
            .expect_body("POST", LIST, uri, &body, schema_accepts, 422)
            .await;
        assert_eq!(reply.json()["error"]["code"], "validation", "{body}");
    }

    let listed = server
        .expect(
            "GET",
            LIST,
            req("GET", "/api/instructions?queue=web&status=pending"),
            200,
        )
        .await
        .json();
    assert_eq!(listed["total"], 2);
    server
        .expect_body(
            "POST",
            "/api/instructions/reorder",
            "/api/instructions/reorder",
            &json!({"queue": "web", "ids": [second_id, id]}),
            true,
            200,
        )
        .await;
    // An id is found on any queue; a queue that is not its own hides it.
    server
        .expect(
            "GET",
            ONE,
            req("GET", &format!("/api/instructions/{id}?queue=web")),
            200,
        )
        .await;
    let hidden = server
        .expect(
            "GET",
            ONE,
            req("GET", &format!("/api/instructions/{id}?queue=default")),
            404,
        )
        .await;
    assert!(
        hidden.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"web\""),
        "{:?}",
        hidden.json()
    );

    let service = server.service.clone();
    let anna = queue_core::Caller::new(
        QueueName::parse("web").unwrap(),
        AgentId::parse("anna").unwrap(),
    );
    let fetch = service.next_instruction(anna).await.unwrap();
    assert!(matches!(
        fetch.outcome,
        queue_core::FetchOutcome::Instruction(_)
    ));

    let all = server
        .expect("GET", "/api/queues", req("GET", "/api/queues"), 200)
        .await
        .json();
    let web = all["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "web")
        .cloned()
        .unwrap();
    assert_eq!(
        (web["pending_count"].clone(), web["consumed_count"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(web["agents"][0]["agent_id"], "anna");
    let status = server
        .expect(
            "GET",
            "/api/status",
            req("GET", "/api/status?queue=web"),
            200,
        )
        .await
        .json();
    assert_eq!(status["queue"]["name"], "web");
    assert_eq!(status["agent"]["agent_id"], "anna");
    for uri in ["/api/status?queue=nowhere", "/api/status?queue=bad%20name"] {
        let reply = server
            .expect("GET", "/api/status", req("GET", uri), 422)
            .await;
        assert_eq!(reply.json()["error"]["field"], "queue", "{uri}");
    }
    server
        .expect(
            "GET",
            LIST,
            req("GET", "/api/instructions?queue=nowhere"),
            422,
        )
        .await;
    server
        .expect(
            "GET",
            "/api/events",
            req("GET", "/api/events?queue=bad%20name"),
            422,
        )
        .await;
}

async fn unavailable(server: &Server) {
    let id = server.add("while the store fails").await;
    let one = format!("/api/instructions/{id}");
    server.failing(true);
    let cases: Vec<(&str, &str, TestRequest)> = vec![
        ("GET", "/api/status", req("GET", "/api/status")),
        ("GET", "/api/queues", req("GET", "/api/queues")),
        ("GET", "/api/instructions", req("GET", "/api/instructions")),
        (
            "POST",
            "/api/instructions",
            json_req("POST", "/api/instructions", &json!({"content": "x"})),
        ),
        ("GET", "/api/instructions/{id}", req("GET", &one)),
        (
            "PATCH",
            "/api/instructions/{id}",
            json_req("PATCH", &one, &json!({"content": "y"})),
        ),
        ("DELETE", "/api/instructions/{id}", req("DELETE", &one)),
        (
            "POST",
            "/api/instructions/{id}/requeue",
            json_req("POST", &format!("{one}/requeue"), &json!({})),
        ),
        (
            "POST",
            "/api/instructions/reorder",
            json_req("POST", "/api/instructions/reorder", &json!({"ids": [id]})),
        ),
        ("GET", "/api/config", req("GET", "/api/config")),
        (
            "PATCH",
            "/api/config",
            json_req("PATCH", "/api/config", &json!({"default_wait_seconds": 3})),
        ),
    ];
    for (method, template, request) in cases {
        let reply = server.expect(method, template, request, 503).await;
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            !message.contains("busy"),
            "{method} {template}: details leaked: {message}"
        );
        assert!(
            message.starts_with("the database is locked by another process;"),
            "{method} {template}: the message should say what is wrong: {message}"
        );
        assert_eq!(reply.header("retry-after"), "1", "{method} {template}");
    }
    // Health does not touch the store.
    server
        .expect("GET", "/healthz", req("GET", "/healthz"), 200)
        .await;
    server.failing(false);
    server
        .expect("GET", "/api/instructions/{id}", req("GET", &one), 200)
        .await;
}

/// One SSE message.
#[derive(Debug)]
struct Message {
    id: u64,
    event: String,
    data: Value,
}

/// The message in a frame test_support's parser read, if it is one (comment
/// blocks are not).
fn message(frame: SseFrame) -> Option<Message> {
    assert!(
        frame.unknown.is_empty(),
        "an unexpected line: {:?}",
        frame.unknown
    );
    assert!(
        !frame.data.contains('\n'),
        "one data line per message: {frame:?}"
    );
    let id = frame
        .id
        .as_deref()
        .map(|v| v.parse::<u64>().expect("a numeric id"));
    let data = (!frame.data.is_empty())
        .then(|| serde_json::from_str::<Value>(&frame.data).expect("data is JSON"));
    match (id, frame.event, data) {
        (Some(id), Some(event), Some(data)) => Some(Message { id, event, data }),
        _ => None,
    }
}

struct Sse {
    body: LocalBoxStream<'static, Bytes>,
    parser: SseParser,
    messages: Vec<Message>,
}

impl Sse {
    async fn open(server: &Server, last_event_id: Option<&str>) -> Sse {
        let mut request = req("GET", "/api/events");
        if let Some(id) = last_event_id {
            request = request.insert_header(("Last-Event-ID", id));
        }
        let raw = server.raw(request).await;
        let head = Reply {
            status: raw.status.as_u16(),
            headers: raw.headers,
            body: Bytes::new(),
        };
        assert_eq!(head.status, 200);
        assert_eq!(head.header("cache-control"), "no-cache");
        server.conforms("GET", "/api/events", &head);
        let mut sse = Sse {
            body: raw.body,
            parser: SseParser::default(),
            messages: Vec::new(),
        };
        sse.pull().await;
        assert!(
            sse.parser.is_between_frames() && sse.messages.is_empty() || last_event_id.is_some(),
            "a fresh stream starts with nothing but its opening lines"
        );
        sse
    }

    /// Reads one more chunk.
    async fn pull(&mut self) {
        let chunk = tokio::time::timeout(Duration::from_secs(5), self.body.next())
            .await
            .expect("no event within 5 s")
            .expect("the stream ended");
        let text = std::str::from_utf8(&chunk).unwrap();
        if self.parser.is_between_frames() && self.messages.is_empty() && text.starts_with("retry:")
        {
            assert!(text.starts_with("retry: 2000\n: connected\n\n"), "{text:?}");
        }
        let envelope = json!({"$ref": "#/components/schemas/EventEnvelope"});
        for message in self.parser.feed(&chunk).into_iter().filter_map(message) {
            assert_eq!(message.data["type"], message.event.as_str());
            let errors = validate(&envelope, &message.data, true);
            assert!(
                errors.is_empty(),
                "{}: {errors:?}\n{}",
                message.event,
                message.data
            );
            if let Some(last) = self.messages.last() {
                assert!(
                    message.id >= last.id,
                    "ids go back: {} after {}",
                    message.id,
                    last.id
                );
            }
            self.messages.push(message);
        }
    }

    /// Reads until a message of `event` arrives; returns it.
    async fn until(&mut self, event: &str) -> &Message {
        self.until_with(event, |_| true).await
    }

    /// Reads until a message of `event` whose envelope satisfies `test` arrives
    /// (changes made before the stream opened may still be on their way).
    async fn until_with(&mut self, event: &str, test: impl Fn(&Value) -> bool) -> &Message {
        loop {
            if let Some(i) = self
                .messages
                .iter()
                .position(|m| m.event == event && test(&m.data))
            {
                return &self.messages[i];
            }
            self.pull().await;
        }
    }
}

async fn events_stream(server: &Server) {
    let mut sse = Sse::open(server, None).await;
    let id = server.add("announced").await;
    let created = sse
        .until_with("instruction.created", |e| e["data"]["id"] == id.as_str())
        .await;
    let created_id = created.id;
    sse.until("status.changed").await;
    server
        .expect_body(
            "PATCH",
            "/api/instructions/{id}",
            &format!("/api/instructions/{id}"),
            &json!({"content": "announced again"}),
            true,
            200,
        )
        .await;
    sse.until("instruction.updated").await;
    let ids = pending_ids(server).await;
    server
        .expect_body(
            "POST",
            "/api/instructions/reorder",
            "/api/instructions/reorder",
            &json!({"ids": ids}),
            true,
            200,
        )
        .await;
    sse.until("instruction.reordered").await;
    server
        .expect_body(
            "PATCH",
            "/api/config",
            "/api/config",
            &json!({"default_wait_seconds": 0}),
            true,
            200,
        )
        .await;
    sse.until("config.updated").await;
    server.consume().await;
    sse.until("instruction.consumed").await;
    sse.until("agent.updated").await;
    let other = server.add("to delete").await;
    server
        .expect(
            "DELETE",
            "/api/instructions/{id}",
            req("DELETE", &format!("/api/instructions/{other}")),
            204,
        )
        .await;
    sse.until("instruction.deleted").await;

    // Reconnecting with the id of `instruction.created` replays what came after.
    let mut replay = Sse::open(server, Some(&created_id.to_string())).await;
    replay.until("instruction.updated").await;
    replay.until("instruction.deleted").await;
    assert!(replay.messages.iter().all(|m| m.id > created_id));
    // An id from nowhere: one refetch message with the whole status.
    for id in ["nonsense", "1"] {
        let mut refetch = Sse::open(server, Some(id)).await;
        let message = refetch.until("status.changed").await;
        assert_eq!(message.data["refetch"], true, "{id}");
        let errors = validate(
            &json!({"$ref": "#/components/schemas/Status"}),
            &message.data["data"],
            true,
        );
        assert!(errors.is_empty(), "{errors:?}");
    }
}

async fn foreign_hosts(server: &Server) {
    for (method, template) in ROUTES {
        let uri = instance(template);
        for evil in [
            req(method, &uri).insert_header((header::HOST, "evil.example:8000")),
            req(method, &uri).insert_header((header::ORIGIN, "http://evil.example")),
            req(method, &uri).insert_header((header::ORIGIN, "http://localhost:3000")),
        ] {
            let evil = if matches!(method, "POST" | "PATCH") {
                evil.insert_header((header::CONTENT_TYPE, "application/json"))
                    .set_payload("{}")
            } else {
                evil
            };
            let reply = server.expect(method, template, evil, 403).await;
            assert_eq!(reply.json()["error"]["code"], "forbidden");
            assert!(reply.headers.get("access-control-allow-origin").is_none());
        }
    }
}

async fn token(server: &Server) {
    for (method, template) in ROUTES {
        let uri = instance(template);
        let request_to = |uri: &str| {
            if matches!(method, "POST" | "PATCH") {
                json_req(method, uri, &json!({}))
            } else {
                req(method, uri)
            }
        };
        let request = || request_to(&uri);
        if template.starts_with("/api/") {
            let basic = format!("Basic {TOKEN}");
            for auth in [None, Some("Bearer wrong"), Some(basic.as_str())] {
                let mut r = request();
                if let Some(auth) = auth {
                    r = r.insert_header((header::AUTHORIZATION, auth));
                }
                let reply = server.expect(method, template, r, 401).await;
                assert_eq!(reply.header("www-authenticate"), "Bearer");
            }
            // The token is never read from the URL.
            let reply = server
                .call(request_to(&format!(
                    "{uri}?token={TOKEN}&access_token={TOKEN}"
                )))
                .await;
            assert_eq!(reply.status, 401, "{method} {template}");
        } else {
            // No token needed outside /api.
            let reply = server.call(request()).await;
            assert!(reply.status < 400, "{method} {template}: {}", reply.status);
        }
    }
    // With the token, the API answers.
    server
        .expect(
            "GET",
            "/api/status",
            req("GET", "/api/status")
                .insert_header((header::AUTHORIZATION, format!("Bearer {TOKEN}"))),
            200,
        )
        .await;
    let reply = server.call(req("GET", "/api/nothing")).await;
    assert_eq!(
        reply.status, 401,
        "unknown /api paths are behind the token too"
    );
}

/// A request body must be a JSON object (every request schema says `type:
/// object`): serde would also fill the handlers' structs from a JSON array
/// holding the fields in declaration order, so `["text"]` must be refused. And a
/// setting sent as `null` is refused, where the schema says integer or string.
#[actix_web::test]
async fn request_bodies_the_document_refuses_are_refused() {
    let server = Server::start(None).await;
    let id = server.add("target").await;
    let one = format!("/api/instructions/{id}");
    let mut cases = Vec::new();
    for (method, _template, uri, body) in [
        (
            "POST",
            "/api/instructions",
            "/api/instructions".to_owned(),
            json!(["queued from an array"]),
        ),
        (
            "PATCH",
            "/api/instructions/{id}",
            one,
            json!(["edited from an array"]),
        ),
        (
            "POST",
            "/api/instructions/reorder",
            "/api/instructions/reorder".to_owned(),
            json!([[id]]),
        ),
        (
            "PATCH",
            "/api/config",
            "/api/config".to_owned(),
            json!([7, "from an array", 70]),
        ),
        (
            "PATCH",
            "/api/config",
            "/api/config".to_owned(),
            json!({"default_wait_seconds": null}),
        ),
        (
            "PATCH",
            "/api/config",
            "/api/config".to_owned(),
            json!({"default_empty_response": null}),
        ),
    ] {
        let what = format!("{method} {uri} {body}");
        cases.push((what, json_req(method, &uri, &body)));
    }
    server.all_answer(422, cases).await;
}

/// Malformed JSON is 400 (SPEC §4) even when a wrong type comes before the
/// syntax error: the body is parsed as JSON before it is read into a request.
#[actix_web::test]
async fn malformed_json_is_always_a_bad_request() {
    let server = Server::start(None).await;
    let mut cases = Vec::new();
    for (method, template, body) in [
        ("POST", "/api/instructions", "{\"content\": 5,"),
        ("POST", "/api/instructions/reorder", "[1,"),
        ("POST", "/api/instructions/reorder", "{\"ids\": 5 oops"),
        (
            "PATCH",
            "/api/config",
            "{\"default_wait_seconds\": \"x\", }",
        ),
    ] {
        let uri = instance(template);
        let what = format!("{method} {uri} {body}");
        cases.push((what, raw_req(method, &uri, Some("application/json"), body)));
    }
    server.all_answer(400, cases).await;
}

// ---------------------------------------------------------------------------
// (d) /docs loads only what this server serves.
// ---------------------------------------------------------------------------

/// Every `src="..."` and `href="..."` in `html`.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attribute) {
            let rest = &html[i + attribute.len()..];
            let end = rest.find('"').unwrap();
            out.push(rest[..end].to_owned());
        }
    }
    out
}

/// `reference` resolved against the page URL `/docs/`.
fn resolve_url(reference: &str) -> String {
    if reference.starts_with('/') {
        reference.to_owned()
    } else {
        format!("/docs/{}", reference.trim_start_matches("./"))
    }
}

#[actix_web::test]
async fn docs_page_loads_only_local_files_and_all_of_them_are_served() {
    let server = Server::start(None).await;
    let page = server.call(req("GET", "/docs/")).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(
        page.header("content-security-policy"),
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
    );
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    assert_eq!(page.header("cache-control"), "no-cache");
    assert!(page.header("etag").starts_with('"'));
    let index = server.call(req("GET", "/docs/index.html")).await;
    assert_eq!(index.body, page.body, "/docs/index.html is the same page");

    let html = page.text();
    assert!(
        !html.contains("<script>"),
        "no inline script: the CSP forbids it"
    );
    let refs = references(&html);
    let scripts: Vec<&String> = refs
        .iter()
        .filter(|r| r.ends_with(".js") || r.contains(".js?"))
        .collect();
    let styles: Vec<&String> = refs.iter().filter(|r| r.contains(".css")).collect();
    assert!(scripts.len() >= 2 && !styles.is_empty(), "{refs:?}");
    for reference in &refs {
        assert!(
            !reference.contains("://") && !reference.starts_with("//"),
            "the page loads {reference} from elsewhere"
        );
        let url = resolve_url(reference);
        let reply = server.call(req("GET", &url)).await;
        assert_eq!(reply.status, 200, "{reference} ({url}): {}", reply.text());
        let path = url.split(['?', '#']).next().unwrap();
        let expected = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else if path.ends_with(".css") {
            "text/css; charset=utf-8"
        } else if path.ends_with(".json") {
            "application/json"
        } else {
            panic!("{reference}: what is it?")
        };
        assert_eq!(reply.header("content-type"), expected, "{reference}");
        assert_eq!(
            reply.header("x-content-type-options"),
            "nosniff",
            "{reference}"
        );
        if !expected.starts_with("text/html") {
            assert!(
                reply.headers.get("content-security-policy").is_none(),
                "{reference}"
            );
        }
        if let Some(asset) = path.strip_prefix('/').and_then(web_assets::get) {
            assert_eq!(reply.body.as_ref(), asset.bytes, "{reference}");
            assert_eq!(
                reply.header("content-type"),
                asset.content_type,
                "{reference}"
            );
            assert_eq!(reply.header("etag"), asset.etag, "{reference}");
            let cache = if path.contains("/vendor/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            assert_eq!(reply.header("cache-control"), cache, "{reference}");
            let etag = reply.header("etag").to_owned();
            let again = server
                .call(req("GET", &url).insert_header((header::IF_NONE_MATCH, etag.as_str())))
                .await;
            assert_eq!(again.status, 304, "{reference}");
            assert!(again.body.is_empty());
            assert_eq!(again.header("etag"), etag);
        } else {
            assert_eq!(
                path, "/openapi.json",
                "{reference} is neither a docs file nor the document"
            );
        }
    }
    // The viewer starts on this server's document.
    let init = server.call(req("GET", "/docs/init.js")).await;
    assert!(init.text().contains("\"/openapi.json\""));
    // Percent-encoded slashes, as a client filling in {file} sends them.
    let encoded = server
        .call(req("GET", "/docs/vendor%2Fswagger-ui%2Fswagger-ui.css"))
        .await;
    assert_eq!(encoded.status, 200);
    assert_eq!(encoded.header("content-type"), "text/css; charset=utf-8");
}
