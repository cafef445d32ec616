//! The MCP side of local-mcp: the tool `get_user_request` as an rmcp server
//! handler, transport-agnostic.
//!
//! [`QueueServer`] is one handler type for every transport: serve it over stdio
//! or a duplex pipe with rmcp's `serve_server`, or over streamable HTTP through
//! rmcp's HTTP service. The tool's wire contract (schemas, result JSON, the
//! instructions that keep an agent calling) lives in [`tool`].
//!
//! No instruction is lost to a caller that went away (SPEC §3 rule 5): a waiting
//! call stops when its request is cancelled or its connection closes, and a
//! result that cannot be delivered puts its instruction back at the head of the
//! queue. Each transport reports what it knows through [`TrackedTransport`]
//! (byte streams), [`Connection`] (HTTP requests) and [`Cancellations`]
//! (cancellations over stateless HTTP).
//!
//! ```
//! use std::sync::Arc;
//! use mcp_adapter::QueueServer;
//! use queue_core::{MemoryStore, Service};
//!
//! # fn main() -> Result<(), queue_core::QueueError> {
//! let service = Service::builder(Arc::new(MemoryStore::new())).build()?;
//! let handler = QueueServer::new(service);
//! assert_eq!(mcp_adapter::tool::tool().name, "get_user_request");
//! # let _ = handler; Ok(()) }
//! ```
#![deny(missing_docs)]

mod delivery;
pub mod project;
mod server;
pub mod tool;

pub use delivery::{Cancellations, Connection, Deliveries, TrackedTransport};
pub use server::{QueueChoice, QueueFromUrl, QueueServer, ServerOptions};
