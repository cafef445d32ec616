//! Terminal commands on the shared queue, no server needed: `add`, `list`,
//! `status`, `config get|set` and `audit verify`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use audit_log::{self as audit, VerifyError};
use local_mcp_server::HttpConfig;
use queue_core::{
    AgentState, Instruction, Page, QueueError, QueueName, Service, Setting, SettingValue, Settings,
    StatusFilter, Timestamp,
};
use serde_json::{Value, json};

use crate::cli::{AddArgs, AuditVerifyArgs, ConfigGetArgs, ConfigSetArgs, ListArgs, StatusArg};
use crate::config::Config;

/// Writes to stdout; a closed pipe (`local-mcp list | head`) is not an error.
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("could not write to standard output"),
    }
}

pub(crate) async fn add(service: &Service, args: &AddArgs) -> anyhow::Result<()> {
    let text = if args.text == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("could not read the instruction from standard input")?;
        text
    } else {
        args.text.clone()
    };
    let queue = &args.queue;
    // Read before the add, so a typo in a queue or agent name is pointed out: the
    // instruction is queued all the same, since the agent may simply not have
    // called yet.
    let before = service
        .overview()
        .await
        .context("could not read the queue")?;
    let item = match service.add_to(queue, args.to.clone(), &text).await {
        Ok(item) => item,
        Err(QueueError::Validation(e)) => bail!("cannot queue this instruction: {}", e.message),
        Err(e) => return Err(e).context("could not queue the instruction"),
    };
    if !before.has_queue(queue) {
        eprintln!(
            "note: queue {:?} is new: no agent has called on it yet (queues so far: {})",
            queue.as_str(),
            queue_names(&before.queues)
        );
    } else if let Some(to) = &args.to
        && !before
            .agents
            .iter()
            .any(|a| a.queue == *queue && a.id == *to)
    {
        eprintln!(
            "note: no agent named {:?} has called on queue {:?} yet; it takes the \
             instruction when it does",
            to.as_str(),
            queue.as_str()
        );
    }
    let pending = service.counts(queue).await?.pending;
    let on = if queue.is_default() {
        String::new()
    } else {
        format!(" on {queue}")
    };
    let to = args
        .to
        .as_ref()
        .map(|a| format!(" for {a}"))
        .unwrap_or_default();
    print(&format!("queued {}{on}{to} ({pending} pending)\n", item.id))
}

pub(crate) async fn list(service: &Service, args: &ListArgs) -> anyhow::Result<()> {
    let filter = match args.status {
        StatusArg::Pending => StatusFilter::Pending,
        StatusArg::Consumed => StatusFilter::Consumed,
        StatusArg::All => StatusFilter::All,
    };
    let listing = match service
        .list(
            &args.queue,
            filter,
            Page {
                offset: 0,
                limit: args.limit,
            },
        )
        .await
    {
        Ok(listing) => listing,
        Err(QueueError::UnknownQueue(_)) => bail!(
            "there is no queue named {:?} yet (list the queues with: local-mcp status)",
            args.queue.as_str()
        ),
        Err(e) => return Err(e).context("could not read the queue"),
    };
    if args.json {
        let items: Vec<_> = listing.items.iter().map(http_api::item_json).collect();
        let body = json!({ "items": items, "total": listing.total });
        return print(&format!("{body:#}\n"));
    }
    if listing.items.is_empty() {
        let what = match args.status {
            StatusArg::Pending => "No pending instructions. Queue one with: local-mcp add \"...\"",
            StatusArg::Consumed => "No instruction has been delivered yet.",
            StatusArg::All => {
                "The queue is empty. Queue an instruction with: local-mcp add \"...\""
            }
        };
        return print(&format!("{what}\n"));
    }
    let mut text = String::new();
    for item in &listing.items {
        text.push_str(&row(item));
        text.push('\n');
    }
    if (listing.items.len() as u64) < listing.total {
        text.push_str(&format!(
            "({} of {} shown)\n",
            listing.items.len(),
            listing.total
        ));
    }
    print(&text)
}

