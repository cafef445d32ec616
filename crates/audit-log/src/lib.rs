//! The audit trail (SPEC §5): one JSON object per line, appended by every
//! local-mcp process on the same file, each line chained to the one before it by
//! a SHA-256, so that a changed, removed or reordered line is found by
//! `local-mcp audit verify` ([`verify`]).
//!
//! # Line format
//!
//! Every line is the byte sequence
//!
//! ```text
//! {"hash":"<H>",<REST>
//! ```
//!
//! followed by `\n`, where `{<REST>` is itself a complete, compact JSON object
//! whose first field is `"prev":"<P>"`, and:
//!
//! - `H` is the lower-case hex SHA-256 of the bytes `{<REST>` (the line without
//!   its `"hash":"<H>",` prefix), so an edit of any line, the last one included,
//!   is noticed even when nothing follows it;
//! - `P` is the lower-case hex SHA-256 of the previous line's exact bytes without
//!   its newline (`hash` field included), or 64 zeros on the first line, so a
//!   line removed, inserted or moved breaks the link of the line after it.
//!
//! Nothing is canonicalised: both hashes are over the bytes as written, so a
//! checker needs no JSON library to recompute them. After `prev` come `ts` (RFC
//! 3339, UTC), `action` ([`AuditEntry::action`]), `pid`, `source` (the command
//! that wrote the line) and the action's own fields; `docs/audit.md` lists them.
//! Texts (instruction content, the default empty response) are recorded as
//! `content_sha256` and `content_chars`, and as `content` too only with
//! `AUDIT_CONTENT=full`.
//!
//! # Several writers
//!
//! One `serve` and any number of `stdio` and terminal processes append to the same
//! file. Reading the last line and appending the next is one critical section
//! under an exclusive lock on the file (`flock` on Unix); a mutex guards this
//! process's cached hash of the last line, which spares reading the tail back
//! while nobody else appended. Within a process, lines recorded at the same time
//! are appended together (group commit, as the store does with its writes): the
//! first caller to find the writer free writes every line queued by then under one
//! lock of the file, in one `write`, and each caller returns once its line is in.
//! The file stays open between appends; before each one the path is checked to
//! still name that file, so a log moved away (rotated by hand) is followed by a
//! new one that starts a new chain.
//! `verify` reads the length under a shared lock, so it never sees half a line
//! being written.
//!
//! # Failures
//!
//! The change being audited has already happened when [`Audit::record`] runs, so a
//! failed write never fails the queue operation: it is logged as a warning, once
//! per kind of error, and the entry is lost.

#![deny(missing_docs)]

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use queue_core::{Audit, AuditEntry, Clock, Instruction, Settings, SettingsPatch, SystemClock};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// How much of a text the log keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuditContent {
    /// Its SHA-256 and length only.
    #[default]
    Hash,
    /// The text itself too.
    Full,
}

/// The `prev` of the first line.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Every line starts with this, then 64 hex digits, then [`HASH_END`].
const HASH_START: &[u8] = b"{\"hash\":\"";
const HASH_END: &[u8] = b"\",";
/// Where the hashed object's body starts in a line.
const REST_AT: usize = HASH_START.len() + 64 + HASH_END.len();

/// A line can hold a 32,768-character instruction in full, up to six bytes a
/// character once JSON-escaped; anything much longer is not ours, and `verify`
/// should not read a huge file without newlines into memory.
const MAX_LINE_BYTES: u64 = 1 << 20;

/// A process holding the lock for this long is stuck (the critical section takes
/// microseconds); better to lose one entry than to hang the queue behind it.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Long request paths in auth failures are cut to this many characters, so a
/// client cannot make one refused request cost megabytes of log.
const MAX_PATH_CHARS: usize = 512;

/// The file-backed [`Audit`] sink.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    source: &'static str,
    content: AuditContent,
    pid: u32,
    /// Entries waiting for a writer, in the order their callers recorded them.
    queue: Mutex<Queue>,
    /// The writer's side: whoever holds it appends everything queued so far.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct Queue {
    entries: Vec<Queued>,
    /// The ticket the next entry gets; tickets count up from 1.
    next: u64,
}

