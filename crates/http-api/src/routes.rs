//! The handlers of SPEC §4. Each turns a request into one service call and the
//! result into the documented JSON; refusals go through [`ApiError`].

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use std::sync::{Arc, Mutex};

use queue_core::{
    AgentId, Content, Instruction, InstructionId, Overview, Page, QueueError, QueueName,
    SettingsPatch, StatusFilter, Timestamp,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::ApiState;
use crate::error::{ApiError, object};
use crate::json::{
    HealthJson, ItemEnvelope, ItemJson, NAME_PATTERN, QueueListJson, ReorderJson, SettingsJson,
    StatusParts,
};
use crate::openapi as doc;

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// `GET /healthz`: never needs a token.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "getHealth",
    tag = "health",
    summary = "Liveness",
    description = "Answers as long as the process serves HTTP; reads nothing from the database. Never needs a token.",
    responses(
        (status = 200, description = "The server is up.", body = doc::Health),
    ),
)]
pub(crate) async fn healthz(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok().json(HealthJson {
        status: "ok",
        server_time: state.service.now().to_rfc3339(),
    })
}

/// The `queue` of a query string or a body: checked, `default` when absent.
fn queue_name(text: Option<&str>) -> Result<QueueName> {
    match text {
        None => Ok(QueueName::default()),
        Some(text) => QueueName::parse(text).map_err(|e| ApiError::from(QueueError::from(e))),
    }
}

/// The queue a request with a body names: in the body or in the query string;
/// both at once must agree.
fn body_queue(query: Option<&str>, body: Option<&str>) -> Result<QueueName> {
    match (query, body) {
        (Some(q), Some(b)) if q != b => Err(ApiError::InvalidField {
            field: "queue",
            message: format!("is {b:?} in the body but {q:?} in the query string; give it once"),
        }),
        (q, b) => queue_name(b.or(q)),
    }
}

/// The `?queue=` of a route that takes nothing else in its query string.
#[derive(Deserialize)]
pub(crate) struct QueueQuery {
    queue: Option<String>,
}

/// `GET /api/status?queue=`.
#[utoipa::path(
    get,
    path = "/api/status",
    operation_id = "getStatus",
    tag = "status",
    summary = "Server, agents, queue counts and settings",
    description = "Everything the web UI's header shows, seen from one queue (`default` unless `queue` names another): `agent` is that queue's most recently seen agent, `null` before any was seen; `agents` lists that queue's agents, most recently seen first; `queue` its counts. `queues` lists every queue with its counts and agents.",
    params(doc::QueueOfRoute),
    security(("bearerAuth" = []), ()),
    responses(
        (status = 200, description = "The status.", body = doc::Status),
    ),
)]
pub(crate) async fn status(
    state: web::Data<ApiState>,
    query: web::Query<QueueQuery>,
) -> Result<HttpResponse> {
    let queue = queue_name(query.queue.as_deref())?;
    let overview = state.service.overview().await?;
    if !overview.has_queue(&queue) {
        return Err(QueueError::UnknownQueue(queue).into());
    }
    let now = state.service.now();
    let body = match state.status.get(&overview, &queue, now) {
        Some(body) => body,
        None => {
            let parts = StatusParts::of(&state.service, overview.clone());
            // Serializing the struct cannot fail: it holds strings, numbers and
            // booleans only.
            let json = parts.with_status(state.events.server(), now, &queue, |status| {
                serde_json::to_vec(status).unwrap_or_default()
            });
            let body = web::Bytes::from(json);
            let until = parts.next_transition(now).map(|d| now.plus_micros(d));
            state.status.put(overview, queue, until, body.clone());
            body
        }
    };
    Ok(HttpResponse::Ok()
        .content_type(header::ContentType::json())
        .body(body))
}

/// `GET /api/queues`: every queue with its counts and agents.
#[utoipa::path(
    get,
    path = "/api/queues",
    operation_id = "listQueues",
    tag = "queues",
    summary = "Every queue, its counts and its agents",
    description = "A queue exists once an instruction was queued on it or an agent called on it; `default` always exists. Sorted by name.",
    security(("bearerAuth" = []), ()),
    responses(
        (status = 200, description = "The queues.", body = doc::QueueList),
    ),
)]
pub(crate) async fn queues(state: web::Data<ApiState>) -> Result<HttpResponse> {
    let overview = state.service.overview().await?;
    let now = state.service.now();
    let parts = StatusParts::of(&state.service, overview);
    Ok(HttpResponse::Ok().json(QueueListJson {
        queues: parts.queue_list(now),
    }))
}

