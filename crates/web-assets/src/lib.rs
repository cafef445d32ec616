//! local-mcp's static web files, embedded in the binary at build time.
//!
//! Every file under this crate's `assets/` directory becomes an [`Asset`]: its bytes,
//! its `Content-Type` and a strong ETag, all computed by `build.rs`, so a server
//! only looks a path up and writes the answer. Adding a file to `assets/` is enough
//! to embed it; hidden files (names starting with `.`) are left out.
//!
//! Paths are relative to `assets/`, `/`-separated, without a leading slash, and an
//! asset is meant to be served at `/` followed by its path: `docs/index.html` at
//! `/docs/index.html` (and, as the docs page, at `/docs`). The pages refer to each
//! other by such absolute paths, so they work whichever of those URLs loaded them.
//!
//! The crate has no dependencies and knows nothing of HTTP servers; `http-api`
//! turns an [`Asset`] into a response. When serving from disk for live editing,
//! [`content_type_for`] gives the same content types as the embedded table.
//!
//! What is here:
//! - `docs/`: the interactive API docs over `/openapi.json` (Swagger UI, vendored
//!   from npm by `scripts/vendor-docs-viewer.sh` into `docs/vendor/swagger-ui/`,
//!   with its licence). It loads nothing from the network but that document.

#![deny(missing_docs)]

mod content_type;

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// The path below `assets/`, `/`-separated, without a leading slash
    /// (`docs/index.html`).
    pub path: &'static str,
    /// The file's contents.
    pub bytes: &'static [u8],
    /// The `Content-Type` header value, from the file's extension
    /// ([`content_type_for`]).
    pub content_type: &'static str,
    /// A strong ETag, quoted as the `ETag` header wants it: a 64-bit hash of the
    /// bytes in hex, computed at build time. Files with different bytes have
    /// different ETags.
    pub etag: &'static str,
    /// Whether the file may be cached for good (`Cache-Control: public,
    /// max-age=31536000, immutable`): true for vendored files (a path containing
    /// `/vendor/`), whose URLs change with their version. Other files should be
    /// revalidated with their ETag.
    pub immutable: bool,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The embedded file at `path` (`"docs/index.html"`, no leading slash), if any.
///
/// The lookup is exact: no leading slash, no `..`, no index-file fallback for a
/// directory; a server maps `/docs` to `docs/index.html` itself.
pub fn get(path: &str) -> Option<&'static Asset> {
    ASSETS
        .binary_search_by(|asset| asset.path.cmp(path))
        .ok()
        .map(|i| &ASSETS[i])
}

/// Every embedded file, sorted by path.
pub fn all() -> &'static [Asset] {
    &ASSETS
}

/// The `Content-Type` for a file at `path`, chosen by its extension
/// (case-insensitive): `text/html; charset=utf-8`, `text/css; charset=utf-8`,
/// `text/javascript; charset=utf-8`, `application/json` (also for `.map`),
/// `image/svg+xml`, `font/woff2`, `image/png`, `image/x-icon`,
/// `text/plain; charset=utf-8` (also for `LICENSE`, `NOTICE`, `VERSION` and the
/// like), ...; `application/octet-stream` when the extension is unknown.
///
/// The embedded table uses it too, so files served from disk get the same types.
pub fn content_type_for(path: &str) -> &'static str {
    content_type::content_type_for(path)
}

#[cfg(test)]
mod tests;
