//! `local-mcp serve`: the HTTP server with `/healthz` and MCP at `/mcp`.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::time::Duration;

use actix_web::{App, HttpServer};
use anyhow::Context;
use http_api::{ApiState, RequireToken};
use mcp_adapter::{Cancellations, QueueServer};
use queue_core::Service;
use tokio_util::sync::CancellationToken;

use crate::app;
use crate::config::Config;
use crate::mcp_http::{WatchConnections, mcp_service};

/// Binds the configured address; a clear error names it when that fails.
pub(crate) fn bind(config: &Config) -> anyhow::Result<TcpListener> {
    let http = &config.http;
    http.check_exposure()?;
    let host = http.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (host, http.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve HOST {:?}", http.host))?
        .collect();
    TcpListener::bind(addrs.as_slice()).with_context(|| {
        format!(
            "could not listen on {}:{} (is another local-mcp already running there? choose another port with HTTP_PORT or --port)",
            http.host, http.port
        )
    })
}

/// Runs until SIGINT/SIGTERM, then stops within about a second: waiting calls
/// return at once with nothing consumed.
pub(crate) async fn run(
    config: &Config,
    service: Service,
    listener: TcpListener,
) -> anyhow::Result<()> {
    let signal = app::shutdown_signal();
    let addr = listener
        .local_addr()
        .context("the listening socket has no address")?;
    let watch = app::spawn_watch(&service);
    let shutdown = CancellationToken::new();
    let cancellations = Cancellations::new();
    let handler = QueueServer::new(service.clone()).with_cancellations(cancellations.clone());
    let mcp = mcp_service(handler, &config.http, addr.port(), shutdown.clone());
    let api = ApiState::new(service.clone()).with_token(config.http.api_token.clone());
    let token = config.http.api_token.clone();
    let watch_connections = WatchConnections::new(service.clone(), cancellations);

    let server = HttpServer::new(move || {
        App::new()
            .configure(http_api::configure(api.clone()))
            .service(
                mcp.clone()
                    .scope_with_path("/mcp")
                    .wrap(watch_connections.clone())
                    .wrap(RequireToken::new(token.clone())),
            )
    })
    // A client that closes its side ends the connection at once, so a call it
    // abandoned stops waiting instead of claiming an instruction nobody reads.
    .h1_allow_half_closed(false)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .with_context(|| format!("could not serve on {addr}"))?
    .run();
    let handle = server.handle();
    tracing::info!(
        url = %format!("http://{addr}"),
        mcp = %format!("http://{addr}/mcp"),
        db = %config.db_path.display(),
        stateless = config.http.stateless,
        token = if config.http.api_token.is_some() { "set" } else { "none" },
        "local-mcp listening on http://{addr}"
    );

    tokio::pin!(server);
    tokio::select! {
        result = &mut server => {
            result.context("the HTTP server stopped")?;
        }
        _ = signal => {
            tracing::info!("shutting down");
            // Waiting calls answer with nothing consumed; let those answers go out
            // before the connections close.
            service.shutdown();
            app::drain(&service, Duration::from_millis(500)).await;
            // The server future must keep being polled for the stop to proceed.
            let stopped = async { tokio::join!(handle.stop(true), &mut server) };
            let _ = tokio::time::timeout(Duration::from_millis(1200), stopped).await;
            shutdown.cancel();
        }
    }
    service.shutdown();
    app::drain(&service, Duration::from_millis(500)).await;
    let _ = watch.await;
    tracing::info!("stopped");
    Ok(())
}
