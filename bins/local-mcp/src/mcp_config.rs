//! `local-mcp mcp-config`: a ready-to-paste client configuration naming this
//! binary's real path (stdio) or the server's URL and token header (http). The
//! configuration goes to stdout, the advice on where to put it to stderr.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cli::{ClientKind, TransportKind};
use crate::config::HttpConfig;

/// What the printed configuration needs to know.
pub(crate) struct Target<'a> {
    pub(crate) binary: PathBuf,
    /// Passed to the spawned process when the database is not the default one.
    pub(crate) db: Option<&'a Path>,
    pub(crate) http: &'a HttpConfig,
}

/// The configuration text and a note on where it goes.
pub(crate) fn render(
    client: ClientKind,
    transport: TransportKind,
    t: &Target<'_>,
) -> (String, String) {
    let url = format!("{}/mcp", t.http.base_url());
    let binary = t.binary.display().to_string();
    let auth = t
        .http
        .api_token
        .as_ref()
        .map(|token| format!("Bearer {token}"));
    let env =
        t.db.map(|db| json!({ "DB_PATH": db.display().to_string() }));
    let stdio_entry = |extra: Value| {
        let mut entry = json!({ "command": binary, "args": ["stdio"] });
        if let Some(env) = &env {
            entry["env"] = env.clone();
        }
        merge(entry, extra)
    };
    let headers = auth.as_ref().map(|a| json!({ "Authorization": a }));
    match (client, transport) {
        (ClientKind::ClaudeCode, TransportKind::Stdio) => {
            let env_flag = t
                .db
                .map(|db| format!(" --env DB_PATH={}", shell_quote(&db.display().to_string())))
                .unwrap_or_default();
            (
                format!("claude mcp add local-mcp{env_flag} -- {} stdio\n", shell_quote(&binary)),
                "Run this in your project folder (add `--scope user` for every project).".into(),
            )
        }
        (ClientKind::ClaudeCode, TransportKind::Http) => {
            let header = auth
                .as_ref()
                .map(|a| format!(" --header {}", shell_quote(&format!("Authorization: {a}"))))
                .unwrap_or_default();
            (
                format!("claude mcp add --transport http local-mcp {url}{header}\n"),
                format!("Start the server first with `{binary} serve`, then run this in your project folder."),
            )
        }
        (ClientKind::ClaudeDesktop, TransportKind::Stdio) => (
            pretty(&json!({ "mcpServers": { "local-mcp": stdio_entry(json!({})) } })),
            "Merge into claude_desktop_config.json (Settings > Developer > Edit Config), then restart Claude Desktop.".into(),
        ),
        (ClientKind::ClaudeDesktop, TransportKind::Http) => {
            let mut args = vec![json!("-y"), json!("mcp-remote"), json!(url)];
            if let Some(a) = &auth {
                args.push(json!("--header"));
                args.push(json!(format!("Authorization:{a}")));
            }
            (
                pretty(&json!({ "mcpServers": { "local-mcp": { "command": "npx", "args": args } } })),
                "Claude Desktop's config file starts local servers only; this bridges to the running server through the npm package mcp-remote. The stdio transport needs no bridge.".into(),
            )
        }
        (ClientKind::Cursor, TransportKind::Stdio) => (
            pretty(&json!({ "mcpServers": { "local-mcp": stdio_entry(json!({})) } })),
            "Merge into ~/.cursor/mcp.json (all projects) or .cursor/mcp.json (this project).".into(),
        ),
        (ClientKind::Cursor, TransportKind::Http) => {
            let mut entry = json!({ "url": url });
            if let Some(h) = &headers {
                entry["headers"] = h.clone();
            }
            (
                pretty(&json!({ "mcpServers": { "local-mcp": entry } })),
                "Merge into ~/.cursor/mcp.json or .cursor/mcp.json; start the server with `local-mcp serve`.".into(),
            )
        }
        (ClientKind::Vscode, TransportKind::Stdio) => (
            pretty(&json!({ "servers": { "local-mcp": stdio_entry(json!({ "type": "stdio" })) } })),
            "Merge into .vscode/mcp.json in your workspace (or run `MCP: Open User Configuration`).".into(),
        ),
        (ClientKind::Vscode, TransportKind::Http) => {
            let mut entry = json!({ "type": "http", "url": url });
            if let Some(h) = &headers {
                entry["headers"] = h.clone();
            }
            (
                pretty(&json!({ "servers": { "local-mcp": entry } })),
                "Merge into .vscode/mcp.json; start the server with `local-mcp serve`.".into(),
            )
        }
        (ClientKind::Codex, TransportKind::Stdio) => {
            let mut text = format!(
                "[mcp_servers.local-mcp]\ncommand = {}\nargs = [\"stdio\"]\n",
                toml_string(&binary)
            );
            if let Some(db) = t.db {
                text.push_str(&format!("env = {{ DB_PATH = {} }}\n", toml_string(&db.display().to_string())));
            }
            text.push_str("tool_timeout_sec = 3600\n");
            (text, "Append to ~/.codex/config.toml. tool_timeout_sec must stay above the wait setting (default 10 s).".into())
        }
        (ClientKind::Codex, TransportKind::Http) => {
            let mut text = format!("[mcp_servers.local-mcp]\nurl = {}\n", toml_string(&url));
            if let Some(a) = &auth {
                text.push_str(&format!("http_headers = {{ Authorization = {} }}\n", toml_string(a)));
            }
            text.push_str("tool_timeout_sec = 3600\n");
            (text, "Append to ~/.codex/config.toml; start the server with `local-mcp serve`.".into())
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
        };
        for client in ClientKind::value_variants() {
            let (text, note) = render(*client, TransportKind::Stdio, &target);
            assert!(text.contains("/opt/bin/local-mcp"), "{client:?}: {text}");
            assert!(text.contains("stdio"), "{client:?}: {text}");
            assert!(!note.is_empty());
            let (text, _) = render(*client, TransportKind::Http, &target);
            assert!(
                text.contains("http://127.0.0.1:8123/mcp"),
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
        };
        let (text, _) = render(ClientKind::Vscode, TransportKind::Stdio, &target);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            json!({"servers": {"local-mcp": {
                "type": "stdio", "command": "/bin/local-mcp", "args": ["stdio"],
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
            "claude mcp add local-mcp --env DB_PATH=/data/q.sqlite3 -- /bin/local-mcp stdio\n"
        );
    }
}
