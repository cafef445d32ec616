//! Tracing set-up: logs go to stderr (never stdout, which belongs to JSON-RPC in
//! stdio mode), as text or JSON lines, and optionally also to a file.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};

use crate::cli::LogFormat;

/// Turns `LOG_LEVEL` into a filter: a plain level in any case (`warning` meaning
/// `warn`), or a `RUST_LOG`-style directive list.
pub(crate) fn filter(level: &str) -> anyhow::Result<EnvFilter> {
    let trimmed = level.trim();
    let lower = trimmed.to_ascii_lowercase();
    let directive = match lower.as_str() {
        "" => "info".to_owned(),
        "warning" => "warn".to_owned(),
        "error" | "warn" | "info" | "debug" | "trace" | "off" => lower,
        _ => trimmed.to_owned(),
    };
    EnvFilter::builder()
        .parse(&directive)
        .with_context(|| {
            format!(
                "invalid LOG_LEVEL {level:?}: use error, warn, info, debug or trace, or a filter such as `info,local_mcp=debug`"
            )
        })
}

/// Installs the global subscriber.
pub(crate) fn init(level: &str, format: LogFormat, file: Option<&Path>) -> anyhow::Result<()> {
    let filter = filter(level)?;
    let ansi = file.is_none() && std::io::stderr().is_terminal();
    let writer = match file {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("could not create the folder for LOG_FILE {}", dir.display())
                })?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("could not open LOG_FILE {}", path.display()))?;
            BoxMakeWriter::new(std::io::stderr.and(Arc::new(file)))
        }
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        // Otherwise a failed write is reported with `eprintln!`, which panics when
        // stderr is a closed pipe: a client or test that stops reading our stderr
        // would kill the process at its next log line.
        .log_internal_errors(false);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("could not set up logging: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_accepted_in_any_case_and_filters_too() {
        for level in [
            "error",
            "WARN",
            "warning",
            "Info",
            "debug",
            "TRACE",
            "info,local_mcp=debug",
        ] {
            assert!(filter(level).is_ok(), "{level}");
        }
        let err = format!("{:#}", filter("local_mcp=shouting").unwrap_err());
        assert!(err.contains("invalid LOG_LEVEL"), "{err}");
    }
}
