//! The guard in front of everything (SPEC §5): a foreign `Host` or `Origin` gets
//! 403 (DNS rebinding, other pages in the browser), a state-changing request
//! without `Content-Type: application/json` gets 415 (no "simple" cross-site
//! form can reach the queue), and a body over [`BODY_LIMIT`] gets 413. No CORS
//! header is ever added, so browsers keep cross-origin pages out.

use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::PayloadError;
use actix_web::http::{Method, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage};
use futures_util::Stream;

use crate::error::ApiError;

/// The largest request body accepted, in bytes (256 KiB).
pub const BODY_LIMIT: usize = 256 * 1024;

/// The names a request may use for this server: loopback ones, plus the
/// configured extras. Shared with rmcp's own checks on `/mcp` so both agree.
#[derive(Clone, Debug, Default)]
pub struct HostPolicy {
    extra: Vec<String>,
    port: Option<u16>,
}

const LOOPBACK: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

impl HostPolicy {
    /// Loopback names plus `allowed_hosts` (each a name, or `name:port`). With
    /// `port`, an `Origin` on a loopback name must use that port: a page served by
    /// another program on this machine is a different site.
    pub fn new(allowed_hosts: &[String], port: Option<u16>) -> Self {
        HostPolicy {
            extra: allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            port,
        }
    }

    /// Whether a `Host` header value names this server.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let Some((name, port)) = split_host(&host) else {
            return false;
        };
        LOOPBACK.contains(&name) || self.extra_allows(name, port)
    }

    /// Whether an `Origin` header value is this server's own origin or an allowed one.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        let Some((scheme, rest)) = origin.split_once("://") else {
            return false;
        };
        if rest.contains('/') {
            return false;
        }
        let Some((name, port)) = split_host(rest) else {
            return false;
        };
        let port = port.or(match scheme {
            "http" => Some(80),
            "https" => Some(443),
            _ => return false,
        });
        if LOOPBACK.contains(&name) {
            return scheme == "http" && (self.port.is_none() || port == self.port);
        }
        self.extra_allows(name, port)
    }

    fn extra_allows(&self, name: &str, port: Option<u16>) -> bool {
        self.extra.iter().any(|allowed| match split_host(allowed) {
            Some((n, None)) => n == name,
            Some((n, Some(p))) => n == name && port == Some(p),
            None => false,
        })
    }

    /// Host names for rmcp's `allowed_hosts` on `/mcp`.
    pub fn rmcp_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1", "[::1]"]
            .iter()
            .map(|h| (*h).to_owned())
            .collect();
        for extra in &self.extra {
            if let Some((name, _)) = split_host(extra) {
                hosts.push(name.to_owned());
            }
        }
        hosts
    }

    /// Origins for rmcp's `allowed_origins` on `/mcp`, matching [`Self::origin_allowed`].
    pub fn rmcp_origins(&self) -> Vec<String> {
        let port = self
            .port
            .map_or_else(|| String::from("*"), |p| p.to_string());
        let mut origins: Vec<String> = LOOPBACK
            .iter()
            .map(|h| format!("http://{h}:{port}"))
            .collect();
        for extra in &self.extra {
            match split_host(extra) {
                Some((name, None)) => {
                    for scheme in ["http", "https"] {
                        origins.push(format!("{scheme}://{name}"));
                        origins.push(format!("{scheme}://{name}:*"));
                    }
                }
                Some((name, Some(p))) => {
                    origins.push(format!("http://{name}:{p}"));
                    origins.push(format!("https://{name}:{p}"));
                }
                None => {}
            }
        }
        origins
    }
}

/// Splits `name[:port]` (with `[v6]` brackets kept on the name); `None` when the
/// port is not a number or the name is empty.
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, rest) = host.split_at(end + 1);
        match rest.strip_prefix(':') {
            Some(p) => (name, Some(p)),
            None if rest.is_empty() => (name, None),
            None => return None,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, p)) => (name, Some(p)),
            None => (host, None),
        }
    };
    if name.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((name, port))
}

/// The middleware of SPEC §5; wrap the whole `App` in what [`Protect::new`]
/// returns.
#[derive(Debug)]
pub struct Protect {
    policy: HostPolicy,
}

impl Protect {
    /// The guard with `policy`, ready for `App::wrap`: an actix `from_fn`
    /// middleware, so there is no hand-written `Transform` and `Service` pair.
    #[expect(
        clippy::new_ret_no_self,
        reason = "`.wrap(Protect::new(policy))` is how the binary and the tests put the guard on; the middleware's own type cannot be named"
    )]
    pub fn new<S, B>(
        policy: HostPolicy,
    ) -> impl Transform<
        S,
        ServiceRequest,
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >
    where
        S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
        B: MessageBody + 'static,
    {
        let this = Rc::new(Protect { policy });
        from_fn(move |req: ServiceRequest, next: Next<B>| {
            let this = Rc::clone(&this);
            async move { this.guard(req, next).await }
        })
    }

    async fn guard<B: MessageBody>(
        &self,
        mut req: ServiceRequest,
        next: Next<B>,
    ) -> Result<ServiceResponse<EitherBody<B>>, Error> {
        if let Some(refused) = refusal(&self.policy, &req) {
            tracing::warn!(
                method = %req.method(),
                path = %req.path(),
                peer = ?req.peer_addr(),
                reason = %refused,
                "request refused"
            );
            return Ok(req
                .into_response(refused.to_response())
                .map_into_right_body());
        }
        // A body without a length (chunked) is cut off at the limit as it streams.
        let payload = req.take_payload();
        req.set_payload(Payload::Stream {
            payload: Box::pin(Limited {
                inner: payload,
                left: BODY_LIMIT,
            }),
        });
        Ok(next.call(req).await?.map_into_left_body())
    }
}