/// The last `/api/status` body, kept while it is still exactly what a fresh one
/// would be: the store's overview is the same, and no agent's state changes by
/// time alone before `until`. Every open page polls the status; building the
/// JSON again for each poll cost more than everything else the request did.
#[derive(Clone, Debug, Default)]
pub(crate) struct StatusCache(Arc<Mutex<Option<StatusEntry>>>);

#[derive(Debug)]
struct StatusEntry {
    overview: Overview,
    queue: QueueName,
    until: Option<Timestamp>,
    body: web::Bytes,
}

impl StatusCache {
    fn get(&self, overview: &Overview, queue: &QueueName, now: Timestamp) -> Option<web::Bytes> {
        let entry = self.0.try_lock().ok()?;
        let entry = entry.as_ref()?;
        (entry.overview == *overview
            && entry.queue == *queue
            && entry.until.is_none_or(|until| now <= until))
        .then(|| entry.body.clone())
    }

    fn put(
        &self,
        overview: Overview,
        queue: QueueName,
        until: Option<Timestamp>,
        body: web::Bytes,
    ) {
        if let Ok(mut entry) = self.0.try_lock() {
            *entry = Some(StatusEntry {
                overview,
                queue,
                until,
                body,
            });
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    queue: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

impl utoipa::IntoParams for ListQuery {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        doc::list_parameters()
    }
}

fn count(name: &str, value: Option<&str>) -> Result<Option<u64>> {
    value
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| {
                ApiError::Validation(format!(
                    "{name} must be a whole number of 0 or more, not {v:?}"
                ))
            })
        })
        .transpose()
}

/// `GET /api/instructions?queue=&status=&limit=&offset=`.
#[utoipa::path(
    get,
    path = "/api/instructions",
    operation_id = "listInstructions",
    tag = "instructions",
    summary = "List instructions",
    description = "The instructions of one queue (`default` unless `queue` names another). Pending items come in queue order (by `position`), consumed items by consumption time, and `all` gives the consumed ones first, then the pending ones. `total` counts every item of the chosen status, whatever the page.",
    params(ListQuery),
    security(("bearerAuth" = []), ()),
    responses(
        (status = 200, description = "One page of instructions and the total count.", body = doc::ItemList),
    ),
)]
pub(crate) async fn list(
    state: web::Data<ApiState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    let queue = queue_name(query.queue.as_deref())?;
    let filter = match query.status.as_deref() {
        None | Some("all") => StatusFilter::All,
        Some("pending") => StatusFilter::Pending,
        Some("consumed") => StatusFilter::Consumed,
        Some(other) => {
            return Err(ApiError::Validation(format!(
                "status must be pending, consumed or all, not {other:?}"
            )));
        }
    };
    let page = Page {
        offset: count("offset", query.offset.as_deref())?.unwrap_or(0),
        limit: count("limit", query.limit.as_deref())?,
    };
    let key = (queue.clone(), filter, page);
    let token = state.service.change_token().await?;
    if let Some(body) = state.lists.get(token, &key) {
        return Ok(list_response(body));
    }
    // Each item is written out as the store reads it, so the items are never all
    // held at once: the body is the only thing that grows with the listing.
    let mut start = Vec::with_capacity(64 * 1024);
    start.extend_from_slice(b"{\"items\":[");
    let listed = state
        .service
        .list_each(&queue, filter, page, (start, 0_u64), |(out, n), item| {
            if *n > 0 {
                out.push(b',');
            }
            *n += 1;
            // Writing to a Vec cannot fail, and the item's fields are all plain.
            let _ = serde_json::to_writer(&mut *out, &ItemJson::from(item));
        })
        .await?;
    let (mut body, _) = listed.state;
    body.extend_from_slice(format!("],\"total\":{}}}", listed.total).as_bytes());
    let body = web::Bytes::from(body);
    if let Some(token) = listed.token {
        state.lists.put(token, key, body.clone());
    }
    Ok(list_response(body))
}

