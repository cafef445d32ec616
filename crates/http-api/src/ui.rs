//! The web UI at `/`: `index.html` and the files it loads (`/css/…`, `/js/…`,
//! `/fonts/…`, `/favicon.svg`), from the copies `web-assets` embeds or, for live
//! editing, from a folder on disk that is read again on every request.
//!
//! The page holds no data, so it needs no token: it asks the person for one when
//! the API answers 401. Its route comes after every other, so `/api`, `/mcp`,
//! `/healthz`, `/openapi.json` and `/docs` keep theirs, and a path that names no
//! UI file gets the same JSON 404 as any unknown path.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_files::NamedFile;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::ApiState;
use crate::docs::{self, Body};
use crate::error::ApiError;

/// The page's policy: its own scripts, styles, fonts and images (plus `data:`
/// images, for icons drawn in CSS), requests to this server only, no `<base>`
/// that could send relative URLs elsewhere, forms posted here only, and no
/// framing by other pages. No inline script or style is allowed, so an
/// instruction's text can never run as code even if it slipped into the page.
pub(crate) const UI_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; font-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Where the web UI's files come from: the copies built into the binary (the
/// default), or a folder on disk for working on the UI without rebuilding.
#[derive(Clone, Debug, Default)]
pub struct UiFiles {
    /// The folder, canonical (so a file's real path can be checked to lie inside
    /// it), or `None` for the embedded copies.
    dir: Option<Arc<Path>>,
}

impl UiFiles {
    /// The copies embedded in the binary by `web-assets`.
    pub fn embedded() -> Self {
        UiFiles::default()
    }

    /// The files under `dir`, read on every request: an edited file is served as
    /// soon as the page reloads. Fails when `dir` is missing, is not a folder or
    /// cannot be read, with a message naming it.
    pub fn directory(dir: &Path) -> Result<Self, AssetsDirError> {
        let path = dir.to_path_buf();
        let canonical = dir.canonicalize().map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => AssetsDirError::Missing { path: path.clone() },
            _ => AssetsDirError::Unreadable {
                path: path.clone(),
                source,
            },
        })?;
        if !canonical.is_dir() {
            return Err(AssetsDirError::NotADirectory { path });
        }
        if let Err(source) = std::fs::read_dir(&canonical) {
            return Err(AssetsDirError::Unreadable { path, source });
        }
        Ok(UiFiles {
            dir: Some(Arc::from(canonical)),
        })
    }

    /// The folder the files are read from (absolute, symbolic links resolved), or
    /// `None` when they are the embedded copies.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

/// `embedded`, or the folder's path: what a start-up log line says.
impl fmt::Display for UiFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.dir {
            Some(dir) => write!(f, "{}", dir.display()),
            None => f.write_str("embedded"),
        }
    }
}

/// Why a folder cannot serve the web UI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssetsDirError {
    /// Nothing exists at the path.
    #[error("the assets folder {} does not exist", path.display())]
    Missing {
        /// The path as given.
        path: PathBuf,
    },
    /// The path is a file, not a folder.
    #[error("{} is a file, not a folder", path.display())]
    NotADirectory {
        /// The path as given.
        path: PathBuf,
    },
    /// The folder exists but cannot be read (permissions, say).
    #[error("cannot read the assets folder {}: {source}", path.display())]
    Unreadable {
        /// The path as given.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// Any method on `/{path}`, after every other route. `path` arrives
/// percent-decoded, so `%2e%2e` is seen as the `..` it stands for.
pub(crate) async fn serve(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let Some(name) = ui_path(&path) else {
        return not_found(&req);
    };
    let response = match state.ui.dir() {
        None => embedded(&req, name),
        Some(dir) => from_disk(&req, dir, name).await,
    };
    match response {
        Some(_) if !matches!(*req.method(), Method::GET | Method::HEAD) => {
            let mut res = ApiError::MethodNotAllowed(format!(
                "{} is not allowed on {}; the web UI's files are only read (GET)",
                req.method(),
                req.path()
            ))
            .to_response();
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            res
        }
        Some(res) => res,
        None => not_found(&req),
    }
}

/// The same answer as any other unknown path.
fn not_found(req: &HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!("nothing is served at {}", req.path())).to_response()
}

/// The UI file a decoded request path names (`""` is the page itself), or `None`
/// for anything that is not a plain relative path of visible files: `..`, `.`,
/// hidden names, empty segments (`a//b`, a trailing `/` asking for a folder),
/// backslashes, drive letters and NULs. `docs/` belongs to the API docs, which
/// come from the embedded copy whatever serves the UI.
fn ui_path(decoded: &str) -> Option<&str> {
    if decoded.is_empty() {
        return Some("index.html");
    }
    let plain = decoded.split('/').all(|segment| {
        !segment.is_empty() && !segment.starts_with('.') && !segment.contains(['\\', ':', '\0'])
    });
    let docs = decoded.split('/').next() == Some("docs");
    (plain && !docs).then_some(decoded)
}

fn embedded(req: &HttpRequest, name: &str) -> Option<HttpResponse> {
    let asset = web_assets::get(name)?;
    Some(docs::respond_with(req, Body::from(asset), UI_CSP))
}

