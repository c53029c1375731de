//! The chaos test (issue 8): three `chorus` nodes on PostgreSQL with Redis presence, many
//! clients on random nodes sending private and group messages, while a seeded schedule kills
//! nodes (SIGKILL), stops them (SIGTERM, a rolling restart), restarts them (same node id or a
//! new one), pauses Redis (SIGSTOP, then SIGCONT) and iptables drops a share of all UDP
//! datagrams. At the end every acknowledged message has reached every recipient once and in
//! seq order, no send was refused but by a node going down, and presence matches who is
//! connected. It prints a summary line with the counts.
//!
//! How: like `cluster_netns.rs`, the outer test makes a network namespace and re-runs this
//! binary inside it (`tests/common/netns.rs`). The host's PostgreSQL and Redis are not
//! reachable from there, so the inner run starts its own: a throw-away PostgreSQL cluster
//! (`initdb` into a temp dir as the `postgres` OS user, trust auth, `fsync=off`) and a
//! `redis-server` child it can SIGSTOP without disturbing anyone. Nodes join by UDP broadcast on
//! the namespace's loopback (127.255.255.255).
//!
//! The clients behave like careful real clients: each send has a client id and is sent again
//! (same id) after an `unavailable` error or a reconnect until it is acked; a client whose node
//! goes away reconnects to another live node and sends `sync` with its cursors; `read` frames
//! keep the user's read cursor at what the client holds. What counts as wrong:
//! - **duplicated**: a `(conversation, seq)` twice on one connection, or again on a later
//!   connection although the client's `read` cursor for it was confirmed stored before that
//!   connection opened (replay after the stored read cursor is the protocol, and is counted
//!   separately as "re-sent on reconnect");
//! - **reordered**: a message below one already received on the same connection;
//! - **lost**: a stored message (every acked one is) that a participant does not hold when the
//!   deadline passes;
//! - **refused**: any `error` frame but `unavailable` from a node that was being stopped;
//! - a connection closed or dropped by a node that was up (but as too slow, 1008: allowed and
//!   counted, the client catches up on reconnect). Redis is paused longer than the heartbeat
//!   timeout, so a connection whose frames wait on a hung Redis is closed 4408 and shows here.
//!
//! Heartbeat answer times are reported, not judged: after a peer dies, leaves or joins, every
//! connection on the other nodes catches up from storage before it answers anything else, and
//! with 40 clients on two cores that takes seconds (heartbeats answered later than
//! [`SLOW_HEARTBEAT`] are listed as `chaos note:` lines).
//!
//! Each node fault comes after a one-second burst (many sends in flight when it hits), and some
//! are checkpoints: sending stops at the fault, and everything acked by then must reach every
//! participant with no later message to reveal a gap; the end is one too.
//!
//! Knobs (environment, read by the outer run and passed in): `CHORUS_CHAOS_SEED` (replays a
//! schedule; printed at the start), `CHORUS_CHAOS_SECS` (length of the chaos phase, default 30),
//! `CHORUS_CHAOS_CLIENTS` (default 16), `CHORUS_CHAOS_LOSS` (UDP loss, default 0.15),
//! `CHORUS_CHAOS_REDIS_PAUSE` (`0` to leave Redis alone), `CHORUS_TEST_BIN` (another build of
//! the server, say an older commit's). `make chaos` is the long form.
//!
//! Needs root, `ip`, `iptables`, PostgreSQL's server binaries and `redis-server`: without them
//! the test prints a loud warning and skips, except under `CI`, where it fails.

use crate::common::{self, cluster, netns};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use cluster::{Cluster, Transport};
use common::{wait_for, TestDb, TestUser};
use netns::Netns;

/// The inner test's name (in this module: [`netns::test_name`] makes the full one).
const INNER: &str = "chaos_inside_namespace";
/// Sends a client may have unacknowledged at once.
const WINDOW: usize = 3;
/// The same during a burst (just before a node fault): many sends in flight when it hits.
const BURST_WINDOW: usize = 32;
/// How long a burst runs before its fault.
const BURST: Duration = Duration::from_millis(1000);
/// How long every pending send may take to be acked once the chaos is over.
const ACK_DEADLINE: Duration = Duration::from_secs(60);
/// How long every participant may take to hold every stored message once all are acked.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);
/// How long presence may take to match who is connected (the Redis TTL is
/// [`HEARTBEAT_TIMEOUT_SECS`]: entries of killed nodes age out within it).
const PRESENCE_DEADLINE: Duration = Duration::from_secs(40);
/// The nodes' heartbeat timeout, which is also the TTL of presence entries in Redis.
const HEARTBEAT_TIMEOUT_SECS: u64 = 9;
/// Heartbeats answered later than this (after a connection's replay) are listed in the output.
const SLOW_HEARTBEAT: Duration = Duration::from_secs(5);
/// One websocket handshake or frame write.
const IO_DEADLINE: Duration = Duration::from_secs(5);

/// What a run does, from the environment (see the top of the file).
#[derive(Clone, Debug)]
struct Plan {
    seed: u64,
    secs: u64,
    clients: usize,
    loss: String,
    redis_pause: bool,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
        _ => default,
    }
}

impl Plan {
    fn from_env() -> Plan {
        Plan {
            seed: env_or("CHORUS_CHAOS_SEED", rand::random::<u64>() % 1_000_000_000),
            secs: env_or("CHORUS_CHAOS_SECS", 30),
            clients: env_or("CHORUS_CHAOS_CLIENTS", 16),
            loss: env_or("CHORUS_CHAOS_LOSS", "0.15".to_string()),
            redis_pause: env_or::<u8>("CHORUS_CHAOS_REDIS_PAUSE", 1) != 0,
        }
    }

    /// The environment that gives the inner run this very plan.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CHORUS_CHAOS_SEED", self.seed.to_string()),
            ("CHORUS_CHAOS_SECS", self.secs.to_string()),
            ("CHORUS_CHAOS_CLIENTS", self.clients.to_string()),
            ("CHORUS_CHAOS_LOSS", self.loss.clone()),
            (
                "CHORUS_CHAOS_REDIS_PAUSE",
                u8::from(self.redis_pause).to_string(),
            ),
        ]
    }

    fn replay(&self) -> String {
        let env: Vec<String> = self.env().iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "{} cargo test --test cluster -- chaos:: --nocapture",
            env.join(" ")
        )
    }
}

