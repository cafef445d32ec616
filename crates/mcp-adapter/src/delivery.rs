//! How a claimed instruction survives a result that never reaches the agent
//! (SPEC §3 rule 5). Each transport reports what it knows about its own
//! connection; whatever was claimed for a result that cannot be written goes back
//! to the head of the queue.
//!
//! - [`TrackedTransport`] wraps a byte-stream transport (stdio, a duplex pipe): it
//!   sees every response go out and whether the write failed.
//! - [`Connection`] stands for one HTTP request: the HTTP layer says when the
//!   response stream was dropped before it finished.
//! - [`Cancellations`] routes `notifications/cancelled` that arrive over stateless
//!   HTTP, which rmcp drops, to the call they name.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use queue_core::{InstructionId, Service};
use rmcp::RoleServer;
use rmcp::model::{ClientNotification, ErrorData, JsonRpcMessage, RequestId};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio_util::sync::CancellationToken;

/// Puts a claimed instruction back at the head of the queue because its result
/// could not be delivered.
pub(crate) async fn put_back(service: &Service, id: InstructionId, why: &str) {
    match service.return_to_queue(id, why).await {
        Ok(_) => {
            tracing::warn!(instruction = %id, why, "result not delivered; instruction returned to the head of the queue")
        }
        Err(e) => {
            tracing::error!(instruction = %id, why, error = %e, "result not delivered and the instruction could not be returned to the queue")
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section here is a map insert or remove; a panic elsewhere
    // cannot leave the map half-changed, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Instructions claimed for responses a [`TrackedTransport`] has not sent yet.
#[derive(Clone)]
pub struct Deliveries {
    service: Service,
    pending: Arc<Mutex<HashMap<RequestId, InstructionId>>>,
    /// Cancelled when the client's input ends (stdin closed): the client is
    /// leaving, so a waiting call must stop rather than claim for a reader that
    /// may never read its answer.
    input_closed: CancellationToken,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries")
            .field("pending", &lock(&self.pending).len())
            .finish()
    }
}

impl Deliveries {
    /// A ledger that returns undelivered instructions through `service`.
    pub fn new(service: Service) -> Self {
        Deliveries {
            service,
            pending: Arc::default(),
            input_closed: CancellationToken::new(),
        }
    }

    /// Cancelled once the [`TrackedTransport`]'s input has ended.
    pub(crate) fn input_closed(&self) -> &CancellationToken {
        &self.input_closed
    }

    /// Records that the response to `request` carries instruction `id`.
    pub(crate) fn expect(&self, request: RequestId, id: InstructionId) {
        lock(&self.pending).insert(request, id);
    }

    /// Forgets the response to `request`; whoever gets `Some` owns the outcome.
    pub(crate) fn take(&self, request: &RequestId) -> Option<InstructionId> {
        lock(&self.pending).remove(request)
    }

    pub(crate) fn service(&self) -> &Service {
        &self.service
    }
}

/// A transport that notices when a result carrying an instruction fails to go
/// out, and puts that instruction back.
///
/// It also refuses a request whose id is already in flight. rmcp keys its
/// in-flight requests by id, so a second one with the same id makes it drop
/// one of the two answers unsent; if that answer carried an instruction, the
/// instruction would be consumed and delivered to no one.
#[derive(Debug)]
pub struct TrackedTransport<T> {
    inner: T,
    deliveries: Deliveries,
    in_flight: HashSet<RequestId>,
}

impl<T> TrackedTransport<T> {
    /// Wraps `inner`; give the same `deliveries` to the [`QueueServer`](crate::QueueServer).
    pub fn new(inner: T, deliveries: Deliveries) -> Self {
        TrackedTransport {
            inner,
            deliveries,
            in_flight: HashSet::new(),
        }
    }
}

impl<T> Transport<RoleServer> for TrackedTransport<T>
where
    T: Transport<RoleServer>,
{
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        // Taken now, synchronously: rmcp calls `send` from its event loop in order,
        // so a cancellation handled after this point finds nothing to put back.
        let answered = match &item {
            JsonRpcMessage::Response(response) => Some(&response.id),
            JsonRpcMessage::Error(error) => error.id.as_ref(),
            _ => None,
        };
        let carried = answered.and_then(|id| {
            self.in_flight.remove(id);
            self.deliveries.take(id)
        });
        let sent = self.inner.send(item);
        let service = self.deliveries.service().clone();
        async move {
            let result = sent.await;
            if let (Err(e), Some(id)) = (&result, carried) {
                put_back(&service, id, &format!("writing the result failed: {e}")).await;
            }
            result
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleServer>>> + Send {
        let closed = self.deliveries.input_closed.clone();
        async move {
            loop {
                let message = self.inner.receive().await;
                match &message {
                    // rmcp keeps in-flight calls running for seconds after the input
                    // ends, to let their answers out; a waiting call must not sit out
                    // that time and claim an instruction the departing client will
                    // not read.
                    None => closed.cancel(),
                    Some(JsonRpcMessage::Request(request))
                        if !self.in_flight.insert(request.id.clone()) =>
                    {
                        tracing::warn!(id = %request.id, "refused a request whose id is already in flight");
                        let refusal = TxJsonRpcMessage::<RoleServer>::error(
                            ErrorData::invalid_request(
                                "a request with this id is still in flight; use a new id for each request",
                                None,
                            ),
                            Some(request.id.clone()),
                        );
                        let _ = self.inner.send(refusal).await;
                        continue;
                    }
                    // A cancelled request gets no answer, so it leaves no trace here.
                    Some(JsonRpcMessage::Notification(n)) => {
                        if let ClientNotification::CancelledNotification(c) = &n.notification
                            && let Some(id) = &c.params.request_id
                        {
                            self.in_flight.remove(id);
                        }
                    }
                    Some(_) => {}
                }
                return message;
            }
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}

/// One HTTP request as the tool handler sees it: whether its client is still
/// there, and what was claimed for its response.
///
/// The HTTP layer creates one per `/mcp` request, hands it to rmcp through the
/// request extensions, calls [`Connection::finished`] when the response body
/// was streamed to its end and [`Connection::closed`] when it was dropped early.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<ConnectionInner>,
}

struct ConnectionInner {
    service: Service,
    gone: CancellationToken,
    claimed: Mutex<Option<InstructionId>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("gone", &self.inner.gone.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A live connection whose undelivered claims go back through `service`.
    pub fn new(service: Service) -> Self {
        Connection {
            inner: Arc::new(ConnectionInner {
                service,
                gone: CancellationToken::new(),
                claimed: Mutex::new(None),
            }),
        }
    }

    /// The response body was written to its end: whatever it carried is delivered.
    pub fn finished(&self) {
        lock(&self.inner.claimed).take();
    }

    /// The client went away before the response was complete: a waiting call stops
    /// at once, and an instruction already claimed for it goes back to the queue.
    /// Needs a tokio runtime when something was claimed.
    pub fn closed(&self) {
        self.inner.gone.cancel();
        if let Some(id) = lock(&self.inner.claimed).take() {
            let service = self.inner.service.clone();
            tokio::spawn(async move {
                put_back(
                    &service,
                    id,
                    "the HTTP connection closed before the result was sent",
                )
                .await;
            });
        }
    }

    /// Whether [`Connection::closed`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.gone.is_cancelled()
    }

    pub(crate) fn gone(&self) -> &CancellationToken {
        &self.inner.gone
    }

    /// Takes back the claim recorded by [`Connection::hold`], if still there.
    pub(crate) fn take_claim(&self) -> Option<InstructionId> {
        lock(&self.inner.claimed).take()
    }

    /// Records a claim for this response. Returns it back if the connection is
    /// already gone, so the caller puts it back itself.
    pub(crate) fn hold(&self, id: InstructionId) -> Option<InstructionId> {
        *lock(&self.inner.claimed) = Some(id);
        if self.is_closed() {
            lock(&self.inner.claimed).take()
        } else {
            None
        }
    }
}

type CancelKey = (Option<String>, RequestId);
type CancelMap = HashMap<CancelKey, Vec<(u64, CancellationToken)>>;

/// Calls in flight by (session, request id), so that a `notifications/cancelled`
/// arriving on another HTTP request can reach the call it names.
///
/// Without a session, request ids are not unique across clients: a cancellation
/// may then also stop another client's call with the same id. That call returns
/// at once with nothing consumed and its agent calls again, so nothing is lost.
#[derive(Clone, Debug, Default)]
pub struct Cancellations {
    inner: Arc<Mutex<CancelMap>>,
    serial: Arc<AtomicU64>,
}

impl Cancellations {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the calls registered as `request` in `session`. Returns how many.
    pub fn cancel(&self, session: Option<&str>, request: &RequestId) -> usize {
        let key = (session.map(str::to_owned), request.clone());
        let map = lock(&self.inner);
        let Some(entries) = map.get(&key) else {
            return 0;
        };
        for (_, token) in entries {
            token.cancel();
        }
        entries.len()
    }

    /// How many calls are registered.
    pub fn len(&self) -> usize {
        lock(&self.inner).values().map(Vec::len).sum()
    }

    /// Whether no call is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn register(&self, session: Option<String>, request: RequestId) -> Registration {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        let key = (session, request);
        lock(&self.inner)
            .entry(key.clone())
            .or_default()
            .push((serial, token.clone()));
        Registration {
            owner: self.clone(),
            key,
            serial,
            token,
        }
    }
}

/// A call's entry in [`Cancellations`], removed when dropped.
pub(crate) struct Registration {
    owner: Cancellations,
    key: CancelKey,
    serial: u64,
    pub(crate) token: CancellationToken,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = lock(&self.owner.inner);
        if let Some(entries) = map.get_mut(&self.key) {
            entries.retain(|(serial, _)| *serial != self.serial);
            if entries.is_empty() {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancellations_reach_every_call_with_the_key_and_clean_up() {
        let registry = Cancellations::new();
        let a = registry.register(None, RequestId::Number(1));
        let b = registry.register(None, RequestId::Number(1));
        let other = registry.register(Some("s".into()), RequestId::Number(1));
        assert_eq!(registry.len(), 3);
        assert_eq!(registry.cancel(None, &RequestId::Number(1)), 2);
        assert!(a.token.is_cancelled() && b.token.is_cancelled());
        assert!(!other.token.is_cancelled());
        assert_eq!(registry.cancel(None, &RequestId::Number(2)), 0);
        drop((a, b, other));
        assert!(registry.is_empty());
    }
}
