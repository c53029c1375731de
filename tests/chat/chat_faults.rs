//! Faults on the store/commit side (issue 8), against the real binary on every backend: one bad
//! send never fails another, client ids compare as bytes everywhere, a `sync` cursor past the
//! end hides nothing, a retry of a stored-but-unannounced send is delivered, and racing first
//! reads keep the highest cursor.

use crate::common::{self, ws};

use common::{Backend, Server, TestDb};
use serde_json::{json, Value};
use ws::{assert_message, private_conv, Client};

backend_tests!(
    unstorable_text_is_refused_everywhere,
    poisoned_batch_fails_only_the_culprit,
    client_ids_compare_as_bytes,
    sync_cursor_past_the_end_hides_nothing,
    retry_of_an_unannounced_send_is_delivered,
    racing_first_reads_keep_the_highest,
    rejoining_a_group_starts_at_its_end,
    sends_without_id_get_no_copy,
);

/// Runs `sql` on the test's own database (not the admin one), to break or bend it on purpose.
async fn db_exec(db: &TestDb, sql: &str) {
    use sea_orm::ConnectionTrait;
    let conn = sea_orm::Database::connect(&db.url)
        .await
        .unwrap_or_else(|e| panic!("connect {}: {e}", db.url));
    conn.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

/// U+0000 in content or id (PostgreSQL cannot store it in text) is refused with `invalid_text`
/// on every backend, before it reaches the writer; nothing is stored, the connection works on.
async fn unstorable_text_is_refused_everywhere(backend: Backend) {
    let s = start!(backend);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;

    a.private("nul-1", bob.id, "before\u{0}after").await;
    a.expect_error("invalid_text", Some("nul-1")).await;
    a.private("nul\u{0}2", bob.id, "a fine text").await;
    a.expect_error("invalid_text", Some("nul\u{0}2")).await;

    let ack = a.private_acked("ok-1", bob.id, "still here").await;
    assert_eq!(ack["seq"], 1, "refused sends must take no seq: {ack}");
    assert_message(
        &b.recv().await,
        &conv,
        1,
        alice.id,
        bob.id,
        "private",
        "still here",
    );
}

/// Makes the database itself refuse the content `poison` (a check the server knows nothing
/// about, standing for any send a backend refuses at commit time).
async fn poison_the_database(db: &TestDb) {
    let sql = match db.backend {
        Backend::Sqlite => {
            "CREATE TRIGGER no_poison BEFORE INSERT ON messages WHEN NEW.content = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'poison'); END"
        }
        Backend::Postgres | Backend::MySql => {
            "ALTER TABLE messages ADD CONSTRAINT no_poison CHECK (content <> 'poison')"
        }
    };
    db_exec(db, sql).await;
}

/// Many clients pipeline sends at once, so the writer batches them together; one send the
/// database refuses is among them. Only that send gets `unavailable`; every other one is acked
/// and delivered.
async fn poisoned_batch_fails_only_the_culprit(backend: Backend) {
    const SENDERS: usize = 6;
    const EACH: usize = 30;
    let s = start!(backend);
    poison_the_database(&s.db).await;
    let bob = s.user("bob").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        let u = s.user(&format!("sender{i}")).await;
        let c = Client::connect_ready(&s, &u, &format!("sender{i}")).await;
        senders.push(c);
    }
    // Everyone sends everything first (no waiting), then reads the answers.
    let sends = senders.iter_mut().enumerate().map(|(i, c)| async move {
        for n in 0..EACH {
            let content = if i == 0 && n == EACH / 2 {
                "poison".to_string()
            } else {
                format!("m{i}-{n}")
            };
            c.private(&format!("s{i}-{n}"), bob.id, &content).await;
        }
    });
    futures_util::future::join_all(sends).await;
    let mut refused = Vec::new();
    for (i, c) in senders.iter_mut().enumerate() {
        for _ in 0..EACH {
            let f = c.recv().await;
            match f["type"].as_str() {
                Some("ack") => {}
                Some("error") => refused.push((i, f)),
                _ => panic!("sender{i}: expected an ack or error, got {f}"),
            }
        }
    }
    assert_eq!(
        refused.len(),
        1,
        "only the poisoned send may fail: {refused:?}"
    );
    let (who, f) = &refused[0];
    assert_eq!(*who, 0, "{f}");
    assert_eq!(f["id"], format!("s0-{}", EACH / 2), "{f}");
    assert_eq!(f["code"], "unavailable", "{f}");
    let mut got = 0;
    while got < SENDERS * EACH - 1 {
        let m = b.recv_type("message").await;
        assert_ne!(m["content"], "poison", "{m}");
        got += 1;
    }
}