#[derive(Debug)]
struct Queued {
    ticket: u64,
    action: &'static str,
    fields: Vec<(&'static str, Value)>,
}

#[derive(Debug, Default)]
struct State {
    /// The file, kept open between appends, and which file it is, so that a log
    /// moved away is noticed and a new one started at the path.
    file: Option<(File, FileId)>,
    /// The file's length after our last append and the hash of that line: while
    /// the length is unchanged nobody else appended, so the tail need not be read.
    tail: Option<(u64, String)>,
    /// The highest ticket appended (or given up on): an entry with a ticket up to
    /// this one needs nothing more.
    done: u64,
    /// Error kinds already warned about, so a full disk does not flood the log.
    reported: HashSet<io::ErrorKind>,
}

impl AuditLog {
    /// A sink appending to `path` (created on the first entry), labelling its lines
    /// with `source`.
    pub fn new(path: PathBuf, source: &'static str, content: AuditContent) -> Self {
        AuditLog {
            path,
            source,
            content,
            pid: std::process::id(),
            queue: Mutex::new(Queue {
                entries: Vec::new(),
                next: 1,
            }),
            state: Mutex::new(State::default()),
        }
    }

    /// The action's own fields, in the order they are written.
    fn fields(&self, entry: &AuditEntry<'_>) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        match *entry {
            AuditEntry::InstructionCreated {
                item,
                requeued_from,
            } => {
                out.push(("id", json!(item.id.to_string())));
                Self::placement_fields(item, &mut out);
                self.content_fields(item.content.as_str(), &mut out);
                if let Some(from) = requeued_from {
                    out.push(("requeued_from", json!(from.to_string())));
                }
            }
            AuditEntry::InstructionUpdated { item } | AuditEntry::InstructionDeleted { item } => {
                out.push(("id", json!(item.id.to_string())));
                Self::placement_fields(item, &mut out);
                self.content_fields(item.content.as_str(), &mut out);
            }
            AuditEntry::InstructionReordered { queue, ids } => {
                out.push(("queue", json!(queue.as_str())));
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                out.push(("ids", json!(ids)));
            }
            AuditEntry::InstructionReturned { item, reason } => {
                out.push(("id", json!(item.id.to_string())));
                Self::placement_fields(item, &mut out);
                self.content_fields(item.content.as_str(), &mut out);
                out.push(("reason", json!(reason)));
            }
            AuditEntry::ConfigUpdated { patch, settings } => {
                out.push(("patch", self.patch_json(patch)));
                out.push(("settings", self.settings_json(settings)));
            }
            AuditEntry::ToolCall {
                caller,
                result,
                end,
                instruction,
                waited,
            } => {
                out.push(("queue", json!(caller.queue.as_str())));
                out.push(("agent_id", json!(caller.agent.as_str())));
                out.push(("result_type", json!(result.as_str())));
                out.push(("end", json!(end)));
                out.push((
                    "instruction_id",
                    json!(instruction.map(|i| i.id.to_string())),
                ));
                if let Some(item) = instruction {
                    self.content_fields(item.content.as_str(), &mut out);
                }
                // Milliseconds are all a reader needs, and keep the line short.
                let waited = waited.map(|d| (d.as_secs_f64() * 1_000.0).round() / 1_000.0);
                out.push(("waited_seconds", json!(waited)));
            }
            AuditEntry::AuthFailure {
                method,
                path,
                reason,
            } => {
                let mut short: String = path.chars().take(MAX_PATH_CHARS).collect();
                if short.len() < path.len() {
                    short.push('…');
                }
                out.push(("method", json!(method)));
                out.push(("path", json!(short)));
                out.push(("reason", json!(reason)));
            }
            // A kind of entry added to queue-core later still gets its action name
            // and a place in the chain.
            _ => {}
        }
        out
    }