/// Where PostgreSQL's server binaries are: `CHORUS_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/*/bin`, else the directory `initdb` on `PATH` resolves to.
fn pg_bin_dir() -> Option<PathBuf> {
    let has_all = |d: &Path| {
        ["initdb", "postgres", "pg_isready"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(d) = std::env::var_os("CHORUS_PG_BINDIR") {
        let d = PathBuf::from(d);
        return has_all(&d).then_some(d);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_all(d))
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return Some(d);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()?;
    let path = std::fs::canonicalize(String::from_utf8_lossy(&out.stdout).trim()).ok()?;
    let dir = path.parent()?.to_path_buf();
    has_all(&dir).then_some(dir)
}

/// `(uid, gid)` of an OS user.
fn os_user(name: &str) -> Option<(u32, u32)> {
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam with a valid C string; the result is read at once, before any other
    // call that could reuse its static buffer.
    unsafe {
        let pw = libc::getpwnam(cname.as_ptr());
        if pw.is_null() {
            None
        } else {
            Some(((*pw).pw_uid, (*pw).pw_gid))
        }
    }
}

/// Why this test cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    if let Some(why) = netns::unavailable(&[["redis-server", "--version"]]) {
        return Some(why);
    }
    if pg_bin_dir().is_none() {
        return Some(
            "PostgreSQL's server binaries (initdb, postgres, pg_isready) are not found \
             (set CHORUS_PG_BINDIR)"
                .into(),
        );
    }
    if os_user("postgres").is_none() {
        return Some("there is no `postgres` OS user to run initdb and postgres as".into());
    }
    None
}

#[test]
fn chaos_nodes_die_redis_hangs_udp_drops_and_nothing_is_lost() {
    if let Some(why) = unavailable() {
        netns::skip_or_fail(
            "the chaos test",
            &why,
            "It needs root, `ip`, `iptables`, PostgreSQL's server binaries and `redis-server`.",
        );
        return;
    }
    let plan = Plan::from_env();
    eprintln!(
        "chaos: plan {plan:?}\nchaos: replay with: {}",
        plan.replay()
    );
    let deadline = Duration::from_secs(plan.secs + 300);
    let ns = Netns::create();
    let inner = ns.run_inner(
        &netns::test_name(module_path!(), INNER),
        &plan.env(),
        &std::env::temp_dir(),
        deadline,
    );
    // The progress and summary lines, then (on failure) the end of everything.
    let tagged: Vec<&str> = inner
        .output
        .lines()
        .filter(|l| l.starts_with("chaos"))
        .collect();
    eprintln!("---- inner run in {} ----\n{}", ns.name, tagged.join("\n"));
    let ok = inner.status.is_some_and(|s| s.success())
        && inner.output.contains("test result: ok. 1 passed");
    if ok {
        let _ = std::fs::remove_file(&inner.log);
    } else {
        let lines: Vec<&str> = inner.output.lines().collect();
        let tail = &lines[lines.len().saturating_sub(200)..];
        eprintln!(
            "---- last {} lines of the inner run (all of it: {}) ----\n{}",
            tail.len(),
            inner.log.display(),
            tail.join("\n")
        );
    }
    let status = inner
        .status
        .unwrap_or_else(|| panic!("the inner run hung for {deadline:?}; seed {}", plan.seed));
    assert!(
        status.success(),
        "the chaos run failed ({status:?}); seed {}; replay: {}",
        plan.seed,
        plan.replay()
    );
    // libtest exits 0 when the filter matches nothing: make sure the inner test really ran.
    assert!(
        inner.output.contains("test result: ok. 1 passed"),
        "the inner test {INNER} did not run"
    );
    drop(ns);
}

/// A PostgreSQL cluster of the test's own (inside the namespace), gone when dropped.
struct Postgres {
    child: Child,
    dir: tempfile::TempDir,
}

impl Postgres {
    const PORT: u16 = 5432;

