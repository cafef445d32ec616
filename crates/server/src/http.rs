//! The HTTP server — the web UI at `/`, API and live events at `/api`, MCP at
//! `/mcp`, `/healthz` — behind the guards of SPEC §5: binding, tuning, starting
//! and stopping it. `serve` runs it alone, `stdio --ui` next to stdio.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer};
use anyhow::Context;
use http_api::{ApiState, Events, EventsOptions, HostPolicy, Protect, ServerInfo, UiFiles};
use mcp_adapter::{Cancellations, QueueServer};
use queue_core::Service;
use tokio_util::sync::CancellationToken;

use mcp_http::{WatchConnections, check_queue, mcp_service, watch_connection};

use crate::config::Config;
use crate::open;

/// Binds the configured address; a clear error names it when that fails.
pub fn bind(config: &Config) -> anyhow::Result<TcpListener> {
    try_bind(config)?.with_context(|| {
        format!(
            "could not listen on {}:{} (is another local-mcp already running there? choose another port with HTTP_PORT or --port)",
            config.http.host, config.http.port
        )
    })
}

/// Binds the configured address. The outer error is a configuration problem
/// (exposure without a token, an unresolvable host); the inner one is the bind
/// itself, which `stdio --ui` may shrug off.
pub fn try_bind(config: &Config) -> anyhow::Result<std::io::Result<TcpListener>> {
    let http = &config.http;
    http.check_exposure()?;
    // Checked here too, so a wrong folder stops `serve` before it binds and
    // `stdio --ui` even when another process holds the port.
    ui_files(config)?;
    let host = http.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (host, http.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve HOST {:?}", http.host))?
        .collect();
    Ok(listen_any(&addrs))
}

/// Where the web UI's files come from: the built-in copy, or `--assets-dir`,
/// which must be a readable folder.
pub fn ui_files(config: &Config) -> anyhow::Result<UiFiles> {
    let Some(dir) = &config.assets_dir else {
        return Ok(UiFiles::embedded());
    };
    let ui = UiFiles::directory(dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot serve the web UI from --assets-dir (ASSETS_DIR): {e}. Give the folder \
             that holds the UI's index.html (crates/web-assets/assets in a local-mcp \
             checkout), or leave it unset to serve the built-in UI."
        )
    })?;
    Ok(ui)
}

/// How many connections may wait to be accepted. The standard library's 128 is
/// too few when a thousand live-event clients reconnect at once after a restart:
/// the rest would be dropped and retry a second later.
const BACKLOG: u32 = 1024;

fn listen_any(addrs: &[SocketAddr]) -> std::io::Result<TcpListener> {
    let mut last = std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        "the host resolves to no address",
    );
    for addr in addrs {
        match listen(*addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // What std's `TcpListener::bind` does too: a restart may reuse the port while
    // old connections linger in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)?.into_std()
}

/// Blocking-pool threads per actix worker: enough for a group commit to gather a
/// batch from many connections, few enough to keep memory flat.
const BLOCKING_THREADS_PER_WORKER: usize = 8;

/// What every local-mcp HTTP server is built with, `serve` and `stdio --ui` alike
/// (a macro because actix's `HttpServer` bounds name types actix-web does not
/// re-export).
macro_rules! tuned {
    ($server:expr) => {
        $server
            .on_connect(no_delay)
            // A client that closes its side ends the connection at once, so a call
            // it abandoned stops waiting instead of claiming an instruction nobody
            // reads.
            .h1_allow_half_closed(false)
            // Store calls park a blocking-pool thread each (a write waits for its
            // group commit), and glibc gives every thread its own malloc arena,
            // kept after the thread idles: actix's default (512 / workers threads)
            // let 32 busy connections grow the server by ~15 MiB for nothing.
            .worker_max_blocking_threads(BLOCKING_THREADS_PER_WORKER)
            .disable_signals()
            .shutdown_timeout(1)
    };
}

/// Whether `TCP_NODELAY` took on an accepted connection, kept in the connection's
/// data so a test can see what the socket really says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoDelay(pub bool);

/// Turns Nagle's algorithm off on every accepted connection. With it on, the body
/// of an answer written after its headers waits for the client's ACK of the
/// headers, which a client on a kept-alive connection delays by up to 40 ms:
/// every MCP call on a reused connection took ~42 ms instead of ~2.
fn no_delay(conn: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    if let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
        data.insert(NoDelay(stream.nodelay().unwrap_or(false)));
    }
}

