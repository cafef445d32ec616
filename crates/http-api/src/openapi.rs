//! The OpenAPI 3.1 document of every route this crate serves (`GET /openapi.json`,
//! SPEC §4), built once.
//!
//! Where each part comes from:
//! - the operations (`paths`): `#[utoipa::path]` on each handler in
//!   [`crate::routes`], [`crate::docs`] and here (`serve`), collected by
//!   [`ApiDoc`]. Their bodies name the structs that write or read them, through
//!   the [`ToSchema`] impls below, which carry schemars' names; their parameters
//!   come from [`IntoParams`] types ([`routes::ListQuery`] and the ones here);
//!   the error answers only their handler gives (404, 409) are `$ref`s to the
//!   [`ToResponse`] types of [`ERRORS`], and the 304s and the event stream's
//!   200 are [`ToResponse`] types too;
//! - `components/schemas`: derived with schemars from the same structs
//!   ([`crate::json`], [`crate::error`], the envelope of [`crate::events`], the
//!   request and listing structs of [`crate::routes`]); `ConfigPatch` is
//!   `Config` opened to any subset, here;
//! - `components/responses` (the shared errors), the bearer scheme, `info`,
//!   and the errors that follow from the guards and from what an operation
//!   declares (its scheme, body, parameters; see [`guarded`]): utoipa's
//!   builders here ([`Guards`]);
//!   tags and servers: [`ApiDoc`]'s attribute.
//!
//! `tests/openapi.rs` drives the real server through every operation and checks
//! each answer against this document, so the two cannot drift apart.

use std::borrow::Cow;
use std::sync::OnceLock;

use actix_web::{HttpRequest, HttpResponse};
use queue_core::QueueName;
use schemars::generate::{Contract, SchemaSettings};
use schemars::transform::RecursiveTransform;
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::info::{InfoBuilder, LicenseBuilder};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi as Document, Ref, RefOr, Required, Response, ResponseBuilder,
};
use utoipa::{IntoParams, Modify, OpenApi, PartialSchema, ToResponse, ToSchema};

use crate::error::ErrorBody;
use crate::events::Envelope as EventEnvelope;
use crate::json::{HealthJson, NAME_PATTERN, QueueListJson, ReorderJson, SettingsJson, StatusJson};
use crate::routes::{ContentBody, ListJson, NewBody, ReorderBody};
use crate::security::BODY_LIMIT;
use crate::{docs, routes};

/// The document: the operations of the handlers, the shared parts added by
/// [`Guards`].
#[derive(OpenApi)]
#[openapi(
    paths(
        routes::healthz,
        routes::status,
        routes::queues,
        routes::list,
        routes::create,
        routes::reorder,
        routes::get,
        routes::edit,
        routes::delete,
        routes::requeue,
        routes::get_config,
        routes::patch_config,
        routes::events,
        serve,
        docs::redirect,
        docs::index,
        docs::file,
    ),
    components(responses(
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        Validation,
        Unavailable,
    )),
    servers((url = "/", description = "this server")),
    tags(
        (name = "health", description = "Liveness, without a token."),
        (name = "status", description = "The server, the agents and the queue at a glance."),
        (name = "queues", description = "The named queues: one per project or agent group."),
        (name = "instructions", description = "The queues of instructions for the agents."),
        (name = "config", description = "The runtime settings, stored in the database."),
        (name = "events", description = "Live changes over Server-Sent Events."),
        (name = "docs", description = "This document and its viewer; no token, no data."),
    ),
    modifiers(&Guards),
)]
struct ApiDoc;

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
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApi",
    tag = "docs",
    summary = "This document",
    description = "The OpenAPI 3.1 document of every route of this API. Never needs a token.",
    params(IfNoneMatch),
    responses(
        (status = 200, description = "The document.", body = inline(Object),
            headers(
                ("ETag" = String, description = "A strong validator of the body; send it back in `If-None-Match`."),
                ("Cache-Control" = String, description = "`no-cache` (revalidate with the ETag), or `public, max-age=31536000, immutable` for vendored files whose URL changes with their version."),
            )),
        (status = 304, response = inline(NotModified)),
    ),
)]
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

/// utoipa writes the operations and the shared parts; the schemas go in as
/// schemars writes them, because utoipa's schema model has no `const` and its
/// reading of a JSON Schema keeps only the keywords it models.
fn build() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    if let Some(components) = document
        .get_mut("components")
        .and_then(Value::as_object_mut)
    {
        components.insert("schemas".into(), Value::Object(schemas().clone()));
    }
    document
}

