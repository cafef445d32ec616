//! Live events over SSE (SPEC §4), read off the streaming body as a browser would:
//! every event type with its full payload after the action that causes it, ids that
//! only grow, replay after `Last-Event-ID`, refetch when replay is impossible,
//! heartbeats, and coalesced `status.changed`.
//!
//! Every wait reads frames until the expected one arrives (bounded by
//! `support::PATIENCE`), never a fixed sleep.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use actix_web::http::{Method, header};
use queue_core::{FetchOutcome, Timestamp};
use serde_json::{Value, json};

use crate::support::{EventStream, Frame, Server, Setup, id_of};

/// Checks one message: an id, an event name, and `data` holding exactly the
/// envelope `{"type","timestamp","data"}` whose type is the event name.
#[track_caller]
fn assert_message(frame: &Frame) {
    assert!(frame.id.is_some(), "a message has an id: {frame:?}");
    let event = frame
        .event
        .as_deref()
        .unwrap_or_else(|| panic!("a message has an event: {frame:?}"));
    let envelope = frame
        .data
        .as_ref()
        .unwrap_or_else(|| panic!("a message has data: {frame:?}"));
    let keys: BTreeSet<_> = envelope
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    let mut expected = BTreeSet::from(["type", "timestamp", "data"]);
    if envelope.get("refetch").is_some() {
        // Only a refetch notice carries the flag, and only as `true`.
        assert_eq!(event, "status.changed", "{frame:?}");
        assert_eq!(envelope["refetch"], true, "{frame:?}");
        expected.insert("refetch");
    }
    assert_eq!(keys, expected, "{frame:?}");
    assert_eq!(envelope["type"], event, "{frame:?}");
    let at = envelope["timestamp"].as_str().unwrap_or_default();
    Timestamp::parse_rfc3339(at).unwrap_or_else(|e| panic!("timestamp {at:?}: {e}"));
}

/// Checks every message the stream carried and that ids strictly increase.
#[track_caller]
fn assert_well_formed(stream: &EventStream) {
    let mut last = 0;
    for frame in stream.messages() {
        assert_message(frame);
        let id = frame.id.unwrap_or_default();
        assert!(id > last, "id {id} after {last}: {:#?}", stream.seen);
        last = id;
    }
}

/// The `/api/status` object's shape, whatever its values.
#[track_caller]
fn assert_status_shape(status: &Value) {
    let keys: BTreeSet<_> = status
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["server", "agent", "agents", "queue", "queues", "settings"]),
        "{status}"
    );
    assert_eq!(status["server"]["status"], "up", "{status}");
}

fn pending_count(frame: &Frame) -> Option<u64> {
    frame.payload()["queue"]["pending_count"].as_u64()
}

#[actix_web::test]
async fn the_stream_is_text_event_stream_and_opens_at_once() {
    let srv = Server::start().await;
    let mut stream = srv.events(None).await;
    assert_eq!(stream.content_type, "text/event-stream");
    assert_eq!(
        stream
            .headers
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok()),
        Some("no-cache")
    );
    // The first block tells the browser how soon to reconnect and proves the stream
    // is open before anything happens.
    let first = stream.next_matching("the opening block", |_| true).await;
    assert!(first.retry.is_some(), "{first:?}");
    assert!(first.id.is_none() && first.event.is_none(), "{first:?}");
    assert!(!first.comments.is_empty(), "{first:?}");
}