/// A running HTTP server.
pub struct Running {
    /// The server runs only while its future is polled: it is spawned at once so
    /// that it serves whatever the caller does next.
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    server_done: bool,
    handle: ServerHandle,
    mcp_shutdown: CancellationToken,
    events: tokio::task::JoinHandle<()>,
}

/// Starts serving on `listener`; the service's watcher must be running.
pub async fn start(
    config: &Config,
    service: &Service,
    listener: TcpListener,
) -> anyhow::Result<Running> {
    let addr = listener
        .local_addr()
        .context("the listening socket has no address")?;
    let events = Events::new(
        service.clone(),
        ServerInfo::new(service.now()),
        EventsOptions::default(),
    )
    .await
    .context("could not read the queue for live events")?;
    let events_task = tokio::spawn(events.clone().run());
    let hosts = HostPolicy::new(&config.http.allowed_hosts, Some(addr.port()));
    let mcp_shutdown = CancellationToken::new();
    let cancellations = Cancellations::new();
    let handler = QueueServer::new(service.clone()).with_cancellations(cancellations.clone());
    let mcp = mcp_service(handler, config.http.stateless, &hosts, mcp_shutdown.clone());
    let ui = ui_files(config)?;
    if let Some(dir) = ui.dir()
        && !dir.join("index.html").is_file()
    {
        tracing::warn!(
            "{} has no index.html, so / answers 404; --assets-dir wants the folder holding the UI's index.html",
            dir.display()
        );
    }
    let api = ApiState::new(service.clone(), events)
        .with_token(config.http.api_token.clone())
        .with_ui(ui.clone());
    let watch_connections = WatchConnections::new(service.clone(), cancellations);

    let server = tuned!(HttpServer::new(move || {
        App::new()
            .wrap(Protect::new(hosts.clone()))
            // The same server with the queue in the URL, for clients whose config
            // can name a URL but not a tool argument. Registered first: the `/mcp`
            // scope would take `/mcp/q/...` too and answer 404.
            .service(
                mcp.clone()
                    .scope_with_path("/mcp/q/{queue}")
                    .wrap(from_fn({
                        let watch = watch_connections.clone();
                        move |req, next| watch_connection(watch.clone(), req, next)
                    }))
                    .wrap(from_fn(check_queue))
                    .wrap(api.token_guard()),
            )
            .service(
                mcp.clone()
                    .scope_with_path("/mcp")
                    .wrap(from_fn({
                        let watch = watch_connections.clone();
                        move |req, next| watch_connection(watch.clone(), req, next)
                    }))
                    .wrap(api.token_guard()),
            )
            .configure(http_api::configure(api.clone()))
    }))
    .listen(listener)
    .with_context(|| format!("could not serve on {addr}"))?
    .run();
    let handle = server.handle();
    let server = tokio::spawn(server);
    tracing::info!(
        url = %format!("http://{addr}"),
        mcp = %format!("http://{addr}/mcp"),
        db = %config.database(),
        audit = %config.audit.describe(),
        stateless = config.http.stateless,
        token = if config.http.api_token.is_some() { "set" } else { "none" },
        ui = %ui,
        "local-mcp listening on http://{addr}"
    );
    if let Some(dir) = ui.dir() {
        tracing::info!(
            "serving the web UI from {} on disk, not the built-in copy: edit a file there and reload the page",
            dir.display()
        );
    }
    Ok(Running {
        server,
        server_done: false,
        handle,
        mcp_shutdown,
        events: events_task,
    })
}

