//! The command line: every command and flag, with the environment variable that
//! stands in for each flag (flags win over the environment, which wins over the
//! config file, which wins over the built-in defaults).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use queue_core::{AgentId, QueueName};

/// A queue name from the command line, with the rule it broke when it is not one.
fn queue_name(text: &str) -> Result<QueueName, String> {
    QueueName::parse(text).map_err(|e| e.message)
}

/// An agent name from the command line.
fn agent_name(text: &str) -> Result<AgentId, String> {
    AgentId::parse(text).map_err(|e| e.message)
}

/// Steer a long-running AI coding agent from a browser tab.
///
/// You queue instructions in a local web page or from this terminal; the agent
/// keeps calling the MCP tool `get_user_request` and receives them one at a time,
/// oldest first, each exactly once. Every command below works on the same queue,
/// one SQLite file shared by all local-mcp processes.
#[derive(Debug, Parser)]
#[command(
    name = "local-mcp",
    version,
    propagate_version = true,
    after_help = "\
Quick start:
  local-mcp serve                 # web UI and MCP over HTTP on http://127.0.0.1:8000
  local-mcp add \"write the tests\" # queue an instruction from the terminal
  local-mcp status                # server, queue, agents and settings at a glance
  local-mcp mcp-config --client claude-code   # how to connect your agent

Configuration: flag > environment variable > --config file (TOML, keys are the
variable names in lower case, e.g. http_port = 8001) > built-in default."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command understands.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// TOML config file; its keys are the environment variable names in lower case.
    #[arg(long, global = true, value_name = "FILE", env = "LOCAL_MCP_CONFIG", value_parser = any_path)]
    pub(crate) config: Option<PathBuf>,

    /// SQLite database file [default: $XDG_DATA_HOME/local-mcp/local_mcp.sqlite3]
    #[arg(long, global = true, value_name = "PATH", env = "DB_PATH", value_parser = any_path)]
    pub(crate) db: Option<PathBuf>,

    /// PostgreSQL database to keep the queue in instead of the SQLite file, e.g. postgres://user:password@host/db; several servers may share it (no TLS: loopback, a private network or an SSH tunnel)
    #[arg(long, global = true, value_name = "URL", env = "DB_URL")]
    pub(crate) db_url: Option<String>,

    /// error, warn, info, debug or trace (any case), or a RUST_LOG-style filter [default: info]
    #[arg(long, global = true, value_name = "LEVEL", env = "LOG_LEVEL")]
    pub(crate) log_level: Option<String>,

    /// Log line format [default: text]
    #[arg(long, global = true, value_name = "FORMAT", env = "LOG_FORMAT")]
    pub(crate) log_format: Option<LogFormat>,

    /// Also append logs to this file
    #[arg(long, global = true, value_name = "FILE", env = "LOG_FILE", value_parser = any_path)]
    pub(crate) log_file: Option<PathBuf>,

    /// How long get_user_request waits on an empty queue, 0..=86400, until a value is saved in the UI [default: 10]
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        env = "DEFAULT_WAIT_SECONDS"
    )]
    pub(crate) default_wait_seconds: Option<u64>,

    /// What get_user_request returns when the wait ends empty, until a value is saved in the UI
    #[arg(
        long,
        global = true,
        value_name = "TEXT",
        env = "DEFAULT_EMPTY_RESPONSE"
    )]
    pub(crate) default_empty_response: Option<String>,

    /// An agent counts as connected this long after its last call, until a value is saved in the UI [default: 30]
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        env = "AGENT_STALE_AFTER_SECONDS"
    )]
    pub(crate) agent_stale_after_seconds: Option<u64>,

    /// Append-only, hash-chained audit trail, or `off` [default: audit.jsonl next to the database]
    #[arg(long, global = true, value_name = "FILE|off", env = "AUDIT_LOG", value_parser = any_path)]
    pub(crate) audit_log: Option<PathBuf>,

    /// What the audit trail keeps of instruction text: its SHA-256 and length (hash) or also the text itself (full) [default: hash]
    #[arg(
        long,
        global = true,
        value_name = "MODE",
        env = "AUDIT_CONTENT",
        value_enum,
        ignore_case = true
    )]
    pub(crate) audit_content: Option<AuditContent>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the HTTP server: web UI at /, JSON API at /api, MCP at /mcp, /healthz
    Serve(ServeArgs),
    /// Speak MCP over stdin/stdout, for an agent client that starts local-mcp itself
    Stdio(StdioArgs),
    /// Queue an instruction (TEXT, or `-` to read it from standard input)
    Add(AddArgs),
    /// Show the queue
    List(ListArgs),
    /// Show whether the server runs, the queue, the agents and the settings
    Status(StatusArgs),
    /// Read or save the runtime settings (wait, empty response, stale-after)
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check the audit trail
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print a ready-to-paste MCP client configuration
    McpConfig(McpConfigArgs),
}