/// The file `name` under `dir`, with actix-files' `ETag`, `Last-Modified`, 304 and
/// ranges, our content type and headers, and `no-cache` so that every reload
/// revalidates and an edit shows at once.
async fn from_disk(req: &HttpRequest, dir: &Path, name: &str) -> Option<HttpResponse> {
    let (root, relative) = (dir.to_path_buf(), name.to_owned());
    let file = match web::block(move || open(&root, &relative)).await {
        Ok(file) => file?,
        Err(e) => {
            tracing::warn!(error = %e, file = name, "could not read a web UI file from disk");
            return None;
        }
    };
    let content_type = web_assets::content_type_for(name);
    let file = match content_type.parse() {
        Ok(mime) => file.set_content_type(mime),
        Err(_) => file,
    };
    let mut res = file.disable_content_disposition().into_response(req);
    let html = res.status() == StatusCode::OK && content_type.starts_with("text/html");
    docs::protect(res.headers_mut(), "no-cache", html.then_some(UI_CSP));
    Some(res)
}

/// Opens `root/name` if it is a regular file whose real path (symbolic links
/// followed) lies inside `root`. Blocking: runs on the blocking pool.
fn open(root: &Path, name: &str) -> Option<NamedFile> {
    let path = root.join(name);
    let real = match path.canonicalize() {
        Ok(real) => real,
        Err(e) => {
            if !matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) {
                tracing::warn!(error = %e, path = %path.display(), "cannot read a web UI file");
            }
            return None;
        }
    };
    if !real.starts_with(root) {
        tracing::warn!(
            path = %path.display(),
            target = %real.display(),
            "not serving a web UI file that leads outside the assets folder"
        );
        return None;
    }
    match NamedFile::open(&real) {
        Ok(file) if file.metadata().is_file() => Some(file),
        // A folder: no listings.
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, path = %real.display(), "cannot read a web UI file");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_name_ui_files() {
        for (decoded, name) in [
            ("", "index.html"),
            ("index.html", "index.html"),
            ("css/base.css", "css/base.css"),
            ("fonts/x.woff2", "fonts/x.woff2"),
            ("a..b.js", "a..b.js"),
            ("documents/x", "documents/x"),
        ] {
            assert_eq!(ui_path(decoded), Some(name), "{decoded:?}");
        }
    }

    #[test]
    fn anything_else_names_nothing() {
        for decoded in [
            "..",
            "../Cargo.toml",
            "css/../../secret",
            "css/..",
            "./index.html",
            ".env",
            "css/.hidden.css",
            "/etc/passwd",
            "css//base.css",
            "css/",
            "..\\Cargo.toml",
            "css\\base.css",
            "C:/Windows/win.ini",
            "c:x",
            "index.html\0.js",
            "docs",
            "docs/index.html",
        ] {
            assert_eq!(ui_path(decoded), None, "{decoded:?}");
        }
    }

    #[test]
    fn a_missing_or_non_folder_assets_dir_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nowhere");
        let err = UiFiles::directory(&missing).unwrap_err();
        assert!(matches!(err, AssetsDirError::Missing { .. }), "{err:?}");
        assert!(err.to_string().contains(&missing.display().to_string()));

        let file = tmp.path().join("index.html");
        std::fs::write(&file, "<!doctype html>").unwrap();
        let err = UiFiles::directory(&file).unwrap_err();
        assert!(
            matches!(err, AssetsDirError::NotADirectory { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&file.display().to_string()));

        let ui = UiFiles::directory(tmp.path()).unwrap();
        assert_eq!(ui.dir(), Some(tmp.path().canonicalize().unwrap().as_path()));
        assert_eq!(UiFiles::embedded().to_string(), "embedded");
        assert_eq!(ui.to_string(), ui.dir().unwrap().display().to_string());
    }

    #[test]
    fn files_outside_the_folder_or_not_files_are_not_opened() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("assets");
        std::fs::create_dir_all(root.join("css")).unwrap();
        std::fs::write(root.join("css/base.css"), "a{}").unwrap();
        std::fs::write(tmp.path().join("secret.txt"), "no").unwrap();
        let root = root.canonicalize().unwrap();
        assert!(open(&root, "css/base.css").is_some());
        assert!(open(&root, "css").is_none(), "a folder");
        assert!(open(&root, "css/missing.css").is_none());
        assert!(open(&root, "css/base.css/x").is_none());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("secret.txt"), root.join("leak.txt"))
                .unwrap();
            assert!(
                open(&root, "leak.txt").is_none(),
                "a link out of the folder"
            );
            std::os::unix::fs::symlink(root.join("css/base.css"), root.join("inside.css")).unwrap();
            assert!(open(&root, "inside.css").is_some(), "a link within it");
        }
    }

    #[test]
    fn the_policies_are_valid_header_values() {
        for csp in [UI_CSP, docs::DOCS_CSP] {
            assert!(HeaderValue::from_str(csp).is_ok(), "{csp}");
        }
        assert!(!UI_CSP.contains("unsafe"), "no inline code in the UI");
    }
}
