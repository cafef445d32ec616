//! Reading live events (Server-Sent Events): a parser that survives any cut of
//! the bytes, a reqwest client bounded by deadlines, and a bare-socket reader
//! cheap enough to hold a thousand streams.

/// One Server-Sent Events message as read off the wire: the fields of one block,
/// up to its blank line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseFrame {
    /// The `id:` field.
    pub id: Option<String>,
    /// The `event:` field.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n` (empty when there were none).
    pub data: String,
    /// The `retry:` field.
    pub retry: Option<String>,
    /// Comment lines (`: text`), without the colon and the one space after it.
    pub comments: Vec<String>,
    /// Names of fields outside the SSE grammar, which a client ignores and a
    /// test may refuse.
    pub unknown: Vec<String>,
}

impl SseFrame {
    /// Whether this is a message (it has an event type or data), not a block of
    /// comments such as `: connected` or `: heartbeat`.
    pub fn is_message(&self) -> bool {
        self.event.is_some() || !self.data.is_empty()
    }

    /// The `event:` field, or `""`.
    pub fn kind(&self) -> &str {
        self.event.as_deref().unwrap_or("")
    }

    /// The `data:` field parsed as JSON (the envelope `{"type","timestamp","data"}`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("the data of {self:?} is not JSON: {e}"))
    }

    /// The `id:` field as the number the server gives out.
    pub fn id_number(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("{self:?} has no numeric id"))
    }
}

/// Splits an SSE byte stream into frames, however the bytes are cut into reads.
/// Lines end with `\n`, `\r\n` or a lone `\r`, as the SSE grammar allows.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    frame: SseFrame,
    /// Whether the block so far had any line, so a blank line ends a frame.
    started: bool,
    /// The previous byte was `\r`: a `\n` right after it ends no second line.
    after_cr: bool,
}

impl SseParser {
    /// Feeds `bytes`; returns the frames they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseFrame> {
        let mut out = Vec::new();
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(&mut out);
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<SseFrame>) {
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
        if line.is_empty() {
            if std::mem::take(&mut self.started) {
                out.push(std::mem::take(&mut self.frame));
            }
            return;
        }
        self.started = true;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        let frame = &mut self.frame;
        match field {
            "" => frame.comments.push(value.to_owned()),
            "id" => frame.id = Some(value.to_owned()),
            "event" => frame.event = Some(value.to_owned()),
            "retry" => frame.retry = Some(value.to_owned()),
            "data" => {
                if !frame.data.is_empty() {
                    frame.data.push('\n');
                }
                frame.data.push_str(value);
            }
            other => frame.unknown.push(other.to_owned()),
        }
    }

    /// Whether no part of a frame is waiting for more bytes.
    pub fn is_between_frames(&self) -> bool {
        !self.started && self.line.is_empty()
    }

    /// The frames of a whole body read at once (an MCP answer sent as
    /// `text/event-stream`); a last block without its blank line counts too.
    pub fn parse_all(body: &[u8]) -> Vec<SseFrame> {
        let mut parser = SseParser::default();
        let mut frames = parser.feed(body);
        frames.extend(parser.feed(b"\n\n"));
        frames
    }
}

/// A POST to an `/mcp` URL with the headers the streamable HTTP transport asks
/// of a client; its answer's messages are [`mcp_messages`].
pub fn mcp_post(http: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
    http.post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
}

/// The JSON-RPC messages of an `/mcp` answer, which the transport sends as an
/// SSE body or as plain JSON at its choice; data that is not JSON is skipped.
pub fn mcp_messages(body: &str) -> Vec<serde_json::Value> {
    SseParser::parse_all(body.as_bytes())
        .into_iter()
        .map(|frame| frame.data)
        .chain(std::iter::once(body.trim().to_owned()))
        .filter_map(|data| serde_json::from_str(&data).ok())
        .collect()
}

