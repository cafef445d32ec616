//! The OpenAPI 3.1 document of every route this crate serves (`GET /openapi.json`,
//! SPEC §4), built once.
//!
//! The schemas of the bodies are derived with schemars from the structs that
//! write and read them ([`crate::json`], [`crate::error`], the request structs of
//! [`crate::routes`]); the operations, and the two shapes no struct writes whole
//! (the streamed listing, the event envelope), are written out here.
//! `tests/openapi.rs` drives the real server through every operation and checks
//! each answer against this document, so the two cannot drift apart.

use std::sync::OnceLock;

use actix_web::{HttpRequest, HttpResponse};
use queue_core::QueueName;
use schemars::Schema;
use schemars::generate::{Contract, SchemaSettings};
use schemars::transform::RecursiveTransform;
use serde_json::{Map, Value, json};

use crate::error::ErrorBody;
use crate::json::{HealthJson, ItemEnvelope, NAME_PATTERN, QueueListJson, ReorderJson, StatusJson};
use crate::routes::{ContentBody, NewBody, ReorderBody};
use crate::security::BODY_LIMIT;

/// The document and its serialized form, built on first use.
struct Cached {
    document: Value,
    bytes: Vec<u8>,
    etag: String,
}

fn cached() -> &'static Cached {
    static DOCUMENT: OnceLock<Cached> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let document = build();
        let bytes = serde_json::to_vec(&document).unwrap_or_default();
        let etag = crate::docs::etag_of(&bytes);
        Cached {
            document,
            bytes,
            etag,
        }
    })
}

/// The OpenAPI 3.1 document served at `GET /openapi.json`: every route of this
/// crate, its parameters, request bodies, responses (errors included) and the
/// shared shapes under `components/schemas`.
pub fn openapi_document() -> &'static Value {
    &cached().document
}

/// `GET /openapi.json`.
pub(crate) async fn serve(req: HttpRequest) -> HttpResponse {
    let cached = cached();
    crate::docs::respond(
        &req,
        crate::docs::Body {
            bytes: &cached.bytes,
            content_type: "application/json",
            etag: &cached.etag,
            immutable: false,
        },
    )
}

const SCHEMAS: &str = "#/components/schemas/";

fn schema(name: &str) -> Value {
    json!({"$ref": format!("{SCHEMAS}{name}")})
}