    /// The queue an instruction is on and, when it is addressed, the agent it is for.
    fn placement_fields(item: &Instruction, out: &mut Vec<(&'static str, Value)>) {
        out.push(("queue", json!(item.queue.as_str())));
        if let Some(to) = &item.to {
            out.push(("to_agent_id", json!(to.as_str())));
        }
    }

    fn content_fields(&self, text: &str, out: &mut Vec<(&'static str, Value)>) {
        out.push(("content_sha256", json!(sha256_hex(text.as_bytes()))));
        out.push(("content_chars", json!(text.chars().count())));
        if self.content == AuditContent::Full {
            out.push(("content", json!(text)));
        }
    }

    /// A text setting as the same fields an instruction's content gets.
    fn text_json(&self, text: &str) -> Value {
        let mut fields = Vec::new();
        self.content_fields(text, &mut fields);
        Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn patch_json(&self, patch: &SettingsPatch) -> Value {
        let mut map = Map::new();
        if let Some(wait) = patch.default_wait_seconds() {
            map.insert("default_wait_seconds".into(), json!(wait));
        }
        if let Some(text) = patch.default_empty_response() {
            map.insert("default_empty_response".into(), self.text_json(text));
        }
        if let Some(stale) = patch.agent_stale_after_seconds() {
            map.insert("agent_stale_after_seconds".into(), json!(stale));
        }
        Value::Object(map)
    }

    fn settings_json(&self, settings: &Settings) -> Value {
        json!({
            "default_wait_seconds": settings.default_wait_seconds,
            "default_empty_response": self.text_json(&settings.default_empty_response),
            "agent_stale_after_seconds": settings.agent_stale_after_seconds,
        })
    }

    /// Queues one line and returns once it is in the file (or failed): the caller
    /// that finds the writer free appends everything queued by then, its own line
    /// and those of the callers that came while the previous batch was written, in
    /// one critical section — one lock of the file and one `write` for the batch.
    fn record_line(&self, action: &'static str, fields: Vec<(&'static str, Value)>) {
        let ticket = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let ticket = queue.next;
            queue.next += 1;
            queue.entries.push(Queued {
                ticket,
                action,
                fields,
            });
            ticket
        };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.done >= ticket {
            // The writer before us took our line along.
            return;
        }
        let batch = std::mem::take(
            &mut self
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entries,
        );
        let Some(last) = batch.last().map(|q| q.ticket) else {
            return;
        };
        state.done = last;
        if let Err(e) = self.append(&mut state, &batch) {
            state.tail = None;
            // A file that failed may be a file gone bad (a removed folder, a
            // revoked permission): open it afresh next time.
            state.file = None;
            if state.reported.insert(e.kind()) {
                tracing::warn!(
                    file = %self.path.display(),
                    error = %e,
                    action = batch.first().map_or(action, |q| q.action),
                    entries = batch.len(),
                    "could not write to the audit log; the change itself was made. \
                     Further errors of this kind are not logged"
                );
            }
        } else if !state.reported.is_empty() {
            state.reported.clear();
            tracing::info!(file = %self.path.display(), "the audit log is written again");
        }
    }

    /// Appends `batch`, one line each: the critical section every writer of the
    /// file goes through.
    fn append(&self, state: &mut State, batch: &[Queued]) -> io::Result<()> {
        self.open_current(state)?;
        let Some((file, _)) = &state.file else {
            return Err(io::Error::other("the audit log is not open"));
        };
        lock_exclusive(file)?;
        let written = (|| -> io::Result<(u64, String)> {
            let len = file.metadata()?.len();
            let (mut prev, cut_short) = match &state.tail {
                Some((cached, hash)) if *cached == len => (hash.clone(), false),
                _ => last_line_hash(file, len)?,
            };
            let mut bytes = Vec::with_capacity(batch.len() * 400 + 1);
            if cut_short {
                // Keeps a torn last line (a write cut short by a crash) apart from
                // ours; `verify` will name it.
                bytes.push(b'\n');
            }
            for entry in batch {
                // Taken inside the lock, so times never go backwards down the file.
                let ts = SystemClock.now().to_rfc3339();
                let line = render(
                    &prev,
                    &ts,
                    entry.action,
                    self.pid,
                    self.source,
                    &entry.fields,
                );
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
                prev = sha256_hex(line.as_bytes());
            }
            // One write of the whole batch: O_APPEND puts it at the end as a unit.
            (&*file).write_all(&bytes)?;
            Ok((len + bytes.len() as u64, prev))
        })();
        // Unlocking at once keeps the critical section as short as the work in it.
        let _ = file.unlock();
        state.tail = Some(written?);
        Ok(())
    }

    /// Opens (and creates) the log file again when there is none open yet or the
    /// path no longer names the file held open: someone moved or removed the log,
    /// and the next line starts a new one, as the module docs promise.
    fn open_current(&self, state: &mut State) -> io::Result<()> {
        let moved = match (&state.file, file_id(&self.path)) {
            (Some((_, held)), Ok(now)) => *held != now,
            (Some(_), Err(_)) | (None, _) => true,
        };
        if moved {
            state.file = None;
            state.tail = None;
            let file = open_for_append(&self.path)?;
            let id = file_id_of(&file)?;
            state.file = Some((file, id));
        }
        Ok(())
    }
}

impl Audit for AuditLog {
    fn record(&self, entry: &AuditEntry<'_>) {
        // The fields (and their content hashes) are made before any lock is taken.
        self.record_line(entry.action(), self.fields(entry));
    }
}

/// Which file a path names: device and inode on Unix. Elsewhere every check says
/// "moved", so the file is opened again for every batch, as before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId(u64, u64);

#[cfg(unix)]
fn id_of(meta: &std::fs::Metadata) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    Some(FileId(meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn id_of(_meta: &std::fs::Metadata) -> Option<FileId> {
    None
}

fn file_id(path: &Path) -> io::Result<FileId> {
    id_of(&std::fs::metadata(path)?).ok_or_else(|| io::Error::other("no file identity"))
}

fn file_id_of(file: &File) -> io::Result<FileId> {
    Ok(id_of(&file.metadata()?).unwrap_or(FileId(u64::MAX, u64::MAX)))
}

/// One line without its newline; see the module docs for the layout.
fn render(
    prev: &str,
    ts: &str,
    action: &str,
    pid: u32,
    source: &str,
    fields: &[(&'static str, Value)],
) -> String {
    let head = [
        ("prev", json!(prev)),
        ("ts", json!(ts)),
        ("action", json!(action)),
        ("pid", json!(pid)),
        ("source", json!(source)),
    ];
    // The fields are written by hand, in this order, because the order is part of
    // the bytes that are hashed and serde_json's map order depends on a feature.
    let mut body = String::from("{");
    for (i, (key, value)) in head.iter().chain(fields).enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&Value::from(*key).to_string());
        body.push(':');
        body.push_str(&value.to_string());
    }
    body.push('}');
    let hash = sha256_hex(body.as_bytes());
    format!("{{\"hash\":\"{hash}\",{}", &body[1..])
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn open_for_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    // Full-content mode puts instructions in clear; only the owner should read them.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            options.open(path)
        }
        other => other,
    }
}

/// Takes the file's exclusive lock, giving up after [`LOCK_WAIT`]. Polled rather
/// than blocking so that a stopped process cannot hang every other one for ever.
fn lock_exclusive(file: &File) -> io::Result<()> {
    lock_with(|| file.try_lock())
}

fn lock_with(try_lock: impl Fn() -> Result<(), TryLockError>) -> io::Result<()> {
    let started = Instant::now();
    let mut pause = Duration::from_micros(50);
    loop {
        match try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::Error(e)) => return Err(e),
            Err(TryLockError::WouldBlock) if started.elapsed() >= LOCK_WAIT => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "another process has held the audit log's lock for 5 s",
                ));
            }
            Err(TryLockError::WouldBlock) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
        }
    }
}

