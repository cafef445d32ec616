//! Every route of SPEC §4 with the status codes and JSON bodies it documents.

use std::collections::BTreeSet;

use actix_web::http::Method;
use queue_core::{DEFAULT_EMPTY_RESPONSE, FetchOutcome, Timestamp};
use serde_json::{Value, json};

use crate::support::{MISSING_ID, Server, id_of, ids};

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("expected an object, got {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

#[track_caller]
fn assert_time(value: &Value) -> Timestamp {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("expected an RFC 3339 time, got {value}"));
    assert!(
        text.ends_with('Z') || text.ends_with("+00:00"),
        "{text} is UTC"
    );
    Timestamp::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

const ITEM_KEYS: [&str; 10] = [
    "id",
    "queue",
    "content",
    "to_agent_id",
    "status",
    "created_at",
    "updated_at",
    "consumed_at",
    "consumed_by_agent_id",
    "position",
];

const AGENT_KEYS: [&str; 9] = [
    "agent_id",
    "queue",
    "state",
    "connected",
    "waiting",
    "last_seen_at",
    "last_fetch_at",
    "last_result_type",
    "waiting_until",
];

#[track_caller]
fn assert_pending_item(item: &Value, content: &str) {
    assert_eq!(keys(item), BTreeSet::from(ITEM_KEYS), "{item}");
    queue_core::InstructionId::parse(id_of(item)).expect("the id is a UUID");
    assert_eq!(item["content"], content);
    assert_eq!(item["status"], "pending");
    assert_time(&item["created_at"]);
    assert_time(&item["updated_at"]);
    assert_eq!(item["consumed_at"], Value::Null);
    assert_eq!(item["consumed_by_agent_id"], Value::Null);
    assert!(item["position"].is_i64(), "{item}");
}

/// Takes the head of the queue as `agent-1` would, and returns its id.
async fn consume(srv: &Server) -> String {
    let fetch = srv.fetch("agent-1").await;
    let FetchOutcome::Instruction(item) = fetch.outcome else {
        panic!("expected an instruction, got {:?}", fetch.outcome);
    };
    item.id.to_string()
}

#[actix_web::test]
async fn healthz_says_ok_with_the_server_time() {
    let srv = Server::start().await;
    let reply = srv.get("/healthz").await;
    reply.expect_status(200);
    let body = reply.json();
    assert_eq!(keys(&body), BTreeSet::from(["status", "server_time"]));
    assert_eq!(body["status"], "ok");
    assert_time(&body["server_time"]);
}

#[actix_web::test]
async fn status_before_any_agent_has_a_null_agent() {
    let srv = Server::start().await;
    let reply = srv.get("/api/status").await;
    reply.expect_status(200);
    let body = reply.json();
    assert_eq!(
        keys(&body),
        BTreeSet::from(["server", "agent", "agents", "queue", "queues", "settings"])
    );
    assert_eq!(
        body["server"],
        json!({
            "status": "up",
            "started_at": srv.events.server().started_at.to_rfc3339(),
            "version": env!("CARGO_PKG_VERSION"),
        })
    );
    assert_time(&body["server"]["started_at"]);
    assert_eq!(body["agent"], Value::Null);
    assert_eq!(body["agents"], json!([]));
    assert_eq!(
        body["queue"],
        json!({"name": "default", "pending_count": 0, "consumed_count": 0})
    );
    let config = srv.get("/api/config").await.json();
    assert_eq!(body["settings"], config);
}

#[actix_web::test]
async fn status_shows_the_most_recently_seen_agent_first() {
    let srv = Server::start().await;
    srv.no_wait().await;
    srv.add("first").await;
    srv.add("second").await;
    consume(&srv).await;
    // agent-2 takes the second one, then calls again and finds nothing.
    srv.fetch("agent-2").await;
    let empty = srv.fetch("agent-2").await;
    assert!(
        matches!(empty.outcome, FetchOutcome::DefaultResponse(_)),
        "{empty:?}"
    );

    let body = srv.get("/api/status").await.json();
    assert_eq!(
        body["queue"],
        json!({"name": "default", "pending_count": 0, "consumed_count": 2})
    );
    let agents = body["agents"].as_array().expect("agents is an array");
    assert_eq!(agents.len(), 2, "{body}");
    assert_eq!(body["agent"], agents[0], "agent is the most recently seen");
    let (two, one) = (&agents[0], &agents[1]);
    for agent in [one, two] {
        assert_eq!(keys(agent), BTreeSet::from(AGENT_KEYS), "{agent}");
        assert_eq!(agent["connected"], true, "{agent}");
        assert_eq!(agent["waiting"], false, "{agent}");
        assert_eq!(agent["waiting_until"], Value::Null, "{agent}");
        assert_time(&agent["last_fetch_at"]);
    }
    assert_eq!(two["agent_id"], "agent-2");
    assert_eq!(two["state"], "idle");
    assert_eq!(two["last_result_type"], "default_response");
    assert_eq!(one["agent_id"], "agent-1");
    assert_eq!(one["state"], "working");
    assert_eq!(one["last_result_type"], "instruction");
    assert!(assert_time(&two["last_seen_at"]) > assert_time(&one["last_seen_at"]));
}

#[actix_web::test]
async fn create_trims_and_answers_201_with_the_item() {
    let srv = Server::start().await;
    let reply = srv
        .post(
            "/api/instructions",
            &json!({"content": "  \n\t fix the build \n "}),
        )
        .await;
    reply.expect_status(201);
    let body = reply.json();
    assert_eq!(keys(&body), BTreeSet::from(["item"]));
    let item = &body["item"];
    assert_pending_item(item, "fix the build");
    assert_eq!(item["created_at"], item["updated_at"]);
    assert_eq!(
        srv.item(id_of(item)).await,
        *item,
        "GET shows what POST made"
    );
}

#[actix_web::test]
async fn content_of_exactly_32768_characters_is_accepted() {
    let srv = Server::start().await;
    // Characters, not bytes: 32,768 two-byte characters fit too.
    for (name, text) in [
        ("ascii", "a".repeat(32_768)),
        ("two-byte", "é".repeat(32_768)),
        ("padded", format!("  {}  ", "b".repeat(32_768))),
    ] {
        let reply = srv
            .post("/api/instructions", &json!({"content": text}))
            .await;
        assert_eq!(reply.status, 201, "{name}");
        let content = reply.json()["item"]["content"].clone();
        assert_eq!(
            content.as_str().map(|c| c.chars().count()),
            Some(32_768),
            "{name}"
        );
    }
}

#[actix_web::test]
async fn get_one_is_200_or_404() {
    let srv = Server::start().await;
    let item = srv.add("look").await;
    let reply = srv
        .get(&format!("/api/instructions/{}", id_of(&item)))
        .await;
    reply.expect_status(200);
    assert_eq!(reply.json(), json!({"item": item}));
    srv.get(&format!("/api/instructions/{MISSING_ID}"))
        .await
        .expect_error(404, "not_found");
}

#[actix_web::test]
async fn edit_is_200_404_or_409_once_consumed() {
    let srv = Server::start().await;
    srv.no_wait().await;
    let item = srv.add("draft").await;
    let id = id_of(&item).to_owned();
    let uri = format!("/api/instructions/{id}");

    let reply = srv
        .patch(&uri, &json!({"content": "  final wording "}))
        .await;
    reply.expect_status(200);
    let edited = reply.json()["item"].clone();
    assert_pending_item(&edited, "final wording");
    assert_eq!(edited["id"], item["id"]);
    assert_eq!(edited["created_at"], item["created_at"]);
    assert_eq!(edited["position"], item["position"]);
    assert!(assert_time(&edited["updated_at"]) >= assert_time(&item["updated_at"]));
    assert_eq!(srv.item(&id).await, edited);

    srv.patch(
        &format!("/api/instructions/{MISSING_ID}"),
        &json!({"content": "x"}),
    )
    .await
    .expect_error(404, "not_found");

    assert_eq!(consume(&srv).await, id);
    srv.patch(&uri, &json!({"content": "too late"}))
        .await
        .expect_error(409, "conflict");
    assert_eq!(srv.item(&id).await["content"], "final wording");
}

#[actix_web::test]
async fn delete_is_204_with_no_body_404_or_409_once_consumed() {
    let srv = Server::start().await;
    srv.no_wait().await;
    let gone = srv.add("drop me").await;
    let uri = format!("/api/instructions/{}", id_of(&gone));
    let reply = srv.delete(&uri).await;
    reply.expect_status(204);
    assert!(reply.body.is_empty(), "{:?}", reply.body);
    srv.get(&uri).await.expect_error(404, "not_found");
    srv.delete(&uri).await.expect_error(404, "not_found");
    srv.delete(&format!("/api/instructions/{MISSING_ID}"))
        .await
        .expect_error(404, "not_found");

    let kept = srv.add("keep me").await;
    consume(&srv).await;
    let uri = format!("/api/instructions/{}", id_of(&kept));
    srv.delete(&uri).await.expect_error(409, "conflict");
    assert_eq!(srv.item(id_of(&kept)).await["status"], "consumed");
}

#[actix_web::test]
async fn requeue_makes_a_pending_copy_at_the_end() {
    let srv = Server::start().await;
    srv.no_wait().await;
    let done = srv.add("run the tests").await;
    consume(&srv).await;
    let later = srv.add("then lint").await;

    let reply = srv
        .send(Server::json_req(
            Method::POST,
            &format!("/api/instructions/{}/requeue", id_of(&done)),
            &json!({}),
        ))
        .await;
    reply.expect_status(201);
    let copy = reply.json()["item"].clone();
    assert_pending_item(&copy, "run the tests");
    assert_ne!(copy["id"], done["id"], "a new instruction");
    assert!(
        copy["position"].as_i64() > later["position"].as_i64(),
        "{copy} after {later}"
    );
    assert_eq!(
        srv.listed_ids("pending").await,
        [id_of(&later), id_of(&copy)],
        "the copy is last in the queue"
    );
    assert_eq!(srv.item(id_of(&done)).await["status"], "consumed");

    let requeue = |id: &str| {
        Server::json_req(
            Method::POST,
            &format!("/api/instructions/{id}/requeue"),
            &json!({}),
        )
    };
    srv.send(requeue(id_of(&later)))
        .await
        .expect_error(409, "conflict");
    srv.send(requeue(MISSING_ID))
        .await
        .expect_error(404, "not_found");
}

#[actix_web::test]
async fn requeue_needs_no_body_only_the_json_content_type() {
    // The content type is what the guard needs; the body is not read.
    let srv = Server::start().await;
    srv.no_wait().await;
    let done = srv.add("again").await;
    consume(&srv).await;
    let reply = srv
        .send(
            Server::req(
                Method::POST,
                &format!("/api/instructions/{}/requeue", id_of(&done)),
            )
            .insert_header(("content-type", "application/json")),
        )
        .await;
    reply.expect_status(201);
}

#[actix_web::test]
async fn reorder_answers_the_items_in_the_new_order() {
    let srv = Server::start().await;
    let a = srv.add("a").await;
    let b = srv.add("b").await;
    let c = srv.add("c").await;
    let order = [id_of(&c), id_of(&a), id_of(&b)];

    let reply = srv
        .post("/api/instructions/reorder", &json!({"ids": order}))
        .await;
    reply.expect_status(200);
    let body = reply.json();
    assert_eq!(keys(&body), BTreeSet::from(["items"]));
    assert_eq!(ids(&body["items"]), order);
    for item in body["items"].as_array().into_iter().flatten() {
        assert_eq!(keys(item), BTreeSet::from(ITEM_KEYS));
        assert_eq!(srv.item(id_of(item)).await, *item);
    }
    let positions: Vec<_> = body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| i["position"].as_i64().expect("position"))
        .collect();
    assert!(positions.is_sorted(), "{positions:?}");
    assert_eq!(srv.listed_ids("pending").await, order);
}

