//! Packet loss: three real `chorus` nodes and their clients in a network namespace of the
//! test's own, where iptables drops a random 20% of all UDP datagrams (cluster broadcasts,
//! resend requests, resends and heartbeats alike). Every message must still arrive exactly once
//! and in order, and `/metrics` must show that repair happened (packets re-sent).
//!
//! How: the outer test (`udp_packet_loss_is_repaired_in_a_namespace`) creates the namespace
//! (`ip netns add chorus-<random>`), brings its loopback up, adds
//! `iptables -A INPUT -p udp -m statistic --mode random --probability 0.2 -j DROP` inside it,
//! and re-runs this very test binary there (`ip netns exec NS <exe> --exact <inner> --ignored`)
//! with `CHORUS_NETNS_INNER=1`. The inner test (`#[ignore]`d, so it runs only that way) starts
//! the nodes on the namespace's loopback and 127.255.255.255, so no traffic leaves it. A guard
//! deletes the namespace (and kills anything left in it) also when the test fails.
//!
//! iptables: Debian 12's default `iptables` (1.8.9, nf_tables backend) works inside the
//! namespace on this kernel, and so does `iptables-legacy`; the test tries `iptables` first and
//! falls back to `iptables-legacy`. (The kernel has no `tc netem`, hence iptables `statistic`.)
//! Needs root, `ip` and `iptables`: without them the test prints a loud warning and skips,
//! except under `CI`, where it fails (`.ci/run` installs iptables when it is missing).

use crate::common::{self, cluster, netns};

use std::time::Duration;

use cluster::{metric, Cluster, Conn, Transport};
use common::{Backend, TestDb};
use netns::Netns;

/// The inner test's name (in this module: [`netns::test_name`] makes the full one).
const INNER: &str = "lossy_cluster_inside_namespace";
/// Share of UDP datagrams dropped inside the namespace.
const LOSS: &str = "0.2";
/// Upper bound for the inner run (it has deadlines of its own; this catches a hang).
const INNER_DEADLINE: Duration = Duration::from_secs(300);

#[test]
fn udp_packet_loss_is_repaired_in_a_namespace() {
    if let Some(why) = netns::unavailable(&[]) {
        netns::skip_or_fail(
            "the UDP packet-loss cluster test",
            &why,
            "It needs root, `ip` and `iptables` (apt-get install -y iptables).",
        );
        return;
    }
    let ns = Netns::create();
    let iptables = ns.drop_udp(LOSS);
    let rules = ns.exec(&[iptables, "-S", "INPUT"]);
    assert!(
        rules.contains("statistic") && rules.contains("DROP"),
        "loss rule missing: {rules}"
    );

    let inner = ns.run_inner(
        &netns::test_name(module_path!(), INNER),
        &[],
        &std::env::temp_dir(),
        INNER_DEADLINE,
    );
    let _ = std::fs::remove_file(&inner.log);
    let counters = ns.exec(&[iptables, "-L", "INPUT", "-v", "-n", "-x"]);
    eprintln!(
        "---- inner run in {} ----\n{}\n---- end of inner run ----\n{counters}",
        ns.name, inner.output
    );
    let status = inner
        .status
        .unwrap_or_else(|| panic!("the inner run hung for {INNER_DEADLINE:?}"));
    assert!(status.success(), "the inner run failed: {status:?}");
    // libtest exits 0 when the filter matches nothing: make sure the inner test really ran.
    assert!(
        inner.output.contains("test result: ok. 1 passed"),
        "the inner test {INNER} did not run"
    );
    // The rule's packet counter: datagrams really were dropped.
    let dropped = netns::dropped_packets(&counters)
        .unwrap_or_else(|| panic!("no packet counter for the loss rule in:\n{counters}"));
    assert!(dropped > 0, "iptables dropped no UDP datagram:\n{counters}");
    drop(ns);
}

/// Runs only inside the namespace (see the top of the file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs inside the namespace made by udp_packet_loss_is_repaired_in_a_namespace"]
async fn lossy_cluster_inside_namespace() {
    if !netns::inside() {
        eprintln!(
            "{INNER}: not inside the test's namespace ({} unset); nothing to do",
            netns::INNER_ENV
        );
        return;
    }
    let db = TestDb::create(Backend::Sqlite).await.expect("SQLite");
    let c = Cluster::start(db, &Transport::Udp, 3).await;
    // Private and group traffic between three nodes, then a 1,000-message group burst: all of
    // it exactly once and in order, however many datagrams iptables drops.
    cluster::private_and_group_across_nodes(&c).await;
    cluster::thousand_group_messages(&c).await;
    one_message_conversations(&c).await;

    let mut resent = 0.0;
    for (node, id) in c.nodes.iter().zip(&c.ids) {
        let r = metric(node, "chorus_cluster_packets_resent_total").await;
        let sent = metric(node, "chorus_cluster_packets_sent_total").await;
        let unrecovered = metric(node, "chorus_cluster_gaps_unrecovered_total").await;
        let replayed = metric(node, &cluster::dropped("replayed")).await;
        eprintln!(
            "{id}: sent {sent}, re-sent {r}, gaps recovered from storage {unrecovered}, \
             duplicates dropped {replayed}"
        );
        resent += r;
    }
    assert!(
        resent > 0.0,
        "with {LOSS} UDP loss some node must have re-sent packets \
         (chorus_cluster_packets_resent_total is 0 everywhere)\n{}",
        c.logs()
    );
}

/// Ten conversations of one message each (the last broadcast of a conversation has no later
/// message to reveal its loss: only the cluster's own repair can bring it): each arrives once.
async fn one_message_conversations(c: &Cluster) {
    let sender = cluster::user(&c.nodes[0], "dora").await;
    let mut s = Conn::open(&c.nodes[0], &sender, "dora@n0").await;
    let mut conns = Vec::new();
    for i in 0..10 {
        let node = &c.nodes[1 + i % 2];
        let u = cluster::user(node, &format!("solo{i}")).await;
        let label = format!("solo{i}@n{}", 1 + i % 2);
        conns.push((Conn::open(node, &u, &label).await, u));
    }
    let mut sent = Vec::new();
    for (i, (_, u)) in conns.iter().enumerate() {
        sent.push(
            s.private(&format!("solo-{i}"), u.id, &format!("just one {i}"))
                .await,
        );
    }
    for ((conn, _), one) in conns.iter_mut().zip(&sent) {
        conn.expect_exactly(std::slice::from_ref(one)).await;
    }
}
