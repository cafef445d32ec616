//! The web UI's files at `/`: every embedded file with its type, bytes and
//! headers, revalidation, paths that lead nowhere (traversal, hidden files,
//! folders), the routes that keep winning over the UI, and files served from a
//! folder on disk. Never reads what the files say: the UI changes on its own.

use actix_web::http::{Method, header};
use http_api::UiFiles;

use test_support::{UI_CSP, UiFolder, ui_assets};

use crate::support::{OWN_ORIGIN, Reply, Server, Setup};

/// The headers every UI file carries; the policy on pages only.
#[track_caller]
fn expect_ui_headers(reply: &Reply, html: bool) {
    let what = &reply.what;
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        reply.header("referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
    let csp = reply.header("content-security-policy");
    if html {
        assert_eq!(csp, Some(UI_CSP), "{what}");
    } else {
        assert_eq!(csp, None, "{what}");
    }
}

#[actix_web::test]
async fn every_embedded_ui_file_is_served_with_its_type_and_bytes() {
    let srv = Server::start().await;
    for asset in ui_assets() {
        let uri = format!("/{}", asset.path);
        let reply = srv.get(&uri).await;
        reply.expect_status(200);
        assert_eq!(
            reply.header("content-type"),
            Some(asset.content_type),
            "{uri}"
        );
        assert!(reply.body == asset.bytes, "{uri}: the bytes differ");
        assert_eq!(reply.header("etag"), Some(asset.etag), "{uri}");
        let cache = if asset.immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        assert_eq!(reply.header("cache-control"), Some(cache), "{uri}");
        expect_ui_headers(&reply, asset.content_type.starts_with("text/html"));

        let head = srv.send(Server::req(Method::HEAD, &uri)).await;
        head.expect_status(200);
        assert_eq!(head.header("etag"), Some(asset.etag), "HEAD {uri}");
        assert_eq!(
            head.header("content-type"),
            Some(asset.content_type),
            "HEAD {uri}"
        );
    }
}

#[actix_web::test]
async fn the_page_is_served_at_the_root() {
    let srv = Server::start().await;
    let index = web_assets::get("index.html").expect("index.html is embedded");
    let page = srv.get("/").await;
    page.expect_status(200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.body == index.bytes, "/ is index.html");
    assert_eq!(page.header("etag"), Some(index.etag));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    expect_ui_headers(&page, true);
    // A query string (a bookmark, a cache-buster) changes nothing.
    let again = srv.get("/?from=bookmark").await;
    again.expect_status(200);
    assert_eq!(again.body, page.body);
}

#[actix_web::test]
async fn a_known_etag_gets_304_and_another_the_file() {
    let srv = Server::start().await;
    for asset in ui_assets() {
        for uri in [format!("/{}", asset.path)]
            .into_iter()
            .chain((asset.path == "index.html").then(|| "/".to_owned()))
        {
            for if_none_match in [
                asset.etag.to_owned(),
                format!("W/{}", asset.etag),
                format!("\"other\", {}", asset.etag),
            ] {
                let reply = srv
                    .send(
                        Server::req(Method::GET, &uri)
                            .insert_header((header::IF_NONE_MATCH, if_none_match.as_str())),
                    )
                    .await;
                reply.expect_status(304);
                assert!(reply.body.is_empty(), "{uri}: a 304 has no body");
                assert_eq!(reply.header("etag"), Some(asset.etag), "{uri}");
                assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
            }
            let stale = srv
                .send(
                    Server::req(Method::GET, &uri)
                        .insert_header((header::IF_NONE_MATCH, "\"0000000000000000\"")),
                )
                .await;
            stale.expect_status(200);
            assert!(stale.body == asset.bytes, "{uri}");
        }
    }
}

/// Paths that must never reach a file: up and out of the UI, hidden files,
/// folders, encoded and backslashed variants, and the docs' files by a back door.
const NOWHERE: [&str; 24] = [
    "/../Cargo.toml",
    "/../../../../etc/passwd",
    "/css/../../Cargo.toml",
    "/%2e%2e/Cargo.toml",
    "/%2E%2E/%2E%2E/Cargo.toml",
    "/%2e%2e%2fCargo.toml",
    "/css/..%2f..%2fCargo.toml",
    "/css/%2e%2e/index.html",
    "/..%5cCargo.toml",
    "/css%5c..%5c..%5cCargo.toml",
    "/css%5cbase.css",
    "/%252e%252e/Cargo.toml",
    "/.git/config",
    "/.env",
    "/%2eenv",
    "/css/.hidden.css",
    "/./index.html",
    "/css/",
    "/css",
    "/js/",
    "//index.html",
    "/index.html%00.js",
    "/C:/Windows/win.ini",
    "/docs%2Findex.html",
];

#[actix_web::test]
async fn paths_that_lead_out_or_to_no_file_are_a_json_404() {
    let srv = Server::start().await;
    for uri in NOWHERE {
        srv.get(uri).await.expect_error(404, "not_found");
    }
}

#[actix_web::test]
async fn the_api_routes_keep_winning_over_the_ui() {
    let srv = Server::start().await;
    for uri in [
        "/api/nope",
        "/api/unknown",
        "/api/",
        "/api/status/extra",
        "/healthz/",
        "/openapi.json/x",
        "/nope",
        "/nope.js",
    ] {
        let reply = srv.get(uri).await;
        reply.expect_error(404, "not_found");
        assert!(
            reply.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("nothing is served at")),
            "{uri}: {}",
            reply.json()
        );
    }
    let health = srv.get("/healthz").await;
    health.expect_status(200);
    assert_eq!(health.json()["status"], "ok");
    let status = srv.get("/api/status").await;
    status.expect_status(200);
    assert_eq!(status.json()["server"]["status"], "up");
    let doc = srv.get("/openapi.json").await;
    doc.expect_status(200);
    assert!(doc.json()["openapi"].is_string());
    srv.get("/docs").await.expect_status(308);
    let docs = srv.get("/docs/").await;
    docs.expect_status(200);
    assert!(docs.body == web_assets::get("docs/index.html").unwrap().bytes);
    assert_ne!(
        docs.header("content-security-policy"),
        Some(UI_CSP),
        "the docs keep their own policy"
    );
}

