//! The `local-mcp` command line as a newcomer meets it: help, version, errors and
//! the terminal commands (`add`, `list`, `status`, `config`, `audit verify`), with
//! the audit trail they leave. (Cargo also builds the binary for these tests, which
//! the workspace integration tests then drive.)

use std::process::{Command, Output};

/// A command on the database `db`, run in the folder holding it when that exists:
/// out of any git repository, so no project names a queue.
fn local_mcp(db: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_local-mcp"));
    if let Some(dir) = db.parent().filter(|d| d.is_dir()) {
        cmd.current_dir(dir);
    }
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
        "status",
        "config",
        "audit",
        "mcp-config",
        "Quick start",
        "DB_PATH",
        "AUDIT_LOG",
        "AUDIT_CONTENT",
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

/// A loopback port nothing listens on: bound, then released. Ephemeral ports are
/// handed out in turn, so no other program gets this one back in the meantime.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn json_of(cmd: &mut Command) -> serde_json::Value {
    serde_json::from_str(&ok(cmd)).unwrap()
}

#[test]
fn status_shows_the_queue_before_and_after_an_add() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let port = free_port().to_string();
    let status = || {
        let mut cmd = local_mcp(&db);
        cmd.env("HTTP_PORT", &port).arg("status");
        cmd
    };

    let before = ok(&mut status());
    let url = format!("http://127.0.0.1:{port}/healthz");
    assert!(
        before.starts_with(&format!("server    not running (probed {url}")),
        "{before}"
    );
    assert!(
        before.contains("queues    default          0 pending, 0 delivered"),
        "{before}"
    );
    assert!(before.contains("agents    none"), "{before}");
    assert!(before.contains("wait 10 s"), "{before}");
    let json = json_of(status().arg("--json"));
    assert_eq!(json["server"]["status"], "down");
    assert_eq!(json["server"]["probed_url"], url.as_str());
    assert_eq!(json["queue"]["pending_count"], 0);
    assert_eq!(json["agents"], serde_json::json!([]));
    assert_eq!(json["settings"]["agent_stale_after_seconds"], 30);
    assert_eq!(json["database"], db.to_str().unwrap());

    ok(local_mcp(&db).args(["add", "first"]));
    let after = ok(&mut status());
    assert!(
        after.contains("queues    default          1 pending, 0 delivered"),
        "{after}"
    );
    let json = json_of(status().arg("--json"));
    assert_eq!(json["queue"]["pending_count"], 1);
    assert_eq!(json["queue"]["consumed_count"], 0);
}

