//! `local-mcp stdio`: which queue the agent's calls go to, from the flags and the
//! working directory; the serving itself is `local_mcp_server::stdio`.

use std::path::Path;

use anyhow::Context;
use mcp_adapter::QueueChoice;
use mcp_adapter::project::{queue_of_project, queue_of_working_dir};
use queue_core::QueueName;

use crate::cli::StdioArgs;
use crate::config::Config;

/// How this process's agent finds a queue when its call names none (README,
/// "Which queue an agent uses"): `--queue`, else `--project`'s project, else the
/// client's roots, else the working directory's project, else `default`. A
/// `queue` argument in the call beats all of these.
pub(crate) fn queue_choice(args: &StdioArgs) -> anyhow::Result<QueueChoice> {
    let cwd = std::env::current_dir().ok();
    let (choice, from) = choose(args.queue.clone(), args.project.as_deref(), cwd.as_deref())?;
    tracing::info!(
        queue = choice.fixed.as_ref().unwrap_or(&choice.fallback).as_str(),
        roots = choice.ask_roots,
        "the agent's queue comes from {from}"
    );
    Ok(choice)
}

/// [`queue_choice`] with the working directory given; also says where the queue
/// came from, for the log.
fn choose(
    queue: Option<QueueName>,
    project: Option<&Path>,
    cwd: Option<&Path>,
) -> anyhow::Result<(QueueChoice, &'static str)> {
    if let Some(queue) = queue {
        let choice = QueueChoice {
            fixed: Some(queue),
            ask_roots: false,
            ..QueueChoice::default()
        };
        return Ok((choice, "--queue"));
    }
    if let Some(dir) = project {
        let shown = dir.display().to_string();
        if shown.contains("${") {
            anyhow::bail!(
                "--project {shown} still holds a variable: this MCP client does not expand it; \
                 give the folder itself, or --queue NAME"
            );
        }
        if !dir.is_dir() {
            anyhow::bail!("--project {shown} is not a folder");
        }
        let queue = queue_of_project(dir).with_context(|| {
            format!("the folder name of --project {shown} makes no queue name; give --queue NAME")
        })?;
        // The client said where it works; its roots would say the same.
        let choice = QueueChoice {
            fixed: Some(queue),
            ask_roots: false,
            ..QueueChoice::default()
        };
        return Ok((choice, "--project"));
    }
    let (fallback, from) = match cwd.and_then(queue_of_working_dir) {
        Some(queue) => (
            queue,
            "the client's roots, else the working directory's git root",
        ),
        None => (
            QueueName::default_queue(),
            "the client's roots, else `default` (the working directory is in no git repository)",
        ),
    };
    let choice = QueueChoice {
        fixed: None,
        ask_roots: true,
        fallback,
    };
    Ok((choice, from))
}

/// Serves one client until it closes stdin or a signal arrives; with `--ui`, also
/// the HTTP UI and API when the port is free.
pub(crate) async fn run(config: &Config, args: &StdioArgs) -> anyhow::Result<()> {
    let signal = crate::signal::shutdown_signal();
    let service = local_mcp_server::open_service(&config.server, "stdio")?;
    let choice = queue_choice(args)?;
    local_mcp_server::stdio::run(&config.server, service, args.ui, choice, signal).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> QueueName {
        QueueName::parse(text).unwrap()
    }

    #[test]
    fn the_flag_beats_the_project_which_beats_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let shop = dir.path().join("shop");
        let src = shop.join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir(shop.join(".git")).unwrap();
        let elsewhere = dir.path().join("notes");
        std::fs::create_dir(&elsewhere).unwrap();

        let (c, _) = choose(Some(name("fixed")), Some(&src), Some(&src)).unwrap();
        assert_eq!(c.fixed, Some(name("fixed")));
        assert!(!c.ask_roots);

        let (c, from) = choose(None, Some(&src), Some(&elsewhere)).unwrap();
        assert_eq!(
            (c.fixed, c.ask_roots, from),
            (Some(name("shop")), false, "--project")
        );
        // A project outside git is named after its own folder.
        let (c, _) = choose(None, Some(&elsewhere), None).unwrap();
        assert_eq!(c.fixed, Some(name("notes")));

        let (c, _) = choose(None, None, Some(&src)).unwrap();
        assert_eq!(
            (c.fixed, c.ask_roots, c.fallback),
            (None, true, name("shop"))
        );
        let (c, _) = choose(None, None, Some(&elsewhere)).unwrap();
        assert_eq!(c.fallback, QueueName::default_queue());
        let (c, _) = choose(None, None, None).unwrap();
        assert_eq!(c.fallback, QueueName::default_queue());
    }

    #[test]
    fn a_project_that_is_no_folder_is_refused_clearly() {
        let unexpanded = choose(None, Some(Path::new("${workspaceFolder}")), None).unwrap_err();
        assert!(
            unexpanded.to_string().contains("does not expand it"),
            "{unexpanded}"
        );
        let missing = choose(None, Some(Path::new("/no/such/folder")), None).unwrap_err();
        assert!(missing.to_string().contains("is not a folder"), "{missing}");
    }
}