fn json_body(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

/// A success response with a JSON body of schema `name`.
fn ok(description: &str, name: &str) -> Value {
    json!({"description": description, "content": json_body(schema(name))})
}

/// The shared error responses, by status code: (status, component name, what it
/// means, the `code` it carries).
const ERRORS: [(u16, &str, &str, &str); 10] = [
    (
        400,
        "BadRequest",
        "The body is not valid JSON or could not be read.",
        "bad_request",
    ),
    (
        401,
        "Unauthorized",
        "Only when the server has `API_TOKEN` set: the `Authorization: Bearer <token>` header is missing or wrong. The answer carries `WWW-Authenticate: Bearer`.",
        "unauthorized",
    ),
    (
        403,
        "Forbidden",
        "The `Host` header is not a loopback name (`localhost`, `127.0.0.1`, `[::1]`, any port) nor in `ALLOWED_HOSTS`, or an `Origin` header names another site than this server.",
        "forbidden",
    ),
    (404, "NotFound", "No such instruction.", "not_found"),
    (
        405,
        "MethodNotAllowed",
        "The path exists but does not take this method.",
        "bad_request",
    ),
    (
        409,
        "Conflict",
        "The change breaks a queue rule (see the operation).",
        "conflict",
    ),
    (
        413,
        "PayloadTooLarge",
        "The request body is over 262144 bytes (256 KiB): on any route as soon as its `Content-Length` says so, else while it streams in.",
        "payload_too_large",
    ),
    (
        415,
        "UnsupportedMediaType",
        "`POST`, `PUT` and `PATCH` need `Content-Type: application/json`, even with an empty body.",
        "unsupported_media_type",
    ),
    (
        422,
        "Validation",
        "Well-formed but invalid: a value out of bounds, an unknown or missing field, a field of the wrong type, an id that is not a UUID, a bad query parameter.",
        "validation",
    ),
    (
        503,
        "Unavailable",
        "The queue could not be read or written just now: the database is locked by another process for too long, read-only, or on a full disk; the message says which. Nothing was changed and a retry may succeed; `Retry-After` says when. SQLite's own wording goes to the server log, never into the answer.",
        "internal",
    ),
];

/// `responses` of an operation: the given successes plus the shared error
/// responses for `errors`, and 413 on every operation: the guard refuses a
/// request whose `Content-Length` is over the limit before any route is looked
/// at, whether or not the route reads a body (a `GET` or `DELETE` included).
fn responses(success: &[(&str, Value)], errors: &[u16]) -> Value {
    let mut out = Map::new();
    for (status, response) in success {
        out.insert((*status).to_owned(), response.clone());
    }
    for status in errors.iter().chain(&[413]) {
        let Some((_, name, _, _)) = ERRORS.iter().find(|(s, ..)| s == status) else {
            continue;
        };
        out.insert(
            status.to_string(),
            json!({"$ref": format!("#/components/responses/{name}")}),
        );
    }
    Value::Object(out)
}

/// Marks an operation as under `/api`: the bearer token when one is configured.
fn api(mut operation: Value) -> Value {
    operation["security"] = json!([{"bearerAuth": []}, {}]);
    operation
}

fn json_request(name: &str, description: &str) -> Value {
    json!({"required": true, "description": description, "content": json_body(schema(name))})
}

fn build() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": info(),
        "servers": [{"url": "/", "description": "this server"}],
        "tags": [
            {"name": "health", "description": "Liveness, without a token."},
            {"name": "status", "description": "The server, the agents and the queue at a glance."},
            {"name": "queues", "description": "The named queues: one per project or agent group."},
            {"name": "instructions", "description": "The queues of instructions for the agents."},
            {"name": "config", "description": "The runtime settings, stored in the database."},
            {"name": "events", "description": "Live changes over Server-Sent Events."},
            {"name": "docs", "description": "This document and its viewer; no token, no data."},
        ],
        "paths": paths(),
        "components": {
            "schemas": schemas(),
            "responses": error_responses(),
            "parameters": {
                "InstructionId": {
                    "name": "id",
                    "in": "path",
                    "required": true,
                    "description": "The instruction's id. Anything that is not a UUID is refused with 422.",
                    "schema": {"type": "string", "format": "uuid"},
                },
                "Queue": {
                    "name": "queue",
                    "in": "query",
                    "required": false,
                    "description": "The queue: 1..=128 characters of letters, digits and `._:@-`. Absent: `default`. A name that breaks those rules, or names a queue that does not exist (no instruction was ever queued on it and no agent called on it), is refused with 422.",
                    "schema": queue_name_schema(),
                },
                "QueueOfInstruction": {
                    "name": "queue",
                    "in": "query",
                    "required": false,
                    "description": "The queue the instruction is on. Optional: the id alone finds it on any queue; when given, an instruction on another queue is answered 404.",
                    "schema": queue_name_schema(),
                },
                "QueueOfEvents": {
                    "name": "queue",
                    "in": "query",
                    "required": false,
                    "description": "Only this queue's `instruction.*` and `agent.updated` messages (settings and status messages still come). Absent: every queue's. An invalid name is refused with 422.",
                    "schema": queue_name_schema(),
                },
                "IfNoneMatch": {
                    "name": "If-None-Match",
                    "in": "header",
                    "required": false,
                    "description": "An `ETag` received before; when it still matches, the answer is 304 without a body.",
                    "schema": {"type": "string"},
                },
            },
            "headers": {
                "ETag": {
                    "description": "A strong validator of the body; send it back in `If-None-Match`.",
                    "schema": {"type": "string"},
                },
                "CacheControl": {
                    "description": "`no-cache` (revalidate with the ETag), or `public, max-age=31536000, immutable` for vendored files whose URL changes with their version.",
                    "schema": {"type": "string"},
                },
            },
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Only when the server has `API_TOKEN` set: every `/api/*` request (and `/mcp`) then needs `Authorization: Bearer <API_TOKEN>`, else 401. Without `API_TOKEN` no token is needed. The token is only ever read from this header, never from the URL, and compared in constant time.",
                },
            },
        },
    })
}

