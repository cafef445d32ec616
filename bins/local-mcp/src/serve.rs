//! `local-mcp serve`: binds the configured address, then serves the queue until
//! SIGINT or SIGTERM (the server itself is `local_mcp_server`).

use crate::config::Config;

/// Runs the HTTP server until a signal, then stops within about a second.
pub(crate) async fn run(config: &Config) -> anyhow::Result<()> {
    let signal = crate::signal::shutdown_signal();
    // Bind before opening the database so a busy port fails fast.
    let listener = local_mcp_server::bind(&config.server)?;
    local_mcp_server::run(&config.server, listener, signal).await
}
