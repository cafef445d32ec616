//! Configuration: merges flags and environment (already combined by clap), the
//! TOML config file and the built-in defaults, in that order of precedence, into
//! one checked [`Config`].

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use queue_core::{DEFAULT_EMPTY_RESPONSE, Settings};
use serde::Deserialize;

use local_mcp_server::{AuditConfig, Config as ServerConfig, HttpConfig};

use crate::cli::{AssetsArgs, GlobalArgs, HttpArgs, LogFormat};

/// The keys a config file may hold: the environment variable names in lower case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    host: Option<String>,
    http_port: Option<u16>,
    db_path: Option<PathBuf>,
    db_url: Option<String>,
    log_level: Option<String>,
    log_format: Option<String>,
    log_file: Option<PathBuf>,
    default_wait_seconds: Option<u64>,
    default_empty_response: Option<String>,
    agent_stale_after_seconds: Option<u64>,
    mcp_stateless: Option<bool>,
    api_token: Option<String>,
    allowed_hosts: Option<Vec<String>>,
    audit_log: Option<String>,
    audit_content: Option<String>,
    assets_dir: Option<PathBuf>,
}

impl FileConfig {
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read the config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }
}

/// Everything a command needs, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// What the server and the queue need.
    pub(crate) server: ServerConfig,
    pub(crate) log_level: String,
    pub(crate) log_format: LogFormat,
    pub(crate) log_file: Option<PathBuf>,
    /// Where each of `server.defaults` came from, for `config get`.
    pub(crate) default_sources: DefaultSources,
}

/// Where each start-up default came from, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DefaultSources {
    pub(crate) default_wait_seconds: &'static str,
    pub(crate) default_empty_response: &'static str,
    pub(crate) agent_stale_after_seconds: &'static str,
}

/// Clap merges a flag and its environment variable, so the two are not told apart.
fn source_of(flag: bool, file: bool) -> &'static str {
    if flag {
        "flag or environment"
    } else if file {
        "config file"
    } else {
        "built-in default"
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Resolves the configuration of a command.
    pub(crate) fn resolve(
        global: &GlobalArgs,
        http: Option<&HttpArgs>,
        assets: Option<&AssetsArgs>,
    ) -> anyhow::Result<Self> {
        let file = match &global.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let http_args = http.cloned().unwrap_or_default();
        let assets = assets.cloned().unwrap_or_default();
        Self::merge(global, &http_args, &assets, file, &Env::process())
    }

    fn merge(
        global: &GlobalArgs,
        http: &HttpArgs,
        assets: &AssetsArgs,
        file: FileConfig,
        env: &Env,
    ) -> anyhow::Result<Self> {
        let db_path = match global.db.clone().or(file.db_path) {
            Some(path) => path,
            None => default_db_path(env)?,
        };
        let log_format = match (global.log_format, file.log_format.as_deref()) {
            (Some(format), _) => format,
            (None, None) => LogFormat::Text,
            (None, Some(text)) => match text.to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => bail!("invalid log_format {other:?} in the config file: use text or json"),
            },
        };
        let builtin = Settings::default();
        let default_sources = DefaultSources {
            default_wait_seconds: source_of(
                global.default_wait_seconds.is_some(),
                file.default_wait_seconds.is_some(),
            ),
            default_empty_response: source_of(
                global.default_empty_response.is_some(),
                file.default_empty_response.is_some(),
            ),
            agent_stale_after_seconds: source_of(
                global.agent_stale_after_seconds.is_some(),
                file.agent_stale_after_seconds.is_some(),
            ),
        };
        let wait = global
            .default_wait_seconds
            .or(file.default_wait_seconds)
            .unwrap_or(u64::from(builtin.default_wait_seconds));
        let empty = global
            .default_empty_response
            .clone()
            .or(file.default_empty_response)
            .unwrap_or_else(|| DEFAULT_EMPTY_RESPONSE.to_owned());
        let stale = global
            .agent_stale_after_seconds
            .or(file.agent_stale_after_seconds)
            .unwrap_or(u64::from(builtin.agent_stale_after_seconds));
        let allowed_hosts = http
            .allowed_hosts
            .clone()
            .or(file.allowed_hosts)
            .unwrap_or_default()
            .into_iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect();
        let audit = AuditConfig {
            path: audit_path(global.audit_log.clone(), file.audit_log, &db_path),
            content: match (global.audit_content, file.audit_content.as_deref()) {
                (Some(content), _) => content.into(),
                (None, None) => audit_log::AuditContent::Hash,
                (None, Some(text)) => match text.trim().to_ascii_lowercase().as_str() {
                    "hash" => audit_log::AuditContent::Hash,
                    "full" => audit_log::AuditContent::Full,
                    _ => bail!(
                        "invalid audit_content {text:?} in the config file: use hash (SHA-256 \
                         and length of each text) or full (the text itself too)"
                    ),
                },
            },
        };
        let server = ServerConfig {
            db_path,
            // Empty counts as unset, so `DB_URL=` falls back to the SQLite file.
            db_url: non_empty(global.db_url.clone()).or(non_empty(file.db_url)),
            defaults: Settings::clamped(wait, &empty, stale),
            http: HttpConfig {
                host: non_empty(http.host.clone())
                    .or(non_empty(file.host))
                    .unwrap_or_else(|| "127.0.0.1".to_owned()),
                port: http.port.or(file.http_port).unwrap_or(8000),
                stateless: http.stateless.or(file.mcp_stateless).unwrap_or(true),
                api_token: non_empty(http.api_token.clone()).or(non_empty(file.api_token)),
                allowed_hosts,
            },
            audit,
            // Empty counts as unset, as for AUDIT_LOG.
            assets_dir: assets
                .assets_dir
                .clone()
                .filter(|p| !p.as_os_str().is_empty())
                .or(file.assets_dir.filter(|p| !p.as_os_str().is_empty())),
        };
        Ok(Config {
            server,
            log_level: global
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".to_owned()),
            log_format,
            log_file: global.log_file.clone().or(file.log_file),
            default_sources,
        })
    }
}