fn info() -> Value {
    let description = format!(
        "The HTTP API of local-mcp: a person queues instructions here (usually through \
the web UI) and an AI agent receives them one at a time, oldest first, through the MCP \
tool `get_user_request` (MCP itself is served at `/mcp`, streamable HTTP, and is not \
described here).\n\n\
JSON in and out. Times are RFC 3339 in UTC with microseconds \
(`2026-01-02T03:04:05.123456Z`); ids are UUIDs.\n\n\
**Errors.** Every refusal has the body `{{\"error\":{{\"code\",\"message\"}}}}` (schema \
`Error`). The codes: `bad_request` (400, and 405 for a method a path does not take), \
`unauthorized` (401), `forbidden` (403), `not_found` (404, also for any path nothing is \
served at), `conflict` (409), `payload_too_large` (413), `unsupported_media_type` (415), \
`validation` (422), `internal` (503). Bad input never gets a 5xx; an internal error logs \
its details and shows none.\n\n\
**Guards, on every route.** The `Host` header must be a loopback name or in \
`ALLOWED_HOSTS`, and an `Origin` header, when sent, must be this server's own origin, \
else 403. `POST`, `PUT` and `PATCH` need `Content-Type: application/json`, even with an \
empty body, else 415. A request body over {BODY_LIMIT} bytes (256 KiB) gets 413: at once \
when its `Content-Length` says so, on any route, else as it streams in. These checks come \
first, in this order. No CORS headers are sent. Then, with `API_TOKEN` set, `/api/*` \
needs `Authorization: Bearer <token>` (401 otherwise, before anything else under `/api` \
is looked at, unknown paths included); `/healthz`, `/openapi.json` and `/docs` never do.\n\n\
**Queues.** Every instruction and every agent belongs to one named queue (one per \
project, typically); an agent takes only its own queue's instructions. Routes that read or \
change a queue take `?queue=` (or `queue` in the body); absent means `default`. Routes that \
name an instruction by id find it on any queue.\n\n\
**Changes** answered with 2xx are on disk. Every change, made here, by an agent or by \
another process on the same database, is announced on `GET /api/events`."
    );
    json!({
        "title": "local-mcp HTTP API",
        "version": env!("CARGO_PKG_VERSION"),
        "summary": "Queue instructions for an AI agent; watch it work.",
        "description": description,
        "license": {"name": "MIT OR Apache-2.0", "identifier": "MIT OR Apache-2.0"},
    })
}

fn error_responses() -> Value {
    let mut out = Map::new();
    for (status, name, description, code) in ERRORS {
        let mut response = json!({
            "description": format!("{description} (`{code}`)"),
            "content": json_body(json!({
                "allOf": [
                    schema("Error"),
                    {"properties": {"error": {"properties": {"code": {"const": code}}}}},
                ],
            })),
        });
        if status == 401 {
            response["headers"] = json!({
                "WWW-Authenticate": {
                    "description": "Always `Bearer`.",
                    "schema": {"type": "string", "const": "Bearer"},
                },
            });
        }
        if status == 503 {
            response["headers"] = json!({
                "Retry-After": {
                    "description": "Seconds to wait before trying again; always `1`.",
                    "schema": {"type": "string", "const": "1"},
                },
            });
        }
        out.insert(name.to_owned(), response);
    }
    Value::Object(out)
}

