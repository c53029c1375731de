//! Cluster helpers for the `cluster_*` suites: several real `chorus` processes on one database,
//! joined by UDP broadcast on loopback (127.255.255.255) or by Redis pub/sub, and the delivery
//! scenarios that every transport must pass.
//!
//! Every cluster gets its own UDP port (outside the kernel's ephemeral range), its own cluster
//! name and its own secret, so tests running in parallel never hear each other; and every wait
//! is for something observable (a `/readyz` peer list, a frame, a metric) with a deadline.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::ws::{self, Client};
use super::{wait_for, Server, TestDb, TestUser};

/// How long nodes may take to see each other (or to notice one is gone).
pub const PEER_DEADLINE: Duration = Duration::from_secs(30);
/// Heartbeat interval the test clusters use (the default is 1,000 ms).
pub const HEARTBEAT_MS: u64 = 200;
/// A peer silent this long is gone (short, so the node-loss test does not wait long).
pub const PEER_TIMEOUT_MS: u64 = 3000;

/// A cluster secret the node accepts: 64 random hex characters (as `openssl rand -hex 32`).
pub fn strong_secret() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{b}")
}

/// The packet key, derived as docs say: HKDF-SHA256(salt "chorus cluster {name}", secret),
/// expanded for "chorus cluster packet key v2". Written from the spec, not taken from the
/// server, so a test checks the wire format too.
fn packet_cipher(secret: &str, name: &str) -> chacha20poly1305::XChaCha20Poly1305 {
    use chacha20poly1305::KeyInit;
    let salt = format!("chorus cluster {name}");
    let kdf = hkdf::Hkdf::<sha2::Sha256>::new(Some(salt.as_bytes()), secret.as_bytes());
    let mut key = [0u8; 32];
    kdf.expand(b"chorus cluster packet key v2", &mut key)
        .expect("hkdf expand");
    chacha20poly1305::XChaCha20Poly1305::new(&key.into())
}

/// `CHR2` + random 24-byte nonce + XChaCha20-Poly1305(JSON envelope, aad = `CHR2`).
pub fn seal_packet(secret: &str, name: &str, envelope: &Value) -> Vec<u8> {
    use chacha20poly1305::aead::{Aead, Payload};
    let body = serde_json::to_vec(envelope).expect("json");
    let nonce: [u8; 24] = rand::random();
    let sealed = packet_cipher(secret, name)
        .encrypt(
            chacha20poly1305::XNonce::from_slice(&nonce),
            Payload {
                msg: &body,
                aad: b"CHR2",
            },
        )
        .expect("seal");
    [b"CHR2".as_slice(), &nonce, &sealed].concat()
}

/// The JSON envelope of a packet sealed for cluster `name` with `secret`, if it is one.
pub fn open_packet(secret: &str, name: &str, packet: &[u8]) -> Option<Value> {
    use chacha20poly1305::aead::{Aead, Payload};
    let rest = packet.strip_prefix(b"CHR2")?;
    if rest.len() < 24 + 16 {
        return None;
    }
    let (nonce, sealed) = rest.split_at(24);
    let body = packet_cipher(secret, name)
        .decrypt(
            chacha20poly1305::XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: b"CHR2",
            },
        )
        .ok()?;
    serde_json::from_slice(&body).ok()
}

impl Cluster {
    /// Opens a packet of this cluster (`None` if it is not one, or was tampered with).
    pub fn open(&self, packet: &[u8]) -> Option<Value> {
        open_packet(&self.secret, &self.name, packet)
    }

    /// Seals an envelope as a node of this cluster would.
    pub fn seal(&self, envelope: &Value) -> Vec<u8> {
        seal_packet(&self.secret, &self.name, envelope)
    }
}

/// How the nodes talk to each other.
#[derive(Clone, Debug)]
pub enum Transport {
    /// UDP broadcast on 127.255.255.255.
    Udp,
    /// Redis pub/sub at this URL.
    Redis(String),
}

/// `CHORUS_TEST_REDIS_URL`, or `None` (with a loud note) when unset; a panic under `CI`.
pub fn redis_url_or_skip() -> Option<String> {
    match std::env::var("CHORUS_TEST_REDIS_URL") {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "CI is set but CHORUS_TEST_REDIS_URL is not: the Redis cluster tests must \
                     run in CI (scripts/test.sh exports it when Redis is up)"
                );
            }
            eprintln!(
                "\n######## SKIPPED (no Redis): set CHORUS_TEST_REDIS_URL to run the \
                 redis-transport cluster tests ########\n"
            );
            None
        }
    }
}