/// What no one handler says: `info`, the bearer scheme, and on each operation
/// the shared errors of [`guarded`], so that every route with the same guards,
/// body and parameters lists the same ones.
struct Guards;

impl Modify for Guards {
    fn modify(&self, openapi: &mut Document) {
        openapi.info = info();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Only when the server has `API_TOKEN` set: every `/api/*` request (and `/mcp`) then needs `Authorization: Bearer <API_TOKEN>`, else 401. Without `API_TOKEN` no token is needed. The token is only ever read from this header, never from the URL, and compared in constant time.",
                    ))
                    .build(),
            ),
        );
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                for status in guarded(operation) {
                    operation.responses.responses.insert(
                        status.to_string(),
                        RefOr::Ref(Ref::from_response_name(error_response(status).0)),
                    );
                }
            }
        }
    }
}

/// The shared errors an operation can get from what stands around its handler
/// rather than from the handler itself, read off what the operation declares:
/// - 403 and 413: the Host/Origin guard and the size guard, in front of every
///   route (the size guard goes by `Content-Length` before any route is looked
///   at, whether or not the route reads a body);
/// - 401: the token guard, which covers exactly the routes that declare the
///   bearer scheme (`/api/*`);
/// - 415: the `Content-Type` guard, on every route that takes a body;
/// - 400: the JSON reader, when the body is required (an optional one, as
///   `requeue`'s, is never read);
/// - 422: an `/api` route that reads a path or query parameter or a body
///   checks it (the docs routes answer an unknown file with 404 instead);
/// - 503: every `/api` route reads or writes the store, except the live
///   stream, which is fed from memory and is the one answered with
///   `text/event-stream`.
fn guarded(operation: &utoipa::openapi::path::Operation) -> Vec<u16> {
    let api = operation.security.as_ref().is_some_and(|requirements| {
        requirements.contains(&SecurityRequirement::new(
            "bearerAuth",
            Vec::<String>::new(),
        ))
    });
    let body = operation.request_body.as_ref();
    let body_required = matches!(
        body,
        Some(RefOr::T(body)) if body.required == Some(Required::True)
    );
    let reads_input = body.is_some()
        || operation.parameters.iter().flatten().any(|parameter| {
            matches!(
                parameter,
                RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query)
            )
        });
    let streams = operation.responses.responses.values().any(
        |response| matches!(response, RefOr::T(r) if r.content.contains_key("text/event-stream")),
    );
    [
        (403, true),
        (413, true),
        (401, api),
        (415, body.is_some()),
        (400, body_required),
        (422, api && reads_input),
        (503, api && !streams),
    ]
    .into_iter()
    .filter_map(|(status, applies)| applies.then_some(status))
    .collect()
}

fn info() -> utoipa::openapi::Info {
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
    InfoBuilder::new()
        .title("local-mcp HTTP API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(description))
        // OpenAPI 3.1's `summary`, which utoipa's `Info` lacks: its extensions
        // are written into the object as they are.
        .extensions(Some(Extensions::from_iter([(
            "summary",
            "Queue instructions for an AI agent; watch it work.",
        )])))
        .license(Some(
            LicenseBuilder::new()
                .name("MIT OR Apache-2.0")
                .identifier(Some("MIT OR Apache-2.0"))
                .build(),
        ))
        .build()
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

/// The shared error response of `status`: an `Error` whose `code` is fixed.
fn error_response(status: u16) -> (&'static str, RefOr<Response>) {
    let Some(&(_, name, description, code)) = ERRORS.iter().find(|(s, ..)| *s == status) else {
        return ("", RefOr::T(Response::new("")));
    };
    // Only narrows the `Error` it is combined with: no `type` of its own.
    let open = || ObjectBuilder::new().schema_type(SchemaType::AnyValue);
    let error = open().property("code", open().extensions(Some(constant(code))));
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name(ErrorBody::schema_name()))
        .item(open().property("error", error));
    let mut response = ResponseBuilder::new()
        .description(format!("{description} (`{code}`)"))
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        );
    let constant = |what: &str, value: &str| {
        HeaderBuilder::new()
            .description(Some(what))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .extensions(Some(constant(value))),
            ))
            .build()
    };
    if status == 401 {
        response = response.header("WWW-Authenticate", constant("Always `Bearer`.", "Bearer"));
    }
    if status == 503 {
        response = response.header(
            "Retry-After",
            constant("Seconds to wait before trying again; always `1`.", "1"),
        );
    }
    (name, RefOr::T(response.build()))
}

