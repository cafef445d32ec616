//! The `local-mcp` command line as a newcomer meets it: help, version, errors and
//! the terminal commands. (Cargo also builds the binary for these tests, which the
//! workspace integration tests then drive.)

use std::process::{Command, Output};

fn local_mcp(db: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_local-mcp"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DB_PATH", db);
    cmd
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run local-mcp")
}

#[test]
fn help_lists_every_command_and_the_quick_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(local_mcp(&dir.path().join("q.db")).arg("--help"));
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "serve",
        "stdio",
        "add",
        "list",
        "mcp-config",
        "Quick start",
        "DB_PATH",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    let out = run(local_mcp(&dir.path().join("q.db")).arg("--version"));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("local-mcp {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn add_then_list_shows_the_queue_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested").join("q.db");
    for t in ["first", "second"] {
        let out = run(local_mcp(&db).args(["add", t]));
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).starts_with("queued "),
            "{}",
            text(&out.stdout)
        );
    }
    let mut add = local_mcp(&db);
    add.args(["add", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = add.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"  from stdin\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());

    let out = run(local_mcp(&db).args(["list", "--json"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let contents: Vec<&str> = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["first", "second", "from stdin"]);
    assert_eq!(listing["total"], 3);
    let table = text(&run(local_mcp(&db).arg("list")).stdout);
    assert_eq!(table.lines().count(), 3, "{table}");
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let out = run(local_mcp(&db).args(["add", "   "]));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("cannot queue this instruction"), "{err}");
    let listing = text(&run(local_mcp(&db).args(["list", "--json"])).stdout);
    assert!(listing.contains("\"total\": 0"), "{listing}");

    let config = dir.path().join("c.toml");
    std::fs::write(&config, "http_prot = 1\n").unwrap();
    let out = run(local_mcp(&db).args(["--config", config.to_str().unwrap(), "list"]));
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("invalid config file") && err.contains("http_prot"),
        "{err}"
    );

    let out = run(local_mcp(&db).args(["serve", "--host", "0.0.0.0", "--port", "0"]));
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("without API_TOKEN"), "{err}");

    let out = run(local_mcp(&db).env("LOG_LEVEL", "loud=x").arg("stdio"));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid LOG_LEVEL"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn mcp_config_names_the_real_binary_and_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let out = run(local_mcp(&db).args(["mcp-config", "--client", "cursor"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let command = config["mcpServers"]["local-mcp"]["command"]
        .as_str()
        .unwrap();
    let real = std::fs::canonicalize(env!("CARGO_BIN_EXE_local-mcp")).unwrap();
    assert_eq!(std::path::Path::new(command), real);
    assert!(
        !text(&out.stderr).is_empty(),
        "a note on where to paste it goes to stderr"
    );

    let out = run(local_mcp(&db)
        .env("API_TOKEN", "t0ken")
        .env("HTTP_PORT", "8111")
        .args(["mcp-config", "--client", "vscode", "--transport", "http"]));
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["servers"]["local-mcp"],
        serde_json::json!({"type": "http", "url": "http://127.0.0.1:8111/mcp",
                           "headers": {"Authorization": "Bearer t0ken"}})
    );
}

#[test]
fn flags_beat_environment_beat_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let config = dir.path().join("local-mcp.toml");
    std::fs::write(&config, "http_port = 9001\nhost = \"localhost\"\n").unwrap();
    let url = |extra_env: Option<(&str, &str)>, extra_args: &[&str]| {
        let mut cmd = local_mcp(&db);
        cmd.args(["--config", config.to_str().unwrap()]);
        if let Some((k, v)) = extra_env {
            cmd.env(k, v);
        }
        cmd.args(["mcp-config", "--client", "cursor", "--transport", "http"])
            .args(extra_args);
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        config["mcpServers"]["local-mcp"]["url"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        url(None, &[]),
        "http://localhost:9001/mcp",
        "the file beats defaults"
    );
    assert_eq!(
        url(Some(("HTTP_PORT", "9002")), &[]),
        "http://localhost:9002/mcp"
    );
    assert_eq!(
        url(Some(("HTTP_PORT", "9002")), &["--port", "9003"]),
        "http://localhost:9003/mcp"
    );
}
