//! The plain TCP line endpoint (`CHORUS__LINE__ADDR`), driven with a raw TCP client against the
//! real binary: log-in first, every command, bad lines answered without closing, the limits
//! (line length, rate, sockets per user, silence, log-in throttle, revocation), and a message
//! from a line client reaching a websocket user on another node of a cluster and back.
//!
//! SQLite for the single-node tests; PostgreSQL (`CHORUS_TEST_POSTGRES_URL`) for the cluster.

use crate::common::{self, cluster, ws};

use std::time::Duration;

use common::{Backend, Server, TestDb, TestUser, PASSWORD};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use ws::{befriend, community, private_conv, Client};

/// How long one expected line may take.
const LINE_DEADLINE: Duration = Duration::from_secs(20);

/// A raw TCP client of the line endpoint.
struct Line {
    label: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Line {
    /// Connects to `server`'s line endpoint and reads the greeting.
    async fn connect(server: &Server, label: &str) -> Line {
        let stream = TcpStream::connect(line_addr(server))
            .await
            .expect("connect line");
        Self::greeted(stream, label).await
    }

    /// Connects over a socket with a tiny kernel receive buffer (for a client that never reads).
    async fn connect_small_buffer(server: &Server, label: &str) -> Line {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let addr = line_addr(server).parse().expect("line addr");
        let stream = socket.connect(addr).await.expect("connect line");
        Self::greeted(stream, label).await
    }

    async fn greeted(stream: TcpStream, label: &str) -> Line {
        let (read, writer) = stream.into_split();
        let mut line = Line {
            label: label.to_owned(),
            reader: BufReader::new(read),
            writer,
        };
        let hello = line.recv().await;
        assert!(hello.starts_with("HELLO chorus 1"), "greeting: {hello}");
        line
    }

    /// Connects and logs in as `user` (password [`PASSWORD`]).
    async fn login(server: &Server, user: &TestUser, label: &str) -> Line {
        let mut line = Self::connect(server, label).await;
        line.send(&format!("LOGIN {} {PASSWORD}", user.name)).await;
        line.expect(&format!("OK LOGIN {} {}", user.name, user.id))
            .await;
        line
    }

    async fn send(&mut self, text: &str) {
        self.send_bytes(format!("{text}\n").as_bytes()).await;
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write line");
    }

    /// The next line (without its `\n`); `None` when the server closed the connection.
    async fn next(&mut self, deadline: Duration) -> Option<String> {
        let mut buf = String::new();
        let read = tokio::time::timeout(deadline, self.reader.read_line(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{}: no line within {deadline:?}", self.label));
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                assert!(buf.ends_with('\n'), "{}: unterminated {buf:?}", self.label);
                buf.pop();
                Some(buf)
            }
        }
    }

    async fn recv(&mut self) -> String {
        let label = self.label.clone();
        self.next(LINE_DEADLINE)
            .await
            .unwrap_or_else(|| panic!("{label}: closed while a line was expected"))
    }

    /// The next line must be exactly `want`.
    async fn expect(&mut self, want: &str) {
        let got = self.recv().await;
        assert_eq!(got, want, "{}", self.label);
    }

    /// The next line must start with `prefix`; returns it.
    async fn expect_prefix(&mut self, prefix: &str) -> String {
        let got = self.recv().await;
        assert!(
            got.starts_with(prefix),
            "{}: expected {prefix:?}…, got {got:?}",
            self.label
        );
        got
    }

    /// Reads lines until one starts with `prefix`; returns the lines before and that one.
    async fn until(&mut self, prefix: &str) -> (Vec<String>, String) {
        let mut before = Vec::new();
        loop {
            let got = self.recv().await;
            if got.starts_with(prefix) {
                return (before, got);
            }
            before.push(got);
        }
    }

    /// The server must close the connection within `deadline`; returns the lines before.
    async fn expect_closed(&mut self, deadline: Duration) -> Vec<String> {
        let end = tokio::time::Instant::now() + deadline;
        let mut lines = Vec::new();
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(line) => lines.push(line),
                None => return lines,
            }
        }
    }
}

fn line_addr(server: &Server) -> String {
    server
        .line_addr
        .clone()
        .expect("the node printed no `line on` address")
}

