//! Which queue a project's agent uses when nothing names one: the folder name of
//! the project's git root, from a directory on disk or an MCP root's `file://` URI.

use std::path::{Path, PathBuf};

use queue_core::QueueName;

/// The nearest of `dir` and its ancestors that holds a `.git` entry (a folder, or
/// the file a worktree or submodule has).
pub fn git_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

/// The queue of the project in `dir`: its git root's folder name, else the
/// folder's own name (`dir` was named as the project, so it is one even without
/// git). `None` when the name has nothing usable, like `/`.
pub fn queue_of_project(dir: &Path) -> Option<QueueName> {
    let root = git_root(dir).unwrap_or_else(|| dir.to_path_buf());
    folder_queue(&root)
}

/// The queue of a process started in `dir` with no project named: its git root's
/// folder name, or `None` outside a git repository, since a client started from
/// a home folder says nothing about the project.
pub fn queue_of_working_dir(dir: &Path) -> Option<QueueName> {
    folder_queue(&git_root(dir)?)
}

fn folder_queue(dir: &Path) -> Option<QueueName> {
    QueueName::from_folder_name(dir.file_name()?.to_str()?)
}

/// The queue of an MCP root (`file:///home/me/my-app` → `my-app`). A root that
/// exists on this machine goes up to its git root, as a working directory does;
/// one that does not (the client runs elsewhere) gives its last path segment.
pub fn queue_of_root_uri(uri: &str) -> Option<QueueName> {
    let rest = uri.strip_prefix("file://")?;
    // `file://host/path`: the path starts at the first slash after the host.
    let path = &rest[rest.find('/')?..];
    let path = percent_decode(path)?;
    let path = PathBuf::from(path.trim_end_matches('/'));
    if path.is_dir() {
        return queue_of_project(&path);
    }
    folder_queue(&path)
}

/// `%XX` escapes decoded; `None` when they do not make UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(q: Option<QueueName>) -> Option<String> {
        q.map(|q| q.as_str().to_owned())
    }

    #[test]
    fn a_working_dir_gives_its_git_roots_name_and_nothing_outside_git() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("My App");
        let deep = repo.join("src").join("bin");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(queue_of_working_dir(&deep), None);
        assert_eq!(name(queue_of_project(&deep)), Some("bin".to_owned()));

        std::fs::create_dir(repo.join(".git")).unwrap();
        assert_eq!(name(queue_of_working_dir(&deep)), Some("My-App".to_owned()));
        assert_eq!(name(queue_of_project(&deep)), Some("My-App".to_owned()));
        assert_eq!(git_root(&deep).as_deref(), Some(repo.as_path()));
    }

    #[test]
    fn a_worktree_with_a_git_file_counts_as_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("feature-x");
        std::fs::create_dir(&tree).unwrap();
        std::fs::write(tree.join(".git"), "gitdir: ../main/.git/worktrees/x\n").unwrap();
        assert_eq!(
            name(queue_of_working_dir(&tree)),
            Some("feature-x".to_owned())
        );
    }

    #[test]
    fn root_uris_give_their_folder_name() {
        assert_eq!(
            name(queue_of_root_uri("file:///nowhere/here/my%20app/")),
            Some("my-app".to_owned())
        );
        assert_eq!(
            name(queue_of_root_uri("file://localhost/srv/api")),
            Some("api".to_owned())
        );
        assert_eq!(
            name(queue_of_root_uri("file:///C:/Users/me/web")),
            Some("web".to_owned())
        );
        assert_eq!(queue_of_root_uri("https://example.com/x"), None);
        assert_eq!(queue_of_root_uri("file:///"), None);
        assert_eq!(queue_of_root_uri("file:///x/%ff%fe"), None);

        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("shop");
        let sub = repo.join("frontend");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::create_dir(repo.join(".git")).unwrap();
        let uri = format!("file://{}", sub.display());
        assert_eq!(name(queue_of_root_uri(&uri)), Some("shop".to_owned()));
    }
}