/// Options of the HTTP server.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct HttpArgs {
    /// Address to listen on; anything but loopback needs API_TOKEN [default: 127.0.0.1]
    #[arg(long, value_name = "ADDR", env = "HOST")]
    pub(crate) host: Option<String>,

    /// Port to listen on; 0 picks a free one [default: 8000]
    #[arg(long, value_name = "PORT", env = "HTTP_PORT")]
    pub(crate) port: Option<u16>,

    /// Serve MCP over HTTP without server-side sessions, so clients survive a restart [default: true]
    #[arg(long, value_name = "BOOL", env = "MCP_STATELESS", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) stateless: Option<bool>,

    /// Require `Authorization: Bearer TOKEN` on /api and /mcp
    #[arg(long, value_name = "TOKEN", env = "API_TOKEN", hide_env_values = true)]
    pub(crate) api_token: Option<String>,

    /// Extra Host/Origin names to accept besides the loopback ones (comma-separated)
    #[arg(
        long,
        value_name = "NAMES",
        env = "ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub(crate) allowed_hosts: Option<Vec<String>>,
}

/// Where the web UI comes from.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct AssetsArgs {
    /// Serve the web UI from this folder instead of the copy built into local-mcp.
    /// Files are read again on every request, so an edit shows when you reload the
    /// page: for working on the UI, e.g. `--assets-dir crates/web-assets/assets` in
    /// a checkout [default: the built-in copy]
    #[arg(long, value_name = "DIR", env = "ASSETS_DIR", value_parser = any_path)]
    pub(crate) assets_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) http: HttpArgs,

    #[command(flatten)]
    pub(crate) assets: AssetsArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StdioArgs {
    /// Also serve the web UI and API over HTTP from this process; if the port is
    /// taken (say by another local-mcp), go on with stdio alone
    #[arg(long)]
    pub(crate) ui: bool,

    /// The queue this agent takes instructions from [default: the project's
    /// queue: the folder name of the git root of --project, else of the working
    /// directory, else `default`]
    #[arg(long, value_name = "NAME", value_parser = queue_name)]
    pub(crate) queue: Option<QueueName>,

    /// The project folder the agent works in, whose name picks the queue when
    /// --queue is not given (MCP clients can pass `${workspaceFolder}`)
    #[arg(long, value_name = "DIR")]
    pub(crate) project: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) http: HttpArgs,

    #[command(flatten)]
    pub(crate) assets: AssetsArgs,
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The instruction; `-` reads it from standard input
    #[arg(value_name = "TEXT")]
    pub(crate) text: String,

    /// The queue to put it on (an agent's queue is usually its project's folder name)
    #[arg(long, short = 'q', value_name = "NAME", value_parser = queue_name, default_value = "default")]
    pub(crate) queue: QueueName,

    /// Only this agent of the queue may take it; the others skip it
    #[arg(long, value_name = "AGENT", value_parser = agent_name)]
    pub(crate) to: Option<AgentId>,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The queue to list
    #[arg(long, short = 'q', value_name = "NAME", value_parser = queue_name, default_value = "default")]
    pub(crate) queue: QueueName,

    /// Which instructions to show
    #[arg(long, value_enum, default_value_t = StatusArg::Pending)]
    pub(crate) status: StatusArg,

    /// Show at most this many
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,

    /// Print JSON instead of a table
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Print JSON (the shape of GET /api/status) instead of a summary
    #[arg(long)]
    pub(crate) json: bool,

    /// Show this queue's counts and agents only [default: every queue]
    #[arg(long, short = 'q', value_name = "NAME", value_parser = queue_name)]
    pub(crate) queue: Option<QueueName>,

    /// Where to look for a running server [default: 127.0.0.1]
    #[arg(long, value_name = "ADDR", env = "HOST")]
    pub(crate) host: Option<String>,

    /// Port of the running server to look for [default: 8000]
    #[arg(long, value_name = "PORT", env = "HTTP_PORT")]
    pub(crate) port: Option<u16>,
}