impl Running {
    /// Serves until `signal` resolves or the server fails; then stops within about a
    /// second with waiting calls answered and nothing consumed.
    pub async fn until(
        mut self,
        service: &Service,
        signal: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let result = tokio::select! {
            result = &mut self.server => {
                self.server_done = true;
                match result {
                    Ok(r) => r.context("the HTTP server stopped"),
                    Err(e) => Err(anyhow::anyhow!("the HTTP server stopped: {e}")),
                }
            }
            _ = signal => Ok(()),
        };
        self.stop(service).await;
        result
    }

    /// Stops serving: waiting calls answer with nothing consumed, live event
    /// streams end, connections close.
    pub async fn stop(mut self, service: &Service) {
        // Waiting calls answer with nothing consumed; let those answers go out
        // before the connections close.
        service.shutdown();
        open::drain(service, Duration::from_millis(500)).await;
        if !self.server_done {
            let stopped = async { tokio::join!(self.handle.stop(true), &mut self.server) };
            let _ = tokio::time::timeout(Duration::from_millis(1200), stopped).await;
        }
        self.mcp_shutdown.cancel();
        let _ = self.events.await;
    }
}

/// Serves `config`'s queue on `listener` until `shutdown` resolves or the server
/// fails; then stops within about a second: waiting calls return at once with
/// nothing consumed. `serve` passes SIGINT/SIGTERM; a test passes its own signal.
pub async fn run(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let service = open::open_service(config, "serve")?;
    let watch = open::spawn_watch(&service);
    let running = start(config, &service, listener).await?;
    let shutdown = async {
        shutdown.await;
        tracing::info!("shutting down");
    };
    let result = running.until(&service, shutdown).await;
    service.shutdown();
    open::drain(&service, Duration::from_millis(500)).await;
    let _ = watch.await;
    tracing::info!("stopped");
    result
}

/// A server running in this process, for tests and embedders that want the
/// address before anything else: started on a listener (port 0 picks a free
/// one), stopped by [`Server::stop`].
pub struct Server {
    service: Service,
    running: Running,
    watch: tokio::task::JoinHandle<()>,
    addr: SocketAddr,
}

impl Server {
    /// Opens `config`'s queue and serves it on `listener` in this process.
    pub async fn start(config: &Config, listener: TcpListener) -> anyhow::Result<Server> {
        let addr = listener
            .local_addr()
            .context("the listening socket has no address")?;
        let service = open::open_service(config, "serve")?;
        let watch = open::spawn_watch(&service);
        let running = start(config, &service, listener).await?;
        Ok(Server {
            service,
            running,
            watch,
            addr,
        })
    }

    /// Binds `config`'s host on a free port and starts there.
    pub async fn start_on_free_port(config: &Config) -> anyhow::Result<Server> {
        let mut config = config.clone();
        config.http.port = 0;
        let listener = bind(&config)?;
        Self::start(&config, listener).await
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The queue it serves, to act on it directly.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Stops as `run` does on its signal: waiting calls answer with nothing
    /// consumed, event streams end, connections close.
    pub async fn stop(self) {
        self.running.stop(&self.service).await;
        self.service.shutdown();
        open::drain(&self.service, Duration::from_millis(500)).await;
        let _ = self.watch.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{HttpRequest, web};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The server side of a connection has `TCP_NODELAY` on: the socket itself is
    /// asked, through the connection data the hook leaves.
    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tuned!(HttpServer::new(|| {
            App::new().route(
                "/",
                web::get().to(|req: HttpRequest| async move {
                    format!("{:?}", req.conn_data::<NoDelay>())
                }),
            )
        }))
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        let running = tokio::spawn(server);

        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.ends_with("\r\n\r\nSome(NoDelay(true))"), "{answer}");

        handle.stop(false).await;
        running.await.unwrap().unwrap();
    }
}