// The body of `GET /api/instructions`, for its schema: `list` writes it piece
// by piece, so that a listing is never held whole.
#[derive(JsonSchema)]
#[schemars(rename = "ItemList")]
#[expect(dead_code, reason = "only its schema is used")]
pub(crate) struct ListJson<'a> {
    items: Vec<ItemJson<'a>>,
    /// How many items of the chosen status there are in all, whatever `limit` and `offset`.
    total: u64,
}

/// The last listing body served, with the store's change token read before its
/// items. The token moves on every commit by any process, so while it has not
/// moved the body is still exactly what a fresh read would give. One entry: the
/// point is the unpaged listing asked for again and again, not every page.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListCache(Arc<Mutex<Option<ListEntry>>>);

type ListKey = (QueueName, StatusFilter, Page);

#[derive(Debug)]
struct ListEntry {
    token: u64,
    key: ListKey,
    body: web::Bytes,
}

impl ListCache {
    fn get(&self, token: u64, key: &ListKey) -> Option<web::Bytes> {
        let entry = self.0.lock().unwrap_or_else(|e| e.into_inner());
        entry
            .as_ref()
            .filter(|e| e.token == token && e.key == *key)
            .map(|e| e.body.clone())
    }

    fn put(&self, token: u64, key: ListKey, body: web::Bytes) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(ListEntry { token, key, body });
    }
}

fn list_response(body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

/// How the document describes an instruction's text in a request.
fn content_rule() -> String {
    format!(
        "The text is trimmed of surrounding whitespace first; then it must hold 1..={} characters (Unicode scalar values), else 422. Whitespace only is therefore refused, and surrounding whitespace does not count toward the limit.",
        Content::MAX_CHARS
    )
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "EditInstruction")]
pub(crate) struct ContentBody {
    #[schemars(length(min = 1, max = Content::MAX_CHARS), description = content_rule())]
    content: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "NewInstruction")]
pub(crate) struct NewBody {
    #[schemars(length(min = 1, max = Content::MAX_CHARS), description = content_rule())]
    content: String,
    #[schemars(
        length(min = 1, max = QueueName::MAX_LEN),
        regex(pattern = NAME_PATTERN),
        description = "The queue to add it to, created if new. Absent or null: the `queue` of the query string, else `default`."
    )]
    queue: Option<String>,
    #[schemars(
        length(min = 1, max = AgentId::MAX_LEN),
        regex(pattern = NAME_PATTERN),
        description = "Only this agent of the queue may take it; the others pass it over. It may be an agent not seen yet. Absent or null: any agent of the queue."
    )]
    to_agent_id: Option<String>,
}

/// `POST /api/instructions`: queues an instruction at the end of its queue.
#[utoipa::path(
    post,
    path = "/api/instructions",
    operation_id = "createInstruction",
    tag = "instructions",
    summary = "Queue an instruction",
    description = "Adds a pending instruction at the end of its queue (`queue` in the body or the query string; `default` when neither names one), which comes into being if it is new. With `to_agent_id`, only that agent of the queue may take it. A waiting `get_user_request` call it is for receives it at once.",
    params(doc::QueueInBody),
    request_body(content = doc::NewInstruction, description = "The instruction's text, its queue and its addressee."),
    security(("bearerAuth" = []), ()),
    responses(
        (status = 201, description = "Queued.", body = doc::ItemEnvelope),
    ),
)]
pub(crate) async fn create(
    state: web::Data<ApiState>,
    query: web::Query<QueueQuery>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let body: NewBody = object(body.into_inner())?;
    let queue = body_queue(query.queue.as_deref(), body.queue.as_deref())?;
    let to = body
        .to_agent_id
        .as_deref()
        .map(|text| {
            AgentId::parse(text).map_err(|e| ApiError::InvalidField {
                field: "to_agent_id",
                message: e.message,
            })
        })
        .transpose()?;
    let item = state.service.add_to(&queue, to, &body.content).await?;
    tracing::info!(
        id = %item.id,
        queue = %item.queue,
        to = item.to.as_ref().map(AgentId::as_str),
        chars = item.content.as_str().chars().count(),
        "instruction added"
    );
    Ok(HttpResponse::Created().json(ItemEnvelope::from(&item)))
}