/// JSON Schema's `const`, which utoipa's schema model lacks: its extensions
/// are written into the schema object as they are.
fn constant(value: &str) -> Extensions {
    Extensions::from_iter([("const", value)])
}

/// One [`ToResponse`] per shared error response, so that an operation names
/// it by type (`response = NotFound`) and gets a `$ref` to it.
macro_rules! error_responses {
    ($($name:ident = $status:literal),* $(,)?) => {$(
        #[doc = concat!("The shared ", stringify!($status), " response.")]
        pub(crate) struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                error_response($status)
            }
        }
    )*};
}

error_responses!(
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    MethodNotAllowed = 405,
    Conflict = 409,
    PayloadTooLarge = 413,
    UnsupportedMediaType = 415,
    Validation = 422,
    Unavailable = 503,
);

/// A body's schema as utoipa sees it: schemars' (see [`build`] for why the
/// document takes schemars' own), under schemars' name.
fn component(name: &str) -> RefOr<utoipa::openapi::schema::Schema> {
    schemas()
        .get(name)
        .cloned()
        .and_then(|schema| serde_json::from_value(schema).ok())
        .unwrap_or_else(|| RefOr::T(ObjectBuilder::new().build().into()))
}

/// Lets a body type stand in a `#[utoipa::path]` attribute, under the name of
/// its schema in `components/schemas`.
macro_rules! bodies {
    ($($alias:ident = $ty:ty),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($ty), "` in the operations' attributes.")]
        pub(crate) type $alias = $ty;

        impl PartialSchema for $ty {
            fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
                component(&<$ty as JsonSchema>::schema_name())
            }
        }

        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                <$ty as JsonSchema>::schema_name()
            }
        }
    )*};
}

bodies!(
    Health = HealthJson,
    Status = StatusJson<'static>,
    QueueList = QueueListJson<'static>,
    ItemEnvelope = crate::json::ItemEnvelope<'static>,
    Config = SettingsJson<'static>,
    ItemList = ListJson<'static>,
    ReorderResult = ReorderJson<'static>,
    NewInstruction = NewBody,
    EditInstruction = ContentBody,
    Reorder = ReorderBody,
);

/// A settings change (`PATCH /api/config`): its schema is `Config`'s, opened
/// to any subset in [`derived_schemas`].
pub(crate) struct ConfigPatch;

impl PartialSchema for ConfigPatch {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        component("ConfigPatch")
    }
}

impl ToSchema for ConfigPatch {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ConfigPatch")
    }
}

const QUEUE_OF_ROUTE: &str = "The queue: 1..=128 characters of letters, digits and `._:@-`. Absent: `default`. A name that breaks those rules, or names a queue that does not exist (no instruction was ever queued on it and no agent called on it), is refused with 422.";

/// A `queue` query parameter, described for its route.
fn queue_parameter(description: &str) -> Parameter {
    ParameterBuilder::new()
        .name("queue")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(QueueName::MAX_LEN))
                .pattern(Some(NAME_PATTERN))
                .default(Some(Value::from(QueueName::DEFAULT))),
        ))
        .build()
}