#[actix_web::test]
async fn reorder_is_409_unless_the_ids_are_exactly_the_pending_set() {
    let srv = Server::start().await;
    srv.no_wait().await;
    let done = srv.add("done").await;
    consume(&srv).await;
    let a = srv.add("a").await;
    let b = srv.add("b").await;
    let (a, b, done) = (id_of(&a), id_of(&b), id_of(&done));
    let cases: [(&str, Vec<&str>); 6] = [
        ("one missing", vec![a]),
        ("none", vec![]),
        ("a duplicate instead of one", vec![a, a]),
        ("a duplicate on top", vec![a, b, a]),
        ("an unknown id", vec![a, b, MISSING_ID]),
        ("a consumed id", vec![a, b, done]),
    ];
    for (name, ids) in cases {
        let reply = srv
            .post("/api/instructions/reorder", &json!({"ids": ids}))
            .await;
        assert_eq!(reply.status, 409, "{name}: {:?}", reply.body);
        reply.expect_error(409, "conflict");
    }
    assert_eq!(srv.listed_ids("pending").await, [a, b], "nothing moved");
}

#[actix_web::test]
async fn reorder_of_an_empty_queue_takes_an_empty_list() {
    let srv = Server::start().await;
    let reply = srv
        .post("/api/instructions/reorder", &json!({"ids": []}))
        .await;
    reply.expect_status(200);
    assert_eq!(reply.json(), json!({"items": []}));
}

