//! The rmcp server handler: one type, served over stdio, a duplex pipe or
//! streamable HTTP alike. It parses the call, waits through the queue service,
//! sends progress while waiting, and stops the moment the caller is gone.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use queue_core::{Caller, FetchOutcome, QueueError, QueueName, Service};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelledNotificationParam,
    ContentBlock, Implementation, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

use crate::delivery::{Cancellations, Connection, Deliveries, put_back};
use crate::tool::{self, INSTRUCTIONS, TOOL_NAME};

/// Tuning for a [`QueueServer`].
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// How often a waiting call sends a progress notification when the client
    /// asked for progress. SPEC §3 rule 6 requires at most 10 s.
    pub progress_interval: Duration,
    /// The name and version announced to clients.
    pub implementation: Implementation,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            progress_interval: Duration::from_secs(5),
            implementation: Implementation::new("local-mcp", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// How a call that names no `queue` finds its queue, first match wins: the
/// queue in the URL ([`QueueFromUrl`]), the fixed one, the project of the client's
/// first MCP root (when the client offers roots), the fallback.
#[derive(Clone, Debug)]
pub struct QueueChoice {
    /// The queue every call uses (`stdio --queue`).
    pub fixed: Option<QueueName>,
    /// Ask clients that declare the `roots` capability for their workspace.
    pub ask_roots: bool,
    /// The queue when nothing else names one: the working directory's project for
    /// stdio, `default` for HTTP.
    pub fallback: QueueName,
}

impl Default for QueueChoice {
    fn default() -> Self {
        QueueChoice {
            fixed: None,
            ask_roots: true,
            fallback: QueueName::default_queue(),
        }
    }
}

/// The queue named by the URL an HTTP request came in on (`/mcp/q/{name}`); the
/// HTTP layer puts it in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueFromUrl(pub QueueName);

/// How long a client gets to answer `roots/list` before the fallback is used.
const ROOTS_TIMEOUT: Duration = Duration::from_secs(2);

/// Sessions whose roots are remembered at most; beyond, the oldest are forgotten
/// (and asked again on their next call).
const MAX_REMEMBERED_ROOTS: usize = 1024;

/// The queue each client's roots gave, by session (`""` for stdio), so a client is
/// asked once, not on every call; `None` when it had no usable root.
type RootsCache = Arc<Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Option<QueueName>>>>>>;

/// The MCP server handler offering `get_user_request`.
#[derive(Clone, Debug)]
pub struct QueueServer {
    service: Service,
    options: ServerOptions,
    cancellations: Cancellations,
    deliveries: Option<Deliveries>,
    choice: QueueChoice,
    roots: RootsCache,
}

impl QueueServer {
    /// A handler over `service`.
    pub fn new(service: Service) -> Self {
        QueueServer {
            service,
            options: ServerOptions::default(),
            cancellations: Cancellations::new(),
            deliveries: None,
            choice: QueueChoice::default(),
            roots: RootsCache::default(),
        }
    }

    /// Replaces how calls that name no queue find theirs.
    pub fn with_queue_choice(mut self, choice: QueueChoice) -> Self {
        self.choice = choice;
        self
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// Shares a cancellation registry with the HTTP layer (stateless HTTP).
    pub fn with_cancellations(mut self, cancellations: Cancellations) -> Self {
        self.cancellations = cancellations;
        self
    }

    /// Tracks results through a [`TrackedTransport`](crate::TrackedTransport)
    /// built on the same `deliveries`.
    pub fn with_deliveries(mut self, deliveries: Deliveries) -> Self {
        self.deliveries = Some(deliveries);
        self
    }

    /// The queue service underneath.
    pub fn service(&self) -> &Service {
        &self.service
    }

    async fn get_user_request(
        &self,
        params: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let arguments = match tool::parse_arguments(params.arguments.as_ref()) {
            Ok(arguments) => arguments,
            Err(message) => {
                tracing::info!(%message, "get_user_request refused its arguments");
                return Ok(CallToolResult::error(vec![ContentBlock::text(message)]));
            }
        };
        let agent = arguments
            .agent
            .unwrap_or_else(|| tool::default_agent(client_name(&ctx).as_deref()));
        let queue = match arguments.queue {
            Some(queue) => queue,
            None => self.queue_for(&ctx).await,
        };
        let agent = Caller::new(queue, agent);
        let parts = ctx.extensions.get::<http::request::Parts>();
        let connection = parts
            .and_then(|p| p.extensions.get::<rmcp::model::Extensions>())
            .and_then(|e| e.get::<Connection>())
            .cloned();
        let session = parts
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let registration = self.cancellations.register(session, ctx.id.clone());
        let gone = connection
            .as_ref()
            .map(|c| c.gone().clone())
            .unwrap_or_default();
        let input_closed = self
            .deliveries
            .as_ref()
            .map(|d| d.input_closed().clone())
            .unwrap_or_default();
        let stopped = || {
            ctx.ct.is_cancelled()
                || registration.token.is_cancelled()
                || gone.is_cancelled()
                || input_closed.is_cancelled()
        };

        let progress_token = ctx.meta.get_progress_token();
        let period = self
            .options
            .progress_interval
            .max(Duration::from_millis(10));
        let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let started = tokio::time::Instant::now();

        let fetch = self.service.next_instruction(agent.clone());
        tokio::pin!(fetch);
        let outcome = loop {
            tokio::select! {
                // Checked first: when the caller is gone and the fetch finished at the
                // same moment, dropping the unread fetch undoes its claim.
                biased;
                _ = ctx.ct.cancelled() => break None,
                _ = registration.token.cancelled() => break None,
                _ = gone.cancelled() => break None,
                _ = input_closed.cancelled() => break None,
                result = &mut fetch => break Some(result),
                _ = progress.tick(), if progress_token.is_some() => {
                    let Some(token) = progress_token.clone() else { continue };
                    let note = ProgressNotificationParam::new(token, started.elapsed().as_secs_f64())
                        .with_message("waiting for the person to queue an instruction");
                    if let Err(e) = ctx.peer.notify_progress(note).await {
                        tracing::info!(agent = %agent, error = %e, "progress could not be sent; the client is gone");
                        break None;
                    }
                }
            }
        };
        let Some(result) = outcome else {
            tracing::info!(agent = %agent, waited = ?started.elapsed(), "get_user_request abandoned by the client; nothing consumed");
            return Err(abandoned());
        };
        let fetch = match result {
            Ok(fetch) => fetch,
            Err(e) => {
                tracing::warn!(agent = %agent, error = %e, "get_user_request failed");
                return Ok(CallToolResult::error(vec![ContentBlock::text(
                    failure_message(&e),
                )]));
            }
        };

        if let FetchOutcome::Instruction(item) = &fetch.outcome {
            // The claim is on disk. From here the result must reach a live caller or
            // the instruction goes back; each check below hands over ownership.
            let id = item.id;
            if let Some(connection) = &connection
                && connection.hold(id).is_some()
            {
                put_back(
                    &self.service,
                    id,
                    "the HTTP connection closed during the claim",
                )
                .await;
                return Err(abandoned());
            }
            if stopped() {
                // Whoever takes the claim puts it back: the connection may have done
                // so already if it closed in the meantime.
                let owned = match &connection {
                    Some(c) => c.take_claim().is_some(),
                    None => true,
                };
                if owned {
                    put_back(&self.service, id, "the call was cancelled during the claim").await;
                }
                return Err(abandoned());
            }
            if let Some(deliveries) = &self.deliveries {
                deliveries.expect(ctx.id.clone(), id);
                // rmcp drops the response of a request cancelled before it is sent;
                // a cancellation it handled before this point has cancelled `ct`.
                if ctx.ct.is_cancelled() && deliveries.take(&ctx.id).is_some() {
                    put_back(&self.service, id, "the call was cancelled during the claim").await;
                    return Err(abandoned());
                }
            }
        }
        if let Some(e) = &fetch.count_error {
            tracing::warn!(agent = %fetch.agent, error = %e, "could not count the pending instructions after a delivery; reporting 0");
        }
        tracing::info!(
            agent = %fetch.agent,
            result_type = fetch.outcome.result_type().as_str(),
            reason = ?fetch.reason,
            waited_ms = fetch.waited.as_millis() as u64,
            remaining = fetch.remaining_pending,
            "get_user_request"
        );
        Ok(CallToolResult::structured(tool::result_json(&fetch)))
    }
}

impl QueueServer {
    /// The queue of a call that names none (see [`QueueChoice`]).
    async fn queue_for(&self, ctx: &RequestContext<RoleServer>) -> QueueName {
        let parts = ctx.extensions.get::<http::request::Parts>();
        let from_url = parts
            .and_then(|p| p.extensions.get::<rmcp::model::Extensions>())
            .and_then(|e| e.get::<QueueFromUrl>());
        if let Some(QueueFromUrl(queue)) = from_url {
            return queue.clone();
        }
        if let Some(queue) = &self.choice.fixed {
            return queue.clone();
        }
        let offers_roots = ctx
            .peer
            .peer_info()
            .is_some_and(|info| info.capabilities.roots.is_some());
        if self.choice.ask_roots && offers_roots {
            let session = session_of(&ctx.extensions);
            let cell = {
                let mut cache = self.roots.lock().unwrap_or_else(PoisonError::into_inner);
                if cache.len() >= MAX_REMEMBERED_ROOTS && !cache.contains_key(&session) {
                    cache.clear();
                }
                Arc::clone(cache.entry(session).or_default())
            };
            let peer = ctx.peer.clone();
            let found = cell
                .get_or_init(|| async move { roots_queue(&peer).await })
                .await;
            if let Some(queue) = found {
                return queue.clone();
            }
        }
        self.choice.fallback.clone()
    }
}

/// The session a request belongs to, `""` where there is one per connection.
fn session_of(extensions: &rmcp::model::Extensions) -> String {
    extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.headers.get("mcp-session-id"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The queue of the client's first root that names one, asked with `roots/list`.
// Roots are marked deprecated in rmcp (SEP-2577), but they are what today's
// clients (VS Code, Claude Code, Cursor) use to say which project they work in.
#[allow(deprecated)]
async fn roots_queue(peer: &rmcp::Peer<RoleServer>) -> Option<QueueName> {
    match tokio::time::timeout(ROOTS_TIMEOUT, peer.list_roots()).await {
        Ok(Ok(list)) => {
            let queue = list
                .roots
                .iter()
                .find_map(|root| crate::project::queue_of_root_uri(&root.uri));
            tracing::info!(roots = list.roots.len(), queue = ?queue.as_ref().map(QueueName::as_str), "the client's roots name its project");
            queue
        }
        Ok(Err(e)) => {
            tracing::info!(error = %e, "the client did not list its roots; using the fallback queue");
            None
        }
        Err(_) => {
            tracing::info!(
                "the client did not answer roots/list within {} s; using the fallback queue",
                ROOTS_TIMEOUT.as_secs()
            );
            None
        }
    }
}

/// The client's name from the handshake or the request's own metadata. rmcp
/// fills in its own name for a stateless request that carries none; that one
/// says nothing about the client, so it counts as unknown.
fn client_name(ctx: &RequestContext<RoleServer>) -> Option<String> {
    if let Some(info) = ctx.meta.client_info() {
        return Some(info.name);
    }
    let info = ctx.peer.peer_info()?;
    (info.client_info != Implementation::default()).then(|| info.client_info.name.clone())
}

fn abandoned() -> McpError {
    McpError::new(
        rmcp::model::ErrorCode(-32800),
        "request cancelled; nothing was consumed",
        None,
    )
}

fn failure_message(error: &QueueError) -> String {
    format!(
        "{TOOL_NAME} could not read the queue ({error}). Nothing was consumed. Call {TOOL_NAME} again."
    )
}

impl ServerHandler for QueueServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(self.options.implementation.clone())
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(vec![tool::tool()]))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        // `None` for our own tool too: rmcp would then check the arguments against
        // the schema itself and answer with a protocol error, where SPEC §3 wants a
        // tool error the agent can read.
        let _ = name;
        None
    }

    async fn call_tool(
        &self,
        params: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if params.name != TOOL_NAME {
            return Err(McpError::invalid_params(
                Cow::Owned(format!(
                    "unknown tool `{}`; this server offers only `{TOOL_NAME}`",
                    params.name
                )),
                None,
            ));
        }
        self.get_user_request(params, ctx).await.map(Into::into)
    }

    async fn on_roots_list_changed(&self, ctx: NotificationContext<RoleServer>) {
        // The next call asks again: the person may have opened another project.
        let session = session_of(&ctx.extensions);
        self.roots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&session);
    }

    async fn on_cancelled(
        &self,
        notification: CancelledNotificationParam,
        _ctx: NotificationContext<RoleServer>,
    ) {
        let (Some(deliveries), Some(request)) = (&self.deliveries, &notification.request_id) else {
            return;
        };
        if let Some(id) = deliveries.take(request) {
            put_back(
                &self.service,
                id,
                "the call was cancelled before its result was sent",
            )
            .await;
        }
    }
}
