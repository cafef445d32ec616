//! The guards of SPEC §5: foreign `Host` and `Origin` are refused (DNS rebinding,
//! other pages in the browser), state-changing requests need a JSON content type,
//! no CORS header is ever sent, and the bearer token guards `/api` only.

use actix_web::http::{Method, header};
use actix_web::test::TestRequest;
use serde_json::json;

use crate::support::{OWN_ORIGIN, Server, Setup, id_of};

/// One request of each kind the guard covers: the UI's path, the API, health, events.
fn guarded_requests() -> Vec<(&'static str, TestRequest)> {
    vec![
        ("GET /", Server::req(Method::GET, "/")),
        ("GET /healthz", Server::req(Method::GET, "/healthz")),
        ("GET /api/status", Server::req(Method::GET, "/api/status")),
        ("GET /api/events", Server::req(Method::GET, "/api/events")),
        (
            "POST /api/instructions",
            Server::json_req(
                Method::POST,
                "/api/instructions",
                &json!({"content": "from elsewhere"}),
            ),
        ),
        (
            "PATCH /api/config",
            Server::json_req(
                Method::PATCH,
                "/api/config",
                &json!({"default_wait_seconds": 1}),
            ),
        ),
    ]
}

/// Nothing a refused request tried may have happened.
async fn assert_untouched(srv: &Server) {
    assert_eq!(srv.listed_ids("all").await, Vec::<String>::new());
    assert_eq!(
        srv.get("/api/config").await.json()["default_wait_seconds"],
        10
    );
}

#[actix_web::test]
async fn a_foreign_origin_is_403_everywhere() {
    let srv = Server::start().await;
    let origins = [
        "http://evil.test",
        "https://evil.test",
        // Same machine, another port: another program's page.
        "http://localhost:3000",
        "http://127.0.0.1:3000",
        "http://127.0.0.1",
        // Our port, wrong scheme.
        "https://127.0.0.1:8000",
        // Sandboxed frames and file:// pages.
        "null",
        "file://",
        "http://127.0.0.1:8000.evil.test",
        "http://localhost.evil.test:8000",
        "",
    ];
    for origin in origins {
        for (what, req) in guarded_requests() {
            let reply = srv.send(req.insert_header((header::ORIGIN, origin))).await;
            assert_eq!(reply.status, 403, "{what} from {origin:?}");
            reply.expect_error(403, "forbidden");
        }
    }
    assert_untouched(&srv).await;
}

#[actix_web::test]
async fn the_servers_own_origin_is_accepted() {
    let srv = Server::start().await;
    for origin in [
        OWN_ORIGIN,
        "http://localhost:8000",
        "http://[::1]:8000",
        "HTTP://LOCALHOST:8000",
    ] {
        let reply = srv
            .send(Server::req(Method::GET, "/api/status").insert_header((header::ORIGIN, origin)))
            .await;
        assert_eq!(reply.status, 200, "{origin}");
    }
    let reply = srv
        .send(
            Server::json_req(Method::POST, "/api/instructions", &json!({"content": "ok"}))
                .insert_header((header::ORIGIN, OWN_ORIGIN)),
        )
        .await;
    reply.expect_status(201);
}

#[actix_web::test]
async fn a_foreign_host_is_403_everywhere() {
    let srv = Server::start().await;
    let hosts = [
        "evil.test",
        "evil.test:8000",
        // DNS rebinding: a name the attacker controls that resolves to 127.0.0.1.
        "localhost.evil.test",
        "localhost.evil.test:8000",
        "127.0.0.1.nip.io:8000",
        "127.0.0.2:8000",
        "0.0.0.0:8000",
        "[::2]:8000",
        "",
        ":8000",
        "localhost:port",
    ];
    for host in hosts {
        for (what, req) in guarded_requests() {
            let reply = srv.send(req.insert_header((header::HOST, host))).await;
            assert_eq!(reply.status, 403, "{what} with Host {host:?}");
            reply.expect_error(403, "forbidden");
        }
    }
    assert_untouched(&srv).await;
}

#[actix_web::test]
async fn a_request_without_a_host_is_403() {
    let srv = Server::start().await;
    let reply = srv.send(TestRequest::get().uri("/healthz")).await;
    reply.expect_error(403, "forbidden");
}

