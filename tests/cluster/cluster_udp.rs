//! Three real `chorus` nodes joined by UDP broadcast on loopback (127.255.255.255, a port of
//! their own), sharing one database: cross-node delivery once and in order, a 1,000-message
//! group burst, sealed packets that show nothing in clear, forged, tampered and replayed packets
//! refused (and counted), replayed re-send requests unanswered, and a node killed with
//! SIGKILL whose users reconnect elsewhere and miss nothing.

use crate::common::{self, cluster, ws};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cluster::{dropped, metric, user, wait_metric, Cluster, Conn, Sent, Transport};
use common::{Backend, TestDb};
use serde_json::Value;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// Three UDP nodes on a fresh database of `backend`; `None` when the backend is skipped.
async fn three_nodes(backend: Backend) -> Option<Cluster> {
    let db = TestDb::create(backend).await?;
    Some(Cluster::start(db, &Transport::Udp, 3).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_group_messages_cross_nodes_once_and_in_order() {
    let c = three_nodes(Backend::Sqlite).await.expect("SQLite");
    cluster::private_and_group_across_nodes(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_private_and_group_messages_cross_nodes_once_and_in_order() {
    // Skips loudly without CHORUS_TEST_POSTGRES_URL (a panic under CI: see TestDb::create).
    let Some(c) = three_nodes(Backend::Postgres).await else {
        return;
    };
    cluster::private_and_group_across_nodes(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_group_messages_reach_every_node_once_in_order() {
    let c = three_nodes(Backend::Sqlite).await.expect("SQLite");
    cluster::thousand_group_messages(&c).await;
}

/// A UDP socket on the cluster's broadcast address and port, sharing it with the nodes
/// (SO_REUSEADDR + SO_REUSEPORT: every socket on the port hears each broadcast).
fn sniffer(addr: SocketAddr) -> UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    s.set_reuse_address(true).expect("SO_REUSEADDR");
    s.set_reuse_port(true).expect("SO_REUSEPORT");
    s.set_nonblocking(true).expect("nonblocking");
    s.bind(&addr.into())
        .unwrap_or_else(|e| panic!("bind sniffer on {addr}: {e}"));
    UdpSocket::from_std(s.into()).expect("tokio socket")
}

/// A socket that may send to the broadcast address.
async fn injector() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind injector");
    s.set_broadcast(true).expect("SO_BROADCAST");
    s
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Reads packets from `sock` until one opens (with the cluster's key) to an envelope that
/// `wanted` accepts; every packet heard on the way must not show `clear` (a private text) in
/// clear. Returns that packet and its envelope.
async fn capture(
    c: &Cluster,
    sock: &UdpSocket,
    what: &str,
    clear: &[u8],
    wanted: impl Fn(&Value) -> bool,
) -> (Vec<u8>, Value) {
    let end = Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0u8; 65536];
    let mut seen = 0;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let (len, _) = tokio::time::timeout(left, sock.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!("no packet with {what} within 20s ({seen} other packets heard)")
            })
            .expect("recv");
        seen += 1;
        let packet = buf[..len].to_vec();
        assert!(
            !contains(&packet, clear),
            "a cluster packet shows {what} in clear: {}",
            String::from_utf8_lossy(&packet)
        );
        if let Some(env) = c.open(&packet) {
            if wanted(&env) {
                return (packet, env);
            }
        }
    }
}

/// Waits for the broadcast of the message event whose content is `content`.
async fn capture_message(c: &Cluster, sock: &UdpSocket, content: &str) -> (Vec<u8>, Value) {
    capture(
        c,
        sock,
        &format!("the message {content:?}"),
        content.as_bytes(),
        |env| env["event"]["e"] == "message" && env["event"]["body"]["content"] == content,
    )
    .await
}

/// The drop counters of one node.
async fn drops(node: &common::Server) -> [f64; 4] {
    [
        metric(node, &dropped("bad_mac")).await,
        metric(node, &dropped("malformed")).await,
        metric(node, &dropped("foreign_cluster")).await,
        metric(node, &dropped("replayed")).await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_packets_show_neither_private_messages_nor_token_hashes() {
    let db = TestDb::create(Backend::Sqlite).await.expect("SQLite");
    let c = Cluster::start(db, &Transport::Udp, 2).await;
    let (n0, n1) = (&c.nodes[0], &c.nodes[1]);
    let alice = user(n0, "alice").await;
    let bob = user(n1, "bob").await;
    let mut a = Conn::open(n0, &alice, "alice@n0").await;
    let mut b = Conn::open(n1, &bob, "bob@n1").await;

    // What anyone who binds the cluster port hears.
    let sniff = sniffer(c.broadcast_addr());
    let secret_text = format!("the door code is {}", uuid::Uuid::new_v4().simple());
    let sent = a.private("m-1", bob.id, &secret_text).await;
    let (packet, env) = capture_message(&c, &sniff, &secret_text).await;
    b.expect_exactly(std::slice::from_ref(&sent)).await;
    // The packet does carry the message (the cluster key opens it), yet shows none of it.
    assert_eq!(env["node"], c.ids[0].as_str(), "{env}");
    for clear in [
        b"door code".as_slice(),
        b"content",
        b"message",
        c.name.as_bytes(),
        c.ids[0].as_bytes(),
    ] {
        assert!(
            !contains(&packet, clear),
            "the packet shows {:?}: {}",
            String::from_utf8_lossy(clear),
            String::from_utf8_lossy(&packet)
        );
    }

    // A log-out on node 0 tells every node to close that session: the token's hash travels
    // sealed too.
    let token = n0.login("alice", common::PASSWORD).await;
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()));
    n0.delete("/api/sessions", Some(&token)).await.expect(204);
    let (_, env) = capture(
        &c,
        &sniff,
        "the revoked token's hash",
        hash.as_bytes(),
        |env| env["event"]["e"] == "session_revoked" && env["event"]["token_hash"] == hash.as_str(),
    )
    .await;
    assert_eq!(env["node"], c.ids[0].as_str(), "{env}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tampered_and_replayed_packets_change_nothing() {
    let c = three_nodes(Backend::Sqlite).await.expect("SQLite");
    let (n0, n1, n2) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let alice = user(n0, "alice").await;
    let bob = user(n1, "bob").await;
    let mut a = Conn::open(n0, &alice, "alice@n0").await;
    let mut b = Conn::open(n1, &bob, "bob@n1").await;
    let mut b2 = Conn::open(n2, &bob, "bob(2nd device)@n2").await;

    // A real packet, heard on the wire like any node hears it.
    let sniff = sniffer(c.broadcast_addr());
    let hello = a.private("m-1", bob.id, "hello").await;
    let (real, env) = capture_message(&c, &sniff, "hello").await;
    assert_eq!(env["cluster"], c.name.as_str(), "{env}");
    assert_eq!(env["node"], c.ids[0].as_str(), "{env}");
    assert_eq!(env["event"]["seq"], 1, "{env}");
    b.expect_exactly(std::slice::from_ref(&hello)).await;
    b2.expect_exactly(std::slice::from_ref(&hello)).await;

    let before = [drops(n0).await, drops(n1).await, drops(n2).await];

    // The next message of the conversation, as node 0 would announce it: right shape, new
    // packet number, new seq, fresh timestamp, other content.
    let mut forged = env.clone();
    forged["n"] = (env["n"].as_u64().expect("n") + 1000).into();
    forged["ts"] = common::now_ms().into();
    forged["event"]["seq"] = 2.into();
    forged["event"]["body"]["content"] = "FORGED".into();
    forged["event"]["body"]["id"] = uuid::Uuid::new_v4().to_string().into();
    let forged_json = serde_json::to_vec(&forged).expect("json");
    let mut foreign = forged.clone();
    foreign["cluster"] = format!("{}-other", c.name).into();
    // The real packet with one bit flipped: in the nonce, in the sealed body, in the tag.
    let flipped = |at: usize| {
        let mut p = real.clone();
        p[at] ^= 0x01;
        p
    };

    let inj = injector().await;
    let to = c.broadcast_addr();
    let packets: [(&str, Vec<u8>); 9] = [
        // Sealed with a wrong secret: bad_mac.
        (
            "wrong secret",
            cluster::seal_packet(&cluster::strong_secret(), &c.name, &forged),
        ),
        // Right secret, another cluster's name (so another key): bad_mac.
        (
            "other cluster's key",
            cluster::seal_packet(&c.secret, &format!("{}-other", c.name), &forged),
        ),
        // The magic and the JSON in clear, no nonce or tag at all: bad_mac.
        ("in clear", [b"CHR2".as_slice(), &forged_json].concat()),
        // The real packet with one bit changed anywhere: bad_mac.
        ("tampered nonce", flipped(10)),
        ("tampered body", flipped(real.len() / 2)),
        ("tampered tag", flipped(real.len() - 1)),
        // Not a Chorus packet: malformed.
        (
            "garbage",
            b"GET / HTTP/1.0\r\n\r\nnot a cluster packet".to_vec(),
        ),
        // Sealed with the right key but naming another cluster: foreign_cluster.
        ("foreign", c.seal(&foreign)),
        // The real packet again, byte for byte: replayed (node 0 sees its own: own).
        ("replay", real.clone()),
    ];
    for (what, p) in &packets {
        inj.send_to(p, to)
            .await
            .unwrap_or_else(|e| panic!("send {what}: {e}"));
    }

    for (i, node) in c.nodes.iter().enumerate() {
        let what = format!("node {}", c.ids[i]);
        wait_metric(node, &what, &dropped("bad_mac"), before[i][0] + 6.0).await;
        wait_metric(node, &what, &dropped("malformed"), before[i][1] + 1.0).await;
        wait_metric(node, &what, &dropped("foreign_cluster"), before[i][2] + 1.0).await;
        if i > 0 {
            wait_metric(node, &what, &dropped("replayed"), before[i][3] + 1.0).await;
        }
    }

    // The next real message takes seq 2 and is the very next frame on both of bob's
    // connections: nothing forged, tampered or replayed reached any client.
    let after = a.private("m-2", bob.id, "after the attack").await;
    assert_eq!(after.seq, 2, "{after:?}");
    b.expect_exactly(std::slice::from_ref(&after)).await;
    b2.expect_exactly(std::slice::from_ref(&after)).await;
    // History holds exactly the two real messages.
    let conv = ws::private_conv(alice.id, bob.id);
    let h = n2
        .get(&format!("/api/conversations/{conv}/messages"), bob.t())
        .await;
    h.expect(200);
    let body = h.json();
    let items = body
        .as_array()
        .unwrap_or_else(|| panic!("history is not an array: {body}"));
    let contents: Vec<&str> = items.iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(contents, ["hello", "after the attack"], "{body}");

    // Control: the same shape sealed with the real key (a new "node") IS delivered, so the
    // packets above were refused for their key/bytes/name/number alone, not for their shape.
    let mut genuine = forged.clone();
    genuine["node"] = format!("{}-intruder", c.ids[0]).into();
    genuine["n"] = 1.into();
    genuine["ts"] = common::now_ms().into();
    genuine["event"]["seq"] = 3.into();
    genuine["event"]["body"]["content"] = "sealed with the real key".into();
    inj.send_to(&c.seal(&genuine), to)
        .await
        .expect("send control");
    for conn in [&mut b, &mut b2] {
        let m = conn.messages(1).await;
        assert_eq!(
            m[0]["content"], "sealed with the real key",
            "{}: the control packet (right key) should be delivered: {}",
            conn.label, m[0]
        );
    }
}

/// A cluster member the test plays itself (it holds the secret): node id, epoch, its own
/// socket, and its control numbering.
struct Member {
    id: String,
    epoch: u64,
    sock: UdpSocket,
    next_control: u64,
}

impl Member {
    async fn new(c: &Cluster, name: &str) -> Member {
        Member {
            id: format!("{name}-{}", &c.name[1..7]),
            epoch: common::now_ms() as u64,
            sock: injector().await,
            next_control: 1,
        }
    }

    /// Seals a control event (for `to`, or every node) with the next control number.
    fn control(&mut self, c: &Cluster, to: Option<&str>, event: Value) -> Vec<u8> {
        let mut env = serde_json::json!({
            "cluster": c.name, "node": self.id, "epoch": self.epoch, "n": 0,
            "c": self.next_control, "ts": common::now_ms(), "event": event,
        });
        if let Some(to) = to {
            env["to"] = to.into();
        }
        self.next_control += 1;
        c.seal(&env)
    }

    async fn broadcast(&self, c: &Cluster, packet: &[u8]) {
        self.sock
            .send_to(packet, c.broadcast_addr())
            .await
            .expect("member broadcast");
    }

    /// The next packet from node `from` whose event is `e` (others are skipped).
    async fn hear(&self, c: &Cluster, from: &str, e: &str) -> (Vec<u8>, Value, SocketAddr) {
        let end = Instant::now() + Duration::from_secs(20);
        let mut buf = vec![0u8; 65536];
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let (len, addr) = tokio::time::timeout(left, self.sock.recv_from(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("{}: no {e} from {from} within 20s", self.id))
                .expect("recv");
            let packet = buf[..len].to_vec();
            if let Some(env) = c.open(&packet) {
                if env["node"] == from && env["event"]["e"] == e {
                    return (packet, env, addr);
                }
            }
        }
    }
}

/// Whatever arrives at `sock` within `quiet`: a node must send nothing there.
async fn assert_silent(sock: &UdpSocket, what: &str, quiet: Duration) {
    let mut buf = vec![0u8; 65536];
    if let Ok(Ok((len, from))) = tokio::time::timeout(quiet, sock.recv_from(&mut buf)).await {
        panic!("{what}: got a {len}-byte packet from {from}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_resend_requests_get_no_answer_and_move_no_address() {
    let db = TestDb::create(Backend::Sqlite).await.expect("SQLite");
    let c = Cluster::start(db, &Transport::Udp, 2).await;
    let (n0, n1) = (&c.nodes[0], &c.nodes[1]);
    let (id0, id1) = (c.ids[0].clone(), c.ids[1].clone());

    // Node 1 sends some numbered packets (presence and messages) it keeps for re-sending.
    let alice = user(n1, "alice").await;
    let bob = user(n0, "bob").await;
    let mut a = Conn::open(n1, &alice, "alice@n1").await;
    let mut b = Conn::open(n0, &bob, "bob@n0").await;
    let mut sent = Vec::new();
    for i in 0..10 {
        sent.push(
            a.private(&format!("m-{i}"), bob.id, &format!("m {i}"))
                .await,
        );
    }
    b.expect_exactly(&sent).await;

    // A member joins (a heartbeat from its socket S) and asks node 1 to re-send its packets:
    // the answer comes to S.
    let mut m = Member::new(&c, "member").await;
    let hb = m.control(&c, None, serde_json::json!({"e": "heartbeat", "last": 0}));
    m.broadcast(&c, &hb).await;
    c.wait_full_mesh_with(&m.id).await;
    let ask = m.control(
        &c,
        Some(&id1),
        serde_json::json!({"e": "resend", "from": 1, "to": 400}),
    );
    m.broadcast(&c, &ask).await;
    let (_, resent, _) = m.hear(&c, &id1, "message").await;
    assert!(resent["n"].as_u64().unwrap_or(0) >= 1, "{resent}");

    // Node 0 notices a gap in the member's numbering (packet 1, then a heartbeat saying 300
    // exist) and asks the member for them: a real resend request, captured at S.
    let presence = serde_json::json!({
        "cluster": c.name, "node": m.id, "epoch": m.epoch, "n": 1, "c": 0,
        "ts": common::now_ms(),
        "event": {"e": "presence", "user": 999_999_999, "here": false, "notify": false},
    });
    m.broadcast(&c, &c.seal(&presence)).await;
    let hb = m.control(&c, None, serde_json::json!({"e": "heartbeat", "last": 300}));
    m.broadcast(&c, &hb).await;
    let (node0_resend, env, _) = m.hear(&c, &id0, "resend").await;
    assert_eq!(env["to"], m.id.as_str(), "{env}");

    // An attacker at another address X replays both requests to every node.
    let x = injector().await;
    let before_replayed = metric(n1, &dropped("replayed")).await;
    let before_not_for_us = metric(n1, &dropped("not_for_us")).await;
    for p in [&ask, &node0_resend] {
        x.send_to(p, c.broadcast_addr()).await.expect("replay");
    }
    // Node 1 has read both (and refused them)...
    wait_metric(n1, "node 1", &dropped("replayed"), before_replayed + 1.0).await;
    wait_metric(
        n1,
        "node 1",
        &dropped("not_for_us"),
        before_not_for_us + 1.0,
    )
    .await;
    // ...and sends nothing to X (before the fix: up to 400 packets).
    assert_silent(&x, "the replaying address X", Duration::from_secs(2)).await;

    // The member's address is still S: its next (fresh) request is answered there, and
    // messages still flow between the nodes.
    // (Asking again for the one packet already heard: what is left of the first answer
    // cannot pass for it.)
    let k = resent["n"].as_u64().expect("n");
    let ask = m.control(
        &c,
        Some(&id1),
        serde_json::json!({"e": "resend", "from": k, "to": k}),
    );
    m.broadcast(&c, &ask).await;
    loop {
        let (_, again, _) = m.hear(&c, &id1, "message").await;
        if again["n"] == k {
            break;
        }
    }
    let later = a.private("m-later", bob.id, "still delivered").await;
    b.expect_exactly(std::slice::from_ref(&later)).await;
    assert_silent(&x, "the replaying address X", Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_users_reconnect_elsewhere_and_miss_nothing() {
    let mut c = three_nodes(Backend::Sqlite).await.expect("SQLite");
    let (n0, n1, n2) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let sam = user(n0, "sam").await;
    let gwen = user(n1, "gwen").await;
    let vic = user(n2, "vic").await;
    let vera = user(n2, "vera").await;
    let g = cluster::community_across(n0, &sam, &[(n1, &gwen), (n2, &vic), (n2, &vera)]).await;
    let gconv = format!("g:{g}");
    let pconv = ws::private_conv(sam.id, vic.id);

    let mut s = Conn::open(n0, &sam, "sam@n0").await;
    let mut gw = Conn::open(n1, &gwen, "gwen@n1").await.ignoring("read");
    let mut v = Conn::open(n2, &vic, "vic@n2").await.ignoring("read");
    let mut ve = Conn::open(n2, &vera, "vera@n2").await.ignoring("read");

    // Phase 1: everyone up.
    let mut p1 = Vec::new();
    for i in 0..5 {
        p1.push(
            s.private(&format!("p1-p{i}"), vic.id, &format!("before {i}"))
                .await,
        );
        p1.push(
            s.group(&format!("p1-g{i}"), g, &format!("all before {i}"))
                .await,
        );
    }
    let group_only = |log: &[Sent]| -> Vec<Sent> {
        log.iter()
            .filter(|m| m.conversation == gconv)
            .cloned()
            .collect()
    };
    v.expect_exactly(&p1).await;
    ve.expect_exactly(&group_only(&p1)).await;
    gw.expect_exactly(&group_only(&p1)).await;
    // They have read all of it; sam seeing the receipts (they travel through the cluster from
    // node 2) proves the cursors are stored before node 2 dies.
    v.read(&pconv, 5).await;
    v.read(&gconv, 5).await;
    ve.read(&gconv, 5).await;
    let mut receipts = Vec::new();
    while receipts.len() < 3 {
        let f = s.next().await;
        assert_eq!(f["type"], "read", "sam: expected read receipts, got {f}");
        receipts.push((
            f["conversation"].as_str().unwrap_or("?").to_string(),
            f["user"].as_i64().unwrap_or(-1),
            f["seq"].as_i64().unwrap_or(-1),
        ));
    }
    receipts.sort();
    let mut want = vec![
        (pconv.clone(), vic.id, 5),
        (gconv.clone(), vic.id, 5),
        (gconv.clone(), vera.id, 5),
    ];
    want.sort();
    assert_eq!(receipts, want, "read receipts seen by sam");

    // kill -9 node 2 (vic's and vera's node). Their sockets just break.
    let (dead, _log) = c.kill(2);
    // (Vera's read receipt may still be ahead of the break.)
    loop {
        match v.client.next_event(Duration::from_secs(20)).await {
            Some(ws::Event::Close(_) | ws::Event::End(_)) => break,
            Some(ws::Event::Text(t)) if t.contains(r#""type":"read""#) => continue,
            other => panic!("vic's connection should break with its node, got {other:?}"),
        }
    }
    drop(v);
    drop(ve);
    c.wait_peer_gone(&dead).await;
    let (n0, n1) = (&c.nodes[0], &c.nodes[1]);

    // Phase 2: sent while vic and vera are disconnected.
    let mut p2 = Vec::new();
    for i in 0..5 {
        p2.push(
            s.private(&format!("p2-p{i}"), vic.id, &format!("while away {i}"))
                .await,
        );
        p2.push(
            s.group(&format!("p2-g{i}"), g, &format!("all while away {i}"))
                .await,
        );
    }
    gw.expect_exactly(&group_only(&p2)).await;

    // They come back on the surviving nodes: exactly what they missed, in order, once.
    let mut v = Conn::open(n1, &vic, "vic@n1 (reconnected)")
        .await
        .ignoring("read");
    let mut ve = Conn::open(n0, &vera, "vera@n0 (reconnected)")
        .await
        .ignoring("read");
    v.expect_exactly(&p2).await;
    ve.expect_exactly(&group_only(&p2)).await;

    // Phase 3: live again, and nothing else is queued for anyone.
    let p3 = vec![
        s.private("p3-p", vic.id, "welcome back").await,
        s.group("p3-g", g, "all welcome back").await,
    ];
    v.expect_exactly(&p3).await;
    ve.expect_exactly(&group_only(&p3)).await;
    gw.expect_exactly(&group_only(&p3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_cluster_secrets_are_refused_at_start() {
    let guessable = "chorus".repeat(6);
    for (secret, says) in [
        // The secret of the report: accepted before, and brute-forced from one packet.
        ("s", "cluster.secret is too short (1 characters"),
        ("", "cluster.secret is empty"),
        ("secret-0123456789", "cluster.secret is too short"),
        (guessable.as_str(), "cluster.secret is too guessable"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = 20000 + (rand::random::<u16>() % 12000);
        let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_chorus"))
            .current_dir(dir.path())
            .env("CHORUS__SERVER__ADDR", "127.0.0.1:0")
            .env(
                "CHORUS__DATABASE__URL",
                format!("sqlite://{}/chorus.db?mode=rwc", dir.path().display()),
            )
            .env("CHORUS__UPLOADS__DIR", dir.path().join("uploads"))
            .env("CHORUS__CLUSTER__ENABLED", "true")
            .env("CHORUS__CLUSTER__SECRET", secret)
            .env(
                "CHORUS__CLUSTER__BROADCAST",
                format!("127.255.255.255:{port}"),
            )
            .env("CHORUS__CLUSTER__PORT", port.to_string())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .unwrap_or_else(|_| panic!("chorus is still running with cluster secret {secret:?}"))
            .expect("run chorus");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && !stdout.contains("listening on"),
            "secret {secret:?} was accepted: {stdout}{stderr}"
        );
        assert!(
            stderr.contains(says) && stderr.contains("openssl rand -base64 32"),
            "secret {secret:?}: stderr should say {says:?} and how to make a strong one:\n{stderr}"
        );
    }
}
