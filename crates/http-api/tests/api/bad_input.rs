//! Everything a client can get wrong, as one table: each row is a request and the
//! status and error code SPEC §4 promises for it. `support` also checks every
//! answer is no 5xx and has the documented error shape.

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::Method;
use actix_web::web::Bytes;
use std::pin::Pin;

use futures_util::{Stream, stream};
use http_api::BODY_LIMIT;
use queue_core::FetchOutcome;
use serde_json::json;

use crate::support::{Server, id_of};

/// How a row sends its body.
#[derive(Clone, Debug)]
enum Body {
    None,
    /// With a `Content-Length`, as a client that knows the size sends it.
    Sized(Vec<u8>),
    /// Streamed in pieces with no `Content-Length` (`Transfer-Encoding: chunked`),
    /// so only counting while reading can stop it.
    Chunked(Vec<u8>),
}

struct Row {
    name: &'static str,
    method: Method,
    /// `{pending}` and `{consumed}` stand for the ids of such instructions.
    uri: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Body,
    status: u16,
    /// The error code, or `None` for a success.
    code: Option<&'static str>,
}

const JSON: (&str, &str) = ("content-type", "application/json");

fn row(
    name: &'static str,
    method: Method,
    uri: &'static str,
    body: Body,
    status: u16,
    code: Option<&'static str>,
) -> Row {
    let headers = if matches!(method, Method::POST | Method::PATCH | Method::PUT) {
        vec![JSON]
    } else {
        vec![]
    };
    Row {
        name,
        method,
        uri,
        headers,
        body,
        status,
        code,
    }
}

fn text(s: impl Into<String>) -> Body {
    Body::Sized(s.into().into_bytes())
}