fn paths() -> Value {
    let id = json!({"$ref": "#/components/parameters/InstructionId"});
    let queue = json!({"$ref": "#/components/parameters/Queue"});
    let queue_of_instruction = json!({"$ref": "#/components/parameters/QueueOfInstruction"});
    let if_none_match = json!({"$ref": "#/components/parameters/IfNoneMatch"});
    let cache_headers = json!({
        "ETag": {"$ref": "#/components/headers/ETag"},
        "Cache-Control": {"$ref": "#/components/headers/CacheControl"},
    });
    let not_modified = json!({
        "description": "Not modified: `If-None-Match` holds the current ETag. No body.",
        "headers": cache_headers,
    });
    json!({
        "/healthz": {"get": {
            "operationId": "getHealth",
            "tags": ["health"],
            "summary": "Liveness",
            "description": "Answers as long as the process serves HTTP; reads nothing from the database. Never needs a token.",
            "responses": responses(&[("200", ok("The server is up.", "Health"))], &[403]),
        }},
        "/api/status": {"get": api(json!({
            "operationId": "getStatus",
            "tags": ["status"],
            "summary": "Server, agents, queue counts and settings",
            "description": "Everything the web UI's header shows, seen from one queue (`default` unless `queue` names another): `agent` is that queue's most recently seen agent, `null` before any was seen; `agents` lists that queue's agents, most recently seen first; `queue` its counts. `queues` lists every queue with its counts and agents.",
            "parameters": [queue.clone()],
            "responses": responses(&[("200", ok("The status.", "Status"))], &[401, 403, 422, 503]),
        }))},
        "/api/queues": {"get": api(json!({
            "operationId": "listQueues",
            "tags": ["queues"],
            "summary": "Every queue, its counts and its agents",
            "description": "A queue exists once an instruction was queued on it or an agent called on it; `default` always exists. Sorted by name.",
            "responses": responses(&[("200", ok("The queues.", "QueueList"))], &[401, 403, 503]),
        }))},
        "/api/instructions": {
            "get": api(json!({
                "operationId": "listInstructions",
                "tags": ["instructions"],
                "summary": "List instructions",
                "description": "The instructions of one queue (`default` unless `queue` names another). Pending items come in queue order (by `position`), consumed items by consumption time, and `all` gives the consumed ones first, then the pending ones. `total` counts every item of the chosen status, whatever the page.",
                "parameters": [
                    queue.clone(),
                    {
                        "name": "status",
                        "in": "query",
                        "required": false,
                        "description": "Which items; anything else is refused with 422.",
                        "schema": {"type": "string", "enum": ["pending", "consumed", "all"], "default": "all"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": false,
                        "description": "At most this many items. Absent: every item from `offset` on.",
                        "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX},
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "required": false,
                        "description": "Skip this many items first.",
                        "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX, "default": 0},
                    },
                ],
                "responses": responses(
                    &[("200", ok("One page of instructions and the total count.", "ItemList"))],
                    &[401, 403, 422, 503],
                ),
            })),
            "post": api(json!({
                "operationId": "createInstruction",
                "tags": ["instructions"],
                "summary": "Queue an instruction",
                "description": "Adds a pending instruction at the end of its queue (`queue` in the body or the query string; `default` when neither names one), which comes into being if it is new. With `to_agent_id`, only that agent of the queue may take it. A waiting `get_user_request` call it is for receives it at once.",
                "parameters": [queue_in_body()],
                "requestBody": json_request("NewInstruction", "The instruction's text, its queue and its addressee."),
                "responses": responses(
                    &[("201", ok("Queued.", "ItemEnvelope"))],
                    &[400, 401, 403, 413, 415, 422, 503],
                ),
            })),
        },
        "/api/instructions/reorder": {"post": api(json!({
            "operationId": "reorderInstructions",
            "tags": ["instructions"],
            "summary": "Reorder the pending instructions of a queue",
            "description": "Puts the pending instructions of one queue (`queue` in the body or the query string, `default` when neither names one) in the order given. The ids must be exactly that queue's pending set, each once: anything else (a consumed, unknown or repeated id, a missing one, one of another queue) is refused with 409, and the client should reload the list and try again. A queue that does not exist gets 422.",
            "parameters": [queue_in_body()],
            "requestBody": json_request("Reorder", "Every pending id of the queue, in the new order."),
            "responses": responses(
                &[("200", ok("The pending instructions in their new order.", "ReorderResult"))],
                &[400, 401, 403, 409, 413, 415, 422, 503],
            ),
        }))},
        "/api/instructions/{id}": {
            "parameters": [id.clone(), queue_of_instruction.clone()],
            "get": api(json!({
                "operationId": "getInstruction",
                "tags": ["instructions"],
                "summary": "One instruction",
                "responses": responses(
                    &[("200", ok("The instruction.", "ItemEnvelope"))],
                    &[401, 403, 404, 422, 503],
                ),
            })),
            "patch": api(json!({
                "operationId": "editInstruction",
                "tags": ["instructions"],
                "summary": "Reword a pending instruction",
                "description": "Only a pending instruction can change: one an agent already took gets 409.",
                "requestBody": json_request("EditInstruction", "The new text."),
                "responses": responses(
                    &[("200", ok("The instruction as changed.", "ItemEnvelope"))],
                    &[400, 401, 403, 404, 409, 413, 415, 422, 503],
                ),
            })),
            "delete": api(json!({
                "operationId": "deleteInstruction",
                "tags": ["instructions"],
                "summary": "Delete a pending instruction",
                "description": "Only a pending instruction can be deleted: one an agent already took gets 409. Needs no `Content-Type`.",
                "responses": responses(
                    &[("204", json!({"description": "Deleted. No body."}))],
                    &[401, 403, 404, 409, 422, 503],
                ),
            })),
        },
        "/api/instructions/{id}/requeue": {
            "parameters": [id, queue_of_instruction],
            "post": api(json!({
                "operationId": "requeueInstruction",
                "tags": ["instructions"],
                "summary": "Send a consumed instruction again",
                "description": "Queues a new pending copy of a consumed instruction at the end of its queue, for the same agent if it was addressed; the consumed one stays as it was. A pending instruction gets 409. No body is read, but like every `POST` the request needs `Content-Type: application/json` (send `{}`).",
                "requestBody": {
                    "required": false,
                    "description": "Ignored; send `{}` or nothing, with `Content-Type: application/json`.",
                    "content": json_body(json!({"type": "object"})),
                },
                "responses": responses(
                    &[("201", ok("The new pending copy.", "ItemEnvelope"))],
                    &[401, 403, 404, 409, 413, 415, 422, 503],
                ),
            })),
        },
        "/api/config": {
            "get": api(json!({
                "operationId": "getConfig",
                "tags": ["config"],
                "summary": "The settings in force",
                "description": "Values saved through `PATCH` win; until a value is saved, the one given at start-up (environment, config file or built-in default) is in force.",
                "responses": responses(&[("200", ok("The settings.", "Config"))], &[401, 403, 503]),
            })),
            "patch": api(json!({
                "operationId": "updateConfig",
                "tags": ["config"],
                "summary": "Change any subset of the settings",
                "description": "Saves the given settings in the database, where they win over the start-up values from then on; `{}` changes nothing. One value out of bounds refuses the whole request with 422 and saves nothing.",
                "requestBody": json_request("ConfigPatch", "The settings to change."),
                "responses": responses(
                    &[("200", ok("The settings in force afterwards.", "Config"))],
                    &[400, 401, 403, 413, 415, 422, 503],
                ),
            })),
        },
        "/api/events": {"get": api(events_operation())},
        "/openapi.json": {"get": {
            "operationId": "getOpenApi",
            "tags": ["docs"],
            "summary": "This document",
            "description": "The OpenAPI 3.1 document of every route of this API. Never needs a token.",
            "parameters": [if_none_match],
            "responses": responses(
                &[
                    ("200", json!({
                        "description": "The document.",
                        "headers": cache_headers,
                        "content": json_body(json!({"type": "object"})),
                    })),
                    ("304", not_modified.clone()),
                ],
                &[403],
            ),
        }},
        "/docs": {"get": {
            "operationId": "getDocs",
            "tags": ["docs"],
            "summary": "Interactive API docs",
            "description": "Redirects to `/docs/`, the viewer's own directory, so the page's relative URLs resolve under it. Never needs a token.",
            "responses": responses(
                &[("308", json!({
                    "description": "Go to `/docs/` (with the same query string).",
                    "headers": {"Location": {
                        "description": "`/docs/`",
                        "schema": {"type": "string"},
                    }},
                }))],
                &[403],
            ),
        }},
        "/docs/": {"get": {
            "operationId": "getDocsIndex",
            "tags": ["docs"],
            "summary": "The API docs page",
            "description": "An interactive viewer (Swagger UI, vendored) over `/openapi.json`. Everything it loads comes from this server: no CDN, no other network request. Served with a `Content-Security-Policy` that keeps it so. \"Try it out\" sends real requests to this server. Never needs a token.",
            "parameters": [if_none_match],
            "responses": responses(
                &[
                    ("200", json!({
                        "description": "The page.",
                        "headers": {
                            "ETag": {"$ref": "#/components/headers/ETag"},
                            "Cache-Control": {"$ref": "#/components/headers/CacheControl"},
                            "Content-Security-Policy": {
                                "description": "`default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'`",
                                "schema": {"type": "string"},
                            },
                        },
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    })),
                    ("304", not_modified.clone()),
                ],
                &[403],
            ),
        }},
        "/docs/{file}": {"get": {
            "operationId": "getDocsFile",
            "tags": ["docs"],
            "summary": "A file of the API docs page",
            "description": "The viewer's scripts, styles and licence, embedded in the binary. Vendored files (under `vendor/`) are cached for good; the others are revalidated with their ETag. An unknown file gets the JSON 404. Never needs a token.",
            "parameters": [
                {
                    "name": "file",
                    "in": "path",
                    "required": true,
                    "description": "The file's path below `/docs/`; it may contain `/` (`vendor/swagger-ui/swagger-ui.css`).",
                    "schema": {"type": "string"},
                },
                if_none_match,
            ],
            "responses": responses(
                &[
                    ("200", json!({
                        "description": "The file, with the `Content-Type` of its extension (`text/javascript; charset=utf-8`, `text/css; charset=utf-8`, `text/html; charset=utf-8`, `text/plain; charset=utf-8`, ...).",
                        "headers": cache_headers,
                        "content": {"*/*": {"schema": {"type": "string"}}},
                    })),
                    ("304", not_modified.clone()),
                ],
                &[403, 404],
            ),
        }},
    })
}

fn events_operation() -> Value {
    let defaults = crate::EventsOptions::default();
    let (ring, heartbeat) = (defaults.ring, defaults.heartbeat.as_secs());
    let description = format!(
        "A `text/event-stream` of every change to the queue, the settings and the agents: made through this API, by an agent, or by another process on the same database.\n\n\
**Messages.** Each has `id: <n>`, `event: <type>` and one `data:` line holding the JSON envelope `{{\"type\", \"timestamp\", \"data\"}}` (schema `EventEnvelope`; `timestamp` is when the change happened). Ids increase; the first id of a server run is its start time in microseconds, so ids from an earlier run are always older.\n\n\
**Types** and their `data`:\n\
- `instruction.created`, `instruction.updated`, `instruction.consumed`: the full item (`Item`).\n\
- `instruction.deleted`: the item as it was before deletion (`Item`).\n\
- `instruction.reordered`: `{{\"queue\", \"ids\": [...]}}`, a queue's pending ids in their new order.\n\
- `config.updated`: the settings in force (`Config`).\n\
- `agent.updated`: the agent (`Agent`), whenever it changes: a call starts, a call returns, its wait runs out, it goes stale.\n\
- `status.changed`: the whole `GET /api/status` object (`Status`, seen from the `default` queue; its `queues` covers every queue) whenever anything in it changes (counts, agent states, settings), coalesced to at most 4 a second.\n\n\
**Queues.** Every `instruction.*` and `agent.updated` message names its queue (`queue` in its data). With `?queue=` the stream leaves out other queues' messages.\n\n\
**Keep-alive.** The stream opens with `retry: 2000` and a `: connected` comment; a `: heartbeat` comment follows every {heartbeat} s.\n\n\
**Reconnecting.** Send the last id received in `Last-Event-ID` (EventSource does it by itself) and the messages missed are replayed first, from a bounded buffer of the newest {ring}. When the id is older than that buffer, from another server run, or not a number, one `status.changed` message whose envelope carries `\"refetch\": true` is sent instead: reload everything through the other routes, then go on with the stream. A client that falls too far behind gets the same message. Without `Last-Event-ID` the stream starts with the next change."
    );
    json!({
        "operationId": "streamEvents",
        "tags": ["events"],
        "summary": "Live events (Server-Sent Events)",
        "description": description,
        "parameters": [
            {"$ref": "#/components/parameters/QueueOfEvents"},
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": false,
                "description": "The id of the last message received: replay what came after it.",
                "schema": {"type": "string"},
            },
        ],
        "responses": responses(
            &[("200", json!({
                "description": "The stream; it stays open until the client leaves or the server shuts down. Sent with `Cache-Control: no-cache`.",
                "content": {"text/event-stream": {
                    "schema": {
                        "type": "string",
                        "description": "SSE lines: `id`, `event` and `data` (an `EventEnvelope` as JSON), plus comment lines.",
                    },
                    "example": "id: 1767225600000001\nevent: instruction.created\ndata: {\"type\":\"instruction.created\",\"timestamp\":\"2026-01-01T00:00:00.000001Z\",\"data\":{\"id\":\"0190f0e4-4b1a-7c3e-9f00-000000000001\",\"queue\":\"default\",\"content\":\"Run the tests\",\"to_agent_id\":null,\"status\":\"pending\",\"created_at\":\"2026-01-01T00:00:00.000001Z\",\"updated_at\":\"2026-01-01T00:00:00.000001Z\",\"consumed_at\":null,\"consumed_by_agent_id\":null,\"position\":1}}\n\n",
                }},
            }))],
            &[401, 403, 422],
        ),
    })
}