fn header_parameter(name: &str, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// The parameters of a route given as a type, for `params(...)`.
macro_rules! parameters {
    ($($(#[$doc:meta])* $name:ident => $body:expr;)*) => {$(
        $(#[$doc])*
        pub(crate) struct $name;

        impl IntoParams for $name {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                $body
            }
        }
    )*};
}

parameters! {
    /// `?queue=` on a route that reads one queue.
    QueueOfRoute => vec![queue_parameter(QUEUE_OF_ROUTE)];
    /// `?queue=` of a route whose body may name the queue too.
    QueueInBody => vec![queue_parameter(
        "The queue, when the body does not name it; both at once must agree (else 422).",
    )];
    /// The `{id}` of a route that names an instruction, and its optional queue.
    InstructionById => vec![
        ParameterBuilder::new()
            .name("id")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some(
                "The instruction's id. Anything that is not a UUID is refused with 422.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(utoipa::openapi::SchemaFormat::Custom("uuid".into()))),
            ))
            .build(),
        queue_parameter(
            "The queue the instruction is on. Optional: the id alone finds it on any queue; when given, an instruction on another queue is answered 404.",
        ),
    ];
    /// The live stream's `?queue=` and `Last-Event-ID`.
    EventsParams => vec![
        queue_parameter(
            "Only this queue's `instruction.*` and `agent.updated` messages (settings and status messages still come). Absent: every queue's. An invalid name is refused with 422.",
        ),
        header_parameter(
            "Last-Event-ID",
            "The id of the last message received: replay what came after it.",
        ),
    ];
    /// `If-None-Match` on a route answered with an `ETag`.
    IfNoneMatch => vec![header_parameter(
        "If-None-Match",
        "An `ETag` received before; when it still matches, the answer is 304 without a body.",
    )];
}

const ETAG: &str = "A strong validator of the body; send it back in `If-None-Match`.";
const CACHE_CONTROL: &str = "`no-cache` (revalidate with the ETag), or `public, max-age=31536000, immutable` for vendored files whose URL changes with their version.";

/// The 304 of a route answered with an `ETag`: no body, the caching headers.
pub(crate) struct NotModified;

impl<'r> ToResponse<'r> for NotModified {
    fn response() -> (&'r str, RefOr<Response>) {
        let header = |description: &str| {
            HeaderBuilder::new()
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build()
        };
        let response = ResponseBuilder::new()
            .description("Not modified: `If-None-Match` holds the current ETag. No body.")
            .header("ETag", header(ETAG))
            .header("Cache-Control", header(CACHE_CONTROL))
            .build();
        ("NotModified", RefOr::T(response))
    }
}

/// The description of `GET /api/events`, with the stream's own numbers.
pub(crate) fn events_description() -> String {
    let defaults = crate::EventsOptions::default();
    let (ring, heartbeat) = (defaults.ring, defaults.heartbeat.as_secs());
    format!(
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
    )
}

/// The `200` of `GET /api/events`: a stream, not a JSON body, so its schema and
/// example are written here.
pub(crate) struct EventStream;

impl<'r> ToResponse<'r> for EventStream {
    fn response() -> (&'r str, RefOr<Response>) {
        let schema = ObjectBuilder::new().schema_type(Type::String).description(Some(
            "SSE lines: `id`, `event` and `data` (an `EventEnvelope` as JSON), plus comment lines.",
        ));
        let content = ContentBuilder::new()
            .schema(Some(schema))
            .example(Some(Value::from(SSE_EXAMPLE)))
            .build();
        let response = ResponseBuilder::new()
            .description("The stream; it stays open until the client leaves or the server shuts down. Sent with `Cache-Control: no-cache`.")
            .content("text/event-stream", content)
            .build();
        ("EventStream", RefOr::T(response))
    }
}

const SSE_EXAMPLE: &str = "id: 1767225600000001\nevent: instruction.created\ndata: {\"type\":\"instruction.created\",\"timestamp\":\"2026-01-01T00:00:00.000001Z\",\"data\":{\"id\":\"0190f0e4-4b1a-7c3e-9f00-000000000001\",\"queue\":\"default\",\"content\":\"Run the tests\",\"to_agent_id\":null,\"status\":\"pending\",\"created_at\":\"2026-01-01T00:00:00.000001Z\",\"updated_at\":\"2026-01-01T00:00:00.000001Z\",\"consumed_at\":null,\"consumed_by_agent_id\":null,\"position\":1}}\n\n";

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
    generator.subschema_for::<ItemEnvelope>();
    generator.subschema_for::<ReorderJson<'static>>();
    generator.subschema_for::<StatusJson<'static>>();
    generator.subschema_for::<QueueListJson<'static>>();
    generator.subschema_for::<HealthJson>();
    generator.subschema_for::<ErrorBody>();
    generator.subschema_for::<ListJson<'static>>();
    generator.subschema_for::<EventEnvelope<'static, ()>>();
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
            Value::from("Any subset of the settings; the others keep their values. Unknown fields are refused with 422."),
        );
        patch.insert("additionalProperties".into(), Value::Bool(false));
        patch.insert("required".into(), Value::Array(Vec::new()));
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

/// Every schema of `components/schemas`, built once.
fn schemas() -> &'static Map<String, Value> {
    static SCHEMAS: OnceLock<Map<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(derived_schemas)
}

/// The query of `GET /api/instructions`, read into [`routes::ListQuery`].
pub(crate) fn list_parameters() -> Vec<Parameter> {
    let query = |name: &str, description: &str, schema: ObjectBuilder| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(description))
            .schema(Some(schema))
            .build()
    };
    let count = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .maximum(Some(u64::MAX))
    };
    vec![
        queue_parameter(QUEUE_OF_ROUTE),
        query(
            "status",
            "Which items; anything else is refused with 422.",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["pending", "consumed", "all"]))
                .default(Some(Value::from("all"))),
        ),
        query(
            "limit",
            "At most this many items. Absent: every item from `offset` on.",
            count(),
        ),
        query(
            "offset",
            "Skip this many items first.",
            count().default(Some(Value::from(0))),
        ),
    ]
}
