//! The HTTP server's guards (SPEC §5) and the combined `stdio --ui` mode over
//! loopback: foreign Host/Origin, content types, body limits, CORS, the bearer
//! token, exposure beyond loopback, and one process serving MCP on stdio next to
//! the HTTP API — or stdio alone when the port is taken.
//! Spawned binaries only where the process is the subject: the exposure refusal
//! (HOST and API_TOKEN as `serve` parses them) and the `stdio --ui` tests; the
//! guards are checked on an in-process [`TestServer`].

use std::time::Duration;

use integration::{Proc, SseClient, TempDb, TestServer, local_mcp, mcp_post};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};

/// Bounds every wait; the server answers in milliseconds, this only bounds a
/// failure.
const SOON: Duration = Duration::from_secs(5);

const TOOLS_LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

/// What a test keeps of a response.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn error_code(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("<no JSON error in {:?}>", self.body))
    }

    /// No CORS header at all: browsers then keep other sites' pages from reading
    /// any answer, and preflights fail.
    fn assert_no_cors(&self, what: &str) {
        let cors: Vec<_> = self
            .headers
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .collect();
        assert!(cors.is_empty(), "{what}: CORS headers {cors:?}");
    }
}

async fn answer(request: RequestBuilder) -> Answer {
    let res = request
        .timeout(SOON)
        .send()
        .await
        .expect("the server answers");
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap_or_default();
    Answer {
        status,
        headers,
        body,
    }
}