/// The next websocket frame of type `ty`, skipping others (presence, reads) that may come first.
async fn next_of(client: &mut Client, ty: &str) -> serde_json::Value {
    client.recv_until(|f| f["type"] == ty).await.1
}

/// Sends a private message over the websocket and waits for its ack.
async fn ws_send(client: &mut Client, id: &str, to: i64, text: &str) {
    client.private(id, to, text).await;
    let ack = next_of(client, "ack").await;
    assert_eq!(ack["id"], id, "{ack}");
}

async fn line_server(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("CHORUS__LINE__ADDR", "127.0.0.1:0")];
    env.extend_from_slice(extra);
    Server::start_with(Backend::Sqlite, &env)
        .await
        .expect("SQLite is always available")
}

#[tokio::test]
async fn off_by_default() {
    let server = Server::start(Backend::Sqlite).await.expect("sqlite");
    assert_eq!(server.line_addr, None, "no `line on` without line.addr");
}

#[tokio::test]
async fn log_in_comes_first() {
    let server = line_server(&[]).await;
    let alice = server.user("alice").await;
    let mut line = Line::connect(&server, "alice").await;
    line.send("PING").await;
    line.expect("PONG").await;
    line.send("help").await;
    let (help, _) = line.until("OK HELP").await;
    assert!(
        help.iter().all(|h| h.starts_with("HELP "))
            && help.iter().any(|h| h.starts_with("HELP MSG name text")),
        "{help:?}"
    );
    for (command, reference) in [
        ("WHO", "WHO"),
        ("MSG bob hi", "l1"),
        ("GROUP 1 hi", "l2"),
        ("JOIN 1", "JOIN"),
        ("HISTORY p:1:2", "HISTORY"),
        ("READ p:1:2 1", "READ"),
    ] {
        line.send(command).await;
        line.expect_prefix(&format!("ERR unauthorized {reference} log in first"))
            .await;
    }
    line.send("LOGIN alice wrong password").await;
    line.expect("ERR invalid_credentials LOGIN wrong name or password")
        .await;
    line.send("LOGIN nobody whatever").await;
    line.expect("ERR invalid_credentials LOGIN wrong name or password")
        .await;
    line.send(&format!("LOGIN alice {PASSWORD}")).await;
    line.expect(&format!("OK LOGIN alice {}", alice.id)).await;
    line.send("WHO").await;
    line.expect("OK WHO 0").await;
    line.send(&format!("LOGIN alice {PASSWORD}")).await;
    line.expect_prefix("ERR invalid_command LOGIN already logged in")
        .await;
    // The session is a real one: the account lists it while the socket is open, not after.
    let sessions = server.get("/api/sessions", alice.t()).await;
    sessions.expect(200);
    assert_eq!(sessions.json().as_array().map(Vec::len), Some(2));
    line.send("QUIT").await;
    assert_eq!(
        line.expect_closed(LINE_DEADLINE).await,
        ["BYE 1000 bye"],
        "QUIT says BYE and closes"
    );
    common::wait_for(LINE_DEADLINE, "the line session to go", || async {
        let r = server.get("/api/sessions", alice.t()).await;
        (r.json().as_array().map(Vec::len) == Some(1)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn every_command() {
    let server = line_server(&[]).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    befriend(&server, &alice, &bob).await;
    let room = community(&server, &alice, &[&bob]).await;
    let conv = private_conv(alice.id, bob.id);

    // Sent while alice is away: it waits for her log-in.
    let mut bob_ws = Client::connect_ready(&server, &bob, "bob").await;
    ws_send(&mut bob_ws, "b-1", alice.id, "while you were out").await;

    let mut line = Line::login(&server, &alice, "alice").await;
    line.expect(&format!("MESSAGE {conv} 1 bob while you were out"))
        .await;
    line.send("WHO").await;
    line.expect("WHO bob").await;
    line.expect("OK WHO 1").await;

    line.send("MSG bob hello from the line").await;
    line.expect(&format!("ACK l1 {conv} 2")).await;
    let got = next_of(&mut bob_ws, "message").await;
    assert_eq!(
        (
            got["from"].as_i64(),
            got["content"].as_str(),
            got["seq"].as_i64()
        ),
        (Some(alice.id), Some("hello from the line"), Some(2))
    );
    line.send(&format!("msg #{} by id", bob.id)).await;
    line.expect(&format!("ACK l2 {conv} 3")).await;
    next_of(&mut bob_ws, "message").await;

    line.send(&format!("GROUP {room} hello room")).await;
    line.expect(&format!("ACK l3 g:{room} 1")).await;
    let got = next_of(&mut bob_ws, "message").await;
    assert_eq!(got["conversation"], format!("g:{room}"));
    assert_eq!(got["content"], "hello room");

    // Text that would break a line arrives escaped.
    ws_send(&mut bob_ws, "b-2", alice.id, "two\nlines \\ ok").await;
    line.expect(&format!("MESSAGE {conv} 4 bob two\\nlines \\\\ ok"))
        .await;

    line.send(&format!("HISTORY {conv}")).await;
    let (history, ok) = line.until("OK HISTORY").await;
    assert_eq!(ok, format!("OK HISTORY {conv} 4"));
    assert_eq!(
        history,
        [
            format!("HISTORY {conv} 1 bob while you were out"),
            format!("HISTORY {conv} 2 alice hello from the line"),
            format!("HISTORY {conv} 3 alice by id"),
            format!("HISTORY {conv} 4 bob two\\nlines \\\\ ok"),
        ]
    );
    line.send("HISTORY bob 1").await;
    line.expect(&format!("HISTORY {conv} 4 bob two\\nlines \\\\ ok"))
        .await;
    line.expect(&format!("OK HISTORY {conv} 1")).await;

    line.send("READ bob 4").await;
    line.expect(&format!("OK READ {conv} 4")).await;
    let read = next_of(&mut bob_ws, "read").await;
    assert_eq!(
        (read["user"].as_i64(), read["seq"].as_i64()),
        (Some(alice.id), Some(4))
    );

    // JOIN a community bob made.
    let r = server
        .post("/api/communities", bob.t(), json!({"name": "bob's den"}))
        .await;
    r.expect(201);
    let den = r.json()["id"].as_i64().expect("id");
    line.send(&format!("JOIN {den}")).await;
    line.expect(&format!("MEMBER {den} alice joined")).await;
    line.expect(&format!("OK JOIN {den} \"bob's den\"")).await;
    let member = next_of(&mut bob_ws, "member").await;
    assert_eq!(member["user"].as_i64(), Some(alice.id));

    // Presence: bob's last connection goes, then one comes back.
    bob_ws.close().await;
    line.expect("PRESENCE bob offline").await;
    let _bob_ws = Client::connect(&server, &bob, "bob again").await;
    line.expect("PRESENCE bob online").await;

    line.send("QUIT").await;
    assert_eq!(line.expect_closed(LINE_DEADLINE).await, ["BYE 1000 bye"]);
}

#[tokio::test]
async fn bad_lines_get_errors_and_the_connection_stays() {
    let server = line_server(&[]).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = community(&server, &bob, &[]).await;
    let mut line = Line::login(&server, &alice, "alice").await;
    let cases: [(&[u8], &str); 13] = [
        (b"SHOUT hi\n", "ERR unknown_command - "),
        (b"MSG bob\n", "ERR invalid_command l1 usage: MSG name text"),
        (b"MSG \"bob hi\n", "ERR invalid_command l2 "),
        (
            b"MSG nobody hi\n",
            "ERR unknown_user l3 no such user nobody",
        ),
        (b"MSG alice hi\n", "ERR invalid_recipient l4 "),
        (b"GROUP x hi\n", "ERR invalid_command l5 "),
        (b"JOIN 424242\n", "ERR not_found JOIN "),
        (b"HISTORY g:424242\n", "ERR not_a_participant HISTORY "),
        (b"HISTORY p:1:2 1000\n", "ERR invalid_command HISTORY "),
        (b"READ bob x\n", "ERR invalid_command READ "),
        (b"WHO everyone\n", "ERR invalid_command WHO "),
        (b"\xff\xfe bad bytes\n", "ERR invalid_command - not UTF-8"),
        (b"   \n\r\nPING\r\n", "PONG"),
    ];
    for (bytes, want) in cases {
        line.send_bytes(bytes).await;
        line.expect_prefix(want).await;
    }
    // Refused by the writer, not the parser: the answer comes later, with the send's number.
    line.send(&format!("GROUP {room} let me in")).await;
    line.expect(&format!(
        "ERR not_a_member l6 you are not in community {room}"
    ))
    .await;
    line.send("MSG #999999 hi").await;
    line.expect("ERR unknown_user l7 no such user 999999").await;
    line.send(&format!("MSG bob {}", "x".repeat(9000))).await;
    line.expect_prefix("ERR too_large l8 ").await;
    line.send("MSG bob still here").await;
    line.expect_prefix("ACK l9 ").await;
}

#[tokio::test]
async fn a_line_over_the_limit_is_refused_and_closed() {
    let server = line_server(&[("CHORUS__LINE__MAX_LINE_BYTES", "64")]).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let mut line = Line::login(&server, &alice, "alice").await;
    // Exactly at the limit is fine.
    let text = "y".repeat(64 - "MSG bob ".len());
    line.send(&format!("MSG bob {text}")).await;
    line.expect_prefix("ACK l1 ").await;
    line.send(&format!("MSG bob {text}z")).await;
    assert_eq!(
        line.expect_closed(LINE_DEADLINE).await,
        [
            "ERR too_large - line is over the 64-byte limit; closing",
            "BYE 1009 message too big"
        ]
    );
    // Before log-in too.
    let mut anon = Line::connect(&server, "anon").await;
    anon.send(&"z".repeat(65)).await;
    assert_eq!(
        anon.expect_closed(LINE_DEADLINE).await,
        [
            "ERR too_large - line is over the 64-byte limit; closing",
            "BYE 1009 message too big"
        ]
    );
    // What was sent within the limit arrived.
    let mut bob_ws = Client::connect(&server, &bob, "bob").await;
    assert_eq!(next_of(&mut bob_ws, "message").await["content"], text);
}

#[tokio::test]
async fn lines_are_rate_limited_like_frames() {
    let server = line_server(&[
        ("CHORUS__CHAT__RATE_PER_SEC", "1"),
        ("CHORUS__CHAT__RATE_BURST", "3"),
    ])
    .await;
    let mut line = Line::connect(&server, "anon").await;
    line.send("PING\nPING\nPING\nPING\nMSG bob hi").await;
    for _ in 0..3 {
        line.expect("PONG").await;
    }
    line.expect("ERR rate_limited PING slow down: over the per-connection rate")
        .await;
    line.expect_prefix("ERR rate_limited l1 ").await;
    // The connection stays, and the bucket refills (one a second).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    line.send("PING").await;
    line.expect("PONG").await;
}

#[tokio::test]
async fn failed_log_ins_are_throttled_like_rest() {
    let server = line_server(&[
        ("CHORUS__AUTH__ACCOUNT_FAILURES", "2"),
        ("CHORUS__AUTH__FAILURE_REFILL_SECS", "600"),
    ])
    .await;
    server.user("alice").await;
    let mut line = Line::connect(&server, "guesser").await;
    for _ in 0..2 {
        line.send("LOGIN alice guess").await;
        line.expect_prefix("ERR invalid_credentials LOGIN").await;
    }
    line.send(&format!("LOGIN alice {PASSWORD}")).await;
    line.expect_prefix("ERR too_many_attempts LOGIN too many failed log-ins")
        .await;
    // The same account over REST is throttled too: one budget.
    server
        .post(
            "/api/sessions",
            None,
            json!({"name": "alice", "password": PASSWORD}),
        )
        .await
        .expect_error(429, "too_many_attempts");
}

#[tokio::test]
async fn the_connection_limits_hold() {
    let server = line_server(&[
        ("CHORUS__CHAT__MAX_SOCKETS_PER_USER", "1"),
        ("CHORUS__CHAT__HEARTBEAT_TIMEOUT_SECS", "2"),
    ])
    .await;
    let alice = server.user("alice").await;

    // Sockets per user: the newest is refused.
    let mut first = Line::login(&server, &alice, "first").await;
    let mut second = Line::connect(&server, "second").await;
    second.send(&format!("LOGIN alice {PASSWORD}")).await;
    assert_eq!(
        second.expect_closed(LINE_DEADLINE).await,
        [
            "ERR too_many_connections LOGIN too many connections for this user (at most 1 on a node)",
            "BYE 4429 too many connections for this user"
        ]
    );
    // Any line keeps a connection alive; silence past the heartbeat timeout closes it.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        first.send("").await;
    }
    first.send("PING").await;
    first.expect("PONG").await;
    assert_eq!(
        first.expect_closed(Duration::from_secs(15)).await,
        ["BYE 4408 heartbeat timeout"]
    );
    // Before log-in as well.
    let mut silent = Line::connect(&server, "silent").await;
    assert_eq!(
        silent.expect_closed(Duration::from_secs(15)).await,
        ["BYE 4408 heartbeat timeout"]
    );
}

#[tokio::test]
async fn revoking_the_session_closes_the_socket() {
    let server = line_server(&[]).await;
    let bob = server.user("bob").await;
    let mut line = Line::login(&server, &bob, "bob").await;
    let sessions = server.get("/api/sessions", bob.t()).await;
    let line_session = sessions
        .json()
        .as_array()
        .and_then(|all| all.iter().find(|s| s["current"] == false).cloned())
        .expect("the line's session is listed");
    server
        .delete(&format!("/api/sessions/{}", line_session["id"]), bob.t())
        .await
        .expect(204);
    assert_eq!(
        line.expect_closed(LINE_DEADLINE).await,
        ["BYE 4401 session ended"]
    );
}

/// A line client on one node and a websocket client on another, on PostgreSQL.
#[tokio::test]
async fn a_line_message_crosses_the_cluster_and_back() {
    let Some(db) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let nodes = cluster::Cluster::start_with(
        db,
        &cluster::Transport::Udp,
        2,
        &[("CHORUS__LINE__ADDR", "127.0.0.1:0")],
    )
    .await;
    let (n0, n1) = (&nodes.nodes[0], &nodes.nodes[1]);
    let alice = n0.user("alice").await;
    let bob = n1.user("bob").await;
    befriend(n0, &alice, &bob).await;
    let conv = private_conv(alice.id, bob.id);

    let mut line = Line::login(n0, &alice, "alice@n0").await;
    let mut bob_ws = Client::connect(n1, &bob, "bob@n1").await;
    line.expect("PRESENCE bob online").await;

    line.send("MSG bob hello across the cluster").await;
    line.expect(&format!("ACK l1 {conv} 1")).await;
    let got = next_of(&mut bob_ws, "message").await;
    assert_eq!(
        (got["from"].as_i64(), got["content"].as_str()),
        (Some(alice.id), Some("hello across the cluster"))
    );
    ws_send(&mut bob_ws, "b-1", alice.id, "and back").await;
    line.expect(&format!("MESSAGE {conv} 2 bob and back")).await;

    // And from the line endpoint of the other node.
    let mut bob_line = Line::login(n1, &bob, "bob-line@n1").await;
    bob_line.send("MSG alice from bob's line").await;
    // (after the catch-up of what bob has not read: messages 1 and 2)
    let (caught_up, ack) = bob_line.until("ACK ").await;
    assert_eq!(ack, format!("ACK l1 {conv} 3"));
    assert_eq!(
        caught_up,
        [
            format!("MESSAGE {conv} 1 alice hello across the cluster"),
            format!("MESSAGE {conv} 2 bob and back"),
        ]
    );
    line.expect(&format!("MESSAGE {conv} 3 bob from bob's line"))
        .await;
}

/// A line client that never reads is closed once its queue (`CHORUS__CHAT__QUEUE_LEN=16`) is
/// full, like a websocket, and the others go on receiving; what it got is an in-order prefix.
#[tokio::test]
async fn a_line_reader_that_never_reads_is_closed() {
    const MAX_MESSAGES: i64 = 2000;
    let server = line_server(&[
        ("CHORUS__CHAT__QUEUE_LEN", "16"),
        ("CHORUS__CHAT__RATE_PER_SEC", "0"),
    ])
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let slow = server.user("slow").await;
    let room = community(&server, &alice, &[&bob, &slow]).await;
    // Bob is slow's contact, so he is told when slow's (only) connection goes.
    befriend(&server, &bob, &slow).await;
    let mut b = Client::connect_ready(&server, &bob, "bob").await;
    let mut sl = Line::connect_small_buffer(&server, "slow").await;
    sl.send(&format!("LOGIN slow {PASSWORD}")).await;
    let online = next_of(&mut b, "presence").await;
    assert_eq!(
        online,
        json!({"type":"presence","user":slow.id,"online":true})
    );
    let mut a = Client::connect_ready(&server, &alice, "alice").await;

    let body = "x".repeat(7_900);
    let mut sent = 0;
    let mut slow_gone = false;
    while !slow_gone && sent < MAX_MESSAGES {
        sent += 1;
        a.group_acked(&format!("g-{sent}"), room, &format!("{sent}:{body}"))
            .await;
        let (before, message) = b.recv_until(|f| f["type"] == "message").await;
        assert_eq!(message["seq"], sent, "bob misses nothing: {message}");
        for frame in before {
            assert_eq!(
                frame,
                json!({"type":"presence","user":slow.id,"online":false}),
                "unexpected frame for bob"
            );
            slow_gone = true;
        }
    }
    assert!(
        slow_gone,
        "a line reader that never reads was not closed after {sent} messages of ~8 KB"
    );
    // Abandoned mid-write, the socket may end inside a line: that piece is not a line.
    let mut bytes = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncReadExt::read_to_end(&mut sl.reader, &mut bytes),
    )
    .await
    .expect("the slow socket is closed")
    .ok();
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    lines.pop();
    assert_eq!(
        lines.first().map(String::as_str),
        Some(format!("OK LOGIN slow {}", slow.id).as_str())
    );
    let seqs: Vec<i64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix(&format!("MESSAGE g:{room} ")))
        .map(|rest| {
            rest.split(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("seq")
        })
        .collect();
    assert!(
        seqs.iter().enumerate().all(|(i, s)| *s == i as i64 + 1) && (seqs.len() as i64) < sent,
        "not an in-order prefix of 1..{sent}: {seqs:?}"
    );
    if let Some(last) = lines.last().filter(|l| l.starts_with("BYE")) {
        assert_eq!(last, "BYE 1008 too slow: outgoing queue full");
    }
}

/// Past `line.max_connections` the node stops accepting until a line socket closes.
#[tokio::test]
async fn the_accept_cap_holds_newcomers_back() {
    let server = line_server(&[("CHORUS__LINE__MAX_CONNECTIONS", "1")]).await;
    let mut first = Line::connect(&server, "first").await;
    // The kernel completes the handshake, but the node does not accept (or greet) it yet.
    let waiting = TcpStream::connect(line_addr(&server))
        .await
        .expect("connect line");
    let (read, writer) = waiting.into_split();
    let mut second = Line {
        label: "second".into(),
        reader: BufReader::new(read),
        writer,
    };
    let mut greeting = String::new();
    let early = tokio::time::timeout(
        Duration::from_millis(1500),
        second.reader.read_line(&mut greeting),
    )
    .await;
    assert!(early.is_err(), "greeted past the cap: {greeting:?}");
    first.send("QUIT").await;
    assert_eq!(first.expect_closed(LINE_DEADLINE).await, ["BYE 1000 bye"]);
    second.expect_prefix("HELLO chorus 1").await;
    second.send("PING").await;
    second.expect("PONG").await;
}

/// SIGTERM: logged-in sockets get what was acked, then `BYE 1001`; sockets not logged in too.
#[tokio::test]
async fn shutdown_says_bye() {
    let mut server = line_server(&[]).await;
    let alice = server.user("alice").await;
    server.user("bob").await;
    let mut line = Line::login(&server, &alice, "alice").await;
    let mut anon = Line::connect(&server, "anon").await;
    line.send("MSG bob before the end").await;
    line.expect_prefix("ACK l1 ").await;
    let status = server.terminate().await;
    assert!(status.success(), "chorus exited with {status}");
    for socket in [&mut line, &mut anon] {
        assert_eq!(
            socket.expect_closed(LINE_DEADLINE).await,
            ["BYE 1001 server shutting down"],
            "{}",
            socket.label
        );
    }
}
