//! The README's quick start, walked literally: the commands in its first code
//! block are read from README.md and run as written, so the README cannot drift
//! from what works on a fresh clone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use integration::Proc;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// The commands of the first ```sh block under `## Quick start`, without their
/// trailing comments.
fn quick_start_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("read README.md");
    let section = readme
        .split("\n## Quick start")
        .nth(1)
        .expect("README.md has a `## Quick start` section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the quick start has a ```sh block");
    block
        .lines()
        .map(|line| line.split(" #").next().unwrap_or("").trim().to_owned())
        .filter(|line| !line.is_empty())
        .collect()
}

/// The target directory the tests were built into, so `cargo run` finds the
/// binary already built instead of building it again elsewhere.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("the test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

#[test]
fn the_quick_start_is_one_command_to_serve_and_one_to_test() {
    let commands = quick_start_commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert_eq!(commands[0], "cargo run -p local-mcp -- serve");
    assert_eq!(commands[1], "cargo test --workspace");
    // CI runs the README's test command, not a different one.
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).expect("read .ci/run");
    assert!(
        ci.lines().any(|l| l.trim_start().starts_with(&commands[1])),
        "`.ci/run` does not run {:?}",
        commands[1]
    );
}

/// The first command, as written, in the repository: it serves the page, the API
/// and MCP on the embedded defaults. Only the port (0, so the test never clashes
/// with a real server on 8000) and the data folder (a temporary one, so the
/// default database path is used without touching the user's) come from outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_serve_command_serves_the_page_the_api_and_mcp() {
    let serve = quick_start_commands().remove(0);
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("exec {serve}"))
        .current_dir(repo_root())
        .env("CARGO_TARGET_DIR", target_dir())
        .env("HTTP_PORT", "0")
        .env("XDG_DATA_HOME", data.path());
    for var in [
        "HOST",
        "DB_PATH",
        "API_TOKEN",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "LOG_FILE",
        "AUDIT_LOG",
        "ASSETS_DIR",
        "LOCAL_MCP_CONFIG",
        "MCP_STATELESS",
        "ALLOWED_HOSTS",
    ] {
        cmd.env_remove(var);
    }
    let mut server = Proc::spawn(cmd);
    // Generous: cargo may have to build the binary first.
    let addr = server.listening(Duration::from_secs(600)).await;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Next instruction"));

    let added = http
        .post(format!("{base}/api/instructions"))
        .json(&serde_json::json!({"content": "from the quick start"}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);

    let call = http
        .post(format!("{base}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(
            &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "get_user_request", "arguments": {"agent_id": "readme"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(call.status(), 200);
    let text = call.text().await.unwrap();
    assert!(text.contains("from the quick start"), "{text}");

    // The default database location of the README, under the temporary data folder.
    assert!(
        data.path().join("local-mcp/local_mcp.sqlite3").exists(),
        "{}",
        server.log()
    );
}