/// A request as a browser page on another site, or a DNS-rebinding page, would
/// shape it: a route, a method, and a JSON body where the route takes one.
fn surface(http: &reqwest::Client, base: &str, path: &str) -> RequestBuilder {
    match path {
        "/mcp" => mcp_post(http, &format!("{base}/mcp"))
            .header("content-type", "application/json")
            .body(TOOLS_LIST),
        _ => http.get(format!("{base}{path}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_or_origin_is_refused_on_every_surface() {
    let server = TestServer::start().await;
    let base = server.url();
    let port = server.port();
    let http = reqwest::Client::new();
    for path in ["/api/status", "/", "/mcp"] {
        // Control: the server's own names and origin pass the guard. (Whether `/`
        // has a page yet is the UI's business; here it only must not be refused.)
        let own = format!("http://127.0.0.1:{port}");
        let controls = [
            ("Host", format!("127.0.0.1:{port}")),
            ("Host", format!("localhost:{port}")),
            ("Origin", own.clone()),
            ("Origin", format!("http://localhost:{port}")),
        ];
        for (header, value) in controls {
            let ok = answer(surface(&http, &base, path).header(header, &value)).await;
            assert!(
                ok.status != 403 && ok.status.as_u16() < 500,
                "{path} with {header} {value}: {ok:?}"
            );
            if path != "/" {
                assert_eq!(ok.status, 200, "{path} with {header} {value}: {ok:?}");
            }
            ok.assert_no_cors(path);
        }

        // A rebinding page reaches 127.0.0.1 under its own name.
        for host in [
            "evil.test".to_owned(),
            format!("evil.test:{port}"),
            format!("localhost.evil.test:{port}"),
        ] {
            let refused = answer(surface(&http, &base, path).header("host", &host)).await;
            assert_eq!(refused.status, 403, "{path} with Host {host}: {refused:?}");
            assert_eq!(refused.error_code(), "forbidden", "{refused:?}");
            refused.assert_no_cors(path);
        }
        // Pages of other sites, other local programs, and opaque origins.
        for origin in [
            "http://evil.test".to_owned(),
            format!("http://evil.test:{port}"),
            format!("http://localhost:{}", port.wrapping_add(1).max(1)),
            format!("https://127.0.0.1:{port}"),
            "null".to_owned(),
        ] {
            let refused = answer(surface(&http, &base, path).header("origin", &origin)).await;
            assert_eq!(refused.status, 403, "{path} from {origin}: {refused:?}");
            assert_eq!(refused.error_code(), "forbidden", "{refused:?}");
            refused.assert_no_cors(path);
        }
    }
}

async fn pending_total(base: &str) -> u64 {
    let listing: Value = reqwest::Client::new()
        .get(format!("{base}/api/instructions?status=pending"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listing["total"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_without_a_json_content_type_get_415() {
    let server = TestServer::start().await;
    let base = server.url();
    let http = reqwest::Client::new();
    for path in ["/api/instructions", "/mcp"] {
        let url = format!("{base}{path}");
        let body = if path == "/mcp" {
            TOOLS_LIST
        } else {
            r#"{"content":"sneaky"}"#
        };
        let cases: Vec<(&str, RequestBuilder)> = vec![
            (
                "text/plain",
                http.post(&url).header("content-type", "text/plain").body(body),
            ),
            (
                "a form",
                http.post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("content=sneaky&jsonrpc=2.0"),
            ),
            (
                "multipart",
                http.post(&url)
                    .header("content-type", "multipart/form-data; boundary=x")
                    .body("--x\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\nsneaky\r\n--x--\r\n"),
            ),
            ("no content type, a body", http.post(&url).body(body)),
            ("no content type, no body", http.post(&url)),
        ];
        for (what, request) in cases {
            let refused =
                answer(request.header("accept", "application/json, text/event-stream")).await;
            assert_eq!(refused.status, 415, "{path}, {what}: {refused:?}");
            assert_eq!(
                refused.error_code(),
                "unsupported_media_type",
                "{refused:?}"
            );
            refused.assert_no_cors(path);
        }
    }
    let patch = answer(
        http.patch(format!("{base}/api/config"))
            .header("content-type", "text/plain")
            .body(r#"{"default_wait_seconds":1}"#),
    )
    .await;
    assert_eq!(patch.status, 415, "{patch:?}");
    assert_eq!(pending_total(&base).await, 0, "nothing got in");

    // Control: JSON with a charset parameter is JSON.
    let ok = answer(
        http.post(format!("{base}/api/instructions"))
            .header("content-type", "application/json; charset=utf-8")
            .body(r#"{"content":"legit"}"#),
    )
    .await;
    assert_eq!(ok.status, 201, "{ok:?}");
    assert_eq!(pending_total(&base).await, 1);
}

/// A JSON body of `n` bytes, `{"content":"aaa…"}`.
fn json_body(n: usize) -> Vec<u8> {
    let mut body = br#"{"content":""#.to_vec();
    body.resize(n - 2, b'a');
    body.extend_from_slice(br#""}"#);
    body
}

const MIB: usize = 1 << 20;

/// The documented request body limit (SPEC §4: 256 KiB).
const BODY_LIMIT: usize = 256 * 1024;

fn big_post(http: &reqwest::Client, url: &str) -> RequestBuilder {
    mcp_post(http, url).header("content-type", "application/json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_mib_body_with_a_content_length_gets_413() {
    let server = TestServer::start().await;
    let base = server.url();
    let http = reqwest::Client::new();
    for path in ["/api/instructions", "/mcp"] {
        let refused = answer(big_post(&http, &format!("{base}{path}")).body(json_body(MIB))).await;
        assert_eq!(refused.status, 413, "{path}: {refused:?}");
        assert_eq!(refused.error_code(), "payload_too_large", "{refused:?}");
        refused.assert_no_cors(path);
    }
    assert_eq!(pending_total(&base).await, 0);
    // Control: just under the limit passes the guard (and then fails validation,
    // the content being over 32,768 characters).
    let under =
        answer(big_post(&http, &format!("{base}/api/instructions")).body(json_body(BODY_LIMIT)))
            .await;
    assert_eq!(under.status, 422, "{under:?}");
}

/// The same body sent chunked, with no length up front: cut off as it streams.
async fn chunked_1_mib_gets_413(path: &str) {
    let server = TestServer::start().await;
    let base = server.url();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = json_body(MIB)
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let refused =
        answer(big_post(&reqwest::Client::new(), &format!("{base}{path}")).body(body)).await;
    assert_eq!(refused.status, 413, "{path}: {refused:?}");
    assert_eq!(refused.error_code(), "payload_too_large", "{refused:?}");
    refused.assert_no_cors(path);
    assert_eq!(pending_total(&base).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_1_mib_body_to_the_api_gets_413() {
    chunked_1_mib_gets_413("/api/instructions").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_1_mib_body_to_mcp_gets_413() {
    chunked_1_mib_gets_413("/mcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_response_carries_cors_headers() {
    let server = TestServer::start().await;
    let base = server.url();
    let own = format!("http://127.0.0.1:{}", server.port());
    let http = reqwest::Client::new();
    let preflight = |path: &str, origin: &str| {
        http.request(Method::OPTIONS, format!("{base}{path}"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, authorization",
            )
    };
    let requests: Vec<(&str, RequestBuilder)> = vec![
        ("healthz", http.get(format!("{base}/healthz"))),
        (
            "status",
            http.get(format!("{base}/api/status"))
                .header("origin", &own),
        ),
        ("openapi", http.get(format!("{base}/openapi.json"))),
        ("docs", http.get(format!("{base}/docs"))),
        ("ui", http.get(format!("{base}/")).header("origin", &own)),
        ("missing", http.get(format!("{base}/api/nope"))),
        (
            "preflight, foreign",
            preflight("/api/instructions", "http://evil.test"),
        ),
        ("preflight, own", preflight("/api/instructions", &own)),
        ("preflight on /mcp", preflight("/mcp", "http://evil.test")),
        (
            "create",
            http.post(format!("{base}/api/instructions"))
                .header("origin", &own)
                .json(&json!({"content": "x"})),
        ),
        ("mcp", surface(&http, &base, "/mcp").header("origin", &own)),
    ];
    for (what, request) in requests {
        let got = answer(request).await;
        assert!(got.status.as_u16() < 500, "{what}: {got:?}");
        got.assert_no_cors(what);
    }
    let sse = SseClient::open(
        http.get(format!("{base}/api/events"))
            .header("origin", &own),
    )
    .await;
    assert!(
        !sse.headers()
            .keys()
            .any(|k| k.as_str().starts_with("access-control-")),
        "events: {:?}",
        sse.headers()
    );
}

/// Builds the same request afresh for each try.
type MakeRequest<'a> = Box<dyn Fn() -> RequestBuilder + 'a>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_token_guards_the_api_and_mcp_but_not_healthz() {
    const TOKEN: &str = "s3cret-token";
    let server = TestServer::start_changed(|c| c.http.api_token = Some(TOKEN.to_owned())).await;
    let base = server.url();
    let http = reqwest::Client::new();
    let bearer = format!("Bearer {TOKEN}");

    let guarded: Vec<(&str, MakeRequest<'_>)> = vec![
        (
            "/api/status",
            Box::new(|| http.get(format!("{base}/api/status"))),
        ),
        (
            "/api/instructions",
            Box::new(|| http.get(format!("{base}/api/instructions"))),
        ),
        (
            "POST /api/instructions",
            Box::new(|| {
                http.post(format!("{base}/api/instructions"))
                    .json(&json!({"content": "with a token"}))
            }),
        ),
        (
            "/api/config",
            Box::new(|| http.get(format!("{base}/api/config"))),
        ),
        ("/mcp", Box::new(|| surface(&http, &base, "/mcp"))),
    ];
    for (what, request) in &guarded {
        for (how, auth) in [
            ("no token", None),
            ("a wrong token", Some("Bearer nope".to_owned())),
            ("a longer token", Some(format!("{bearer}x"))),
            ("another scheme", Some(format!("Basic {TOKEN}"))),
        ] {
            let mut request = request();
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let refused = answer(request).await;
            assert_eq!(refused.status, 401, "{what} with {how}: {refused:?}");
            assert_eq!(refused.error_code(), "unauthorized", "{refused:?}");
            let challenge = refused
                .headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert!(challenge.starts_with("Bearer"), "{what}: {challenge:?}");
            refused.assert_no_cors(what);
        }
        let ok = answer(request().header("authorization", &bearer)).await;
        assert!(ok.status.is_success(), "{what} with the token: {ok:?}");
    }
    // The token is read from the Authorization header only, never from the URL.
    for query in ["token", "api_token", "access_token"] {
        let url = format!("{base}/api/status?{query}={TOKEN}");
        let refused = answer(http.get(url)).await;
        assert_eq!(refused.status, 401, "?{query}=: {refused:?}");
    }
    // The event stream is API too.
    let events = answer(http.get(format!("{base}/api/events"))).await;
    assert_eq!(events.status, 401, "{events:?}");
    let mut sse = SseClient::open(
        http.get(format!("{base}/api/events"))
            .header("authorization", &bearer),
    )
    .await;
    let first = sse.next_frame(SOON).await;
    assert_eq!(first.comments, ["connected"]);
    // Health checks never need it, whatever they send.
    for auth in [None, Some("Bearer nope")] {
        let mut request = http.get(format!("{base}/healthz"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let health = answer(request).await;
        assert_eq!(health.status, 200, "{health:?}");
    }
}

/// Runs `local-mcp ARGS` expecting it to refuse to start; returns its stderr.
async fn refused_start(db: &TempDb, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = local_mcp(db.path());
    cmd.args(args).envs(env.iter().copied());
    integration::refused_start(cmd, &format!("{args:?}"), SOON).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_host_needs_an_api_token() {
    let db = TempDb::new();
    let exposed = [("HOST", "0.0.0.0"), ("HTTP_PORT", "0")];
    for args in [&["serve"][..], &["stdio", "--ui"][..]] {
        let stderr = refused_start(&db, args, &exposed).await;
        assert!(stderr.contains("API_TOKEN"), "{args:?}: {stderr}");
        assert!(
            stderr.contains("0.0.0.0"),
            "{args:?} names the address: {stderr}"
        );
    }

    // With a token it starts, and loopback clients still reach it.
    let mut cmd = local_mcp(db.path());
    cmd.envs(exposed).env("API_TOKEN", "t0ken").arg("serve");
    let mut server = Proc::spawn(cmd);
    let addr = server.listening(Duration::from_secs(20)).await;
    assert!(addr.ip().is_unspecified(), "{addr}");
    let base = format!("http://127.0.0.1:{}", addr.port());
    let http = reqwest::Client::new();
    let health = answer(http.get(format!("{base}/healthz"))).await;
    assert_eq!(health.status, 200);
    let status = answer(http.get(format!("{base}/api/status"))).await;
    assert_eq!(status.status, 401);
    let status = answer(
        http.get(format!("{base}/api/status"))
            .header("authorization", "Bearer t0ken"),
    )
    .await;
    assert_eq!(status.status, 200, "{status:?}");
}

fn tool_names(list: &Value) -> Vec<String> {
    list["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn post_instruction(base: &str, text: &str) -> Value {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/instructions"))
        .json(&json!({ "content": text }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    res.json::<Value>().await.unwrap()["item"].clone()
}

/// Waits on `sse` until `agent` has a call waiting.
async fn until_waiting(sse: &mut SseClient, agent: &str) {
    sse.until(SOON, |f| {
        let data = &f.json()["data"];
        f.kind() == "agent.updated" && data["agent_id"] == agent && data["waiting"] == true
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_ui_serves_http_and_mcp_from_one_process() {
    let db = TempDb::new();
    let mut cmd = local_mcp(db.path());
    cmd.env("HTTP_PORT", "0")
        .env("DEFAULT_WAIT_SECONDS", "30")
        .args(["stdio", "--ui"]);
    let mut both = Proc::spawn(cmd);
    let addr = both.listening(Duration::from_secs(20)).await;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    assert_eq!(
        answer(http.get(format!("{base}/healthz"))).await.status,
        200
    );
    let mut sse = SseClient::connect(&base, None).await;

    both.initialize("combined").await;
    let list = both.request("tools/list", json!({}), SOON).await;
    assert_eq!(tool_names(&list), ["get_user_request"]);

    // A call waits over stdio; an instruction posted over this process's own
    // HTTP API wakes it.
    let call = both.start_get_user_request("combined").await;
    until_waiting(&mut sse, "combined").await;
    let item = post_instruction(&base, "over http, out over stdio").await;
    let result = both.tool_result(call, SOON).await;
    assert_eq!(result["result_type"], "instruction");
    assert_eq!(result["instruction"]["id"], item["id"]);
    assert_eq!(
        result["instruction"]["content"],
        "over http, out over stdio"
    );
    let status: Value = http
        .get(format!("{base}/api/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["queue"]["consumed_count"], 1, "{status}");

    // Closing stdin ends the session and the whole process, HTTP side included.
    both.close_stdin();
    let exit = both.wait_exit(SOON).await;
    assert!(exit.success(), "{exit:?}:\n{}", both.log());
    let gone = http
        .get(format!("{base}/healthz"))
        .timeout(SOON)
        .send()
        .await;
    assert!(gone.is_err(), "the port is closed after exit: {gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_ui_goes_on_with_stdio_when_the_port_is_taken() {
    let db = TempDb::new();
    let server = TestServer::start_on(db.path(), |c| {
        c.defaults.default_wait_seconds = 30;
    })
    .await;
    let base = server.url();
    let mut sse = SseClient::connect(&base, None).await;

    let mut cmd = local_mcp(db.path());
    cmd.env("HTTP_PORT", server.port().to_string())
        .env("DEFAULT_WAIT_SECONDS", "30")
        .args(["stdio", "--ui"]);
    let mut agent = Proc::spawn(cmd);
    let log = agent
        .wait_for_log("already taken", Duration::from_secs(20))
        .await;
    assert!(
        log.contains(&server.port().to_string()),
        "the message names the port: {log}"
    );
    agent.initialize("fallback").await;
    let list = agent.request("tools/list", json!({}), SOON).await;
    assert_eq!(tool_names(&list), ["get_user_request"]);

    // Queued before the call: delivered at once.
    let first = post_instruction(&base, "queued first").await;
    let call = agent.start_get_user_request("fallback").await;
    let result = agent.tool_result(call, SOON).await;
    assert_eq!(result["instruction"]["id"], first["id"]);

    // Queued while the call waits in the other process: it wakes.
    let call = agent.start_get_user_request("fallback").await;
    until_waiting(&mut sse, "fallback").await;
    let second = post_instruction(&base, "queued while waiting").await;
    let result = agent.tool_result(call, SOON).await;
    assert_eq!(result["instruction"]["id"], second["id"]);

    agent.close_stdin();
    let exit = agent.wait_exit(SOON).await;
    assert!(exit.success(), "{exit:?}:\n{}", agent.log());
    assert!(
        !agent.log().contains("listening on"),
        "it never served HTTP:\n{}",
        agent.log()
    );
    // The serving process is untouched.
    let health = answer(reqwest::Client::new().get(format!("{base}/healthz"))).await;
    assert_eq!(health.status, 200);
}