#[actix_web::test]
async fn loopback_hosts_are_accepted_on_any_port() {
    let srv = Server::start().await;
    for host in [
        "127.0.0.1:8000",
        "127.0.0.1",
        "localhost:8000",
        "LocalHost:1234",
        "[::1]:8000",
        "[::1]",
    ] {
        let reply = srv
            .send(Server::req(Method::GET, "/healthz").insert_header((header::HOST, host)))
            .await;
        assert_eq!(reply.status, 200, "{host}");
    }
}

#[actix_web::test]
async fn forwarding_headers_do_not_vouch_for_a_foreign_host() {
    let srv = Server::start().await;
    for (name, value) in [
        ("x-forwarded-host", "localhost:8000"),
        ("x-forwarded-host", "127.0.0.1"),
        ("forwarded", "host=localhost:8000"),
        ("x-original-host", "localhost"),
    ] {
        let reply = srv
            .send(
                Server::req(Method::GET, "/api/status")
                    .insert_header((header::HOST, "evil.test"))
                    .insert_header((name, value)),
            )
            .await;
        assert_eq!(reply.status, 403, "{name}: {value}");
    }
    // Nor does a foreign forwarded name spoil a good Host: only Host counts.
    let reply = srv
        .send(
            Server::req(Method::GET, "/api/status")
                .insert_header(("x-forwarded-host", "evil.test")),
        )
        .await;
    reply.expect_status(200);
}

#[actix_web::test]
async fn allowed_hosts_adds_names_for_host_and_origin() {
    let srv = Setup::new().allowed_hosts(&["box.lan"]).start().await;
    for host in ["box.lan", "box.lan:8000", "BOX.LAN:9999"] {
        let reply = srv
            .send(Server::req(Method::GET, "/api/status").insert_header((header::HOST, host)))
            .await;
        assert_eq!(reply.status, 200, "Host {host}");
    }
    for origin in ["http://box.lan:8000", "http://box.lan", "https://box.lan"] {
        let reply = srv
            .send(
                Server::req(Method::GET, "/api/status")
                    .insert_header((header::HOST, "box.lan:8000"))
                    .insert_header((header::ORIGIN, origin)),
            )
            .await;
        assert_eq!(reply.status, 200, "Origin {origin}");
    }
    for host in ["other.lan", "box.lan.evil.test", "evil.box.lan", "xbox.lan"] {
        let reply = srv
            .send(Server::req(Method::GET, "/api/status").insert_header((header::HOST, host)))
            .await;
        assert_eq!(reply.status, 403, "Host {host}");
    }
    let reply = srv
        .send(
            Server::req(Method::GET, "/api/status")
                .insert_header((header::ORIGIN, "http://box.lan.evil.test")),
        )
        .await;
    reply.expect_error(403, "forbidden");
    // The loopback names still work beside the extra one.
    srv.get("/api/status").await.expect_status(200);
}

#[actix_web::test]
async fn state_changing_requests_need_a_json_content_type() {
    let srv = Server::start().await;
    let item = srv.add("keep").await;
    let id = id_of(&item).to_owned();
    let body = json!({"content": "sneaky"}).to_string();
    let routes = [
        (Method::POST, "/api/instructions".to_owned()),
        (Method::PATCH, format!("/api/instructions/{id}")),
        (Method::POST, "/api/instructions/reorder".to_owned()),
        (Method::POST, format!("/api/instructions/{id}/requeue")),
        (Method::PATCH, "/api/config".to_owned()),
        (Method::PUT, "/api/config".to_owned()),
    ];
    // The "simple" types a page may post cross-site without a preflight, plus none
    // at all and a few near misses.
    let types = [
        None,
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=xyz"),
        Some("application/jsonp"),
        Some("application/json-patch+json"),
        Some("text/json"),
        Some(""),
    ];
    for (method, uri) in &routes {
        for content_type in types {
            let mut req = Server::req(method.clone(), uri).set_payload(body.clone());
            if let Some(t) = content_type {
                req = req.insert_header((header::CONTENT_TYPE, t));
            }
            let reply = srv.send(req).await;
            assert_eq!(reply.status, 415, "{method} {uri} as {content_type:?}");
            reply.expect_error(415, "unsupported_media_type");
        }
        // Even with no body at all.
        let reply = srv.send(Server::req(method.clone(), uri)).await;
        reply.expect_error(415, "unsupported_media_type");
    }
    let all = srv.get("/api/instructions").await.json();
    assert_eq!(all["total"], 1, "{all}");
    assert_eq!(srv.item(&id).await["content"], "keep");
}

