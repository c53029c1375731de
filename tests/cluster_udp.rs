//! Three real `chorus` nodes joined by UDP broadcast on loopback (127.255.255.255, a port of
//! their own), sharing one database: cross-node delivery once and in order, a 1,000-message
//! group burst, forged and replayed packets refused (and counted), and a node killed with
//! SIGKILL whose users reconnect elsewhere and miss nothing.

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/ws.rs"]
mod ws;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cluster::{dropped, metric, user, wait_metric, Cluster, Conn, Sent, Transport};
use common::{Backend, TestDb};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
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

/// The JSON envelope of a Chorus packet (`CHR1` + 32-byte MAC + JSON), if it is one.
fn envelope(packet: &[u8]) -> Option<Value> {
    let body = packet.strip_prefix(b"CHR1")?.get(32..)?;
    serde_json::from_slice(body).ok()
}

/// Waits for the broadcast of the message event whose content is `content`.
async fn capture_message(sock: &UdpSocket, content: &str) -> (Vec<u8>, Value) {
    let end = Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0u8; 65536];
    let mut seen = 0;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let (len, _) = tokio::time::timeout(left, sock.recv_from(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!("no broadcast of the message {content:?} within 20s ({seen} other packets heard)")
            })
            .expect("recv");
        seen += 1;
        let packet = buf[..len].to_vec();
        if let Some(env) = envelope(&packet) {
            if env["event"]["e"] == "message" && env["event"]["body"]["content"] == content {
                return (packet, env);
            }
        }
    }
}

/// `CHR1` + HMAC-SHA256(key, body) + body: the packet format, sealed with any key.
fn seal(key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(body);
    let mut packet = b"CHR1".to_vec();
    packet.extend_from_slice(&mac.finalize().into_bytes());
    packet.extend_from_slice(body);
    packet
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
async fn forged_and_replayed_packets_change_nothing() {
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
    let (real, env) = capture_message(&sniff, "hello").await;
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
    let mut tampered = real.clone();
    let at = tampered
        .windows(5)
        .position(|w| w == b"hello")
        .expect("content in packet");
    tampered[at] = b'j';

    let inj = injector().await;
    let to = c.broadcast_addr();
    let packets: [(&str, Vec<u8>); 6] = [
        // Sealed with a wrong key: bad_mac.
        ("wrong key", seal(b"not the cluster secret", &forged_json)),
        // The magic and the JSON, no MAC at all: bad_mac (the first 32 bytes are no MAC).
        ("no mac", [b"CHR1".as_slice(), &forged_json].concat()),
        // A real packet with one byte of the content changed: bad_mac.
        ("tampered", tampered),
        // Not a Chorus packet: malformed.
        (
            "garbage",
            b"GET / HTTP/1.0\r\n\r\nnot a cluster packet".to_vec(),
        ),
        // Right secret, another cluster's name: foreign_cluster.
        (
            "foreign",
            seal(c.secret.as_bytes(), &serde_json::to_vec(&foreign).unwrap()),
        ),
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
        wait_metric(node, &what, &dropped("bad_mac"), before[i][0] + 3.0).await;
        wait_metric(node, &what, &dropped("malformed"), before[i][1] + 1.0).await;
        wait_metric(node, &what, &dropped("foreign_cluster"), before[i][2] + 1.0).await;
        if i > 0 {
            wait_metric(node, &what, &dropped("replayed"), before[i][3] + 1.0).await;
        }
    }

    // The next real message takes seq 2 and is the very next frame on both of bob's
    // connections: nothing forged or replayed reached any client.
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

    // Control: the same shape sealed with the real secret (a new "node") IS delivered, so the
    // packets above were refused for their MAC/name/number alone, not for their shape.
    let mut genuine = forged.clone();
    genuine["node"] = format!("{}-intruder", c.ids[0]).into();
    genuine["n"] = 1.into();
    genuine["ts"] = common::now_ms().into();
    genuine["event"]["seq"] = 3.into();
    genuine["event"]["body"]["content"] = "sealed with the real secret".into();
    inj.send_to(
        &seal(c.secret.as_bytes(), &serde_json::to_vec(&genuine).unwrap()),
        to,
    )
    .await
    .expect("send control");
    for conn in [&mut b, &mut b2] {
        let m = conn.messages(1).await;
        assert_eq!(
            m[0]["content"], "sealed with the real secret",
            "{}: the control packet (right MAC) should be delivered: {}",
            conn.label, m[0]
        );
    }
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
