//! Terminal commands on the shared queue, no server needed: `add` and `list`.

use std::io::{Read, Write};

use anyhow::{Context, bail};
use queue_core::{Instruction, Page, QueueError, Service, StatusFilter};
use serde_json::json;

use crate::cli::{AddArgs, ListArgs, StatusArg};

/// Writes to stdout; a closed pipe (`local-mcp list | head`) is not an error.
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("could not write to standard output"),
    }
}

pub(crate) async fn add(service: &Service, args: &AddArgs) -> anyhow::Result<()> {
    let text = if args.text == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("could not read the instruction from standard input")?;
        text
    } else {
        args.text.clone()
    };
    let item = match service.add(&text).await {
        Ok(item) => item,
        Err(QueueError::Validation(e)) => bail!("cannot queue this instruction: {}", e.message),
        Err(e) => return Err(e).context("could not queue the instruction"),
    };
    let pending = service.counts().await?.pending;
    print(&format!("queued {} ({} pending)\n", item.id, pending))
}

pub(crate) async fn list(service: &Service, args: &ListArgs) -> anyhow::Result<()> {
    let filter = match args.status {
        StatusArg::Pending => StatusFilter::Pending,
        StatusArg::Consumed => StatusFilter::Consumed,
        StatusArg::All => StatusFilter::All,
    };
    let listing = service
        .list(
            filter,
            Page {
                offset: 0,
                limit: args.limit,
            },
        )
        .await
        .context("could not read the queue")?;
    if args.json {
        let items: Vec<_> = listing.items.iter().map(http_api::item_json).collect();
        let body = json!({ "items": items, "total": listing.total });
        return print(&format!("{body:#}\n"));
    }
    if listing.items.is_empty() {
        let what = match args.status {
            StatusArg::Pending => "No pending instructions. Queue one with: local-mcp add \"...\"",
            StatusArg::Consumed => "No instruction has been delivered yet.",
            StatusArg::All => {
                "The queue is empty. Queue an instruction with: local-mcp add \"...\""
            }
        };
        return print(&format!("{what}\n"));
    }
    let mut text = String::new();
    for item in &listing.items {
        text.push_str(&row(item));
        text.push('\n');
    }
    if (listing.items.len() as u64) < listing.total {
        text.push_str(&format!(
            "({} of {} shown)\n",
            listing.items.len(),
            listing.total
        ));
    }
    print(&text)
}

fn row(item: &Instruction) -> String {
    let when = item.consumed_at.unwrap_or(item.created_at).to_rfc3339();
    let when = when.get(..19).unwrap_or(&when).replace('T', " ");
    let first_line = item.content.as_str().lines().next().unwrap_or("");
    let mut summary: String = first_line.chars().take(72).collect();
    if summary.len() < item.content.as_str().len() {
        summary.push('…');
    }
    let by = item
        .consumed_by
        .as_ref()
        .map(|a| format!(" by {a}"))
        .unwrap_or_default();
    format!(
        "{:<8} {}  {}  {summary}{by}",
        item.status.as_str(),
        &item.id.to_string()[..8],
        when
    )
}