#[actix_web::test]
async fn json_with_parameters_or_in_any_case_is_json() {
    let srv = Server::start().await;
    for content_type in [
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "Application/JSON",
        " application/json ",
    ] {
        let reply = srv
            .send(
                Server::req(Method::POST, "/api/instructions")
                    .insert_header((header::CONTENT_TYPE, content_type))
                    .set_payload(r#"{"content": "typed"}"#),
            )
            .await;
        assert_eq!(reply.status, 201, "{content_type:?}");
    }
}

#[actix_web::test]
async fn delete_needs_no_content_type() {
    let srv = Server::start().await;
    let a = srv.add("a").await;
    let b = srv.add("b").await;
    srv.delete(&format!("/api/instructions/{}", id_of(&a)))
        .await
        .expect_status(204);
    // A content type on a DELETE is not refused either.
    let reply = srv
        .send(
            Server::req(Method::DELETE, &format!("/api/instructions/{}", id_of(&b)))
                .insert_header((header::CONTENT_TYPE, "text/plain")),
        )
        .await;
    reply.expect_status(204);
}

#[actix_web::test]
async fn no_cors_headers_even_for_a_preflight() {
    let srv = Server::start().await;
    // `support` rejects any Access-Control-* header on every response; these are
    // the requests most likely to provoke one.
    for origin in [OWN_ORIGIN, "http://evil.test"] {
        for uri in ["/api/instructions", "/api/config", "/healthz", "/"] {
            let reply = srv
                .send(
                    Server::req(Method::OPTIONS, uri)
                        .insert_header((header::ORIGIN, origin))
                        .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "POST"))
                        .insert_header((
                            header::ACCESS_CONTROL_REQUEST_HEADERS,
                            "content-type, authorization",
                        )),
                )
                .await;
            assert!(reply.status >= 400, "{uri} from {origin}: {}", reply.status);
            if origin != OWN_ORIGIN {
                reply.expect_error(403, "forbidden");
            }
        }
    }
    let reply = srv
        .send(Server::req(Method::GET, "/api/status").insert_header((header::ORIGIN, OWN_ORIGIN)))
        .await;
    reply.expect_status(200);
}

const TOKEN: &str = "s3cret-token";

#[actix_web::test]
async fn with_a_token_api_requests_without_it_are_401() {
    let srv = Setup::new().token(TOKEN).start().await;
    let refusals = [
        None,
        Some("Bearer wrong"),
        Some("Bearer"),
        Some("Bearer "),
        Some("Bearer s3cret-toke"),
        Some("Bearer s3cret-tokenX"),
        Some("Basic s3cret-token"),
        Some("s3cret-token"),
        Some("Token s3cret-token"),
    ];
    let requests = [
        (Method::GET, "/api/status"),
        (Method::GET, "/api/instructions"),
        (Method::GET, "/api/config"),
        (Method::GET, "/api/events"),
        (Method::GET, "/api/nope"),
        (Method::POST, "/api/instructions"),
        (Method::PATCH, "/api/config"),
        (
            Method::DELETE,
            "/api/instructions/00000000-0000-4000-8000-000000000000",
        ),
    ];
    for (method, uri) in &requests {
        for auth in refusals {
            let mut req = Server::json_req(method.clone(), uri, &json!({"content": "x"}));
            if let Some(auth) = auth {
                req = req.insert_header((header::AUTHORIZATION, auth));
            }
            let reply = srv.send(req).await;
            assert_eq!(reply.status, 401, "{method} {uri} with {auth:?}");
            reply.expect_error(401, "unauthorized");
            // `support` checks the `WWW-Authenticate: Bearer` challenge on every 401.
        }
    }
    let bearer = format!("Bearer {TOKEN}");
    let reply = srv
        .send(
            Server::req(Method::GET, "/api/instructions")
                .insert_header((header::AUTHORIZATION, bearer)),
        )
        .await;
    reply.expect_status(200);
    assert_eq!(reply.json()["total"], 0, "no refused POST got through");
}

