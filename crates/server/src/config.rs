//! What a server needs to know to run: the database, the start-up defaults, the
//! HTTP address and its guards, the audit trail and the UI's files. The binary
//! fills it from flags, environment and the config file; a test fills it by hand.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::bail;
use audit_log::AuditContent;
use queue_core::Settings;

/// A server's resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SQLite file that holds the queue (unless `db_url` is set).
    pub db_path: PathBuf,
    /// The PostgreSQL database that holds the queue instead of `db_path`.
    pub db_url: Option<String>,
    /// Runtime settings in force until a person saves others.
    pub defaults: Settings,
    /// Where HTTP listens and who may talk to it.
    pub http: HttpConfig,
    /// Where the audit trail goes.
    pub audit: AuditConfig,
    /// Serve the web UI from this folder instead of the embedded copy.
    pub assets_dir: Option<PathBuf>,
}

impl Config {
    /// A configuration for the SQLite file `db_path` with every other value at its
    /// default: loopback port 8000, stateless MCP, no token, no audit trail, the
    /// built-in UI.
    pub fn new(db_path: impl Into<PathBuf>) -> Self {
        Config {
            db_path: db_path.into(),
            db_url: None,
            defaults: Settings::default(),
            http: HttpConfig::default(),
            audit: AuditConfig {
                path: None,
                content: AuditContent::Hash,
            },
            assets_dir: None,
        }
    }

    /// Where the queue is kept, for logs and `status`: the SQLite file, or the
    /// PostgreSQL address with any password masked.
    pub fn database(&self) -> String {
        match &self.db_url {
            Some(url) => queue_store::PgStore::describe_url(url),
            None => self.db_path.display().to_string(),
        }
    }
}

/// Where the audit trail goes and how much of the text it keeps.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// `None` when `AUDIT_LOG=off`.
    pub path: Option<PathBuf>,
    /// Hash or full text.
    pub content: AuditContent,
}

impl AuditConfig {
    /// The path for the start-up log and error messages.
    pub fn describe(&self) -> String {
        match &self.path {
            Some(path) => path.display().to_string(),
            None => "off".to_owned(),
        }
    }
}

/// The HTTP side: address, MCP mode and the guards of SPEC §5.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The host or address to listen on.
    pub host: String,
    /// The port; 0 picks a free one.
    pub port: u16,
    /// MCP over HTTP without sessions.
    pub stateless: bool,
    /// The bearer token `/api` and `/mcp` demand, if any.
    pub api_token: Option<String>,
    /// Host names accepted beyond loopback.
    pub allowed_hosts: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            host: "127.0.0.1".to_owned(),
            port: 8000,
            stateless: true,
            api_token: None,
            allowed_hosts: Vec::new(),
        }
    }
}

impl HttpConfig {
    /// The address clients use to reach the server (loopback when bound to all).
    pub fn base_url(&self) -> String {
        let host = match self.host.as_str() {
            "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
            other => other,
        };
        if host.contains(':') && !host.starts_with('[') {
            format!("http://[{host}]:{}", self.port)
        } else {
            format!("http://{host}:{}", self.port)
        }
    }

    /// Refuses to expose the queue beyond this machine without a token.
    pub fn check_exposure(&self) -> anyhow::Result<()> {
        if is_loopback(&self.host) || self.api_token.is_some() {
            return Ok(());
        }
        bail!(
            "refusing to listen on {} without API_TOKEN: anyone who can reach that address could \
             push instructions into your agent. Set API_TOKEN (or --api-token), or listen on \
             127.0.0.1 and use `ssh -L` to reach it remotely.",
            self.host
        )
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_address_needs_a_token() {
        let mut http = HttpConfig {
            host: "0.0.0.0".into(),
            ..HttpConfig::default()
        };
        let err = http.check_exposure().unwrap_err().to_string();
        assert!(err.contains("without API_TOKEN"), "{err}");
        http.api_token = Some("secret".into());
        assert!(http.check_exposure().is_ok());
        for host in ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"] {
            http.api_token = None;
            http.host = host.into();
            assert!(http.check_exposure().is_ok(), "{host}");
        }
        assert_eq!(http.base_url(), "http://127.0.0.2:8000");
    }
}