/// The hash of the file's last line (the next line's `prev`), and whether that
/// line lacks its newline. Reads backwards from the end to the newline before it,
/// then hashes forwards, so a long line is never held in memory.
fn last_line_hash(mut file: &File, len: u64) -> io::Result<(String, bool)> {
    if len == 0 {
        return Ok((GENESIS.to_owned(), false));
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    let cut_short = last[0] != b'\n';
    let end = if cut_short { len } else { len - 1 };

    let mut start = 0;
    let mut chunk = vec![0u8; 8192];
    let mut pos = end;
    while pos > 0 {
        let n = chunk.len().min(pos as usize);
        pos -= n as u64;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut chunk[..n])?;
        if let Some(i) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            start = pos + i as u64 + 1;
            break;
        }
    }

    let mut hasher = Sha256::new();
    file.seek(SeekFrom::Start(start))?;
    let mut remaining = end - start;
    while remaining > 0 {
        let n = chunk.len().min(remaining as usize);
        file.read_exact(&mut chunk[..n])?;
        hasher.update(&chunk[..n]);
        remaining -= n as u64;
    }
    Ok((hex(&hasher.finalize()), cut_short))
}

/// What an intact log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// How many lines it has.
    pub lines: u64,
    /// SHA-256 of the last line: the `prev` the next line will carry. Kept
    /// elsewhere, it shows later whether lines were cut from the end.
    pub head: Option<String>,
}

