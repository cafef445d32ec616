//! The bearer-token guard (SPEC §5): with `API_TOKEN` set, a request must carry
//! `Authorization: Bearer <token>`; the comparison takes the same time wherever
//! the first difference is.

use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::Error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header;
use futures_util::future::LocalBoxFuture;

/// Middleware that refuses requests without the configured bearer token with 401.
/// With no token configured it lets everything through.
#[derive(Clone, Debug)]
pub struct RequireToken {
    token: Option<Arc<str>>,
    audit: Option<queue_core::Service>,
}

impl RequireToken {
    /// Guards with `token`, or not at all when it is `None`.
    pub fn new(token: Option<String>) -> Self {
        RequireToken {
            token: token.map(Arc::from),
            audit: None,
        }
    }

    /// Records each refusal in `service`'s audit log.
    pub fn with_audit(mut self, service: queue_core::Service) -> Self {
        self.audit = Some(service);
        self
    }
}

/// Compares without an early exit, so timing does not reveal how much matched.
fn same(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(!e);
    }
    diff == 0
}

fn authorized(req: &ServiceRequest, token: &str) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .is_some_and(|given| same(given.as_bytes(), token.as_bytes()))
}

impl<S, B> Transform<S, ServiceRequest> for RequireToken
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = RequireTokenService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireTokenService {
            service: Rc::new(service),
            token: self.token.clone(),
            audit: self.audit.clone(),
        }))
    }
}

/// The service [`RequireToken`] wraps around the inner one.
#[derive(Debug)]
pub struct RequireTokenService<S> {
    service: Rc<S>,
    token: Option<Arc<str>>,
    audit: Option<queue_core::Service>,
}

impl<S, B> Service<ServiceRequest> for RequireTokenService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if let Some(token) = &self.token
            && !authorized(&req, token)
        {
            let reason = if req.headers().contains_key(header::AUTHORIZATION) {
                "wrong token"
            } else {
                "no token"
            };
            tracing::warn!(path = %req.path(), peer = ?req.peer_addr(), reason, "request refused: missing or wrong bearer token");
            if let Some(service) = &self.audit {
                service.audit(&queue_core::AuditEntry::AuthFailure {
                    method: req.method().as_str(),
                    path: req.path(),
                    reason,
                });
            }
            let response = crate::ApiError::Unauthorized(String::from(
                "this server needs `Authorization: Bearer <API_TOKEN>`",
            ))
            .to_response();
            return Box::pin(ready(Ok(req.into_response(response).map_into_right_body())));
        }
        let service = Rc::clone(&self.service);
        Box::pin(async move { Ok(service.call(req).await?.map_into_left_body()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, test as atest, web};

    #[test]
    fn comparison_needs_every_byte_and_the_length() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secreT", b"secret"));
        assert!(!same(b"secre", b"secret"));
        assert!(!same(b"secrets", b"secret"));
        assert!(!same(b"", b"secret"));
    }

    #[actix_web::test]
    async fn requests_without_the_token_get_401_with_a_challenge() {
        let app = atest::init_service(
            App::new()
                .wrap(RequireToken::new(Some("s3cret".into())))
                .route("/x", web::get().to(|| async { "ok" })),
        )
        .await;
        let cases = [
            (None, 401),
            (Some("Bearer wrong"), 401),
            (Some("Basic s3cret"), 401),
            (Some("Bearer s3cret"), 200),
            (Some("bearer s3cret"), 200),
        ];
        for (auth, status) in cases {
            let mut req = atest::TestRequest::get().uri("/x");
            if let Some(auth) = auth {
                req = req.insert_header((header::AUTHORIZATION, auth));
            }
            let res = atest::call_service(&app, req.to_request()).await;
            assert_eq!(res.status().as_u16(), status, "{auth:?}");
            if status == 401 {
                assert_eq!(
                    res.headers().get(header::WWW_AUTHENTICATE).unwrap(),
                    "Bearer"
                );
            }
        }
    }
}
