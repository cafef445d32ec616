//! Faults: `kill -9` during a mixed load from three processes, a read-only and a
//! full disk, and a database held locked by another process. What users see in
//! each case is written down in docs/faults.md.
//!
//! The disk faults mount a small tmpfs (we run as root, locally and in CI, so
//! permission bits would not stop a write): full is a filler file that takes the
//! last free page, read-only a remount. Every mount is undone by a guard, even
//! when the test panics.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use integration::{
    ChildGuard, Proc, Serve, TempDb, TestServer, local_mcp, quick_or_long, refused_start,
};
use queue_core::{Page, StatusFilter, Store};
use queue_store::{SqliteStore, StoreOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The `store-driver` helper binary built with this package.
fn driver(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_store-driver"));
    cmd.args(args).stderr(Stdio::inherit());
    cmd
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client")
}

/// A seeded xorshift generator: the kill moments are random, and the seed printed
/// at the start of a run (or `LOCAL_MCP_FAULT_SEED`) repeats them.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let seed = std::env::var("LOCAL_MCP_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0x9e37_79b9_7f4a_7c15)
            });
        eprintln!("fault seed {seed} (LOCAL_MCP_FAULT_SEED={seed} repeats this run)");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn run(program: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new(program).args(args).output()
}

/// A tmpfs of a few pages on a fresh temporary folder; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
    filler: Option<PathBuf>,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().to_str().expect("a UTF-8 temp path").to_owned();
        let out = run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &path],
        )
        .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir, filler: None }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, mode: &str) {
        let path = self.path().to_str().expect("a UTF-8 temp path");
        let out = run("mount", &["-o", &format!("remount,{mode}"), path]).expect("run mount");
        assert!(
            out.status.success(),
            "remount {mode} {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Takes every free page with a filler file.
    fn fill(&mut self) {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("create the filler");
        let page = [0_u8; 4096];
        let mut pages = 0_u64;
        // Bounded by the mount's size; ends on ENOSPC.
        while file.write_all(&page).is_ok() {
            pages += 1;
            assert!(pages < 1 << 20, "the tmpfs never filled up");
        }
        self.filler = Some(path);
    }

    /// Frees the filler's pages again.
    fn unfill(&mut self) {
        if let Some(path) = self.filler.take() {
            std::fs::remove_file(&path).expect("remove the filler");
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.path().to_string_lossy().into_owned();
        let _ = run("mount", &["-o", "remount,rw", &path]);
        let unmounted = run("umount", &[&path]).is_ok_and(|o| o.status.success());
        if !unmounted {
            // Something still holds a file there: detach it now, freed once closed.
            let _ = run("umount", &["-l", &path]);
        }
    }
}

// ---------------------------------------------------------------------------
// kill -9 during a mixed load from three processes
// ---------------------------------------------------------------------------

/// What the clients were told: acknowledged contents, edits that may or may not
/// have landed, and every instruction handed out.
#[derive(Default)]
struct Ledger {
    /// Per id: the last acknowledged content, and contents sent after it that got no
    /// answer (the kill cut them off), any of which may be the stored one.
    items: HashMap<String, (String, Vec<String>)>,
    /// Ids handed to a client, with the content when the client saw it.
    delivered: HashMap<String, Option<String>>,
    n_adds: u64,
    n_edits: u64,
    /// How many of the hand-outs went to the stdio process's agent.
    n_over_stdio: u64,
    /// Anything that went wrong before the kill.
    problems: Vec<String>,
}

impl Ledger {
    fn added(&mut self, id: &str, content: &str) {
        self.n_adds += 1;
        self.items
            .insert(id.to_owned(), (content.to_owned(), Vec::new()));
    }

    fn trying(&mut self, id: &str, content: &str) {
        if let Some((_, tries)) = self.items.get_mut(id) {
            tries.push(content.to_owned());
        }
    }

    fn edited(&mut self, id: &str, content: &str) {
        self.n_edits += 1;
        self.items
            .insert(id.to_owned(), (content.to_owned(), Vec::new()));
    }

    fn handed_out(&mut self, id: &str, content: Option<&str>, who: &str) {
        if self
            .delivered
            .insert(id.to_owned(), content.map(str::to_owned))
            .is_some()
        {
            self.problems
                .push(format!("{id} was handed out twice (again to {who})"));
        }
    }
}

type Shared = Arc<Mutex<Ledger>>;

fn ledger(l: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    l.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records an unexpected answer, unless the kill is under way and explains it.
fn unexpected(l: &Shared, stop: &AtomicBool, what: String) {
    if !stop.load(Ordering::SeqCst) {
        ledger(l).problems.push(what);
    }
}

/// Adds through the HTTP API and edits the item added two steps before, until told
/// to stop (the kill) or its connection dies.
async fn http_load(base: String, tag: String, stop: Arc<AtomicBool>, ledger_: Shared) {
    let client = http();
    let mut ids: Vec<String> = Vec::new();
    for i in 0..100_000_u32 {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let content = format!("{tag} #{i}");
        let answer = client
            .post(format!("{base}/api/instructions"))
            .json(&json!({ "content": content }))
            .send()
            .await;
        match answer {
            Ok(res) if res.status() == StatusCode::CREATED => {
                let body: Value = match res.json().await {
                    Ok(body) => body,
                    Err(_) => return, // cut off mid-body by the kill
                };
                let id = body["item"]["id"].as_str().unwrap_or_default().to_owned();
                ledger(&ledger_).added(&id, &content);
                ids.push(id);
            }
            Ok(res) => {
                let text = format!("POST {} {:?}", res.status(), res.text().await);
                unexpected(&ledger_, &stop, text);
                return;
            }
            Err(e) => {
                unexpected(&ledger_, &stop, format!("POST failed: {e}"));
                return;
            }
        }
        let Some(target) = ids.len().checked_sub(3).map(|k| ids[k].clone()) else {
            continue;
        };
        let content = format!("{tag} #{i} edited");
        ledger(&ledger_).trying(&target, &content);
        let answer = client
            .patch(format!("{base}/api/instructions/{target}"))
            .json(&json!({ "content": content }))
            .send()
            .await;
        match answer {
            Ok(res) if res.status() == StatusCode::OK => {
                ledger(&ledger_).edited(&target, &content);
            }
            // Claimed by an agent first: the edit is refused and changes nothing.
            Ok(res) if res.status() == StatusCode::CONFLICT => {}
            Ok(res) => {
                let text = format!("PATCH {} {:?}", res.status(), res.text().await);
                unexpected(&ledger_, &stop, text);
                return;
            }
            Err(e) => {
                unexpected(&ledger_, &stop, format!("PATCH failed: {e}"));
                return;
            }
        }
    }
}

/// Calls `get_user_request` over stdio until the process dies; records what it
/// was handed.
async fn stdio_claims(mut proc: Proc, agent: String, stop: Arc<AtomicBool>, ledger_: Shared) {
    let within = Duration::from_secs(20);
    let init = json!({"protocolVersion":"2025-11-25","capabilities":{},
        "clientInfo":{"name":"fault-test","version":"1"}});
    let started = match proc.try_start_request("initialize", init).await {
        Some(id) => proc.response_or_exit(id, within).await.is_some(),
        None => false,
    };
    if started {
        proc.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
    }
    for _ in 0..100_000_u32 {
        if !started {
            break;
        }
        let params = json!({"name":"get_user_request","arguments":{"agent_id":agent}});
        let Some(id) = proc.try_start_request("tools/call", params).await else {
            break;
        };
        let Some(message) = proc.response_or_exit(id, within).await else {
            break;
        };
        let result = &message["result"];
        if result["isError"] != json!(false) {
            if !stop.load(Ordering::SeqCst) {
                ledger(&ledger_)
                    .problems
                    .push(format!("get_user_request failed: {message}"));
            }
            break;
        }
        let out = &result["structuredContent"];
        if out["result_type"] == "instruction" {
            let item = &out["instruction"];
            let mut l = ledger(&ledger_);
            l.n_over_stdio += 1;
            l.handed_out(
                item["id"].as_str().unwrap_or_default(),
                item["content"].as_str(),
                &agent,
            );
        }
    }
    if !started && !stop.load(Ordering::SeqCst) {
        ledger(&ledger_)
            .problems
            .push(format!("the stdio process did not start:\n{}", proc.log()));
    }
    // Reaped here, so the next round's check never races a dying process.
    proc.wait_exit(Duration::from_secs(20)).await;
}

/// Reads the driver's acknowledgements until its stdout closes.
fn driver_acks(stdout: std::process::ChildStdout, ledger_: Shared) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let mut parts = line.splitn(3, ' ');
        let (kind, id, rest) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let mut l = ledger(&ledger_);
        match kind {
            "add" => l.added(id, rest),
            "try" => l.trying(id, rest),
            "edit" => l.edited(id, rest),
            "claim" => l.handed_out(id, None, "the store driver"),
            _ => l.problems.push(format!("the driver said {line:?}")),
        }
    }
}

/// Checks the database against everything the clients were told.
fn check_round(db: &Path, l: &Ledger, round: u32) {
    assert!(
        l.problems.is_empty(),
        "round {round}: {}",
        l.problems.join("\n")
    );
    let store = SqliteStore::open(db, StoreOptions::default()).expect("reopen after the kill");
    store
        .integrity_check()
        .unwrap_or_else(|e| panic!("round {round}: integrity_check: {e}"));
    let stored: HashMap<String, (String, bool)> = store
        .list(
            &queue_core::QueueName::default(),
            StatusFilter::All,
            Page::default(),
        )
        .expect("list")
        .items
        .into_iter()
        .map(|i| {
            let consumed = i.consumed_at.is_some();
            (i.id.to_string(), (i.content.as_str().to_owned(), consumed))
        })
        .collect();
    for (id, (acked, tries)) in &l.items {
        let Some((content, _)) = stored.get(id) else {
            panic!("round {round}: the acknowledged add {id} ({acked:?}) was lost");
        };
        assert!(
            content == acked || tries.contains(content),
            "round {round}: {id} holds {content:?}; acknowledged {acked:?}, unanswered {tries:?}"
        );
    }
    for (id, seen) in &l.delivered {
        let Some((content, consumed)) = stored.get(id) else {
            panic!("round {round}: the delivered {id} is not in the database");
        };
        assert!(
            *consumed,
            "round {round}: {id} was delivered but is pending again"
        );
        if let Some(seen) = seen {
            assert_eq!(
                seen, content,
                "round {round}: {id} delivered with other text"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_mixed_load_of_three_processes_loses_and_repeats_nothing() {
    let rounds = quick_or_long(20, 100);
    let (min_ms, max_ms) = quick_or_long((30, 300), (200, 3_000));
    let mut rng = Rng::seeded();
    let db = TempDb::new();
    drop(db.open()); // the schema exists before the first race
    let path = db.path().to_str().expect("a UTF-8 temp path").to_owned();
    let shared: Shared = Arc::default();
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let serve = tokio::task::block_in_place(|| {
            let mut cmd = local_mcp(db.path());
            cmd.env("DEFAULT_WAIT_SECONDS", "0")
                .env("AUDIT_LOG", "off")
                .env("LOG_LEVEL", "info");
            Serve::start(cmd)
        });
        let mut stdio = local_mcp(db.path());
        stdio
            .arg("stdio")
            .env("DEFAULT_WAIT_SECONDS", "0")
            .env("AUDIT_LOG", "off")
            .env("LOG_LEVEL", "info");
        let stdio = Proc::spawn(stdio);
        let stdio_pid = stdio.pid();
        let mut mixed = ChildGuard::spawn(
            driver(&["mixed", &path, "2"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped()),
        );
        let acks = {
            let stdout = mixed.0.stdout.take().expect("piped stdout");
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || driver_acks(stdout, shared))
        };
        let loads: Vec<_> = (0..2)
            .map(|k| {
                tokio::spawn(http_load(
                    serve.url(),
                    format!("http r{round} c{k}"),
                    Arc::clone(&stop),
                    Arc::clone(&shared),
                ))
            })
            .collect();
        let claims = tokio::spawn(stdio_claims(
            stdio,
            format!("stdio-r{round}"),
            Arc::clone(&stop),
            Arc::clone(&shared),
        ));

        // The random part: how long the load runs, and the order of the kills.
        let load_for = Duration::from_millis(rng.between(min_ms, max_ms));
        tokio::time::sleep(load_for).await;
        stop.store(true, Ordering::SeqCst);
        let order = rng.next();
        let mut serve = Some(serve);
        let mut mixed = Some(mixed);
        for k in 0..3 {
            match (order >> (2 * k)) % 3 {
                0 if serve.is_some() => drop(serve.take()), // SIGKILL, reaped
                1 if mixed.is_some() => drop(mixed.take()),
                _ => {
                    let _ = run("kill", &["-9", &stdio_pid.to_string()]);
                }
            }
        }
        let _ = run("kill", &["-9", &stdio_pid.to_string()]);
        drop(serve);
        drop(mixed);
        for load in loads {
            load.await.expect("an HTTP load task");
        }
        claims.await.expect("the stdio task");
        acks.join().expect("the driver's reader");

        tokio::task::block_in_place(|| check_round(db.path(), &ledger(&shared), round));
        let l = ledger(&shared);
        eprintln!(
            "round {round}: killed after {load_for:?}; {} adds, {} edits, {} handed out so far",
            l.n_adds,
            l.n_edits,
            l.delivered.len()
        );
    }
    let l = ledger(&shared);
    assert!(
        l.n_adds > 0 && l.n_edits > 0,
        "the load acknowledged nothing"
    );
    assert!(
        l.n_over_stdio > 0 && l.delivered.len() as u64 > l.n_over_stdio,
        "both claimers must have been handed instructions: {} in all, {} over stdio",
        l.delivered.len(),
        l.n_over_stdio
    );
}

// ---------------------------------------------------------------------------
// A locked database, a full disk, a read-only disk
// ---------------------------------------------------------------------------

fn serve_on(db: &Path) -> Serve {
    let mut cmd = local_mcp(db);
    cmd.env("DEFAULT_WAIT_SECONDS", "0");
    tokio::task::block_in_place(|| Serve::start(cmd))
}

async fn stdio_on(db: &Path) -> Proc {
    let mut cmd = local_mcp(db);
    cmd.arg("stdio").env("DEFAULT_WAIT_SECONDS", "0");
    let mut proc = Proc::spawn(cmd);
    proc.initialize("fault-test").await;
    proc
}

/// An answer of the HTTP API: status, `Retry-After`, body.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    fn id(&self) -> String {
        assert_eq!(self.status, StatusCode::CREATED, "{self:?}");
        self.body["item"]["id"]
            .as_str()
            .expect("an item id")
            .to_owned()
    }

    /// Asserts a 503 that says when to retry and, in `words`, what is wrong.
    fn assert_unavailable(&self, words: &str) {
        assert_eq!(self.status, StatusCode::SERVICE_UNAVAILABLE, "{self:?}");
        assert_eq!(self.retry_after.as_deref(), Some("1"), "{self:?}");
        let message = self.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{words:?} not in {message:?}");
        assert!(message.contains("nothing was changed"), "{message:?}");
    }
}

async fn add(base: &str, content: &str) -> Answer {
    let res = http()
        .post(format!("{base}/api/instructions"))
        .json(&json!({ "content": content }))
        .send()
        .await
        .expect("POST /api/instructions");
    let status = res.status();
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = res.json().await.expect("a JSON body");
    Answer {
        status,
        retry_after,
        body,
    }
}

/// The contents of every instruction, in the API's order.
async fn contents(base: &str) -> Vec<String> {
    let res = http()
        .get(format!("{base}/api/instructions"))
        .send()
        .await
        .expect("GET /api/instructions");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.expect("a JSON body");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["content"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A `get_user_request` call that must fail with a tool error naming `words`.
async fn assert_tool_error(result: &Value, words: &str) {
    assert_eq!(result["isError"], json!(true), "{result}");
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.contains(words), "{words:?} not in {text:?}");
    assert!(text.contains("Nothing was consumed"), "{text:?}");
}

/// A `store-driver lock` process holding the database's write lock.
struct Locker {
    child: ChildGuard,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Locker {
    /// Returns once the lock is held.
    fn hold(db: &Path) -> Self {
        let path = db.to_str().expect("a UTF-8 temp path");
        let mut child = ChildGuard::spawn(
            driver(&["lock", path])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        );
        let mut stdout = BufReader::new(child.0.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the driver");
        assert_eq!(line.trim(), "locked");
        Locker { child, stdout }
    }

    /// Returns once the lock is released.
    fn release(mut self) {
        let stdin = self.child.0.stdin.as_mut().expect("piped stdin");
        stdin.write_all(b"release\n").expect("tell the driver");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read the driver");
        assert_eq!(line.trim(), "released");
        let status = self.child.0.wait().expect("wait for the driver");
        assert!(status.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_locked_by_another_process_answers_503_and_recovers_when_released() {
    let db = TempDb::new();
    // The lock is another process's; the server needs no process of its own.
    let serve = TestServer::start_on(db.path(), |c| c.defaults.default_wait_seconds = 0).await;
    let base = serve.url();
    let first = add(&base, "queued before the lock").await.id();
    let mut stdio = stdio_on(db.path()).await;

    // A lock shorter than the busy timeout is waited out, not reported.
    let lock = tokio::task::block_in_place(|| Locker::hold(db.path()));
    let waiting = tokio::spawn({
        let base = base.clone();
        async move { add(&base, "added during a short lock").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the add did not wait for the lock");
    tokio::task::block_in_place(|| lock.release());
    waiting.await.expect("the add task").id();

    // A lock held past the busy timeout (5 s): a clear 503, a tool error; reads
    // go on meanwhile.
    let lock = tokio::task::block_in_place(|| Locker::hold(db.path()));
    let started = std::time::Instant::now();
    let refused = tokio::spawn({
        let base = base.clone();
        async move { add(&base, "refused while locked").await }
    });
    let call = stdio.start_get_user_request("locked-agent").await;
    assert_eq!(
        contents(&base).await,
        ["queued before the lock", "added during a short lock"]
    );
    let refused = refused.await.expect("the add task");
    refused.assert_unavailable("locked by another process");
    let waited = started.elapsed();
    assert!(
        (Duration::from_secs(4)..Duration::from_secs(15)).contains(&waited),
        "the refusal came after {waited:?}, not after the 5 s busy timeout"
    );
    let result = stdio.response(call, Duration::from_secs(20)).await;
    assert_tool_error(&result, "busy").await;

    // Released: both processes write again without a restart.
    tokio::task::block_in_place(|| lock.release());
    add(&base, "added after the lock").await.id();
    let call = stdio.start_get_user_request("locked-agent").await;
    let out = stdio.tool_result(call, Duration::from_secs(20)).await;
    assert_eq!(out["instruction"]["id"], json!(first), "{out}");
    assert_eq!(
        contents(&base).await,
        [
            "queued before the lock",
            "added during a short lock",
            "added after the lock"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_recovers_when_space_is_freed() {
    let mut disk = Tmpfs::mount("2m");
    let db = disk.path().join("queue.sqlite3");
    let mut serve = serve_on(&db);
    let base = serve.url();
    let first = add(&base, "queued before the disk filled").await.id();
    let mut stdio = stdio_on(&db).await;

    disk.fill();
    // SQLite reuses room already allocated in its files, so a few writes may still
    // fit; the first that needs a new page is refused.
    let mut acked = vec![String::from("queued before the disk filled")];
    let mut refusal = None;
    for i in 0..1_000 {
        let content = format!("written on a full disk #{i}");
        let answer = add(&base, &content).await;
        if answer.status == StatusCode::CREATED {
            acked.push(content);
        } else {
            refusal = Some(answer);
            break;
        }
    }
    let refusal = refusal.expect("a write was refused once the disk was full");
    refusal.assert_unavailable("disk holding the database is full");
    assert_eq!(contents(&base).await, acked, "reads go on");
    let call = stdio.start_get_user_request("full-agent").await;
    let result = stdio.response(call, Duration::from_secs(20)).await;
    assert_tool_error(&result, "full").await;

    // Freed: both processes write again without a restart, nothing acknowledged lost.
    disk.unfill();
    add(&base, "added after space was freed").await.id();
    acked.push("added after space was freed".into());
    let call = stdio.start_get_user_request("full-agent").await;
    let out = stdio.tool_result(call, Duration::from_secs(20)).await;
    assert_eq!(out["instruction"]["id"], json!(first), "{out}");
    assert_eq!(contents(&base).await, acked);

    // Starting on a full disk is refused with the reason, even when SQLite itself
    // needs no room to open: a connection held open here keeps the `-wal` and `-shm`
    // files of this run in place, as a process that exits without closing them does.
    stdio.close_stdin();
    assert!(stdio.wait_exit(Duration::from_secs(10)).await.success());
    let (status, _) = serve.terminate();
    assert!(status.success());
    let held = SqliteStore::open(&db, StoreOptions::default()).expect("open before filling");
    assert_eq!(
        held.list(
            &queue_core::QueueName::default(),
            StatusFilter::All,
            Page::default()
        )
        .expect("list")
        .items
        .len(),
        acked.len()
    );
    for suffix in ["-wal", "-shm"] {
        let file = db.with_file_name(format!("queue.sqlite3{suffix}"));
        assert!(file.exists(), "{} is missing", file.display());
    }
    disk.fill();
    for (what, stderr) in
        refused_starts(&db, &["serve", "stdio", "add"], "refused on a full disk").await
    {
        assert!(
            stderr.contains("disk holding the database is full"),
            "{what}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
    disk.unfill();
    drop(held);
    let stored = stored_contents(&db, "open after freeing");
    assert_eq!(stored, acked);
}

/// Starts each of `commands` on `db` (an `add` adding `text`); each must refuse
/// to start. Returns what each wrote on stderr.
async fn refused_starts<'a>(db: &Path, commands: &[&'a str], text: &str) -> Vec<(&'a str, String)> {
    let mut refusals = Vec::new();
    for &what in commands {
        let mut cmd = local_mcp(db);
        cmd.arg(what).env("HTTP_PORT", "0");
        if what == "add" {
            cmd.arg(text);
        }
        let stderr = refused_start(cmd, what, Duration::from_secs(20)).await;
        refusals.push((what, stderr));
    }
    refusals
}

/// The contents of every instruction in `db`'s default queue, once the file has
/// passed SQLite's integrity check; `opened` names the open in a failure.
fn stored_contents(db: &Path, opened: &str) -> Vec<String> {
    let store = SqliteStore::open(db, StoreOptions::default()).expect(opened);
    store.integrity_check().expect("integrity_check");
    let stored: Vec<String> = store
        .list(
            &queue_core::QueueName::default(),
            StatusFilter::All,
            Page::default(),
        )
        .expect("list")
        .items
        .into_iter()
        .map(|i| i.content.as_str().to_owned())
        .collect();
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_disk_is_refused_at_start_with_the_reason_and_loses_nothing() {
    let disk = Tmpfs::mount("2m");
    let db = disk.path().join("queue.sqlite3");
    let out = local_mcp(&db)
        .args(["add", "written before the disk went read-only"])
        .output()
        .expect("run local-mcp add");
    assert!(out.status.success(), "{out:?}");

    disk.remount("ro");
    let commands = ["serve", "stdio", "add", "list"];
    for (what, stderr) in refused_starts(&db, &commands, "refused on a read-only disk").await {
        assert!(stderr.contains("read-only"), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
    // A database that does not exist yet cannot be created there either.
    let fresh = disk.path().join("fresh.sqlite3");
    let err = SqliteStore::open(&fresh, StoreOptions::default()).expect_err("a read-only disk");
    assert!(err.to_string().contains("read-only"), "{err}");

    disk.remount("rw");
    let out = local_mcp(&db)
        .args(["add", "written once it was writable again"])
        .output()
        .expect("run local-mcp add");
    assert!(out.status.success(), "{out:?}");
    let stored = stored_contents(&db, "open");
    assert_eq!(
        stored,
        [
            "written before the disk went read-only",
            "written once it was writable again"
        ]
    );
}