/// A JSON body of exactly `n` bytes that is valid and queues "x": the padding is
/// whitespace, which JSON ignores, so only the size can make it fail.
fn padded(n: usize) -> Vec<u8> {
    let core = br#"{"content":"x"}"#;
    let mut body = core.to_vec();
    body.resize(n, b' ');
    body
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

// One row per line, so the table reads as one.
#[rustfmt::skip]
fn table() -> Vec<Row> {
    use Method as M;
    let (post, patch, get, delete, put) = (M::POST, M::PATCH, M::GET, M::DELETE, M::PUT);
    let add = "/api/instructions";
    let edit = "/api/instructions/{pending}";
    let reorder = "/api/instructions/reorder";
    let config = "/api/config";
    let bad = Some("bad_request");
    let invalid = Some("validation");
    let mib = vec![b' '; 1024 * 1024];
    let too_long = "a".repeat(32_769);
    vec![
        // Malformed JSON: 400.
        row("truncated", post.clone(), add, text(r#"{"content": "x""#), 400, bad),
        row("unquoted key", post.clone(), add, text(r#"{content: "x"}"#), 400, bad),
        row("trailing comma", post.clone(), add, text(r#"{"content": "x",}"#), 400, bad),
        row("trailing garbage", post.clone(), add, text(r#"{"content": "x"} x"#), 400, bad),
        row("single quotes", post.clone(), add, text("{'content': 'x'}"), 400, bad),
        row("empty body", post.clone(), add, Body::None, 400, bad),
        row("whitespace body", post.clone(), add, text("  \n "), 400, bad),
        row("bad escape", post.clone(), add, text(r#"{"content": "\q"}"#), 400, bad),
        row("lone surrogate", post.clone(), add, text(r#"{"content": "\ud800"}"#), 400, bad),
        row("NaN", patch.clone(), config, text(r#"{"default_wait_seconds": NaN}"#), 400, bad),
        row("non-UTF-8 in a string", post.clone(), add, Body::Sized(b"{\"content\": \"\xff\xfe\"}".to_vec()), 400, bad),
        row("non-UTF-8 bytes", post.clone(), add, Body::Sized(b"\xff\xfe\x00".to_vec()), 400, bad),
        row("truncated edit", patch.clone(), edit, text(r#"{"content":"#), 400, bad),
        row("truncated config", patch.clone(), config, text(r#"{"default_wait_seconds":}"#), 400, bad),
        row("truncated reorder", post.clone(), reorder, text(r#"{"ids": ["#), 400, bad),
        row("empty config body", patch.clone(), config, Body::None, 400, bad),
        // Valid JSON of the wrong shape: 422.
        row("content a number", post.clone(), add, text(r#"{"content": 5}"#), 422, invalid),
        row("content null", post.clone(), add, text(r#"{"content": null}"#), 422, invalid),
        row("content an array", post.clone(), add, text(r#"{"content": ["x"]}"#), 422, invalid),
        row("content an object", post.clone(), add, text(r#"{"content": {"text": "x"}}"#), 422, invalid),
        row("content a bool", post.clone(), add, text(r#"{"content": true}"#), 422, invalid),
        row("body null", post.clone(), add, text("null"), 422, invalid),
        row("body an empty array", post.clone(), add, text("[]"), 422, invalid),
        row("body a number", post.clone(), add, text("5"), 422, invalid),
        row("body a string", post.clone(), add, text(r#""x""#), 422, invalid),
        row("body true", post.clone(), add, text("true"), 422, invalid),
        row("edit body null", patch.clone(), edit, text("null"), 422, invalid),
        row("config body null", patch.clone(), config, text("null"), 422, invalid),
        row("config body a number", patch.clone(), config, text("5"), 422, invalid),
        row("reorder body null", post.clone(), reorder, text("null"), 422, invalid),
        row("ids a string", post.clone(), reorder, text(r#"{"ids": "a,b"}"#), 422, invalid),
        row("ids numbers", post.clone(), reorder, text(r#"{"ids": [1, 2]}"#), 422, invalid),
        row("ids null", post.clone(), reorder, text(r#"{"ids": null}"#), 422, invalid),
        row("ids not UUIDs", post.clone(), reorder, text(r#"{"ids": ["not-a-uuid"]}"#), 422, invalid),
        row("wait a string", patch.clone(), config, text(r#"{"default_wait_seconds": "10"}"#), 422, invalid),
        row("wait a fraction", patch.clone(), config, text(r#"{"default_wait_seconds": 1.5}"#), 422, invalid),
        row("wait a bool", patch.clone(), config, text(r#"{"default_wait_seconds": true}"#), 422, invalid),
        row("response a number", patch.clone(), config, text(r#"{"default_empty_response": 5}"#), 422, invalid),
        row("stale an array", patch.clone(), config, text(r#"{"agent_stale_after_seconds": [30]}"#), 422, invalid),
        // Unknown fields: 422.
        row("extra field", post.clone(), add, text(r#"{"content": "x", "priority": 1}"#), 422, invalid),
        row("misspelt field", post.clone(), add, text(r#"{"contents": "x"}"#), 422, invalid),
        row("status smuggled into an edit", patch.clone(), edit, text(r#"{"content": "x", "status": "consumed"}"#), 422, invalid),
        row("unknown setting", patch.clone(), config, text(r#"{"wait": 5}"#), 422, invalid),
        row("unknown setting beside a known one", patch.clone(), config, text(r#"{"default_wait_seconds": 5, "x": 1}"#), 422, invalid),
        row("extra reorder field", post.clone(), reorder, text(r#"{"ids": [], "all": true}"#), 422, invalid),
        // Missing or empty content: 422.
        row("no content", post.clone(), add, text("{}"), 422, invalid),
        row("no content in an edit", patch.clone(), edit, text("{}"), 422, invalid),
        row("no ids", post.clone(), reorder, text("{}"), 422, invalid),
        row("empty content", post.clone(), add, text(r#"{"content": ""}"#), 422, invalid),
        row("whitespace content", post.clone(), add, text(r#"{"content": " \n\t\r "}"#), 422, invalid),
        row("32,769 characters", post.clone(), add, text(json!({"content": too_long}).to_string()), 422, invalid),
        row("32,769 two-byte characters", post.clone(), add, text(json!({"content": "é".repeat(32_769)}).to_string()), 422, invalid),
        row("empty edit", patch.clone(), edit, text(r#"{"content": "   "}"#), 422, invalid),
        row("32,769 characters in an edit", patch.clone(), edit, text(json!({"content": "b".repeat(32_769)}).to_string()), 422, invalid),
        // Settings out of bounds, however large: 422.
        row("wait -1", patch.clone(), config, text(r#"{"default_wait_seconds": -1}"#), 422, invalid),
        row("wait 86,401", patch.clone(), config, text(r#"{"default_wait_seconds": 86401}"#), 422, invalid),
        row("wait i64::MAX", patch.clone(), config, text(r#"{"default_wait_seconds": 9223372036854775807}"#), 422, invalid),
        row("wait u64::MAX", patch.clone(), config, text(r#"{"default_wait_seconds": 18446744073709551615}"#), 422, invalid),
        row("wait beyond u64", patch.clone(), config, text(r#"{"default_wait_seconds": 99999999999999999999999}"#), 422, invalid),
        row("wait below i64", patch.clone(), config, text(r#"{"default_wait_seconds": -99999999999999999999999}"#), 422, invalid),
        row("wait 1e5, whole but past the limit", patch.clone(), config, text(r#"{"default_wait_seconds": 1e5}"#), 422, invalid),
        row("stale 0", patch.clone(), config, text(r#"{"agent_stale_after_seconds": 0}"#), 422, invalid),
        row("stale 86,401", patch.clone(), config, text(r#"{"agent_stale_after_seconds": 86401}"#), 422, invalid),
        row("stale -86,400", patch.clone(), config, text(r#"{"agent_stale_after_seconds": -86400}"#), 422, invalid),
        row("stale huge", patch.clone(), config, text(r#"{"agent_stale_after_seconds": 4294967297}"#), 422, invalid),
        row("response of 4,097 characters", patch.clone(), config, text(json!({"default_empty_response": "r".repeat(4_097)}).to_string()), 422, invalid),
        row("one bad value spoils the patch", patch.clone(), config, text(r#"{"default_wait_seconds": 5, "agent_stale_after_seconds": 0}"#), 422, invalid),
        // Deep nesting is refused as the wrong type, not by exhausting the stack.
        row("deeply nested content", post.clone(), add, text(format!(r#"{{"content": {}}}"#, nested(10_000))), 422, invalid),
        row("deeply nested body", post.clone(), add, text(nested(10_000)), 422, invalid),
        row("deeply nested ids", post.clone(), reorder, text(format!(r#"{{"ids": {}}}"#, nested(10_000))), 422, invalid),
        row("deeply nested setting", patch.clone(), config, text(format!(r#"{{"default_wait_seconds": {}}}"#, nested(10_000))), 422, invalid),
        // Sizes: at most 256 KiB, counted with or without a Content-Length.
        row("exactly the limit", post.clone(), add, Body::Sized(padded(BODY_LIMIT)), 201, None),
        row("one byte over the limit", post.clone(), add, Body::Sized(padded(BODY_LIMIT + 1)), 413, Some("payload_too_large")),
        row("1 MiB", post.clone(), add, Body::Sized(mib.clone()), 413, Some("payload_too_large")),
        row("1 MiB edit", patch.clone(), edit, Body::Sized(mib.clone()), 413, Some("payload_too_large")),
        row("1 MiB config", patch.clone(), config, Body::Sized(mib.clone()), 413, Some("payload_too_large")),
        row("1 MiB delete", delete.clone(), edit, Body::Sized(mib), 413, Some("payload_too_large")),
        // Ids in paths that are not UUIDs: 422.
        row("get a non-UUID", get.clone(), "/api/instructions/not-a-uuid", Body::None, 422, invalid),
        row("get a number", get.clone(), "/api/instructions/123", Body::None, 422, invalid),
        row("get a UUID with a bad digit", get.clone(), "/api/instructions/00000000-0000-4000-8000-00000000000g", Body::None, 422, invalid),
        row("get a UUID one digit short", get.clone(), "/api/instructions/00000000-0000-4000-8000-00000000000", Body::None, 422, invalid),
        row("get a percent-encoded space", get.clone(), "/api/instructions/%20", Body::None, 422, invalid),
        row("get a NUL byte", get.clone(), "/api/instructions/%00", Body::None, 422, invalid),
        row("edit a non-UUID", patch.clone(), "/api/instructions/not-a-uuid", text(r#"{"content": "x"}"#), 422, invalid),
        row("delete a non-UUID", delete.clone(), "/api/instructions/not-a-uuid", Body::None, 422, invalid),
        row("requeue a non-UUID", post.clone(), "/api/instructions/not-a-uuid/requeue", text("{}"), 422, invalid),
        // Bad query values: 422.
        row("status bogus", get.clone(), "/api/instructions?status=bogus", Body::None, 422, invalid),
        row("status upper case", get.clone(), "/api/instructions?status=PENDING", Body::None, 422, invalid),
        row("status empty", get.clone(), "/api/instructions?status=", Body::None, 422, invalid),
        row("status twice", get.clone(), "/api/instructions?status=pending&status=consumed", Body::None, 422, invalid),
        row("limit -1", get.clone(), "/api/instructions?limit=-1", Body::None, 422, invalid),
        row("limit abc", get.clone(), "/api/instructions?limit=abc", Body::None, 422, invalid),
        row("limit 1.5", get.clone(), "/api/instructions?limit=1.5", Body::None, 422, invalid),
        row("limit beyond u64", get.clone(), "/api/instructions?limit=99999999999999999999999", Body::None, 422, invalid),
        row("limit empty", get.clone(), "/api/instructions?limit=", Body::None, 422, invalid),
        row("offset 1.5", get.clone(), "/api/instructions?offset=1.5", Body::None, 422, invalid),
        row("offset -1", get.clone(), "/api/instructions?offset=-1", Body::None, 422, invalid),
        row("offset 1e2", get.clone(), "/api/instructions?offset=1e2", Body::None, 422, invalid),
        row("limit and offset bad", get.clone(), "/api/instructions?limit=x&offset=y", Body::None, 422, invalid),
        // Wrong methods: 405 with the bad_request code.
        row("put the list", put.clone(), add, text("{}"), 405, bad),
        row("delete the list", delete.clone(), add, Body::None, 405, bad),
        row("post to an item", post.clone(), edit, text(r#"{"content": "x"}"#), 405, bad),
        row("get the reorder", get.clone(), reorder, Body::None, 405, bad),
        row("delete the config", delete.clone(), config, Body::None, 405, bad),
        row("put the config", put, config, text("{}"), 405, bad),
        row("post to healthz", post.clone(), "/healthz", text("{}"), 405, bad),
        row("post to status", post.clone(), "/api/status", text("{}"), 405, bad),
        row("post to events", post, "/api/events", text("{}"), 405, bad),
        row("get a requeue", get, "/api/instructions/{consumed}/requeue", Body::None, 405, bad),
        row("patch the reorder", patch, reorder, text(r#"{"ids": []}"#), 405, bad),
        row("delete a requeue", delete, "/api/instructions/{consumed}/requeue", Body::None, 405, bad),
    ]
}

/// Arrays where an object is documented. Serde would fill a struct from an array
/// by position, so `["x"]` must be refused explicitly.
// One row per line, so the table reads as one.
#[rustfmt::skip]
fn array_bodies() -> Vec<Row> {
    let (post, patch) = (Method::POST, Method::PATCH);
    let invalid = Some("validation");
    vec![
        row("body an array holding the content", post.clone(), "/api/instructions", text(r#"["x"]"#), 422, invalid),
        row("edit body an array", patch.clone(), "/api/instructions/{pending}", text(r#"["y"]"#), 422, invalid),
        row("config body an array", patch, "/api/config", text("[5, null, 30]"), 422, invalid),
        row("reorder body an array", post, "/api/instructions/reorder", text("[[]]"), 422, invalid),
    ]
}

/// Numbers too large for any machine type are still well-formed JSON: out of
/// bounds (422) like any other too-large setting, not malformed (400).
// One row per line, so the table reads as one.
#[rustfmt::skip]
fn out_of_range_numbers() -> Vec<Row> {
    let patch = Method::PATCH;
    let invalid = Some("validation");
    vec![
        row("wait 1e400", patch.clone(), "/api/config", text(r#"{"default_wait_seconds": 1e400}"#), 422, invalid),
        row("wait -1e400", patch.clone(), "/api/config", text(r#"{"default_wait_seconds": -1e400}"#), 422, invalid),
        row("stale 1e400", patch, "/api/config", text(r#"{"agent_stale_after_seconds": 1e400}"#), 422, invalid),
    ]
}

/// Bodies streamed without a `Content-Length`: the limit still holds, and going
/// over it is 413 like a body whose announced length is too large.
// One row per line, so the table reads as one.
#[rustfmt::skip]
fn chunked_bodies() -> Vec<Row> {
    let (post, patch) = (Method::POST, Method::PATCH);
    let too_large = Some("payload_too_large");
    let mib = vec![b' '; 1024 * 1024];
    vec![
        row("exactly the limit, chunked", post.clone(), "/api/instructions", Body::Chunked(padded(BODY_LIMIT)), 201, None),
        row("one byte over the limit, chunked", post.clone(), "/api/instructions", Body::Chunked(padded(BODY_LIMIT + 1)), 413, too_large),
        row("1 MiB chunked", post.clone(), "/api/instructions", Body::Chunked(mib.clone()), 413, too_large),
        row("1 MiB edit, chunked", patch.clone(), "/api/instructions/{pending}", Body::Chunked(mib.clone()), 413, too_large),
        row("1 MiB config, chunked", patch, "/api/config", Body::Chunked(mib.clone()), 413, too_large),
        row("1 MiB reorder, chunked", post, "/api/instructions/reorder", Body::Chunked(mib), 413, too_large),
    ]
}

/// Turns `body` into a stream of 64 KiB pieces with no length announced.
fn chunked(body: Vec<u8>) -> Payload {
    let pieces: Vec<Result<Bytes, PayloadError>> = body
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> =
        Box::pin(stream::iter(pieces));
    Payload::from(stream)
}

/// A queue with one consumed and one pending instruction, for the rows' ids.
struct Ids {
    pending: String,
    consumed: String,
}

async fn queue(srv: &Server) -> Ids {
    srv.no_wait().await;
    let consumed = id_of(&srv.add("taken").await).to_owned();
    let FetchOutcome::Instruction(_) = srv.fetch("agent-1").await.outcome else {
        panic!("the instruction is delivered");
    };
    let pending = id_of(&srv.add("waiting").await).to_owned();
    Ids { pending, consumed }
}

/// Sends every row and returns one line per row whose answer differs.
async fn run(srv: &Server, ids: &Ids, rows: Vec<Row>) -> Vec<String> {
    let mut failures = Vec::new();
    for row in rows {
        let uri = row
            .uri
            .replace("{pending}", &ids.pending)
            .replace("{consumed}", &ids.consumed);
        let mut req = Server::req(row.method.clone(), &uri);
        for header in &row.headers {
            req = req.insert_header(*header);
        }
        let payload = match row.body.clone() {
            Body::None => None,
            Body::Sized(bytes) => {
                req = req.set_payload(bytes);
                None
            }
            Body::Chunked(bytes) => {
                req = req.insert_header(("transfer-encoding", "chunked"));
                Some(chunked(bytes))
            }
        };
        // `send_with` itself fails the test on a 5xx or a malformed error body.
        let reply = srv.send_with(req, payload).await;
        let code = if reply.status >= 400 {
            reply.json()["error"]["code"].as_str().map(str::to_owned)
        } else {
            None
        };
        if reply.status != row.status || code.as_deref() != row.code {
            let body = String::from_utf8_lossy(&reply.body);
            failures.push(format!(
                "{:?} ({} {}): expected {} {:?}, got {} {:?}: {}",
                row.name,
                row.method,
                row.uri,
                row.status,
                row.code,
                reply.status,
                code,
                body.chars().take(300).collect::<String>()
            ));
        }
    }
    failures
}

/// Runs `rows` on a fresh server and fails naming every row that went wrong; then
/// checks the queue and settings hold only what the successful rows made.
async fn check(rows: Vec<Row>) {
    let srv = Server::start().await;
    let ids = queue(&srv).await;
    let config_before = srv.get("/api/config").await.json();
    let successes = rows.iter().filter(|r| r.status < 300).count();

    let failures = run(&srv, &ids, rows).await;
    assert!(
        failures.is_empty(),
        "{} row(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    let pending_now = srv.listed_ids("pending").await;
    assert_eq!(pending_now.len(), 1 + successes, "{pending_now:?}");
    assert_eq!(pending_now[0], ids.pending);
    assert_eq!(srv.item(&ids.pending).await["content"], "waiting");
    assert_eq!(srv.item(&ids.consumed).await["status"], "consumed");
    assert_eq!(srv.get("/api/config").await.json(), config_before);
}

#[actix_web::test]
async fn every_bad_request_gets_its_documented_status_and_code() {
    check(table()).await;
}

#[actix_web::test]
async fn json_arrays_are_not_taken_for_objects() {
    check(array_bodies()).await;
}

#[actix_web::test]
async fn numbers_beyond_any_machine_type_are_out_of_bounds_not_malformed() {
    check(out_of_range_numbers()).await;
}

#[actix_web::test]
async fn bodies_streamed_without_a_length_are_413_past_the_limit() {
    check(chunked_bodies()).await;
}

/// A refusal about one field names it, so the settings form can show the message
/// next to that field; refusals about the request as a whole name none.
// One case per line, so the table reads as one.
#[rustfmt::skip]
#[actix_web::test]
async fn validation_errors_name_the_field_at_fault() {
    let srv = Server::start().await;
    let pending = srv.post("/api/instructions", &json!({"content": "x"})).await;
    let edit = format!("/api/instructions/{}", id_of(&pending.json()["item"]));
    let cases = [
        ("/api/config", json!({"default_wait_seconds": 86_401}), Some("default_wait_seconds")),
        ("/api/config", json!({"default_wait_seconds": "ten"}), Some("default_wait_seconds")),
        ("/api/config", json!({"default_wait_seconds": 1.5}), Some("default_wait_seconds")),
        ("/api/config", json!({"default_wait_seconds": null}), Some("default_wait_seconds")),
        ("/api/config", json!({"agent_stale_after_seconds": 0}), Some("agent_stale_after_seconds")),
        ("/api/config", json!({"agent_stale_after_seconds": ""}), Some("agent_stale_after_seconds")),
        ("/api/config", json!({"default_empty_response": "r".repeat(4_097)}), Some("default_empty_response")),
        ("/api/config", json!({"default_empty_response": 5}), Some("default_empty_response")),
        ("/api/config", json!({"nonsense": 5}), None),
        ("/api/config", json!([5]), None),
    ];
    for (uri, body, field) in cases {
        let reply = srv.patch(uri, &body).await;
        reply.expect_error(422, "validation");
        let error = &reply.json()["error"];
        assert_eq!(error["field"].as_str(), field, "{body}: {error}");
        if let Some(field) = field {
            let message = error["message"].as_str().unwrap_or_default();
            assert!(message.starts_with(field), "{body}: {message}");
        }
    }
    for content in ["", "   ", &"c".repeat(32_769)] {
        for reply in [
            srv.post("/api/instructions", &json!({"content": content})).await,
            srv.patch(&edit, &json!({"content": content})).await,
        ] {
            reply.expect_error(422, "validation");
            assert_eq!(reply.json()["error"]["field"], "content", "{}", reply.what);
        }
    }
    // Nothing above changed anything.
    assert_eq!(srv.listed_ids("pending").await.len(), 1);
    assert_eq!(srv.item(id_of(&pending.json()["item"])).await["content"], "x");
}
