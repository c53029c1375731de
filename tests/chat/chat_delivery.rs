//! Websocket delivery against the real binary: private and group fan-out (on every database
//! backend), several connections per user, offline delivery of a thousand messages in order,
//! idempotent resends, and nothing acknowledged lost across `kill -9`.

use crate::common::{self, ws};

use std::collections::{BTreeMap, HashSet};

use common::{Backend, Server, TestDb};
use serde_json::{json, Value};
use ws::{assert_message, community, private_conv, Client, Event};

backend_tests!(
    private_delivery,
    group_delivery,
    send_right_after_connect_gets_ack_not_copy
);

/// A private message: the sender gets the ack, the recipient the message, with matching
/// msg_id/seq/ts; seqs of the conversation count up from 1 in both directions.
async fn private_delivery(backend: Backend) {
    let s = start!(backend);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;

    let ack = a.private_acked("c-1", bob.id, "hi bob").await;
    assert_eq!(ack["conversation"], conv.as_str(), "{ack}");
    assert_eq!(ack["seq"], 1, "{ack}");
    let msg = b.recv().await;
    assert_message(&msg, &conv, 1, alice.id, bob.id, "private", "hi bob");
    assert_eq!(msg["msg_id"], ack["msg_id"], "ack {ack} vs message {msg}");
    assert_eq!(msg["ts"], ack["ts"], "ack {ack} vs message {msg}");

    // The reply continues the same conversation; alice got no copy of her own message before it.
    let ack2 = b.private_acked("c-2", alice.id, "hi alice").await;
    assert_eq!(ack2["seq"], 2, "{ack2}");
    assert_eq!(ack2["conversation"], conv.as_str(), "{ack2}");
    let reply = a.recv().await;
    assert_message(&reply, &conv, 2, bob.id, alice.id, "private", "hi alice");

    // Other media than text is accepted by the frame shape (emoji is free text).
    a.send_json(json!({"type":"private","id":"c-3","to":bob.id,"media":"emoji","content":"🎉"}))
        .await;
    a.expect_ack("c-3").await;
    let emoji = b.recv().await;
    assert_eq!(emoji["media"], "emoji", "{emoji}");
    assert_eq!(emoji["content"], "🎉", "{emoji}");
    assert_eq!(emoji["seq"], 3, "{emoji}");
}

/// A group message reaches every member but the sender; the sender gets only the ack.
async fn group_delivery(backend: Backend) {
    let s = start!(backend);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let c = community(&s, &alice, &[&bob, &carol]).await;
    let conv = format!("g:{c}");
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;
    let mut cl = Client::connect_ready(&s, &carol, "carol").await;

    let ack = a.group_acked("g-1", c, "hello room").await;
    assert_eq!(ack["conversation"], conv.as_str(), "{ack}");
    assert_eq!(ack["seq"], 1, "{ack}");
    for member in [&mut b, &mut cl] {
        let msg = member.recv().await;
        assert_message(&msg, &conv, 1, alice.id, c, "group", "hello room");
        assert_eq!(msg["msg_id"], ack["msg_id"], "{msg} vs {ack}");
    }

    // Marker: bob posts next. Alice's next frame must be bob's message (seq 2), not a copy of
    // her own; carol gets it too, and bob only his ack.
    let ack2 = b.group_acked("g-2", c, "hi all").await;
    assert_eq!(ack2["seq"], 2, "{ack2}");
    let next = a.recv().await;
    assert_message(&next, &conv, 2, bob.id, c, "group", "hi all");
    let next = cl.recv().await;
    assert_message(&next, &conv, 2, bob.id, c, "group", "hi all");

    // And one more from carol, so bob's next frame proves he got no copy of "hi all".
    cl.group_acked("g-3", c, "third").await;
    assert_message(&b.recv().await, &conv, 3, carol.id, c, "group", "third");
    assert_message(&a.recv().await, &conv, 3, carol.id, c, "group", "third");
}