#[actix_web::test]
async fn every_change_is_announced_with_its_full_payload() {
    let srv = Server::start().await;
    let mut stream = srv.events(None).await;

    let a = srv.add("first").await;
    let created = stream.next_event("instruction.created").await;
    assert_eq!(*created.payload(), a);

    let reply = srv
        .patch(
            &format!("/api/instructions/{}", id_of(&a)),
            &json!({"content": "first, reworded"}),
        )
        .await;
    let a = reply.json()["item"].clone();
    let updated = stream.next_event("instruction.updated").await;
    assert_eq!(*updated.payload(), a);

    let b = srv.add("second").await;
    assert_eq!(*stream.next_event("instruction.created").await.payload(), b);
    srv.post(
        "/api/instructions/reorder",
        &json!({"ids": [id_of(&b), id_of(&a)]}),
    )
    .await
    .expect_status(200);
    let reordered = stream.next_event("instruction.reordered").await;
    assert_eq!(
        *reordered.payload(),
        json!({"queue": "default", "ids": [id_of(&b), id_of(&a)]})
    );

    let config = srv
        .patch(
            "/api/config",
            &json!({"default_wait_seconds": 0, "default_empty_response": ""}),
        )
        .await
        .json();
    let config_updated = stream.next_event("config.updated").await;
    assert_eq!(*config_updated.payload(), config);

    // An agent's call: it starts (agent.updated, waiting), takes the head of the
    // queue (instruction.consumed), and returns (agent.updated, working).
    let fetch = srv.fetch("agent-1").await;
    let FetchOutcome::Instruction(taken) = fetch.outcome else {
        panic!("b is delivered: {fetch:?}");
    };
    assert_eq!(taken.id.to_string(), id_of(&b));
    let started = stream
        .next_matching("agent.updated while the call waits", |f| {
            f.is("agent.updated") && f.payload()["waiting"] == true
        })
        .await;
    let agent = started.payload();
    assert_eq!(agent["agent_id"], "agent-1");
    assert_eq!(agent["state"], "waiting");
    assert_eq!(agent["connected"], true);
    assert_eq!(agent["last_fetch_at"], Value::Null);
    assert!(agent["waiting_until"].is_string(), "{agent}");
    let consumed = stream.next_event("instruction.consumed").await;
    let b_now = srv.item(id_of(&b)).await;
    assert_eq!(*consumed.payload(), b_now);
    assert_eq!(b_now["status"], "consumed");
    assert_eq!(b_now["consumed_by_agent_id"], "agent-1");
    let returned = stream
        .next_matching("agent.updated once the call returned", |f| {
            f.is("agent.updated") && f.payload()["waiting"] == false
        })
        .await;
    let agent = returned.payload();
    let status = srv.get("/api/status").await.json();
    assert_eq!(
        *agent, status["agent"],
        "the event carries the agent's record"
    );
    assert_eq!(agent["state"], "working");
    assert_eq!(agent["last_result_type"], "instruction");

    // The reorder moved `a`; the event carries the item as it was when deleted.
    let a = srv.item(id_of(&a)).await;
    srv.delete(&format!("/api/instructions/{}", id_of(&a)))
        .await
        .expect_status(204);
    let deleted = stream.next_event("instruction.deleted").await;
    assert_eq!(*deleted.payload(), a);

    let copy = srv
        .send(Server::json_req(
            Method::POST,
            &format!("/api/instructions/{}/requeue", id_of(&b)),
            &json!({}),
        ))
        .await
        .json()["item"]
        .clone();
    let requeued = stream.next_event("instruction.created").await;
    assert_eq!(*requeued.payload(), copy);

    // The whole status follows once it settles: what GET /api/status says now,
    // with one pending (the copy) and one consumed.
    let status = srv.get("/api/status").await.json();
    assert_eq!(
        status["queue"],
        json!({"name": "default", "pending_count": 1, "consumed_count": 1})
    );
    let settled = stream
        .find("status.changed equal to GET /api/status", |f| {
            f.is("status.changed") && *f.payload() == status
        })
        .await;
    assert_status_shape(settled.payload());

    assert_well_formed(&stream);
    let kinds: BTreeSet<_> = stream
        .messages()
        .iter()
        .filter_map(|f| f.event.clone())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(
            [
                "instruction.created",
                "instruction.updated",
                "instruction.deleted",
                "instruction.consumed",
                "instruction.reordered",
                "config.updated",
                "agent.updated",
                "status.changed",
            ]
            .map(String::from)
        )
    );
}

