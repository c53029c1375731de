//! Issue 9, "hostile clients", against the real binary: sessions that must die, unauthenticated
//! denial of service, what a user may see of others, and the smaller limits. Each test fails on
//! the code before the fix it guards.

use crate::common::{self, cluster, ws};

use std::time::Duration;

use common::{Backend, Server, TestDb, TestUser};
use serde_json::json;
use ws::Client;

/// How long a socket that must be closed may take to see its close frame.
const CLOSE_DEADLINE: Duration = Duration::from_secs(20);

/// A SQLite server with extra `CHORUS__...` variables.
async fn start(env: &[(&str, &str)]) -> Server {
    Server::start_with(Backend::Sqlite, env)
        .await
        .expect("SQLite is always available")
}

/// A second session of an existing user.
async fn second_session(s: &Server, user: &TestUser) -> TestUser {
    TestUser {
        token: s.login(&user.name, common::PASSWORD).await,
        ..user.clone()
    }
}

/// A password change closes every socket of the other sessions with 4401 at once; the socket
/// of the session that made the change keeps working.
#[tokio::test]
async fn password_change_closes_the_other_sessions_sockets() {
    let s = start(&[]).await;
    let alice = s.user("alice").await;
    let other = second_session(&s, &alice).await;
    let mut mine = Client::connect_ready(&s, &alice, "mine").await;
    let mut theirs = Client::connect_ready(&s, &other, "theirs").await;
    s.patch(
        "/api/users/me",
        alice.t(),
        json!({"password": "a brand new secret", "current_password": common::PASSWORD}),
    )
    .await
    .expect(200);
    let (code, _) = theirs.expect_closed(CLOSE_DEADLINE).await;
    assert_eq!(
        code,
        Some(4401),
        "the other session's socket must close with 4401"
    );
    mine.ready().await;
}

/// A socket closes with 4401 when the session it was opened with expires.
#[tokio::test]
async fn a_socket_closes_when_its_session_expires() {
    let s = start(&[("CHORUS__AUTH__TOKEN_TTL_SECS", "4")]).await;
    let alice = s.user("alice").await;
    let mut a = Client::connect(&s, &alice, "alice").await;
    let (code, _) = a.expect_closed(CLOSE_DEADLINE).await;
    assert_eq!(
        code,
        Some(4401),
        "an expired session's socket must close with 4401"
    );
}

/// A password change on one node closes the other sessions' sockets on another node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_closes_sockets_on_every_node() {
    let db = TestDb::create(Backend::Sqlite).await.expect("SQLite");
    let c = cluster::Cluster::start(db, &cluster::Transport::Udp, 2).await;
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let alice = a.user("alice").await;
    let other = second_session(b, &alice).await;
    let mut theirs = Client::connect_ready(b, &other, "theirs on node 1").await;
    a.patch(
        "/api/users/me",
        alice.t(),
        json!({"password": "a brand new secret", "current_password": common::PASSWORD}),
    )
    .await
    .expect(200);
    let (code, _) = theirs.expect_closed(CLOSE_DEADLINE).await;
    assert_eq!(
        code,
        Some(4401),
        "the socket on the other node must close with 4401"
    );
}

/// The value of a sample in a `/metrics` text, `None` when the line is absent.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Reads from a raw connection until the server closes it; panics if it stays open past
/// `deadline`. Returns what was read.
async fn read_until_closed(s: &mut tokio::net::TcpStream, deadline: Duration) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + deadline;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection still open after {deadline:?}"),
        }
    }
}

/// A connection that sends half a request, or nothing at all, is closed after the header
/// timeout; one that goes quiet after a request is closed after the idle timeout.
#[tokio::test]
async fn slow_and_silent_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let s = start(&[
        ("CHORUS__SERVER__HEADER_TIMEOUT_SECS", "2"),
        ("CHORUS__SERVER__IDLE_TIMEOUT_SECS", "3"),
    ])
    .await;
    let mut half = tokio::net::TcpStream::connect(&s.addr)
        .await
        .expect("connect");
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let mut silent = tokio::net::TcpStream::connect(&s.addr)
        .await
        .expect("connect");
    let mut quiet = tokio::net::TcpStream::connect(&s.addr)
        .await
        .expect("connect");
    // A whole request with a body that never comes.
    quiet
        .write_all(
            b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"na",
        )
        .await
        .expect("write");
    read_until_closed(&mut half, CLOSE_DEADLINE).await;
    read_until_closed(&mut silent, CLOSE_DEADLINE).await;
    read_until_closed(&mut quiet, CLOSE_DEADLINE).await;
    s.get("/healthz", None).await.expect(200);
}