/// Refuses an instruction that is not on the queue the request named, as if it
/// did not exist there.
fn on_queue(item: Instruction, queue: Option<&str>) -> Result<Instruction> {
    match queue {
        Some(q) if item.queue.as_str() != q => {
            queue_name(Some(q))?;
            Err(ApiError::NotFound(format!(
                "no instruction with id {} on the queue {q:?} (it is on {:?})",
                item.id,
                item.queue.as_str()
            )))
        }
        _ => Ok(item),
    }
}

/// Checks an optional `?queue=` of a route that names an instruction by id,
/// against the instruction itself: given, it must be the instruction's queue.
async fn check_queue(state: &ApiState, id: InstructionId, queue: Option<&str>) -> Result<()> {
    if let Some(q) = queue {
        queue_name(Some(q))?;
        on_queue(state.service.get(id).await?, Some(q))?;
    }
    Ok(())
}

fn parse_id(text: &str) -> Result<InstructionId> {
    InstructionId::parse(text)
        .map_err(|_| ApiError::Validation(format!("{text:?} is not an instruction id (a UUID)")))
}

/// `GET /api/instructions/{id}`.
#[utoipa::path(
    get,
    path = "/api/instructions/{id}",
    operation_id = "getInstruction",
    tag = "instructions",
    summary = "One instruction",
    params(doc::InstructionById),
    security(("bearerAuth" = []), ()),
    responses(
        (status = 200, description = "The instruction.", body = doc::ItemEnvelope),
        (status = 404, response = doc::NotFound),
    ),
)]
pub(crate) async fn get(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    query: web::Query<QueueQuery>,
) -> Result<HttpResponse> {
    let item = state.service.get(parse_id(&id)?).await?;
    let item = on_queue(item, query.queue.as_deref())?;
    Ok(HttpResponse::Ok().json(ItemEnvelope::from(&item)))
}

/// `PATCH /api/instructions/{id}`: rewords a pending instruction.
#[utoipa::path(
    patch,
    path = "/api/instructions/{id}",
    operation_id = "editInstruction",
    tag = "instructions",
    summary = "Reword a pending instruction",
    description = "Only a pending instruction can change: one an agent already took gets 409.",
    params(doc::InstructionById),
    request_body(content = doc::EditInstruction, description = "The new text."),
    security(("bearerAuth" = []), ()),
    responses(
        (status = 200, description = "The instruction as changed.", body = doc::ItemEnvelope),
        (status = 404, response = doc::NotFound),
        (status = 409, response = doc::Conflict),
    ),
)]
pub(crate) async fn edit(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    query: web::Query<QueueQuery>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let id = parse_id(&id)?;
    let body: ContentBody = object(body.into_inner())?;
    check_queue(&state, id, query.queue.as_deref()).await?;
    let item = state.service.edit(id, &body.content).await?;
    tracing::info!(%id, "instruction edited");
    Ok(HttpResponse::Ok().json(ItemEnvelope::from(&item)))
}

/// `DELETE /api/instructions/{id}`.
#[utoipa::path(
    delete,
    path = "/api/instructions/{id}",
    operation_id = "deleteInstruction",
    tag = "instructions",
    summary = "Delete a pending instruction",
    description = "Only a pending instruction can be deleted: one an agent already took gets 409. Needs no `Content-Type`.",
    params(doc::InstructionById),
    security(("bearerAuth" = []), ()),
    responses(
        (status = 204, description = "Deleted. No body."),
        (status = 404, response = doc::NotFound),
        (status = 409, response = doc::Conflict),
    ),
)]
pub(crate) async fn delete(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    query: web::Query<QueueQuery>,
) -> Result<HttpResponse> {
    let id = parse_id(&id)?;
    check_queue(&state, id, query.queue.as_deref()).await?;
    state.service.delete(id).await?;
    tracing::info!(%id, "instruction deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/instructions/{id}/requeue`: a pending copy of a consumed one.
#[utoipa::path(
    post,
    path = "/api/instructions/{id}/requeue",
    operation_id = "requeueInstruction",
    tag = "instructions",
    summary = "Send a consumed instruction again",
    description = "Queues a new pending copy of a consumed instruction at the end of its queue, for the same agent if it was addressed; the consumed one stays as it was. A pending instruction gets 409. No body is read, but like every `POST` the request needs `Content-Type: application/json` (send `{}`).",
    params(doc::InstructionById),
    request_body(content = Option<Object>, content_type = "application/json", description = "Ignored; send `{}` or nothing, with `Content-Type: application/json`."),
    security(("bearerAuth" = []), ()),
    responses(
        (status = 201, description = "The new pending copy.", body = doc::ItemEnvelope),
        (status = 404, response = doc::NotFound),
        (status = 409, response = doc::Conflict),
    ),
)]
pub(crate) async fn requeue(
    state: web::Data<ApiState>,
    id: web::Path<String>,
    query: web::Query<QueueQuery>,
) -> Result<HttpResponse> {
    let id = parse_id(&id)?;
    check_queue(&state, id, query.queue.as_deref()).await?;
    let item = state.service.requeue(id).await?;
    tracing::info!(from = %id, id = %item.id, "instruction requeued");
    Ok(HttpResponse::Created().json(ItemEnvelope::from(&item)))
}

