//! The `local-mcp` binary: parses the command line, resolves the configuration,
//! sets up logging and runs one command. Composition only; the rules live in the
//! library crates.

mod cli;
mod config;
mod logging;
mod mcp_config;
mod serve;
mod signal;
mod stdio;
mod terminal;

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{AuditCommand, Cli, Command, ConfigCommand};
use crate::config::Config;

fn main() -> ExitCode {
    let mut cli = cli::parse();
    cli.global.forget_empty_paths();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("local-mcp: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The queue a terminal command works on; its audit lines say `cli`.
fn open(config: &Config) -> anyhow::Result<queue_core::Service> {
    local_mcp_server::open_service(&config.server, "cli")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let status_http = match &cli.command {
        Command::Status(args) => Some(args.http()),
        _ => None,
    };
    let http = match &cli.command {
        Command::Serve(serve) => Some(&serve.http),
        Command::Stdio(args) => Some(&args.http),
        Command::McpConfig(args) => Some(&args.http),
        _ => status_http.as_ref(),
    };
    let assets = match &cli.command {
        Command::Serve(serve) => Some(&serve.assets),
        Command::Stdio(args) => Some(&args.assets),
        _ => None,
    };
    let config = Config::resolve(&cli.global, http, assets)?;
    // Terminal commands keep quiet unless something goes wrong.
    let level = match &cli.command {
        Command::Serve(_) | Command::Stdio(_) => config.log_level.clone(),
        _ if cli.global.log_level.is_some() => config.log_level.clone(),
        _ => "warn".to_owned(),
    };
    logging::init(&level, config.log_format, config.log_file.as_deref())?;

    // Checking the trail needs no database: a copy can be checked anywhere.
    if let Command::Audit(AuditCommand::Verify(args)) = &cli.command {
        return terminal::audit_verify(&config, args);
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Serve(_) => serve::run(&config).await,
            Command::Stdio(args) => stdio::run(&config, args).await,
            Command::Add(args) => {
                let service = open(&config)?;
                terminal::add(&service, args).await
            }
            Command::List(args) => {
                let service = open(&config)?;
                terminal::list(&service, args).await
            }
            Command::Status(args) => {
                let service = open(&config)?;
                terminal::status(&service, &config, args.json, args.queue.as_ref()).await
            }
            Command::Config(ConfigCommand::Get(args)) => {
                let service = open(&config)?;
                terminal::config_get(&service, &config, args).await
            }
            Command::Config(ConfigCommand::Set(args)) => {
                let service = open(&config)?;
                terminal::config_set(&service, args).await
            }
            Command::Audit(AuditCommand::Verify(_)) => unreachable!("handled above"),
            Command::McpConfig(args) => {
                let binary = std::env::current_exe()
                    .and_then(|p| p.canonicalize())
                    .context("cannot find the path of this program")?;
                let explicit_db = cli.global.db.is_some() || cli.global.config.is_some();
                let here = std::env::current_dir().ok();
                let target = mcp_config::Target {
                    binary,
                    db: explicit_db.then_some(config.server.db_path.as_path()),
                    http: &config.server.http,
                    queue: args.queue.clone(),
                    here: here
                        .as_deref()
                        .and_then(mcp_adapter::project::queue_of_working_dir),
                };
                let (text, note) = mcp_config::render(args.client, args.transport, &target);
                eprintln!("{note}");
                terminal::print(&text)
            }
        }
    });
    // Reading stdin occupies a blocking thread until the client closes it; do not
    // wait for that thread (or any other straggler) before exiting.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    result.map(|()| ExitCode::SUCCESS)
}