fn row(item: &Instruction) -> String {
    let to = item
        .to
        .as_ref()
        .map(|a| format!(" (for {a})"))
        .unwrap_or_default();
    let when = item.consumed_at.unwrap_or(item.created_at).to_rfc3339();
    let when = when.get(..19).unwrap_or(&when).replace('T', " ");
    let first_line = item.content.as_str().lines().next().unwrap_or("");
    let mut summary: String = first_line.chars().take(72).collect();
    if summary.len() < item.content.as_str().len() {
        summary.push('…');
    }
    let by = item
        .consumed_by
        .as_ref()
        .map(|a| format!(" by {a}"))
        .unwrap_or_default();
    format!(
        "{:<8} {}  {}  {summary}{to}{by}",
        item.status.as_str(),
        &item.id.to_string()[..8],
        when
    )
}

/// How long `status` gives a server to answer `/healthz`, all steps together: a
/// local server answers in well under a millisecond.
const PROBE_BUDGET: Duration = Duration::from_millis(300);

/// What `status` found at the configured address.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Probe {
    Up,
    Down(String),
}

/// Asks `GET /healthz` at the configured host and port, at the address
/// [`probe_addr`] picks, within [`PROBE_BUDGET`].
async fn probe(http: &HttpConfig) -> (String, Probe) {
    let url = format!("{}/healthz", http.base_url());
    let Some(addr) = probe_addr(&http.host, http.port) else {
        let why = format!("cannot resolve the host {:?}", http.host);
        return (url, Probe::Down(why));
    };
    let host = http.host.trim_start_matches('[').trim_end_matches(']');
    let client = reqwest::Client::builder()
        .timeout(PROBE_BUDGET)
        .no_proxy()
        .http1_only()
        .http1_title_case_headers()
        // A name goes to the address picked above (an address is used as it is).
        .resolve(host, addr)
        .build();
    let client = match client {
        Ok(client) => client,
        Err(e) => return (url, Probe::Down(format!("cannot make an HTTP client: {e}"))),
    };
    let answer = async {
        let response = client.get(&url).send().await?;
        let status_line = format!("{:?} {}", response.version(), response.status());
        let ok = response.status() == reqwest::StatusCode::OK;
        let body = response.text().await?;
        Ok::<_, reqwest::Error>((ok, status_line, body))
    };
    let probe = match answer.await {
        Ok((ok, status_line, body)) => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            if ok && compact.contains("\"status\":\"ok\"") {
                Probe::Up
            } else {
                Probe::Down(format!("something else answers there ({status_line})"))
            }
        }
        Err(e) if e.is_timeout() => {
            Probe::Down(format!("no answer within {} ms", PROBE_BUDGET.as_millis()))
        }
        Err(e) if io_kind(&e) == Some(std::io::ErrorKind::ConnectionRefused) => {
            Probe::Down("nothing listens there".to_owned())
        }
        Err(e) if e.is_connect() => Probe::Down(format!("cannot connect: {}", cause(&e))),
        Err(_) => Probe::Down("something accepted the connection but did not answer".to_owned()),
    };
    (url, probe)
}

/// The kind of the I/O error under a failed request, if one caused it.
fn io_kind(e: &reqwest::Error) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = err.source();
    }
    None
}

/// The innermost cause of an error, which is the one that says what happened.
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// The socket address for `host`: a server bound to every interface is reached on
/// loopback.
fn probe_addr(host: &str, port: u16) -> Option<SocketAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        Ok(ip) => ip,
        Err(_) if bare.eq_ignore_ascii_case("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Err(_) => return (bare, port).to_socket_addrs().ok()?.next(),
    };
    Some(SocketAddr::new(ip, port))
}