/// Says that each item of an array of strings is a UUID.
pub(crate) fn uuid_items(schema: &mut schemars::Schema) {
    if let Some(Value::Object(items)) = schema.get_mut("items") {
        items.insert("format".into(), Value::from("uuid"));
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Reorder")]
pub(crate) struct ReorderBody {
    #[schemars(
        transform = uuid_items,
        description = "Every pending id of the queue, each once, in the new order. An id that is not a UUID gets 422; a list that is not exactly the queue's pending set (an id missing, unknown, consumed, repeated or of another queue) gets 409."
    )]
    ids: Vec<String>,
    /// The queue to reorder. Absent or null: the `queue` of the query string, else `default`.
    #[schemars(length(min = 1, max = QueueName::MAX_LEN), regex(pattern = NAME_PATTERN))]
    queue: Option<String>,
}

/// `POST /api/instructions/reorder`: the pending instructions' new order.
#[utoipa::path(
    post,
    path = "/api/instructions/reorder",
    operation_id = "reorderInstructions",
    tag = "instructions",
    summary = "Reorder the pending instructions of a queue",
    description = "Puts the pending instructions of one queue (`queue` in the body or the query string, `default` when neither names one) in the order given. The ids must be exactly that queue's pending set, each once: anything else (a consumed, unknown or repeated id, a missing one, one of another queue) is refused with 409, and the client should reload the list and try again. A queue that does not exist gets 422.",
    params(doc::QueueInBody),
    request_body(content = doc::Reorder, description = "Every pending id of the queue, in the new order."),
    security(("bearerAuth" = []), ()),
    responses(
        (status = 200, description = "The pending instructions in their new order.", body = doc::ReorderResult),
        (status = 409, response = doc::Conflict),
    ),
)]
pub(crate) async fn reorder(
    state: web::Data<ApiState>,
    query: web::Query<QueueQuery>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let body: ReorderBody = object(body.into_inner())?;
    let queue = body_queue(query.queue.as_deref(), body.queue.as_deref())?;
    let ids = body
        .ids
        .iter()
        .map(|s| parse_id(s))
        .collect::<Result<Vec<_>>>()?;
    let items = state.service.reorder(&queue, ids).await?;
    tracing::info!(n = items.len(), %queue, "queue reordered");
    Ok(HttpResponse::Ok().json(ReorderJson {
        items: items.iter().map(ItemJson::from).collect(),
    }))
}

