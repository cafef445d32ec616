//! The HTTP side of local-mcp on actix-web: health check and the bearer-token
//! guard that protects `/api` and `/mcp`.
//!
//! [`configure`] adds the routes to an actix `App`; the binary mounts `/mcp` next
//! to them, wrapped in [`RequireToken`].
#![deny(missing_docs)]

mod token;

use actix_web::{HttpResponse, web};
use queue_core::Service;
use serde_json::json;

pub use token::RequireToken;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct ApiState {
    service: Service,
}

impl ApiState {
    /// State over `service`.
    pub fn new(service: Service) -> Self {
        ApiState { service }
    }
}

/// Adds the HTTP routes to an actix `App` or scope.
pub fn configure(state: ApiState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .route("/healthz", web::get().to(healthz));
    }
}

/// `GET /healthz`: never needs a token.
async fn healthz(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "server_time": state.service.now().to_rfc3339(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, test};
    use queue_core::MemoryStore;
    use std::sync::Arc;

    #[actix_web::test]
    async fn healthz_answers_ok_with_the_time() {
        let service = Service::builder(Arc::new(MemoryStore::new()))
            .build()
            .unwrap();
        let app = test::init_service(App::new().configure(configure(ApiState::new(service)))).await;
        let body: serde_json::Value = test::call_and_read_body_json(
            &app,
            test::TestRequest::get().uri("/healthz").to_request(),
        )
        .await;
        assert_eq!(body["status"], "ok");
        assert!(body["server_time"].as_str().unwrap().ends_with('Z'));
    }
}
