//! How a `get_user_request` call finds its queue (issue 15): the `queue`
//! argument, else the server's fixed queue, else the client's first MCP root,
//! else the fallback; raw JSON-RPC over an in-process pipe, so the test plays the
//! client's part in `roots/list` itself.

use std::sync::Arc;
use std::time::Duration;

use mcp_adapter::{QueueChoice, QueueServer};
use queue_core::{MemoryStore, QueueName, Service, SettingsPatch};
use rmcp::ServiceExt;
use rmcp::transport::async_rw::AsyncRwTransport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines, WriteHalf};

/// Long enough for any answer on a loaded machine; a test only waits this long
/// when it is failing.
const PATIENCE: Duration = Duration::from_secs(10);

fn queue(name: &str) -> QueueName {
    QueueName::parse(name).unwrap()
}

/// One client connection to a [`QueueServer`], spoken line by line.
struct Client {
    write: WriteHalf<DuplexStream>,
    read: Lines<BufReader<tokio::io::ReadHalf<DuplexStream>>>,
    /// What the client answers to `roots/list`: the URIs, or `None` for an error.
    roots: Option<Vec<String>>,
    /// How many `roots/list` requests it answered.
    asked: usize,
}

impl Client {
    /// Connects and shakes hands, declaring the roots capability when `roots` is
    /// `Some`.
    async fn connect(service: &Service, choice: QueueChoice, roots: Option<Vec<String>>) -> Self {
        let handler = QueueServer::new(service.clone()).with_queue_choice(choice);
        let (server_io, client_io) = tokio::io::duplex(1 << 16);
        let (r, w) = tokio::io::split(server_io);
        tokio::spawn(async move {
            if let Ok(running) = handler.serve(AsyncRwTransport::new_server(r, w)).await {
                let _ = running.waiting().await;
            }
        });
        let (r, write) = tokio::io::split(client_io);
        let mut client = Client {
            write,
            read: BufReader::new(r).lines(),
            roots: roots.clone(),
            asked: 0,
        };
        let capabilities = if roots.is_some() {
            json!({"roots": {"listChanged": true}})
        } else {
            json!({})
        };
        client
            .send(
                json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": capabilities,
                    "clientInfo": {"name": "test-client", "version": "1"}
                }}),
            )
            .await;
        let init = client.answer("init").await;
        assert!(init.get("result").is_some(), "{init}");
        client
            .send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        client
    }

    async fn send(&mut self, message: Value) {
        let mut line = message.to_string();
        line.push('\n');
        self.write.write_all(line.as_bytes()).await.unwrap();
        self.write.flush().await.unwrap();
    }

    /// The answer to request `id`, answering the server's `roots/list` on the way.
    async fn answer(&mut self, id: &str) -> Value {
        loop {
            let line = tokio::time::timeout(PATIENCE, self.read.next_line())
                .await
                .expect("an answer in time")
                .unwrap()
                .expect("the server keeps the pipe open");
            let message: Value = serde_json::from_str(&line).unwrap();
            if message["method"] == "roots/list" {
                self.asked += 1;
                let reply = match &self.roots {
                    Some(uris) => {
                        let roots: Vec<Value> = uris.iter().map(|u| json!({"uri": u})).collect();
                        json!({"jsonrpc": "2.0", "id": message["id"], "result": {"roots": roots}})
                    }
                    None => json!({"jsonrpc": "2.0", "id": message["id"],
                        "error": {"code": -32601, "message": "no roots here"}}),
                };
                self.send(reply).await;
                continue;
            }
            if message["id"] == json!(id) {
                return message;
            }
        }
    }

    /// Calls the tool; returns its structured result.
    async fn call(&mut self, id: &str, arguments: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "get_user_request", "arguments": arguments}}))
            .await;
        let answer = self.answer(id).await;
        assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
        answer["result"]["structuredContent"].clone()
    }
}

/// A service with no waiting and one instruction on each of `queues`, whose text
/// is the queue's name.
async fn service_with(queues: &[&str]) -> Service {
    let service = Service::builder(Arc::new(MemoryStore::new()))
        .build()
        .unwrap();
    service
        .update_settings(SettingsPatch::new(Some(0), None, None).unwrap())
        .await
        .unwrap();
    for name in queues {
        service.add_to(&queue(name), None, name).await.unwrap();
    }
    service
}

fn taken(result: &Value) -> Option<&str> {
    result["instruction"]["content"].as_str()
}