/// Builds: consumed C then B (the reverse of their creation), pending D then A.
async fn mixed_queue(srv: &Server) -> [String; 4] {
    srv.no_wait().await;
    let a = id_of(&srv.add("a").await).to_owned();
    let b = id_of(&srv.add("b").await).to_owned();
    let c = id_of(&srv.add("c").await).to_owned();
    srv.post("/api/instructions/reorder", &json!({"ids": [&c, &b, &a]}))
        .await
        .expect_status(200);
    assert_eq!(consume(srv).await, c);
    assert_eq!(consume(srv).await, b);
    let d = id_of(&srv.add("d").await).to_owned();
    srv.post("/api/instructions/reorder", &json!({"ids": [d, a]}))
        .await
        .expect_status(200);
    [c, b, d, a]
}

#[actix_web::test]
async fn list_orders_pending_by_position_consumed_by_time_and_all_consumed_first() {
    let srv = Server::start().await;
    let [c, b, d, a] = mixed_queue(&srv).await;
    let (c, b, d, a) = (c.as_str(), b.as_str(), d.as_str(), a.as_str());

    let pending = srv.get("/api/instructions?status=pending").await.json();
    assert_eq!(ids(&pending["items"]), [d, a]);
    assert_eq!(pending["total"], 2);
    let consumed = srv.get("/api/instructions?status=consumed").await.json();
    assert_eq!(ids(&consumed["items"]), [c, b]);
    assert_eq!(consumed["total"], 2);
    for item in consumed["items"].as_array().into_iter().flatten() {
        assert_eq!(item["status"], "consumed");
        assert_eq!(item["consumed_by_agent_id"], "agent-1");
        assert_time(&item["consumed_at"]);
    }
    let all = srv.get("/api/instructions?status=all").await.json();
    assert_eq!(ids(&all["items"]), [c, b, d, a]);
    assert_eq!(all["total"], 4);
    let default = srv.get("/api/instructions").await.json();
    assert_eq!(default, all, "status defaults to all");
    assert_eq!(keys(&all), BTreeSet::from(["items", "total"]));
}