/// A few nodes sharing one database and one cluster.
pub struct Cluster {
    /// The running nodes, in start order (a test may take one out to kill it).
    pub nodes: Vec<Server>,
    /// `CHORUS__CLUSTER__NODE_ID` of each node, same order as `nodes`.
    pub ids: Vec<String>,
    pub name: String,
    pub secret: String,
    /// The UDP port of the cluster (also set for Redis, where it is unused).
    pub port: u16,
    pub db: Arc<TestDb>,
    /// `(id, log)` of nodes killed by [`Cluster::kill`], shown if the test fails later.
    killed: Vec<(String, String)>,
    /// The environment every node gets (but its node id), for [`Cluster::start_node`].
    env: Vec<(String, String)>,
}

impl Cluster {
    /// Starts `n` nodes together on `db` and waits until every node lists all the others.
    pub async fn start(db: Arc<TestDb>, transport: &Transport, n: usize) -> Cluster {
        Self::start_with(db, transport, n, &[]).await
    }

    /// Like [`Cluster::start`], with extra `CHORUS__...` variables for every node (they win
    /// over the defaults above, e.g. a longer peer timeout).
    pub async fn start_with(
        db: Arc<TestDb>,
        transport: &Transport,
        n: usize,
        extra: &[(&str, &str)],
    ) -> Cluster {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("t{}", &tag[..12]);
        let secret = strong_secret();
        // Below the ephemeral range (32768+): a port an outgoing socket already holds cannot
        // be bound again.
        let port = 20000 + (rand::random::<u16>() % 12000);
        let mut env = vec![
            ("CHORUS__CLUSTER__ENABLED".to_string(), "true".to_string()),
            ("CHORUS__CLUSTER__SECRET".into(), secret.clone()),
            ("CHORUS__CLUSTER__NAME".into(), name.clone()),
            (
                "CHORUS__CLUSTER__BROADCAST".into(),
                format!("127.255.255.255:{port}"),
            ),
            ("CHORUS__CLUSTER__PORT".into(), port.to_string()),
            (
                "CHORUS__CLUSTER__HEARTBEAT_MS".into(),
                HEARTBEAT_MS.to_string(),
            ),
            (
                "CHORUS__CLUSTER__PEER_TIMEOUT_MS".into(),
                PEER_TIMEOUT_MS.to_string(),
            ),
        ];
        match transport {
            Transport::Udp => env.push(("CHORUS__CLUSTER__TRANSPORT".into(), "udp".into())),
            Transport::Redis(url) => {
                env.push(("CHORUS__CLUSTER__TRANSPORT".into(), "redis".into()));
                env.push(("CHORUS__REDIS__URL".into(), url.clone()));
            }
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let ids: Vec<String> = (0..n).map(|i| format!("n{i}-{}", &tag[..6])).collect();
        // Started together on purpose: migrations must be safe when nodes start at once.
        let starts = ids.iter().map(|id| {
            let mut vars = env.clone();
            vars.push(("CHORUS__CLUSTER__NODE_ID".into(), id.clone()));
            let db = db.clone();
            async move {
                let vars: Vec<(&str, &str)> =
                    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                Server::start_on(db, &vars).await
            }
        });
        let nodes = futures_util::future::join_all(starts).await;
        let cluster = Cluster {
            nodes,
            ids,
            name,
            secret,
            port,
            db,
            killed: Vec::new(),
            env,
        };
        cluster.wait_full_mesh().await;
        cluster
    }

    /// Starts a node with id `id` (a new one, or a killed one coming back with the same id)
    /// and adds it at the end of `nodes`; does not wait for the mesh.
    pub async fn start_node(&mut self, id: &str) {
        let mut vars = self.env.clone();
        vars.push(("CHORUS__CLUSTER__NODE_ID".into(), id.to_string()));
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let node = Server::start_on(self.db.clone(), &vars).await;
        self.nodes.push(node);
        self.ids.push(id.to_string());
    }

    /// Where the nodes broadcast.
    pub fn broadcast_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 255, 255, 255], self.port))
    }

    /// Waits until every running node lists every other running node in `/readyz`.
    pub async fn wait_full_mesh(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            let want: Vec<&str> = self
                .ids
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, id)| id.as_str())
                .collect();
            let me = &self.ids[i];
            wait_for(
                PEER_DEADLINE,
                &format!("/readyz of {me} to list peers {want:?}"),
                || async {
                    let peers = readyz_peers(node, me).await;
                    want.iter()
                        .all(|w| peers.iter().any(|p| p == w))
                        .then_some(())
                },
            )
            .await;
        }
    }

    /// Waits until every node lists `peer` (say, a member the test plays itself).
    pub async fn wait_full_mesh_with(&self, peer: &str) {
        for (i, node) in self.nodes.iter().enumerate() {
            let me = &self.ids[i];
            wait_for(
                PEER_DEADLINE,
                &format!("/readyz of {me} to list peer {peer}"),
                || async {
                    let peers = readyz_peers(node, me).await;
                    peers.iter().any(|p| p == peer).then_some(())
                },
            )
            .await;
        }
    }

    /// Waits until no running node lists `gone` among its peers any more.
    pub async fn wait_peer_gone(&self, gone: &str) {
        for (node, me) in self.nodes.iter().zip(&self.ids) {
            wait_for(
                PEER_DEADLINE,
                &format!("/readyz of {me} to drop the dead peer {gone}"),
                || async {
                    let peers = readyz_peers(node, me).await;
                    (!peers.iter().any(|p| p == gone)).then_some(())
                },
            )
            .await;
        }
    }

    /// Takes node `i` out of the cluster and kills it with SIGKILL (`Child::kill`, i.e.
    /// `kill -9`: no shutdown code runs); returns its id and what it had logged.
    pub fn kill(&mut self, i: usize) -> (String, String) {
        let node = self.nodes.remove(i);
        let id = self.ids.remove(i);
        let log = node.stderr();
        drop(node); // the harness's Drop sends SIGKILL and reaps the process
        self.killed.push((id.clone(), log.clone()));
        (id, log)
    }

    /// Stops node `i` with SIGTERM (a rolling restart's first half), waits for it to exit and
    /// takes it out of the cluster; returns its id and exit status.
    pub async fn terminate(&mut self, i: usize) -> (String, std::process::ExitStatus) {
        let status = self.nodes[i].terminate().await;
        let node = self.nodes.remove(i);
        let id = self.ids.remove(i);
        self.killed.push((id.clone(), node.stderr()));
        (id, status)
    }

    /// `(id, log)` of every node that was killed or stopped, oldest first.
    pub fn gone_logs(&self) -> &[(String, String)] {
        &self.killed
    }

    /// Every node's log, labelled, for failure reports.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .zip(&self.ids)
            .map(|(n, id)| format!("==== {id} ({}) ====\n{}", n.base, n.stderr()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The running nodes print their own logs (the harness); the killed ones cannot.
        if std::thread::panicking() {
            for (id, log) in &self.killed {
                eprintln!("---- log of the killed node {id} ----\n{log}\n---- end ----");
            }
        }
    }
}