#[actix_web::test]
async fn with_a_token_the_right_one_opens_every_route() {
    let srv = Setup::new().token(TOKEN).start().await;
    let auth = (header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    let reply = srv
        .send(
            Server::json_req(Method::POST, "/api/instructions", &json!({"content": "go"}))
                .insert_header(auth.clone()),
        )
        .await;
    reply.expect_status(201);
    for uri in ["/api/status", "/api/instructions", "/api/config"] {
        let reply = srv
            .send(Server::req(Method::GET, uri).insert_header(auth.clone()))
            .await;
        assert_eq!(reply.status, 200, "{uri}");
    }
    // The scheme is case-insensitive, as HTTP says.
    let reply = srv
        .send(
            Server::req(Method::GET, "/api/status")
                .insert_header((header::AUTHORIZATION, format!("bearer {TOKEN}"))),
        )
        .await;
    reply.expect_status(200);
    let events = srv
        .events_with(
            Server::req(Method::GET, "/api/events").insert_header(auth),
            None,
        )
        .await;
    assert_eq!(events.content_type, "text/event-stream");
}

#[actix_web::test]
async fn healthz_never_needs_the_token() {
    let srv = Setup::new().token(TOKEN).start().await;
    srv.get("/healthz").await.expect_status(200);
    let reply = srv
        .send(
            Server::req(Method::GET, "/healthz")
                .insert_header((header::AUTHORIZATION, "Bearer wrong")),
        )
        .await;
    reply.expect_status(200);
}

#[actix_web::test]
async fn a_token_in_the_url_is_not_accepted() {
    let srv = Setup::new().token(TOKEN).start().await;
    for query in [
        "token",
        "access_token",
        "api_token",
        "API_TOKEN",
        "auth",
        "authorization",
        "bearer",
    ] {
        for value in [TOKEN.to_owned(), format!("Bearer%20{TOKEN}")] {
            let uri = format!("/api/status?{query}={value}");
            srv.get(&uri).await.expect_error(401, "unauthorized");
        }
    }
    // Nor in another header than Authorization.
    for name in ["x-api-token", "x-auth-token", "api-token", "cookie"] {
        let reply = srv
            .send(Server::req(Method::GET, "/api/status").insert_header((name, TOKEN)))
            .await;
        assert_eq!(reply.status, 401, "{name}");
    }
}

#[actix_web::test]
async fn the_host_check_comes_before_the_token() {
    // A rebinding page learns nothing about the token: it gets 403, not 401.
    let srv = Setup::new().token(TOKEN).start().await;
    let reply = srv
        .send(Server::req(Method::GET, "/api/status").insert_header((header::HOST, "evil.test")))
        .await;
    reply.expect_error(403, "forbidden");
    assert_eq!(
        srv.audit.entries(),
        [],
        "a refused host is not an auth failure"
    );
}

#[actix_web::test]
async fn without_a_token_everything_works_without_one() {
    let srv = Server::start().await;
    let item = srv.add("open").await;
    let id = id_of(&item).to_owned();
    srv.get("/api/status").await.expect_status(200);
    srv.get("/api/instructions").await.expect_status(200);
    srv.get(&format!("/api/instructions/{id}"))
        .await
        .expect_status(200);
    srv.patch(
        &format!("/api/instructions/{id}"),
        &json!({"content": "still open"}),
    )
    .await
    .expect_status(200);
    srv.get("/api/config").await.expect_status(200);
    srv.patch("/api/config", &json!({}))
        .await
        .expect_status(200);
    srv.post("/api/instructions/reorder", &json!({"ids": [id]}))
        .await
        .expect_status(200);
    srv.delete(&format!("/api/instructions/{id}"))
        .await
        .expect_status(204);
    let events = srv.events(None).await;
    assert_eq!(events.content_type, "text/event-stream");
    // A stray Authorization header is ignored rather than refused.
    let reply = srv
        .send(
            Server::req(Method::GET, "/api/status")
                .insert_header((header::AUTHORIZATION, "Bearer whatever")),
        )
        .await;
    reply.expect_status(200);
}