/// `Msg-1`, `msg-1` and `msg-1 ` are three different sends on every backend (MariaDB/MySQL
/// used to compare them case- and trailing-space-insensitively in the unique index only, so the
/// second broke every batch it landed in); a resend of each still returns its first result.
async fn client_ids_compare_as_bytes(backend: Backend) {
    let s = start!(backend);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;
    let ids = ["Msg-1", "msg-1", "msg-1 ", "MSG-1"];
    let mut seqs = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let ack = a.private_acked(id, bob.id, &format!("text {n}")).await;
        assert_eq!(ack["seq"], n as i64 + 1, "{id:?} is a new send: {ack}");
        assert_message(
            &b.recv().await,
            &conv,
            n as i64 + 1,
            alice.id,
            bob.id,
            "private",
            &format!("text {n}"),
        );
        seqs.push(ack["seq"].clone());
    }
    // Resends are idempotent per exact id, also when they share a batch.
    for id in ids {
        a.private(id, bob.id, "resent").await;
    }
    for (id, seq) in ids.iter().zip(&seqs) {
        let ack = a.expect_ack(id).await;
        assert_eq!(&ack["seq"], seq, "resend of {id:?}: {ack}");
    }
    a.private_acked("after", bob.id, "after").await;
    assert_message(
        &b.recv().await,
        &conv,
        5,
        alice.id,
        bob.id,
        "private",
        "after",
    );
}

/// A `sync` claiming more than a conversation holds does not make the connection believe it:
/// messages sent after it still arrive.
async fn sync_cursor_past_the_end_hides_nothing(backend: Backend) {
    let s = start!(backend);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;
    a.private_acked("c-1", bob.id, "one").await;
    assert_message(
        &b.recv().await,
        &conv,
        1,
        alice.id,
        bob.id,
        "private",
        "one",
    );

    b.send_json(json!({"type":"sync","after":{conv.as_str(): 100}}))
        .await;
    b.ready().await;
    a.private_acked("c-2", bob.id, "two").await;
    assert_message(
        &b.recv().await,
        &conv,
        2,
        alice.id,
        bob.id,
        "private",
        "two",
    );
}

/// A send stored whose announcement was lost (the node crashed between commit and fan-out; here
/// the row is written the way the writer writes it) is delivered when the client retries it,
/// not only re-acked.
async fn retry_of_an_unannounced_send_is_delivered(backend: Backend) {
    let s = start!(backend);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;
    a.private_acked("c-1", bob.id, "one").await;
    assert_message(
        &b.recv().await,
        &conv,
        1,
        alice.id,
        bob.id,
        "private",
        "one",
    );

    let now = common::now_ms();
    db_exec(
        &s.db,
        &format!("UPDATE conversations SET last_seq = 2 WHERE id = '{conv}'"),
    )
    .await;
    db_exec(
        &s.db,
        &format!(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, media, content, \
             client_id, created_at) VALUES ('{}', '{conv}', 2, {}, 'text', 'two', 'c-2', {now})",
            uuid::Uuid::new_v4(),
            alice.id
        ),
    )
    .await;

    let ack = a.private_acked("c-2", bob.id, "two").await;
    assert_eq!(ack["seq"], 2, "the retry returns the stored send: {ack}");
    assert_message(
        &b.recv().await,
        &conv,
        2,
        alice.id,
        bob.id,
        "private",
        "two",
    );
}