/// `cluster.peers` of a node's `/readyz`, after checking it names the node itself.
pub async fn readyz_peers(node: &Server, me: &str) -> Vec<String> {
    let r = node.get("/readyz", None).await;
    r.expect(200);
    let body = r.json();
    assert_eq!(
        body["cluster"]["node"], me,
        "/readyz must name this node: {body}"
    );
    body["cluster"]["peers"]
        .as_array()
        .unwrap_or_else(|| panic!("/readyz without cluster.peers: {body}"))
        .iter()
        .map(|p| {
            p.as_str()
                .unwrap_or_else(|| panic!("peer is not a string in {body}"))
                .to_string()
        })
        .collect()
}

/// The value of one sample in `/metrics` (`name` with its labels, exactly as rendered, e.g.
/// `chorus_cluster_dropped_total{reason="bad_mac"}`); 0 when absent (a counter never touched).
pub async fn metric(node: &Server, sample: &str) -> f64 {
    let r = node.get("/metrics", None).await;
    r.expect(200);
    let text = r.text();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(sample) {
            if let Some(value) = rest.strip_prefix(' ') {
                return value
                    .trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("metric line {line:?}: {e}"));
            }
        }
    }
    0.0
}

/// `chorus_cluster_dropped_total{reason="..."}`
pub fn dropped(reason: &str) -> String {
    format!("chorus_cluster_dropped_total{{reason=\"{reason}\"}}")
}

