//! In-process tests of the HTTP API (SPEC §4 and §5) and of the web UI's files:
//! the real routes, guards and event hub of `http-api` on `actix_web::test`, over
//! an in-memory queue.
//!
//! One test binary (a single link of actix-web) with one module per concern; every
//! response any test reads goes through `support`, which checks the rules every
//! answer must keep (no 5xx, no CORS header, the one error shape).

mod audit;
mod bad_input;
mod events;
mod routes;
mod security;
mod support;
mod ui;
