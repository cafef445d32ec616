//! Checks of the embedded table and of the docs page it carries.

use std::collections::HashMap;

use super::{Asset, all, content_type_for, get};

const VENDOR: &str = "docs/vendor/swagger-ui/";

fn text(path: &str) -> &'static str {
    let asset = get(path).unwrap_or_else(|| panic!("{path} is not embedded"));
    std::str::from_utf8(asset.bytes).unwrap_or_else(|e| panic!("{path} is not UTF-8: {e}"))
}

/// Every `http://` or `https://` URL in `source`.
fn network_urls(source: &str) -> Vec<&str> {
    let mut urls = Vec::new();
    for scheme in ["http://", "https://"] {
        for (i, _) in source.match_indices(scheme) {
            let end = source[i..]
                .find(|c: char| {
                    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ')' | '<' | '>')
                })
                .map_or(source.len(), |n| i + n);
            urls.push(&source[i..end]);
        }
    }
    urls
}

#[test]
fn every_asset_has_a_body_and_a_known_content_type() {
    assert!(!all().is_empty());
    for asset in all() {
        assert!(!asset.bytes.is_empty(), "{} is empty", asset.path);
        assert_ne!(
            asset.content_type, "application/octet-stream",
            "{} has no specific content type; teach content_type_for its extension",
            asset.path
        );
        assert_eq!(
            asset.content_type,
            content_type_for(asset.path),
            "{}",
            asset.path
        );
    }
}

#[test]
fn paths_are_relative_sorted_and_unique() {
    let paths: Vec<&str> = all().iter().map(|a| a.path).collect();
    for path in &paths {
        assert!(!path.starts_with('/'), "{path}");
        assert!(!path.contains('\\'), "{path}");
        assert!(
            path.split('/')
                .all(|part| !part.is_empty() && part != "." && part != ".."),
            "{path}"
        );
        assert!(
            path.split('/').all(|part| !part.starts_with('.')),
            "hidden file embedded: {path}"
        );
    }
    assert!(
        paths.windows(2).all(|w| w[0] < w[1]),
        "not sorted and unique: {paths:?}"
    );
}

#[test]
fn get_finds_every_asset_and_nothing_else() {
    for asset in all() {
        assert!(
            std::ptr::eq(get(asset.path).unwrap(), asset),
            "{}",
            asset.path
        );
    }
    for missing in [
        "",
        "/docs/index.html",
        "docs",
        "docs/",
        "docs/missing.html",
        "../Cargo.toml",
    ] {
        assert!(get(missing).is_none(), "{missing:?}");
    }
}

#[test]
fn etags_are_quoted_and_differ_for_different_files() {
    let mut seen: HashMap<&str, &Asset> = HashMap::new();
    for asset in all() {
        let etag = asset.etag;
        assert!(
            etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
            "{etag}"
        );
        assert!(
            etag[1..etag.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_hexdigit()),
            "{}: {etag}",
            asset.path
        );
        if let Some(other) = seen.insert(etag, asset) {
            assert_eq!(
                other.bytes, asset.bytes,
                "{} and {} differ but share the ETag {etag}",
                other.path, asset.path
            );
        }
    }
    assert_ne!(
        get("docs/index.html").unwrap().etag,
        get("docs/init.js").unwrap().etag
    );
}

/// FNV-1a 64, as build.rs computes it.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn etags_are_the_hash_of_the_embedded_bytes() {
    // Published FNV-1a 64 test vectors.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    for asset in all() {
        assert_eq!(
            asset.etag,
            format!("\"{:016x}\"", fnv1a64(asset.bytes)),
            "{}",
            asset.path
        );
    }
}

#[test]
fn only_vendored_files_are_immutable() {
    for asset in all() {
        assert_eq!(
            asset.immutable,
            asset.path.contains("/vendor/"),
            "{}",
            asset.path
        );
    }
}

#[test]
fn content_types_by_extension() {
    let cases = [
        ("index.html", "text/html; charset=utf-8"),
        ("css/base.css", "text/css; charset=utf-8"),
        ("js/app.js", "text/javascript; charset=utf-8"),
        ("js/app.mjs", "text/javascript; charset=utf-8"),
        ("JS/APP.JS", "text/javascript; charset=utf-8"),
        ("openapi.json", "application/json"),
        ("js/app.js.map", "application/json"),
        ("img/logo.svg", "image/svg+xml"),
        ("fonts/display.woff2", "font/woff2"),
        ("img/logo.png", "image/png"),
        ("favicon.ico", "image/x-icon"),
        ("fonts/OFL.txt", "text/plain; charset=utf-8"),
        (
            "docs/vendor/swagger-ui/LICENSE",
            "text/plain; charset=utf-8",
        ),
        ("docs/vendor/swagger-ui/NOTICE", "text/plain; charset=utf-8"),
        (
            "docs/vendor/swagger-ui/VERSION",
            "text/plain; charset=utf-8",
        ),
        ("archive.tar.zst", "application/octet-stream"),
        ("Makefile", "application/octet-stream"),
        (".gitkeep", "application/octet-stream"),
        ("css.d/noext", "application/octet-stream"),
    ];
    for (path, want) in cases {
        assert_eq!(content_type_for(path), want, "{path}");
    }
}

