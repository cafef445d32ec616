//! MCP over stdin/stdout for a client that starts us, optionally with the HTTP
//! server next to it. Nothing but JSON-RPC is ever written to stdout; logs go to
//! stderr.

use std::time::Duration;

use anyhow::Context;
use mcp_adapter::{Deliveries, QueueChoice, QueueServer, TrackedTransport};
use queue_core::Service;
use rmcp::ServiceExt;
use rmcp::transport::async_rw::AsyncRwTransport;

use crate::config::Config;
use crate::{http, open};

/// Serves one client until it closes stdin or `shutdown` resolves; with `ui`, also
/// the HTTP UI and API when the port is free.
pub async fn run(
    config: &Config,
    service: Service,
    ui: bool,
    choice: QueueChoice,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let signal = shutdown;
    tokio::pin!(signal);
    let watch = open::spawn_watch(&service);
    let web = if ui {
        start_ui(config, &service).await?
    } else {
        None
    };
    let result = serve_stdio(&service, choice, &mut signal).await;
    if let Some(web) = web {
        web.stop(&service).await;
    }
    service.shutdown();
    open::drain(&service, Duration::from_secs(1)).await;
    let _ = watch.await;
    result
}

/// The web UI and API next to stdio, unless the port is taken — most likely by
/// another local-mcp serving the same queue, which the person can use instead.
async fn start_ui(config: &Config, service: &Service) -> anyhow::Result<Option<http::Running>> {
    let http = &config.http;
    match http::try_bind(config)? {
        Ok(listener) => Ok(Some(http::start(config, service, listener).await?)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::info!(
                "the UI port {}:{} is already taken, probably by another local-mcp; going on with MCP over stdio only",
                http.host,
                http.port
            );
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not serve the UI on {}:{}; going on with MCP over stdio only", http.host, http.port);
            Ok(None)
        }
    }
}

async fn serve_stdio(
    service: &Service,
    choice: QueueChoice,
    signal: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> anyhow::Result<()> {
    let service = service.clone();
    let deliveries = Deliveries::new(service.clone());
    let handler = QueueServer::new(service.clone())
        .with_deliveries(deliveries.clone())
        .with_queue_choice(choice);
    let (stdin, stdout) = rmcp::transport::stdio();
    let transport = TrackedTransport::new(AsyncRwTransport::new_server(stdin, stdout), deliveries);

    tracing::info!("local-mcp serving MCP on stdio");
    let running = tokio::select! {
        running = handler.serve(transport) => running.context("the MCP handshake on stdio failed")?,
        _ = signal.as_mut() => {
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
        _ = signal.as_mut() => {
            tracing::info!("shutting down");
            // Waiting calls answer at once with nothing consumed; give their answers
            // a moment to be written before the connection is cut.
            service.shutdown();
            open::drain(&service, Duration::from_secs(1)).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            stop.cancel();
            let _ = tokio::time::timeout(Duration::from_millis(300), &mut finished).await;
        }
    }
    Ok(())
}