pub(crate) async fn status(
    service: &Service,
    config: &Config,
    json: bool,
    queue: Option<&QueueName>,
) -> anyhow::Result<()> {
    let parts = http_api::StatusParts::read(service)
        .await
        .context("could not read the queue")?;
    if let Some(q) = queue
        && !parts.has_queue(q)
    {
        bail!(
            "there is no queue named {:?} yet (queues: {})",
            q.as_str(),
            queue_names(&parts.queues)
        );
    }
    let now = service.now();
    let (url, probe) = probe(&config.server.http).await;
    let audit_log = config
        .server
        .audit
        .path
        .as_ref()
        .map(|p| p.display().to_string());
    if json {
        let shown = queue.cloned().unwrap_or_default();
        let mut body = parts.to_json(&http_api::ServerInfo::new(now), now, &shown);
        // This process is not the server: all it knows is whether one answered.
        body["server"] = json!({
            "status": if probe == Probe::Up { "up" } else { "down" },
            "probed_url": url,
            "detail": match &probe {
                Probe::Up => "a local-mcp server answered".to_owned(),
                Probe::Down(why) => why.clone(),
            },
        });
        body["database"] = json!(config.server.database());
        body["audit_log"] = json!(audit_log);
        return print(&format!("{body:#}\n"));
    }

    let mut text = String::new();
    let server = match &probe {
        Probe::Up => format!("up at {}", config.server.http.base_url()),
        Probe::Down(why) => format!("not running (probed {url}: {why})"),
    };
    text.push_str(&format!("server    {server}\n"));
    text.push_str(&format!("database  {}\n", config.server.database()));
    let stale = parts.settings.agent_stale_after_seconds;
    for (i, q) in parts
        .queues
        .iter()
        .filter(|q| queue.is_none_or(|only| q.name == *only))
        .enumerate()
    {
        let label = if i == 0 { "queues" } else { "" };
        text.push_str(&format!(
            "{label:<9} {:<16} {} pending, {} delivered\n",
            q.name.as_str(),
            q.counts.pending,
            q.counts.consumed
        ));
    }
    let agents: Vec<queue_core::Agent> = parts
        .agents
        .iter()
        .filter(|a| queue.is_none_or(|only| a.queue == *only))
        .cloned()
        .collect();
    text.push_str(&agents_text(&agents, now, stale));
    let s = &parts.settings;
    text.push_str(&format!(
        "settings  wait {} s, agents count as gone {} s after their last call\n          \
         empty response {}\n",
        s.default_wait_seconds,
        s.agent_stale_after_seconds,
        summary(&s.default_empty_response, 60),
    ));
    text.push_str(&format!(
        "audit     {}\n",
        audit_log.as_deref().unwrap_or("off")
    ));
    print(&text)
}