#[test]
fn the_table_includes_the_vendored_docs_viewer() {
    let bundle = get(&format!("{VENDOR}swagger-ui-bundle.js")).expect("the Swagger UI bundle");
    assert!(bundle.immutable);
    assert_eq!(bundle.content_type, "text/javascript; charset=utf-8");
    // Large: the real bundle, not a pointer or a stub.
    assert!(bundle.bytes.len() > 500_000, "{} bytes", bundle.bytes.len());
    assert!(text(&format!("{VENDOR}swagger-ui-bundle.js")).contains("SwaggerUIBundle"));
    assert!(get(&format!("{VENDOR}swagger-ui.css")).is_some_and(|css| css.immutable));
    assert!(text(&format!("{VENDOR}LICENSE")).contains("Apache License"));
    assert!(text(&format!("{VENDOR}VERSION")).starts_with("swagger-ui-dist@"));
}

#[test]
fn docs_page_loads_only_local_files() {
    for path in ["docs/index.html", "docs/init.js", "docs/docs.css"] {
        let urls = network_urls(text(path));
        assert!(urls.is_empty(), "{path} refers to the network: {urls:?}");
    }
    let html = text("docs/index.html");
    assert!(!html.contains("//cdn") && !html.contains("src=\"//") && !html.contains("href=\"//"));
    // Every src= and href= is an absolute path of an embedded asset (or the OpenAPI
    // document, which http-api serves), so the page works at /docs and at /docs/.
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            let url = &rest[..rest.find('"').unwrap()];
            assert!(url.starts_with('/'), "{url} is not an absolute path");
            let path = url[1..].split('?').next().unwrap();
            assert!(
                path == "openapi.json" || get(path).is_some(),
                "{url} is not embedded"
            );
        }
    }
}

#[test]
fn docs_page_has_no_inline_script_or_style() {
    let html = text("docs/index.html");
    let mut rest = html;
    while let Some(i) = rest.find("<script") {
        let tag_end = rest[i..].find('>').unwrap() + i;
        assert!(
            rest[i..tag_end].contains(" src="),
            "inline script in index.html"
        );
        assert!(
            rest[tag_end + 1..].starts_with("</script>"),
            "inline script in index.html"
        );
        rest = &rest[tag_end..];
    }
    assert!(!html.contains("<style"), "inline <style> in index.html");
    assert!(
        !html.contains(" style="),
        "inline style attribute in index.html"
    );
    for (i, _) in html.match_indices(" on") {
        let name_end = html[i + 3..]
            .find(|c: char| !c.is_ascii_lowercase())
            .map_or(html.len(), |n| i + 3 + n);
        assert!(
            !html[name_end..].starts_with('='),
            "inline event handler in index.html: {}",
            &html[i + 1..name_end]
        );
    }
}

#[test]
fn docs_viewer_is_configured_to_stay_local() {
    let init = text("docs/init.js");
    for option in [
        "url: \"/openapi.json\"",
        "validatorUrl: null",
        "persistAuthorization: false",
        "tryItOutEnabled: true",
        "queryConfigEnabled: false",
        "layout: \"BaseLayout\"",
    ] {
        assert!(init.contains(option), "init.js lacks `{option}`");
    }
    let html = text("docs/index.html");
    assert!(html.contains("<title>local-mcp API</title>"));
    assert!(html.contains("Authorization: Bearer &lt;token&gt;") && html.contains("API_TOKEN"));
}

#[test]
fn vendored_urls_carry_the_vendored_version() {
    // The bundle is served as immutable, so a new version must change its URL.
    let version = text(&format!("{VENDOR}VERSION")).lines().next().unwrap();
    let version = version.strip_prefix("swagger-ui-dist@").unwrap();
    let html = text("docs/index.html");
    let vendored: Vec<_> = html.match_indices("/docs/vendor/").collect();
    assert_eq!(vendored.len(), 2, "the bundle and its stylesheet");
    for (i, _) in vendored {
        let url = &html[i..i + html[i..].find('"').unwrap()];
        assert!(
            url.ends_with(&format!("?v={version}")),
            "{url} lacks ?v={version}"
        );
    }
}