/// A client that sends the moment its connection opens (while the server may still be
/// replaying what it missed) gets the ack on that connection and no `message` copy of its own
/// send. Each round marks everything read first, so the new connection has nothing to replay
/// but the message it is sending itself.
async fn send_right_after_connect_gets_ack_not_copy(backend: Backend) {
    const ROUNDS: i64 = 30;
    let s = start!(backend);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut b = Client::connect_ready(&s, &bob, "bob").await;
    for i in 1..=ROUNDS {
        let mut a = Client::connect(&s, &alice, &format!("alice-{i}")).await;
        a.private(&format!("c-{i}"), bob.id, &format!("m{i}")).await;
        let first = a.recv().await;
        assert_eq!(
            first["type"], "ack",
            "round {i}: the sending connection must get its ack, not a copy of its own \
             message (sent right after connecting): {first}"
        );
        assert_eq!(first["seq"], i, "{first}");
        assert_message(
            &b.recv().await,
            &conv,
            i,
            alice.id,
            bob.id,
            "private",
            &format!("m{i}"),
        );
        // Everything read, and the next frame is the heartbeat answer: no copy came late.
        a.send_json(json!({"type":"read","conversation":conv,"seq":i}))
            .await;
        a.ready().await;
        b.recv_type("read").await;
        a.close().await;
    }
}

/// A non-member's post is refused with `not_a_member` (id echoed) and reaches nobody; it
/// takes no seq either.
#[tokio::test]
async fn group_post_by_non_member_is_refused() {
    let s = start!(Backend::Sqlite);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let eve = s.user("eve").await;
    let c = community(&s, &alice, &[&bob]).await;
    let conv = format!("g:{c}");
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;
    let mut e = Client::connect_ready(&s, &eve, "eve").await;

    e.group("x-1", c, "let me in").await;
    e.expect_error("not_a_member", Some("x-1")).await;
    // A community that does not exist answers the same way.
    e.group("x-2", 987_654, "anyone?").await;
    e.expect_error("not_a_member", Some("x-2")).await;

    // Markers: the members' first frames are alice's post at seq 1.
    let ack = a.group_acked("g-1", c, "members only").await;
    assert_eq!(ack["seq"], 1, "the refused post must not take a seq: {ack}");
    assert_message(
        &b.recv().await,
        &conv,
        1,
        alice.id,
        c,
        "group",
        "members only",
    );
    // Eve's next frame is a private marker, not the group message.
    a.private_acked("p-1", eve.id, "marker").await;
    let m = e.recv().await;
    assert_message(
        &m,
        &private_conv(alice.id, eve.id),
        1,
        alice.id,
        eve.id,
        "private",
        "marker",
    );

    // History holds the one post only.
    let h = s
        .get(&format!("/api/conversations/{conv}/messages"), alice.t())
        .await;
    h.expect(200);
    let contents: Vec<Value> = h
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert_eq!(contents, vec![json!("members only")]);
}

