//! Hostile input at scale against the HTTP API (issue 6): proptest throws
//! arbitrary bytes, arbitrary JSON and mutated valid bodies at every JSON route,
//! arbitrary query strings at the listing, arbitrary ids in every path, and
//! arbitrary guard headers (Host, Origin, Authorization, Content-Type,
//! Content-Length, Last-Event-ID, If-None-Match) at every route, through the real
//! routes and guards in process.
//!
//! Every case is judged by an oracle written from SPEC §4/§5 and the OpenAPI
//! document: no 5xx and no panic; every error in the documented shape with the
//! code the document gives its status, and only statuses the operation lists;
//! valid input stored exactly as documented (content trimmed); invalid input
//! leaves the queue and the settings as they were; and a foreign Host or Origin
//! is refused whatever else the request carries.
//!
//! Quick by default (CI); `LOCAL_MCP_LONG_TESTS=1` runs 20 times the cases. The
//! quick run uses a fixed seed so that CI is repeatable; the long run draws a new
//! seed each time to explore. A failure names its seed; `LOCAL_MCP_FUZZ_SEED=N`
//! replays it. Nothing is written to disk (no proptest persistence files).

// The shared fixture of the `api` test binary, so both binaries drive the app the
// same way and check the same invariants on every answer; this binary uses only
// part of it.
#[allow(dead_code)]
#[path = "api/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::http::Method;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::rt::System;
use actix_web::test::TestRequest;
use http_api::{BODY_LIMIT, openapi_document, settings_json};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use queue_core::{
    AgentId, Content, Instruction, InstructionId, MAX_EMPTY_RESPONSE_CHARS, MAX_STALE_SECONDS,
    MAX_WAIT_SECONDS, Page, Settings, SettingsPatch, Status, StatusFilter,
};
use serde_json::{Value, json};
use test_support::{Fuzz, json_tree};

use support::{Reply, Server, Setup};

// ---------------------------------------------------------------------------
// Running a property: bounded cases, a seed that a failure names.
// ---------------------------------------------------------------------------

/// Checks `test` on `cases` values of `strategy` (20 times as many on a long run)
/// and fails with the minimal failing value and the seed to replay it.
fn fuzz<S>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    // Shrinking replays cases; bound it so a failure reports in seconds.
    let mut run = Fuzz::new(cases, 512);
    // A few generated URLs are ones no client can send (`http` refuses them);
    // those cases are skipped, never a failure.
    run.config.max_global_rejects = run.config.cases / 4;
    run.run("http-api", name, strategy, test);
}

/// Runs `f` to its end on `rt`, failing the case (not hanging the run) after 30 s.
fn on<T>(rt: &actix_web::rt::SystemRunner, f: impl Future<Output = T>) -> T {
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .expect("a fuzz case took over 30 s")
    })
}

// ---------------------------------------------------------------------------
// The queue a case starts from, and what it looks like.
// ---------------------------------------------------------------------------

/// Three pending instructions and one consumed, in a fresh app. The ids are the
/// service's own, so bodies name them by placeholder (`{P0}`, `{C0}`, `{M}`...)
/// and [`Fixture::fill`] puts the real ones in.
struct Fixture {
    server: Server,
    pending: Vec<InstructionId>,
    consumed: InstructionId,
    missing: InstructionId,
}

const PENDING_TEXTS: [&str; 3] = ["first pending", "second pending", "third pending"];

impl Fixture {
    async fn start(token: Option<&str>) -> Fixture {
        let setup = match token {
            Some(t) => Setup::new().token(t),
            None => Setup::new(),
        };
        let server = setup.start().await;
        let service = &server.service;
        service
            .update_settings(SettingsPatch::new(Some(0), None, None).expect("valid"))
            .await
            .expect("settings");
        let consumed = service.add("already delivered").await.expect("add").id;
        let fetch = service
            .next_instruction(AgentId::parse("fuzzer").expect("valid"))
            .await
            .expect("fetch");
        assert_eq!(fetch.outcome.result_type().as_str(), "instruction");
        let mut pending = Vec::new();
        for text in PENDING_TEXTS {
            pending.push(service.add(text).await.expect("add").id);
        }
        Fixture {
            server,
            pending,
            consumed,
            missing: InstructionId::parse("00000000-0000-4000-8000-00000000abcd").expect("uuid"),
        }
    }

    async fn state(&self) -> State {
        let service = &self.server.service;
        let listing = service
            .list(
                &queue_core::QueueName::default(),
                StatusFilter::All,
                Page {
                    offset: 0,
                    limit: None,
                },
            )
            .await
            .expect("list");
        State {
            items: listing.items,
            settings: service.settings().await.expect("settings"),
        }
    }

    /// The id a placeholder names, in the spelling its suffix asks for: uuid
    /// accepts upper case, braces, no hyphens and the URN form alike.
    fn id_text(&self, name: &str) -> Option<String> {
        let (base, form) = name.split_once(':').unwrap_or((name, ""));
        let id = match base {
            "P0" => self.pending[0],
            "P1" => self.pending[1],
            "P2" => self.pending[2],
            "C0" => self.consumed,
            "M" => self.missing,
            _ => return None,
        };
        let text = id.to_string();
        Some(match form {
            "" => text,
            "upper" => text.to_ascii_uppercase(),
            "braced" => format!("{{{text}}}"),
            "simple" => text.replace('-', ""),
            "urn" => format!("urn:uuid:{text}"),
            _ => return None,
        })
    }

    /// `bytes` with every `{NAME}` placeholder replaced by the id it stands for.
    fn fill(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'{'
                && let Some(end) = bytes[i..].iter().take(12).position(|b| *b == b'}')
                && let Ok(name) = std::str::from_utf8(&bytes[i + 1..i + end])
                && let Some(id) = self.id_text(name)
            {
                out.extend_from_slice(id.as_bytes());
                i += end + 1;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        out
    }

    fn pending_strings(&self) -> Vec<String> {
        self.pending.iter().map(ToString::to_string).collect()
    }
}

/// Everything a request could change.
#[derive(Clone, Debug, PartialEq, Eq)]
struct State {
    /// Consumed first, then pending in queue order.
    items: Vec<Instruction>,
    settings: Settings,
}

impl State {
    fn pending_ids(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|i| i.status == Status::Pending)
            .map(|i| i.id.to_string())
            .collect()
    }

    fn item(&self, id: InstructionId) -> Option<&Instruction> {
        self.items.iter().find(|i| i.id == id)
    }
}

/// What an item is, without the times that any change moves.
fn essence(item: &Instruction) -> (String, String, &'static str, Option<String>) {
    (
        item.id.to_string(),
        item.content.as_str().to_owned(),
        item.status.as_str(),
        item.consumed_by.as_ref().map(|a| a.as_str().to_owned()),
    )
}

// ---------------------------------------------------------------------------
// The document: which statuses an operation lists, which code each carries.
// ---------------------------------------------------------------------------

/// The documented path template `path` falls under; literal segments win, as
/// they do in the router (`/api/instructions/reorder` before `{id}`).
fn template(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut best: Option<(&'static str, usize)> = None;
    for candidate in openapi_document()["paths"].as_object()?.keys() {
        let parts: Vec<&str> = candidate.split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut literal = 0;
        let fits = parts.iter().zip(&segments).all(|(p, s)| {
            if p.starts_with('{') {
                !s.is_empty()
            } else {
                literal += 1;
                p == s
            }
        });
        if fits && best.is_none_or(|(_, n)| literal > n) {
            best = Some((candidate.as_str(), literal));
        }
    }
    best.map(|(t, _)| t)
}

/// The `code` the document gives the error response `response`.
fn documented_code(response: &Value) -> Option<&'static str> {
    let reference = response["$ref"].as_str()?;
    let resolved = openapi_document().pointer(reference.strip_prefix('#')?)?;
    resolved["content"]["application/json"]["schema"]["allOf"]
        .as_array()?
        .iter()
        .find_map(|s| s["properties"]["error"]["properties"]["code"]["const"].as_str())
}