#[actix_web::test]
async fn an_agent_going_stale_is_announced_without_any_request() {
    // Nothing stored changes when an agent goes quiet; the hub notices with time
    // alone. One second is the shortest threshold the settings allow.
    let srv = Server::start().await;
    srv.patch(
        "/api/config",
        &json!({"default_wait_seconds": 0, "agent_stale_after_seconds": 1}),
    )
    .await
    .expect_status(200);
    let mut stream = srv.events(None).await;
    srv.fetch("agent-1").await;
    let idle = stream
        .next_matching("agent.updated for the returned call", |f| {
            f.is("agent.updated") && f.payload()["state"] == "idle"
        })
        .await;
    assert_eq!(idle.payload()["connected"], true);
    let gone = stream
        .next_matching("agent.updated when the agent went stale", |f| {
            f.is("agent.updated") && f.payload()["state"] == "gone"
        })
        .await;
    let agent = gone.payload();
    assert_eq!(agent["agent_id"], "agent-1");
    assert_eq!(agent["connected"], false);
    assert_eq!(agent["waiting"], false);
    assert_eq!(agent["last_seen_at"], idle.payload()["last_seen_at"]);
    let status = stream
        .find("status.changed showing the agent gone", |f| {
            f.is("status.changed") && f.payload()["agent"]["state"] == "gone"
        })
        .await;
    assert_eq!(status.payload()["agent"]["connected"], false);
    assert_eq!(srv.get("/api/status").await.json()["agent"], *agent);
    assert_well_formed(&stream);
}

#[actix_web::test]
async fn an_empty_config_patch_announces_nothing() {
    let srv = Server::start().await;
    let mut stream = srv.events(None).await;
    srv.patch("/api/config", &json!({}))
        .await
        .expect_status(200);
    // A marker change after it: everything before the marker has been sent by then.
    let marker = srv.add("marker").await;
    let created = stream.next_event("instruction.created").await;
    assert_eq!(*created.payload(), marker);
    assert!(
        !stream.seen.iter().any(|f| f.is("config.updated")),
        "{:#?}",
        stream.seen
    );
}

/// Makes some history on a live stream and reads it until the hub has nothing
/// newer, so that the hub's newest id is the last one this stream saw.
async fn quiet_history(srv: &Server, stream: &mut EventStream) {
    let a = srv.add("one").await;
    srv.add("two").await;
    srv.add("three").await;
    srv.patch(
        &format!("/api/instructions/{}", id_of(&a)),
        &json!({"content": "one, edited"}),
    )
    .await
    .expect_status(200);
    stream.next_event("instruction.created").await;
    stream.next_event("instruction.created").await;
    stream.next_event("instruction.created").await;
    stream.next_event("instruction.updated").await;
    stream
        .find("status.changed with three pending", |f| {
            f.is("status.changed") && pending_count(f) == Some(3)
        })
        .await;
    // Nothing else is due (no agent, counts settled): read through the newest id.
    stream.read_through(srv.events.newest_id()).await;
    assert_eq!(
        stream.messages().last().and_then(|f| f.id),
        Some(srv.events.newest_id())
    );
}

#[actix_web::test]
async fn a_reconnect_with_last_event_id_gets_exactly_what_it_missed() {
    let srv = Server::start().await;
    let mut live = srv.events(None).await;
    quiet_history(&srv, &mut live).await;
    assert_well_formed(&live);
    let messages: Vec<Frame> = live.messages().into_iter().cloned().collect();
    assert!(messages.len() >= 5, "{messages:#?}");

    for seen in [0, 1, messages.len() - 2] {
        let last = messages[seen].id.expect("an id");
        let mut resumed = srv.events(Some(&last.to_string())).await;
        resumed.read_through(srv.events.newest_id()).await;
        let replayed: Vec<Frame> = resumed.messages().into_iter().cloned().collect();
        assert_eq!(
            replayed,
            messages[seen + 1..],
            "after id {last}, the replay is the rest, message for message"
        );
    }
}

#[actix_web::test]
async fn a_reconnect_that_missed_nothing_gets_only_new_messages() {
    let srv = Server::start().await;
    let mut live = srv.events(None).await;
    quiet_history(&srv, &mut live).await;
    let newest = srv.events.newest_id();

    let mut resumed = srv.events(Some(&newest.to_string())).await;
    let item = srv.add("after the reconnect").await;
    let first = resumed
        .next_matching("the first message", |f| f.id.is_some())
        .await;
    assert!(first.is("instruction.created"), "{first:?}");
    assert_eq!(*first.payload(), item);
    assert!(first.id > Some(newest));
}