fn queue_name_schema() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": QueueName::MAX_LEN,
        "pattern": NAME_PATTERN,
        "default": QueueName::DEFAULT,
    })
}

/// The `?queue=` of a route whose body may name the queue too.
fn queue_in_body() -> Value {
    json!({
        "name": "queue",
        "in": "query",
        "required": false,
        "description": "The queue, when the body does not name it; both at once must agree (else 422).",
        "schema": queue_name_schema(),
    })
}

fn timestamp(description: &str) -> Value {
    json!({"type": "string", "format": "date-time", "description": description})
}

/// The schemas of the response and request bodies, derived from the structs
/// that write and read them (JSON Schema 2020-12, which OpenAPI 3.1 uses as is).
fn derived_schemas() -> Map<String, Value> {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    settings.contract = Contract::Serialize;
    settings
        .transforms
        .push(Box::new(RecursiveTransform(no_rust_width)));
    let mut generator = settings.into_generator();
    // Each adds its own schema and those it refers to.
    generator.subschema_for::<ItemEnvelope<'static>>();
    generator.subschema_for::<ReorderJson<'static>>();
    generator.subschema_for::<StatusJson<'static>>();
    generator.subschema_for::<QueueListJson<'static>>();
    generator.subschema_for::<HealthJson>();
    generator.subschema_for::<ErrorBody>();
    let mut schemas = generator.take_definitions(true);

    // The request bodies, from the structs they are read into.
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    settings.contract = Contract::Deserialize;
    let mut generator = settings.into_generator();
    generator.subschema_for::<NewBody>();
    generator.subschema_for::<ContentBody>();
    generator.subschema_for::<ReorderBody>();
    schemas.extend(generator.take_definitions(true));

    // A settings change names any of the settings, as they read.
    if let Some(Value::Object(config)) = schemas.get("Config") {
        let mut patch = config.clone();
        patch.insert(
            "description".into(),
            json!("Any subset of the settings; the others keep their values. Unknown fields are refused with 422."),
        );
        patch.insert("additionalProperties".into(), json!(false));
        patch.insert("required".into(), json!([]));
        schemas.insert("ConfigPatch".into(), Value::Object(patch));
    }
    schemas
}

