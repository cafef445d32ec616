//! The audit hook (SPEC §5) as the API drives it: each change made through HTTP
//! records its entry, refused requests change nothing and record nothing, and a
//! wrong or missing token records an auth failure.

use actix_web::http::{Method, header};
use queue_core::DEFAULT_EMPTY_RESPONSE;
use serde_json::{Value, json};

use crate::support::{Recorded, Server, Setup, id_of};

fn entry(action: &'static str, detail: Value) -> Recorded {
    Recorded { action, detail }
}

#[actix_web::test]
async fn each_api_change_records_its_entry() {
    let srv = Server::start().await;
    srv.no_wait().await;
    assert_eq!(
        srv.audit.take(),
        [entry(
            "config.updated",
            json!({
                "patch": {
                    "default_wait_seconds": 0,
                    "default_empty_response": null,
                    "agent_stale_after_seconds": null,
                },
                "settings": {
                    "default_wait_seconds": 0,
                    "default_empty_response": DEFAULT_EMPTY_RESPONSE,
                    "agent_stale_after_seconds": 30,
                },
            })
        )]
    );

    let a = id_of(&srv.add("a").await).to_owned();
    let b = id_of(&srv.add("b").await).to_owned();
    assert_eq!(
        srv.audit.take(),
        [
            entry(
                "instruction.created",
                json!({"id": a, "requeued_from": null})
            ),
            entry(
                "instruction.created",
                json!({"id": b, "requeued_from": null})
            ),
        ]
    );

    srv.patch(
        &format!("/api/instructions/{a}"),
        &json!({"content": " a2 "}),
    )
    .await
    .expect_status(200);
    assert_eq!(
        srv.audit.take(),
        [entry(
            "instruction.updated",
            json!({"id": a, "content": "a2"})
        )]
    );

    srv.post("/api/instructions/reorder", &json!({"ids": [b, a]}))
        .await
        .expect_status(200);
    assert_eq!(
        srv.audit.take(),
        [entry(
            "instruction.reordered",
            json!({"queue": "default", "ids": [b, a]})
        )]
    );

    // The agent's call is audited by the service; the requeue after it by the API.
    srv.fetch("agent-1").await;
    assert_eq!(
        srv.audit.take(),
        [entry(
            "tool.call",
            json!({"agent": "agent-1", "queue": "default", "result": "instruction", "end": "delivered"})
        )]
    );
    let reply = srv
        .send(Server::json_req(
            Method::POST,
            &format!("/api/instructions/{b}/requeue"),
            &json!({}),
        ))
        .await;
    reply.expect_status(201);
    let copy = id_of(&reply.json()["item"]).to_owned();
    assert_eq!(
        srv.audit.take(),
        [entry(
            "instruction.created",
            json!({"id": copy, "requeued_from": b})
        )]
    );

    srv.delete(&format!("/api/instructions/{a}"))
        .await
        .expect_status(204);
    assert_eq!(
        srv.audit.take(),
        [entry("instruction.deleted", json!({"id": a}))]
    );

    srv.patch(
        "/api/config",
        &json!({"default_empty_response": "", "agent_stale_after_seconds": 5}),
    )
    .await
    .expect_status(200);
    assert_eq!(
        srv.audit.take(),
        [entry(
            "config.updated",
            json!({
                "patch": {
                    "default_wait_seconds": null,
                    "default_empty_response": "",
                    "agent_stale_after_seconds": 5,
                },
                "settings": {
                    "default_wait_seconds": 0,
                    "default_empty_response": "",
                    "agent_stale_after_seconds": 5,
                },
            })
        )]
    );
}

#[actix_web::test]
async fn refused_and_read_only_requests_record_nothing() {
    let srv = Server::start().await;
    srv.no_wait().await;
    let done = id_of(&srv.add("done").await).to_owned();
    srv.fetch("agent-1").await;
    let pending = id_of(&srv.add("pending").await).to_owned();
    srv.audit.take();

    let missing = crate::support::MISSING_ID;
    srv.get("/api/status").await.expect_status(200);
    srv.get("/api/instructions").await.expect_status(200);
    srv.get("/api/config").await.expect_status(200);
    srv.get(&format!("/api/instructions/{pending}"))
        .await
        .expect_status(200);
    srv.patch("/api/config", &json!({}))
        .await
        .expect_status(200);
    srv.post("/api/instructions", &json!({"content": " "}))
        .await
        .expect_status(422);
    srv.patch(
        &format!("/api/instructions/{done}"),
        &json!({"content": "x"}),
    )
    .await
    .expect_status(409);
    srv.delete(&format!("/api/instructions/{missing}"))
        .await
        .expect_status(404);
    srv.delete(&format!("/api/instructions/{done}"))
        .await
        .expect_status(409);
    srv.post("/api/instructions/reorder", &json!({"ids": []}))
        .await
        .expect_status(409);
    srv.patch("/api/config", &json!({"default_wait_seconds": -1}))
        .await
        .expect_status(422);
    srv.send(
        Server::req(Method::POST, "/api/instructions")
            .insert_header((header::CONTENT_TYPE, "text/plain"))
            .set_payload(r#"{"content": "x"}"#),
    )
    .await
    .expect_status(415);
    srv.send(Server::req(Method::GET, "/api/status").insert_header((header::HOST, "evil.test")))
        .await
        .expect_status(403);
    assert_eq!(srv.audit.entries(), []);
}

#[actix_web::test]
async fn a_wrong_or_missing_token_records_an_auth_failure() {
    let srv = Setup::new().token("s3cret").start().await;
    srv.get("/api/status").await.expect_status(401);
    srv.send(
        Server::json_req(Method::POST, "/api/instructions", &json!({"content": "x"}))
            .insert_header((header::AUTHORIZATION, "Bearer guess")),
    )
    .await
    .expect_status(401);
    // A token in the query is no token; the path is recorded without the query.
    srv.get("/api/config?token=s3cret").await.expect_status(401);
    assert_eq!(
        srv.audit.take(),
        [
            entry(
                "auth.failure",
                json!({"method": "GET", "path": "/api/status", "reason": "no token"})
            ),
            entry(
                "auth.failure",
                json!({"method": "POST", "path": "/api/instructions", "reason": "wrong token"})
            ),
            entry(
                "auth.failure",
                json!({"method": "GET", "path": "/api/config", "reason": "no token"})
            ),
        ]
    );

    // The right token and the open health check record nothing.
    srv.send(
        Server::req(Method::GET, "/api/status")
            .insert_header((header::AUTHORIZATION, "Bearer s3cret")),
    )
    .await
    .expect_status(200);
    srv.get("/healthz").await.expect_status(200);
    assert_eq!(srv.audit.entries(), []);
}