/// Why `req` must be refused, if it must.
fn refusal(policy: &HostPolicy, req: &ServiceRequest) -> Option<ApiError> {
    // The Host header itself (or the HTTP/2 authority), never X-Forwarded-Host: a
    // rebinding page controls the first and could forge the second.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    match host {
        Some(h) if policy.host_allowed(&h) => {}
        Some(h) => {
            return Some(ApiError::Forbidden(format!(
                "the Host {h:?} is not this server; use http://127.0.0.1 or http://localhost, or add the name to ALLOWED_HOSTS"
            )));
        }
        None => {
            return Some(ApiError::Forbidden(String::from(
                "the request has no Host header",
            )));
        }
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !policy.origin_allowed(origin) {
            return Some(ApiError::Forbidden(format!(
                "requests from the page at {origin:?} are not accepted: only this server's own pages (or ALLOWED_HOSTS) may call it"
            )));
        }
    }
    let method = req.method();
    if method == Method::POST || method == Method::PUT || method == Method::PATCH {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Some(ApiError::UnsupportedMediaType(format!(
                "{method} needs `Content-Type: application/json`, even with an empty body"
            )));
        }
    }
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if length.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Some(ApiError::payload_too_large());
    }
    None
}

/// A request body that fails with `Overflow` once it passes the limit.
struct Limited {
    inner: Payload,
    left: usize,
}

impl Stream for Limited {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.left == usize::MAX {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if chunk.len() > self.left {
                    self.left = usize::MAX;
                    return Poll::Ready(Some(Err(PayloadError::Overflow)));
                }
                self.left -= chunk.len();
                Poll::Ready(Some(Ok(chunk)))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let p = HostPolicy::new(&["Example.test".into(), "box.lan:9000".into()], Some(8000));
        for ok in [
            "localhost",
            "localhost:8000",
            "127.0.0.1:1234",
            "[::1]:8000",
            "[::1]",
            "LOCALHOST",
            "example.test",
            "example.test:443",
            "box.lan:9000",
        ] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.test",
            "localhost.evil.test",
            "127.0.0.2",
            "box.lan:9001",
            "box.lan",
            "",
            ":8000",
            "localhost:x",
            "[::1",
            "[::1]x",
        ] {
            assert!(!p.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn origins() {
        let p = HostPolicy::new(&["example.test".into()], Some(8000));
        for ok in [
            "http://localhost:8000",
            "http://127.0.0.1:8000",
            "http://[::1]:8000",
            "https://example.test",
            "http://example.test:3000",
        ] {
            assert!(p.origin_allowed(ok), "{ok}");
        }
        for bad in [
            "null",
            "http://localhost:3000",
            "http://localhost",
            "https://localhost:8000",
            "http://evil.test:8000",
            "file://",
            "http://localhost:8000/x",
            "",
        ] {
            assert!(!p.origin_allowed(bad), "{bad}");
        }
        let any_port = HostPolicy::new(&[], None);
        assert!(any_port.origin_allowed("http://localhost:3000"));
    }

    /// rmcp checks `/mcp` again with its own lists; they must accept what
    /// `Protect` accepts and name nothing it refuses.
    #[test]
    fn rmcp_lists_match_the_policy() {
        let p = HostPolicy::new(&["box.lan".into(), "proxy.test:9000".into()], Some(8000));
        let hosts = p.rmcp_hosts();
        for h in ["localhost", "127.0.0.1", "[::1]", "box.lan", "proxy.test"] {
            assert!(hosts.iter().any(|x| x == h), "{h} missing from {hosts:?}");
        }
        for h in &hosts {
            let bracketed = if h == "::1" {
                "[::1]".to_owned()
            } else {
                h.clone()
            };
            assert!(
                p.host_allowed(&bracketed) || p.host_allowed(&format!("{bracketed}:9000")),
                "{h}"
            );
        }
        let origins = p.rmcp_origins();
        for o in [
            "http://localhost:8000",
            "http://127.0.0.1:8000",
            "http://[::1]:8000",
            "https://box.lan",
            "http://proxy.test:9000",
        ] {
            assert!(
                origins.iter().any(|x| x == o),
                "{o} missing from {origins:?}"
            );
            assert!(p.origin_allowed(o), "{o}");
        }
        for o in &origins {
            let concrete = o.replace(":*", ":1234");
            assert!(
                p.origin_allowed(&concrete),
                "{o} is listed for rmcp but refused"
            );
        }
    }
}