#[actix_web::test]
async fn ui_files_are_only_read() {
    let srv = Server::start().await;
    let request = |method: Method, uri: &str| {
        if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            // With the JSON content type the guard requires, so the route answers.
            Server::json_req(method, uri, &serde_json::json!({}))
        } else {
            Server::req(method, uri)
        }
    };
    for method in [
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ] {
        for uri in ["/", "/index.html"] {
            let reply = srv.send(request(method.clone(), uri)).await;
            reply.expect_error(405, "bad_request");
            assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method} {uri}");
        }
        srv.send(request(method.clone(), "/nope.js"))
            .await
            .expect_error(404, "not_found");
    }
    srv.send(Server::req(Method::POST, "/"))
        .await
        .expect_error(415, "unsupported_media_type");
}

#[actix_web::test]
async fn the_page_needs_no_token_but_the_api_does() {
    let srv = Setup::new().token("s3cret").start().await;
    srv.get("/").await.expect_status(200);
    for asset in ui_assets() {
        srv.get(&format!("/{}", asset.path))
            .await
            .expect_status(200);
    }
    srv.get("/api/status")
        .await
        .expect_error(401, "unauthorized");
    let authorized = srv
        .send(
            Server::req(Method::GET, "/api/status")
                .insert_header((header::AUTHORIZATION, "Bearer s3cret")),
        )
        .await;
    authorized.expect_status(200);
}

#[actix_web::test]
async fn a_foreign_host_or_origin_gets_403_on_the_page() {
    let srv = Server::start().await;
    for (name, value) in [
        (header::HOST, "evil.test"),
        (header::HOST, "evil.test:8000"),
        (header::ORIGIN, "http://evil.test"),
        (header::ORIGIN, "http://localhost:3000"),
        (header::ORIGIN, "null"),
    ] {
        for uri in ["/", "/index.html"] {
            let reply = srv
                .send(Server::req(Method::GET, uri).insert_header((name.clone(), value)))
                .await;
            reply.expect_error(403, "forbidden");
            assert!(reply.header("content-security-policy").is_none());
        }
    }
    let own = srv
        .send(Server::req(Method::GET, "/").insert_header((header::ORIGIN, OWN_ORIGIN)))
        .await;
    own.expect_status(200);
}