/// `off` (any case) turns the audit trail off; an empty value counts as unset, so
/// `AUDIT_LOG=` in a client's config falls back to the file and the default.
fn audit_path(flag: Option<PathBuf>, file: Option<String>, db_path: &Path) -> Option<PathBuf> {
    let given = flag
        .filter(|p| !p.as_os_str().is_empty())
        .or(file.filter(|p| !p.trim().is_empty()).map(PathBuf::from));
    match given {
        Some(path)
            if path
                .to_str()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("off")) =>
        {
            None
        }
        Some(path) => Some(path),
        None => Some(
            db_path
                .parent()
                .unwrap_or(Path::new(""))
                .join("audit.jsonl"),
        ),
    }
}

/// The environment variables the default paths depend on.
struct Env {
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
    local_app_data: Option<PathBuf>,
}

impl Env {
    fn process() -> Self {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Env {
            xdg_data_home: var("XDG_DATA_HOME"),
            home: var("HOME").or_else(|| var("USERPROFILE")),
            local_app_data: var("LOCALAPPDATA"),
        }
    }
}

/// `$XDG_DATA_HOME/local-mcp/local_mcp.sqlite3`, else under `~/.local/share`, so a
/// stdio process started from any directory finds the same queue. On Windows
/// without either, `%LOCALAPPDATA%`.
fn default_db_path(env: &Env) -> anyhow::Result<PathBuf> {
    let base = if let Some(xdg) = &env.xdg_data_home {
        xdg.clone()
    } else if let Some(home) = &env.home {
        home.join(".local").join("share")
    } else if let Some(local) = &env.local_app_data {
        local.clone()
    } else {
        bail!("cannot find a home folder for the default database; set DB_PATH or pass --db");
    };
    Ok(base.join("local-mcp").join("local_mcp.sqlite3"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::AuditContent;

    fn env() -> Env {
        Env {
            xdg_data_home: None,
            home: Some(PathBuf::from("/home/me")),
            local_app_data: None,
        }
    }

    fn global() -> GlobalArgs {
        GlobalArgs {
            config: None,
            db: None,
            db_url: None,
            log_level: None,
            log_format: None,
            log_file: None,
            default_wait_seconds: None,
            default_empty_response: None,
            agent_stale_after_seconds: None,
            audit_log: None,
            audit_content: None,
        }
    }

    // Built by hand rather than parsed: clap would also read this process's
    // environment (HOST, HTTP_PORT, ...), which the tests must not depend on.
    fn resolve(http: HttpArgs, file: &str) -> anyhow::Result<Config> {
        Config::merge(
            &global(),
            &http,
            &AssetsArgs::default(),
            FileConfig::parse(file)?,
            &env(),
        )
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = resolve(HttpArgs::default(), "").unwrap();
        assert_eq!(
            config.server.db_path,
            PathBuf::from("/home/me/.local/share/local-mcp/local_mcp.sqlite3")
        );
        assert_eq!(config.server.http.host, "127.0.0.1");
        assert_eq!(config.server.http.port, 8000);
        assert!(config.server.http.stateless);
        assert_eq!(config.server.defaults, Settings::default());
        assert_eq!(config.log_level, "info");
    }

    #[test]
    fn db_url_picks_postgres_from_the_flag_or_the_file_and_hides_its_password() {
        let sqlite = resolve(HttpArgs::default(), "").unwrap();
        assert_eq!(sqlite.server.db_url, None);
        assert_eq!(
            sqlite.server.database(),
            "/home/me/.local/share/local-mcp/local_mcp.sqlite3"
        );
        let file = "db_url = \"postgres://me:pw@db/queue\"\n";
        let from_file = resolve(HttpArgs::default(), file).unwrap();
        assert_eq!(
            from_file.server.db_url.as_deref(),
            Some("postgres://me:pw@db/queue")
        );
        assert_eq!(from_file.server.database(), "postgres://me:***@db/queue");
        let flag = GlobalArgs {
            db_url: Some("postgres://other/q".into()),
            ..global()
        };
        let config = Config::merge(
            &flag,
            &HttpArgs::default(),
            &AssetsArgs::default(),
            FileConfig::parse(file).unwrap(),
            &env(),
        )
        .unwrap();
        assert_eq!(config.server.db_url.as_deref(), Some("postgres://other/q"));
        // `DB_URL=` in a client's config counts as unset.
        let empty = GlobalArgs {
            db_url: Some(" ".into()),
            ..global()
        };
        let config = Config::merge(
            &empty,
            &HttpArgs::default(),
            &AssetsArgs::default(),
            FileConfig::default(),
            &env(),
        )
        .unwrap();
        assert_eq!(config.server.db_url, None);
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = "http_port = 9001\nhost = \"localhost\"\ndefault_wait_seconds = 99999\nmcp_stateless = false\n";
        let config = resolve(
            HttpArgs {
                port: Some(9002),
                ..HttpArgs::default()
            },
            file,
        )
        .unwrap();
        assert_eq!(config.server.http.port, 9002);
        assert_eq!(config.server.http.host, "localhost");
        assert!(!config.server.http.stateless);
        // Clamped to the allowed range, as the setting itself is.
        assert_eq!(config.server.defaults.default_wait_seconds, 86_400);
        assert_eq!(config.default_sources.default_wait_seconds, "config file");
        assert_eq!(
            config.default_sources.agent_stale_after_seconds,
            "built-in default"
        );
    }

    #[test]
    fn the_audit_log_sits_next_to_the_database_unless_moved_or_off() {
        let config = resolve(HttpArgs::default(), "").unwrap();
        assert_eq!(
            config.server.audit.path,
            Some(PathBuf::from("/home/me/.local/share/local-mcp/audit.jsonl"))
        );
        assert_eq!(config.server.audit.content, audit_log::AuditContent::Hash);

        let config = resolve(HttpArgs::default(), "db_path = \"q.db\"").unwrap();
        assert_eq!(config.server.audit.path, Some(PathBuf::from("audit.jsonl")));

        let file = "audit_log = \"/var/log/a.jsonl\"\naudit_content = \"FULL\"\n";
        let config = resolve(HttpArgs::default(), file).unwrap();
        assert_eq!(
            config.server.audit.path,
            Some(PathBuf::from("/var/log/a.jsonl"))
        );
        assert_eq!(config.server.audit.content, audit_log::AuditContent::Full);

        let global = GlobalArgs {
            audit_log: Some(PathBuf::from("Off")),
            audit_content: Some(AuditContent::Hash),
            ..global()
        };
        let config = Config::merge(
            &global,
            &HttpArgs::default(),
            &AssetsArgs::default(),
            FileConfig::parse(file).unwrap(),
            &env(),
        )
        .unwrap();
        assert_eq!(
            config.server.audit.path, None,
            "the flag wins and turns it off"
        );
        assert_eq!(config.server.audit.content, audit_log::AuditContent::Hash);
        assert_eq!(config.server.audit.describe(), "off");

        let err = resolve(HttpArgs::default(), "audit_content = \"clear\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid audit_content \"clear\""), "{err}");
    }

    #[test]
    fn the_assets_dir_flag_wins_over_the_file() {
        assert_eq!(
            resolve(HttpArgs::default(), "").unwrap().server.assets_dir,
            None
        );
        let file = "assets_dir = \"from/file\"";
        let config = resolve(HttpArgs::default(), file).unwrap();
        assert_eq!(config.server.assets_dir, Some(PathBuf::from("from/file")));
        let merged = |flag: &str| {
            let assets = AssetsArgs {
                assets_dir: Some(PathBuf::from(flag)),
            };
            let file = FileConfig::parse(file).unwrap();
            Config::merge(&global(), &HttpArgs::default(), &assets, file, &env())
                .unwrap()
                .server
                .assets_dir
        };
        assert_eq!(merged("from/flag"), Some(PathBuf::from("from/flag")));
        assert_eq!(
            merged(""),
            Some(PathBuf::from("from/file")),
            "empty is unset"
        );
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        let err = FileConfig::parse("htp_port = 1").unwrap_err().to_string();
        assert!(err.contains("unknown field `htp_port`"), "{err}");
    }

    #[test]
    fn xdg_data_home_wins_over_home() {
        let env = Env {
            xdg_data_home: Some(PathBuf::from("/xdg")),
            ..env()
        };
        assert_eq!(
            default_db_path(&env).unwrap(),
            PathBuf::from("/xdg/local-mcp/local_mcp.sqlite3")
        );
        let none = Env {
            xdg_data_home: None,
            home: None,
            local_app_data: None,
        };
        assert!(
            default_db_path(&none)
                .unwrap_err()
                .to_string()
                .contains("DB_PATH")
        );
    }
}