/// Checks that `reply` is an answer the document lists for `method path`, with
/// the documented code when it is an error. Support has already checked the
/// error shape, the absence of 5xx and of CORS headers.
fn conforms(method: &Method, path: &str, reply: &Reply) -> Result<(), TestCaseError> {
    let Some(template) = template(path) else {
        return Ok(());
    };
    let operation = &openapi_document()["paths"][template][method.as_str().to_ascii_lowercase()];
    if !operation.is_object() {
        // A documented path asked with a method it does not take: a guard's refusal
        // or 405 (the shared error responses describe both).
        prop_assert!(
            [401, 403, 405, 413, 415].contains(&reply.status),
            "{method} {path}: {} for an undocumented method",
            reply.status
        );
        return Ok(());
    }
    let response = &operation["responses"][reply.status.to_string()];
    prop_assert!(
        response.is_object(),
        "{method} {path} ({template}) answered {}, which the document does not list: {:?}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    if reply.status >= 400 {
        let code = documented_code(response);
        let body = reply.json();
        prop_assert_eq!(
            body["error"]["code"].as_str(),
            code,
            "{} {}: the code the document gives {}",
            method,
            path,
            reply.status
        );
    } else if response.get("content").is_some() && reply.status != 304 {
        prop_assert!(
            reply
                .header("content-type")
                .is_some_and(|ct| response["content"]
                    .get(ct.split(';').next().unwrap_or(""))
                    .is_some()),
            "{method} {path}: content type {:?} is not documented",
            reply.header("content-type")
        );
    }
    Ok(())
}

/// Sends `req` (support checks the invariants of every answer), then checks it
/// against the document.
async fn send(server: &Server, method: &Method, path: &str, req: TestRequest) -> Reply {
    let reply = server.send(req).await;
    if let Err(e) = conforms(method, path, &reply) {
        panic!("{e}");
    }
    reply
}

/// [`send`] of `GET uri`, an instance of the documented `path`.
async fn get(server: &Server, path: &str, uri: &str) -> Reply {
    send(server, &Method::GET, path, Server::req(Method::GET, uri)).await
}

// ---------------------------------------------------------------------------
// Values that break things: strings, numbers, JSON.
// ---------------------------------------------------------------------------

/// Strings a careful parser has to survive: any Unicode, controls and NULs,
/// quotes and backslashes, whitespace of every kind, very long ones.
fn nasty_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => ".{0,24}",
        2 => proptest::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter),
        2 => "[\\x00-\\x1f\"\\\\/ \t\r\n]{0,8}",
        2 => "[\\s\u{a0}\u{2028}\u{3000}\u{feff}]{0,6}",
        1 => "[a-z\u{301}\u{202e}\u{1f600}\u{10ffff}]{1,12}",
        1 => Just(String::new()),
    ]
    .boxed()
}

/// [`nasty_string`], or one long enough to pass a limit (URLs stay short).
fn nasty_or_long_string() -> BoxedStrategy<String> {
    prop_oneof![
        12 => nasty_string(),
        1 => (1usize..40_000).prop_map(|n| "ä".repeat(n)),
    ]
    .boxed()
}

/// Numbers at and past every edge the API has.
fn edge_number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-3i64..90_000).prop_map(Value::from),
        prop::sample::select(vec![
            json!(0),
            json!(1),
            json!(-1),
            json!(86_400),
            json!(86_401),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(u32::MAX),
            json!(u64::from(u32::MAX) + 1),
            json!(0.5),
            json!(1.0),
            json!(-0.0),
            json!(1e300),
        ]),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
    ]
    .boxed()
}

const KNOWN_FIELDS: [&str; 5] = [
    "content",
    "ids",
    "default_wait_seconds",
    "default_empty_response",
    "agent_stale_after_seconds",
];

fn field_name() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(KNOWN_FIELDS.to_vec()).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["Content", "content ", "ID", "id", "__proto__", "", "constructor"])
            .prop_map(str::to_owned),
        2 => nasty_string(),
    ]
    .boxed()
}

/// Any JSON value, nested a few levels.
fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        edge_number(),
        nasty_or_long_string().prop_map(Value::String),
        placeholder().prop_map(Value::String),
    ];
    json_tree(leaf.boxed(), field_name(), 4, 48, 6)
}