/// Why a log did not verify.
#[derive(Debug)]
pub enum VerifyError {
    /// No file at the path.
    Missing,
    /// The file could not be read.
    Unreadable(io::Error),
    /// The first line that breaks the chain (1-based) and what is wrong with it.
    Broken {
        /// The line's number, from 1.
        line: u64,
        /// What is wrong with it.
        problem: String,
    },
}

/// Checks every line of the log at `path`: that it parses, that its own hash
/// matches, and that its `prev` is the hash of the line before.
pub fn verify(path: &Path) -> Result<Report, VerifyError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(VerifyError::Missing),
        Err(e) => return Err(VerifyError::Unreadable(e)),
    };
    // Writers hold the exclusive lock for a whole append, so the length seen under
    // the shared lock ends at a line boundary; lines appended while the check runs
    // are left for the next one. The lock is let go at once so writers never wait
    // for a long check.
    let len = lock_with(|| file.try_lock_shared())
        .and_then(|()| file.metadata())
        .map(|m| m.len())
        .map_err(VerifyError::Unreadable)?;
    let _ = file.unlock();
    let mut reader = BufReader::new(file.take(len));
    let mut expected_prev = GENESIS.to_owned();
    let mut n = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(VerifyError::Unreadable)?;
        if read == 0 {
            break;
        }
        n += 1;
        let broken = |problem: String| VerifyError::Broken { line: n, problem };
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
        } else if line.len() as u64 > MAX_LINE_BYTES {
            return Err(broken(format!(
                "is longer than {MAX_LINE_BYTES} bytes, which no audit entry is"
            )));
        }
        if let Err(problem) = check_line(&line, &expected_prev, n) {
            let problem = if complete {
                problem
            } else {
                format!(
                    "{problem} (the file ends in the middle of this line: a write was cut short)"
                )
            };
            return Err(broken(problem));
        }
        expected_prev = sha256_hex(&line);
    }
    Ok(Report {
        lines: n,
        head: (n > 0).then_some(expected_prev),
    })
}