#[actix_web::test]
async fn list_pages_with_limit_and_offset_and_keeps_the_total() {
    let srv = Server::start().await;
    let [c, b, d, a] = mixed_queue(&srv).await;
    let (c, b, d, a) = (c.as_str(), b.as_str(), d.as_str(), a.as_str());
    let cases: [(&str, Vec<&str>, u64); 9] = [
        ("limit=2", vec![c, b], 4),
        ("limit=2&offset=1", vec![b, d], 4),
        ("offset=3", vec![a], 4),
        ("offset=4", vec![], 4),
        ("offset=99", vec![], 4),
        ("limit=0", vec![], 4),
        ("limit=99", vec![c, b, d, a], 4),
        ("status=pending&limit=1&offset=1", vec![a], 2),
        ("status=consumed&offset=1", vec![b], 2),
    ];
    for (query, expected, total) in cases {
        let reply = srv.get(&format!("/api/instructions?{query}")).await;
        assert_eq!(reply.status, 200, "{query}");
        let body = reply.json();
        assert_eq!(ids(&body["items"]), expected, "{query}");
        assert_eq!(body["total"], total, "{query}");
    }
}

#[actix_web::test]
async fn config_has_the_defaults_and_takes_any_subset() {
    let srv = Server::start().await;
    let defaults = json!({
        "default_wait_seconds": 10,
        "default_empty_response": DEFAULT_EMPTY_RESPONSE,
        "agent_stale_after_seconds": 30,
    });
    let reply = srv.get("/api/config").await;
    reply.expect_status(200);
    assert_eq!(reply.json(), defaults);

    let mut expected = defaults;
    let patches = [
        json!({"default_wait_seconds": 0}),
        json!({"default_wait_seconds": 86_400}),
        json!({"agent_stale_after_seconds": 1}),
        json!({"agent_stale_after_seconds": 86_400}),
        json!({"default_empty_response": ""}),
        json!({"default_empty_response": "x".repeat(4_096)}),
        json!({"default_empty_response": "ü".repeat(4_096)}),
        json!({"default_wait_seconds": 5, "agent_stale_after_seconds": 60}),
        json!({
            "default_wait_seconds": 7,
            "default_empty_response": "keep going",
            "agent_stale_after_seconds": 45,
        }),
    ];
    for patch in patches {
        for (k, v) in patch.as_object().into_iter().flatten() {
            expected[k] = v.clone();
        }
        let reply = srv.patch("/api/config", &patch).await;
        assert_eq!(reply.status, 200, "{patch}");
        assert_eq!(reply.json(), expected, "{patch}");
        assert_eq!(srv.get("/api/config").await.json(), expected, "{patch}");
    }
    assert_eq!(srv.get("/api/status").await.json()["settings"], expected);
}