#[actix_web::test]
async fn an_unknown_last_event_id_asks_for_a_refetch() {
    let srv = Server::start().await;
    let mut live = srv.events(None).await;
    quiet_history(&srv, &mut live).await;
    let newest = srv.events.newest_id();

    let far_future = (newest + 1_000_000).to_string();
    for last in ["1", "0", "abc", "", "-5", "1.5", far_future.as_str()] {
        let mut resumed = srv.events(Some(last)).await;
        let notice = resumed
            .next_matching("the refetch notice", |f| f.id.is_some())
            .await;
        assert!(notice.is("status.changed"), "{last:?}: {notice:?}");
        assert_message(&notice);
        assert_eq!(
            notice.data.as_ref().map(|d| &d["refetch"]),
            Some(&Value::Bool(true)),
            "{last:?}: {notice:?}"
        );
        assert_status_shape(notice.payload());
        assert_eq!(notice.payload()["queue"]["pending_count"], 3, "{last:?}");
        // A client that heeds the notice resumes from its id without a gap.
        assert_eq!(notice.id, Some(newest), "{last:?}");
    }
}

#[actix_web::test]
async fn an_id_older_than_the_ring_asks_for_a_refetch() {
    let srv = Setup::new().ring(4).start().await;
    let mut live = srv.events(None).await;
    let mut first = None;
    // Read as we go, so this stream itself never falls behind the small ring.
    for n in 0..8 {
        srv.add(&format!("item {n}")).await;
        let created = live.next_event("instruction.created").await;
        first = first.or(created.id);
    }
    let first = first.expect("an id").to_string();
    let mut resumed = srv.events(Some(&first)).await;
    let notice = resumed
        .next_matching("the refetch notice", |f| f.id.is_some())
        .await;
    assert!(notice.is("status.changed"), "{notice:?}");
    assert_message(&notice);
    assert_eq!(
        notice.data.as_ref().map(|d| &d["refetch"]),
        Some(&Value::Bool(true))
    );
    assert_status_shape(notice.payload());
}

#[actix_web::test]
async fn a_client_that_falls_behind_the_ring_is_told_to_refetch() {
    let srv = Setup::new().ring(4).start().await;
    let mut behind = srv.events(None).await;
    behind.next_matching("the opening block", |_| true).await;
    let mut witness = srv.events(None).await;
    for n in 0..8 {
        srv.add(&format!("item {n}")).await;
        witness.next_event("instruction.created").await;
    }
    // Eight messages went out while `behind` read nothing; the ring kept four.
    let next = behind
        .next_matching("the next message", |f| f.id.is_some())
        .await;
    assert!(next.is("status.changed"), "{next:?}");
    assert_eq!(
        next.data.as_ref().map(|d| &d["refetch"]),
        Some(&Value::Bool(true)),
        "{next:?}"
    );
    // After the notice the stream goes on live.
    let item = srv.add("after the gap").await;
    let created = behind.next_event("instruction.created").await;
    assert_eq!(*created.payload(), item);
    assert_well_formed(&behind);
}

#[actix_web::test]
async fn an_idle_stream_gets_heartbeat_comments() {
    let srv = Setup::new()
        .heartbeat(Duration::from_millis(50))
        .start()
        .await;
    let mut stream = srv.events(None).await;
    for _ in 0..2 {
        let beat = stream
            .next_matching("a heartbeat comment", |f| {
                f.id.is_none() && f.comments.iter().any(|c| c == "heartbeat")
            })
            .await;
        assert!(beat.event.is_none() && beat.data.is_none(), "{beat:?}");
    }
}

