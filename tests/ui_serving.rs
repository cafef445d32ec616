//! The web UI as the server serves it: every embedded file with its type and
//! exact bytes, the page at `/` with its policy and revalidation, the guards on
//! it, paths sent raw over TCP that try to leave the UI, the API's JSON 404 and
//! token next to it, and `--assets-dir` (a folder read on every request; a wrong
//! folder stops start-up). Compares with the embedded bytes, never with what the
//! files say: the UI changes on its own.
//! The binary is spawned where its log or its command line is checked (the
//! `ui=embedded` and `serving the web UI from` lines, ASSETS_DIR, the config
//! file, `stdio --ui`, refused start-ups); the rest serve in-process.

use std::path::Path;
use std::time::Duration;

use integration::{Proc, Serve, TempDb, TestServer, UI_CSP, UiFolder, local_mcp, ui_assets};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// Bounds every wait; the server answers in milliseconds, this only bounds a
/// failure.
const SOON: Duration = Duration::from_secs(5);
/// How long a process may take to start listening (a cold debug binary).
const START: Duration = Duration::from_secs(20);

/// What a test keeps of a response.
#[derive(Debug)]
struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `code` of a JSON error body.
    fn error_code(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("<no JSON error in {:?}>", self.text()))
    }
}

async fn got(request: reqwest::RequestBuilder) -> Got {
    let res = request
        .timeout(SOON)
        .send()
        .await
        .expect("the server answers");
    Got {
        status: res.status(),
        headers: res.headers().clone(),
        body: res.bytes().await.expect("the body").to_vec(),
    }
}