#[actix_web::test]
async fn an_empty_config_patch_is_a_200_no_op() {
    let srv = Server::start().await;
    srv.patch("/api/config", &json!({"default_wait_seconds": 3}))
        .await
        .expect_status(200);
    let before = srv.get("/api/config").await.json();
    srv.audit.take();
    let reply = srv.patch("/api/config", &json!({})).await;
    reply.expect_status(200);
    assert_eq!(reply.json(), before);
    assert_eq!(srv.get("/api/config").await.json(), before);
    assert_eq!(srv.audit.entries(), [], "nothing was saved");
}

#[actix_web::test]
async fn unknown_paths_are_404_json() {
    let srv = Server::start().await;
    // `/` and `/index.html` are the web UI's page (tests/api/ui.rs).
    for uri in [
        "/nope",
        "/api",
        "/api/",
        "/api/nope",
        "/api/instructions/",
        "/api/instructions/00000000-0000-4000-8000-000000000000/nope",
        "/api/status/extra",
        "/healthz/",
        "/index.htm",
        "/css/",
    ] {
        srv.get(uri).await.expect_error(404, "not_found");
    }
}

#[actix_web::test]
async fn wrong_methods_are_405_json() {
    let srv = Server::start().await;
    let id = id_of(&srv.add("x").await).to_owned();
    let with_id = format!("/api/instructions/{id}");
    let requeue = format!("/api/instructions/{id}/requeue");
    let cases = [
        (Method::POST, "/healthz"),
        (Method::DELETE, "/healthz"),
        (Method::POST, "/api/status"),
        (Method::PUT, "/api/instructions"),
        (Method::DELETE, "/api/instructions"),
        (Method::PATCH, "/api/instructions"),
        (Method::POST, with_id.as_str()),
        (Method::PUT, with_id.as_str()),
        (Method::GET, requeue.as_str()),
        (Method::DELETE, requeue.as_str()),
        (Method::GET, "/api/instructions/reorder"),
        (Method::PATCH, "/api/instructions/reorder"),
        (Method::DELETE, "/api/instructions/reorder"),
        (Method::POST, "/api/config"),
        (Method::PUT, "/api/config"),
        (Method::DELETE, "/api/config"),
        (Method::POST, "/api/events"),
        (Method::OPTIONS, "/api/instructions"),
    ];
    for (method, uri) in cases {
        // JSON content type, so the guard's 415 does not hide the method check.
        let reply = srv
            .send(Server::json_req(method.clone(), uri, &json!({})))
            .await;
        assert_eq!(reply.status, 405, "{method} {uri}: {:?}", reply.body);
        reply.expect_error(405, "bad_request");
    }
    assert_eq!(srv.listed_ids("all").await, [id], "nothing changed");
}

