//! `GET /docs`: the interactive API docs (Swagger UI over `/openapi.json`), served
//! from the files the `web-assets` crate embeds, so the page loads nothing from the
//! network. Also the rules shared with `/openapi.json` and the web UI: a strong
//! `ETag`, `If-None-Match` answered with 304, `Cache-Control` by kind of file, and
//! the headers every static answer carries.

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;
use crate::openapi as doc;

/// The policy of the docs page: its own scripts and styles only (Swagger UI sets
/// inline styles and uses `data:` images), requests to this server only, and no
/// framing by other pages.
pub(crate) const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// A cache policy for files that never change under the same URL.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// What [`respond`] sends.
pub(crate) struct Body<'a> {
    pub(crate) bytes: &'static [u8],
    pub(crate) content_type: &'a str,
    pub(crate) etag: &'a str,
    pub(crate) immutable: bool,
}

impl From<&web_assets::Asset> for Body<'static> {
    fn from(asset: &web_assets::Asset) -> Self {
        Body {
            bytes: asset.bytes,
            content_type: asset.content_type,
            etag: asset.etag,
            immutable: asset.immutable,
        }
    }
}

/// A strong ETag for `bytes` (FNV-1a, 64 bits, quoted).
pub(crate) fn etag_of(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("\"{hash:016x}\"")
}

/// Whether an `If-None-Match` value lists `etag` (or is `*`). Weak validators
/// match too: for `GET` the comparison is the weak one (RFC 9110 §13.1.2).
fn matches(if_none_match: &HeaderValue, etag: &str) -> bool {
    let Ok(list) = if_none_match.to_str() else {
        return false;
    };
    let etag = etag.trim_start_matches("W/");
    list.split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

/// [`respond_with`] under the docs page's policy.
pub(crate) fn respond(req: &HttpRequest, body: Body<'_>) -> HttpResponse {
    respond_with(req, body, DOCS_CSP)
}

/// A 200 with `body`, or a 304 when the request's `If-None-Match` already holds
/// its ETag; with the caching headers, and [`protect`]'s with `csp` on HTML.
pub(crate) fn respond_with(req: &HttpRequest, body: Body<'_>, csp: &'static str) -> HttpResponse {
    let fresh = (req.method() == Method::GET || req.method() == Method::HEAD)
        && req
            .headers()
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| matches(v, body.etag));
    let mut res = if fresh {
        HttpResponse::NotModified().finish()
    } else {
        HttpResponse::Ok()
            .content_type(body.content_type.to_owned())
            .body(body.bytes)
    };
    if let Ok(etag) = HeaderValue::from_str(body.etag) {
        res.headers_mut().insert(header::ETAG, etag);
    }
    let cache = if body.immutable {
        IMMUTABLE
    } else {
        "no-cache"
    };
    // A 304 carries no body, so no content type to choose a policy by.
    let html = !fresh && body.content_type.starts_with("text/html");
    protect(res.headers_mut(), cache, html.then_some(csp));
    res
}

/// The headers of every static answer: its cache policy, `nosniff` (a file is
/// never run as another type than the one sent), no referrer to other sites, and
/// on a page its content security policy.
pub(crate) fn protect(
    headers: &mut HeaderMap,
    cache: &'static str,
    page_csp: Option<&'static str>,
) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(csp) = page_csp {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        );
    }
}

/// `GET /docs`: on to `/docs/`, the viewer's own directory, so that the page's
/// relative URLs, if it has any, resolve below it.
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "getDocs",
    tag = "docs",
    summary = "Interactive API docs",
    description = "Redirects to `/docs/`, the viewer's own directory, so the page's relative URLs resolve under it. Never needs a token.",
    responses(
        (status = 308, description = "Go to `/docs/` (with the same query string).",
            headers(("Location" = String, description = "`/docs/`"))),
    ),
)]
pub(crate) async fn redirect(req: HttpRequest) -> HttpResponse {
    let location = match req.query_string() {
        "" => String::from("/docs/"),
        query => format!("/docs/?{query}"),
    };
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, location))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .finish()
}

