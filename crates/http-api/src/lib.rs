//! The HTTP side of local-mcp on actix-web: health check and the bearer-token
//! guard that protects `/api` and `/mcp`.
//!
//! [`configure`] adds the routes to an actix `App`; the binary mounts `/mcp` next
//! to them, wrapped in [`RequireToken`].
#![deny(missing_docs)]

mod json;
mod token;

use actix_web::{HttpResponse, web};
use queue_core::{QueueError, Service};
use serde::Deserialize;
use serde_json::json;
#[cfg(test)]
use serde_json::Value;

pub use json::{ServerInfo, StatusParts, agent_json, item_json, settings_json};
pub use token::RequireToken;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct ApiState {
    service: Service,
    token: Option<String>,
}

impl ApiState {
    /// State over `service`, with no token required.
    pub fn new(service: Service) -> Self {
        ApiState {
            service,
            token: None,
        }
    }

    /// Requires `Authorization: Bearer <token>` on `/api` when `token` is set.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }
}

/// Adds the HTTP routes to an actix `App` or scope.
pub fn configure(state: ApiState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let guard = RequireToken::new(state.token.clone());
        cfg.app_data(web::Data::new(state))
            .route("/healthz", web::get().to(healthz))
            .service(
                web::scope("/api")
                    .wrap(guard)
                    .route("/instructions", web::post().to(create_instruction)),
            );
    }
}

/// `GET /healthz`: never needs a token.
async fn healthz(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "server_time": state.service.now().to_rfc3339(),
    }))
}

fn error(status: actix_web::http::StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"code": code, "message": message}}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInstruction {
    content: String,
}

/// `POST /api/instructions`: queues an instruction at the end.
async fn create_instruction(
    state: web::Data<ApiState>,
    body: web::Json<NewInstruction>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    match state.service.add(&body.content).await {
        Ok(item) => HttpResponse::Created().json(json!({ "item": item_json(&item) })),
        Err(QueueError::Validation(e)) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            &e.to_string(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "adding an instruction failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                "the queue could not be written; nothing was added, try again",
            )
        }
    }
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

    #[actix_web::test]
    async fn instructions_are_created_and_checked() {
        let service = Service::builder(Arc::new(MemoryStore::new()))
            .build()
            .unwrap();
        let app = test::init_service(App::new().configure(configure(ApiState::new(service)))).await;
        let req = test::TestRequest::post()
            .uri("/api/instructions")
            .set_json(json!({"content": "  do it  "}))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status().as_u16(), 201);
        let body: Value = test::read_body_json(res).await;
        assert_eq!(body["item"]["content"], "do it");
        assert_eq!(body["item"]["status"], "pending");
        let req = test::TestRequest::post()
            .uri("/api/instructions")
            .set_json(json!({"content": "   "}))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status().as_u16(), 422);
        let body: Value = test::read_body_json(res).await;
        assert_eq!(body["error"]["code"], "validation");
    }
}