/// Each queue has its own list, order, counts and agents; the status of one
/// queue lists them all; bad and unknown names are refused and change nothing.
#[actix_web::test]
async fn queues_are_kept_apart_and_listed() {
    let srv = Server::start().await;
    srv.no_wait().await;
    for (content, queue) in [("w1", "web"), ("a1", "api"), ("w2", "web")] {
        srv.post(
            "/api/instructions",
            &json!({"content": content, "queue": queue}),
        )
        .await
        .expect_status(201);
    }
    let web = srv.get("/api/instructions?queue=web").await.json();
    let contents: Vec<_> = web["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(contents, ["w1", "w2"]);
    assert_eq!(srv.get("/api/instructions").await.json()["total"], 0);

    // An agent on web takes web's head, not api's.
    let caller = queue_core::Caller::new(
        queue_core::QueueName::parse("web").unwrap(),
        queue_core::AgentId::parse("anna").unwrap(),
    );
    let fetch = srv.service.next_instruction(caller).await.unwrap();
    let FetchOutcome::Instruction(item) = fetch.outcome else {
        panic!("web had instructions")
    };
    assert_eq!(item.content.as_str(), "w1");

    let status = srv.get("/api/status?queue=web").await.json();
    assert_eq!(
        status["queue"],
        json!({"name": "web", "pending_count": 1, "consumed_count": 1})
    );
    assert_eq!(status["agent"]["agent_id"], "anna");
    assert_eq!(status["agent"]["queue"], "web");
    let default = srv.get("/api/status").await.json();
    assert_eq!(default["agent"], Value::Null, "anna is web's agent");
    assert_eq!(default["queues"], status["queues"]);
    let listed = srv.get("/api/queues").await.json();
    assert_eq!(listed["queues"], status["queues"]);
    let names: Vec<_> = listed["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["name"].clone(),
                q["pending_count"].clone(),
                q["agents"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (json!("api"), json!(1), 0),
            (json!("default"), json!(0), 0),
            (json!("web"), json!(1), 1)
        ]
    );

    // Refusals: nothing is added, nothing consumed.
    let before = srv.get("/api/queues").await.json();
    for (uri, body) in [
        ("/api/instructions", json!({"content": "x", "queue": ""})),
        ("/api/instructions", json!({"content": "x", "queue": "a b"})),
        ("/api/instructions", json!({"content": "x", "queue": 7})),
        (
            "/api/instructions",
            json!({"content": "x", "to_agent_id": "a b"}),
        ),
        (
            "/api/instructions?queue=web",
            json!({"content": "x", "queue": "api"}),
        ),
        (
            "/api/instructions/reorder",
            json!({"ids": [], "queue": "nowhere"}),
        ),
    ] {
        srv.post(uri, &body).await.expect_error(422, "validation");
    }
    for uri in [
        "/api/instructions?queue=nowhere",
        "/api/instructions?queue=%20",
        "/api/status?queue=nowhere",
    ] {
        let reply = srv.get(uri).await;
        reply.expect_error(422, "validation");
        assert_eq!(reply.json()["error"]["field"], "queue", "{uri}");
    }
    let unknown = srv.get("/api/status?queue=nowhere").await.json();
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("queue \"nowhere\" does not exist"),
        "{unknown}"
    );
    assert_eq!(srv.get("/api/queues").await.json(), before);
}