/// Two devices send their first `read` of many conversations at the same moment, one high and
/// one low: every cursor ends at the higher one (a new device has nothing to replay).
async fn racing_first_reads_keep_the_highest(backend: Backend) {
    const PEERS: usize = 12;
    const MESSAGES: i64 = 5;
    let s = start!(backend);
    let bob = s.user("bob").await;
    let mut convs = Vec::new();
    for i in 0..PEERS {
        let u = s.user(&format!("peer{i}")).await;
        let mut c = Client::connect_ready(&s, &u, &format!("peer{i}")).await;
        for n in 0..MESSAGES {
            c.private_acked(&format!("m{n}"), bob.id, "hello").await;
        }
        convs.push(private_conv(u.id, bob.id));
    }
    let mut high = Client::connect(&s, &bob, "bob-high").await;
    let mut low = Client::connect(&s, &bob, "bob-low").await;
    // Both replay everything first (nothing read yet).
    for c in [&mut high, &mut low] {
        for _ in 0..PEERS * MESSAGES as usize {
            c.recv_type("message").await;
        }
        c.ready().await;
    }
    let reads = |seq: i64| -> Vec<Value> {
        convs
            .iter()
            .map(|conv| json!({"type":"read","conversation":conv,"seq":seq}))
            .collect()
    };
    let (hi, lo) = (reads(MESSAGES), reads(1));
    tokio::join!(
        async {
            for f in hi {
                high.send_json(f).await;
            }
            settle(&mut high).await;
        },
        async {
            for f in lo {
                low.send_json(f).await;
            }
            settle(&mut low).await;
        }
    );
    let mut fresh = Client::connect(&s, &bob, "bob-new").await;
    fresh.send_json(json!({"type":"heartbeat"})).await;
    let first = fresh.recv().await;
    assert_eq!(
        first,
        json!({"type":"heartbeat"}),
        "every cursor must be at {MESSAGES}, so nothing replays; got {first}"
    );
}

/// A heartbeat round trip, skipping the `read` notices the other device's reads cause.
async fn settle(c: &mut Client) {
    c.send_json(json!({"type":"heartbeat"})).await;
    let (before, _) = c.recv_until(|f| f["type"] == "heartbeat").await;
    for f in before {
        assert_eq!(f["type"], "read", "{f}");
    }
}

#[tokio::test]
async fn opposite_lock_orders_do_not_deadlock_postgres() {
    opposite_lock_orders_do_not_deadlock(Backend::Postgres).await
}

#[tokio::test]
async fn opposite_lock_orders_do_not_deadlock_mysql() {
    opposite_lock_orders_do_not_deadlock(Backend::MySql).await
}