/// The checks of one line, in the order that names the most likely cause: a line
/// that is not ours, then one edited in place, then one whose neighbour moved.
fn check_line(line: &[u8], expected_prev: &str, n: u64) -> Result<(), String> {
    if line.is_empty() {
        return Err("is empty".to_owned());
    }
    let is_hex = |b: &[u8]| b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let framed = line.len() > REST_AT
        && line.starts_with(HASH_START)
        && is_hex(&line[HASH_START.len()..HASH_START.len() + 64])
        && &line[HASH_START.len() + 64..REST_AT] == HASH_END;
    if !framed {
        return Err(
            "does not start with {\"hash\":\"<64 hex digits>\", as every audit line does"
                .to_owned(),
        );
    }
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| format!("is not valid JSON ({e}): cut short or garbled"))?;
    for field in ["prev", "ts", "action"] {
        if !value.get(field).is_some_and(Value::is_string) {
            return Err(format!("lacks the text field \"{field}\""));
        }
    }
    let mut hasher = Sha256::new();
    hasher.update(b"{");
    hasher.update(&line[REST_AT..]);
    let own = hex(&hasher.finalize());
    if own.as_bytes() != &line[HASH_START.len()..HASH_START.len() + 64] {
        return Err(
            "was changed after it was written: its hash does not match its content".to_owned(),
        );
    }
    let prev = value["prev"].as_str().unwrap_or_default();
    if prev != expected_prev {
        return Err(if n == 1 {
            "should start the chain (prev of 64 zeros) but follows another line: \
             the lines before it were removed"
                .to_owned()
        } else {
            format!(
                "does not follow line {}: its prev is not that line's hash, so a line \
                 was removed, inserted or moved here, or line {} was rewritten",
                n - 1,
                n - 1
            )
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use queue_core::{
        AgentId, Caller, Content, InstructionId, NewInstruction, QueueName, ResultType, Timestamp,
    };

    use super::*;

    fn item(n: u128, text: &str) -> Instruction {
        let new = NewInstruction::new(InstructionId::from_u128(n), Content::parse(text).unwrap())
            .on(QueueName::parse("review").unwrap())
            .to(Some(AgentId::parse("agent-1").unwrap()));
        Instruction::pending(new, Timestamp::from_micros(0), i64::try_from(n).unwrap())
    }

    /// A log of `n` lines, one of each kind of entry in turn.
    fn write_log(path: &Path, n: usize, content: AuditContent) {
        let log = AuditLog::new(path.to_owned(), "test", content);
        let caller = Caller::new(
            QueueName::parse("review").unwrap(),
            AgentId::parse("agent-1").unwrap(),
        );
        let patch = SettingsPatch::new(Some(5), Some("call again".into()), None).unwrap();
        let settings = Settings::default();
        let ids = [InstructionId::from_u128(1), InstructionId::from_u128(2)];
        for i in 0..n {
            let it = item(i as u128 + 1, &format!("instruction number {i}"));
            let entry = match i % 5 {
                0 => AuditEntry::InstructionCreated {
                    item: &it,
                    requeued_from: None,
                },
                1 => AuditEntry::ToolCall {
                    caller: &caller,
                    result: ResultType::Instruction,
                    end: "delivered",
                    instruction: Some(&it),
                    waited: Some(Duration::from_millis(1_234)),
                },
                2 => AuditEntry::ConfigUpdated {
                    patch: &patch,
                    settings: &settings,
                },
                3 => AuditEntry::InstructionReordered {
                    queue: &caller.queue,
                    ids: &ids,
                },
                _ => AuditEntry::AuthFailure {
                    method: "POST",
                    path: "/api/instructions",
                    reason: "wrong token",
                },
            };
            log.record(&entry);
        }
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(path, text).unwrap();
    }

    fn broken_at(path: &Path) -> (u64, String) {
        match verify(path) {
            Err(VerifyError::Broken { line, problem }) => (line, problem),
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    fn setup(n: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write_log(&path, n, AuditContent::Hash);
        (dir, path)
    }

    #[test]
    fn a_line_has_the_documented_layout_and_both_hashes() {
        let fields = [("id", json!("x")), ("content_chars", json!(3))];
        let line = render(
            GENESIS,
            "2026-01-02T03:04:05.000006Z",
            "instruction.created",
            7,
            "cli",
            &fields,
        );
        let body = "{\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\",\
                    \"ts\":\"2026-01-02T03:04:05.000006Z\",\"action\":\"instruction.created\",\
                    \"pid\":7,\"source\":\"cli\",\"id\":\"x\",\"content_chars\":3}";
        assert_eq!(
            line,
            format!(
                "{{\"hash\":\"{}\",{}",
                sha256_hex(body.as_bytes()),
                &body[1..]
            )
        );
        assert!(check_line(line.as_bytes(), GENESIS, 1).is_ok());
    }

    #[test]
    fn an_intact_log_verifies_and_every_entry_kind_is_written() {
        let (_dir, path) = setup(10);
        let report = verify(&path).unwrap();
        assert_eq!(report.lines, 10);
        let all = lines(&path);
        assert_eq!(report.head, Some(sha256_hex(all[9].as_bytes())));
        let first: Value = serde_json::from_str(&all[0]).unwrap();
        assert_eq!(first["prev"], GENESIS);
        assert_eq!(first["action"], "instruction.created");
        assert_eq!(first["source"], "test");
        assert_eq!(first["pid"], std::process::id());
        assert_eq!(first["content_chars"], 20);
        assert_eq!(first["content_sha256"], sha256_hex(b"instruction number 0"));
        assert_eq!(first["queue"], "review");
        assert_eq!(first["to_agent_id"], "agent-1");
        assert!(first["ts"].as_str().unwrap().ends_with('Z'));
        let call: Value = serde_json::from_str(&all[1]).unwrap();
        assert_eq!(call["agent_id"], "agent-1");
        assert_eq!(call["queue"], "review");
        assert_eq!(call["result_type"], "instruction");
        assert_eq!(call["end"], "delivered");
        assert_eq!(call["waited_seconds"], 1.234);
        let config: Value = serde_json::from_str(&all[2]).unwrap();
        assert_eq!(config["patch"]["default_wait_seconds"], 5);
        assert_eq!(
            config["patch"]["default_empty_response"]["content_chars"],
            10
        );
        assert_eq!(config["settings"]["agent_stale_after_seconds"], 30);
        let auth: Value = serde_json::from_str(&all[4]).unwrap();
        assert_eq!(auth["action"], "auth.failure");
        assert_eq!(auth["reason"], "wrong token");
    }

    #[test]
    fn text_is_kept_only_in_full_mode() {
        let dir = tempfile::tempdir().unwrap();
        let hashed = dir.path().join("hashed.jsonl");
        let full = dir.path().join("full.jsonl");
        write_log(&hashed, 5, AuditContent::Hash);
        write_log(&full, 5, AuditContent::Full);
        let hashed = std::fs::read_to_string(&hashed).unwrap();
        let full = std::fs::read_to_string(&full).unwrap();
        for text in ["instruction number", "call again"] {
            assert!(!hashed.contains(text), "{text} in\n{hashed}");
            assert!(full.contains(text), "{text} not in\n{full}");
        }
    }

    #[test]
    fn an_edited_middle_line_is_named() {
        let (_dir, path) = setup(5);
        let mut all = lines(&path);
        all[2] = all[2].replace("\"default_wait_seconds\":5", "\"default_wait_seconds\":6");
        write_lines(&path, &all);
        let (line, problem) = broken_at(&path);
        assert_eq!(line, 3);
        assert!(
            problem.contains("changed after it was written"),
            "{problem}"
        );
    }

    #[test]
    fn an_edit_with_its_own_hash_redone_breaks_the_next_link() {
        let (_dir, path) = setup(5);
        let mut all = lines(&path);
        let body = all[1][REST_AT..].replace("\"agent-1\"", "\"agent-2\"");
        let hash = sha256_hex(format!("{{{body}").as_bytes());
        all[1] = format!("{{\"hash\":\"{hash}\",{body}");
        write_lines(&path, &all);
        let (line, problem) = broken_at(&path);
        assert_eq!(line, 3);
        assert!(problem.contains("does not follow line 2"), "{problem}");
    }

    #[test]
    fn an_edited_last_line_is_named() {
        let (_dir, path) = setup(5);
        let mut all = lines(&path);
        all[4] = all[4].replace("wrong token", "no token");
        write_lines(&path, &all);
        assert_eq!(broken_at(&path).0, 5);
    }

    #[test]
    fn a_deleted_line_is_named_by_the_line_that_follows_it() {
        let (_dir, path) = setup(5);
        let mut all = lines(&path);
        all.remove(2);
        write_lines(&path, &all);
        let (line, problem) = broken_at(&path);
        assert_eq!(line, 3);
        assert!(problem.contains("removed, inserted or moved"), "{problem}");

        let (_dir, path) = setup(3);
        let mut all = lines(&path);
        all.remove(0);
        write_lines(&path, &all);
        let (line, problem) = broken_at(&path);
        assert_eq!(line, 1);
        assert!(
            problem.contains("lines before it were removed"),
            "{problem}"
        );
    }

    #[test]
    fn swapped_lines_are_named() {
        let (_dir, path) = setup(5);
        let mut all = lines(&path);
        all.swap(1, 2);
        write_lines(&path, &all);
        assert_eq!(broken_at(&path).0, 2);
    }

    #[test]
    fn a_truncated_or_garbage_line_is_named() {
        let (_dir, path) = setup(4);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 30]).unwrap();
        let (line, problem) = broken_at(&path);
        assert_eq!(line, 4);
        assert!(problem.contains("cut short"), "{problem}");

        let (_dir, path) = setup(4);
        let mut all = lines(&path);
        all.insert(2, "hello".to_owned());
        write_lines(&path, &all);
        let (line, problem) = broken_at(&path);
        assert_eq!(line, 3);
        assert!(problem.contains("does not start with"), "{problem}");

        let (_dir, path) = setup(4);
        let mut all = lines(&path);
        all.insert(1, String::new());
        write_lines(&path, &all);
        assert_eq!(broken_at(&path), (2, "is empty".to_owned()));
    }

    #[test]
    fn a_torn_last_line_stays_apart_from_the_next_entry() {
        let (_dir, path) = setup(3);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &text[..text.len() - 10]).unwrap();
        write_log(&path, 1, AuditContent::Hash);
        assert_eq!(lines(&path).len(), 4);
        assert_eq!(broken_at(&path).0, 3, "the torn line, not the one after it");
    }

    #[test]
    fn an_empty_or_missing_file_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        assert!(matches!(verify(&path), Err(VerifyError::Missing)));
        std::fs::write(&path, "").unwrap();
        assert_eq!(
            verify(&path).unwrap(),
            Report {
                lines: 0,
                head: None
            }
        );
        assert!(matches!(
            verify(dir.path()),
            Err(VerifyError::Unreadable(_))
        ));
    }

    #[test]
    fn concurrent_writers_keep_the_chain_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        // Two sinks on one file stand for two processes: each has its own open
        // file, so only the file lock keeps them apart.
        let logs = [
            Arc::new(AuditLog::new(path.clone(), "one", AuditContent::Hash)),
            Arc::new(AuditLog::new(path.clone(), "two", AuditContent::Full)),
        ];
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = Arc::clone(&logs[t % 2]);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let it = item(
                            t as u128 * 100 + i,
                            &"x".repeat(1 + (i as usize * 397) % 9_000),
                        );
                        log.record(&AuditEntry::InstructionCreated {
                            item: &it,
                            requeued_from: None,
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(verify(&path).unwrap().lines, 400);
    }

    #[test]
    fn a_log_moved_away_is_followed_by_a_new_chain_at_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::new(path.clone(), "test", AuditContent::Hash);
        let record = |n: u128| {
            let it = item(n, "keep me");
            log.record(&AuditEntry::InstructionDeleted { item: &it });
        };
        record(1);
        record(2);
        let archived = dir.path().join("audit.1.jsonl");
        std::fs::rename(&path, &archived).unwrap();
        record(3);

        assert_eq!(verify(&archived).unwrap().lines, 2);
        assert_eq!(verify(&path).unwrap().lines, 1);
        let first: Value = serde_json::from_str(&lines(&path)[0]).unwrap();
        assert_eq!(first["prev"], GENESIS);
        assert_eq!(first["id"], InstructionId::from_u128(3).to_string());
    }

    #[test]
    fn lines_recorded_together_keep_their_order_per_caller() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = Arc::new(AuditLog::new(path.clone(), "test", AuditContent::Hash));
        let threads: Vec<_> = (0..4u128)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    for i in 0..100u128 {
                        let it = item(t * 1_000 + i + 1, "x");
                        log.record(&AuditEntry::InstructionDeleted { item: &it });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(verify(&path).unwrap().lines, 400);
        let ids: Vec<u128> = lines(&path)
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                u128::from_str_radix(&v["id"].as_str().unwrap().replace('-', ""), 16).unwrap()
            })
            .collect();
        for t in 0..4u128 {
            let mine: Vec<u128> = ids.iter().copied().filter(|i| i / 1_000 == t).collect();
            let expected: Vec<u128> = (0..100).map(|i| t * 1_000 + i + 1).collect();
            assert_eq!(mine, expected, "thread {t}");
        }
    }

    #[test]
    fn a_failed_write_is_reported_not_raised() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-folder");
        std::fs::write(&blocker, "").unwrap();
        let log = AuditLog::new(blocker.join("audit.jsonl"), "test", AuditContent::Hash);
        let it = item(1, "hello");
        for _ in 0..3 {
            log.record(&AuditEntry::InstructionDeleted { item: &it });
        }
        let state = log.state.lock().unwrap();
        assert_eq!(state.reported.len(), 1, "one warning for one kind of error");
        assert!(state.tail.is_none());
    }
}