/// Leaves out the formats schemars gives Rust's number types (`uint32`,
/// `uint64`): they are no OpenAPI formats, and `minimum` already says what
/// they mean. `int64` is one, and stays.
fn no_rust_width(schema: &mut Schema) {
    if schema
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| f.starts_with("uint") || f == "int32" || f == "double")
    {
        schema.remove("format");
    }
}

fn schemas() -> Value {
    let mut schemas = derived_schemas();
    if let Value::Object(written) = written_schemas() {
        schemas.extend(written);
    }
    Value::Object(schemas)
}

/// The schemas no response struct writes: request bodies, the streamed listing
/// and the event envelope.
fn written_schemas() -> Value {
    json!({
        "ItemList": {
            "type": "object",
            "required": ["items", "total"],
            "properties": {
                "items": {"type": "array", "items": schema("Item")},
                "total": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "How many items of the chosen status there are in all, whatever `limit` and `offset`.",
                },
            },
        },
        "EventEnvelope": {
            "type": "object",
            "description": "The `data:` line of a message on `GET /api/events`.",
            "required": ["type", "timestamp", "data"],
            "properties": {
                "type": {
                    "type": "string",
                    "enum": ["instruction.created", "instruction.updated", "instruction.deleted", "instruction.consumed", "instruction.reordered", "config.updated", "agent.updated", "status.changed"],
                    "description": "The same as the message's `event:` line.",
                },
                "timestamp": timestamp("When the change happened."),
                "data": {
                    "description": "`Item` for `instruction.*` but `instruction.reordered` (`{\"queue\", \"ids\"}`), `Config` for `config.updated`, `Agent` for `agent.updated`, `Status` for `status.changed`.",
                    "anyOf": [
                        schema("Item"),
                        {
                            "type": "object",
                            "required": ["queue", "ids"],
                            "properties": {
                                "queue": {"type": "string"},
                                "ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
                            },
                        },
                        schema("Config"),
                        schema("Agent"),
                        schema("Status"),
                    ],
                },
                "refetch": {
                    "type": "boolean",
                    "const": true,
                    "description": "Only on a `status.changed` sent because messages were missed beyond the replay buffer: reload everything.",
                },
            },
        },
    })
}
