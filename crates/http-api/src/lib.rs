//! The HTTP side of local-mcp on actix-web: the JSON API of SPEC §4, live events
//! over SSE, the guards of SPEC §5, and the web UI at `/` ([`UiFiles`]).
//!
//! [`configure`] adds the routes to an actix `App`; wrap the `App` in
//! [`Protect::new`] (Host/Origin, content type, body limit). The server (`local-mcp-server`) mounts
//! `/mcp` next to the routes, wrapped in the token guard
//! ([`ApiState::token_guard`]) like `/api`. Both guards are actix `from_fn`
//! middleware.
//!
//! ```no_run
//! # async fn demo(service: queue_core::Service) -> Result<(), queue_core::QueueError> {
//! use actix_web::App;
//! use http_api::{ApiState, Events, EventsOptions, HostPolicy, Protect, ServerInfo};
//!
//! let events = Events::new(service.clone(), ServerInfo::new(service.now()), EventsOptions::default()).await?;
//! tokio::spawn(events.clone().run());
//! let state = ApiState::new(service, events);
//! let app = App::new()
//!     .wrap(Protect::new(HostPolicy::new(&[], None)))
//!     .configure(http_api::configure(state));
//! # let _ = app; Ok(()) }
//! ```
#![deny(missing_docs)]

mod docs;
mod error;
mod events;
mod json;
mod openapi;
mod routes;
mod security;
mod token;
mod ui;

use actix_web::body::MessageBody;
use actix_web::dev::{Service as ActixService, ServiceRequest, ServiceResponse, Transform};
use actix_web::web;
use queue_core::Service;

pub use error::ApiError;
pub use events::{Events, EventsOptions, STATUS_SPACING};
pub use json::{ServerInfo, StatusParts, agent_json, item_json, queue_json, settings_json};
pub use openapi::openapi_document;
pub use security::{BODY_LIMIT, HostPolicy, Protect};
pub use token::RequireToken;
pub use ui::{AssetsDirError, UiFiles};

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct ApiState {
    service: Service,
    events: Events,
    token: Option<String>,
    ui: UiFiles,
    lists: routes::ListCache,
    status: routes::StatusCache,
}

impl ApiState {
    /// State over `service`, publishing through `events`, with no token required.
    pub fn new(service: Service, events: Events) -> Self {
        ApiState {
            service,
            events,
            token: None,
            ui: UiFiles::embedded(),
            lists: routes::ListCache::default(),
            status: routes::StatusCache::default(),
        }
    }

    /// Serves the web UI from `ui` instead of the embedded copies.
    pub fn with_ui(mut self, ui: UiFiles) -> Self {
        self.ui = ui;
        self
    }

    /// Requires `Authorization: Bearer <token>` on `/api` when `token` is set.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// The guard for `/api` (and, in the server, `/mcp`), for `wrap`: the token,
    /// with refusals recorded in the audit log.
    pub fn token_guard<S, B>(
        &self,
    ) -> impl Transform<
        S,
        ServiceRequest,
        Response = ServiceResponse<impl MessageBody + use<S, B>>,
        Error = actix_web::Error,
        InitError = (),
    > + use<S, B>
    where
        S: ActixService<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>
            + 'static,
        B: MessageBody + 'static,
    {
        RequireToken::new(self.token.clone())
            .with_audit(self.service.clone())
            .into_middleware()
    }
}

/// Adds the routes to an actix `App`, with JSON error bodies for unknown paths,
/// wrong methods and unreadable requests.
pub fn configure(state: ApiState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let guard = state.token_guard();
        // `allow` lists the methods the path takes, for the 405's `Allow` header.
        let resource = |path: &str, allow: &'static str| {
            web::resource(path.to_owned())
                .default_service(web::to(move |req| routes::method_not_allowed(req, allow)))
        };
        cfg.app_data(web::Data::new(state))
            .app_data(
                web::JsonConfig::default()
                    .limit(BODY_LIMIT)
                    // The content type is checked by `Protect` for every route;
                    // accept here whatever it let through.
                    .content_type_required(false)
                    .error_handler(error::json_error),
            )
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .app_data(web::PathConfig::default().error_handler(error::path_error))
            .service(resource("/healthz", "GET").route(web::get().to(routes::healthz)))
            // The API's description and its viewer: no data, so no token.
            .service(resource("/openapi.json", "GET").route(web::get().to(openapi::serve)))
            .service(resource("/docs", "GET").route(web::get().to(docs::redirect)))
            .service(resource("/docs/", "GET").route(web::get().to(docs::index)))
            .service(resource("/docs/{file:.*}", "GET").route(web::get().to(docs::file)))
            .service(
                web::scope("/api")
                    .wrap(guard)
                    .service(resource("/status", "GET").route(web::get().to(routes::status)))
                    .service(resource("/queues", "GET").route(web::get().to(routes::queues)))
                    .service(
                        resource("/instructions", "GET, POST")
                            .route(web::get().to(routes::list))
                            .route(web::post().to(routes::create)),
                    )
                    .service(
                        resource("/instructions/reorder", "POST")
                            .route(web::post().to(routes::reorder)),
                    )
                    .service(
                        resource("/instructions/{id}", "GET, PATCH, DELETE")
                            .route(web::get().to(routes::get))
                            .route(web::patch().to(routes::edit))
                            .route(web::delete().to(routes::delete)),
                    )
                    .service(
                        resource("/instructions/{id}/requeue", "POST")
                            .route(web::post().to(routes::requeue)),
                    )
                    .service(
                        resource("/config", "GET, PATCH")
                            .route(web::get().to(routes::get_config))
                            .route(web::patch().to(routes::patch_config)),
                    )
                    .service(resource("/events", "GET").route(web::get().to(routes::events)))
                    .default_service(web::to(routes::not_found)),
            )
            // Last, so every route above keeps its paths; the UI needs no token
            // (it holds no data) and answers the JSON 404 for what it lacks.
            .service(web::resource("/{path:.*}").to(ui::serve))
            .default_service(web::to(routes::not_found));
    }
}
