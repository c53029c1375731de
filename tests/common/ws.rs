//! Websocket helpers for every suite: a thin client over tokio-tungstenite that talks to
//! the real `chorus` binary on 127.0.0.1 and waits for frames with a deadline, never by sleeping.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Server, TestUser};

/// How long any single expected frame may take. Generous: the suites share two cores.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(20);

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the socket yielded next.
#[derive(Debug)]
pub enum Event {
    /// A text frame (JSON or the bare `heartbeat`).
    Text(String),
    Binary(Vec<u8>),
    /// A close frame, with its code when it had one.
    Close(Option<u16>),
    /// The stream ended (or broke) without a close frame.
    End(String),
}

/// One websocket connection of one user.
pub struct Client {
    pub label: String,
    stream: Stream,
    closed: bool,
}

/// `ws://ADDR/chat?token=TOKEN`
pub fn chat_url(server: &Server, token: &str) -> String {
    format!("ws://{}/chat?token={token}", server.addr)
}

/// Awaits `fut` for at most [`FRAME_DEADLINE`]; panics naming `what` when it takes longer.
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(FRAME_DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: timed out after {FRAME_DEADLINE:?}"),
    }
}

/// Tries the websocket handshake; on refusal returns the HTTP status and body.
pub async fn try_connect(server: &Server, url_tail: &str) -> Result<Stream, (u16, String)> {
    let url = format!("ws://{}{url_tail}", server.addr);
    let what = format!("websocket handshake to {url}");
    match within(&what, tokio_tungstenite::connect_async(url.clone())).await {
        Ok((stream, _)) => Ok(stream),
        Err(WsError::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("{what} failed: {e}"),
    }
}

impl Client {
    /// Connects `user` to `/chat`; panics if the server refuses.
    pub async fn connect(server: &Server, user: &TestUser, label: &str) -> Client {
        let stream = try_connect(server, &format!("/chat?token={}", user.token))
            .await
            .unwrap_or_else(|(status, body)| {
                panic!("{label}: /chat refused with {status}: {body}")
            });
        Client {
            label: label.to_string(),
            stream,
            closed: false,
        }
    }

    /// Connects and waits until the connection is registered and its replay is done (a
    /// heartbeat round trip), for connections that have nothing to replay.
    pub async fn connect_ready(server: &Server, user: &TestUser, label: &str) -> Client {
        let mut client = Self::connect(server, user, label).await;
        client.ready().await;
        client
    }

    /// Connects over a socket whose kernel receive buffer is tiny, so that a client that never
    /// reads backs the server up after a few hundred kilobytes instead of many megabytes.
    pub async fn connect_small_buffer(server: &Server, user: &TestUser, label: &str) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let tcp = socket
            .connect(server.addr.parse().expect("server addr"))
            .await
            .expect("tcp connect");
        let url = chat_url(server, &user.token);
        let handshake = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp));
        let stream = match within(&format!("{label}: handshake"), handshake).await {
            Ok((stream, _)) => stream,
            Err(e) => panic!("{label}: handshake failed: {e}"),
        };
        Client {
            label: label.to_string(),
            stream,
            closed: false,
        }
    }

    async fn send(&mut self, message: Message) {
        let what = format!("{}: sending", self.label);
        if let Err(e) = within(&what, self.stream.send(message)).await {
            panic!("{what} failed: {e}");
        }
    }

    /// Sends a text frame; `false` if the connection is gone (a node killed under the test).
    pub async fn try_send_text(&mut self, text: &str) -> bool {
        let what = format!("{}: sending", self.label);
        within(&what, self.stream.send(Message::Text(text.to_string())))
            .await
            .is_ok()
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send(Message::Text(text.to_string())).await;
    }

    pub async fn send_json(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.send(Message::Binary(bytes)).await;
    }

    /// Sends a private text message (does not wait for the ack).
    pub async fn private(&mut self, id: &str, to: i64, content: &str) {
        self.send_json(private_frame(id, to, content)).await;
    }

    /// Sends a group text message (does not wait for the ack).
    pub async fn group(&mut self, id: &str, community: i64, content: &str) {
        self.send_json(group_frame(id, community, content)).await;
    }

    /// A JSON heartbeat round trip, which must be the next frame. The server starts reading a
    /// connection only after registering it and announcing its presence, so once this returns
    /// both are done.
    pub async fn ready(&mut self) {
        self.send_json(json!({"type":"heartbeat"})).await;
        self.recv_type("heartbeat").await;
    }

    /// The next event, or `None` when `deadline` passes first. Pings and pongs are skipped.
    pub async fn next_event(&mut self, deadline: Duration) -> Option<Event> {
        let end = tokio::time::Instant::now() + deadline;
        loop {
            let next = tokio::time::timeout_at(end, self.stream.next())
                .await
                .ok()?;
            let event = match next {
                Some(Ok(Message::Text(t))) => Event::Text(t),
                Some(Ok(Message::Binary(b))) => Event::Binary(b),
                Some(Ok(Message::Close(frame))) => {
                    self.closed = true;
                    Event::Close(frame.map(|f| u16::from(f.code)))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Err(e)) => {
                    self.closed = true;
                    Event::End(e.to_string())
                }
                None => {
                    self.closed = true;
                    Event::End("stream ended".into())
                }
            };
            return Some(event);
        }
    }

    /// The next text frame, raw; panics on anything else or after [`FRAME_DEADLINE`].
    pub async fn recv_text(&mut self) -> String {
        match self.next_event(FRAME_DEADLINE).await {
            Some(Event::Text(t)) => t,
            Some(other) => panic!("{}: expected a text frame, got {other:?}", self.label),
            None => panic!(
                "{}: no frame within {FRAME_DEADLINE:?} (expected a text frame)",
                self.label
            ),
        }
    }

    /// The next frame as JSON; panics on anything else or after [`FRAME_DEADLINE`].
    pub async fn recv(&mut self) -> Value {
        let text = self.recv_text().await;
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: frame is not JSON ({e}): {text}", self.label))
    }

    /// The next frame, which must have `"type": ty`.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(
            frame["type"], ty,
            "{}: expected a {ty:?} frame, got {frame}",
            self.label
        );
        frame
    }

    /// Reads frames until one satisfies `pred`; returns the frames before it and the match.
    pub async fn recv_until(
        &mut self,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> (Vec<Value>, Value) {
        let mut before = Vec::new();
        loop {
            let frame = self.recv().await;
            if pred(&frame) {
                return (before, frame);
            }
            before.push(frame);
        }
    }

    /// Sends a private message and waits for its ack, which must be the next frame.
    pub async fn private_acked(&mut self, id: &str, to: i64, content: &str) -> Value {
        self.private(id, to, content).await;
        self.expect_ack(id).await
    }

    /// Sends a group message and waits for its ack, which must be the next frame.
    pub async fn group_acked(&mut self, id: &str, community: i64, content: &str) -> Value {
        self.group(id, community, content).await;
        self.expect_ack(id).await
    }

    /// The next frame must be the ack for client id `id`.
    pub async fn expect_ack(&mut self, id: &str) -> Value {
        let ack = self.recv().await;
        assert_eq!(
            ack["type"], "ack",
            "{}: expected the ack of {id}, got {ack}",
            self.label
        );
        assert_eq!(ack["id"], id, "{}: ack for the wrong id: {ack}", self.label);
        ack
    }

    /// The next frame must be an `error` with `code` (and `id` echoed when given).
    pub async fn expect_error(&mut self, code: &str, id: Option<&str>) -> Value {
        let frame = self.recv().await;
        assert_eq!(
            frame["type"], "error",
            "{}: expected error {code}, got {frame}",
            self.label
        );
        assert_eq!(
            frame["code"], code,
            "{}: wrong error code in {frame}",
            self.label
        );
        assert!(
            frame["message"].is_string(),
            "{}: error without message: {frame}",
            self.label
        );
        if let Some(id) = id {
            assert_eq!(
                frame["id"], id,
                "{}: error must echo the id: {frame}",
                self.label
            );
        }
        frame
    }

    /// Waits for the server to close this connection: returns the close code (None when the
    /// stream simply ended) and how many text frames arrived before. Panics after `deadline`.
    pub async fn expect_closed(&mut self, deadline: Duration) -> (Option<u16>, Vec<String>) {
        let end = tokio::time::Instant::now() + deadline;
        let mut texts = Vec::new();
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Some(Event::Text(t)) => texts.push(t),
                Some(Event::Binary(_)) => {}
                Some(Event::Close(code)) => return (code, texts),
                Some(Event::End(_)) => return (None, texts),
                None => panic!(
                    "{}: still open after {deadline:?} ({} frames read meanwhile)",
                    self.label,
                    texts.len()
                ),
            }
        }
    }

    /// Closes cleanly and waits until the server has closed its side too.
    pub async fn close(mut self) {
        if self.closed {
            return;
        }
        let _ = tokio::time::timeout(FRAME_DEADLINE, self.stream.close(None)).await;
        // Drain until the server's close frame or the end of the stream.
        let end = tokio::time::Instant::now() + FRAME_DEADLINE;
        loop {
            match tokio::time::timeout_at(end, self.stream.next()).await {
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => return,
                Err(_) => panic!("{}: server did not finish the close handshake", self.label),
            }
        }
    }
}