/// A folder of UI files on disk, with a secret next to it that must never be
/// served.
fn ui_folder() -> UiFolder {
    UiFolder::new(
        &[
            ("index.html", b"<!doctype html><title>disk</title>"),
            ("css/base.css", b"body{margin:0}"),
            ("fonts.woff2", &[0_u8, 1, 2, 255]),
            (".hidden", b"hidden"),
            ("docs/index.html", b"not the docs"),
        ],
        &[("Cargo.toml", b"secret")],
    )
}

async fn serve(folder: &UiFolder) -> Server {
    let ui = UiFiles::directory(&folder.root()).expect("the folder serves");
    Setup::new().ui(ui).start().await
}

#[actix_web::test]
async fn a_folder_on_disk_serves_its_files_with_the_same_headers() {
    let folder = ui_folder();
    let srv = serve(&folder).await;
    for (uri, file, content_type) in [
        ("/", "index.html", "text/html; charset=utf-8"),
        ("/index.html", "index.html", "text/html; charset=utf-8"),
        ("/css/base.css", "css/base.css", "text/css; charset=utf-8"),
        ("/fonts.woff2", "fonts.woff2", "font/woff2"),
    ] {
        let reply = srv.get(uri).await;
        reply.expect_status(200);
        assert_eq!(
            reply.body,
            std::fs::read(folder.root().join(file)).unwrap(),
            "{uri}"
        );
        assert_eq!(reply.header("content-type"), Some(content_type), "{uri}");
        assert_eq!(reply.header("cache-control"), Some("no-cache"), "{uri}");
        assert!(reply.header("etag").is_some(), "{uri}");
        assert!(reply.header("last-modified").is_some(), "{uri}");
        assert!(reply.header("content-disposition").is_none(), "{uri}");
        expect_ui_headers(&reply, content_type.starts_with("text/html"));
    }
    // The embedded docs stay, whatever the folder holds under docs/.
    let docs = srv.get("/docs/").await;
    docs.expect_status(200);
    assert!(docs.body == web_assets::get("docs/index.html").unwrap().bytes);
}

#[actix_web::test]
async fn a_folder_on_disk_revalidates_and_shows_edits_at_once() {
    let folder = ui_folder();
    let srv = serve(&folder).await;
    let first = srv.get("/css/base.css").await;
    let etag = first.header("etag").expect("an ETag").to_owned();
    let fresh = srv
        .send(
            Server::req(Method::GET, "/css/base.css")
                .insert_header((header::IF_NONE_MATCH, etag.as_str())),
        )
        .await;
    fresh.expect_status(304);
    assert!(fresh.body.is_empty());
    assert_eq!(fresh.header("cache-control"), Some("no-cache"));

    // A longer file: a new size, so a new ETag whatever the clock's resolution.
    std::fs::write(
        folder.root().join("css/base.css"),
        "body{margin:0;padding:1rem}",
    )
    .unwrap();
    let edited = srv.get("/css/base.css").await;
    edited.expect_status(200);
    assert_eq!(&edited.body[..], b"body{margin:0;padding:1rem}");
    let changed = srv
        .send(
            Server::req(Method::GET, "/css/base.css")
                .insert_header((header::IF_NONE_MATCH, etag.as_str())),
        )
        .await;
    changed.expect_status(200);
    assert_eq!(&changed.body[..], b"body{margin:0;padding:1rem}");

    // A file added while serving is there at once; a removed one is gone.
    std::fs::write(folder.root().join("css/new.css"), "p{}").unwrap();
    srv.get("/css/new.css").await.expect_status(200);
    std::fs::remove_file(folder.root().join("css/new.css")).unwrap();
    srv.get("/css/new.css").await.expect_error(404, "not_found");
}

#[actix_web::test]
async fn a_folder_on_disk_serves_nothing_outside_it_or_hidden() {
    let folder = ui_folder();
    #[cfg(unix)]
    std::os::unix::fs::symlink(folder.outside("Cargo.toml"), folder.root().join("link.txt"))
        .unwrap();
    let srv = serve(&folder).await;
    for uri in NOWHERE
        .iter()
        .chain(&["/.hidden", "/link.txt", "/missing.js"])
    {
        let reply = srv.get(uri).await;
        reply.expect_error(404, "not_found");
        assert!(
            !String::from_utf8_lossy(&reply.body).contains("secret"),
            "{uri}"
        );
    }
    srv.send(Server::req(Method::DELETE, "/css/base.css"))
        .await
        .expect_error(405, "bad_request");
    assert!(folder.root().join("css/base.css").exists());
}
