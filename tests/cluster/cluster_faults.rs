//! Issue 8, the cluster side: nodes crash, stop and restart under traffic, and still every
//! acknowledged message reaches every recipient once and in order, and presence stays true.
//!
//! - A peer that goes silent may have stored and acked messages it never announced: the other
//!   nodes catch their connections up from storage (the database is the truth).
//! - SIGTERM drains in order: writer, then the cluster sender, then a departure announcement.
//! - A node restarting with the same id drops its former users' presence at once.
//!
//! Real `chorus` processes on one database, joined by UDP broadcast on 127.255.255.255.

use crate::common::{self, cluster, ws};

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use cluster::{user, Cluster, Conn, Sent, Transport};
use common::{wait_for, Backend, Server, TestDb};

/// Long enough that no test here is rescued by the silent-peer timeout when it means to test
/// something else (a departure announcement, a restart).
const LONG_PEER_TIMEOUT: &str = "60000";
/// How long a recipient may take to see everything (well under [`LONG_PEER_TIMEOUT`]).
const DELIVERY_DEADLINE: Duration = Duration::from_secs(30);

macro_rules! sqlite_and_postgres {
    ($($t:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $t() { super::$t(super::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $t() { super::$t(super::Backend::Postgres).await } )*
        }
    };
}

sqlite_and_postgres!(
    stored_but_unannounced_messages_arrive_when_a_peer_dies,
    messages_acked_before_a_crash_reach_the_other_node,
    sigterm_mid_burst_announces_every_acked_message,
    restarted_node_drops_its_former_users_presence,
    a_late_presence_does_not_overwrite_a_newer_one,
    a_late_read_does_not_move_seen_backwards,
    a_late_contact_repeats_the_current_state,
    a_late_member_repeats_the_current_state,
    peers_with_wrong_clocks_are_still_heard,
    an_unloadable_reference_triggers_a_catch_up,
    announcements_lost_to_a_full_outbox_are_repaired,
);

/// A heartbeat round trip: the connection is registered and announced (notices the set-up
/// caused may arrive before the answer and are skipped).
async fn settled(conn: &mut Conn) {
    conn.client
        .send_json(serde_json::json!({"type": "heartbeat"}))
        .await;
    conn.client.recv_until(|f| f["type"] == "heartbeat").await;
}

/// Reads `message` frames of one private conversation until seq `upto` and checks they are
/// exactly 1, 2, ... `upto` in order (more may follow; they are not read).
async fn expect_seqs_upto(conn: &mut Conn, upto: i64) {
    let mut got = Vec::new();
    let end = tokio::time::Instant::now() + DELIVERY_DEADLINE;
    while got.last().copied().unwrap_or(0) < upto {
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        let text = match conn.client.next_event(left).await {
            Some(ws::Event::Text(t)) => t,
            other => panic!(
                "{}: after seqs up to {:?} of {upto}: {other:?}",
                conn.label,
                got.last()
            ),
        };
        let f: Value = serde_json::from_str(&text).expect("json frame");
        if f["type"] != "message" {
            continue;
        }
        got.push(f["seq"].as_i64().unwrap_or(-1));
    }
    let want: Vec<i64> = (1..=got.len() as i64).collect();
    assert_eq!(
        got, want,
        "{}: every message once, in seq order, none missing",
        conn.label
    );
}

/// Sends `n` private messages, at most [`WINDOW`] unacked at a time, counting acks in
/// `acked` and the highest acked seq in `max_seq`, until `stop_sending`; returns when every
/// send is answered or the socket ends (the node went away).
async fn burst_and_count_acks(
    mut conn: Conn,
    to: i64,
    n: usize,
    acked: Arc<AtomicUsize>,
    max_seq: Arc<AtomicI64>,
    stop_sending: Arc<AtomicBool>,
) {
    const WINDOW: usize = 200;
    let mut sent = 0;
    let mut answered = 0;
    while answered < sent || (sent < n && !stop_sending.load(Ordering::SeqCst)) {
        while sent < n && sent - answered < WINDOW && !stop_sending.load(Ordering::SeqCst) {
            let frame = serde_json::json!({"type": "private", "id": format!("b-{sent}"),
                "to": to, "media": "text", "content": format!("burst {sent}")});
            if !conn.client.try_send_text(&frame.to_string()).await {
                return;
            }
            sent += 1;
        }
        let text = match conn.client.next_event(DELIVERY_DEADLINE).await {
            Some(ws::Event::Text(t)) => t,
            _ => return,
        };
        let f: Value = serde_json::from_str(&text).expect("json frame");
        match f["type"].as_str() {
            Some("ack") => {
                max_seq.fetch_max(f["seq"].as_i64().unwrap_or(0), Ordering::SeqCst);
                acked.fetch_add(1, Ordering::SeqCst);
                answered += 1;
            }
            // Refused during shutdown: not acked, so not expected anywhere.
            Some("error") => answered += 1,
            _ => {}
        }
    }
}

/// Item 1: a node stores and acks, then dies before announcing. Played exactly: a node outside
/// the cluster (sharing the database) stores the messages, so no peer ever hears of them; then
/// a cluster node is killed. The survivors must catch their connections up from storage.
async fn stored_but_unannounced_messages_arrive_when_a_peer_dies(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let mut c = Cluster::start(db.clone(), &Transport::Udp, 2).await;
    let outside = Server::start_on(db.clone(), &[]).await;
    let alice = user(&outside, "alice").await;
    let bob = user(&c.nodes[1], "bob").await;
    let mut b = Conn::open(&c.nodes[1], &bob, "bob@n1").await;
    settled(&mut b).await;
    let mut a = Conn::open(&outside, &alice, "alice@outside").await;
    let mut log: Vec<Sent> = Vec::new();
    for i in 0..20 {
        log.push(
            a.private(&format!("u-{i}"), bob.id, &format!("unannounced {i}"))
                .await,
        );
    }
    let (dead, _) = c.kill(0);
    c.wait_peer_gone(&dead).await;
    b.expect_exactly(&log).await;
}

/// Item 1, as it happens: SIGKILL in the middle of an acked burst; whatever the sender had
/// not broadcast yet still reaches the recipient on the other node.
async fn messages_acked_before_a_crash_reach_the_other_node(backend: Backend) {
    const N: usize = 600;
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let mut c = Cluster::start(db, &Transport::Udp, 2).await;
    let alice = user(&c.nodes[0], "alice").await;
    let bob = user(&c.nodes[1], "bob").await;
    let mut b = Conn::open(&c.nodes[1], &bob, "bob@n1").await;
    settled(&mut b).await;
    let a = Conn::open(&c.nodes[0], &alice, "alice@n0").await;
    let acked = Arc::new(AtomicUsize::new(0));
    let max_seq = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let burst = tokio::spawn(burst_and_count_acks(
        a,
        bob.id,
        N,
        acked.clone(),
        max_seq.clone(),
        stop.clone(),
    ));
    wait_for(DELIVERY_DEADLINE, "half the burst acked", || {
        let n = acked.load(Ordering::SeqCst);
        async move { (n >= N / 2).then_some(()) }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    c.kill(0);
    burst.await.expect("burst task");
    let upto = max_seq.load(Ordering::SeqCst);
    assert!(upto >= (N / 2) as i64, "acked up to seq {upto}");
    expect_seqs_upto(&mut b, upto).await;
}

/// Item 2: SIGTERM while a burst is being stored: every message acked during the drain is
/// announced before the node leaves (the peer timeout is long, so only the drain can deliver
/// it in time).
async fn sigterm_mid_burst_announces_every_acked_message(backend: Backend) {
    const N: usize = 2000;
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let extra = [("CHORUS__CLUSTER__PEER_TIMEOUT_MS", LONG_PEER_TIMEOUT)];
    let mut c = Cluster::start_with(db, &Transport::Udp, 2, &extra).await;
    let alice = user(&c.nodes[0], "alice").await;
    let bob = user(&c.nodes[1], "bob").await;
    let mut b = Conn::open(&c.nodes[1], &bob, "bob@n1").await;
    settled(&mut b).await;
    let a = Conn::open(&c.nodes[0], &alice, "alice@n0").await;
    let acked = Arc::new(AtomicUsize::new(0));
    let max_seq = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let burst = tokio::spawn(burst_and_count_acks(
        a,
        bob.id,
        N,
        acked.clone(),
        max_seq.clone(),
        stop.clone(),
    ));
    wait_for(DELIVERY_DEADLINE, "a tenth of the burst acked", || {
        let n = acked.load(Ordering::SeqCst);
        async move { (n >= N / 10).then_some(()) }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let status = c.nodes[0].terminate().await;
    assert!(status.success(), "SIGTERM exit status {status:?}");
    burst.await.expect("burst task");
    let upto = max_seq.load(Ordering::SeqCst);
    eprintln!(
        "acked {} of {N} (up to seq {upto}) before the node was gone",
        acked.load(Ordering::SeqCst)
    );
    expect_seqs_upto(&mut b, upto).await;
}

/// Whether `who` is online as node `server` sees it (through `viewer`'s eyes).
async fn online(server: &Server, viewer: &common::TestUser, who: i64) -> bool {
    let r = server.get(&format!("/api/users/{who}"), viewer.t()).await;
    r.expect(200);
    r.json()["online"]
        .as_bool()
        .unwrap_or_else(|| panic!("user without online: {}", r.text()))
}

/// Item 7: a node restarts with the same node id well within the peer timeout; its former
/// users must not stay online on the other nodes.
async fn restarted_node_drops_its_former_users_presence(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let extra = [("CHORUS__CLUSTER__PEER_TIMEOUT_MS", LONG_PEER_TIMEOUT)];
    let mut c = Cluster::start_with(db, &Transport::Udp, 2, &extra).await;
    let dave = user(&c.nodes[0], "dave").await;
    let carol = user(&c.nodes[1], "carol").await;
    ws::befriend(&c.nodes[1], &carol, &dave).await;
    let mut d = Conn::open(&c.nodes[0], &dave, "dave@n0").await;
    settled(&mut d).await;
    wait_for(DELIVERY_DEADLINE, "n1 to see dave online", || async {
        online(&c.nodes[1], &carol, dave.id).await.then_some(())
    })
    .await;
    let (id, _) = c.kill(0);
    drop(d);
    c.start_node(&id).await;
    // The survivor is now c.nodes[0].
    wait_for(
        DELIVERY_DEADLINE,
        "n1 to see dave offline after his node restarted",
        || async { (!online(&c.nodes[0], &carol, dave.id).await).then_some(()) },
    )
    .await;
    // And the restarted node is a peer again (it was heard, not timed out).
    c.wait_full_mesh().await;
}

/// A cluster member the test plays itself: it seals packets with the cluster's secret and
/// broadcasts them, so the test chooses numbers, order, epochs and clocks.
struct FakePeer<'a> {
    cluster: &'a Cluster,
    id: String,
    epoch: u64,
    /// Added to every packet's timestamp: a clock that is off.
    skew_ms: i64,
    /// The last control number used (heartbeats are numbered apart from events).
    control: std::cell::Cell<u64>,
    sock: tokio::net::UdpSocket,
}

impl<'a> FakePeer<'a> {
    /// Says hello (a heartbeat) and waits until every node lists it as a peer.
    async fn join(cluster: &'a Cluster, id: &str, epoch: u64, skew_ms: i64) -> FakePeer<'a> {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        sock.set_broadcast(true).expect("SO_BROADCAST");
        let peer = FakePeer {
            cluster,
            id: id.to_owned(),
            epoch,
            skew_ms,
            control: std::cell::Cell::new(0),
            sock,
        };
        peer.heartbeat(0).await;
        cluster.wait_full_mesh_with(id).await;
        peer
    }

    async fn heartbeat(&self, last: u64) {
        self.control.set(self.control.get() + 1);
        self.send(
            0,
            self.control.get(),
            serde_json::json!({"e": "heartbeat", "last": last}),
        )
        .await;
    }

    /// Sends event number `n`.
    async fn event(&self, n: u64, event: Value) {
        self.send(n, 0, event).await;
    }

    async fn send(&self, n: u64, control: u64, event: Value) {
        let c = self.cluster;
        let packet = c.seal(&serde_json::json!({
            "cluster": c.name, "node": self.id, "epoch": self.epoch, "n": n, "c": control,
            "ts": common::now_ms() + self.skew_ms, "event": event,
        }));
        self.sock
            .send_to(&packet, c.broadcast_addr())
            .await
            .expect("send");
    }

    /// Event number `n` is a typing notice to `to` from `from`; once `to`'s connection sees it,
    /// every earlier packet was handled (one receiver task, in order of arrival). Returns the
    /// frames that came before it.
    async fn barrier(&self, n: u64, from: i64, to: &mut Conn, conv: &str) -> Vec<Value> {
        self.event(
            n,
            serde_json::json!({"e": "typing", "from": from, "conversation": conv}),
        )
        .await;
        let (before, _) = to
            .client
            .recv_until(|f| f["type"] == "typing" && f["from"] == from)
            .await;
        before
    }
}

/// A one-node cluster with carol (connected) and dave (her contact), for the forged-peer tests.
async fn one_node_with_carol(
    backend: Backend,
    extra: &[(&str, &str)],
) -> Option<(Cluster, common::TestUser, common::TestUser, Conn)> {
    let db = TestDb::create(backend).await?;
    let c = Cluster::start_with(db, &Transport::Udp, 1, extra).await;
    let node = &c.nodes[0];
    let dave = user(node, "dave").await;
    let carol = user(node, "carol").await;
    ws::befriend(node, &carol, &dave).await;
    let mut cc = Conn::open(node, &carol, "carol@n0").await;
    settled(&mut cc).await;
    Some((c, carol, dave, cc))
}

/// Item 8: a peer's `presence` packets arrive out of order (number 1, "online", was lost and
/// comes back re-sent after number 2, "offline"): the newer state stands.
async fn a_late_presence_does_not_overwrite_a_newer_one(backend: Backend) {
    let extra = [("CHORUS__CLUSTER__PEER_TIMEOUT_MS", LONG_PEER_TIMEOUT)];
    let Some((c, carol, dave, mut cc)) = one_node_with_carol(backend, &extra).await else {
        return;
    };
    let node = &c.nodes[0];
    let peer = FakePeer::join(
        &c,
        &format!("fake-{}", &c.name[1..7]),
        common::now_ms() as u64,
        0,
    )
    .await;
    let presence = |here: bool| serde_json::json!({"e": "presence", "user": dave.id, "here": here, "notify": true});
    // Number 2 (newer: dave went away), then number 1 (older: dave came), re-sent late.
    peer.event(2, presence(false)).await;
    peer.event(1, presence(true)).await;
    let conv = ws::private_conv(carol.id, dave.id);
    peer.barrier(3, dave.id, &mut cc, &conv).await;
    assert!(
        !online(node, &carol, dave.id).await,
        "dave's newer presence (offline, packet 2) must stand over the late packet 1"
    );
}

/// Item 8 for `read`: a late packet with a lower read cursor is not passed on after a higher
/// one, so no connection sees a reader's "seen" move backwards.
async fn a_late_read_does_not_move_seen_backwards(backend: Backend) {
    let extra = [("CHORUS__CLUSTER__PEER_TIMEOUT_MS", LONG_PEER_TIMEOUT)];
    let Some((c, carol, dave, mut cc)) = one_node_with_carol(backend, &extra).await else {
        return;
    };
    let peer = FakePeer::join(
        &c,
        &format!("fake-{}", &c.name[1..7]),
        common::now_ms() as u64,
        0,
    )
    .await;
    let conv = ws::private_conv(carol.id, dave.id);
    let read = |seq: i64| serde_json::json!({"e": "read", "conversation": conv, "user": dave.id, "seq": seq});
    peer.event(2, read(5)).await;
    peer.event(1, read(3)).await;
    let before = peer.barrier(3, dave.id, &mut cc, &conv).await;
    let reads: Vec<i64> = before
        .iter()
        .filter(|f| f["type"] == "read")
        .map(|f| f["seq"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(
        reads,
        vec![5],
        "only the newer read reaches carol: {before:?}"
    );
}

/// Item 8 for `contact`: a late "removed" for two users who are contacts now is re-read from
/// storage, so it can only repeat the current state (added), never undo it.
async fn a_late_contact_repeats_the_current_state(backend: Backend) {
    let extra = [("CHORUS__CLUSTER__PEER_TIMEOUT_MS", LONG_PEER_TIMEOUT)];
    let Some((c, carol, dave, mut cc)) = one_node_with_carol(backend, &extra).await else {
        return;
    };
    let peer = FakePeer::join(
        &c,
        &format!("fake-{}", &c.name[1..7]),
        common::now_ms() as u64,
        0,
    )
    .await;
    peer.event(
        1,
        serde_json::json!({"e": "contact", "a": carol.id, "b": dave.id, "added": false}),
    )
    .await;
    let conv = ws::private_conv(carol.id, dave.id);
    let before = peer.barrier(2, dave.id, &mut cc, &conv).await;
    for f in before.iter().filter(|f| f["type"] == "contact") {
        assert_eq!(f["added"], true, "a late removal must not reach carol: {f}");
    }
    let contacts = c.nodes[0].get("/api/contacts", carol.t()).await;
    contacts.expect(200);
    assert!(
        contacts.text().contains(&format!("\"id\":{}", dave.id)),
        "dave is still carol's contact: {}",
        contacts.text()
    );
}

/// Item 8 for `member`: a late "left" for a member is re-read from storage: the other members
/// are told the current state (still a member), never the old one.
async fn a_late_member_repeats_the_current_state(backend: Backend) {
    let extra = [("CHORUS__CLUSTER__PEER_TIMEOUT_MS", LONG_PEER_TIMEOUT)];
    let Some((c, carol, dave, mut cc)) = one_node_with_carol(backend, &extra).await else {
        return;
    };
    let room = ws::community(&c.nodes[0], &carol, &[&dave]).await;
    settled(&mut cc).await;
    let peer = FakePeer::join(
        &c,
        &format!("fake-{}", &c.name[1..7]),
        common::now_ms() as u64,
        0,
    )
    .await;
    peer.event(
        1,
        serde_json::json!({"e": "member", "community": room, "user": dave.id, "joined": false}),
    )
    .await;
    let before = peer
        .barrier(2, dave.id, &mut cc, &format!("g:{room}"))
        .await;
    for f in before.iter().filter(|f| f["type"] == "member") {
        assert_eq!(
            f["joined"], true,
            "a late departure must not reach carol: {f}"
        );
    }
}

/// Clocks: a peer whose clock is ten minutes off (far past `max_skew_ms`) is still heard; and a
/// node that restarts with its clock behind its previous start (a lower epoch) is heard as a new
/// incarnation once the previous one has gone silent.
async fn peers_with_wrong_clocks_are_still_heard(backend: Backend) {
    let extra = [("CHORUS__CLUSTER__PEER_TIMEOUT_MS", "1500")];
    let Some((c, carol, dave, mut cc)) = one_node_with_carol(backend, &extra).await else {
        return;
    };
    let conv = ws::private_conv(carol.id, dave.id);
    let skewed = FakePeer::join(
        &c,
        &format!("skew-{}", &c.name[1..7]),
        common::now_ms() as u64,
        -600_000,
    )
    .await;
    skewed.barrier(1, dave.id, &mut cc, &conv).await;

    let id = format!("back-{}", &c.name[1..7]);
    let now = common::now_ms() as u64;
    let first = FakePeer::join(&c, &id, now, 0).await;
    first.barrier(1, dave.id, &mut cc, &conv).await;
    c.wait_peer_gone(&id).await;
    // The same node id, restarted with a clock one minute behind its previous start.
    let behind = FakePeer::join(&c, &id, now - 60_000, 0).await;
    behind.barrier(1, dave.id, &mut cc, &conv).await;
}

/// A peer announces a message without its body that this node cannot load (not in storage, as
/// if announced before it was stored): instead of skipping it, local connections catch up from
/// storage, which delivers a message stored but never announced.
async fn an_unloadable_reference_triggers_a_catch_up(backend: Backend) {
    let extra = [("CHORUS__CLUSTER__PEER_TIMEOUT_MS", LONG_PEER_TIMEOUT)];
    let db = match TestDb::create(backend).await {
        Some(db) => db,
        None => return,
    };
    let c = Cluster::start_with(Arc::clone(&db), &Transport::Udp, 1, &extra).await;
    let node = &c.nodes[0];
    let dave = user(node, "dave").await;
    let carol = user(node, "carol").await;
    ws::befriend(node, &carol, &dave).await;
    let mut cc = Conn::open(node, &carol, "carol@n0")
        .await
        .ignoring("presence")
        .ignoring("typing");
    settled(&mut cc).await;
    let mut dc = Conn::open(node, &dave, "dave@n0").await;
    settled(&mut dc).await;
    let conv = ws::private_conv(carol.id, dave.id);
    dc.private("first", carol.id, "first").await;
    let got = cc.messages(1).await;
    assert_eq!(got[0]["seq"], 1, "{got:?}");

    // Seq 2 stored behind the server's back: nobody announces it.
    let now = common::now_ms();
    db_exec(
        &db,
        &format!(
            "UPDATE conversations SET last_seq = 2 WHERE id = '{conv}';
             INSERT INTO messages (id, conversation_id, seq, sender_id, media, content, client_id, created_at)
             VALUES ('unannounced-2', '{conv}', 2, {}, 'text', 'stored, never announced', NULL, {now});",
            dave.id
        ),
    )
    .await;
    let peer = FakePeer::join(
        &c,
        &format!("fake-{}", &c.name[1..7]),
        common::now_ms() as u64,
        0,
    )
    .await;
    // A reference to seq 3, which storage does not have.
    peer.event(
        1,
        serde_json::json!({"e": "message", "conversation": conv, "seq": 3, "body": null}),
    )
    .await;
    let got = cc.messages(1).await;
    assert_eq!(
        (got[0]["seq"].as_i64(), got[0]["content"].as_str()),
        (Some(2), Some("stored, never announced")),
        "carol caught up from storage: {got:?}"
    );
}

/// An announcement that finds the cluster outbox full is not dropped silently: the sender burns
/// a packet number for it, the peer sees the gap, is told the packet is gone and catches its
/// connections up from storage. With a one-slot outbox most of a burst overflows; the recipient
/// on the other node still gets every acked message once, in order.
async fn announcements_lost_to_a_full_outbox_are_repaired(backend: Backend) {
    const N: usize = 400;
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let extra = [
        ("CHORUS__CLUSTER__OUTBOX", "1"),
        ("CHORUS__CLUSTER__PEER_TIMEOUT_MS", LONG_PEER_TIMEOUT),
    ];
    let c = Cluster::start_with(db, &Transport::Udp, 2, &extra).await;
    let alice = user(&c.nodes[0], "alice").await;
    let bob = user(&c.nodes[1], "bob").await;
    let mut b = Conn::open(&c.nodes[1], &bob, "bob@n1").await;
    settled(&mut b).await;
    let a = Conn::open(&c.nodes[0], &alice, "alice@n0").await;
    let acked = Arc::new(AtomicUsize::new(0));
    let max_seq = Arc::new(AtomicI64::new(0));
    let never = Arc::new(AtomicBool::new(false));
    burst_and_count_acks(a, bob.id, N, acked.clone(), max_seq, never).await;
    assert_eq!(acked.load(Ordering::SeqCst), N, "every send acked");
    expect_seqs_upto(&mut b, N as i64).await;
    // The path under test was taken: bob's node gave up on packets that were never sent.
    cluster::wait_metric(
        &c.nodes[1],
        "gaps repaired from storage on bob's node",
        "chorus_cluster_gaps_unrecovered_total",
        1.0,
    )
    .await;
}

/// Runs `sql` (one or more statements) on the test's database.
async fn db_exec(db: &TestDb, sql: &str) {
    use sea_orm::ConnectionTrait;
    let conn = sea_orm::Database::connect(&db.url)
        .await
        .unwrap_or_else(|e| panic!("connect {}: {e}", db.url));
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        conn.execute_unprepared(statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let _ = conn.close().await;
}