/// Three connections of one user each get every message sent to them; a message sent from one
/// of them is acked there and copied to the other two (and to the recipient).
#[tokio::test]
async fn three_connections_each_get_everything() {
    let s = start!(Backend::Sqlite);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a1 = Client::connect_ready(&s, &alice, "alice-1").await;
    let mut a2 = Client::connect_ready(&s, &alice, "alice-2").await;
    let mut a3 = Client::connect_ready(&s, &alice, "alice-3").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;

    const ROUNDS: i64 = 10;
    let mut seq = 0;
    for i in 0..ROUNDS {
        // bob → alice: every alice connection gets it.
        seq += 1;
        let text = format!("to alice {i}");
        b.private_acked(&format!("b-{i}"), alice.id, &text).await;
        for conn in [&mut a1, &mut a2, &mut a3] {
            let m = conn.recv().await;
            assert_message(&m, &conv, seq, bob.id, alice.id, "private", &text);
        }
        // alice-1 → bob: ack on alice-1, copies on alice-2/alice-3, message for bob.
        seq += 1;
        let text = format!("from alice {i}");
        let ack = a1.private_acked(&format!("a-{i}"), bob.id, &text).await;
        assert_eq!(ack["seq"], seq, "{ack}");
        for conn in [&mut a2, &mut a3, &mut b] {
            let m = conn.recv().await;
            assert_message(&m, &conv, seq, alice.id, bob.id, "private", &text);
            assert_eq!(m["msg_id"], ack["msg_id"], "{m}");
        }
    }
    // Marker: alice-1's next frame is bob's marker, so it never got a copy of its own sends
    // (the loop above already read each of its frames strictly in order, too).
    b.private_acked("b-end", alice.id, "end").await;
    for conn in [&mut a1, &mut a2, &mut a3] {
        let m = conn.recv().await;
        assert_message(&m, &conv, seq + 1, bob.id, alice.id, "private", "end");
    }
}

/// 1,000 messages sent while the recipient is offline arrive on connect, seq 1..=1000 in
/// order, each once; a later marker comes right after them with nothing repeated in between.
#[tokio::test]
async fn thousand_offline_messages_arrive_in_order_once() {
    const N: i64 = 1000;
    let s = start!(Backend::Sqlite);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s, &alice, "alice").await;

    // Pipelined: all sends first, then the acks (which must come back in order).
    for i in 1..=N {
        a.private(&format!("m-{i}"), bob.id, &format!("offline {i}"))
            .await;
    }
    for i in 1..=N {
        let ack = a.expect_ack(&format!("m-{i}")).await;
        assert_eq!(ack["seq"], i, "acks out of order: {ack}");
    }

    let mut b = Client::connect(&s, &bob, "bob").await;
    for i in 1..=N {
        let m = b.recv().await;
        assert_message(
            &m,
            &conv,
            i,
            alice.id,
            bob.id,
            "private",
            &format!("offline {i}"),
        );
    }
    a.private_acked("marker", bob.id, "marker").await;
    let m = b.recv().await;
    assert_message(&m, &conv, N + 1, alice.id, bob.id, "private", "marker");
}

/// Sending the same client id twice yields two identical acks and one stored, delivered
/// message; the same holds for a resend on a new connection.
#[tokio::test]
async fn resent_client_id_is_idempotent() {
    let s = start!(Backend::Sqlite);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;

    let first = a.private_acked("dup-1", bob.id, "once").await;
    let second = a.private_acked("dup-1", bob.id, "once").await;
    assert_eq!(first, second, "a resend must return the first ack");
    a.close().await;
    let mut a = Client::connect(&s, &alice, "alice-again").await;
    // A new connection first replays the conversation (alice never marked it read): her own
    // message, once.
    assert_message(
        &a.recv().await,
        &conv,
        1,
        alice.id,
        bob.id,
        "private",
        "once",
    );
    let third = a.private_acked("dup-1", bob.id, "once").await;
    assert_eq!(
        first, third,
        "a resend on a new connection must return the first ack"
    );

    // Bob: the message once, then the marker.
    assert_message(
        &b.recv().await,
        &conv,
        1,
        alice.id,
        bob.id,
        "private",
        "once",
    );
    a.private_acked("dup-2", bob.id, "marker").await;
    assert_message(
        &b.recv().await,
        &conv,
        2,
        alice.id,
        bob.id,
        "private",
        "marker",
    );

    let h = s
        .get(&format!("/api/conversations/{conv}/messages"), bob.t())
        .await;
    h.expect(200);
    let list = h.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "one stored copy plus the marker: {list:?}");
    assert_eq!(list[0]["msg_id"], first["msg_id"]);
}

