//! The `Content-Type` of a web file, by its name. Shared by the build script (which
//! stores it in the asset table) and the library (for files served from disk).

/// The `Content-Type` for a file at `path`, chosen by its extension (case-insensitive).
///
/// Text types carry `charset=utf-8`. Licence-like files without an extension
/// (`LICENSE`, `NOTICE`, `VERSION`, ...) are plain text; anything else unknown is
/// `application/octet-stream`.
pub(crate) fn content_type_for(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return match name {
            "LICENSE" | "LICENCE" | "NOTICE" | "VERSION" | "README" | "COPYING" | "AUTHORS" => {
                "text/plain; charset=utf-8"
            }
            _ => "application/octet-stream",
        };
    };
    if stem.is_empty() {
        // A dotfile such as `.gitignore` has no extension.
        return "application/octet-stream";
    }
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}
