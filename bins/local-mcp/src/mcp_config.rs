//! `local-mcp mcp-config`: a ready-to-paste client configuration naming this
//! binary's real path (stdio) or the server's URL and token header (http). The
//! configuration goes to stdout, the advice on where to put it to stderr.

use std::path::{Path, PathBuf};

use queue_core::QueueName;
use serde_json::{Value, json};

use crate::cli::{ClientKind, TransportKind};
use local_mcp_server::HttpConfig;

/// What the printed configuration needs to know.
pub(crate) struct Target<'a> {
    pub(crate) binary: PathBuf,
    /// Passed to the spawned process when the database is not the default one.
    pub(crate) db: Option<&'a Path>,
    pub(crate) http: &'a HttpConfig,
    /// `--queue`: every agent of this configuration uses it.
    pub(crate) queue: Option<QueueName>,
    /// The project of the folder `mcp-config` runs in, for configurations that
    /// must spell the queue out (an HTTP URL).
    pub(crate) here: Option<QueueName>,
}

/// How the printed configuration picks the queue.
enum Queue<'q> {
    /// `--queue NAME` in the command, `/mcp/q/NAME` in a URL.
    Named(&'q QueueName),
    /// The client passes its workspace folder (`${workspaceFolder}`).
    Workspace,
    /// The server works it out: the client's roots, else its working directory.
    Found,
}

impl Queue<'_> {
    fn args(&self) -> Vec<String> {
        match self {
            Queue::Named(q) => vec!["stdio".into(), "--queue".into(), q.as_str().into()],
            Queue::Workspace => vec![
                "stdio".into(),
                "--project".into(),
                "${workspaceFolder}".into(),
            ],
            Queue::Found => vec!["stdio".into()],
        }
    }

    /// One sentence on which queue the agent takes from.
    fn note(&self) -> String {
        match self {
            Queue::Named(q) => format!("The agent takes instructions from the queue {:?}.", q.as_str()),
            Queue::Workspace => "Each workspace gets its own queue, named after its folder (git root).".into(),
            Queue::Found => "Each project gets its own queue, named after its folder (the client's workspace root, else the git root it starts in, else `default`).".into(),
        }
    }
}