/// `kill -9` right after acks, restart on the same SQLite file: every acknowledged message is
/// delivered to the recipient on connect, with its msg_id and content, none twice, no gaps.
#[tokio::test]
async fn acked_messages_survive_kill_9() {
    const SENT: i64 = 1500;
    const KILL_AFTER_ACKS: usize = 100;
    let db = TestDb::create(Backend::Sqlite).await.expect("sqlite");
    let s1 = Server::start_on(db.clone(), &[]).await;
    let alice = s1.user("alice").await;
    let bob = s1.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s1, &alice, "alice").await;
    for i in 1..=SENT {
        a.private(&format!("k-{i}"), bob.id, &format!("durable {i}"))
            .await;
    }
    // Acked: client id → (seq, msg_id).
    let mut acked: BTreeMap<String, (i64, String)> = BTreeMap::new();
    while acked.len() < KILL_AFTER_ACKS {
        let ack = a.recv_type("ack").await;
        acked.insert(
            ack["id"].as_str().unwrap().to_string(),
            (
                ack["seq"].as_i64().unwrap(),
                ack["msg_id"].as_str().unwrap().to_string(),
            ),
        );
    }
    // Dropping the server sends SIGKILL (std's Child::kill) and reaps it.
    drop(s1);
    // Acks that already reached alice's socket count as acknowledged too.
    loop {
        match a.next_event(ws::FRAME_DEADLINE).await {
            Some(Event::Text(t)) => {
                let ack: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(ack["type"], "ack", "{ack}");
                acked.insert(
                    ack["id"].as_str().unwrap().to_string(),
                    (
                        ack["seq"].as_i64().unwrap(),
                        ack["msg_id"].as_str().unwrap().to_string(),
                    ),
                );
            }
            Some(Event::Close(_) | Event::End(_)) => break,
            Some(Event::Binary(_)) => panic!("binary frame"),
            None => panic!("alice's socket stayed open after the server was killed"),
        }
    }

    let s2 = Server::start_on(db.clone(), &[]).await;
    let mut b = Client::connect(&s2, &bob, "bob").await;
    let mut a = Client::connect(&s2, &alice, "alice-2").await;
    a.private("marker", bob.id, "marker").await;
    // Alice's new connection replays the conversation first (her own sends), then the ack.
    let (_, marker_ack) = a.recv_until(|f| f["type"] == "ack").await;
    assert_eq!(marker_ack["id"], "marker", "{marker_ack}");
    let marker_seq = marker_ack["seq"].as_i64().unwrap();
    let (replayed, marker) = b.recv_until(|f| f["content"] == "marker").await;
    assert_eq!(marker["seq"], marker_seq, "{marker}");

    let mut seen = HashSet::new();
    let mut by_content = BTreeMap::new();
    for (i, m) in replayed.iter().enumerate() {
        let seq = m["seq"].as_i64().unwrap();
        assert!(seen.insert(seq), "seq {seq} delivered twice: {m}");
        assert_eq!(
            seq,
            i as i64 + 1,
            "replay must be seq 1.. without gaps: {m}"
        );
        assert_eq!(m["conversation"], conv.as_str());
        by_content.insert(m["content"].as_str().unwrap().to_string(), m.clone());
    }
    assert_eq!(
        marker_seq,
        replayed.len() as i64 + 1,
        "the marker follows the replay"
    );
    for (id, (seq, msg_id)) in &acked {
        let n: i64 = id.trim_start_matches("k-").parse().unwrap();
        let m = by_content
            .get(&format!("durable {n}"))
            .unwrap_or_else(|| panic!("acked message {id} (seq {seq}) lost after kill -9"));
        assert_eq!(m["seq"], *seq, "{id}: {m}");
        assert_eq!(m["msg_id"], msg_id.as_str(), "{id}: {m}");
    }
    assert!(acked.len() >= KILL_AFTER_ACKS);
    eprintln!(
        "kill -9: {} of {SENT} sends acked before the kill, {} stored and replayed",
        acked.len(),
        replayed.len()
    );
}