/// Waits until `sample` on `node` reaches at least `at_least`; returns its value.
pub async fn wait_metric(node: &Server, what: &str, sample: &str, at_least: f64) -> f64 {
    wait_for(
        Duration::from_secs(20),
        &format!("{what}: {sample} >= {at_least}"),
        || async {
            let v = metric(node, sample).await;
            (v >= at_least).then_some(v)
        },
    )
    .await
}

/// What an ack said about a message this test sent: the expectation for every recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub conversation: String,
    pub seq: i64,
    pub from: i64,
    pub content: String,
    pub msg_id: String,
}

/// The `(conversation, seq)` key of a frame.
fn key(frame: &Value) -> (String, i64) {
    (
        frame["conversation"].as_str().unwrap_or("?").to_string(),
        frame["seq"].as_i64().unwrap_or(-1),
    )
}

/// One websocket connection of a user ([`Client`]), with a backlog of frames read while waiting
/// for acks and the frame types to skip when collecting messages.
pub struct Conn {
    pub client: Client,
    pub user: TestUser,
    pub label: String,
    inbox: VecDeque<Value>,
    /// Frame types skipped by [`Conn::messages`] (e.g. `read` receipts of other members).
    ignore: HashSet<String>,
}

impl Conn {
    /// Opens a connection. `contact` and `member` notices (friend lists and member lists
    /// changing, which the REST set-up of a test causes and the cluster may deliver late) are
    /// not messages and are skipped when collecting them.
    pub async fn open(server: &Server, user: &TestUser, label: &str) -> Conn {
        Conn {
            client: Client::connect(server, user, label).await,
            user: user.clone(),
            label: label.to_string(),
            inbox: VecDeque::new(),
            ignore: ["contact", "member"].map(String::from).into(),
        }
    }

    /// Skips frames of type `ty` when collecting messages.
    pub fn ignoring(mut self, ty: &str) -> Conn {
        self.ignore.insert(ty.to_string());
        self
    }

    /// The next frame not of an ignored type: from the backlog, else from the socket (within
    /// the ws deadline).
    pub async fn next(&mut self) -> Value {
        loop {
            let f = match self.inbox.pop_front() {
                Some(f) => f,
                None => self.client.recv().await,
            };
            if !self.ignore.contains(f["type"].as_str().unwrap_or("")) {
                return f;
            }
        }
    }

    /// Sends `frame` (which has an `id`) and reads until its ack; other frames are kept for
    /// later. An `error` frame fails the test.
    pub async fn send_acked(&mut self, frame: Value) -> Value {
        let id = frame["id"].as_str().expect("frame with id").to_string();
        self.client.send_json(frame.clone()).await;
        self.wait_ack(&id, &frame).await
    }

    async fn wait_ack(&mut self, id: &str, sent: &Value) -> Value {
        let (before, f) = self
            .client
            .recv_until(|f| matches!(f["type"].as_str(), Some("ack" | "error")))
            .await;
        self.inbox.extend(before);
        match f["type"].as_str() {
            Some("ack") if f["id"] == id => f,
            Some("ack") => panic!(
                "{}: ack for another id while waiting for {id}: {f}",
                self.label
            ),
            _ => panic!("{}: {sent} was refused: {f}", self.label),
        }
    }

    /// A private text message, acknowledged; the ack becomes a [`Sent`].
    pub async fn private(&mut self, id: &str, to: i64, content: &str) -> Sent {
        let ack = self.send_acked(ws::private_frame(id, to, content)).await;
        self.sent(&ack, content)
    }

    /// A group text message, acknowledged.
    pub async fn group(&mut self, id: &str, community: i64, content: &str) -> Sent {
        let ack = self
            .send_acked(ws::group_frame(id, community, content))
            .await;
        self.sent(&ack, content)
    }

    fn sent(&self, ack: &Value, content: &str) -> Sent {
        Sent {
            conversation: ack["conversation"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: ack without conversation: {ack}", self.label))
                .to_string(),
            seq: ack["seq"]
                .as_i64()
                .unwrap_or_else(|| panic!("{}: ack without seq: {ack}", self.label)),
            from: self.user.id,
            content: content.to_string(),
            msg_id: ack["msg_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: ack without msg_id: {ack}", self.label))
                .to_string(),
        }
    }