/// The configuration text and a note on where it goes.
pub(crate) fn render(
    client: ClientKind,
    transport: TransportKind,
    t: &Target<'_>,
) -> (String, String) {
    // A URL cannot ask the client where it works, so it names the queue.
    let url_queue = t.queue.as_ref().or(t.here.as_ref());
    let url = match url_queue {
        Some(q) => format!("{}/mcp/q/{q}", t.http.base_url()),
        None => format!("{}/mcp", t.http.base_url()),
    };
    let http_note = match url_queue {
        Some(q) => format!("The agent takes instructions from the queue {:?}; run this again in another project for its own URL.", q.as_str()),
        None => "This folder is in no git repository, so the agent uses the queue `default`; pass --queue NAME for another one.".into(),
    };
    let workspace = t.queue.as_ref().map_or(Queue::Workspace, Queue::Named);
    let found = t.queue.as_ref().map_or(Queue::Found, Queue::Named);
    let binary = t.binary.display().to_string();
    let auth = t
        .http
        .api_token
        .as_ref()
        .map(|token| format!("Bearer {token}"));
    let env =
        t.db.map(|db| json!({ "DB_PATH": db.display().to_string() }));
    let stdio_entry = |queue: &Queue<'_>, extra: Value| {
        let mut entry = json!({ "command": binary, "args": queue.args() });
        if let Some(env) = &env {
            entry["env"] = env.clone();
        }
        merge(entry, extra)
    };
    let headers = auth.as_ref().map(|a| json!({ "Authorization": a }));
    match (client, transport) {
        (ClientKind::ClaudeCode, TransportKind::Stdio) => {
            let env_flag =
                t.db.map(|db| format!(" --env DB_PATH={}", shell_quote(&db.display().to_string())))
                    .unwrap_or_default();
            let args: Vec<String> = found.args().iter().map(|a| shell_quote(a)).collect();
            (
                format!(
                    "claude mcp add --scope project local-mcp{env_flag} -- {} {}\n",
                    shell_quote(&binary),
                    args.join(" ")
                ),
                format!(
                    "Run this in your project folder; it writes .mcp.json there. {}",
                    found.note()
                ),
            )
        }
        (ClientKind::ClaudeCode, TransportKind::Http) => {
            let header = auth
                .as_ref()
                .map(|a| format!(" --header {}", shell_quote(&format!("Authorization: {a}"))))
                .unwrap_or_default();
            (
                format!(
                    "claude mcp add --scope project --transport http local-mcp {url}{header}\n"
                ),
                format!(
                    "Start the server first with `{binary} serve`, then run this in your project folder. {http_note}"
                ),
            )
        }
        (ClientKind::ClaudeDesktop, TransportKind::Stdio) => (
            pretty(&json!({ "mcpServers": { "local-mcp": stdio_entry(&found, json!({})) } })),
            format!(
                "Merge into claude_desktop_config.json (Settings > Developer > Edit Config), then restart Claude Desktop. {}",
                found.note()
            ),
        ),
        (ClientKind::ClaudeDesktop, TransportKind::Http) => {
            let mut args = vec![json!("-y"), json!("mcp-remote"), json!(url)];
            if let Some(a) = &auth {
                args.push(json!("--header"));
                args.push(json!(format!("Authorization:{a}")));
            }
            (
                pretty(
                    &json!({ "mcpServers": { "local-mcp": { "command": "npx", "args": args } } }),
                ),
                format!(
                    "Claude Desktop's config file starts local servers only; this bridges to the running server through the npm package mcp-remote. The stdio transport needs no bridge. {http_note}"
                ),
            )
        }
        (ClientKind::Cursor, TransportKind::Stdio) => (
            pretty(&json!({ "mcpServers": { "local-mcp": stdio_entry(&workspace, json!({})) } })),
            format!(
                "Merge into ~/.cursor/mcp.json (all projects) or .cursor/mcp.json (this project). {}",
                workspace.note()
            ),
        ),
        (ClientKind::Cursor, TransportKind::Http) => {
            let mut entry = json!({ "url": url });
            if let Some(h) = &headers {
                entry["headers"] = h.clone();
            }
            (
                pretty(&json!({ "mcpServers": { "local-mcp": entry } })),
                format!(
                    "Merge into .cursor/mcp.json in this project; start the server with `local-mcp serve`. {http_note}"
                ),
            )
        }
        (ClientKind::Vscode, TransportKind::Stdio) => (
            pretty(
                &json!({ "servers": { "local-mcp": stdio_entry(&workspace, json!({ "type": "stdio" })) } }),
            ),
            format!(
                "Merge into .vscode/mcp.json in your workspace (or run `MCP: Open User Configuration`). {}",
                workspace.note()
            ),
        ),
        (ClientKind::Vscode, TransportKind::Http) => {
            let mut entry = json!({ "type": "http", "url": url });
            if let Some(h) = &headers {
                entry["headers"] = h.clone();
            }
            (
                pretty(&json!({ "servers": { "local-mcp": entry } })),
                format!(
                    "Merge into .vscode/mcp.json in this workspace; start the server with `local-mcp serve`. {http_note}"
                ),
            )
        }
        (ClientKind::Codex, TransportKind::Stdio) => {
            let args: Vec<String> = found.args().iter().map(|a| toml_string(a)).collect();
            let mut text = format!(
                "[mcp_servers.local-mcp]\ncommand = {}\nargs = [{}]\n",
                toml_string(&binary),
                args.join(", ")
            );
            if let Some(db) = t.db {
                text.push_str(&format!(
                    "env = {{ DB_PATH = {} }}\n",
                    toml_string(&db.display().to_string())
                ));
            }
            text.push_str("tool_timeout_sec = 3600\n");
            (
                text,
                format!(
                    "Append to ~/.codex/config.toml. tool_timeout_sec must stay above the wait setting (default 10 s). {}",
                    found.note()
                ),
            )
        }
        (ClientKind::Codex, TransportKind::Http) => {
            let mut text = format!("[mcp_servers.local-mcp]\nurl = {}\n", toml_string(&url));
            if let Some(a) = &auth {
                text.push_str(&format!(
                    "http_headers = {{ Authorization = {} }}\n",
                    toml_string(a)
                ));
            }
            text.push_str("tool_timeout_sec = 3600\n");
            (
                text,
                format!(
                    "Append to .codex/config.toml in this project (or ~/.codex/config.toml); start the server with `local-mcp serve`. {http_note}"
                ),
            )
        }
    }
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        // `type` first reads better in VS Code's file, so rebuild with it leading.
        let mut out = e;
        out.extend(std::mem::take(b));
        return Value::Object(out);
    }
    base
}