/// `GET /docs/`: the page.
#[utoipa::path(
    get,
    path = "/docs/",
    operation_id = "getDocsIndex",
    tag = "docs",
    summary = "The API docs page",
    description = "An interactive viewer (Swagger UI, vendored) over `/openapi.json`. Everything it loads comes from this server: no CDN, no other network request. Served with a `Content-Security-Policy` that keeps it so. \"Try it out\" sends real requests to this server. Never needs a token.",
    params(doc::IfNoneMatch),
    responses(
        (status = 200, description = "The page.", body = String, content_type = "text/html",
            headers(
                ("ETag" = String, description = "A strong validator of the body; send it back in `If-None-Match`."),
                ("Cache-Control" = String, description = "`no-cache` (revalidate with the ETag), or `public, max-age=31536000, immutable` for vendored files whose URL changes with their version."),
                ("Content-Security-Policy" = String, description = "`default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'`"),
            )),
        (status = 304, response = inline(doc::NotModified)),
    ),
)]
pub(crate) async fn index(req: HttpRequest) -> HttpResponse {
    send(&req, "")
}

/// `GET /docs/{file}`: the page's scripts and styles. The path is
/// percent-decoded first, so `vendor%2Fswagger-ui%2Fswagger-ui.css` (as a client
/// filling in the `{file}` parameter sends it) is found too.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    operation_id = "getDocsFile",
    tag = "docs",
    summary = "A file of the API docs page",
    description = "The viewer's scripts, styles and licence, embedded in the binary. Vendored files (under `vendor/`) are cached for good; the others are revalidated with their ETag. An unknown file gets the JSON 404. Never needs a token.",
    params(
        ("file" = String, Path, description = "The file's path below `/docs/`; it may contain `/` (`vendor/swagger-ui/swagger-ui.css`)."),
        doc::IfNoneMatch,
    ),
    responses(
        (status = 200, description = "The file, with the `Content-Type` of its extension (`text/javascript; charset=utf-8`, `text/css; charset=utf-8`, `text/html; charset=utf-8`, `text/plain; charset=utf-8`, ...).",
            body = String, content_type = "*/*", headers(
                ("ETag" = String, description = "A strong validator of the body; send it back in `If-None-Match`."),
                ("Cache-Control" = String, description = "`no-cache` (revalidate with the ETag), or `public, max-age=31536000, immutable` for vendored files whose URL changes with their version."),
            )),
        (status = 304, response = inline(doc::NotModified)),
        (status = 404, response = doc::NotFound),
    ),
)]
pub(crate) async fn file(req: HttpRequest, file: web::Path<String>) -> HttpResponse {
    send(&req, &file.into_inner())
}

/// The docs' file `file` (`""`: the page).
fn send(req: &HttpRequest, file: &str) -> HttpResponse {
    let name = if file.is_empty() { "index.html" } else { file };
    match web_assets::get(&format!("docs/{name}")) {
        Some(asset) => respond(req, Body::from(asset)),
        None => {
            ApiError::NotFound(format!("the API docs have no file {:?}", req.path())).to_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_are_understood() {
        let etag = "\"abc\"";
        for yes in ["\"abc\"", "W/\"abc\"", "\"x\", \"abc\"", "*", " \"abc\" "] {
            assert!(matches(&HeaderValue::from_str(yes).unwrap(), etag), "{yes}");
        }
        for no in ["\"abd\"", "abc", "", "\"abc"] {
            assert!(!matches(&HeaderValue::from_str(no).unwrap(), etag), "{no}");
        }
    }

    #[test]
    fn etags_differ_with_the_bytes() {
        assert_ne!(etag_of(b"a"), etag_of(b"b"));
        assert_eq!(etag_of(b"a"), etag_of(b"a"));
        assert!(etag_of(b"").starts_with('"') && etag_of(b"").ends_with('"'));
    }
}