/// An id by placeholder, in any spelling, or something that only looks like one.
fn placeholder() -> BoxedStrategy<String> {
    let name = prop::sample::select(vec!["P0", "P1", "P2", "C0", "M"]);
    let form = prop::sample::select(vec!["", ":upper", ":braced", ":simple", ":urn"]);
    prop_oneof![
        4 => (name, form).prop_map(|(n, f)| format!("{{{n}{f}}}")),
        1 => prop::sample::select(vec![
            "00000000-0000-0000-0000-00000000000g",
            "00000000-0000-0000-0000-0000000000",
            "{P0}x",
            "x{P0}",
            "{P0} ",
            " {P0}",
            "reorder",
            "-",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// (a) Request bodies on every JSON route.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Create,
    EditPending,
    EditConsumed,
    EditMissing,
    Reorder,
    Config,
    RequeueConsumed,
    RequeuePending,
}

impl Route {
    const ALL: [Route; 8] = [
        Route::Create,
        Route::EditPending,
        Route::EditConsumed,
        Route::EditMissing,
        Route::Reorder,
        Route::Config,
        Route::RequeueConsumed,
        Route::RequeuePending,
    ];

    fn method(self) -> Method {
        match self {
            Route::Create | Route::Reorder | Route::RequeueConsumed | Route::RequeuePending => {
                Method::POST
            }
            _ => Method::PATCH,
        }
    }

    fn path(self, f: &Fixture) -> String {
        match self {
            Route::Create => String::from("/api/instructions"),
            Route::EditPending => format!("/api/instructions/{}", f.pending[0]),
            Route::EditConsumed => format!("/api/instructions/{}", f.consumed),
            Route::EditMissing => format!("/api/instructions/{}", f.missing),
            Route::Reorder => String::from("/api/instructions/reorder"),
            Route::Config => String::from("/api/config"),
            Route::RequeueConsumed => format!("/api/instructions/{}/requeue", f.consumed),
            Route::RequeuePending => format!("/api/instructions/{}/requeue", f.pending[0]),
        }
    }
}

/// Contents at and around the documented limits.
fn content_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => nasty_or_long_string(),
        2 => ("[ \t\n]{0,3}", "[a-zA-Z0-9 ]{1,30}", "[ \t\n\u{3000}]{0,3}")
            .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        1 => prop::sample::select(vec![
            Content::MAX_CHARS - 1,
            Content::MAX_CHARS,
            Content::MAX_CHARS + 1,
        ])
        .prop_flat_map(|n| {
            prop::sample::select(vec!["a", "é", "\u{1f600}", "\0"]).prop_map(move |c| c.repeat(n))
        }),
        1 => Just(format!("  {}  ", "x".repeat(Content::MAX_CHARS))),
    ]
    .boxed()
}

fn settings_value(field: &'static str) -> BoxedStrategy<Value> {
    match field {
        "default_empty_response" => prop_oneof![
            3 => nasty_or_long_string().prop_map(Value::String),
            1 => prop::sample::select(vec![
                MAX_EMPTY_RESPONSE_CHARS,
                MAX_EMPTY_RESPONSE_CHARS + 1
            ])
            .prop_map(|n| Value::String("é".repeat(n))),
        ]
        .boxed(),
        _ => edge_number(),
    }
}

/// A body the route would take, before any mutation.
fn valid_body(route: Route) -> BoxedStrategy<Value> {
    match route {
        Route::Reorder => Just(vec!["{P0}", "{P1}", "{P2}"])
            .prop_shuffle()
            .prop_map(|ids| json!({ "ids": ids }))
            .boxed(),
        Route::Config => (
            proptest::option::of(settings_value("default_wait_seconds")),
            proptest::option::of(settings_value("default_empty_response")),
            proptest::option::of(settings_value("agent_stale_after_seconds")),
        )
            .prop_map(|(w, e, s)| {
                let mut body = serde_json::Map::new();
                for (name, v) in [
                    ("default_wait_seconds", w),
                    ("default_empty_response", e),
                    ("agent_stale_after_seconds", s),
                ] {
                    if let Some(v) = v {
                        body.insert(name.to_owned(), v);
                    }
                }
                Value::Object(body)
            })
            .boxed(),
        Route::RequeueConsumed | Route::RequeuePending => Just(json!({})).boxed(),
        _ => content_text()
            .prop_map(|content| json!({ "content": content }))
            .boxed(),
    }
}

/// One change to a JSON body that a sloppy client or an attacker would make.
#[derive(Clone, Debug)]
enum Mutation {
    Set(String, Value),
    Remove(String),
    WrapInArray,
    Replace(Value),
    /// Changes the `ids` list of a reorder: drop, repeat or add one.
    DropId(usize),
    RepeatId(usize),
    AddId(String),
}

fn mutation() -> BoxedStrategy<Mutation> {
    prop_oneof![
        4 => (field_name(), any_json()).prop_map(|(k, v)| Mutation::Set(k, v)),
        2 => field_name().prop_map(Mutation::Remove),
        1 => Just(Mutation::WrapInArray),
        1 => any_json().prop_map(Mutation::Replace),
        2 => (0usize..4).prop_map(Mutation::DropId),
        2 => (0usize..4).prop_map(Mutation::RepeatId),
        2 => placeholder().prop_map(Mutation::AddId),
    ]
    .boxed()
}

fn mutate(mut body: Value, m: &Mutation) -> Value {
    match m {
        Mutation::Set(k, v) => {
            if let Some(o) = body.as_object_mut() {
                o.insert(k.clone(), v.clone());
            }
        }
        Mutation::Remove(k) => {
            if let Some(o) = body.as_object_mut() {
                o.remove(k);
            }
        }
        Mutation::WrapInArray => body = json!([body]),
        Mutation::Replace(v) => body = v.clone(),
        Mutation::DropId(i) => {
            if let Some(ids) = body.get_mut("ids").and_then(Value::as_array_mut)
                && *i < ids.len()
            {
                ids.remove(*i);
            }
        }
        Mutation::RepeatId(i) => {
            if let Some(ids) = body.get_mut("ids").and_then(Value::as_array_mut)
                && let Some(id) = ids.get(*i).cloned()
            {
                ids.push(id);
            }
        }
        Mutation::AddId(id) => {
            if let Some(ids) = body.get_mut("ids").and_then(Value::as_array_mut) {
                ids.push(Value::String(id.clone()));
            }
        }
    }
    body
}

/// Text-level damage: what a broken client or a truncated upload sends.
#[derive(Clone, Debug)]
enum Damage {
    Truncate(usize),
    Insert(usize, u8),
    Delete(usize),
    Prefix(Vec<u8>),
    Suffix(Vec<u8>),
}

fn damage() -> BoxedStrategy<Damage> {
    prop_oneof![
        (0usize..512).prop_map(Damage::Truncate),
        (0usize..512, any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
        (0usize..512).prop_map(Damage::Delete),
        prop::sample::select(vec![
            b"\xef\xbb\xbf".to_vec(),
            b" \t\r\n".to_vec(),
            b"\0".to_vec(),
            b"//".to_vec(),
            b"]".to_vec(),
        ])
        .prop_map(Damage::Prefix),
        prop::sample::select(vec![
            b" \n".to_vec(),
            b"\0".to_vec(),
            b"x".to_vec(),
            b",".to_vec(),
            b"{}".to_vec(),
            b"\xff".to_vec(),
        ])
        .prop_map(Damage::Suffix),
    ]
    .boxed()
}

fn apply_damage(mut bytes: Vec<u8>, d: &Damage) -> Vec<u8> {
    match d {
        Damage::Truncate(i) => bytes.truncate(*i % (bytes.len() + 1)),
        Damage::Insert(i, b) => {
            let i = *i % (bytes.len() + 1);
            bytes.insert(i, *b);
        }
        Damage::Delete(i) => {
            if !bytes.is_empty() {
                let i = *i % bytes.len();
                bytes.remove(i);
            }
        }
        Damage::Prefix(p) => bytes.splice(0..0, p.iter().copied()).for_each(drop),
        Damage::Suffix(s) => bytes.extend_from_slice(s),
    }
    bytes
}

/// Raw texts no `Value` can produce: numbers past every machine type, nesting
/// past any parser's limit, escapes for lone surrogates and NULs, repeated keys.
fn raw_text(route: Route) -> BoxedStrategy<Vec<u8>> {
    let field = match route {
        Route::Reorder => "ids",
        Route::Config => "default_wait_seconds",
        _ => "content",
    };
    let number = prop::sample::select(vec![
        "1e400",
        "-1e400",
        "1e-400",
        "18446744073709551616",
        "-9223372036854775809",
        "9223372036854775808",
        "86400.0",
        "1E1",
        "-0",
        "00",
        "0x10",
        "NaN",
        "Infinity",
        "+1",
        ".5",
        "1.",
    ]);
    let nested = prop::sample::select(vec![1usize, 63, 127, 128, 129, 500, 5_000]);
    let escape = prop::sample::select(vec![
        r#""\ud800""#,
        r#""\udc00x""#,
        r#""\ud83d\ude00""#,
        r#""\u0000""#,
        r#""a\u0000b""#,
        r#""\x41""#,
        r#""\u00e9""#,
        "\"tab\there\"",
        "\"raw\u{0}nul\"",
    ]);
    prop_oneof![
        number.prop_map(move |n| format!(r#"{{"{field}": {n}}}"#).into_bytes()),
        (nested.clone(), prop::bool::ANY).prop_map(move |(depth, closed)| {
            let close = if closed {
                "]".repeat(depth)
            } else {
                String::new()
            };
            format!(r#"{{"{field}": {}{}}}"#, "[".repeat(depth), close).into_bytes()
        }),
        nested.prop_map(|depth| {
            let mut s = String::new();
            for _ in 0..depth {
                s.push_str(r#"{"a":"#);
            }
            s.push_str("null");
            s.push_str(&"}".repeat(depth));
            s.into_bytes()
        }),
        escape.prop_map(move |e| format!(r#"{{"{field}": {e}}}"#).into_bytes()),
        Just(format!(r#"{{"{field}": "a", "{field}": "second"}}"#).into_bytes()),
        Just(b"{\"content\": \"x\"} {\"content\": \"y\"}".to_vec()),
        Just(Vec::new()),
        Just(b"null".to_vec()),
    ]
    .boxed()
}

/// A body over the limit (413) or just at it, padded with whitespace so that only
/// its size decides.
fn sized_body(route: Route) -> BoxedStrategy<Vec<u8>> {
    prop::sample::select(vec![
        BODY_LIMIT - 1,
        BODY_LIMIT,
        BODY_LIMIT + 1,
        BODY_LIMIT * 2,
    ])
    .prop_map(move |n| {
        let mut body = match route {
            Route::Reorder => br#"{"ids":["{P0}","{P1}","{P2}"]}"#.to_vec(),
            Route::Config => br#"{"default_wait_seconds":7}"#.to_vec(),
            _ => br#"{"content":"padded"}"#.to_vec(),
        };
        body.resize(n, b' ');
        body
    })
    .boxed()
}

fn body_for(route: Route) -> BoxedStrategy<Vec<u8>> {
    let to_bytes = |v: Value| serde_json::to_vec(&v).unwrap_or_default();
    prop_oneof![
        2 => proptest::collection::vec(any::<u8>(), 0..300),
        3 => any_json().prop_map(to_bytes),
        4 => valid_body(route).prop_map(to_bytes),
        6 => (valid_body(route), proptest::collection::vec(mutation(), 1..4))
            .prop_map(move |(body, ms)| to_bytes(ms.iter().fold(body, mutate))),
        2 => (valid_body(route), proptest::collection::vec(damage(), 1..3))
            .prop_map(move |(body, ds)| ds.iter().fold(to_bytes(body), apply_damage)),
        3 => raw_text(route),
        1 => sized_body(route),
    ]
    .boxed()
}

/// What the API must do with a body.
#[derive(Debug)]
enum Expect {
    /// Any of these statuses, and nothing changed.
    Refused(&'static [u16]),
    Created(String),
    Edited(String),
    Reordered(Vec<String>),
    Configured(Settings),
    Requeued,
}

/// Parses `body` as the API documents it: malformed JSON is 400; a document
/// that is well-formed but past serde's limits (a number too big for any
/// machine type, nesting too deep) may be told either way, so both are allowed.
fn parse_json(body: &[u8]) -> Result<Value, Expect> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) => {
            let text = e.to_string();
            if text.starts_with("number out of range") || text.starts_with("recursion limit") {
                Err(Expect::Refused(&[400, 422]))
            } else {
                Err(Expect::Refused(&[400]))
            }
        }
    }
}

const VALIDATION: Expect = Expect::Refused(&[422]);

fn expect_content(value: &Value) -> Result<String, Expect> {
    let Some(object) = value.as_object() else {
        return Err(VALIDATION);
    };
    if object.len() != 1 {
        return Err(VALIDATION);
    }
    let Some(text) = object.get("content").and_then(Value::as_str) else {
        return Err(VALIDATION);
    };
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.chars().count() > Content::MAX_CHARS {
        return Err(VALIDATION);
    }
    Ok(trimmed.to_owned())
}

fn expect_reorder(value: &Value, pending: &[String]) -> Expect {
    let Some(object) = value.as_object() else {
        return VALIDATION;
    };
    if object.len() != 1 {
        return VALIDATION;
    }
    let Some(ids) = object.get("ids").and_then(Value::as_array) else {
        return VALIDATION;
    };
    let mut parsed = Vec::new();
    for id in ids {
        match id.as_str().map(InstructionId::parse) {
            Some(Ok(id)) => parsed.push(id.to_string()),
            _ => return VALIDATION,
        }
    }
    let unique: BTreeSet<&String> = parsed.iter().collect();
    let wanted: BTreeSet<&String> = pending.iter().collect();
    if unique.len() == parsed.len() && unique == wanted {
        Expect::Reordered(parsed)
    } else {
        Expect::Refused(&[409])
    }
}

/// A JSON Schema `integer`: a number with no fraction, `7.0` included.
fn whole_number(v: &Value) -> Option<i64> {
    match v.as_i64() {
        Some(n) => Some(n),
        None if v.is_u64() => None,
        None => v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64),
    }
}

fn expect_config(value: &Value, current: &Settings) -> Expect {
    let Some(object) = value.as_object() else {
        return VALIDATION;
    };
    let mut next = current.clone();
    for (key, v) in object {
        match key.as_str() {
            "default_wait_seconds" => match whole_number(v) {
                Some(n) if (0..=i64::from(MAX_WAIT_SECONDS)).contains(&n) => {
                    next.default_wait_seconds = n as u32;
                }
                _ => return VALIDATION,
            },
            "agent_stale_after_seconds" => match whole_number(v) {
                Some(n) if (1..=i64::from(MAX_STALE_SECONDS)).contains(&n) => {
                    next.agent_stale_after_seconds = n as u32;
                }
                _ => return VALIDATION,
            },
            "default_empty_response" => match v.as_str() {
                Some(s) if s.chars().count() <= MAX_EMPTY_RESPONSE_CHARS => {
                    next.default_empty_response = s.to_owned();
                }
                _ => return VALIDATION,
            },
            _ => return VALIDATION,
        }
    }
    Expect::Configured(next)
}

fn expect_body(route: Route, body: &[u8], f: &Fixture, before: &State) -> Expect {
    if body.len() > BODY_LIMIT {
        return Expect::Refused(&[413]);
    }
    // The requeue route reads no body.
    match route {
        Route::RequeueConsumed => return Expect::Requeued,
        Route::RequeuePending => return Expect::Refused(&[409]),
        _ => {}
    }
    let value = match parse_json(body) {
        Ok(v) => v,
        Err(e) => return e,
    };
    match route {
        Route::Reorder => expect_reorder(&value, &f.pending_strings()),
        Route::Config => expect_config(&value, &before.settings),
        _ => match expect_content(&value) {
            Err(e) => e,
            Ok(content) => match route {
                Route::Create => Expect::Created(content),
                Route::EditPending => Expect::Edited(content),
                Route::EditConsumed => Expect::Refused(&[409]),
                _ => Expect::Refused(&[404]),
            },
        },
    }
}

/// Checks the answer and the queue after it against what was expected.
fn judge(
    expect: &Expect,
    reply: &Reply,
    f: &Fixture,
    before: &State,
    after: &State,
) -> Result<(), TestCaseError> {
    let body = || String::from_utf8_lossy(&reply.body).into_owned();
    match expect {
        Expect::Refused(statuses) => {
            prop_assert!(
                statuses.contains(&reply.status),
                "expected one of {statuses:?}, got {}: {}",
                reply.status,
                body()
            );
            prop_assert_eq!(after, before, "a refused request changed the queue");
        }
        Expect::Created(content) => {
            prop_assert_eq!(reply.status, 201, "{}", body());
            let item = &reply.json()["item"];
            prop_assert_eq!(item["content"].as_str(), Some(content.as_str()));
            prop_assert_eq!(item["status"].as_str(), Some("pending"));
            prop_assert_eq!(after.items.len(), before.items.len() + 1);
            prop_assert_eq!(&after.items[..before.items.len()], &before.items[..]);
            let new = &after.items[before.items.len()];
            prop_assert_eq!(new.content.as_str(), content.as_str(), "stored exactly");
            prop_assert_eq!(
                item["id"].as_str().map(str::to_owned),
                Some(new.id.to_string())
            );
            prop_assert_eq!(&after.settings, &before.settings);
        }
        Expect::Edited(content) => {
            prop_assert_eq!(reply.status, 200, "{}", body());
            let answer = reply.json();
            prop_assert_eq!(answer["item"]["content"].as_str(), Some(content.as_str()));
            let target = f.pending[0];
            prop_assert_eq!(after.items.len(), before.items.len());
            for (a, b) in after.items.iter().zip(&before.items) {
                if a.id == target {
                    prop_assert_eq!(a.content.as_str(), content.as_str(), "stored exactly");
                    prop_assert_eq!((a.status, a.position), (b.status, b.position));
                } else {
                    prop_assert_eq!(a, b);
                }
            }
        }
        Expect::Reordered(ids) => {
            prop_assert_eq!(reply.status, 200, "{}", body());
            let answer = reply.json();
            let answered: Vec<&str> = answer["items"]
                .as_array()
                .map(|a| a.iter().filter_map(|i| i["id"].as_str()).collect())
                .unwrap_or_default();
            prop_assert_eq!(&answered, ids);
            prop_assert_eq!(&after.pending_ids(), ids);
            let mut a: Vec<_> = after.items.iter().map(essence).collect();
            let mut b: Vec<_> = before.items.iter().map(essence).collect();
            a.sort();
            b.sort();
            prop_assert_eq!(a, b, "a reorder changed more than the order");
        }
        Expect::Configured(settings) => {
            prop_assert_eq!(reply.status, 200, "{}", body());
            prop_assert_eq!(reply.json(), settings_json(settings));
            prop_assert_eq!(&after.settings, settings, "stored exactly");
            prop_assert_eq!(&after.items, &before.items);
        }
        Expect::Requeued => {
            prop_assert_eq!(reply.status, 201, "{}", body());
            let original = before
                .item(f.consumed)
                .map(|i| i.content.as_str().to_owned());
            prop_assert_eq!(after.items.len(), before.items.len() + 1);
            let new = &after.items[before.items.len()];
            prop_assert_eq!(Some(new.content.as_str().to_owned()), original);
            prop_assert_eq!(new.status, Status::Pending);
            prop_assert_eq!(&after.items[..before.items.len()], &before.items[..]);
        }
    }
    Ok(())
}

#[test]
fn fuzz_request_bodies() {
    let rt = System::new();
    // Weighted to the routes that take a body and can succeed; the requeue
    // routes read none.
    let strategy = prop_oneof![
        6 => prop::sample::select(vec![Route::Create, Route::EditPending, Route::Reorder, Route::Config]),
        2 => prop::sample::select(vec![Route::EditConsumed, Route::EditMissing]),
        1 => prop::sample::select(Route::ALL.to_vec()),
    ]
    .prop_flat_map(|route| (Just(route), body_for(route)));
    fuzz("fuzz_request_bodies", 1500, strategy, |(route, body)| {
        on(&rt, async {
            let f = Fixture::start(None).await;
            let body = f.fill(&body);
            let before = f.state().await;
            let expect = expect_body(route, &body, &f, &before);
            let method = route.method();
            let path = route.path(&f);
            let req = Server::req(method.clone(), &path)
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(body.clone());
            let reply = send(&f.server, &method, &path, req).await;
            let after = f.state().await;
            judge(&expect, &reply, &f, &before, &after)
                .map_err(|e| TestCaseError::fail(format!("{method} {path} {expect:?}: {e}")))
        })
    });
}

/// Found by schemathesis: the document says `integer`, which JSON Schema
/// reads as any number without a fraction, so `7.0` is a valid wait.
#[test]
fn fuzz_found_whole_number_floats_are_integers() {
    let rt = System::new();
    on(&rt, async {
        let f = Fixture::start(None).await;
        for (body, wait, stale) in [
            (r#"{"default_wait_seconds": 7.0}"#, 7, 30),
            (
                r#"{"default_wait_seconds": 0.0, "agent_stale_after_seconds": 86400.0}"#,
                0,
                86_400,
            ),
            (r#"{"agent_stale_after_seconds": 1e1}"#, 0, 10),
        ] {
            let req = Server::req(Method::PATCH, "/api/config")
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(body);
            let reply = send(&f.server, &Method::PATCH, "/api/config", req).await;
            reply.expect_status(200);
            let settings = f.state().await.settings;
            assert_eq!(
                (
                    settings.default_wait_seconds,
                    settings.agent_stale_after_seconds
                ),
                (wait, stale),
                "{body}"
            );
        }
        for body in [
            r#"{"default_wait_seconds": 1.5}"#,
            r#"{"default_wait_seconds": 1e300}"#,
            r#"{"agent_stale_after_seconds": 0.0}"#,
        ] {
            let before = f.state().await;
            let req = Server::req(Method::PATCH, "/api/config")
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(body);
            send(&f.server, &Method::PATCH, "/api/config", req)
                .await
                .expect_error(422, "validation");
            assert_eq!(f.state().await, before, "{body}");
        }
    });
}

/// Found by schemathesis: a 405 must say in `Allow` which methods the path
/// takes (RFC 9110); they are the ones the document lists for it.
#[test]
fn fuzz_found_405_names_the_allowed_methods() {
    let rt = System::new();
    on(&rt, async {
        let f = Fixture::start(None).await;
        for (template, item) in openapi_document()["paths"].as_object().expect("paths") {
            let documented: BTreeSet<String> = item
                .as_object()
                .expect("a path item")
                .keys()
                .filter(|k| *k != "parameters")
                .map(|k| k.to_ascii_uppercase())
                .collect();
            let path = template
                .replace("{id}", &f.pending[0].to_string())
                .replace("{file}", "init.js");
            for method in [Method::TRACE, Method::PUT, Method::OPTIONS, Method::DELETE] {
                if documented.contains(method.as_str()) {
                    continue;
                }
                let mut req = Server::req(method.clone(), &path);
                if method == Method::PUT {
                    req = req
                        .insert_header((header::CONTENT_TYPE, "application/json"))
                        .set_payload("{}");
                }
                let reply = send(&f.server, &method, &path, req).await;
                reply.expect_error(405, "bad_request");
                let allow: BTreeSet<String> = reply
                    .header("allow")
                    .unwrap_or_else(|| panic!("{method} {path}: a 405 without Allow"))
                    .split(',')
                    .map(|m| m.trim().to_owned())
                    .collect();
                assert_eq!(allow, documented, "{method} {path}");
            }
        }
    });
}

// ---------------------------------------------------------------------------
// (b) Query strings on the listing.
// ---------------------------------------------------------------------------

/// One `key=value` of a query, before encoding.
#[derive(Clone, Debug)]
struct Param {
    key: String,
    value: Option<String>,
}

fn query_value() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "pending", "consumed", "all", "ALL", "Pending", " all", "", "0", "1", "2", "3",
            "10", "-1", "+2", " 2 ", "2.0", "1e3", "18446744073709551615",
            "18446744073709551616", "9223372036854775807", "9223372036854775808", "0x1",
            "١",
        ])
        .prop_map(str::to_owned),
        2 => (0u64..12).prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        2 => nasty_string(),
    ]
    .boxed()
}

fn param() -> BoxedStrategy<Param> {
    let key = prop_oneof![
        6 => prop::sample::select(vec!["status", "limit", "offset"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["STATUS", "limit[]", "offset ", "token", "access_token", ""])
            .prop_map(str::to_owned),
        1 => nasty_string(),
    ];
    (key, proptest::option::of(query_value()))
        .prop_map(|(key, value)| Param { key, value })
        .boxed()
}

/// How each byte of a key or value is written in the URL.
#[derive(Clone, Copy, Debug)]
enum Encoding {
    /// Only what must be encoded; spaces as `+`.
    Minimal,
    /// Every byte as `%XX`, in upper or lower case hex.
    Everything { lower: bool },
}

fn encode(text: &str, how: Encoding) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        let plain = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        match how {
            Encoding::Minimal if plain => out.push(b as char),
            Encoding::Minimal if b == b' ' => out.push('+'),
            Encoding::Everything { lower: true } => out.push_str(&format!("%{b:02x}")),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A query string and what a form decoder reads from it.
fn query() -> BoxedStrategy<String> {
    let encoding = prop_oneof![
        3 => Just(Encoding::Minimal),
        1 => any::<bool>().prop_map(|lower| Encoding::Everything { lower }),
    ];
    let junk = prop::sample::select(vec![
        "", "&", "&&", "=", "%", "%zz", "%4", "+", "%2B", "%00", "%ff",
    ]);
    (
        proptest::collection::vec((param(), encoding), 0..5),
        junk,
        any::<bool>(),
    )
        .prop_map(|(params, junk, junk_first)| {
            let mut parts: Vec<String> = params
                .iter()
                .map(|(p, how)| match &p.value {
                    Some(v) => format!("{}={}", encode(&p.key, *how), encode(v, *how)),
                    None => encode(&p.key, *how),
                })
                .collect();
            if !junk.is_empty() {
                if junk_first {
                    parts.insert(0, junk.to_owned());
                } else {
                    parts.push(junk.to_owned());
                }
            }
            parts.join("&")
        })
        .boxed()
}

/// `application/x-www-form-urlencoded` decoding as the URL standard gives it: `+`
/// is a space, `%XX` a byte, anything else itself, then UTF-8 with replacement.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

/// What `GET /api/instructions?query` must answer over `all` (every item in
/// listing order): the ids and the total, or a validation error.
fn expect_listing(query: &str, all: &[Instruction]) -> Result<(Vec<String>, u64), ()> {
    let pairs = form_pairs(query);
    let one = |name: &str| -> Result<Option<&str>, ()> {
        let mut values = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        // A parameter given twice is ambiguous.
        if values.next().is_some() {
            return Err(());
        }
        Ok(first)
    };
    let count = |v: Option<&str>| -> Result<Option<u64>, ()> {
        v.map(|v| v.trim().parse::<u64>().map_err(|_| ()))
            .transpose()
    };
    let status = one("status")?;
    let limit = count(one("limit")?)?;
    let offset = count(one("offset")?)?.unwrap_or(0);
    let wanted: Vec<&Instruction> = match status {
        None | Some("all") => all.iter().collect(),
        Some("pending") => all.iter().filter(|i| i.status == Status::Pending).collect(),
        Some("consumed") => all
            .iter()
            .filter(|i| i.status == Status::Consumed)
            .collect(),
        Some(_) => return Err(()),
    };
    let total = wanted.len() as u64;
    let ids = wanted
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX)))
        .map(|i| i.id.to_string())
        .collect();
    Ok((ids, total))
}

#[test]
fn fuzz_query_strings() {
    let rt = System::new();
    let f = on(&rt, async {
        let f = Fixture::start(None).await;
        // A second consumed item, so that every status has more than one.
        f.server
            .service
            .next_instruction(AgentId::parse("fuzzer").expect("valid"))
            .await
            .expect("fetch");
        f
    });
    let before = on(&rt, f.state());
    fuzz("fuzz_query_strings", 2000, query(), |query| {
        let uri = format!("/api/instructions?{query}");
        prop_assume!(actix_web::http::Uri::try_from(uri.as_str()).is_ok());
        on(&rt, async {
            let reply = get(&f.server, "/api/instructions", &uri).await;
            match expect_listing(&query, &before.items) {
                Ok((ids, total)) => {
                    prop_assert_eq!(
                        reply.status,
                        200,
                        "{}: {:?}",
                        uri,
                        String::from_utf8_lossy(&reply.body)
                    );
                    let body = reply.json();
                    let got: Vec<String> = body["items"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    prop_assert_eq!(got, ids, "{}", uri);
                    prop_assert_eq!(body["total"].as_u64(), Some(total), "{}", uri);
                }
                Err(()) => {
                    prop_assert_eq!(
                        reply.status,
                        422,
                        "{}: {:?}",
                        uri,
                        String::from_utf8_lossy(&reply.body)
                    );
                }
            }
            prop_assert_eq!(&f.state().await, &before, "a GET changed the queue");
            Ok(())
        })
    });
}

/// Found by schemathesis: the document gave `limit` and `offset` no maximum,
/// but the server reads them as 64-bit counts. The bound is now documented and
/// holds on both sides of it.
#[test]
fn fuzz_found_query_counts_have_their_documented_maximum() {
    let parameters = &openapi_document()["paths"]["/api/instructions"]["get"]["parameters"];
    for name in ["limit", "offset"] {
        let schema = parameters
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .map(|p| &p["schema"])
            .expect("documented");
        assert_eq!(schema["maximum"], json!(u64::MAX), "{name}");
    }
    let rt = System::new();
    on(&rt, async {
        let f = Fixture::start(None).await;
        for (query, status) in [
            ("limit=18446744073709551615", 200),
            ("offset=18446744073709551615", 200),
            ("limit=18446744073709551616", 422),
            ("offset=18446744073709551616", 422),
        ] {
            let uri = format!("/api/instructions?{query}");
            let reply = get(&f.server, "/api/instructions", &uri).await;
            reply.expect_status(status);
        }
    });
}

// ---------------------------------------------------------------------------
// (c) Ids in paths.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdRoute {
    Get,
    Edit,
    Delete,
    Requeue,
}

/// A path segment standing for an id: a placeholder in some spelling, or
/// anything at all, percent-encoded as a client might.
fn id_segment() -> BoxedStrategy<String> {
    let encoding = prop_oneof![
        3 => Just(Encoding::Minimal),
        1 => any::<bool>().prop_map(|lower| Encoding::Everything { lower }),
    ];
    prop_oneof![
        4 => (placeholder(), encoding.clone()).prop_map(|(p, how)| {
            // Keep the placeholder readable for Fixture::fill; encode the rest.
            match p.find('{').zip(p.find('}')) {
                Some((a, b)) if a < b => format!(
                    "{}{}{}",
                    encode(&p[..a], how),
                    &p[a..=b],
                    encode(&p[b + 1..], how)
                ),
                _ => encode(&p, how),
            }
        }),
        3 => (nasty_string(), encoding).prop_map(|(s, how)| encode(&s, how)),
        1 => prop::sample::select(vec![
            "", ".", "..", "%2F", "%2e%2e", "%00", "%", "%zz", "reorder", "%72eorder", "requeue",
            "null", "undefined", "0", "-1",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

/// Percent-decoding as a path does it (a `+` is itself).
fn path_decode(segment: &str) -> String {
    form_decode(&segment.replace('+', "%2B"))
}

#[test]
fn fuzz_path_ids() {
    let rt = System::new();
    let strategy = (
        prop::sample::select(vec![
            IdRoute::Get,
            IdRoute::Edit,
            IdRoute::Delete,
            IdRoute::Requeue,
        ]),
        id_segment(),
    );
    fuzz("fuzz_path_ids", 1000, strategy, |(route, segment)| {
        on(&rt, async {
            let f = Fixture::start(None).await;
            let segment = String::from_utf8_lossy(&f.fill(segment.as_bytes())).into_owned();
            let (method, path) = match route {
                IdRoute::Get => (Method::GET, format!("/api/instructions/{segment}")),
                IdRoute::Edit => (Method::PATCH, format!("/api/instructions/{segment}")),
                IdRoute::Delete => (Method::DELETE, format!("/api/instructions/{segment}")),
                IdRoute::Requeue => (Method::POST, format!("/api/instructions/{segment}/requeue")),
            };
            prop_assume!(actix_web::http::Uri::try_from(path.as_str()).is_ok());
            let mut req = Server::req(method.clone(), &path);
            if route == IdRoute::Edit || route == IdRoute::Requeue {
                req = req
                    .insert_header((header::CONTENT_TYPE, "application/json"))
                    .set_payload(if route == IdRoute::Edit {
                        r#"{"content":"  renamed "}"#
                    } else {
                        "{}"
                    });
            }
            let before = f.state().await;
            let reply = f.server.send(req).await;
            // The document check needs the path as routed: decoded.
            let decoded = path_decode(&segment);
            let routed_path = if decoded.contains('/') {
                path.clone()
            } else {
                path.replace(&segment, &decoded)
            };
            conforms(&method, &routed_path, &reply)?;
            let after = f.state().await;
            let id = InstructionId::parse(&decoded).ok();
            let known = id.and_then(|id| before.item(id));
            let pending = known.is_some_and(|i| i.status == Status::Pending);
            let expected: u16 = if decoded.is_empty() {
                404
            } else if decoded == "reorder" && route != IdRoute::Requeue {
                405
            } else {
                match (id, known, route) {
                    (None, _, _) => 422,
                    (Some(_), None, _) => 404,
                    (Some(_), Some(_), IdRoute::Get) => 200,
                    (Some(_), Some(_), IdRoute::Edit) if pending => 200,
                    (Some(_), Some(_), IdRoute::Delete) if pending => 204,
                    (Some(_), Some(_), IdRoute::Requeue) if !pending => 201,
                    (Some(_), Some(_), _) => 409,
                }
            };
            prop_assert_eq!(
                reply.status,
                expected,
                "{} {} (decoded {:?}): {:?}",
                method,
                path,
                decoded,
                String::from_utf8_lossy(&reply.body)
            );
            let others = |a: &State| -> Vec<Instruction> {
                a.items
                    .iter()
                    .filter(|i| Some(i.id) != id)
                    .cloned()
                    .collect()
            };
            match (reply.status, id) {
                (200, Some(id)) if route == IdRoute::Edit => {
                    let target = after.item(id).map(|i| i.content.as_str());
                    prop_assert_eq!(target, Some("renamed"), "stored trimmed");
                    prop_assert_eq!(others(&after), others(&before));
                }
                (204, Some(id)) => {
                    prop_assert!(after.item(id).is_none());
                    prop_assert_eq!(others(&after), others(&before));
                }
                (201, _) => {
                    prop_assert_eq!(after.items.len(), before.items.len() + 1);
                    prop_assert_eq!(&after.items[..before.items.len()], &before.items[..]);
                }
                _ => prop_assert_eq!(&after, &before, "{} {} changed the queue", method, path),
            }
            Ok(())
        })
    });
}

// ---------------------------------------------------------------------------
// (d) Headers: the guards, caching and event resumption.
// ---------------------------------------------------------------------------

/// A header value from a labelled pool, or raw bytes (obs-text included) that
/// are never a valid value for the guard. `good` says whether the guard must
/// let it through.
#[derive(Clone, Debug)]
struct Labelled {
    value: Vec<u8>,
    good: bool,
}

fn labelled(good: &[&str], bad: &[&str]) -> BoxedStrategy<Labelled> {
    let good: Vec<String> = good.iter().map(|s| (*s).to_owned()).collect();
    let bad: Vec<String> = bad.iter().map(|s| (*s).to_owned()).collect();
    prop_oneof![
        7 => prop::sample::select(good).prop_map(|v| Labelled { value: v.into_bytes(), good: true }),
        2 => prop::sample::select(bad).prop_map(|v| Labelled { value: v.into_bytes(), good: false }),
        // Starts with a byte no good value starts with, then anything a header
        // value may hold: visible ASCII, spaces, tabs, obs-text.
        1 => (
            prop::sample::select(vec![b'x', b'\xc3', b'\xff', b'"', b'*']),
            proptest::collection::vec(
                prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')],
                0..40
            ),
        )
            .prop_map(|(first, rest)| {
                let mut value = vec![first];
                value.extend(rest);
                Labelled { value, good: false }
            }),
    ]
    .boxed()
}

fn host() -> BoxedStrategy<Option<Labelled>> {
    prop_oneof![
        8 => labelled(
            &["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST", "127.0.0.1", "localhost:1", "[::1]", " localhost:8000 "],
            &["evil.test", "evil.test:8000", "127.0.0.2:8000", "localhost.evil.test", "127.0.0.1.evil.test", "localhost:99999", "localhost:x", "[::1", "[::2]:8000", ":8000", "", "0.0.0.0:8000", "127.1:8000", "2130706433"],
        )
        .prop_map(Some),
        1 => Just(None),
    ]
    .boxed()
}

fn origin() -> BoxedStrategy<Option<Labelled>> {
    prop_oneof![
        2 => Just(None),
        5 => labelled(
            &["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000", "HTTP://LOCALHOST:8000", " http://127.0.0.1:8000"],
            &["null", "http://localhost:3000", "http://localhost", "https://localhost:8000", "http://evil.test:8000", "http://127.0.0.1:8000/", "http://127.0.0.1:8000.evil.test", "file://", "", "http://127.0.0.1:8000/api", "ws://localhost:8000", "http://user@localhost:8000", "http://localhost:8000:8000"],
        )
        .prop_map(Some),
    ]
    .boxed()
}

const TOKEN: &str = "fuzz-token";

fn authorization() -> BoxedStrategy<Option<Labelled>> {
    prop_oneof![
        2 => Just(None),
        5 => labelled(
            &["Bearer fuzz-token", "bearer fuzz-token", "BEARER fuzz-token", "Bearer  fuzz-token ", "Bearer fuzz-token\t"],
            &["Bearer", "Bearer ", "Bearer fuzz-token2", "Bearer fuzz-toke", "Basic fuzz-token", "fuzz-token", "Bearer FUZZ-TOKEN", "Bearerfuzz-token", "Bearer fuzz-token, Bearer x", "Bearer\tfuzz-token"],
        )
        .prop_map(Some),
    ]
    .boxed()
}

fn content_type() -> BoxedStrategy<Option<Labelled>> {
    prop_oneof![
        1 => Just(None),
        6 => labelled(
            &["application/json", "application/json; charset=utf-8", "Application/JSON", " application/json ;x=y", "application/json;", "application/json; charset=latin1"],
            &["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx", "application/json-patch+json", "", "json", "text/json", "application/ json", "application/*", "*/*"],
        )
        .prop_map(Some),
    ]
    .boxed()
}

/// A `Content-Length` to put over the true one: numbers around the limit, lies
/// about the body and values that are no number.
fn content_length() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        3 => Just(None),
        2 => prop::sample::select(vec![
            String::from("0"),
            String::from("1"),
            BODY_LIMIT.to_string(),
            (BODY_LIMIT + 1).to_string(),
            u64::MAX.to_string(),
            String::from("18446744073709551616"),
            String::from("-1"),
            String::from("abc"),
            String::from(" 300000 "),
            String::from("3, 3"),
            String::new(),
        ])
        .prop_map(Some),
    ]
    .boxed()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Health,
    Status,
    List,
    Create,
    Edit,
    Delete,
    Reorder,
    Config,
    PatchConfig,
    Events,
    OpenApi,
    Docs,
    Ui,
    Unknown,
}

impl Target {
    const ALL: [Target; 14] = [
        Target::Health,
        Target::Status,
        Target::List,
        Target::Create,
        Target::Edit,
        Target::Delete,
        Target::Reorder,
        Target::Config,
        Target::PatchConfig,
        Target::Events,
        Target::OpenApi,
        Target::Docs,
        Target::Ui,
        Target::Unknown,
    ];

    fn request(self, f: &Fixture) -> (Method, String, Option<String>) {
        let p0 = f.pending[0];
        let ids = f.pending_strings();
        match self {
            Target::Health => (Method::GET, "/healthz".into(), None),
            Target::Status => (Method::GET, "/api/status".into(), None),
            Target::List => (Method::GET, "/api/instructions".into(), None),
            Target::Create => (
                Method::POST,
                "/api/instructions".into(),
                Some(r#"{"content":"via headers"}"#.into()),
            ),
            Target::Edit => (
                Method::PATCH,
                format!("/api/instructions/{p0}"),
                Some(r#"{"content":"edited"}"#.into()),
            ),
            Target::Delete => (Method::DELETE, format!("/api/instructions/{p0}"), None),
            Target::Reorder => {
                let mut ids = ids;
                ids.reverse();
                (
                    Method::POST,
                    "/api/instructions/reorder".into(),
                    Some(json!({ "ids": ids }).to_string()),
                )
            }
            Target::Config => (Method::GET, "/api/config".into(), None),
            Target::PatchConfig => (
                Method::PATCH,
                "/api/config".into(),
                Some(r#"{"default_wait_seconds":9}"#.into()),
            ),
            Target::Events => (Method::GET, "/api/events".into(), None),
            Target::OpenApi => (Method::GET, "/openapi.json".into(), None),
            Target::Docs => (Method::GET, "/docs/".into(), None),
            Target::Ui => (Method::GET, "/".into(), None),
            Target::Unknown => (Method::GET, "/api/nothing-here".into(), None),
        }
    }

    fn under_api(self) -> bool {
        !matches!(
            self,
            Target::Health | Target::OpenApi | Target::Docs | Target::Ui
        )
    }

    fn changes(self) -> bool {
        matches!(
            self,
            Target::Create | Target::Edit | Target::Delete | Target::Reorder | Target::PatchConfig
        )
    }
}

/// An `If-None-Match` that holds the current ETag (`true`) or not.
fn if_none_match() -> BoxedStrategy<Option<(String, bool)>> {
    prop_oneof![
        2 => Just(None),
        3 => prop::sample::select(vec![
            ("{E}", true),
            ("W/{E}", true),
            ("*", true),
            ("\"nope\", {E}", true),
            ("{E} , \"x\"", true),
            ("\"nope\"", false),
            ("{E}x", false),
            ("", false),
            (",", false),
            ("W/", false),
        ])
        .prop_map(|(v, m)| Some((v.to_owned(), m))),
    ]
    .boxed()
}

#[derive(Clone, Debug)]
struct HeaderCase {
    target: Target,
    /// Use the request's method, or another one the route may not take.
    method: Option<Method>,
    token: bool,
    host: Option<Labelled>,
    origin: Option<Labelled>,
    authorization: Option<Labelled>,
    content_type: Option<Labelled>,
    content_length: Option<String>,
    last_event_id: Option<Vec<u8>>,
    if_none_match: Option<(String, bool)>,
    forwarded: bool,
}

fn header_case() -> BoxedStrategy<HeaderCase> {
    let method = prop_oneof![
        6 => Just(None),
        1 => prop::sample::select(vec![Method::HEAD, Method::OPTIONS, Method::PUT, Method::POST, Method::DELETE, Method::PATCH])
            .prop_map(Some),
    ];
    let last_event_id = proptest::option::of(prop_oneof![
        prop::sample::select(vec![
            "0",
            "1",
            "2",
            "3",
            "999999",
            "18446744073709551615",
            "18446744073709551616",
            "-1",
            "",
            " 1 ",
            "abc"
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        proptest::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff], 0..24),
    ]);
    (
        (
            prop::sample::select(Target::ALL.to_vec()),
            method,
            any::<bool>(),
        ),
        (host(), origin(), authorization(), content_type()),
        (
            content_length(),
            last_event_id,
            if_none_match(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (target, method, token),
                (host, origin, authorization, content_type),
                (content_length, last_event_id, if_none_match, forwarded),
            )| HeaderCase {
                target,
                method,
                token,
                host,
                origin,
                authorization,
                content_type,
                content_length,
                last_event_id,
                if_none_match,
                forwarded,
            },
        )
        .boxed()
}

fn value(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).expect("generated header values are valid")
}

/// The guard's verdict for a case, in the order the document gives: Host, then
/// Origin, then the content type, then the size; then the token under `/api`.
fn guard_status(case: &HeaderCase, method: &Method, body_len: Option<usize>) -> Option<u16> {
    if !case.host.as_ref().is_some_and(|h| h.good) {
        return Some(403);
    }
    if case.origin.as_ref().is_some_and(|o| !o.good) {
        return Some(403);
    }
    if [Method::POST, Method::PUT, Method::PATCH].contains(method)
        && !case.content_type.as_ref().is_some_and(|c| c.good)
    {
        return Some(415);
    }
    let length = match &case.content_length {
        Some(lie) => lie.trim().parse::<u64>().ok(),
        None => body_len.map(|n| n as u64),
    };
    if length.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Some(413);
    }
    if case.token && case.target.under_api() && !case.authorization.as_ref().is_some_and(|a| a.good)
    {
        return Some(401);
    }
    None
}

#[test]
fn fuzz_headers() {
    let rt = System::new();
    let etags = on(&rt, async {
        let f = Fixture::start(None).await;
        let mut etags = Vec::new();
        for path in ["/openapi.json", "/docs/"] {
            let reply = f.server.get(path).await;
            etags.push((path, reply.header("etag").expect("an etag").to_owned()));
        }
        etags
    });
    fuzz("fuzz_headers", 1500, header_case(), |case| {
        on(&rt, async {
            let f = Fixture::start(case.token.then_some(TOKEN)).await;
            let (natural, path, body) = case.target.request(&f);
            let method = case.method.clone().unwrap_or(natural.clone());
            // Start from a request with no headers at all, then add the case's.
            let mut req = TestRequest::default().method(method.clone()).uri(&path);
            if let Some(body) = &body {
                req = req.set_payload(body.clone());
            }
            if let Some(h) = &case.host {
                req = req.insert_header((header::HOST, value(&h.value)));
            }
            if let Some(o) = &case.origin {
                req = req.insert_header((header::ORIGIN, value(&o.value)));
            }
            if let Some(a) = &case.authorization {
                req = req.insert_header((header::AUTHORIZATION, value(&a.value)));
            }
            if let Some(c) = &case.content_type {
                req = req.insert_header((header::CONTENT_TYPE, value(&c.value)));
            }
            if let Some(lie) = &case.content_length {
                req = req.insert_header((header::CONTENT_LENGTH, value(lie.as_bytes())));
            }
            if let Some(id) = &case.last_event_id {
                req = req.insert_header((HeaderName::from_static("last-event-id"), value(id)));
            }
            let etag = etags
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, e)| e.clone());
            if let (Some((template, _)), Some(etag)) = (&case.if_none_match, &etag) {
                req = req.insert_header((
                    header::IF_NONE_MATCH,
                    value(template.replace("{E}", etag).as_bytes()),
                ));
            }
            if case.forwarded {
                // Never trusted: a rebinding page could forge these.
                req = req
                    .insert_header((
                        HeaderName::from_static("x-forwarded-host"),
                        "127.0.0.1:8000",
                    ))
                    .insert_header((HeaderName::from_static("forwarded"), "host=localhost:8000"));
            }

            let before = f.state().await;
            let refused = guard_status(&case, &method, body.as_ref().map(String::len));
            let streams =
                refused.is_none() && case.target == Target::Events && method == Method::GET;
            if streams {
                let res = f.server.raw(req, None).await;
                prop_assert_eq!(res.status().as_u16(), 200);
                let ct = res
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                prop_assert_eq!(ct, "text/event-stream");
                support::assert_no_cors(res.headers(), "GET /api/events");
                let mut body = res.into_body();
                let first = tokio::time::timeout(
                    Duration::from_secs(5),
                    std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_next(cx)),
                )
                .await
                .expect("the stream opens at once")
                .expect("a first chunk")
                .expect("the stream does not fail");
                let text = String::from_utf8_lossy(&first).into_owned();
                prop_assert!(
                    text.starts_with("retry: 2000\n: connected\n\n"),
                    "{:?}",
                    text
                );
                let frames = test_support::SseParser::default().feed(&first);
                for block in frames.iter().filter(|f| !f.data.is_empty()) {
                    let data: Value = serde_json::from_str(&block.data)
                        .map_err(|e| TestCaseError::fail(format!("{e}: {block:?}")))?;
                    prop_assert!(data["type"].is_string(), "{:?}", block);
                }
                return Ok(());
            }
            let reply = tokio::time::timeout(Duration::from_secs(10), f.server.send(req))
                .await
                .map_err(|_| TestCaseError::fail("no answer within 10 s"))?;
            conforms(&method, &path, &reply)?;
            let after = f.state().await;
            match refused {
                Some(status) => {
                    prop_assert_eq!(
                        reply.status,
                        status,
                        "{:?}",
                        String::from_utf8_lossy(&reply.body)
                    );
                    prop_assert_eq!(&after, &before, "a refused request changed the queue");
                }
                None => {
                    prop_assert!(
                        ![401, 403, 413, 415].contains(&reply.status),
                        "a request the guards pass was refused with {}: {:?}",
                        reply.status,
                        String::from_utf8_lossy(&reply.body)
                    );
                    if method == natural {
                        let success = match case.target {
                            Target::Create => 201,
                            Target::Delete => 204,
                            Target::Unknown => 404,
                            Target::OpenApi | Target::Docs => match (&case.if_none_match, &etag) {
                                (Some((_, true)), Some(_)) => 304,
                                _ => 200,
                            },
                            _ => 200,
                        };
                        prop_assert_eq!(
                            reply.status,
                            success,
                            "{:?}",
                            String::from_utf8_lossy(&reply.body)
                        );
                    } else {
                        // A method the route may not take changes nothing it should not.
                        prop_assert!(reply.status < 500);
                    }
                    if method == natural && !case.target.changes() {
                        prop_assert_eq!(&after, &before, "{} {} changed the queue", method, path);
                    }
                }
            }
            Ok(())
        })
    });
}