#[tokio::test]
async fn the_first_root_names_the_queue_and_is_asked_once() {
    let service = service_with(&["default", "shop", "web"]).await;
    let roots = vec![
        "https://example.com/not-a-folder".to_owned(),
        "file:///nowhere/projects/shop".to_owned(),
        "file:///nowhere/projects/web".to_owned(),
    ];
    let mut client = Client::connect(&service, QueueChoice::default(), Some(roots)).await;
    let first = client.call("1", json!({})).await;
    assert_eq!(first["queue"], "shop");
    assert_eq!(taken(&first), Some("shop"));
    let second = client.call("2", json!({})).await;
    assert_eq!(second["queue"], "shop");
    assert_eq!(second["instruction"], Value::Null, "{second}");
    assert_eq!(client.asked, 1, "the roots are remembered for the session");
    // Nothing else was touched.
    assert_eq!(service.counts(&queue("default")).await.unwrap().pending, 1);
    assert_eq!(service.counts(&queue("web")).await.unwrap().pending, 1);
}

#[tokio::test]
async fn a_changed_root_list_is_asked_again() {
    let service = service_with(&["shop", "web"]).await;
    let roots = vec!["file:///nowhere/shop".to_owned()];
    let mut client = Client::connect(&service, QueueChoice::default(), Some(roots)).await;
    assert_eq!(taken(&client.call("1", json!({})).await), Some("shop"));
    client.roots = Some(vec!["file:///nowhere/web".to_owned()]);
    client
        .send(json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}))
        .await;
    // The notification and the call travel one pipe in order.
    let after = client.call("2", json!({})).await;
    assert_eq!(after["queue"], "web");
    assert_eq!(taken(&after), Some("web"));
    assert_eq!(client.asked, 2);
}

#[tokio::test]
async fn the_argument_beats_the_fixed_queue_which_beats_the_roots() {
    let service = service_with(&["fixed", "shop", "picked"]).await;
    let choice = QueueChoice {
        fixed: Some(queue("fixed")),
        ..QueueChoice::default()
    };
    let roots = vec!["file:///nowhere/shop".to_owned()];
    let mut client = Client::connect(&service, choice, Some(roots)).await;
    let fixed = client.call("1", json!({})).await;
    assert_eq!(taken(&fixed), Some("fixed"));
    let picked = client.call("2", json!({"queue": "picked"})).await;
    assert_eq!(picked["queue"], "picked");
    assert_eq!(taken(&picked), Some("picked"));
    assert_eq!(client.asked, 0, "a fixed queue needs no roots");
    assert_eq!(service.counts(&queue("shop")).await.unwrap().pending, 1);
}

#[tokio::test]
async fn without_roots_or_with_a_failing_list_the_fallback_is_used() {
    let service = service_with(&["here", "default"]).await;
    let choice = QueueChoice {
        fallback: queue("here"),
        ..QueueChoice::default()
    };
    // A client without the roots capability is never asked.
    let mut plain = Client::connect(&service, choice.clone(), None).await;
    let result = plain.call("1", json!({})).await;
    assert_eq!(taken(&result), Some("here"));
    assert_eq!(plain.asked, 0);

    // A client that declares roots but refuses to list them.
    let mut refusing = Client::connect(&service, choice, Some(vec![])).await;
    refusing.roots = None;
    let result = refusing.call("1", json!({})).await;
    assert_eq!(result["queue"], "here");
    assert_eq!(refusing.asked, 1);

    // An empty root list names nothing either.
    let mut empty = Client::connect(&service, QueueChoice::default(), Some(vec![])).await;
    let result = empty.call("1", json!({})).await;
    assert_eq!(taken(&result), Some("default"));
    assert_eq!(empty.asked, 1);
}

#[tokio::test]
async fn an_invalid_queue_argument_is_a_tool_error_that_consumes_nothing() {
    let service = service_with(&["default"]).await;
    let mut client = Client::connect(&service, QueueChoice::default(), None).await;
    client
        .send(
            json!({"jsonrpc": "2.0", "id": "bad", "method": "tools/call",
            "params": {"name": "get_user_request", "arguments": {"queue": "my project"}}}),
        )
        .await;
    let answer = client.answer("bad").await;
    assert_eq!(answer["result"]["isError"], json!(true), "{answer}");
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("invalid `queue`"), "{text}");
    assert!(text.contains("nothing was consumed"), "{text}");
    assert_eq!(service.counts(&queue("default")).await.unwrap().pending, 1);
    assert!(service.agents().await.unwrap().is_empty());
}