/// `GET /api/config`.
#[utoipa::path(
    get,
    path = "/api/config",
    operation_id = "getConfig",
    tag = "config",
    summary = "The settings in force",
    description = "Values saved through `PATCH` win; until a value is saved, the one given at start-up (environment, config file or built-in default) is in force.",
    security(("bearerAuth" = []), ()),
    responses(
        (status = 200, description = "The settings.", body = doc::Config),
    ),
)]
pub(crate) async fn get_config(state: web::Data<ApiState>) -> Result<HttpResponse> {
    let settings = state.service.settings().await?;
    Ok(HttpResponse::Ok().json(SettingsJson::from(&settings)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigBody {
    default_wait_seconds: Option<i64>,
    default_empty_response: Option<String>,
    agent_stale_after_seconds: Option<i64>,
}

/// `PATCH /api/config`: any subset of the settings.
#[utoipa::path(
    patch,
    path = "/api/config",
    operation_id = "updateConfig",
    tag = "config",
    summary = "Change any subset of the settings",
    description = "Saves the given settings in the database, where they win over the start-up values from then on; `{}` changes nothing. One value out of bounds refuses the whole request with 422 and saves nothing.",
    request_body(content = doc::ConfigPatch, description = "The settings to change."),
    security(("bearerAuth" = []), ()),
    responses(
        (status = 200, description = "The settings in force afterwards.", body = doc::Config),
    ),
)]
pub(crate) async fn patch_config(
    state: web::Data<ApiState>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let mut body = body.into_inner();
    // Leaving a setting out keeps it; `null` is not a value any of them takes.
    if let Some(fields) = body.as_object_mut() {
        // Named per field, so that the settings form shows each message next to
        // its input; serde's own type errors do not say which field they are about.
        for setting in queue_core::Setting::ALL {
            let (field, whole_number) = (setting.name(), setting.is_seconds());
            // The document says `integer`, and JSON Schema counts `7.0` as one:
            // take it as 7. Past i64 it saturates, so the bounds check names it.
            if whole_number
                && let Some(f) = fields.get(field).and_then(Value::as_f64)
                && !fields[field].is_i64()
                && !fields[field].is_u64()
                && f.fract() == 0.0
            {
                fields.insert(field.to_owned(), Value::from(f as i64));
            }
            let refusal = match fields.get(field) {
                Some(Value::Null) => "cannot be null; leave it out to keep its value",
                Some(v) if whole_number && !(v.is_i64() || v.is_u64()) => {
                    "must be a whole number of seconds"
                }
                Some(v) if !whole_number && !v.is_string() => "must be a string",
                _ => continue,
            };
            return Err(ApiError::InvalidField {
                field,
                message: String::from(refusal),
            });
        }
    }
    let body: ConfigBody = object(body)?;
    let patch = SettingsPatch::new(
        body.default_wait_seconds,
        body.default_empty_response,
        body.agent_stale_after_seconds,
    )
    .map_err(|e| ApiError::from(QueueError::Validation(e)))?;
    let settings = if patch.is_empty() {
        state.service.settings().await?
    } else {
        let settings = state.service.update_settings(patch).await?;
        tracing::info!(
            default_wait_seconds = settings.default_wait_seconds,
            agent_stale_after_seconds = settings.agent_stale_after_seconds,
            "settings saved"
        );
        settings
    };
    Ok(HttpResponse::Ok().json(SettingsJson::from(&settings)))
}

/// `GET /api/events?queue=`: the live event stream, of every queue or of one.
#[utoipa::path(
    get,
    path = "/api/events",
    operation_id = "streamEvents",
    tag = "events",
    summary = "Live events (Server-Sent Events)",
    description = doc::events_description(),
    params(doc::EventsParams),
    security(("bearerAuth" = []), ()),
    responses(
        (status = 200, response = inline(doc::EventStream)),
    ),
)]
pub(crate) async fn events(
    state: web::Data<ApiState>,
    query: web::Query<QueueQuery>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    // Absent means every queue here: a page shows them all.
    let only = query
        .queue
        .as_deref()
        .map(|q| queue_name(Some(q)))
        .transpose()?;
    let last = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok());
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(state.events.stream(last, only)))
}

/// Any path nothing serves.
pub(crate) async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!("nothing is served at {}", req.path())).to_response()
}