/// Sends `target` byte for byte (an HTTP client would tidy `..` and `\` away)
/// and returns the status and the body.
async fn raw_get(base: &str, target: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(SOON, stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{target}: not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_embedded_ui_file_is_served_with_its_type_and_exact_bytes() {
    let db = TempDb::new();
    let server = Serve::start(local_mcp(db.path()));
    assert!(server.log().contains("ui=embedded"), "{}", server.log());
    let base = server.url();
    let http = reqwest::Client::new();
    for asset in ui_assets() {
        let url = format!("{base}/{}", asset.path);
        let res = got(http.get(&url)).await;
        assert_eq!(res.status, 200, "{url}: {res:?}");
        assert_eq!(
            res.header("content-type"),
            Some(asset.content_type),
            "{url}"
        );
        assert!(res.body == asset.bytes, "{url}: the bytes differ");
        assert_eq!(res.header("etag"), Some(asset.etag), "{url}");
        assert_eq!(
            res.header("x-content-type-options"),
            Some("nosniff"),
            "{url}"
        );
        assert_eq!(res.header("referrer-policy"), Some("no-referrer"), "{url}");
        let html = asset.content_type.starts_with("text/html");
        assert_eq!(
            res.header("content-security-policy"),
            html.then_some(UI_CSP),
            "{url}"
        );

        let head = got(http.head(&url)).await;
        assert_eq!(head.status, 200, "HEAD {url}");
        assert!(head.body.is_empty(), "HEAD {url} has no body");
        assert_eq!(head.header("etag"), Some(asset.etag), "HEAD {url}");
        assert_eq!(
            head.header("content-length"),
            Some(asset.bytes.len().to_string().as_str()),
            "HEAD {url}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_at_the_root_has_the_ui_policy_and_revalidates() {
    let server = TestServer::start().await;
    let base = server.url();
    let http = reqwest::Client::new();
    let index = web_assets::get("index.html").expect("index.html is embedded");
    let page = got(http.get(format!("{base}/"))).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body == index.bytes, "/ is index.html");
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("content-security-policy"), Some(UI_CSP));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let etag = page.header("etag").expect("an ETag").to_owned();
    assert_eq!(etag, index.etag);

    for path in ["/", "/index.html"] {
        let again = got(http
            .get(format!("{base}{path}"))
            .header("if-none-match", &etag))
        .await;
        assert_eq!(again.status, 304, "{path}: {again:?}");
        assert!(again.body.is_empty(), "{path}");
        assert_eq!(again.header("etag"), Some(etag.as_str()), "{path}");
    }
    let stale = got(http
        .get(format!("{base}/"))
        .header("if-none-match", "\"0000000000000000\""))
    .await;
    assert_eq!(stale.status, 200);
    assert!(stale.body == index.bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_or_origin_on_the_page_is_403() {
    let server = TestServer::start().await;
    let base = server.url();
    let port = server.port();
    let http = reqwest::Client::new();
    for path in ["/", "/index.html"] {
        for (name, value) in [
            ("host", "evil.test".to_owned()),
            ("host", format!("evil.test:{port}")),
            ("origin", "http://evil.test".to_owned()),
            (
                "origin",
                format!("http://localhost:{}", port.wrapping_add(1)),
            ),
        ] {
            let refused = got(http.get(format!("{base}{path}")).header(name, &value)).await;
            assert_eq!(
                refused.status, 403,
                "{path} with {name} {value}: {refused:?}"
            );
            assert_eq!(refused.error_code(), "forbidden");
        }
        // Control: the page's own origin, as the browser sends it.
        let own = got(http
            .get(format!("{base}{path}"))
            .header("origin", format!("http://127.0.0.1:{port}")))
        .await;
        assert_eq!(own.status, 200, "{path}: {own:?}");
    }
}

/// Request targets that try to leave the UI, as a hostile client sends them.
const OUT: [&str; 11] = [
    "/../secret.txt",
    "/../../../../../../etc/passwd",
    "/css/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E%2Fsecret.txt",
    "/..%2f..%2fsecret.txt",
    "/..%5csecret.txt",
    "/..\\secret.txt",
    "/%252e%252e/secret.txt",
    "/.secret",
    "/css/",
];

/// Every target of [`OUT`] is refused (404, or 400 where the parser refuses the
/// request line itself), and no answer carries the secret.
async fn nothing_leaks(base: &str) {
    for target in OUT {
        let (status, body) = raw_get(base, target).await;
        assert!(
            status == 404 || status == 400,
            "{target}: {status} {body:?}"
        );
        assert!(!body.contains("SECRET"), "{target} leaked: {body:?}");
        assert!(!body.contains("root:"), "{target} leaked: {body:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_that_try_to_leave_the_ui_reach_no_file() {
    let folder = ui_folder();
    let db = TempDb::new();
    let server = TestServer::start_on(db.path(), |_| {}).await;
    nothing_leaks(&server.url()).await;

    let from_disk = TestServer::start_on(db.path(), |c| {
        c.assets_dir = Some(folder.root());
    })
    .await;
    let base = from_disk.url();
    let (status, body) = raw_get(&base, "/index.html").await;
    assert_eq!((status, body.as_str()), (200, "<p>first</p>"));
    nothing_leaks(&base).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_paths_are_still_a_json_404() {
    let server = TestServer::start().await;
    let base = server.url();
    let http = reqwest::Client::new();
    for path in [
        "/api/unknown",
        "/api/nope",
        "/api/",
        "/healthz/",
        "/nope.html",
    ] {
        let missing = got(http.get(format!("{base}{path}"))).await;
        assert_eq!(missing.status, 404, "{path}: {missing:?}");
        assert_eq!(missing.error_code(), "not_found", "{path}");
        assert!(
            missing.header("content-security-policy").is_none(),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_page_loads_without_it_but_the_api_needs_it() {
    const TOKEN: &str = "ui-t0ken";
    let server = TestServer::start_changed(|c| c.http.api_token = Some(TOKEN.to_owned())).await;
    let base = server.url();
    let http = reqwest::Client::new();
    let page = got(http.get(format!("{base}/"))).await;
    assert_eq!(page.status, 200, "{page:?}");
    for asset in ui_assets() {
        let file = got(http.get(format!("{base}/{}", asset.path))).await;
        assert_eq!(file.status, 200, "{}: {file:?}", asset.path);
    }
    let refused = got(http.get(format!("{base}/api/status"))).await;
    assert_eq!(refused.status, 401, "{refused:?}");
    assert_eq!(refused.error_code(), "unauthorized");
    let allowed = got(http.get(format!("{base}/api/status")).bearer_auth(TOKEN)).await;
    assert_eq!(allowed.status, 200, "{allowed:?}");
}

/// A temporary UI folder (`assets/` with `index.html` and `css/app.css`) with a
/// secret next to it, outside the folder.
fn ui_folder() -> UiFolder {
    UiFolder::new(
        &[
            ("index.html", b"<p>first</p>"),
            ("css/app.css", b"p{color:red}"),
            (".secret", b"SECRET hidden"),
        ],
        &[("secret.txt", b"SECRET outside")],
    )
}

/// GETs `path` and returns the body, which must come with a 200 and the UI's
/// headers.
async fn page_text(base: &str, path: &str) -> Got {
    let res = got(reqwest::Client::new().get(format!("{base}{path}"))).await;
    assert_eq!(res.status, 200, "{path}: {res:?}");
    assert_eq!(res.header("cache-control"), Some("no-cache"), "{path}");
    assert_eq!(
        res.header("x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
    res
}

/// Serves `folder` with `serve --assets-dir`, edits files, and sees each edit on
/// the next request.
async fn edits_show_without_a_restart(base: &str, folder: &UiFolder) {
    let page = page_text(base, "/").await;
    assert_eq!(page.text(), "<p>first</p>");
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("content-security-policy"), Some(UI_CSP));
    let css = page_text(base, "/css/app.css").await;
    assert_eq!(css.text(), "p{color:red}");
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(css.header("content-security-policy"), None);

    folder.write("index.html", "<p>second, and longer</p>");
    assert_eq!(
        page_text(base, "/").await.text(),
        "<p>second, and longer</p>"
    );
    folder.write("css/app.css", "p{color:blue;margin:0}");
    assert_eq!(
        page_text(base, "/css/app.css").await.text(),
        "p{color:blue;margin:0}"
    );
    // A file added while serving is there at once.
    folder.write("new.js", "export {};");
    let js = page_text(base, "/new.js").await;
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    // The API docs still come from the built-in copy.
    let docs = page_text(base, "/docs/").await;
    assert!(docs.body == web_assets::get("docs/index.html").unwrap().bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_assets_dir_serves_from_disk_and_edits_show_without_a_restart() {
    let folder = ui_folder();
    let db = TempDb::new();
    let mut cmd = local_mcp(db.path());
    cmd.env("HTTP_PORT", "0")
        .args(["serve", "--assets-dir"])
        .arg(folder.root());
    let mut server = Proc::spawn(cmd);
    let addr = server.listening(START).await;
    let shown = folder.root().canonicalize().unwrap().display().to_string();
    // Logged beside the listening line, not necessarily before it: wait for it.
    server
        .wait_for_log(&format!("serving the web UI from {shown}"), START)
        .await;
    edits_show_without_a_restart(&format!("http://{addr}"), &folder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_dir_works_from_the_environment_the_config_file_and_stdio_ui() {
    // ASSETS_DIR, through the fixture that starts `serve`.
    let folder = ui_folder();
    let db = TempDb::new();
    let mut cmd = local_mcp(db.path());
    cmd.env("ASSETS_DIR", folder.root());
    let server = Serve::start(cmd);
    assert_eq!(page_text(&server.url(), "/").await.text(), "<p>first</p>");
    drop(server);

    // `assets_dir` in the config file, with `stdio --ui`.
    let folder = ui_folder();
    let config = db.dir().join("local-mcp.toml");
    let line = format!("assets_dir = {:?}\n", folder.root().display().to_string());
    std::fs::write(&config, line).unwrap();
    let mut cmd = local_mcp(db.path());
    cmd.env("HTTP_PORT", "0")
        .arg("--config")
        .arg(&config)
        .args(["stdio", "--ui"]);
    let mut both = Proc::spawn(cmd);
    let addr = both.listening(START).await;
    edits_show_without_a_restart(&format!("http://{addr}"), &folder).await;
    // MCP on stdio works next to it; closing stdin ends both.
    both.initialize("ui-files").await;
    both.close_stdin();
    let exit = both.wait_exit(SOON).await;
    assert!(exit.success(), "{exit:?}:\n{}", both.log());
}

/// Runs `local-mcp ARGS --assets-dir DIR` expecting it to refuse to start;
/// returns its stderr.
async fn refused_start(db: &TempDb, args: &[&str], assets_dir: &Path) -> String {
    let mut cmd = local_mcp(db.path());
    cmd.env("HTTP_PORT", "0")
        .args(args)
        .arg("--assets-dir")
        .arg(assets_dir);
    integration::refused_start(cmd, &format!("{args:?}"), START).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_non_folder_assets_dir_stops_start_up_naming_it() {
    let db = TempDb::new();
    let missing = db.dir().join("no-such-folder");
    let file = db.dir().join("a-file.html");
    std::fs::write(&file, "<p>a file</p>").unwrap();
    for args in [&["serve"][..], &["stdio", "--ui"][..]] {
        let stderr = refused_start(&db, args, &missing).await;
        let named = missing.display().to_string();
        assert!(stderr.contains(&named), "{args:?} names {named}: {stderr}");
        assert!(stderr.contains("does not exist"), "{args:?}: {stderr}");
        assert!(stderr.contains("--assets-dir"), "{args:?}: {stderr}");

        let stderr = refused_start(&db, args, &file).await;
        let named = file.display().to_string();
        assert!(stderr.contains(&named), "{args:?} names {named}: {stderr}");
        assert!(stderr.contains("not a folder"), "{args:?}: {stderr}");
    }
}
