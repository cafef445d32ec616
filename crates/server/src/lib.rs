//! The local-mcp server as a library: open the queue, serve HTTP (the web UI, the
//! API and live events, MCP over streamable HTTP) and MCP over stdio. The binary
//! only parses the command line into a [`Config`] and calls [`run`] or
//! [`stdio::run`]; a test starts a [`Server`] in its own process on port 0.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let config = local_mcp_server::Config::new("/tmp/queue.sqlite3");
//! let server = local_mcp_server::Server::start_on_free_port(&config).await?;
//! println!("serving on {}", server.url());
//! server.stop().await;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod config;
mod http;
mod open;
pub mod stdio;

pub use config::{AuditConfig, Config, HttpConfig};
pub use http::{NoDelay, Running, Server, bind, run, start, try_bind, ui_files};
pub use open::{drain, open_service, spawn_watch};