/// A known path asked with a method it does not take; `allow` lists the ones it
/// takes (RFC 9110 requires them on a 405).
pub(crate) async fn method_not_allowed(req: HttpRequest, allow: &'static str) -> HttpResponse {
    let mut res =
        ApiError::MethodNotAllowed(format!("{} is not allowed on {}", req.method(), req.path()))
            .to_response();
    res.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    res
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use actix_web::App;
    use actix_web::test::{TestRequest, call_and_read_body_json, init_service};
    use queue_core::{
        Content, InstructionId, MemoryStore, NewInstruction, QueueName, Service, Store, Timestamp,
    };
    use serde_json::Value;

    use crate::{ApiState, Events, EventsOptions, ServerInfo};

    /// A listing served from the kept body is the one a fresh read gives, and a
    /// change made behind the service's back — as another process sharing the
    /// database makes it — is in the next listing.
    #[actix_web::test]
    async fn a_kept_listing_never_hides_a_change_made_elsewhere() {
        let store = Arc::new(MemoryStore::new());
        let service = Service::builder(store.clone()).build().unwrap();
        let events = Events::new(
            service.clone(),
            ServerInfo::new(service.now()),
            EventsOptions::default(),
        )
        .await
        .unwrap();
        let app = init_service(
            App::new().configure(crate::configure(ApiState::new(service.clone(), events))),
        )
        .await;
        let list = || TestRequest::get().uri("/api/instructions").to_request();

        let empty: Value = call_and_read_body_json(&app, list()).await;
        assert_eq!(empty, serde_json::json!({"items": [], "total": 0}));

        let first = service.add("first").await.unwrap();
        let fresh: Value = call_and_read_body_json(&app, list()).await;
        let again: Value = call_and_read_body_json(&app, list()).await;
        assert_eq!(fresh, again);
        assert_eq!(fresh["total"], 1);
        assert_eq!(fresh["items"][0], crate::item_json(&first));

        let elsewhere = store
            .add(
                NewInstruction::new(
                    InstructionId::from_u128(7),
                    Content::parse("from another process").unwrap(),
                ),
                Timestamp::from_micros(1),
            )
            .unwrap();
        let after: Value = call_and_read_body_json(&app, list()).await;
        assert_eq!(after["total"], 2);
        assert_eq!(after["items"][1], crate::item_json(&elsewhere));

        let paged: Value = call_and_read_body_json(
            &app,
            TestRequest::get()
                .uri("/api/instructions?limit=1&offset=1")
                .to_request(),
        )
        .await;
        assert_eq!(paged["total"], 2);
        assert_eq!(paged["items"].as_array().unwrap().len(), 1);
        assert_eq!(paged["items"][0], crate::item_json(&elsewhere));
        service.shutdown();
    }

    /// The kept status body is the one a fresh build gives right up to the next
    /// change by time alone, and is not used a microsecond later or for another
    /// overview.
    #[test]
    fn a_kept_status_lasts_exactly_until_a_state_changes_by_time() {
        use queue_core::{Agent, AgentId, Overview, Settings};

        use super::StatusCache;
        use crate::json::StatusParts;

        let t = |s: i64| Timestamp::from_micros(1_800_000_000_000_000 + s * 1_000_000);
        let agent = |name: &str, seen: i64, until: Option<i64>| Agent {
            queue: QueueName::default(),
            id: AgentId::parse(name).unwrap(),
            last_seen_at: t(seen),
            last_fetch_at: None,
            last_result_type: None,
            generation: 1,
            waiting_until: until.map(t),
        };
        let overview = Overview {
            agents: vec![agent("waits", 100, Some(101)), agent("went", 0, None)],
            ..Overview::default()
        };
        let parts = StatusParts {
            agents: overview.agents.clone(),
            queues: overview.queues.clone(),
            settings: Settings::default(),
        };
        let server = ServerInfo::new(t(0));
        let now = t(100);
        let until = parts
            .next_transition(now)
            .map(|d| now.plus_micros(d))
            .expect("the wait ends");
        assert!(until > t(101), "the wait's end and its grace: {until:?}");
        assert_eq!(
            parts.to_json(&server, until, &QueueName::default()),
            parts.to_json(&server, now, &QueueName::default())
        );
        assert_ne!(
            parts.to_json(&server, until.plus_micros(1), &QueueName::default()),
            parts.to_json(&server, now, &QueueName::default())
        );

        let cache = StatusCache::default();
        assert_eq!(cache.get(&overview, &QueueName::default(), now), None);
        let body = actix_web::web::Bytes::from(
            parts
                .to_json(&server, now, &QueueName::default())
                .to_string(),
        );
        cache.put(
            overview.clone(),
            QueueName::default(),
            Some(until),
            body.clone(),
        );
        assert_eq!(
            cache.get(&overview, &QueueName::default(), now),
            Some(body.clone())
        );
        assert_eq!(
            cache.get(&overview, &QueueName::default(), until),
            Some(body)
        );
        assert_eq!(
            cache.get(&overview, &QueueName::default(), until.plus_micros(1)),
            None
        );
        let mut other = overview.clone();
        other.queues = vec![queue_core::QueueCounts::default()];
        assert_eq!(cache.get(&other, &QueueName::default(), now), None);
    }
}