/// Past `server.max_connections`, connections wait in the kernel's queue instead of taking a
/// descriptor each: the open count never passes the cap, and once the silent ones time out
/// the server answers again.
#[tokio::test]
async fn open_connections_are_capped() {
    let s = start(&[
        ("CHORUS__SERVER__MAX_CONNECTIONS", "8"),
        ("CHORUS__SERVER__HEADER_TIMEOUT_SECS", "2"),
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..24 {
        held.push(
            tokio::net::TcpStream::connect(&s.addr)
                .await
                .expect("connect"),
        );
    }
    let r = s.get("/metrics", None).await;
    r.expect(200);
    let open = sample(&r.text(), "chorus_http_connections").expect("chorus_http_connections");
    assert!(
        (1.0..=8.0).contains(&open),
        "open connections {open} must stay within the cap of 8"
    );
    drop(held);
}

/// Log-ins that keep failing for one account get 429 with `Retry-After` before any hashing;
/// another account from the same address is not affected.
#[tokio::test]
async fn failed_logins_are_throttled_per_account() {
    let s = start(&[
        ("CHORUS__AUTH__ACCOUNT_FAILURES", "3"),
        ("CHORUS__AUTH__FAILURE_REFILL_SECS", "600"),
    ])
    .await;
    s.register("alice", common::PASSWORD).await;
    s.register("bob", common::PASSWORD).await;
    let wrong = json!({"name": "alice", "password": "not the password"});
    for _ in 0..3 {
        s.post("/api/sessions", None, wrong.clone())
            .await
            .expect_error(401, "invalid_credentials");
    }
    let r = s.post("/api/sessions", None, wrong.clone()).await;
    r.expect_error(429, "too_many_attempts");
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After on 429")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=600).contains(&wait), "Retry-After {wait}");
    s.login("bob", common::PASSWORD).await;
}

/// Password hashing runs a fixed number at once with a bounded queue: a flood of parallel
/// log-ins gets 503 with `Retry-After` for what does not fit, instead of unbounded memory.
#[tokio::test]
async fn parallel_logins_are_bounded() {
    let s = start(&[
        ("CHORUS__AUTH__HASH_CONCURRENCY", "1"),
        ("CHORUS__AUTH__HASH_QUEUE", "1"),
        ("CHORUS__AUTH__ADDRESS_FAILURES", "1000"),
    ])
    .await;
    let tries = (0..48).map(|i| {
        s.post(
            "/api/sessions",
            None,
            json!({"name": format!("nobody{i}"), "password": "not the password"}),
        )
    });
    let answers = futures_util::future::join_all(tries).await;
    let busy: Vec<_> = answers.iter().filter(|r| r.status == 503).collect();
    assert!(
        !busy.is_empty(),
        "48 parallel log-ins with one hashing slot: none refused"
    );
    for r in &busy {
        r.expect_error(503, "busy");
        assert!(r.header("retry-after").is_some(), "503 without Retry-After");
    }
    for r in answers.iter().filter(|r| r.status != 503) {
        r.expect_error(401, "invalid_credentials");
    }
}

/// Made-up HTTP methods are counted as `other`, so they cannot grow `/metrics`.
#[tokio::test]
async fn metric_labels_come_from_a_closed_set() {
    use tokio::io::AsyncWriteExt;
    let s = start(&[]).await;
    for i in 0..5 {
        let mut c = tokio::net::TcpStream::connect(&s.addr)
            .await
            .expect("connect");
        let req = format!("MADEUP{i} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        c.write_all(req.as_bytes()).await.expect("write");
        read_until_closed(&mut c, CLOSE_DEADLINE).await;
    }
    let text = s.get("/metrics", None).await.text();
    assert!(!text.contains("MADEUP"), "a made-up method became a label");
    assert!(
        text.contains("method=\"other\""),
        "made-up methods must count as other"
    );
}

/// Opens `/chat` by hand on a plain socket, so the test can write frames a client library
/// would refuse to (unmasked, invalid UTF-8).
async fn raw_chat(s: &Server, token: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(&s.addr)
        .await
        .expect("connect");
    let req = format!(
        "GET /chat?token={token} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        s.addr
    );
    c.write_all(req.as_bytes()).await.expect("write upgrade");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(CLOSE_DEADLINE, c.read(&mut byte))
            .await
            .expect("upgrade answer in time")
            .expect("read upgrade answer");
        assert_eq!(n, 1, "connection closed during the upgrade: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "no upgrade: {head}");
    c
}

/// Reads server frames until a close frame; returns its code.
async fn raw_close_code(c: &mut tokio::net::TcpStream) -> Option<u16> {
    let bytes = read_until_closed(c, CLOSE_DEADLINE).await;
    let mut at = 0;
    while at + 2 <= bytes.len() {
        let opcode = bytes[at] & 0x0f;
        let mut len = usize::from(bytes[at + 1] & 0x7f);
        let mut start = at + 2;
        if len == 126 {
            len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
            start += 2;
        }
        if opcode == 8 {
            return (len >= 2).then(|| u16::from_be_bytes([bytes[start], bytes[start + 1]]));
        }
        at = start + len;
    }
    None
}

/// A masked client frame (mask of zeros, so the payload goes as is).
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![first];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Bad frames close with the RFC 6455 codes: 1009 too big, 1007 invalid UTF-8, 1002 for an
/// unmasked frame or reserved bits.
#[tokio::test]
async fn bad_frames_close_with_rfc_6455_codes() {
    use tokio::io::AsyncWriteExt;
    let s = start(&[
        ("CHORUS__CHAT__MAX_MESSAGE_BYTES", "1024"),
        ("CHORUS__CHAT__MAX_FRAME_BYTES", "1024"),
    ])
    .await;
    let alice = s.user("alice").await;
    let cases: [(&str, Vec<u8>, u16); 4] = [
        ("too big", masked(0x81, &[b'x'; 2000]), 1009),
        ("invalid UTF-8", masked(0x81, &[0xff, 0xfe, 0xfd]), 1007),
        ("unmasked", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("reserved bit", masked(0x81 | 0x40, b"hi"), 1002),
    ];
    for (what, frame, want) in cases {
        let mut c = raw_chat(&s, &alice.token).await;
        c.write_all(&frame).await.expect("write frame");
        assert_eq!(raw_close_code(&mut c).await, Some(want), "{what}");
    }
}

/// A user's sockets on a node are capped: the one past the cap is closed with 4429 and the
/// others keep working.
#[tokio::test]
async fn sockets_per_user_are_capped() {
    let s = start(&[("CHORUS__CHAT__MAX_SOCKETS_PER_USER", "2")]).await;
    let alice = s.user("alice").await;
    let mut one = Client::connect_ready(&s, &alice, "one").await;
    let mut two = Client::connect_ready(&s, &alice, "two").await;
    let mut three = Client::connect(&s, &alice, "three").await;
    let (code, _) = three.expect_closed(CLOSE_DEADLINE).await;
    assert_eq!(
        code,
        Some(4429),
        "the socket past the cap must close with 4429"
    );
    one.ready().await;
    two.ready().await;
}

/// `sync` with an out-of-range cursor gets an error frame and the connection keeps working.
#[tokio::test]
async fn sync_with_an_out_of_range_cursor_gets_an_error() {
    let s = start(&[]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let conv = ws::private_conv(alice.id, bob.id);
    a.send_json(json!({"type": "sync", "after": {conv.clone(): i64::MIN}}))
        .await;
    a.expect_error("invalid_frame", None).await;
    a.private_acked("m1", bob.id, "still here").await;
}

/// A socket whose writes stop making progress is closed: not by the heartbeat sweep (pushed
/// out of reach here) nor by a full queue (made huge), but by the write timeout.
#[tokio::test]
async fn a_socket_that_never_reads_is_closed() {
    let s = start(&[
        ("CHORUS__SERVER__WRITE_TIMEOUT_SECS", "2"),
        ("CHORUS__CHAT__HEARTBEAT_TIMEOUT_SECS", "600"),
        ("CHORUS__CHAT__QUEUE_LEN", "100000"),
        ("CHORUS__CHAT__RATE_BURST", "100000"),
    ])
    .await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let mut b = Client::connect_small_buffer(&s, &bob, "bob").await;
    b.ready().await;
    let _keep = b;
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let content = "x".repeat(8000);
    // 8 MB for a socket that reads nothing: far more than the kernel buffers hold.
    for i in 0..1000 {
        a.private_acked(&format!("m{i}"), bob.id, &content).await;
    }
    common::wait_for(Duration::from_secs(60), "bob's socket closed", || async {
        let text = s.get("/metrics", None).await.text();
        (sample(&text, "chorus_ws_connections") == Some(1.0)
            && sample(&text, "chorus_http_timeouts_total").unwrap_or(0.0) >= 1.0)
            .then_some(())
    })
    .await;
}

/// A download nobody reads is cut off after the write timeout instead of held for ever.
#[tokio::test]
async fn a_download_nobody_reads_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    let s = start(&[("CHORUS__SERVER__WRITE_TIMEOUT_SECS", "2")]).await;
    let alice = s.user("alice").await;
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.resize(8 * 1024 * 1024, 0);
    let r = s.upload(alice.t(), "big.png", "image/png", png).await;
    r.expect(201);
    let url = r.json()["url"].as_str().expect("url").to_string();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut c = socket
        .connect(s.addr.parse().expect("addr"))
        .await
        .expect("connect");
    c.write_all(format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("write");
    common::wait_for(
        Duration::from_secs(30),
        "the stalled download cut off",
        || async {
            let text = s.get("/metrics", None).await.text();
            (sample(&text, "chorus_http_timeouts_total").unwrap_or(0.0) >= 1.0).then_some(())
        },
    )
    .await;
    drop(c);
}

/// Email and phone are shown to the user themselves only.
#[tokio::test]
async fn email_and_phone_are_private() {
    let s = start(&[]).await;
    s.post(
        "/api/users",
        None,
        json!({"name": "alice", "password": common::PASSWORD,
               "email": "alice@example.com", "phone": "+1 555 0100"}),
    )
    .await
    .expect(201);
    let alice_token = s.login("alice", common::PASSWORD).await;
    let bob = s.user("bob").await;
    let me = s.get("/api/users/me", Some(&alice_token)).await.json();
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["phone"], "+1 555 0100");
    let id = me["id"].as_i64().expect("id");
    let seen = s.get(&format!("/api/users/{id}"), bob.t()).await.json();
    assert!(seen["email"].is_null() && seen["phone"].is_null(), "{seen}");
    let found = s.get("/api/users?q=ali", bob.t()).await.json();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert!(
        found[0]["email"].is_null() && found[0]["phone"].is_null(),
        "{found}"
    );
}

/// A search term with a NUL or other control character is refused.
#[tokio::test]
async fn search_terms_with_control_characters_are_refused() {
    let s = start(&[]).await;
    let alice = s.user("alice").await;
    for q in ["%00", "a%00", "%07"] {
        s.get(&format!("/api/users?q={q}"), alice.t())
            .await
            .expect_error(422, "invalid_input");
        s.get(&format!("/api/communities/search?q={q}"), alice.t())
            .await
            .expect_error(422, "invalid_input");
    }
}

/// JSON answers, errors, `/metrics` and Swagger UI carry `nosniff` and a CSP that forbids
/// framing.
#[tokio::test]
async fn responses_carry_nosniff_and_a_csp() {
    let s = start(&[]).await;
    let alice = s.user("alice").await;
    for path in [
        "/healthz",
        "/api/users/me",
        "/api/nope",
        "/metrics",
        "/swagger/",
    ] {
        let r = s.get(path, alice.t()).await;
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("frame-ancestors 'none'"),
            "{path}: CSP {csp:?}"
        );
    }
}

/// `/metrics` can be put behind a token ...
#[tokio::test]
async fn metrics_can_require_a_token() {
    let s = start(&[("CHORUS__METRICS__TOKEN", "metrics-secret-7")]).await;
    s.get("/metrics", None)
        .await
        .expect_error(401, "unauthorized");
    s.get("/metrics", Some("wrong"))
        .await
        .expect_error(401, "unauthorized");
    let r = s.get("/metrics", Some("metrics-secret-7")).await;
    r.expect(200);
    assert!(r.text().contains("chorus_http_requests_total"));
}

/// ... or served on an address of its own and no longer on the public one.
#[tokio::test]
async fn metrics_can_live_on_another_address() {
    let port = 20000 + (rand::random::<u16>() % 12000);
    let addr = format!("127.0.0.1:{port}");
    let s = start(&[("CHORUS__METRICS__ADDR", addr.as_str())]).await;
    s.get("/metrics", None).await.expect(404);
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics on its own address");
    assert_eq!(r.status(), 200);
}

/// Names are NFKC-normalised; invisible, control and direction characters are refused; a
/// name confusable with an existing one is refused.
#[tokio::test]
async fn names_are_normalised_and_look_alikes_refused() {
    let s = start(&[]).await;
    s.register("alice", common::PASSWORD).await;
    for bad in [
        "\u{200b}",
        "al\u{200b}ice",
        "\u{feff}bob",
        "bob\u{202e}gnp",
        "a\u{2066}b",
    ] {
        s.post(
            "/api/users",
            None,
            json!({"name": bad, "password": common::PASSWORD}),
        )
        .await
        .expect_error(422, "invalid_input");
    }
    for fake in ["аlice", "aIice", "al1ce", "ALICE", "ａｌｉｃｅ"] {
        s.post(
            "/api/users",
            None,
            json!({"name": fake, "password": common::PASSWORD}),
        )
        .await
        .expect_error(409, "name_taken");
    }
    let full = s.register("ｆｕｌｌ", common::PASSWORD).await;
    assert_eq!(full["name"], "full", "names are stored NFKC-normalised");
    let bob = s.user("bob").await;
    s.patch("/api/users/me", bob.t(), json!({"name": "аlice"}))
        .await
        .expect_error(409, "name_taken");
}

/// Passwords of only spaces or NULs, and the most common passwords, are refused.
#[tokio::test]
async fn blank_and_common_passwords_are_refused() {
    let s = start(&[]).await;
    for (i, bad) in [
        "        ",
        "\0\0\0\0\0\0\0\0",
        "password123",
        "Qwertyuiop",
        "12345678",
    ]
    .iter()
    .enumerate()
    {
        s.post(
            "/api/users",
            None,
            json!({"name": format!("u{i}"), "password": bad}),
        )
        .await
        .expect_error(422, "invalid_input");
    }
}

/// A PNG of `len` bytes (only its signature and header are checked).
fn png(len: usize) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.resize(len, 0);
    png
}

/// Uploads count against a per-user quota: past it, 413 `quota_exceeded`.
#[tokio::test]
async fn uploads_have_a_per_user_quota() {
    let s = start(&[("CHORUS__UPLOADS__QUOTA_BYTES", "5000")]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    s.upload(alice.t(), "a.png", "image/png", png(3000))
        .await
        .expect(201);
    s.upload(alice.t(), "b.png", "image/png", png(3000))
        .await
        .expect_error(413, "quota_exceeded");
    s.upload(bob.t(), "c.png", "image/png", png(3000))
        .await
        .expect(201);
}

/// A deleted account's uploads are removed with it.
#[tokio::test]
async fn a_deleted_users_uploads_are_removed() {
    let s = start(&[]).await;
    let alice = s.user("alice").await;
    let r = s.upload(alice.t(), "a.png", "image/png", png(100)).await;
    r.expect(201);
    let url = r.json()["url"].as_str().expect("url").to_string();
    s.get(&url, None).await.expect(200);
    s.delete("/api/users/me", alice.t()).await.expect(204);
    s.get(&url, None).await.expect_error(404, "not_found");
}

/// An image message or avatar naming a well-formed but nonexistent upload is refused.
#[tokio::test]
async fn images_must_name_an_existing_upload() {
    let s = start(&[]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let ghost = format!("/uploads/{}.png", uuid::Uuid::new_v4());
    s.patch("/api/users/me", alice.t(), json!({"avatar": ghost}))
        .await
        .expect_error(422, "invalid_input");
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    a.send_json(
        json!({"type": "private", "id": "i1", "to": bob.id, "media": "image", "content": ghost}),
    )
    .await;
    a.expect_error("invalid_frame", Some("i1")).await;
}
