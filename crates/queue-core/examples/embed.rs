//! An embedder's view of queue-core: an in-memory queue, a person adding
//! instructions, and an agent loop taking them oldest first.
//!
//! Run with `cargo run -p queue-core --example embed`.
#![allow(
    clippy::print_stdout,
    reason = "printing results is this program's job"
)]

use std::sync::Arc;

use queue_core::{AgentId, FetchOutcome, MemoryStore, Service, SettingsPatch};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), queue_core::QueueError> {
    let service = Service::builder(Arc::new(MemoryStore::new())).build()?;
    // Don't make the demo wait the default 10 s when the queue runs dry.
    service
        .update_settings(SettingsPatch::new(Some(0), None, None)?)
        .await?;

    // The watcher publishes change events; an embedder spawns it once.
    let watcher = tokio::spawn({
        let service = service.clone();
        async move { service.watch().await }
    });
    let mut events = service.subscribe();

    for text in ["write the failing test", "make it pass", "refactor"] {
        service.add(text).await?;
    }

    let agent = AgentId::parse("example-agent")?;
    loop {
        let fetch = service.next_instruction(agent.clone()).await?;
        match fetch.outcome {
            FetchOutcome::Instruction(item) => println!(
                "agent took {:?} ({} left)",
                item.content.as_str(),
                fetch.remaining_pending
            ),
            FetchOutcome::Empty | FetchOutcome::DefaultResponse(_) => {
                println!("queue empty; a real agent would call again");
                break;
            }
        }
    }

    service.shutdown();
    let _ = watcher.await;
    while let Ok(event) = events.try_recv() {
        println!("event #{}: {}", event.seq, event.change.event_type());
    }
    Ok(())
}
