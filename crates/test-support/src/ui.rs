//! What the web UI's tests expect of it, kept in one place so the in-process
//! route tests and the served-binary tests cannot drift apart, and the folder
//! of UI files on disk both serve.

use std::path::PathBuf;

use web_assets::Asset;

/// The policy SPEC and the design ask of the UI's page.
pub const UI_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; font-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The embedded files of the UI (everything but the API docs under `docs/`).
pub fn ui_assets() -> Vec<&'static Asset> {
    let assets: Vec<_> = web_assets::all()
        .iter()
        .filter(|a| !a.path.starts_with("docs/"))
        .collect();
    assert!(
        assets.iter().any(|a| a.path == "index.html"),
        "no index.html embedded: {:?}",
        assets.iter().map(|a| a.path).collect::<Vec<_>>()
    );
    assets
}

/// A folder of UI files on disk (`assets/` in a temporary folder), with files
/// next to it, outside the folder, that must never be served.
#[derive(Debug)]
pub struct UiFolder {
    tmp: tempfile::TempDir,
}

impl UiFolder {
    /// `files` inside `assets/` and `outside` next to it; paths may name
    /// subfolders, which are made.
    pub fn new(files: &[(&str, &[u8])], outside: &[(&str, &[u8])]) -> UiFolder {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let folder = UiFolder { tmp };
        std::fs::create_dir_all(folder.root()).unwrap();
        for (name, bytes) in files {
            folder.write(name, bytes);
        }
        for (name, bytes) in outside {
            std::fs::write(folder.outside(name), bytes).unwrap();
        }
        folder
    }

    /// The UI folder, `assets/`.
    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("assets")
    }

    /// `name` next to the UI folder.
    pub fn outside(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Writes `file` in the UI folder, making its subfolders.
    pub fn write(&self, file: &str, contents: impl AsRef<[u8]>) {
        let path = self.root().join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, contents).unwrap();
    }
}