    fn start() -> Postgres {
        let bin = pg_bin_dir().expect("PostgreSQL binaries");
        let (uid, gid) = os_user("postgres").expect("postgres OS user");
        let dir = tempfile::Builder::new()
            .prefix("chorus-chaos-pg-")
            .tempdir()
            .expect("temp dir");
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown pg dir");
        let data = dir.path().join("data");
        let out = Command::new(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .current_dir(dir.path())
            .uid(uid)
            .gid(gid)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let log = std::fs::File::create(dir.path().join("postgres.log")).expect("pg log");
        std::os::unix::fs::chown(dir.path().join("postgres.log"), Some(uid), Some(gid))
            .expect("chown pg log");
        let child = Command::new(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .args(["-p", &Self::PORT.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=300"])
            // A test's throw-away data: durability costs time and proves nothing here.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .current_dir(dir.path())
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("dup log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start postgres");
        let pg = Postgres { child, dir };
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &Self::PORT.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < end,
                "PostgreSQL did not get ready within 60 s:\n{}",
                pg.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", Self::PORT)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown; the data is thrown away anyway.
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGQUIT) };
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` of the test's own, so it can be paused (SIGSTOP) without disturbing others.
struct Redis {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Redis {
    const PORT: u16 = 6379;

    fn start() -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("chorus-chaos-redis-")
            .tempdir()
            .expect("temp dir");
        let child = Command::new("redis-server")
            .args(["--port", &Self::PORT.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let redis = Redis { child, _dir: dir };
        let end = Instant::now() + Duration::from_secs(30);
        while !redis.pong() {
            assert!(Instant::now() < end, "redis-server did not answer PING");
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    fn pong(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", Self::PORT)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", Self::PORT)
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: signalling our own child, not yet reaped.
        let r = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(r, 0, "signal {sig} to redis-server failed");
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the nodes of the cluster are doing, as the clients see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeState {
    Up,
    /// SIGTERM sent: `unavailable` from it is expected.
    Stopping,
    Down,
}

/// One incarnation of a node (a restart adds a new one).
#[derive(Clone, Debug)]
struct Slot {
    id: String,
    addr: String,
    state: NodeState,
}

type Slots = Arc<Mutex<Vec<Slot>>>;

/// Controls every client at once.
struct Ctl {
    /// New sends are made while set.
    sending: AtomicBool,
    /// Clients to take offline (and keep offline) at the end, for the presence check.
    offline: Vec<AtomicBool>,
    /// Every client task ends when set.
    stop: AtomicBool,
    /// Set during a burst (see [`BURST_WINDOW`]).
    burst: AtomicBool,
    /// Set while Redis is stopped (SIGSTOP).
    redis_paused: AtomicBool,
    started: Instant,
}

impl Ctl {
    fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// Prints a progress line (tagged, so the outer run shows it).
macro_rules! say {
    ($ctl:expr, $($arg:tt)*) => {
        eprintln!("chaos [{:>6.1}s] {}", $ctl.secs(), format!($($arg)*))
    };
}

/// An acked send, as its ack said.
#[derive(Clone, Debug)]
struct Acked {
    id: String,
    conversation: String,
    seq: i64,
    msg_id: String,
}

/// A send not acked yet: the frame to send again and when (after an `unavailable`).
#[derive(Clone, Debug)]
struct Pending {
    text: String,
    retry_at: Option<Instant>,
}

/// Everything one client observed; shared with the checks at the end.
#[derive(Default)]
struct Record {
    /// conversation → seq → msg_id: every message this client holds (received or its own ack).
    held: HashMap<String, BTreeMap<i64, String>>,
    /// By client id, in send order.
    pending: BTreeMap<u64, (String, Pending)>,
    acked: Vec<Acked>,
    acked_by_id: HashMap<String, Acked>,
    /// The read cursor confirmed stored (a heartbeat after the `read` came back).
    read_confirmed: HashMap<String, i64>,
    sends: u64,
    connects: u64,
    connected: bool,
    duplicated: u64,
    reordered: u64,
    redelivered: u64,
    refused_expected: u64,
    refused_unexpected: u64,
    resent: u64,
    /// Connections a node closed (or dropped) while it was up and well.
    unexpected_closes: u64,
    /// Connections closed as too slow (1008): allowed, they catch up on reconnect.
    slow_closed: u64,
    /// Slowest answer to a heartbeat, in ms: frames wait that long behind whatever the node
    /// does for the frames before it (a hung Redis must not stall them).
    slowest_heartbeat_ms: u64,
    /// The same, for heartbeats sent while Redis was paused.
    slowest_heartbeat_redis_paused_ms: u64,
    /// The first few answered later than [`SLOW_HEARTBEAT`], described.
    slow_heartbeats: Vec<String>,
    problems: Vec<String>,
}

impl Record {
    fn problem(&mut self, p: String) {
        if self.problems.len() < 50 {
            self.problems.push(p);
        }
    }

    /// The highest seq of `conversation` this client holds without a gap below it.
    fn cursor(&self, conversation: &str) -> i64 {
        let mut n = 0;
        if let Some(seqs) = self.held.get(conversation) {
            for s in seqs.keys() {
                if *s == n + 1 {
                    n = *s;
                } else if *s > n + 1 {
                    break;
                }
            }
        }
        n
    }

    /// Records that `seq` of `conversation` is `msg_id`; a different id for a held seq is a
    /// problem (two messages claiming one seq).
    fn hold(&mut self, label: &str, conversation: &str, seq: i64, msg_id: &str) {
        let prev = self
            .held
            .entry(conversation.to_string())
            .or_default()
            .insert(seq, msg_id.to_string());
        if let Some(prev) = prev {
            if prev != msg_id {
                self.problem(format!(
                    "{label}: {conversation} seq {seq} was {prev}, now {msg_id}"
                ));
            }
        }
    }
}

/// A client: one user with one device.
#[derive(Clone)]
struct Spec {
    index: usize,
    user: TestUser,
    label: String,
    groups: Vec<i64>,
    others: Vec<i64>,
}

/// An outstanding heartbeat: the reads sent before it, when it went, whether Redis was paused.
type Heartbeat = (Vec<(String, i64)>, Instant, bool, u64);

/// What one connection has seen (the rules for duplicates and order are per connection).
struct Conn {
    slot: Slot,
    seen: HashSet<(String, i64)>,
    last: HashMap<String, i64>,
    /// `read_confirmed` when this connection opened: a message at or below it that the client
    /// already holds must not come again.
    floor: HashMap<String, i64>,
    /// The reads sent before each outstanding heartbeat (and when it was sent, and whether
    /// Redis was paused then), oldest first.
    heartbeats: VecDeque<Heartbeat>,
    reads_sent: HashMap<String, i64>,
    unconfirmed_reads: Vec<(String, i64)>,
    /// Heartbeats answered on this connection.
    answered: u64,
    /// Frames received on this connection.
    frames: u64,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send_text(ws: &mut Ws, text: String) -> bool {
    matches!(
        tokio::time::timeout(IO_DEADLINE, ws.send(Message::Text(text))).await,
        Ok(Ok(()))
    )
}

/// Runs one client until [`Ctl::stop`]: connect to a random live node, send, read, and
/// reconnect elsewhere whenever the connection ends.
async fn client(spec: Spec, rec: Arc<Mutex<Record>>, slots: Slots, ctl: Arc<Ctl>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next_id: u64 = 0;
    while !ctl.stop.load(Ordering::SeqCst) {
        if ctl.offline[spec.index].load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let up: Vec<Slot> = slots
            .lock()
            .expect("slots")
            .iter()
            .filter(|s| s.state == NodeState::Up)
            .cloned()
            .collect();
        let Some(slot) = up.choose(&mut rng).cloned() else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let url = format!("ws://{}/chat?token={}", slot.addr, spec.user.token);
        let ws =
            match tokio::time::timeout(IO_DEADLINE, tokio_tungstenite::connect_async(url)).await {
                Ok(Ok((ws, _))) => ws,
                _ => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
        connection(&spec, &rec, &ctl, &mut rng, &mut next_id, slot, ws, &slots).await;
        rec.lock().expect("record").connected = false;
    }
}

/// One connection's life; returns when it ends (or the client is told to go offline).
#[allow(clippy::too_many_arguments)]
async fn connection(
    spec: &Spec,
    rec: &Arc<Mutex<Record>>,
    ctl: &Ctl,
    rng: &mut StdRng,
    next_id: &mut u64,
    slot: Slot,
    mut ws: Ws,
    slots: &Slots,
) {
    let mut conn = Conn {
        slot,
        seen: HashSet::new(),
        last: HashMap::new(),
        floor: HashMap::new(),
        heartbeats: VecDeque::new(),
        reads_sent: HashMap::new(),
        unconfirmed_reads: Vec::new(),
        answered: 0,
        frames: 0,
    };
    // Cursors for `sync`, and what to send again.
    let (sync, resend) = {
        let mut r = rec.lock().expect("record");
        r.connects += 1;
        r.connected = true;
        conn.floor = r.read_confirmed.clone();
        let after: serde_json::Map<String, Value> = r
            .held
            .keys()
            .map(|c| (c.clone(), json!(r.cursor(c))))
            .collect();
        let resend: Vec<String> = r.pending.values().map(|(_, p)| p.text.clone()).collect();
        r.resent += resend.len() as u64;
        for (_, p) in r.pending.values_mut() {
            p.retry_at = None;
        }
        (after, resend)
    };
    if !sync.is_empty()
        && !send_text(&mut ws, json!({"type":"sync","after":sync}).to_string()).await
    {
        return;
    }
    for text in resend {
        if !send_text(&mut ws, text).await {
            return;
        }
    }
    let mut next_send = tokio::time::Instant::now() + pause(rng, ctl);
    let mut tick = tokio::time::interval(Duration::from_millis(1000));
    loop {
        if ctl.stop.load(Ordering::SeqCst) || ctl.offline[spec.index].load(Ordering::SeqCst) {
            let _ = tokio::time::timeout(IO_DEADLINE, ws.close(None)).await;
            // Until the server's close frame, so its presence change is done when we say so.
            let _ = tokio::time::timeout(IO_DEADLINE, async {
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
            return;
        }
        tokio::select! {
            next = ws.next() => {
                let ended = match next {
                    Some(Ok(Message::Text(text))) => {
                        on_frame(spec, rec, &mut conn, &text, slots, ctl);
                        None
                    }
                    Some(Ok(Message::Close(Some(frame)))) if u16::from(frame.code) == 1008 => {
                        // Too slow (its queue filled): allowed, it catches up on reconnect.
                        rec.lock().expect("record").slow_closed += 1;
                        return;
                    }
                    Some(Ok(Message::Close(frame))) => Some(format!("closed with {frame:?}")),
                    Some(Err(e)) => Some(format!("broken: {e}")),
                    None => Some("ended".to_string()),
                    Some(Ok(_)) => None,
                };
                if let Some(how) = ended {
                    if node_state(slots, &conn.slot) == NodeState::Up {
                        let mut r = rec.lock().expect("record");
                        r.unexpected_closes += 1;
                        r.problem(format!(
                            "{}@{}: connection {how} while the node was up",
                            spec.label, conn.slot.id
                        ));
                    }
                    return;
                }
            }
            _ = tokio::time::sleep_until(next_send) => {
                next_send = tokio::time::Instant::now() + pause(rng, ctl);
                if !ctl.sending.load(Ordering::SeqCst) {
                    continue;
                }
                let frame = {
                    let mut r = rec.lock().expect("record");
                    let window = if ctl.burst.load(Ordering::SeqCst) { BURST_WINDOW } else { WINDOW };
                    if r.pending.len() >= window {
                        continue;
                    }
                    *next_id += 1;
                    let id = format!("{}-{}", spec.label, next_id);
                    let group = !spec.groups.is_empty() && rng.gen_bool(0.5);
                    let frame = if group {
                        let g = *spec.groups.choose(rng).expect("a group");
                        json!({"type":"group","id":id,"to":g,"media":"text",
                               "content":format!("{id} to group {g}")})
                    } else {
                        let to = *spec.others.choose(rng).expect("another user");
                        json!({"type":"private","id":id,"to":to,"media":"text",
                               "content":format!("{id} to user {to}")})
                    }
                    .to_string();
                    r.sends += 1;
                    r.pending.insert(*next_id, (id, Pending { text: frame.clone(), retry_at: None }));
                    frame
                };
                if !send_text(&mut ws, frame).await {
                    return;
                }
            }
            _ = tick.tick() => {
                // Reads for what this client holds, then a heartbeat whose answer confirms them;
                // sends refused with `unavailable` go again.
                let mut out = Vec::new();
                {
                    let mut r = rec.lock().expect("record");
                    let now = Instant::now();
                    for (_, p) in r.pending.values_mut() {
                        if p.retry_at.is_some_and(|t| t <= now) {
                            p.retry_at = None;
                            out.push(p.text.clone());
                        }
                    }
                    r.resent += out.len() as u64;
                    let convs: Vec<String> = r.held.keys().cloned().collect();
                    for c in convs {
                        let cursor = r.cursor(&c);
                        if cursor > conn.reads_sent.get(&c).copied().unwrap_or(0) {
                            conn.reads_sent.insert(c.clone(), cursor);
                            conn.unconfirmed_reads.push((c.clone(), cursor));
                            out.push(json!({"type":"read","conversation":c,"seq":cursor}).to_string());
                        }
                    }
                }
                conn.heartbeats.push_back((
                    std::mem::take(&mut conn.unconfirmed_reads),
                    Instant::now(),
                    ctl.redis_paused.load(Ordering::SeqCst),
                    conn.frames,
                ));
                out.push(json!({"type":"heartbeat"}).to_string());
                for text in out {
                    if !send_text(&mut ws, text).await {
                        return;
                    }
                }
            }
        }
    }
}

/// Time until a client's next send.
fn pause(rng: &mut StdRng, ctl: &Ctl) -> Duration {
    if ctl.burst.load(Ordering::SeqCst) {
        Duration::from_millis(rng.gen_range(0..4))
    } else {
        Duration::from_millis(rng.gen_range(80..400))
    }
}

/// Applies one server frame to the client's record, judging it.
fn on_frame(
    spec: &Spec,
    rec: &Arc<Mutex<Record>>,
    conn: &mut Conn,
    text: &str,
    slots: &Slots,
    ctl: &Ctl,
) {
    conn.frames += 1;
    let label = format!("{}@{}", spec.label, conn.slot.id);
    let mut r = rec.lock().expect("record");
    let Ok(f) = serde_json::from_str::<Value>(text) else {
        r.problem(format!("{label}: frame is not JSON: {text}"));
        return;
    };
    let conv = f["conversation"].as_str().unwrap_or("").to_string();
    let seq = f["seq"].as_i64().unwrap_or(-1);
    let msg_id = f["msg_id"].as_str().unwrap_or("").to_string();
    match f["type"].as_str().unwrap_or("") {
        "ack" => {
            let id = f["id"].as_str().unwrap_or("").to_string();
            let acked = Acked {
                id: id.clone(),
                conversation: conv.clone(),
                seq,
                msg_id: msg_id.clone(),
            };
            let key = r
                .pending
                .iter()
                .find(|(_, (pid, _))| *pid == id)
                .map(|(k, _)| *k);
            if let Some(k) = key {
                r.pending.remove(&k);
                r.acked.push(acked.clone());
                r.acked_by_id.insert(id.clone(), acked);
            } else if let Some(first) = r.acked_by_id.get(&id).cloned() {
                // A send repeated after its ack was already in flight: the same ack again.
                if first.conversation != conv || first.seq != seq || first.msg_id != msg_id {
                    r.problem(format!(
                        "{label}: repeated send {id} acked as {conv}/{seq}/{msg_id}, first as \
                         {}/{}/{}",
                        first.conversation, first.seq, first.msg_id
                    ));
                }
            } else {
                r.problem(format!("{label}: ack for an id never sent: {f}"));
                return;
            }
            r.hold(&label, &conv, seq, &msg_id);
            conn.seen.insert((conv.clone(), seq));
            let last = conn.last.entry(conv).or_insert(0);
            *last = (*last).max(seq);
        }
        "message" => {
            if conn.seen.contains(&(conv.clone(), seq)) {
                r.duplicated += 1;
                r.problem(format!("{label}: {conv} seq {seq} twice on one connection"));
            } else if seq < conn.last.get(&conv).copied().unwrap_or(0) {
                r.reordered += 1;
                r.problem(format!(
                    "{label}: {conv} seq {seq} after seq {} on one connection",
                    conn.last[&conv]
                ));
            } else if r.held.get(&conv).is_some_and(|h| h.contains_key(&seq)) {
                if seq <= conn.floor.get(&conv).copied().unwrap_or(0) {
                    r.duplicated += 1;
                    r.problem(format!(
                        "{label}: {conv} seq {seq} sent again although the read cursor {} was \
                         stored before this connection opened",
                        conn.floor[&conv]
                    ));
                } else {
                    r.redelivered += 1;
                }
            }
            r.hold(&label, &conv, seq, &msg_id);
            conn.seen.insert((conv.clone(), seq));
            let last = conn.last.entry(conv).or_insert(0);
            *last = (*last).max(seq);
        }
        "error" => {
            let id = f["id"].as_str().map(str::to_string);
            let code = f["code"].as_str().unwrap_or("").to_string();
            let has_reason = f["message"].as_str().is_some_and(|m| !m.is_empty());
            let stopping = node_state(slots, &conn.slot) != NodeState::Up;
            let key = id.as_ref().and_then(|id| {
                r.pending
                    .iter()
                    .find(|(_, (pid, _))| pid == id)
                    .map(|(k, _)| *k)
            });
            // A repeat of a send that was acked meanwhile: judged the same, nothing to retry.
            let repeat = id.as_ref().is_some_and(|id| r.acked_by_id.contains_key(id));
            match key {
                None if repeat && code == "unavailable" && has_reason && stopping => {
                    r.refused_expected += 1;
                }
                Some(k) if code == "unavailable" && has_reason => {
                    if stopping {
                        r.refused_expected += 1;
                    } else {
                        r.refused_unexpected += 1;
                        r.problem(format!(
                            "{label}: refused while its node was not going down: {f}"
                        ));
                    }
                    // Sent again (same id) in a moment, here or after a reconnect.
                    if let Some((_, p)) = r.pending.get_mut(&k) {
                        p.retry_at = Some(Instant::now() + Duration::from_millis(300));
                    }
                }
                Some(k) => {
                    r.refused_unexpected += 1;
                    r.pending.remove(&k);
                    r.problem(format!("{label}: send refused: {f}"));
                }
                None => {
                    r.refused_unexpected += 1;
                    r.problem(format!("{label}: unexpected error frame: {f}"));
                }
            }
        }
        "heartbeat" => {
            if let Some((reads, sent, paused, frames_before)) = conn.heartbeats.pop_front() {
                for (c, s) in reads {
                    let e = r.read_confirmed.entry(c).or_insert(0);
                    *e = (*e).max(s);
                }
                // The first answer waits for the replay of what the user missed; later ones
                // only for the frames before them.
                conn.answered += 1;
                if conn.answered == 1 {
                    return;
                }
                let ms = sent.elapsed().as_millis() as u64;
                if ms > SLOW_HEARTBEAT.as_millis() as u64 && r.slow_heartbeats.len() < 5 {
                    r.slow_heartbeats.push(format!(
                        "{label}: heartbeat answered after {ms} ms (sent {:.1}s after the start, \
                         Redis paused then: {paused}; {} frames came in between)",
                        ctl.secs() - ms as f64 / 1000.0,
                        conn.frames - frames_before
                    ));
                }
                r.slowest_heartbeat_ms = r.slowest_heartbeat_ms.max(ms);
                if paused {
                    r.slowest_heartbeat_redis_paused_ms =
                        r.slowest_heartbeat_redis_paused_ms.max(ms);
                }
            }
        }
        // Notices this test does not judge (presence is checked over REST at the end).
        _ => {}
    }
}

/// The stored messages of one conversation, seq → (msg_id, sender), read page by page.
async fn history(
    node: &common::Server,
    viewer: &TestUser,
    conversation: &str,
) -> BTreeMap<i64, (String, i64)> {
    let mut out = BTreeMap::new();
    let mut after = 0;
    loop {
        let r = node
            .get(
                &format!("/api/conversations/{conversation}/messages?after={after}&limit=200"),
                viewer.t(),
            )
            .await;
        r.expect(200);
        let page = r.json();
        let items = page.as_array().expect("history is an array");
        if items.is_empty() {
            return out;
        }
        for m in items {
            let seq = m["seq"].as_i64().expect("seq");
            out.insert(
                seq,
                (
                    m["msg_id"].as_str().unwrap_or("").to_string(),
                    m["from"].as_i64().unwrap_or(0),
                ),
            );
            after = seq;
        }
    }
}

/// The chaos phase: the seeded fault schedule, until `secs` have passed.
struct Faults {
    kills: u32,
    sigterms: u32,
    restarts_same: u32,
    restarts_new: u32,
    redis_pauses: u32,
    checkpoints: u32,
    /// Deliveries missing at checkpoints.
    lost: usize,
    next_node: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Kill,
    Term,
    PauseRedis,
}

/// Index of a random running node, if more than one runs (one always stays).
fn victim(c: &Cluster, rng: &mut StdRng) -> Option<usize> {
    (c.nodes.len() > 1).then(|| rng.gen_range(0..c.nodes.len()))
}

/// What the node of `slot` is doing now.
fn node_state(slots: &Slots, slot: &Slot) -> NodeState {
    slots
        .lock()
        .expect("slots")
        .iter()
        .find(|s| s.id == slot.id && s.addr == slot.addr)
        .map_or(NodeState::Down, |s| s.state)
}

fn set_state(slots: &Slots, id: &str, addr: &str, state: NodeState) {
    for s in slots.lock().expect("slots").iter_mut() {
        if s.id == id && s.addr == addr {
            s.state = state;
        }
    }
}

/// Everything the checks need: the clients' records, the users and the groups.
struct World {
    records: Vec<Arc<Mutex<Record>>>,
    users: Vec<TestUser>,
    /// Community id → member user ids.
    members: BTreeMap<i64, BTreeSet<i64>>,
    slots: Slots,
    ctl: Arc<Ctl>,
}

/// What a settle found.
#[derive(Default)]
struct Settled {
    acked: usize,
    stored: usize,
    deliveries: usize,
    lost: Vec<String>,
    problems: Vec<String>,
}

/// Waits until every pending send is acked, reads every conversation from the database and
/// waits until every participant holds all of it, with no new sends to repair any gap (the
/// caller stopped them). Lost deliveries and inconsistencies are returned, not asserted.
async fn settle(c: &Cluster, w: &World, what: &str) -> Settled {
    let mut out = Settled::default();
    let unacked = || -> Vec<String> {
        w.records
            .iter()
            .flat_map(|r| {
                r.lock()
                    .expect("record")
                    .pending
                    .values()
                    .map(|(id, _)| id.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let end = Instant::now() + ACK_DEADLINE;
    let mut left = unacked();
    while !left.is_empty() && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = unacked();
    }
    if !left.is_empty() {
        out.problems.push(format!(
            "{what}: {} sends never acked within {ACK_DEADLINE:?}: {:?}",
            left.len(),
            &left[..left.len().min(20)]
        ));
    }

    // The truth: every conversation's stored messages.
    let mut participants: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    let mut acked_all: Vec<(i64, Acked)> = Vec::new();
    for (i, r) in w.records.iter().enumerate() {
        for a in &r.lock().expect("record").acked {
            acked_all.push((w.users[i].id, a.clone()));
        }
    }
    for (_, a) in &acked_all {
        let who: BTreeSet<i64> = if let Some(g) = a.conversation.strip_prefix("g:") {
            w.members[&g.parse::<i64>().expect("group id")].clone()
        } else {
            a.conversation
                .strip_prefix("p:")
                .expect("p: or g:")
                .split(':')
                .map(|u| u.parse::<i64>().expect("user id"))
                .collect()
        };
        participants.insert(a.conversation.clone(), who);
    }
    let by_id: HashMap<i64, &TestUser> = w.users.iter().map(|u| (u.id, u)).collect();
    let mut truth: BTreeMap<String, BTreeMap<i64, (String, i64)>> = BTreeMap::new();
    for (conv, who) in &participants {
        let viewer = by_id[who.iter().next().expect("a participant")];
        truth.insert(conv.clone(), history(&c.nodes[0], viewer, conv).await);
    }
    out.acked = acked_all.len();
    out.stored = truth.values().map(BTreeMap::len).sum();
    for (conv, msgs) in &truth {
        let seqs: Vec<i64> = msgs.keys().copied().collect();
        if seqs != (1..=seqs.len() as i64).collect::<Vec<_>>() {
            out.problems.push(format!(
                "{what}: {conv}: stored seqs are not 1..n: {seqs:?}"
            ));
        }
    }
    let mut acked_keys = HashSet::new();
    for (from, a) in &acked_all {
        acked_keys.insert((a.conversation.clone(), a.seq));
        match truth.get(&a.conversation).and_then(|m| m.get(&a.seq)) {
            Some((msg_id, sender)) if *msg_id == a.msg_id && sender == from => {}
            other => out.problems.push(format!(
                "{what}: acked {} ({} seq {} {}) is stored as {other:?}",
                a.id, a.conversation, a.seq, a.msg_id
            )),
        }
    }
    if acked_keys.len() != out.stored {
        out.problems.push(format!(
            "{what}: {} messages stored but {} distinct acks (a send stored twice, or stored \
             unacked)",
            out.stored,
            acked_keys.len()
        ));
    }

    // Every participant holds every stored message (waiting, with a deadline).
    let missing = || -> Vec<String> {
        let mut gaps = Vec::new();
        for (i, r) in w.records.iter().enumerate() {
            let r = r.lock().expect("record");
            for (conv, msgs) in &truth {
                if !participants[conv].contains(&w.users[i].id) {
                    continue;
                }
                let held = r.held.get(conv);
                for (seq, (msg_id, _)) in msgs {
                    match held.and_then(|h| h.get(seq)) {
                        Some(m) if m == msg_id => {}
                        Some(m) => {
                            gaps.push(format!("u{i}: {conv} seq {seq} is {m}, stored {msg_id}"))
                        }
                        None => gaps.push(format!("u{i}: {conv} seq {seq} missing")),
                    }
                }
            }
        }
        gaps
    };
    let end = Instant::now() + DELIVERY_DEADLINE;
    out.lost = missing();
    while !out.lost.is_empty() && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(200)).await;
        out.lost = missing();
    }
    out.deliveries = truth
        .iter()
        .map(|(conv, msgs)| msgs.len() * (participants[conv].len() - 1))
        .sum();
    if !out.lost.is_empty() {
        out.problems.push(format!(
            "{what}: {} deliveries missing after {DELIVERY_DEADLINE:?} (lost), e.g. {:?}",
            out.lost.len(),
            &out.lost[..out.lost.len().min(20)]
        ));
    }
    out
}

/// Lets the clients send as fast as they can for [`BURST`] (the next fault hits the burst).
async fn burst(ctl: &Ctl) {
    ctl.burst.store(true, Ordering::SeqCst);
    tokio::time::sleep(BURST).await;
    ctl.burst.store(false, Ordering::SeqCst);
}

/// SIGKILLs a random node (never the last one running).
fn kill_one(c: &mut Cluster, w: &World, rng: &mut StdRng, down: &mut Vec<String>, f: &mut Faults) {
    let Some(i) = victim(c, rng) else { return };
    let addr = c.nodes[i].addr.clone();
    // Down before the kill, so no client takes its broken socket for a bug.
    set_state(&w.slots, &c.ids[i], &addr, NodeState::Down);
    let (id, _) = c.kill(i);
    f.kills += 1;
    down.push(id.clone());
    say!(w.ctl, "SIGKILL {id} ({addr})");
}

/// SIGTERMs a random node (never the last one running) and waits until it is gone.
async fn term_one(
    c: &mut Cluster,
    w: &World,
    rng: &mut StdRng,
    down: &mut Vec<String>,
    f: &mut Faults,
) {
    let Some(i) = victim(c, rng) else { return };
    let addr = c.nodes[i].addr.clone();
    let id = c.ids[i].clone();
    set_state(&w.slots, &id, &addr, NodeState::Stopping);
    say!(w.ctl, "SIGTERM {id} ({addr})");
    let started = Instant::now();
    let (_, status) = c.terminate(i).await;
    set_state(&w.slots, &id, &addr, NodeState::Down);
    f.sigterms += 1;
    down.push(id.clone());
    say!(
        w.ctl,
        "{id} exited after {:.1}s: {status:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        status.success(),
        "{id} exited badly after SIGTERM: {status:?}"
    );
}

/// Starts a node with `id` and lets the clients know.
async fn start_one(c: &mut Cluster, w: &World, id: &str) -> String {
    c.start_node(id).await;
    let addr = c.nodes.last().expect("started").addr.clone();
    w.slots.lock().expect("slots").push(Slot {
        id: id.to_string(),
        addr: addr.clone(),
        state: NodeState::Up,
    });
    addr
}

/// The chaos phase: the seeded fault schedule until `secs` have passed. Some node faults are
/// checkpoints: sending stops just before the fault, and every message acked by then must
/// reach every participant with no later message to reveal a gap.
#[allow(clippy::too_many_arguments)]
async fn run_faults(
    c: &mut Cluster,
    w: &World,
    redis: &Redis,
    plan: &Plan,
    rng: &mut StdRng,
    down: &mut Vec<String>,
    f: &mut Faults,
    problems: &mut Vec<String>,
) {
    let ctl = &w.ctl;
    let end = Instant::now() + Duration::from_secs(plan.secs);
    // Each kind of fault at least once, early, in a seeded order; then at random.
    let mut todo = vec![Fault::Kill, Fault::Term];
    if plan.redis_pause {
        todo.push(Fault::PauseRedis);
    }
    todo.shuffle(rng);
    let tag = c.ids[0].split('-').nth(1).unwrap_or("x").to_string();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(1500..4000))).await;
        if !down.is_empty() && (rng.gen_bool(0.5) || c.nodes.len() == 1) {
            let i = rng.gen_range(0..down.len());
            let old = down.remove(i);
            let id = if rng.gen_bool(0.5) {
                f.restarts_same += 1;
                old.clone()
            } else {
                f.restarts_new += 1;
                f.next_node += 1;
                format!("n{}-{tag}", f.next_node)
            };
            let addr = start_one(c, w, &id).await;
            say!(ctl, "restart: {id} (was {old}) on {addr}");
            continue;
        }
        let fault = todo.pop().unwrap_or_else(|| {
            let all = if plan.redis_pause {
                &[Fault::Kill, Fault::Term, Fault::PauseRedis][..]
            } else {
                &[Fault::Kill, Fault::Term][..]
            };
            *all.choose(rng).expect("a fault")
        });
        let checkpoint = fault != Fault::PauseRedis && c.nodes.len() > 1 && rng.gen_bool(0.3);
        if fault != Fault::PauseRedis {
            burst(ctl).await;
        }
        if checkpoint {
            ctl.sending.store(false, Ordering::SeqCst);
        }
        match fault {
            Fault::Kill => kill_one(c, w, rng, down, f),
            Fault::Term => term_one(c, w, rng, down, f).await,
            Fault::PauseRedis => {
                // Past the heartbeat timeout: frames stuck behind Redis would cost connections.
                let secs = rng.gen_range(HEARTBEAT_TIMEOUT_SECS + 1..=HEARTBEAT_TIMEOUT_SECS + 3);
                say!(ctl, "SIGSTOP redis for {secs}s");
                redis.signal(libc::SIGSTOP);
                ctl.redis_paused.store(true, Ordering::SeqCst);
                f.redis_pauses += 1;
                // Traffic goes on meanwhile; no node is (re)started while Redis is hung (a
                // node needs Redis to start).
                tokio::time::sleep(Duration::from_secs(secs)).await;
                redis.signal(libc::SIGCONT);
                ctl.redis_paused.store(false, Ordering::SeqCst);
                say!(ctl, "SIGCONT redis");
            }
        }
        if checkpoint {
            f.checkpoints += 1;
            let what = format!("checkpoint {} (after {fault:?})", f.checkpoints);
            let s = settle(c, w, &what).await;
            say!(
                ctl,
                "{what}: {} acked, {} deliveries, {} lost",
                s.acked,
                s.deliveries,
                s.lost.len()
            );
            f.lost += s.lost.len();
            problems.extend(s.problems);
            ctl.sending.store(true, Ordering::SeqCst);
        }
    }
}

/// Runs only inside the namespace (see the top of the file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside the namespace made by chaos_nodes_die_redis_hangs_udp_drops_and_nothing_is_lost"]
async fn chaos_inside_namespace() {
    if !netns::inside() {
        eprintln!(
            "{INNER}: not inside the test's namespace ({} unset); nothing to do",
            netns::INNER_ENV
        );
        return;
    }
    let plan = Plan::from_env();
    let ctl = Arc::new(Ctl {
        sending: AtomicBool::new(false),
        offline: (0..plan.clients).map(|_| AtomicBool::new(false)).collect(),
        stop: AtomicBool::new(false),
        redis_paused: AtomicBool::new(false),
        burst: AtomicBool::new(false),
        started: Instant::now(),
    });
    say!(
        ctl,
        "seed {} ({plan:?}), server {}",
        plan.seed,
        common::server_bin().display()
    );
    let mut rng = StdRng::seed_from_u64(plan.seed);

    let iptables = netns::drop_udp_here(&plan.loss);
    let pg = Postgres::start();
    let redis = Redis::start();
    say!(ctl, "PostgreSQL and Redis up in the namespace");
    let db = TestDb::postgres_at(&pg.admin_url()).await;
    let redis_url = redis.url();
    let timeout = HEARTBEAT_TIMEOUT_SECS.to_string();
    let extra = [
        ("CHORUS__REDIS__URL", redis_url.as_str()),
        ("CHORUS__CHAT__HEARTBEAT_TIMEOUT_SECS", timeout.as_str()),
        ("CHORUS__SERVER__SHUTDOWN_GRACE_SECS", "5"),
    ];
    let mut c = Cluster::start_with(db, &Transport::Udp, 3, &extra).await;
    let slots: Slots = Arc::new(Mutex::new(
        c.nodes
            .iter()
            .zip(&c.ids)
            .map(|(n, id)| Slot {
                id: id.clone(),
                addr: n.addr.clone(),
                state: NodeState::Up,
            })
            .collect(),
    ));
    say!(ctl, "3 nodes up: {:?}", c.ids);

    // Users (on every node), and groups of 3 or more.
    let users: Vec<TestUser> = futures_util::future::join_all((0..plan.clients).map(|i| {
        let node = &c.nodes[i % c.nodes.len()];
        async move { node.user(&format!("u{i}")).await }
    }))
    .await;
    let n_groups = 3.min(plan.clients / 3).max(1);
    let mut members: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    let mut groups_of: Vec<Vec<i64>> = vec![Vec::new(); plan.clients];
    for g in 0..n_groups {
        let mut who: Vec<usize> = (0..plan.clients).collect();
        who.shuffle(&mut rng);
        let size = rng.gen_range(3..=(plan.clients / 2).max(3));
        who.truncate(size);
        let owner = &users[who[0]];
        let r = c.nodes[g % 3]
            .post(
                "/api/communities",
                owner.t(),
                json!({"name": format!("chaos room {g}")}),
            )
            .await;
        r.expect(201);
        let id = r.json()["id"].as_i64().expect("community id");
        for &m in &who[1..] {
            c.nodes[m % 3]
                .post_empty(&format!("/api/communities/{id}/members"), users[m].t())
                .await
                .expect(201);
        }
        members.insert(id, who.iter().map(|&m| users[m].id).collect());
        for &m in &who {
            groups_of[m].push(id);
        }
    }
    say!(ctl, "{} users, groups {:?}", users.len(), members);

    let records: Vec<Arc<Mutex<Record>>> = (0..plan.clients)
        .map(|_| Arc::new(Mutex::new(Record::default())))
        .collect();
    let tasks: Vec<_> = (0..plan.clients)
        .map(|i| {
            let spec = Spec {
                index: i,
                user: users[i].clone(),
                label: format!("u{i}"),
                groups: groups_of[i].clone(),
                others: users
                    .iter()
                    .filter(|u| u.id != users[i].id)
                    .map(|u| u.id)
                    .collect(),
            };
            tokio::spawn(client(
                spec,
                records[i].clone(),
                slots.clone(),
                ctl.clone(),
                plan.seed.wrapping_mul(31).wrapping_add(i as u64),
            ))
        })
        .collect();
    wait_for(Duration::from_secs(30), "every client connected", || {
        let all = records.iter().all(|r| r.lock().expect("record").connected);
        async move { all.then_some(()) }
    })
    .await;
    ctl.sending.store(true, Ordering::SeqCst);
    say!(
        ctl,
        "{} clients connected; sending; chaos for {}s",
        plan.clients,
        plan.secs
    );

    let mut faults = Faults {
        kills: 0,
        sigterms: 0,
        restarts_same: 0,
        restarts_new: 0,
        redis_pauses: 0,
        checkpoints: 0,
        lost: 0,
        next_node: 2,
    };
    let w = World {
        records,
        users,
        members,
        slots,
        ctl: ctl.clone(),
    };
    let mut problems: Vec<String> = Vec::new();
    let mut down = Vec::new();
    run_faults(
        &mut c,
        &w,
        &redis,
        &plan,
        &mut rng,
        &mut down,
        &mut faults,
        &mut problems,
    )
    .await;

    // The end: a burst, sending stops, one last node fault right away (what was acked just
    // before it has no later message to reveal a gap), every node back (same id), then settle.
    burst(&ctl).await;
    ctl.sending.store(false, Ordering::SeqCst);
    if rng.gen_bool(0.5) {
        kill_one(&mut c, &w, &mut rng, &mut down, &mut faults);
    } else {
        term_one(&mut c, &w, &mut rng, &mut down, &mut faults).await;
    }
    for id in std::mem::take(&mut down) {
        let addr = start_one(&mut c, &w, &id).await;
        faults.restarts_same += 1;
        say!(ctl, "restart after the chaos: {id} on {addr}");
    }
    c.wait_full_mesh().await;
    say!(ctl, "chaos over; {} nodes: {:?}", c.nodes.len(), c.ids);
    let fin = settle(&c, &w, "the end").await;
    problems.extend(fin.problems.iter().cloned());
    let (stored, deliveries, lost) = (fin.stored, fin.deliveries, &fin.lost);
    let records = &w.records;
    let users = &w.users;
    say!(ctl, "deliveries checked; presence next");

    // Presence: a third of the clients go offline; every live node must say so, and that
    // the others are online.
    let mut gone: Vec<usize> = (0..plan.clients).collect();
    gone.shuffle(&mut rng);
    gone.truncate(plan.clients / 3);
    for &i in &gone {
        ctl.offline[i].store(true, Ordering::SeqCst);
    }
    wait_for(
        Duration::from_secs(30),
        "clients to settle online/offline",
        || {
            let settled = records.iter().enumerate().all(|(i, r)| {
                r.lock().expect("record").connected != ctl.offline[i].load(Ordering::SeqCst)
            });
            async move { settled.then_some(()) }
        },
    )
    .await;
    let want: BTreeMap<i64, bool> = users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.id, !gone.contains(&i)))
        .collect();
    let end = Instant::now() + PRESENCE_DEADLINE;
    let mut presence_wrong;
    loop {
        presence_wrong = Vec::new();
        for (node, id) in c.nodes.iter().zip(&c.ids) {
            // One user at a time (`GET /api/users/{id}`), which every build has.
            for (uid, want) in &want {
                let r = node.get(&format!("/api/users/{uid}"), users[0].t()).await;
                r.expect(200);
                let online = r.json()["online"].as_bool().expect("online");
                if online != *want {
                    presence_wrong.push(format!("{id} says user {uid} online={online}"));
                }
            }
        }
        if presence_wrong.is_empty() || Instant::now() >= end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if !presence_wrong.is_empty() {
        problems.push(format!(
            "presence does not match who is connected after {PRESENCE_DEADLINE:?}: {:?}",
            &presence_wrong[..presence_wrong.len().min(20)]
        ));
    }

    // The counts.
    ctl.stop.store(true, Ordering::SeqCst);
    let sum = |f: &dyn Fn(&Record) -> u64| -> u64 {
        records.iter().map(|r| f(&r.lock().expect("record"))).sum()
    };
    let sends = sum(&|r| r.sends);
    let duplicated = sum(&|r| r.duplicated);
    let reordered = sum(&|r| r.reordered);
    let redelivered = sum(&|r| r.redelivered);
    let refused_expected = sum(&|r| r.refused_expected);
    let refused_unexpected = sum(&|r| r.refused_unexpected);
    let resent = sum(&|r| r.resent);
    let connects = sum(&|r| r.connects);
    let unexpected_closes = sum(&|r| r.unexpected_closes);
    let slow_closed = sum(&|r| r.slow_closed);
    let slowest_heartbeat_ms = records
        .iter()
        .map(|r| r.lock().expect("record").slowest_heartbeat_ms)
        .max()
        .unwrap_or(0);
    let slowest_paused_ms = records
        .iter()
        .map(|r| r.lock().expect("record").slowest_heartbeat_redis_paused_ms)
        .max()
        .unwrap_or(0);
    for r in records {
        for note in &r.lock().expect("record").slow_heartbeats {
            eprintln!("chaos note: {note}");
        }
    }
    for r in records {
        problems.extend(r.lock().expect("record").problems.iter().cloned());
    }
    let counters = netns::run(&[iptables, "-L", "INPUT", "-v", "-n", "-x"]);
    let udp_dropped = netns::dropped_packets(&counters).unwrap_or(0);
    let mut resent_packets = 0.0;
    for node in &c.nodes {
        resent_packets += cluster::metric(node, "chorus_cluster_packets_resent_total").await;
    }
    let mut summary = String::new();
    let _ = write!(
        summary,
        "chaos summary: seed={} secs={} clients={} | messages acked={} (sends made={sends}, \
         stored={stored}) deliveries checked={deliveries} | kills={} sigterms={} restarts={} \
         (same id {}, new id {}) redis pauses={} udp loss={} (datagrams dropped={udp_dropped}, \
         re-sent by survivors={resent_packets}) | lost={} (checkpoints: {} and the end) \
         duplicated={duplicated} reordered={reordered} | refused: unavailable while \
         stopping={refused_expected}, other={refused_unexpected} | reconnects={} sends \
         repeated={resent} re-sent on reconnect after the read cursor={redelivered} | closed \
         by a healthy node={unexpected_closes} (as too slow, allowed: {slow_closed}) | \
         slowest heartbeat answer={slowest_heartbeat_ms} ms (Redis paused: \
         {slowest_paused_ms} ms) | presence wrong={}",
        plan.seed,
        plan.secs,
        plan.clients,
        fin.acked,
        faults.kills,
        faults.sigterms,
        faults.restarts_same + faults.restarts_new,
        faults.restarts_same,
        faults.restarts_new,
        faults.redis_pauses,
        plan.loss,
        lost.len() + faults.lost,
        faults.checkpoints,
        connects.saturating_sub(plan.clients as u64),
        presence_wrong.len(),
    );
    eprintln!("{summary}");
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    if !problems.is_empty() {
        let dir = std::env::temp_dir().join(format!("chorus-chaos-{}", plan.seed));
        let _ = std::fs::create_dir_all(&dir);
        for (id, log) in c.gone_logs() {
            let _ = std::fs::write(dir.join(format!("{id}-{}.log", rand::random::<u32>())), log);
        }
        for (node, id) in c.nodes.iter().zip(&c.ids) {
            let _ = std::fs::write(dir.join(format!("{id}-live.log")), node.stderr());
        }
        let _ = std::fs::write(dir.join("postgres.log"), pg.log());
        eprintln!("chaos: node logs in {}", dir.display());
    }
    assert!(
        problems.is_empty(),
        "chaos (seed {}; replay: {}) found {} problems:\n  {}",
        plan.seed,
        plan.replay(),
        problems.len(),
        problems.join("\n  ")
    );
    assert_eq!(fin.acked as u64, sends, "every send made was acked");
    assert!(
        faults.kills >= 1 && faults.sigterms >= 1,
        "the schedule ran too short"
    );
    drop(c);
    drop(redis);
    drop(pg);
}
