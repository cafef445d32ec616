//! `/mcp` over streamable HTTP: rmcp's service mounted in actix-web, plus the
//! middleware that tells a waiting `get_user_request` its client is gone.
//!
//! Two gaps are closed here (SPEC §3 rule 5). actix does not drop a handler that
//! has written nothing when its client disconnects, and rmcp ignores
//! `notifications/cancelled` on the stateless path. So each request gets a
//! [`Connection`] whose response body reports an early drop, the server aborts a
//! connection as soon as its client half-closes it (`h1_allow_half_closed(false)`
//! in `local-mcp-server`), and cancellations are read off the request bodies here and routed
//! through [`Cancellations`].

#![deny(missing_docs)]

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage};
use futures_util::StreamExt;
use mcp_adapter::{Cancellations, Connection, QueueFromUrl, QueueServer};
use queue_core::{MAX_WAIT_SECONDS, QueueName};
use rmcp::model::RequestId;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp_actix_web::transport::StreamableHttpService;
use tokio_util::sync::CancellationToken;

use actix_web::error::PayloadError;
use http_api::{ApiError, HostPolicy};

/// Bodies larger than this are not searched for cancellations: a cancellation is tiny.
const INSPECT_LIMIT: usize = 64 * 1024;

/// The rmcp HTTP service for `handler`.
pub fn mcp_service(
    handler: QueueServer,
    stateless: bool,
    hosts: &HostPolicy,
    shutdown: CancellationToken,
) -> StreamableHttpService<QueueServer, LocalSessionManager> {
    let sessions = session_manager();
    StreamableHttpService::builder()
        .service_factory(Arc::new(move || Ok(handler.clone())))
        .session_manager(Arc::new(sessions))
        .stateful_mode(!stateless)
        // Each keep-alive comment is a write; a write to a vanished client fails and
        // ends the response, which stops the waiting call.
        .sse_keep_alive(Duration::from_secs(5))
        // `Protect` refuses foreign hosts and origins before rmcp sees the request;
        // rmcp's own checks get the same lists so the two never disagree.
        .allowed_hosts(hosts.rmcp_hosts())
        .allowed_origins(hosts.rmcp_origins())
        .cancellation_token(shutdown)
        .on_request_fn(|req, extensions| {
            if let Some(connection) = req.extensions().get::<Connection>() {
                extensions.insert(connection.clone());
            }
            // `/mcp/q/{queue}`; `check_queue` has refused invalid names already.
            if let Some(queue) = req
                .match_info()
                .get("queue")
                .and_then(|q| QueueName::parse(q).ok())
            {
                extensions.insert(QueueFromUrl(queue));
            }
        })
        .build()
}

/// Refuses `/mcp/q/{queue}` with a name no queue can have, before rmcp sees it:
/// a 422 naming the rule beats a call that silently lands on another queue.
pub async fn check_queue(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let refused = req
        .match_info()
        .get("queue")
        .map(QueueName::parse)
        .and_then(Result::err);
    if let Some(e) = refused {
        let error = ApiError::InvalidField {
            field: "queue",
            message: format!("in the URL {}", e.message),
        };
        return Ok(req.into_response(error.to_response()).map_into_boxed_body());
    }
    next.call(req).await
}

/// Sessions (when `MCP_STATELESS=false`) that outlive the longest wait.
fn session_manager() -> LocalSessionManager {
    let mut sessions = LocalSessionManager::default();
    // rmcp closes a session after 300 s without traffic, which would cut off a
    // call waiting longer than that (waits go up to a day) when the client asked
    // for no progress notifications.
    sessions.session_config.keep_alive =
        Some(Duration::from_secs(u64::from(MAX_WAIT_SECONDS) + 600));
    sessions
}

/// What [`watch_connection`] needs: the service a [`Connection`] puts claims
/// back through, and where `notifications/cancelled` are routed.
#[derive(Clone)]
pub struct WatchConnections {
    service: queue_core::Service,
    cancellations: Cancellations,
}

impl WatchConnections {
    /// Watches connections for `service`'s calls, routing cancellations through
    /// `cancellations` (the same the MCP handler was given).
    pub fn new(service: queue_core::Service, cancellations: Cancellations) -> Self {
        WatchConnections {
            service,
            cancellations,
        }
    }
}

