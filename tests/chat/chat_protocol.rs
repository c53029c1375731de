//! The websocket protocol against the real binary (SQLite): authentication before the upgrade,
//! error frames for bad input on a connection that keeps working, heartbeats and the sweep,
//! slow readers, read cursors, typing, sync and history paging.

use crate::common::{self, ws};

use std::cell::Cell;
use std::time::{Duration, Instant};

use common::{Backend, Server};
use serde_json::{json, Value};
use ws::{assert_message, befriend, community, private_conv, try_connect, Client};

/// Starts a SQLite server with extra `CHORUS__...` variables.
async fn start(env: &[(&str, &str)]) -> Server {
    Server::start_with(Backend::Sqlite, env)
        .await
        .expect("SQLite is always available")
}

/// `/chat` refuses a missing, empty, unknown or revoked token with HTTP 401 before the upgrade;
/// logging out also closes the connections opened with that token (close code 4401).
#[tokio::test]
async fn chat_requires_a_valid_token() {
    let s = start(&[]).await;
    let alice = s.user("alice").await;
    for tail in ["/chat", "/chat?token=", "/chat?token=not-a-token"] {
        match try_connect(&s, tail).await {
            Err((status, body)) => assert_eq!(status, 401, "{tail}: {status} {body}"),
            Ok(_) => panic!("{tail}: upgraded without a valid token"),
        }
    }
    let mut a = Client::connect(&s, &alice, "alice").await;
    s.delete("/api/sessions", alice.t()).await.expect(204);
    let (code, _) = a.expect_closed(Duration::from_secs(20)).await;
    assert_eq!(
        code,
        Some(4401),
        "log-out must close the connection with 4401"
    );
    match try_connect(&s, &format!("/chat?token={}", alice.token)).await {
        Err((status, body)) => assert_eq!(status, 401, "revoked token: {status} {body}"),
        Ok(_) => panic!("upgraded with a revoked token"),
    }
}

