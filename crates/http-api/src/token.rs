//! The bearer-token guard (SPEC §5): with `API_TOKEN` set, a request must carry
//! `Authorization: Bearer <token>`; the comparison takes the same time wherever
//! the first difference is.

use std::rc::Rc;
use std::sync::Arc;

use actix_web::Error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};

/// The guard that refuses requests without the configured bearer token with 401
/// ([`RequireToken::into_middleware`] makes the middleware). With no token
/// configured it lets everything through.
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

impl RequireToken {
    /// The guard as an actix `from_fn` middleware, ready for `wrap`.
    pub fn into_middleware<S, B>(
        self,
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
        let this = Rc::new(self);
        from_fn(move |req: ServiceRequest, next: Next<B>| {
            let this = Rc::clone(&this);
            async move { this.guard(req, next).await }
        })
    }

    async fn guard<B: MessageBody>(
        &self,
        req: ServiceRequest,
        next: Next<B>,
    ) -> Result<ServiceResponse<EitherBody<B>>, Error> {
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
            return Ok(req.into_response(response).map_into_right_body());
        }
        Ok(next.call(req).await?.map_into_left_body())
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
                .wrap(RequireToken::new(Some("s3cret".into())).into_middleware())
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