#[test]
fn queues_and_addressing_from_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let port = free_port().to_string();

    let out = run(local_mcp(&db).args(["add", "--queue", "shop", "--to", "a1", "fix the cart"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains(" on shop for a1 (1 pending)"), "{said}");
    assert!(
        text(&out.stderr).contains("queue \"shop\" is new"),
        "a new queue is pointed out: {}",
        text(&out.stderr)
    );
    // A second add to a queue that exists now, for an agent never seen there.
    let out = run(local_mcp(&db).args(["add", "-q", "shop", "--to", "a2", "second"]));
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("no agent named \"a2\" has called on queue \"shop\""),
        "{}",
        text(&out.stderr)
    );
    ok(local_mcp(&db).args(["add", "on default"]));

    let listed = ok(local_mcp(&db).args(["list", "--queue", "shop"]));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("fix the cart (for a1)"), "{listed}");
    assert!(!listed.contains("on default"), "{listed}");
    let json = json_of(local_mcp(&db).args(["list", "--queue", "shop", "--json"]));
    assert_eq!(json["total"], 2);
    assert_eq!(json["items"][0]["queue"], "shop");
    assert_eq!(json["items"][0]["to_agent_id"], "a1");
    let default = ok(local_mcp(&db).arg("list"));
    assert_eq!(default.lines().count(), 1, "{default}");

    let status = ok(local_mcp(&db).env("HTTP_PORT", &port).arg("status"));
    assert!(
        status.contains("queues    default          1 pending"),
        "{status}"
    );
    assert!(
        status.contains("          shop             2 pending"),
        "{status}"
    );
    let json = json_of(
        local_mcp(&db)
            .env("HTTP_PORT", &port)
            .args(["status", "--json", "--queue", "shop"]),
    );
    assert_eq!(json["queue"]["name"], "shop");
    assert_eq!(json["queue"]["pending_count"], 2);
    assert_eq!(json["queues"].as_array().unwrap().len(), 2);
    let only = ok(local_mcp(&db)
        .env("HTTP_PORT", &port)
        .args(["status", "-q", "shop"]));
    assert!(!only.contains("default "), "{only}");

    // Bad names are refused before anything is written; unknown queues are named.
    let out = run(local_mcp(&db).args(["add", "--queue", "my shop", "x"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invalid value 'my shop'"),
        "{}",
        text(&out.stderr)
    );
    let out = run(local_mcp(&db).args(["add", "--to", "", "x"]));
    assert_eq!(out.status.code(), Some(2));
    let out = run(local_mcp(&db).args(["list", "--queue", "nope"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no queue named \"nope\""),
        "{}",
        text(&out.stderr)
    );
    let out = run(local_mcp(&db)
        .env("HTTP_PORT", &port)
        .args(["status", "--queue", "nope"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("queues: default, shop"),
        "{}",
        text(&out.stderr)
    );
    let json = json_of(local_mcp(&db).args(["list", "--status", "all", "--json", "-q", "shop"]));
    assert_eq!(
        json["total"], 2,
        "nothing was added by the refused commands"
    );
}

#[test]
fn mcp_config_gives_each_project_its_queue() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let project = dir.path().join("my shop");
    std::fs::create_dir_all(project.join(".git")).unwrap();
    let config = |args: &[&str]| {
        let mut cmd = local_mcp(&db);
        cmd.current_dir(&project).arg("mcp-config").args(args);
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };
    let (vscode, note) = config(&["--client", "vscode"]);
    let vscode: serde_json::Value = serde_json::from_str(&vscode).unwrap();
    assert_eq!(
        vscode["servers"]["local-mcp"]["args"],
        serde_json::json!(["stdio", "--project", "${workspaceFolder}"])
    );
    assert!(note.contains("its own queue"), "{note}");
    let (claude, _) = config(&["--client", "claude-code"]);
    assert!(
        claude.starts_with("claude mcp add --scope project local-mcp ")
            && claude.ends_with(" stdio\n"),
        "{claude}"
    );
    let (http, note) = config(&["--client", "cursor", "--transport", "http"]);
    let http: serde_json::Value = serde_json::from_str(&http).unwrap();
    assert_eq!(
        http["mcpServers"]["local-mcp"]["url"],
        "http://127.0.0.1:8000/mcp/q/my-shop"
    );
    assert!(note.contains("\"my-shop\""), "{note}");
    let (named, _) = config(&["--client", "codex", "--queue", "review"]);
    assert!(
        named.contains("args = [\"stdio\", \"--queue\", \"review\"]"),
        "{named}"
    );

    // A client that passes `${workspaceFolder}` unexpanded gets told so.
    let out = run(local_mcp(&db).args(["stdio", "--project", "${workspaceFolder}"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does not expand it"),
        "{}",
        text(&out.stderr)
    );
}

/// Kills the server it holds when dropped, so a failed assertion leaves nothing running.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn status_finds_a_running_server() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let mut child = local_mcp(&db)
        .args(["serve", "--port", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = Server(child);
    // The start-up line names the address; serve logs it once it accepts
    // connections. Its stderr is closed after that line, which must not stop it.
    let marker = "listening on http://127.0.0.1:";
    let port: String = std::io::BufReader::new(stderr)
        .lines()
        .map(Result::unwrap)
        .find_map(|line| {
            let at = line.find(marker)? + marker.len();
            Some(
                line[at..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect(),
            )
        })
        .expect("serve announces its address");
    let status = ok(local_mcp(&db).args(["status", "--port", &port]));
    assert!(
        status.starts_with(&format!("server    up at http://127.0.0.1:{port}\n")),
        "{status}"
    );
    let json = json_of(local_mcp(&db).args(["status", "--json", "--port", &port]));
    assert_eq!(json["server"]["status"], "up");
}

#[test]
fn config_set_saves_valid_values_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let get = ok(local_mcp(&db)
        .env("DEFAULT_WAIT_SECONDS", "7")
        .args(["config", "get"]));
    assert_eq!(
        get.lines().next().unwrap(),
        "default_wait_seconds = 7  # not saved: flag or environment",
        "{get}"
    );
    assert!(
        get.contains("agent_stale_after_seconds = 30  # not saved: built-in default"),
        "{get}"
    );

    let saved = ok(local_mcp(&db).args(["config", "set", "default_wait_seconds", "5"]));
    assert_eq!(saved, "saved default_wait_seconds = 5\n");
    let saved = ok(local_mcp(&db).args(["config", "set", "default_empty_response", "-- go on"]));
    assert_eq!(saved, "saved default_empty_response = \"-- go on\"\n");
    // Saved values beat the environment from now on.
    let wait = ok(local_mcp(&db).env("DEFAULT_WAIT_SECONDS", "7").args([
        "config",
        "get",
        "default_wait_seconds",
    ]));
    assert_eq!(wait, "5\n");
    assert_eq!(
        ok(local_mcp(&db).args(["config", "get", "default_empty_response"])),
        "-- go on\n"
    );
    let json = json_of(local_mcp(&db).args(["config", "get", "--json"]));
    assert_eq!(
        json,
        serde_json::json!({"default_wait_seconds": 5, "default_empty_response": "-- go on",
                           "agent_stale_after_seconds": 30})
    );

    for (args, expected) in [
        (
            ["default_wait_seconds", "86401"],
            "invalid value \"86401\" for default_wait_seconds: must be between 0 and 86400",
        ),
        (
            ["agent_stale_after_seconds", "0"],
            "invalid value \"0\" for agent_stale_after_seconds: must be between 1 and 86400",
        ),
        (
            ["agent_stale_after_seconds", "soon"],
            "invalid value \"soon\" for agent_stale_after_seconds: must be a whole number of seconds from 1 to 86400",
        ),
        (
            ["wait", "5"],
            "unknown setting \"wait\": use default_wait_seconds, default_empty_response or agent_stale_after_seconds",
        ),
    ] {
        let out = run(local_mcp(&db).args(["config", "set"]).args(args));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stderr), format!("local-mcp: error: {expected}\n"));
        assert!(out.stdout.is_empty());
    }
    let long = "x".repeat(4_097);
    let out = run(local_mcp(&db).args(["config", "set", "default_empty_response", &long]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("must be at most 4096 characters"),
        "{}",
        text(&out.stderr)
    );
    let out = run(local_mcp(&db).args(["config", "get", "nope"]));
    assert_eq!(out.status.code(), Some(1));

    let json = json_of(local_mcp(&db).args(["config", "get", "--json"]));
    assert_eq!(json["default_wait_seconds"], 5, "nothing else was saved");
    assert_eq!(json["agent_stale_after_seconds"], 30);
}

fn audit_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn verify(db: &std::path::Path, file: &std::path::Path) -> (Option<i32>, String) {
    let out = run(local_mcp(db).args(["audit", "verify", "--file", file.to_str().unwrap()]));
    (out.status.code(), text(&out.stdout) + &text(&out.stderr))
}

#[test]
fn audit_verify_accepts_the_trail_and_names_a_tampered_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let log = dir.path().join("audit.jsonl");
    ok(local_mcp(&db).args(["add", "first"]));
    ok(local_mcp(&db).args(["config", "set", "default_wait_seconds", "5"]));
    ok(local_mcp(&db).args(["add", "second"]));
    ok(local_mcp(&db).args(["add", "third"]));
    // Reading commands leave no trace.
    ok(local_mcp(&db).args(["list"]));
    ok(local_mcp(&db).args(["config", "get"]));

    let lines = audit_lines(&log);
    let actions: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["source"], "cli");
            v["action"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "instruction.created",
            "config.updated",
            "instruction.created",
            "instruction.created"
        ]
    );
    let out = run(local_mcp(&db).args(["audit", "verify"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.starts_with(&format!(
            "audit log {}: 4 lines, chain intact; SHA-256 of the last line ",
            log.display()
        )),
        "{report}"
    );

    let tampered = dir.path().join("tampered.jsonl");
    let write = |lines: &[String]| std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let broken_at = |n: u32| {
        format!(
            "audit log {}: chain broken at line {n}, which ",
            tampered.display()
        )
    };

    let mut edited = lines.clone();
    edited[1] = edited[1].replace("\"default_wait_seconds\":5", "\"default_wait_seconds\":50");
    write(&edited);
    let (code, out) = verify(&db, &tampered);
    assert_eq!(code, Some(1));
    assert!(out.starts_with(&broken_at(2)), "{out}");
    assert!(out.contains("was changed after it was written"), "{out}");

    let mut deleted = lines.clone();
    deleted.remove(1);
    write(&deleted);
    let (code, out) = verify(&db, &tampered);
    assert_eq!(code, Some(1));
    assert!(out.starts_with(&broken_at(2)), "{out}");
    assert!(out.contains("does not follow line 1"), "{out}");

    let mut reordered = lines.clone();
    reordered.swap(2, 3);
    write(&reordered);
    let (code, out) = verify(&db, &tampered);
    assert_eq!(code, Some(1));
    assert!(out.starts_with(&broken_at(3)), "{out}");

    let mut last = lines.clone();
    last[3] = last[3].replace("\"content_chars\":5", "\"content_chars\":6");
    write(&last);
    let (code, out) = verify(&db, &tampered);
    assert_eq!(code, Some(1));
    assert!(out.starts_with(&broken_at(4)), "{out}");

    let (code, out) = verify(&db, &dir.path().join("missing.jsonl"));
    assert_eq!(code, Some(2));
    assert!(out.contains("does not exist"), "{out}");
}

#[test]
fn processes_adding_at_once_keep_one_intact_chain() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    // The database exists first, so the processes race on the audit log, not on
    // creating the schema.
    ok(local_mcp(&db).args(["add", "setup"]));
    let children: Vec<_> = (0..6)
        .map(|i| {
            local_mcp(&db)
                .args(["add", &format!("instruction {i}")])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let log = dir.path().join("audit.jsonl");
    let (code, out) = verify(&db, &log);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(": 7 lines, chain intact"), "{out}");
    let pids: std::collections::HashSet<u64> = audit_lines(&log)
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["pid"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(pids.len(), 7, "one line from each process");
}

#[test]
fn audit_log_off_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    ok(local_mcp(&db)
        .env("AUDIT_LOG", "off")
        .args(["add", "quiet"]));
    ok(local_mcp(&db).args([
        "--audit-log",
        "OFF",
        "config",
        "set",
        "default_wait_seconds",
        "3",
    ]));
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("q.db"))
        .collect();
    assert!(files.is_empty(), "{files:?}");
    let out = run(local_mcp(&db)
        .env("AUDIT_LOG", "off")
        .args(["audit", "verify"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("the audit log is off"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_text_is_in_the_audit_log_only_in_full_mode() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let hashed = dir.path().join("hashed.jsonl");
    let full = dir.path().join("full.jsonl");
    let secret = "deploy with key hunter2";
    ok(local_mcp(&db)
        .env("AUDIT_LOG", &hashed)
        .args(["add", secret]));
    ok(local_mcp(&db)
        .env("AUDIT_LOG", &hashed)
        .env("AUDIT_CONTENT", "full")
        .args(["--audit-log", full.to_str().unwrap(), "add", secret]));
    let hashed = std::fs::read_to_string(&hashed).unwrap();
    let full = std::fs::read_to_string(&full).unwrap();
    assert!(!hashed.contains("hunter2"), "{hashed}");
    assert!(hashed.contains("\"content_chars\":23"), "{hashed}");
    assert!(
        full.contains(&format!("\"content\":\"{secret}\"")),
        "{full}"
    );
    assert!(
        !dir.path().join("audit.jsonl").exists(),
        "the flag and the variable moved the log"
    );

    let out = run(local_mcp(&db)
        .env("AUDIT_CONTENT", "clear")
        .args(["add", "x"]));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("clear") && err.contains("hash, full"), "{err}");

    let config = dir.path().join("c.toml");
    std::fs::write(&config, "audit_content = \"plain\"\n").unwrap();
    let out = run(local_mcp(&db).args(["--config", config.to_str().unwrap(), "add", "x"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("invalid audit_content \"plain\""),
        "{}",
        text(&out.stderr)
    );
}

/// SPEC §2 lists "empty" as the default of `LOG_FILE`: a variable set to the empty
/// string (as an `.env` template leaves it) means "not set", for every path.
#[test]
fn empty_path_variables_mean_not_set() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let out = run(local_mcp(&db)
        .env("LOG_FILE", "")
        .env("AUDIT_LOG", "")
        .env("LOCAL_MCP_CONFIG", "")
        .env("ASSETS_DIR", "")
        .args(["add", "still works"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // AUDIT_LOG= is the default: audit.jsonl next to the database.
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(audit.lines().count(), 1, "{audit}");
    let out = run(local_mcp(&db)
        .env("DB_PATH", "")
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path().join("xdg"))
        .args(["add", "to the default database"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join("xdg/local-mcp/local_mcp.sqlite3").exists());
}