/// Each kind of bad frame gets an `error` frame with its stable code (echoing the client id
/// when there was one); nothing reaches the recipient; the same connection keeps working.
#[tokio::test]
async fn bad_frames_get_error_codes_and_the_connection_keeps_working() {
    // A small limit via the documented key, so the boundary is cheap to probe.
    let s = start(&[("CHORUS__CHAT__MAX_CONTENT_BYTES", "100")]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;

    a.send_text("this is not json").await;
    a.expect_error("malformed_frame", None).await;
    a.send_text("{\"type\":\"private\",").await;
    a.expect_error("malformed_frame", None).await;

    a.send_json(json!({"type":"shout","id":"x-1","to":bob.id}))
        .await;
    a.expect_error("unknown_type", Some("x-1")).await;

    a.send_json(json!({"type":"private","id":"x-2"})).await;
    a.expect_error("invalid_frame", Some("x-2")).await;
    a.send_json(json!({"type":"private","id":"x-3","to":"bob","content":"hi"}))
        .await;
    a.expect_error("invalid_frame", Some("x-3")).await;

    a.private("x-4", bob.id, &"a".repeat(101)).await;
    a.expect_error("too_large", Some("x-4")).await;
    // The limit is in bytes: 51 two-byte characters are 102 bytes.
    a.private("x-5", bob.id, &"é".repeat(51)).await;
    a.expect_error("too_large", Some("x-5")).await;

    a.private("x-6", 987_654_321, "anyone there?").await;
    a.expect_error("unknown_user", Some("x-6")).await;

    a.private("x-7", alice.id, "note to self").await;
    a.expect_error("invalid_recipient", Some("x-7")).await;

    a.send_binary(b"{\"type\":\"heartbeat\"}".to_vec()).await;
    a.expect_error("unsupported_frame", None).await;

    // Still working: exactly at the limit is accepted, and bob's first frame is that message.
    let at_limit = "b".repeat(100);
    let ack = a.private_acked("ok-1", bob.id, &at_limit).await;
    assert_eq!(ack["seq"], 1, "refused frames must not take a seq: {ack}");
    assert_message(
        &b.recv().await,
        &conv,
        1,
        alice.id,
        bob.id,
        "private",
        &at_limit,
    );

    // Errors interleaved with good frames, in order.
    a.send_text("nope").await;
    a.private("ok-2", bob.id, "after the errors").await;
    a.expect_error("malformed_frame", None).await;
    a.expect_ack("ok-2").await;
    assert_message(
        &b.recv().await,
        &conv,
        2,
        alice.id,
        bob.id,
        "private",
        "after the errors",
    );
}

/// Over the per-connection rate (`CHORUS__CHAT__RATE_PER_SEC`/`RATE_BURST`), frames are answered
/// with `rate_limited` and dropped; every frame gets exactly one answer, and the connection
/// stays open.
#[tokio::test]
async fn over_the_rate_frames_get_rate_limited() {
    let s = start(&[
        ("CHORUS__CHAT__RATE_PER_SEC", "1"),
        ("CHORUS__CHAT__RATE_BURST", "2"),
    ])
    .await;
    let alice = s.user("alice").await;
    let mut a = Client::connect(&s, &alice, "alice").await;
    for _ in 0..10 {
        a.send_json(json!({"type":"heartbeat"})).await;
    }
    let mut answers = Vec::new();
    for _ in 0..10 {
        answers.push(a.recv().await);
    }
    assert_eq!(answers[0], json!({"type":"heartbeat"}), "{answers:?}");
    assert_eq!(answers[1], json!({"type":"heartbeat"}), "{answers:?}");
    let limited = answers
        .iter()
        .filter(|f| f["type"] == "error" && f["code"] == "rate_limited")
        .count();
    let beats = answers.iter().filter(|f| f["type"] == "heartbeat").count();
    assert!(
        limited >= 1,
        "a burst of 10 frames over a burst of 2: {answers:?}"
    );
    assert_eq!(limited + beats, 10, "{answers:?}");
    // Still open: the bare heartbeat is answered.
    a.send_text("heartbeat").await;
    assert_eq!(a.recv_text().await, "heartbeat");
}

/// `{"type":"heartbeat"}` is answered in JSON, the bare text `heartbeat` with bare text.
#[tokio::test]
async fn heartbeats_are_answered_in_kind() {
    let s = start(&[]).await;
    let alice = s.user("alice").await;
    let mut a = Client::connect(&s, &alice, "alice").await;
    for _ in 0..2 {
        a.send_json(json!({"type":"heartbeat"})).await;
        let answer = a.recv_text().await;
        let v: Value = serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("JSON heartbeat answered with non-JSON {answer:?}: {e}"));
        assert_eq!(v, json!({"type":"heartbeat"}));

        a.send_text("heartbeat").await;
        assert_eq!(a.recv_text().await, "heartbeat");
    }
}