/// Three nodes on one database; on each, several clients pipeline sends to the same groups,
/// every node walking the groups in another order, so each node's batches bump the same
/// conversation counters in a different order. No send fails and no deadlock is logged
/// (counters are locked in one global order).
async fn opposite_lock_orders_do_not_deadlock(backend: Backend) {
    const NODES: usize = 3;
    const CLIENTS: usize = 4;
    const GROUPS: usize = 6;
    const EACH: usize = 150;
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Server::start_on(db.clone(), &[]).await);
    }
    let owner = nodes[0].user("owner").await;
    let mut users = Vec::new();
    for n in 0..NODES {
        for c in 0..CLIENTS {
            users.push((n, nodes[0].user(&format!("u{n}-{c}")).await));
        }
    }
    let members: Vec<&common::TestUser> = users.iter().map(|(_, u)| u).collect();
    let mut groups = Vec::new();
    for _ in 0..GROUPS {
        groups.push(ws::community(&nodes[0], &owner, &members).await);
    }
    let mut clients = Vec::new();
    for (n, u) in &users {
        clients.push((*n, Client::connect_ready(&nodes[*n], u, &u.name).await));
    }
    let work = clients.iter_mut().enumerate().map(|(k, (n, c))| {
        let n = *n;
        let groups = &groups;
        async move {
            // Node 0 walks the groups upwards, node 1 downwards, node 2 from the middle.
            let order: Vec<i64> = (0..GROUPS)
                .map(|g| match n {
                    0 => groups[g],
                    1 => groups[GROUPS - 1 - g],
                    _ => groups[(g + GROUPS / 2) % GROUPS],
                })
                .collect();
            for i in 0..EACH {
                c.group(&format!("k{k}-{i}"), order[i % GROUPS], "x").await;
            }
            let mut failed = Vec::new();
            let mut answered = 0;
            while answered < EACH {
                let f = c.recv().await;
                match f["type"].as_str() {
                    Some("ack") => answered += 1,
                    Some("error") => {
                        answered += 1;
                        failed.push(f);
                    }
                    _ => {}
                }
            }
            failed
        }
    });
    let failed: Vec<Value> = futures_util::future::join_all(work)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert!(failed.is_empty(), "sends failed: {failed:?}");
    for (i, node) in nodes.iter().enumerate() {
        let log = node.stderr().to_lowercase();
        assert!(
            !log.contains("deadlock"),
            "node {i} logged a deadlock:\n{}",
            node.stderr()
        );
    }
}

/// Leaving a group and joining it again on a connection that stays open: the connection starts
/// at the group's current end (where the join put the read cursor), so what was said while the
/// user was away is not replayed.
async fn rejoining_a_group_starts_at_its_end(backend: Backend) {
    let s = start!(backend);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let group = ws::community(&s, &alice, &[&bob]).await;
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;
    group_ack(&mut a, group, "g-1", "before").await;
    assert_eq!(b.recv_type("message").await["seq"], 1);

    s.delete(&format!("/api/communities/{group}/members/me"), bob.t())
        .await
        .expect(204);
    let left = b.recv_type("member").await;
    assert_eq!(left["joined"], false, "{left}");
    group_ack(&mut a, group, "g-2", "while away").await;
    group_ack(&mut a, group, "g-3", "while away").await;

    s.post_empty(&format!("/api/communities/{group}/members"), bob.t())
        .await
        .expect(201);
    let joined = b.recv_type("member").await;
    assert_eq!(joined["joined"], true, "{joined}");
    let ack = group_ack(&mut a, group, "g-4", "back").await;
    assert_eq!(ack["seq"], 4, "{ack}");
    let next = b.recv_type("message").await;
    assert_eq!(next["seq"], 4, "the absence must not be replayed: {next}");
    assert_eq!(next["content"], "back", "{next}");
}

/// Sends a group message and waits for its ack (member notices may come first).
async fn group_ack(c: &mut Client, group: i64, id: &str, text: &str) -> Value {
    c.group(id, group, text).await;
    c.recv_until(|f| f["type"] == "ack").await.1
}

/// A client that sends without `id` gets the ack (with `id: null`) and never a copy of its own
/// message, even when a `sync` makes the connection read the conversation from storage while
/// the send is being stored.
async fn sends_without_id_get_no_copy(backend: Backend) {
    const SENDS: i64 = 40;
    let s = start!(backend);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    for i in 0..SENDS {
        a.send_json(json!({"type":"private","to":bob.id,"content":format!("m{i}")}))
            .await;
        a.send_json(json!({"type":"sync","after":{conv.as_str(): i}}))
            .await;
    }
    for acks in 0..SENDS {
        let f = a.recv().await;
        assert_eq!(
            f["type"], "ack",
            "only acks may come back; after {acks} acks: {f}"
        );
        assert_eq!(f["id"], Value::Null, "{f}");
    }
    a.ready().await;
}