#[actix_web::test]
async fn status_changed_is_coalesced() {
    let srv = Server::start().await;
    let mut stream = srv.events(None).await;
    let n = 50;
    let started = Instant::now();
    for i in 0..n {
        srv.add(&format!("quick {i}")).await;
    }
    for _ in 0..n {
        stream.next_event("instruction.created").await;
    }
    stream
        .find("status.changed with every add counted", |f| {
            f.is("status.changed") && pending_count(f) == Some(n)
        })
        .await;
    let elapsed = started.elapsed();
    let statuses: Vec<&Frame> = stream
        .seen
        .iter()
        .filter(|f| f.is("status.changed"))
        .collect();
    // At most one per 250 ms, plus the one that may go out at once.
    let bound = usize::try_from(elapsed.as_millis() / 250).unwrap_or(usize::MAX) + 2;
    assert!(
        statuses.len() <= bound && statuses.len() < usize::try_from(n / 2).unwrap_or(0),
        "{} status.changed for {n} adds in {elapsed:?}",
        statuses.len()
    );
    for pair in statuses.windows(2) {
        let at = |f: &Frame| {
            let text = f.data.as_ref().map(|d| d["timestamp"].clone());
            Timestamp::parse_rfc3339(text.as_ref().and_then(Value::as_str).unwrap_or_default())
                .expect("a timestamp")
        };
        let gap = at(pair[1]).micros_since(at(pair[0]));
        // 250 ms apart by the monotonic clock; the wall clock may lag it slightly.
        assert!(gap >= 200_000, "status.changed only {gap} µs apart");
    }
    assert_well_formed(&stream);
}

#[actix_web::test]
async fn changes_made_below_the_api_are_announced_too() {
    // The service is shared with the MCP side (and, through the store, other
    // processes): what it does shows up live without going through HTTP.
    let srv = Server::start().await;
    let mut stream = srv.events(None).await;
    let item = srv.service.add("from the terminal").await.expect("added");
    let created = stream.next_event("instruction.created").await;
    assert_eq!(created.payload()["id"], item.id.to_string());
    assert_eq!(*created.payload(), srv.item(&item.id.to_string()).await);
}

#[actix_web::test]
async fn streams_end_when_the_server_shuts_down() {
    let srv = Server::start().await;
    let mut stream = srv.events(None).await;
    stream.next_matching("the opening block", |_| true).await;
    srv.service.shutdown();
    stream.expect_end().await;
}

/// Every instruction and agent message names its queue; a stream asked for one
/// queue leaves the others' out but still gets the status.
#[actix_web::test]
async fn a_stream_of_one_queue_carries_only_that_queue() {
    let srv = Server::start().await;
    let mut all = srv.events(None).await;
    let mut web = srv
        .events_with(Server::req(Method::GET, "/api/events?queue=web"), None)
        .await;
    let api = srv
        .post(
            "/api/instructions",
            &json!({"content": "for api", "queue": "api"}),
        )
        .await
        .json();
    let mine = srv
        .post(
            "/api/instructions",
            &json!({"content": "for web", "queue": "web", "to_agent_id": "anna"}),
        )
        .await
        .json();
    let seen_all = all.next_event("instruction.created").await;
    assert_eq!(seen_all.payload()["queue"], "api");
    let seen_all = all.next_event("instruction.created").await;
    assert_eq!(seen_all.payload()["queue"], "web");
    assert_eq!(seen_all.payload()["to_agent_id"], "anna");
    // The web stream's first instruction message is web's; api's never comes.
    let seen_web = web.next_event("instruction.created").await;
    assert_eq!(seen_web.payload()["id"], mine["item"]["id"]);
    let status = web.next_event("status.changed").await;
    let queues: Vec<_> = status.payload()["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(queues, ["api", "default", "web"]);
    srv.post(
        "/api/instructions/reorder",
        &json!({"queue": "api", "ids": [api["item"]["id"]]}),
    )
    .await
    .expect_status(200);
    let reordered = all.next_event("instruction.reordered").await;
    assert_eq!(reordered.payload()["queue"], "api");
    // A marker on web, after which the api reorder would have shown if it came.
    srv.post(
        "/api/instructions",
        &json!({"content": "marker", "queue": "web"}),
    )
    .await
    .expect_status(201);
    web.next_matching("the marker", |f| {
        f.is("instruction.created") && f.payload()["content"] == "marker"
    })
    .await;
    assert!(
        !web.messages().iter().any(|f| f.payload()["queue"] == "api"),
        "{:#?}",
        web.seen
    );
    assert_well_formed(&web);
}