/// With a 1 s heartbeat timeout the sweep closes a silent connection (close code 4408), while
/// a connection that keeps sending heartbeats stays open for several timeouts and still works.
#[tokio::test]
async fn sweep_closes_silent_connections_only() {
    let s = start(&[("CHORUS__CHAT__HEARTBEAT_TIMEOUT_SECS", "1")]).await;
    let quiet = s.user("quiet").await;
    let chatty = s.user("chatty").await;
    let mut q = Client::connect(&s, &quiet, "quiet").await;
    let mut c = Client::connect(&s, &chatty, "chatty").await;

    let quiet_closed = Cell::new(false);
    let silent = async {
        let (code, frames) = q.expect_closed(Duration::from_secs(20)).await;
        quiet_closed.set(true);
        (code, frames)
    };
    let keep_alive = async {
        let started = Instant::now();
        let mut beats = 0u32;
        // Three timeouts' worth of heartbeats, and at least until the quiet one is gone.
        while !(quiet_closed.get() && started.elapsed() >= Duration::from_secs(3)) {
            if beats.is_multiple_of(2) {
                c.send_text("heartbeat").await;
                assert_eq!(c.recv_text().await, "heartbeat");
            } else {
                c.send_json(json!({"type":"heartbeat"})).await;
                c.recv_type("heartbeat").await;
            }
            beats += 1;
            // The rhythm of a client's heartbeats (well inside the 1 s timeout).
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        beats
    };
    let ((code, frames), beats) = tokio::join!(silent, keep_alive);
    assert_eq!(
        code,
        Some(4408),
        "a silent connection must be closed with 4408 (frames before: {frames:?})"
    );
    assert!(beats >= 10, "only {beats} heartbeats");
    // The chatty connection is still open and working.
    let ack = c.private_acked("still-here", quiet.id, "you left").await;
    assert_eq!(ack["seq"], 1, "{ack}");
}

/// A reader that never reads (`CHORUS__CHAT__QUEUE_LEN=16`) is closed once its queue is full,
/// while the other members of the same community receive every message in order; the closed
/// user catches up from storage on reconnect.
#[tokio::test]
async fn slow_reader_is_closed_and_others_keep_flowing() {
    const MAX_MESSAGES: i64 = 2000;
    let s = start(&[
        ("CHORUS__CHAT__QUEUE_LEN", "16"),
        ("CHORUS__CHAT__RATE_PER_SEC", "0"),
    ])
    .await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let slow = s.user("slow").await;
    let c = community(&s, &alice, &[&bob, &slow]).await;
    let conv = format!("g:{c}");
    // Bob is slow's contact, so he is told when slow's (only) connection goes.
    befriend(&s, &bob, &slow).await;

    let mut b = Client::connect(&s, &bob, "bob").await;
    b.ready().await;
    let mut sl = Client::connect_small_buffer(&s, &slow, "slow").await;
    let online = b.recv_type("presence").await;
    assert_eq!(
        online,
        json!({"type":"presence","user":slow.id,"online":true})
    );
    let mut a = Client::connect_ready(&s, &alice, "alice").await;

    let body = "x".repeat(7_900);
    let mut sent = 0;
    let mut slow_gone = false;
    while !slow_gone && sent < MAX_MESSAGES {
        sent += 1;
        let content = format!("{sent}:{body}");
        let ack = a.group_acked(&format!("g-{sent}"), c, &content).await;
        assert_eq!(ack["seq"], sent, "{ack}");
        let (before, m) = b.recv_until(|f| f["type"] == "message").await;
        assert_message(&m, &conv, sent, alice.id, c, "group", &content);
        for f in before {
            assert_eq!(
                f,
                json!({"type":"presence","user":slow.id,"online":false}),
                "unexpected frame for bob"
            );
            slow_gone = true;
        }
    }
    if !slow_gone {
        // Reading the slow socket now would unblock the server, so judge from outside.
        let online = s
            .get(&format!("/api/users/{}", slow.id), bob.t())
            .await
            .json()["online"]
            .clone();
        panic!(
            "a reader that never reads was not disconnected after {sent} messages of ~8 KB \
             with queue_len 16: bob (a contact) got no presence offline, and GET /api/users/{} \
             says online={online}",
            slow.id
        );
    }
    // Flow goes on after the close: the marker is bob's very next frame.
    let ack = a.group_acked("g-marker", c, "marker").await;
    assert_message(
        &b.recv().await,
        &conv,
        sent + 1,
        alice.id,
        c,
        "group",
        "marker",
    );
    assert_eq!(ack["seq"], sent + 1);

    // The slow connection was closed: whatever it had buffered, then a close frame (1008) or
    // the end of the stream; its messages are an in-order prefix that stops short.
    let (code, texts) = sl.expect_closed(Duration::from_secs(30)).await;
    if let Some(code) = code {
        assert_eq!(code, 1008, "slow reader closed with the wrong code");
    }
    let seqs: Vec<i64> = texts
        .iter()
        .map(|t| serde_json::from_str::<Value>(t).expect("JSON frame"))
        .filter(|f| f["type"] == "message")
        .map(|f| f["seq"].as_i64().unwrap())
        .collect();
    assert!(
        seqs.iter().enumerate().all(|(i, s)| *s == i as i64 + 1),
        "slow reader's messages are not 1..k in order: {seqs:?}"
    );
    assert!(
        (seqs.len() as i64) < sent,
        "slow reader got all {} messages: it was never cut off",
        seqs.len()
    );
    eprintln!(
        "slow reader: closed after {sent} messages, had {} delivered, close code {code:?}",
        seqs.len()
    );

    // It catches up from storage on reconnect: everything, in order, once.
    let mut sl = Client::connect(&s, &slow, "slow-again").await;
    for seq in 1..=sent + 1 {
        let m = sl.recv().await;
        assert_eq!(m["type"], "message", "{m}");
        assert_eq!(
            m["seq"],
            seq,
            "{}",
            m["content"].as_str().unwrap_or("").get(..20).unwrap_or("")
        );
    }
}

/// `read` moves the cursor: the other participant and the reader's other connections get a
/// `read` frame; on reconnect only what came after the cursor is replayed.
#[tokio::test]
async fn read_cursor_limits_replay_and_is_forwarded() {
    let s = start(&[]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b1 = Client::connect_ready(&s, &bob, "bob-1").await;
    let mut b2 = Client::connect_ready(&s, &bob, "bob-2").await;
    for i in 1..=5 {
        let text = format!("m{i}");
        a.private_acked(&format!("c-{i}"), bob.id, &text).await;
        for b in [&mut b1, &mut b2] {
            assert_message(
                &b.recv().await,
                &conv,
                i,
                alice.id,
                bob.id,
                "private",
                &text,
            );
        }
    }
    b1.send_json(json!({"type":"read","conversation":conv,"seq":3}))
        .await;
    let expected = json!({"type":"read","conversation":conv,"user":bob.id,"seq":3});
    assert_eq!(
        a.recv().await,
        expected,
        "alice must learn that bob read up to 3"
    );
    assert_eq!(
        b2.recv().await,
        expected,
        "bob's other device must learn it too"
    );
    // A page that loads now learns the same from REST; a stranger learns nothing.
    let reads = s
        .get(&format!("/api/conversations/{conv}/reads"), alice.t())
        .await;
    reads.expect(200);
    assert_eq!(reads.json(), json!([{"user": bob.id, "seq": 3}]));
    let carol = s.user("carol").await;
    s.get(&format!("/api/conversations/{conv}/reads"), carol.t())
        .await
        .expect_error(403, "forbidden");
    // The reading connection itself gets no echo: its next frame is a marker.
    a.private_acked("c-6", bob.id, "m6").await;
    assert_message(
        &b1.recv().await,
        &conv,
        6,
        alice.id,
        bob.id,
        "private",
        "m6",
    );
    assert_message(
        &b2.recv().await,
        &conv,
        6,
        alice.id,
        bob.id,
        "private",
        "m6",
    );

    b1.close().await;
    b2.close().await;
    let mut b = Client::connect(&s, &bob, "bob-again").await;
    for i in 4..=6 {
        let m = b.recv().await;
        assert_message(&m, &conv, i, alice.id, bob.id, "private", &format!("m{i}"));
    }
    a.private_acked("c-7", bob.id, "m7").await;
    assert_message(&b.recv().await, &conv, 7, alice.id, bob.id, "private", "m7");

    // A cursor never moves back: reading 2 now changes nothing and tells nobody.
    b.send_json(json!({"type":"read","conversation":conv,"seq":2}))
        .await;
    b.send_json(json!({"type":"read","conversation":conv,"seq":7}))
        .await;
    assert_eq!(
        a.recv().await,
        json!({"type":"read","conversation":conv,"user":bob.id,"seq":7})
    );
    b.close().await;
    let mut b = Client::connect(&s, &bob, "bob-3").await;
    a.private_acked("c-8", bob.id, "m8").await;
    assert_message(&b.recv().await, &conv, 8, alice.id, bob.id, "private", "m8");
}

/// Typing is forwarded to the other participant (private) or the other members (group), never
/// echoed to the typist; a stranger's typing in a community is refused.
#[tokio::test]
async fn typing_is_forwarded() {
    let s = start(&[]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let eve = s.user("eve").await;
    let c = community(&s, &alice, &[&bob, &carol]).await;
    let mut a = Client::connect(&s, &alice, "alice").await;
    let mut b = Client::connect(&s, &bob, "bob").await;
    let mut cl = Client::connect(&s, &carol, "carol").await;
    let mut e = Client::connect(&s, &eve, "eve").await;
    // Typing is not stored: the receivers must be registered before it is sent.
    for conn in [&mut a, &mut b, &mut cl, &mut e] {
        conn.ready().await;
    }

    a.send_json(json!({"type":"typing","to":bob.id})).await;
    assert_eq!(
        b.recv().await,
        json!({"type":"typing","from":alice.id,"conversation":private_conv(alice.id, bob.id)})
    );

    a.send_json(json!({"type":"typing","community":c})).await;
    let expected = json!({"type":"typing","from":alice.id,"conversation":format!("g:{c}")});
    assert_eq!(b.recv().await, expected);
    assert_eq!(cl.recv().await, expected);

    e.send_json(json!({"type":"typing","community":c})).await;
    e.expect_error("not_a_participant", None).await;
    a.send_json(json!({"type":"typing"})).await;
    a.expect_error("invalid_frame", None).await;

    // Markers: alice never saw her own typing; bob and carol nothing from eve.
    b.group_acked("g-1", c, "marker").await;
    assert_eq!(a.recv_type("message").await["content"], "marker");
    assert_eq!(cl.recv_type("message").await["content"], "marker");
    cl.group_acked("g-2", c, "marker 2").await;
    assert_eq!(b.recv_type("message").await["content"], "marker 2");
}

/// `sync` asks for what came after the given seqs: on a fresh connection whose replay started
/// at the read cursor (5), `sync {conv: 2}` must send 3, 4, 5 (never sent on this connection),
/// in order, before anything newer.
#[tokio::test]
async fn sync_sends_what_came_after_the_given_seq() {
    let s = start(&[]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;
    for i in 1..=5 {
        a.private_acked(&format!("c-{i}"), bob.id, &format!("m{i}"))
            .await;
        assert_message(
            &b.recv().await,
            &conv,
            i,
            alice.id,
            bob.id,
            "private",
            &format!("m{i}"),
        );
    }
    b.send_json(json!({"type":"read","conversation":conv,"seq":5}))
        .await;
    a.recv_type("read").await;
    b.close().await;

    // A new device: nothing is replayed (all read), then it asks for what came after 2.
    let mut b = Client::connect(&s, &bob, "bob-new-device").await;
    b.send_json(json!({"type":"sync","after":{conv.clone(): 2}}))
        .await;
    // Order the marker after the sync: bob's heartbeat answer proves the sync was handled.
    b.send_json(json!({"type":"heartbeat"})).await;
    let (before, _) = b.recv_until(|f| f["type"] == "heartbeat").await;
    a.private_acked("c-6", bob.id, "m6").await;
    let (_, marker) = b.recv_until(|f| f["content"] == "m6").await;
    assert_message(&marker, &conv, 6, alice.id, bob.id, "private", "m6");
    let seqs: Vec<&Value> = before.iter().map(|f| &f["seq"]).collect();
    assert_eq!(
        seqs,
        vec![&json!(3), &json!(4), &json!(5)],
        "sync {{\"{conv}\": 2}} on a fresh connection must send seqs 3..5; got {before:?}"
    );
    for (f, i) in before.iter().zip(3..) {
        assert_message(f, &conv, i, alice.id, bob.id, "private", &format!("m{i}"));
    }
}

/// `sync` never sends a message twice on one connection, and refuses conversations the user is
/// not in (`not_a_participant`) or that are not conversation ids.
#[tokio::test]
async fn sync_sends_nothing_twice_and_only_your_own() {
    let s = start(&[]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;
    for i in 1..=3 {
        a.private_acked(&format!("c-{i}"), bob.id, &format!("m{i}"))
            .await;
        assert_message(
            &b.recv().await,
            &conv,
            i,
            alice.id,
            bob.id,
            "private",
            &format!("m{i}"),
        );
    }
    // Bob already has 1..3 on this connection: syncing from 1 sends nothing; the marker is next.
    b.send_json(json!({"type":"sync","after":{conv.clone(): 1}}))
        .await;
    b.send_json(json!({"type":"heartbeat"})).await;
    b.recv_type("heartbeat").await;
    a.private_acked("c-4", bob.id, "m4").await;
    assert_message(&b.recv().await, &conv, 4, alice.id, bob.id, "private", "m4");

    let theirs = private_conv(alice.id, carol.id);
    a.private_acked("p-1", carol.id, "not for bob").await;
    b.send_json(json!({"type":"sync","after":{theirs: 0}}))
        .await;
    b.expect_error("not_a_participant", None).await;
    b.send_json(json!({"type":"sync","after":{"nonsense": 0}}))
        .await;
    b.expect_error("invalid_frame", None).await;
    // Still nothing of carol's conversation; the connection keeps working.
    a.private_acked("c-5", bob.id, "m5").await;
    assert_message(&b.recv().await, &conv, 5, alice.id, bob.id, "private", "m5");
}

/// History pages by seq (before/after/limit, oldest first, shaped like message frames) and
/// is for participants only.
#[tokio::test]
async fn history_pages_and_is_private() {
    let s = start(&[]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut acks = Vec::new();
    for i in 1..=10 {
        acks.push(
            a.private_acked(&format!("h-{i}"), bob.id, &format!("h{i}"))
                .await,
        );
    }
    let page = |q: &'static str| {
        let s = &s;
        let path = format!("/api/conversations/{conv}/messages{q}");
        let token = bob.token.clone();
        async move {
            let r = s.get(&path, Some(&token)).await;
            r.expect(200);
            r.json()
                .as_array()
                .unwrap_or_else(|| panic!("{path}: not an array"))
                .iter()
                .map(|m| m["seq"].as_i64().unwrap())
                .collect::<Vec<i64>>()
        }
    };
    assert_eq!(page("").await, (1..=10).collect::<Vec<_>>());
    assert_eq!(page("?limit=3").await, vec![8, 9, 10], "latest page");
    assert_eq!(page("?before=8&limit=3").await, vec![5, 6, 7]);
    assert_eq!(page("?after=2&limit=3").await, vec![3, 4, 5]);
    assert_eq!(page("?after=2&before=5").await, vec![3, 4]);
    assert_eq!(page("?after=10").await, Vec::<i64>::new());

    // Each entry is the message frame the recipient would have got.
    let r = s
        .get(
            &format!("/api/conversations/{conv}/messages?limit=1&after=0"),
            bob.t(),
        )
        .await;
    r.expect(200);
    let first = &r.json()[0];
    assert_message(first, &conv, 1, alice.id, bob.id, "private", "h1");
    assert_eq!(first["msg_id"], acks[0]["msg_id"]);
    assert_eq!(first["ts"], acks[0]["ts"]);

    // Carol is a stranger to this conversation; anonymous callers are not let in at all.
    s.get(&format!("/api/conversations/{conv}/messages"), carol.t())
        .await
        .expect(403);
    s.get(&format!("/api/conversations/{conv}/messages"), None)
        .await
        .expect(401);
}

/// Friend lists and member lists change live: both sides of a new (or ended) friendship get a
/// `contact` notice on every device, and a community's members get a `member` notice when
/// someone joins or leaves (the leaver's own devices too).
#[tokio::test]
async fn contact_and_member_notices_reach_everyone_concerned() {
    let s = start(&[]).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;

    s.post("/api/contacts", bob.t(), json!({"user_id": alice.id}))
        .await
        .expect(201);
    assert_eq!(
        a.recv().await,
        json!({"type":"contact","user":bob.id,"added":true})
    );
    assert_eq!(
        b.recv().await,
        json!({"type":"contact","user":alice.id,"added":true})
    );
    s.delete(&format!("/api/contacts/{}", alice.id), bob.t())
        .await
        .expect(204);
    assert_eq!(
        a.recv().await,
        json!({"type":"contact","user":bob.id,"added":false})
    );
    assert_eq!(
        b.recv().await,
        json!({"type":"contact","user":alice.id,"added":false})
    );

    let g = s
        .post("/api/communities", alice.t(), json!({"name": "hikers"}))
        .await
        .json()["id"]
        .as_i64()
        .unwrap();
    s.post_empty(&format!("/api/communities/{g}/members"), bob.t())
        .await
        .expect(201);
    let joined = json!({"type":"member","community":g,"user":bob.id,"joined":true});
    assert_eq!(a.recv().await, joined);
    assert_eq!(b.recv().await, joined);
    s.delete(&format!("/api/communities/{g}/members/me"), bob.t())
        .await
        .expect(204);
    let left = json!({"type":"member","community":g,"user":bob.id,"joined":false});
    assert_eq!(a.recv().await, left);
    assert_eq!(b.recv().await, left);
}