/// The `structuredContent` of the tool result in an `/mcp` answer's body.
pub fn mcp_tool_result(body: &str) -> serde_json::Value {
    let message = mcp_messages(body)
        .into_iter()
        .find(|m| m.get("result").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC result in {body}"));
    message["result"]["structuredContent"].clone()
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

/// A live `GET /api/events` over reqwest, read frame by frame. Every read is
/// bounded by a deadline and panics with what it saw when that passes, so a
/// missing event fails the test instead of hanging it.
pub struct SseClient {
    headers: reqwest::header::HeaderMap,
    body: ByteStream,
    parser: SseParser,
    ready: std::collections::VecDeque<SseFrame>,
}

impl SseClient {
    /// Opens `{base}/api/events`, with `Last-Event-ID` when given.
    pub async fn connect(base: &str, last_event_id: Option<&str>) -> Self {
        let mut request = reqwest::Client::new().get(format!("{base}/api/events"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        Self::open(request).await
    }

    /// Sends `request` (a GET of the events route) and checks it is an event stream.
    pub async fn open(request: reqwest::RequestBuilder) -> Self {
        use futures_util::StreamExt;
        let response = request.send().await.expect("GET /api/events");
        assert_eq!(response.status().as_u16(), 200, "GET /api/events");
        let kind = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(
            kind.starts_with("text/event-stream"),
            "content type {kind:?}"
        );
        let headers = response.headers().clone();
        // Copied into a Vec so the stream's type names no crate outside reqwest.
        let body = response
            .bytes_stream()
            .map(|chunk| chunk.map(|b| b.to_vec()))
            .boxed();
        SseClient {
            headers,
            body,
            parser: SseParser::default(),
            ready: std::collections::VecDeque::new(),
        }
    }

    /// The response headers.
    pub fn headers(&self) -> &reqwest::header::HeaderMap {
        &self.headers
    }

    /// The next frame, comments included, before `deadline`; `None` when the
    /// deadline passes first. Panics when the stream ends or fails.
    pub async fn next_before(&mut self, deadline: tokio::time::Instant) -> Option<SseFrame> {
        use futures_util::StreamExt;
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Some(frame);
            }
            let chunk = match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return None,
                Ok(None) => panic!("the event stream ended"),
                Ok(Some(Err(e))) => panic!("the event stream failed: {e}"),
                Ok(Some(Ok(chunk))) => chunk,
            };
            self.ready.extend(self.parser.feed(&chunk));
        }
    }

    /// The next frame, comments included, within `within`.
    pub async fn next_frame(&mut self, within: std::time::Duration) -> SseFrame {
        let deadline = tokio::time::Instant::now() + within;
        self.next_before(deadline)
            .await
            .unwrap_or_else(|| panic!("no event frame within {within:?}"))
    }

    /// The next message (comment blocks skipped) within `within`.
    pub async fn next_message(&mut self, within: std::time::Duration) -> SseFrame {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.next_before(deadline).await {
                Some(frame) if frame.is_message() => return frame,
                Some(_) => {}
                None => panic!("no event message within {within:?}"),
            }
        }
    }

    /// Messages up to and including the first one `done` accepts, within `within`;
    /// panics with everything seen when it does not come.
    pub async fn until(
        &mut self,
        within: std::time::Duration,
        mut done: impl FnMut(&SseFrame) -> bool,
    ) -> Vec<SseFrame> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            match self.next_before(deadline).await {
                Some(frame) if frame.is_message() => {
                    let last = done(&frame);
                    seen.push(frame);
                    if last {
                        return seen;
                    }
                }
                Some(_) => {}
                None => panic!(
                    "the awaited event did not come within {within:?}; saw:\n{}",
                    seen.iter()
                        .map(|f| format!(
                            "{} {} {}",
                            f.id.as_deref().unwrap_or("-"),
                            f.kind(),
                            f.data
                        ))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
}

/// Undoes HTTP/1.1 chunked transfer coding as bytes arrive.
#[derive(Debug, Default)]
pub struct Dechunk {
    state: ChunkState,
    size_line: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// This many data bytes are left in the chunk.
    Data(usize),
    /// This many bytes of the CRLF after the chunk's data are left.
    DataEnd(u8),
    /// The last chunk was read.
    Done,
}

impl Dechunk {
    /// Appends the body bytes in `input` to `out`; `false` once the body has ended
    /// or the coding is broken.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> bool {
        while !input.is_empty() {
            match self.state {
                ChunkState::Done => return false,
                ChunkState::Size => {
                    let b = input[0];
                    input = &input[1..];
                    if b != b'\n' {
                        self.size_line.push(b);
                        continue;
                    }
                    let line = String::from_utf8_lossy(&self.size_line).into_owned();
                    self.size_line.clear();
                    let hex = line.trim().split(';').next().unwrap_or("");
                    let Ok(size) = usize::from_str_radix(hex, 16) else {
                        self.state = ChunkState::Done;
                        return false;
                    };
                    self.state = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    let n = left.min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.state = if n == left {
                        ChunkState::DataEnd(2)
                    } else {
                        ChunkState::Data(left - n)
                    };
                }
                ChunkState::DataEnd(left) => {
                    input = &input[1..];
                    self.state = if left == 1 {
                        ChunkState::Size
                    } else {
                        ChunkState::DataEnd(left - 1)
                    };
                }
            }
        }
        self.state != ChunkState::Done
    }
}

/// `GET /api/events` over a bare TCP socket: a few kilobytes per stream, so one
/// test can hold a thousand of them where an HTTP client would cost far more.
pub struct RawSse {
    stream: tokio::net::TcpStream,
    chunked: bool,
    dechunk: Dechunk,
    parser: SseParser,
    ready: std::collections::VecDeque<SseFrame>,
    /// Body bytes read along with the response head.
    early: Vec<u8>,
}

impl RawSse {
    /// Connects to `addr`, sends the request (with `Last-Event-ID` when given) and
    /// reads the response head, which must be `200`.
    pub async fn connect(
        addr: std::net::SocketAddr,
        last_event_id: Option<&str>,
    ) -> std::io::Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{resume}\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::with_capacity(512);
        let mut buf = [0_u8; 1024];
        let end = loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed before answering",
                ));
            }
            head.extend_from_slice(&buf[..n]);
        };
        let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
        if !text.starts_with("http/1.1 200") {
            return Err(std::io::Error::other(format!("unexpected answer: {text}")));
        }
        Ok(RawSse {
            stream,
            chunked: text.contains("transfer-encoding: chunked"),
            dechunk: Dechunk::default(),
            parser: SseParser::default(),
            ready: std::collections::VecDeque::new(),
            early: head[end..].to_vec(),
        })
    }

    /// The next frame, comments included; `None` when the stream has ended.
    pub async fn next_frame(&mut self) -> std::io::Result<Option<SseFrame>> {
        use tokio::io::AsyncReadExt;
        let mut buf = [0_u8; 4096];
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Ok(Some(frame));
            }
            let input = if self.early.is_empty() {
                let n = self.stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok(None);
                }
                buf[..n].to_vec()
            } else {
                std::mem::take(&mut self.early)
            };
            let body = if self.chunked {
                let mut body = Vec::with_capacity(input.len());
                let open = self.dechunk.feed(&input, &mut body);
                if !open && body.is_empty() {
                    return Ok(None);
                }
                body
            } else {
                input
            };
            self.ready.extend(self.parser.feed(&body));
        }
    }
}