fn queue_names(queues: &[queue_core::QueueCounts]) -> String {
    queues
        .iter()
        .map(|q| q.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// At most this many agents are listed; the most recently seen come first.
const MAX_AGENTS_SHOWN: usize = 8;

fn agents_text(agents: &[queue_core::Agent], now: Timestamp, stale: u32) -> String {
    if agents.is_empty() {
        return "agents    none has called get_user_request yet\n".to_owned();
    }
    let width = agents
        .iter()
        .take(MAX_AGENTS_SHOWN)
        .map(|a| a.id.as_str().chars().count())
        .max()
        .unwrap_or(0)
        .min(32);
    let mut text = String::new();
    for (i, agent) in agents.iter().take(MAX_AGENTS_SHOWN).enumerate() {
        let label = if i == 0 { "agents" } else { "" };
        let state = match agent.state(now, stale) {
            AgentState::Waiting => "waiting",
            AgentState::Working => "working",
            AgentState::Idle => "idle",
            AgentState::Gone => "gone",
        };
        text.push_str(&format!(
            "{label:<9} {:<width$}  {:<16} {state:<7}  last call {} ago\n",
            agent.id.as_str(),
            format!("on {}", agent.queue),
            ago(now.micros_since(agent.last_seen_at)),
        ));
    }
    if agents.len() > MAX_AGENTS_SHOWN {
        text.push_str(&format!(
            "          (and {} more)\n",
            agents.len() - MAX_AGENTS_SHOWN
        ));
    }
    text
}

fn ago(micros: i64) -> String {
    let secs = micros / 1_000_000;
    match secs {
        0..60 => format!("{secs} s"),
        60..3_600 => format!("{} min", secs / 60),
        3_600..86_400 => format!("{} h", secs / 3_600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// `text` quoted, cut to `max` characters.
fn summary(text: &str, max: usize) -> String {
    if text.is_empty() {
        return "\"\" (calls that find nothing return result_type \"empty\")".to_owned();
    }
    let mut short: String = text.chars().take(max).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    format!("{short:?}")
}

/// Parses a setting's name; an unknown one lists the known.
fn setting(text: &str) -> anyhow::Result<Setting> {
    Setting::parse(text).map_err(|e| anyhow::anyhow!(e.message))
}

/// A setting's value as JSON, which is also how the TOML output spells it.
fn json_value(setting: Setting, settings: &Settings) -> Value {
    match setting.value(settings) {
        SettingValue::Seconds(n) => json!(n),
        SettingValue::Text(text) => json!(text),
    }
}

/// Where the start-up default of `setting` came from, in words.
fn default_source(setting: Setting, config: &Config) -> &'static str {
    let sources = &config.default_sources;
    match setting {
        Setting::DefaultWaitSeconds => sources.default_wait_seconds,
        Setting::DefaultEmptyResponse => sources.default_empty_response,
        Setting::AgentStaleAfterSeconds => sources.agent_stale_after_seconds,
    }
}

pub(crate) async fn config_get(
    service: &Service,
    config: &Config,
    args: &ConfigGetArgs,
) -> anyhow::Result<()> {
    let key = args.key.as_deref().map(setting).transpose()?;
    // The stored values, not just the merged ones, to tell which were saved.
    let store = std::sync::Arc::clone(service.store());
    let stored = tokio::task::spawn_blocking(move || store.settings())
        .await
        .context("could not read the settings")?
        .context("could not read the settings")?;
    let settings = service.effective_settings(&stored);
    match (key, args.json) {
        (Some(key), true) => print(&format!("{}\n", json_value(key, &settings))),
        (Some(key), false) => match json_value(key, &settings) {
            Value::String(text) => print(&format!("{text}\n")),
            other => print(&format!("{other}\n")),
        },
        (None, true) => print(&format!("{:#}\n", http_api::settings_json(&settings))),
        (None, false) => {
            // TOML, so the output can be pasted into a config file as it is.
            let mut text = String::new();
            for key in Setting::ALL {
                let from = if key.is_saved(&stored) {
                    "saved in the database".to_owned()
                } else {
                    format!("not saved: {}", default_source(key, config))
                };
                text.push_str(&format!(
                    "{} = {}  # {from}\n",
                    key.name(),
                    json_value(key, &settings)
                ));
            }
            print(&text)
        }
    }
}

pub(crate) async fn config_set(service: &Service, args: &ConfigSetArgs) -> anyhow::Result<()> {
    let key = setting(&args.key)?;
    let invalid =
        |why: &str| anyhow::anyhow!("invalid value {:?} for {}: {why}", args.value, key.name());
    let patch = key.patch(&args.value).map_err(|e| invalid(&e.message))?;
    let settings = match service.update_settings(patch).await {
        Ok(settings) => settings,
        Err(QueueError::Validation(e)) => return Err(invalid(&e.message)),
        Err(e) => return Err(e).context("could not save the setting"),
    };
    print(&format!(
        "saved {} = {}\n",
        key.name(),
        json_value(key, &settings)
    ))
}

/// Exit status of `audit verify` when the file cannot be checked at all, apart
/// from 1 for a broken chain.
const EXIT_UNREADABLE: u8 = 2;

pub(crate) fn audit_verify(config: &Config, args: &AuditVerifyArgs) -> anyhow::Result<ExitCode> {
    let Some(path) = args.file.as_deref().or(config.server.audit.path.as_deref()) else {
        eprintln!(
            "local-mcp: error: the audit log is off (AUDIT_LOG=off); pass --file PATH to check a file"
        );
        return Ok(ExitCode::from(EXIT_UNREADABLE));
    };
    match audit::verify(path) {
        Ok(report) => {
            let lines = match report.lines {
                1 => "1 line".to_owned(),
                n => format!("{n} lines"),
            };
            let head = match &report.head {
                Some(head) => format!("; SHA-256 of the last line {head}"),
                None => " (empty)".to_owned(),
            };
            print(&format!(
                "audit log {}: {lines}, chain intact{head}\n",
                path.display()
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(VerifyError::Broken { line, problem }) => {
            print(&format!(
                "audit log {}: chain broken at line {line}, which {problem}\n",
                path.display()
            ))?;
            Ok(ExitCode::FAILURE)
        }
        Err(VerifyError::Missing) => {
            eprintln!(
                "local-mcp: error: audit log {} does not exist: nothing has been audited yet, \
                 or AUDIT_LOG points elsewhere",
                path.display()
            );
            Ok(ExitCode::from(EXIT_UNREADABLE))
        }
        Err(VerifyError::Unreadable(e)) => {
            eprintln!(
                "local-mcp: error: could not read the audit log {}: {e}",
                path.display()
            );
            Ok(ExitCode::from(EXIT_UNREADABLE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_names_are_forgiving_and_unknown_ones_list_the_known() {
        assert_eq!(
            setting("DEFAULT_WAIT_SECONDS").unwrap(),
            Setting::DefaultWaitSeconds
        );
        assert_eq!(
            setting("agent-stale-after-seconds").unwrap(),
            Setting::AgentStaleAfterSeconds
        );
        let err = setting("wait").unwrap_err().to_string();
        assert!(err.contains("default_empty_response"), "{err}");
    }

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        let s = 1_000_000;
        assert_eq!(ago(0), "0 s");
        assert_eq!(ago(59 * s), "59 s");
        assert_eq!(ago(61 * s), "1 min");
        assert_eq!(ago(7_200 * s), "2 h");
        assert_eq!(ago(200_000 * s), "2 d");
    }

    #[test]
    fn a_server_bound_everywhere_is_probed_on_loopback() {
        assert_eq!(
            probe_addr("0.0.0.0", 1),
            Some(SocketAddr::from(([127, 0, 0, 1], 1)))
        );
        assert_eq!(
            probe_addr("[::]", 2),
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 2))
        );
        assert_eq!(
            probe_addr("localhost", 3),
            Some(SocketAddr::from(([127, 0, 0, 1], 3)))
        );
    }

    #[tokio::test]
    async fn a_port_where_nothing_answers_is_reported_down() {
        // Bound and dropped: the port is free, and nothing else on a test machine
        // picks a random ephemeral port in the meantime.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let http = HttpConfig {
            port,
            ..HttpConfig::default()
        };
        let (url, probe) = probe(&http).await;
        assert_eq!(url, format!("http://127.0.0.1:{port}/healthz"));
        assert!(matches!(probe, Probe::Down(_)), "{probe:?}");
    }

    #[tokio::test]
    async fn a_healthz_answer_counts_as_up_and_another_answer_does_not() {
        for (answer, up) in [
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}",
                true,
            ),
            ("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n", false),
        ] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = std::thread::spawn(move || {
                let (mut conn, _) = listener.accept().unwrap();
                let mut request = [0u8; 1024];
                let n = conn.read(&mut request).unwrap();
                conn.write_all(answer.as_bytes()).unwrap();
                String::from_utf8_lossy(&request[..n]).into_owned()
            });
            let http = HttpConfig {
                port,
                ..HttpConfig::default()
            };
            let (_, probe) = probe(&http).await;
            let request = server.join().unwrap();
            assert!(
                request.starts_with("GET /healthz HTTP/1.1\r\n")
                    && request.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
                "{request}"
            );
            assert_eq!(probe == Probe::Up, up, "{probe:?}");
        }
    }
}