    /// The next `n` `message` frames; any other frame (but ignored types) fails the test.
    pub async fn messages(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let f = self.next().await;
            let ty = f["type"].as_str().unwrap_or("");
            if ty == "message" {
                out.push(f);
            } else if !self.ignore.contains(ty) {
                panic!(
                    "{}: unexpected {ty:?} frame after {} of {n} messages: {f}",
                    self.label,
                    out.len()
                );
            }
        }
        out
    }

    /// Reads exactly as many messages as `expected` holds and checks they are those messages:
    /// per conversation in seq order, each once, with the acked msg_id, sender and content.
    pub async fn expect_exactly(&mut self, expected: &[Sent]) {
        let got = self.messages(expected.len()).await;
        assert_stream(&self.label, &got, expected);
    }

    /// Sends a read receipt.
    pub async fn read(&mut self, conversation: &str, seq: i64) {
        self.client
            .send_json(json!({"type":"read","conversation":conversation,"seq":seq}))
            .await;
    }
}

/// What `user` should receive of `log` (the messages `participants` says are theirs) on one
/// connection: with `sender_conn` the connection that sent the user's own messages, which got
/// acks for them; any other connection of the user gets those as messages too.
pub fn expected_for(
    log: &[Sent],
    user: i64,
    participants: &dyn Fn(&Sent) -> bool,
    sender_conn: bool,
) -> Vec<Sent> {
    log.iter()
        .filter(|s| participants(s) && !(sender_conn && s.from == user))
        .cloned()
        .collect()
}