/// Middleware for [`actix_web::middleware::from_fn`]: gives every `/mcp` request a
/// [`Connection`] that reports a response never sent, and routes cancellations.
///
/// ```text
/// scope.wrap(from_fn(move |req, next| watch_connection(watch.clone(), req, next)))
/// ```
pub async fn watch_connection(
    watch: WatchConnections,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let connection = Connection::new(watch.service.clone());
    req.extensions_mut().insert(connection.clone());
    // Until the response exists, dropping this future means the client left.
    let guard = CloseOnDrop(Some(connection));
    if req.method() == actix_web::http::Method::POST
        && let Err(refused) = inspect_for_cancellations(&mut req, &watch.cancellations).await
    {
        return Ok(req
            .into_response(refused.to_response())
            .map_into_boxed_body());
    }
    let response = next.call(req).await?;
    Ok(response.map_body(|_, body| {
        BoxBody::new(Watched {
            inner: body.boxed(),
            guard,
        })
    }))
}

/// Reads a POST body, cancels the calls any `notifications/cancelled` in it
/// names, and puts the body back for rmcp. The whole body is read here (MCP
/// messages are small, and `Protect` caps them) because rmcp answers a body cut
/// off at the limit with a 500; this answers 413 like every other route.
async fn inspect_for_cancellations(
    req: &mut ServiceRequest,
    cancellations: &Cancellations,
) -> Result<(), ApiError> {
    let mut payload = req.take_payload();
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(PayloadError::Overflow) => return Err(ApiError::payload_too_large()),
            // A broken body: hand rmcp what arrived and let it answer.
            Err(_) => break,
        }
    }
    if body.len() <= INSPECT_LIMIT {
        let session = req
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok());
        for request in cancelled_requests(&body) {
            let n = cancellations.cancel(session, &request);
            tracing::debug!(request = %request, stopped = n, "notifications/cancelled");
        }
    }
    req.set_payload(Payload::from(Bytes::from(body)));
    Ok(())
}

/// The request ids named by `notifications/cancelled` messages in a JSON-RPC body
/// (one message or a batch).
fn cancelled_requests(body: &[u8]) -> Vec<RequestId> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let messages = match value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    messages
        .into_iter()
        .filter(|m| m.get("method").and_then(|v| v.as_str()) == Some("notifications/cancelled"))
        .filter_map(|m| {
            let id = m.get("params")?.get("requestId")?.clone();
            serde_json::from_value::<RequestId>(id).ok()
        })
        .collect()
}

/// Whether a chunk of an `/mcp` response holds a JSON-RPC response (a result or
/// an error), as opposed to a notification, a request or a keep-alive comment.
/// rmcp writes compact JSON, so a message's own `method` key appears as
/// `"method":`, which a string value cannot contain unescaped.
fn carries_response(chunk: &[u8]) -> bool {
    let has = |needle: &[u8]| chunk.windows(needle.len()).any(|w| w == needle);
    has(b"\"jsonrpc\"") && !has(b"\"method\":")
}

/// Closes the connection when dropped while still armed.
struct CloseOnDrop(Option<Connection>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(connection) = self.0.take() {
            connection.closed();
        }
    }
}

/// A response body that reports whether it was streamed to its end.
struct Watched {
    inner: BoxBody,
    guard: CloseOnDrop,
}

impl MessageBody for Watched {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        // The response is handed to the connection here: from now on a drop means
        // the client left after it was sent (a client may close the stream as soon
        // as it has read the result), not that it was never sent.
        let sent = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(chunk))) => carries_response(chunk),
            _ => false,
        };
        if sent && let Some(connection) = self.guard.0.take() {
            connection.finished();
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_told_from_notifications_and_pings() {
        let response = br#"data: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"method\":\"x\"}"}]}}"#;
        assert!(carries_response(response));
        assert!(carries_response(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"m"}}"#
        ));
        let progress = br#"data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":0,"progress":5.0}}"#;
        assert!(!carries_response(progress));
        assert!(!carries_response(b":ping\n\n"));
    }

    #[test]
    fn sessions_outlive_the_longest_wait() {
        let keep_alive = session_manager().session_config.keep_alive.unwrap();
        assert!(keep_alive > Duration::from_secs(u64::from(MAX_WAIT_SECONDS)));
    }

    #[test]
    fn cancellations_are_found_in_single_messages_and_batches() {
        let one = br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"timeout"}}"#;
        assert_eq!(cancelled_requests(one), vec![RequestId::Number(3)]);
        let batch =
            br#"[{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"a"}},
                        {"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#;
        assert_eq!(
            cancelled_requests(batch),
            vec![RequestId::String("a".into())]
        );
        assert!(cancelled_requests(b"{not json").is_empty());
        assert!(cancelled_requests(br#"{"method":"tools/call","id":1}"#).is_empty());
    }
}