fn pretty(value: &Value) -> String {
    format!("{value:#}\n")
}

fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=@+".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    fn http(token: Option<&str>) -> HttpConfig {
        HttpConfig {
            host: "127.0.0.1".into(),
            port: 8123,
            stateless: true,
            api_token: token.map(str::to_owned),
            allowed_hosts: vec![],
        }
    }

    #[test]
    fn every_client_and_transport_names_the_binary_or_the_url() {
        let http = http(Some("s3cret"));
        let target = Target {
            binary: PathBuf::from("/opt/bin/local-mcp"),
            db: None,
            http: &http,
            queue: None,
            here: Some(QueueName::parse("shop").unwrap()),
        };
        for client in ClientKind::value_variants() {
            let (text, note) = render(*client, TransportKind::Stdio, &target);
            assert!(text.contains("/opt/bin/local-mcp"), "{client:?}: {text}");
            assert!(text.contains("stdio"), "{client:?}: {text}");
            assert!(!note.is_empty());
            let (text, _) = render(*client, TransportKind::Http, &target);
            assert!(
                text.contains("http://127.0.0.1:8123/mcp/q/shop"),
                "{client:?}: {text}"
            );
            assert!(text.contains("Bearer s3cret"), "{client:?}: {text}");
        }
    }

    #[test]
    fn json_configs_parse_and_have_the_expected_shape() {
        let http = http(None);
        let db = PathBuf::from("/data/q.sqlite3");
        let target = Target {
            binary: PathBuf::from("/bin/local-mcp"),
            db: Some(&db),
            http: &http,
            queue: None,
            here: None,
        };
        let (text, _) = render(ClientKind::Vscode, TransportKind::Stdio, &target);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({"servers": {"local-mcp": {
                "type": "stdio", "command": "/bin/local-mcp",
                "args": ["stdio", "--project", "${workspaceFolder}"],
                "env": {"DB_PATH": "/data/q.sqlite3"}
            }}})
        );
        let (text, _) = render(ClientKind::Cursor, TransportKind::Http, &target);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({"mcpServers": {"local-mcp": {"url": "http://127.0.0.1:8123/mcp"}}})
        );
        let (text, _) = render(ClientKind::Codex, TransportKind::Stdio, &target);
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            parsed["mcp_servers"]["local-mcp"]["args"][0].as_str(),
            Some("stdio")
        );
        let (text, _) = render(ClientKind::ClaudeCode, TransportKind::Stdio, &target);
        assert_eq!(
            text,
            "claude mcp add --scope project local-mcp --env DB_PATH=/data/q.sqlite3 -- /bin/local-mcp stdio\n"
        );
    }

    #[test]
    fn a_named_queue_goes_into_the_arguments_and_the_url() {
        let http = http(None);
        let target = Target {
            binary: PathBuf::from("/bin/local-mcp"),
            db: None,
            http: &http,
            queue: Some(QueueName::parse("review").unwrap()),
            here: Some(QueueName::parse("shop").unwrap()),
        };
        for client in ClientKind::value_variants() {
            let (text, note) = render(*client, TransportKind::Stdio, &target);
            assert!(text.contains("--queue"), "{client:?}: {text}");
            assert!(text.contains("review"), "{client:?}: {text}");
            assert!(!text.contains("workspaceFolder"), "{client:?}: {text}");
            assert!(note.contains("\"review\""), "{client:?}: {note}");
            let (text, _) = render(*client, TransportKind::Http, &target);
            assert!(text.contains("/mcp/q/review"), "{client:?}: {text}");
        }
        let (text, _) = render(ClientKind::Codex, TransportKind::Stdio, &target);
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        let args = parsed["mcp_servers"]["local-mcp"]["args"]
            .as_array()
            .unwrap();
        assert_eq!(args.len(), 3);
        assert_eq!(args[2].as_str(), Some("review"));
        // Outside git with no name given, a URL is the plain one, on `default`.
        let plain = Target {
            queue: None,
            here: None,
            ..target
        };
        let (text, note) = render(ClientKind::Cursor, TransportKind::Http, &plain);
        assert!(text.contains("8123/mcp\""), "{text}");
        assert!(note.contains("`default`"), "{note}");
    }
}