/// Checks that `got` (message frames, in arrival order) is `expected`: same set of
/// `(conversation, seq)`, each once, and within each conversation in strictly rising seq order.
pub fn assert_stream(label: &str, got: &[Value], expected: &[Sent]) {
    let mut by_conv: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for f in got {
        by_conv.entry(key(f).0).or_default().push(f);
    }
    let mut want: BTreeMap<String, Vec<&Sent>> = BTreeMap::new();
    for s in expected {
        want.entry(s.conversation.clone()).or_default().push(s);
    }
    for list in want.values_mut() {
        list.sort_by_key(|s| s.seq);
    }
    let mut problems = Vec::new();
    for (conv, frames) in &by_conv {
        let seqs: Vec<i64> = frames.iter().map(|f| key(f).1).collect();
        let mut seen = HashSet::new();
        let dups: Vec<i64> = seqs.iter().copied().filter(|s| !seen.insert(*s)).collect();
        if !dups.is_empty() {
            problems.push(format!("{conv}: duplicated seqs {dups:?}"));
        }
        if seqs.windows(2).any(|w| w[1] <= w[0]) {
            let bad: Vec<_> = seqs
                .windows(2)
                .filter(|w| w[1] <= w[0])
                .map(|w| (w[0], w[1]))
                .take(10)
                .collect();
            problems.push(format!("{conv}: out of order (prev, next) {bad:?}"));
        }
        if !want.contains_key(conv) {
            problems.push(format!("{conv}: unexpected conversation, seqs {seqs:?}"));
        }
    }
    for (conv, list) in &want {
        let frames = by_conv.get(conv).map(Vec::as_slice).unwrap_or(&[]);
        let got_seqs: HashSet<i64> = frames.iter().map(|f| key(f).1).collect();
        let missing: Vec<i64> = list
            .iter()
            .map(|s| s.seq)
            .filter(|s| !got_seqs.contains(s))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{conv}: missing {} seqs: {:?}",
                missing.len(),
                &missing[..missing.len().min(20)]
            ));
        }
        let want_seqs: HashSet<i64> = list.iter().map(|s| s.seq).collect();
        let extra: Vec<i64> = frames
            .iter()
            .map(|f| key(f).1)
            .filter(|s| !want_seqs.contains(s))
            .collect();
        if !extra.is_empty() {
            problems.push(format!("{conv}: unexpected seqs {extra:?}"));
        }
        // Content of the ones that are there.
        for s in list {
            if let Some(f) = frames.iter().find(|f| key(f).1 == s.seq) {
                if f["content"] != s.content.as_str()
                    || f["from"] != s.from
                    || f["msg_id"] != s.msg_id.as_str()
                {
                    problems.push(format!("{conv} seq {}: expected {s:?}, got {f}", s.seq));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{label}: delivery is wrong ({} messages expected, {} received):\n  {}",
        expected.len(),
        got.len(),
        problems.join("\n  ")
    );
}

/// Registers `name` on `server` (any node: they share the database).
pub async fn user(server: &Server, name: &str) -> TestUser {
    server.user(name).await
}

/// Creates a community owned by `owner` on `owner_node`, and joins each member on its node.
pub async fn community_across(
    owner_node: &Server,
    owner: &TestUser,
    members: &[(&Server, &TestUser)],
) -> i64 {
    let r = owner_node
        .post(
            "/api/communities",
            owner.t(),
            json!({"name": "cluster room"}),
        )
        .await;
    r.expect(201);
    let id = r.json()["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("community without id: {}", r.text()));
    for (node, m) in members {
        node.post_empty(&format!("/api/communities/{id}/members"), m.t())
            .await
            .expect(201);
    }
    id
}

/// Scenario (a): private and group messages between users on three different nodes (and a
/// second device of one user on yet another node) arrive once, in order, with the acked ids.
pub async fn private_and_group_across_nodes(c: &Cluster) {
    assert!(c.nodes.len() >= 3, "needs three nodes");
    let (na, nb, nc) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let alice = user(na, "alice").await;
    let bob = user(nb, "bob").await;
    let carol = user(nc, "carol").await;
    let g = community_across(na, &alice, &[(nb, &bob), (nc, &carol)]).await;
    let gconv = format!("g:{g}");

    let mut a = Conn::open(na, &alice, "alice@n0").await;
    let mut b = Conn::open(nb, &bob, "bob@n1").await;
    let mut b2 = Conn::open(nc, &bob, "bob(2nd device)@n2").await;
    let mut cc = Conn::open(nc, &carol, "carol@n2").await;

    let mut log = Vec::new();
    for i in 0..8 {
        log.push(
            a.private(&format!("a2b-{i}"), bob.id, &format!("alice to bob {i}"))
                .await,
        );
        log.push(
            b.private(&format!("b2a-{i}"), alice.id, &format!("bob to alice {i}"))
                .await,
        );
        log.push(
            cc.private(&format!("c2b-{i}"), bob.id, &format!("carol to bob {i}"))
                .await,
        );
        log.push(
            a.group(&format!("ga-{i}"), g, &format!("alice to all {i}"))
                .await,
        );
        log.push(
            b.group(&format!("gb-{i}"), g, &format!("bob to all {i}"))
                .await,
        );
        log.push(
            cc.group(&format!("gc-{i}"), g, &format!("carol to all {i}"))
                .await,
        );
    }
    // The acks themselves: per conversation, seq 1, 2, 3... in send order.
    let mut per_conv: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for s in &log {
        per_conv.entry(&s.conversation).or_default().push(s.seq);
    }
    for (conv, seqs) in &per_conv {
        let want: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(seqs, &want, "acked seqs of {conv} must count 1, 2, 3...");
    }

    let ab = ws::private_conv(alice.id, bob.id);
    let bc = ws::private_conv(bob.id, carol.id);
    let in_ab_or_g = |s: &Sent| s.conversation == ab || s.conversation == gconv;
    let bobs = |s: &Sent| s.conversation == ab || s.conversation == bc || s.conversation == gconv;
    let in_bc_or_g = |s: &Sent| s.conversation == bc || s.conversation == gconv;
    a.expect_exactly(&expected_for(&log, alice.id, &in_ab_or_g, true))
        .await;
    b.expect_exactly(&expected_for(&log, bob.id, &bobs, true))
        .await;
    // Bob's other device gets his own sends too.
    b2.expect_exactly(&expected_for(&log, bob.id, &bobs, false))
        .await;
    cc.expect_exactly(&expected_for(&log, carol.id, &in_bc_or_g, true))
        .await;

    // Nothing more is on its way: one last message per connection must be the very next frame
    // (a late duplicate of anything above would show up first).
    let last_g = cc.group("final-g", g, "final to all").await;
    let last_bc = b.private("final-bc", carol.id, "final bob to carol").await;
    a.expect_exactly(std::slice::from_ref(&last_g)).await;
    b.expect_exactly(std::slice::from_ref(&last_g)).await;
    b2.expect_exactly(&[last_g.clone(), last_bc.clone()]).await;
    cc.expect_exactly(std::slice::from_ref(&last_bc)).await;
}

/// Scenario (b): one sender, 1,000 group messages; members on every node and the sender's
/// second device on another node each get all of them once, seq 1..=1000 in order.
pub async fn thousand_group_messages(c: &Cluster) {
    const N: usize = 1000;
    const WINDOW: usize = 100;
    assert!(c.nodes.len() >= 3, "needs three nodes");
    let (na, nb, nc) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
    let sam = user(na, "sam").await;
    let m0 = user(na, "member0").await;
    let m1 = user(nb, "member1").await;
    let m2 = user(nc, "member2").await;
    let m3 = user(nc, "member3").await;
    let g = community_across(na, &sam, &[(na, &m0), (nb, &m1), (nc, &m2), (nc, &m3)]).await;
    let gconv = format!("g:{g}");

    let mut sender = Conn::open(na, &sam, "sam@n0").await;
    let readers = vec![
        Conn::open(nb, &sam, "sam(2nd device)@n1").await,
        Conn::open(na, &m0, "member0@n0").await,
        Conn::open(nb, &m1, "member1@n1").await,
        Conn::open(nc, &m2, "member2@n2").await,
        Conn::open(nc, &m3, "member3@n2").await,
    ];
    // Readers drain their sockets while the burst goes out.
    let tasks: Vec<_> = readers
        .into_iter()
        .map(|mut r| {
            tokio::spawn(async move {
                let got = r.messages(N).await;
                (r, got)
            })
        })
        .collect();

    let started = std::time::Instant::now();
    let mut log: Vec<Option<Sent>> = vec![None; N];
    let mut acked = 0;
    for i in 0..N {
        sender
            .client
            .group(&format!("burst-{i}"), g, &format!("burst {i}"))
            .await;
        while i + 1 - acked > WINDOW {
            take_ack(&mut sender, &mut log, &sam).await;
            acked += 1;
        }
    }
    while acked < N {
        take_ack(&mut sender, &mut log, &sam).await;
        acked += 1;
    }
    let log: Vec<Sent> = log
        .into_iter()
        .map(|s| s.expect("every send acked"))
        .collect();
    let seqs: Vec<i64> = log.iter().map(|s| s.seq).collect();
    assert_eq!(
        seqs,
        (1..=N as i64).collect::<Vec<_>>(),
        "burst-i must be stored as seq i+1 of {gconv}"
    );
    let mut done = Vec::new();
    for t in tasks {
        let (r, got) = t.await.expect("reader task");
        assert_stream(&r.label, &got, &log);
        // In arrival order too, not only per conversation (there is only one here).
        let arrival: Vec<i64> = got.iter().map(|f| key(f).1).collect();
        assert_eq!(arrival, seqs, "{}: arrival order", r.label);
        done.push(r);
    }
    eprintln!(
        "{N} group messages to {} connections on 3 nodes in {:?}",
        done.len(),
        started.elapsed()
    );
    // Nothing else is on its way.
    let last = sender.group("burst-end", g, "end of burst").await;
    assert_eq!(last.seq, N as i64 + 1);
    for r in &mut done {
        r.expect_exactly(std::slice::from_ref(&last)).await;
    }
}

async fn take_ack(sender: &mut Conn, log: &mut [Option<Sent>], who: &TestUser) {
    let mut f = sender.client.recv().await;
    // Notices the set-up caused may still be on their way through the cluster.
    while sender.ignore.contains(f["type"].as_str().unwrap_or("")) {
        f = sender.client.recv().await;
    }
    assert_eq!(
        f["type"], "ack",
        "{}: expected an ack, got {f}",
        sender.label
    );
    let id = f["id"].as_str().unwrap_or("");
    let i: usize = id
        .strip_prefix("burst-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("ack for an unknown id: {f}"));
    assert!(
        log[i].is_none(),
        "{}: second ack for {id}: {f}",
        sender.label
    );
    log[i] = Some(Sent {
        conversation: f["conversation"].as_str().unwrap_or("?").to_string(),
        seq: f["seq"].as_i64().unwrap_or(-1),
        from: who.id,
        content: format!("burst {i}"),
        msg_id: f["msg_id"].as_str().unwrap_or("?").to_string(),
    });
}