impl StatusArgs {
    /// The server address options, as the configuration reads them.
    pub(crate) fn http(&self) -> HttpArgs {
        HttpArgs {
            host: self.host.clone(),
            port: self.port,
            ..HttpArgs::default()
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the settings in force (all, or the one named), and where each comes from
    Get(ConfigGetArgs),
    /// Save a setting in the database; every local-mcp process on it uses the new value
    // Its after-help lists the keys and their values from `queue_core::Setting`: see
    // `command`.
    Set(ConfigSetArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ConfigGetArgs {
    /// default_wait_seconds, default_empty_response or agent_stale_after_seconds; prints only its value
    #[arg(value_name = "KEY")]
    pub(crate) key: Option<String>,

    /// Print JSON (the shape of GET /api/config)
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigSetArgs {
    /// default_wait_seconds, default_empty_response or agent_stale_after_seconds
    #[arg(value_name = "KEY")]
    pub(crate) key: String,

    /// The new value
    #[arg(value_name = "VALUE", allow_hyphen_values = true)]
    pub(crate) value: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check that no line of the audit trail was changed, removed or reordered
    #[command(after_help = "\
Prints `audit log FILE: N lines, chain intact` and the SHA-256 of the last line
(note it down: a later check can only notice lines cut from the end if you
compare it), or names the first broken line.

Exit status: 0 the chain is intact, 1 a line is broken, 2 the file cannot be
read (missing, unreadable, or the audit log is off and no --file is given).")]
    Verify(AuditVerifyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AuditVerifyArgs {
    /// The file to check [default: the configured AUDIT_LOG]
    #[arg(long, value_name = "PATH")]
    pub(crate) file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct McpConfigArgs {
    /// Which client the configuration is for
    #[arg(long, value_enum)]
    pub(crate) client: ClientKind,

    /// Let the client start local-mcp itself (stdio), or connect to a running `serve` (http)
    #[arg(long, value_enum, default_value_t = TransportKind::Stdio)]
    pub(crate) transport: TransportKind,

    /// Give every agent started from this configuration this queue [default: each
    /// project its own queue, named after its folder]
    #[arg(long, value_name = "NAME", value_parser = queue_name)]
    pub(crate) queue: Option<QueueName>,

    #[command(flatten)]
    pub(crate) http: HttpArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// How much of an instruction's text the audit trail keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AuditContent {
    // Plain comments: doc comments here would make clap list the values at length.
    // Its SHA-256 and length in characters.
    Hash,
    // The text itself as well.
    Full,
}

impl From<AuditContent> for audit_log::AuditContent {
    fn from(content: AuditContent) -> Self {
        match content {
            AuditContent::Hash => audit_log::AuditContent::Hash,
            AuditContent::Full => audit_log::AuditContent::Full,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatusArg {
    Pending,
    Consumed,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ClientKind {
    ClaudeCode,
    ClaudeDesktop,
    Cursor,
    Vscode,
    Codex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TransportKind {
    Stdio,
    Http,
}

/// A path as given, the empty one included: `LOG_FILE=` and the like mean "not
/// set", as an empty variable does everywhere else, instead of stopping clap.
fn any_path(value: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(value))
}

impl GlobalArgs {
    /// Treats `--db ""`, `DB_PATH=` and the like as not given, so the file or the
    /// default applies.
    pub(crate) fn forget_empty_paths(&mut self) {
        for path in [
            &mut self.config,
            &mut self.db,
            &mut self.log_file,
            &mut self.audit_log,
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                *path = None;
            }
        }
    }
}

/// The command line, with what clap's derive cannot say from constants: the keys
/// `config set` takes and their values, from the one list in queue-core.
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut keys = String::from("Keys and allowed values:");
    for setting in queue_core::Setting::ALL {
        keys.push_str(&format!("\n  {:<26} {}", setting.name(), setting.allowed()));
    }
    Cli::command().mut_subcommand("config", |config| {
        config.mut_subcommand("set", |set| set.after_help(keys))
    })
}

/// Parses the process's arguments, exiting with clap's message on an error.
pub(crate) fn parse() -> Cli {
    use clap::FromArgMatches;
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn config_set_lists_every_setting_with_its_values() {
        let mut cmd = command();
        let help = cmd
            .find_subcommand_mut("config")
            .and_then(|c| c.find_subcommand_mut("set"))
            .map(|set| set.render_long_help().to_string())
            .unwrap_or_default();
        assert!(help.contains("Keys and allowed values:"), "{help}");
        assert!(
            help.contains("default_wait_seconds       a whole number of seconds from 0 to 86400"),
            "{help}"
        );
        assert!(
            help.contains(
                "default_empty_response     any text of at most 4096 characters, or empty"
            ),
            "{help}"
        );
        assert!(
            help.contains("agent_stale_after_seconds  a whole number of seconds from 1 to 86400"),
            "{help}"
        );
    }
}