/// Asserts that a `message` frame carries the fields the contract promises.
pub fn assert_message(
    frame: &Value,
    conversation: &str,
    seq: i64,
    from: i64,
    to: i64,
    kind: &str,
    content: &str,
) {
    assert_eq!(frame["type"], "message", "not a message frame: {frame}");
    assert_eq!(
        frame["conversation"], conversation,
        "conversation in {frame}"
    );
    assert_eq!(frame["seq"], seq, "seq in {frame}");
    assert_eq!(frame["from"], from, "from in {frame}");
    assert_eq!(frame["to"], to, "to in {frame}");
    assert_eq!(frame["kind"], kind, "kind in {frame}");
    assert_eq!(frame["media"], "text", "media in {frame}");
    assert_eq!(frame["content"], content, "content in {frame}");
    assert!(
        frame["msg_id"].as_str().is_some_and(|s| !s.is_empty()),
        "msg_id in {frame}"
    );
    assert!(frame["ts"].as_i64().is_some_and(|t| t > 0), "ts in {frame}");
}

/// A private text message frame with client id `id`.
pub fn private_frame(id: &str, to: i64, content: &str) -> Value {
    json!({"type":"private","id":id,"to":to,"media":"text","content":content})
}

/// A group text message frame with client id `id`.
pub fn group_frame(id: &str, community: i64, content: &str) -> Value {
    json!({"type":"group","id":id,"to":community,"media":"text","content":content})
}

/// `p:{min}:{max}`
pub fn private_conv(a: i64, b: i64) -> String {
    format!("p:{}:{}", a.min(b), a.max(b))
}

/// Creates a community owned by `owner` and joins `members` to it; returns its id.
pub async fn community(server: &Server, owner: &TestUser, members: &[&TestUser]) -> i64 {
    let r = server
        .post("/api/communities", owner.t(), json!({"name": "room"}))
        .await;
    r.expect(201);
    let id = r.json()["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("community without id: {}", r.text()));
    for m in members {
        server
            .post_empty(&format!("/api/communities/{id}/members"), m.t())
            .await
            .expect(201);
    }
    id
}

/// Makes `a` and `b` contacts (mutual).
pub async fn befriend(server: &Server, a: &TestUser, b: &TestUser) {
    server
        .post("/api/contacts", a.t(), json!({"user_id": b.id}))
        .await
        .expect(201);
}
