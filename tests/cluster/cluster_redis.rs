//! Three real `chorus` nodes joined by Redis pub/sub (`CHORUS__CLUSTER__TRANSPORT=redis`) on one
//! SQLite file: the same cross-node delivery checks as the UDP suite. Each cluster has a name of
//! its own, so its channels (`chorus:{name}:all`, `chorus:{name}:node:{id}`) never collide with
//! another test's. Skips loudly without `CHORUS_TEST_REDIS_URL` (a failure under `CI`).

use crate::common::{self, cluster};

use cluster::{Cluster, Transport};
use common::{Backend, TestDb};

/// Three Redis-transport nodes on a fresh SQLite file; `None` when Redis is not configured.
async fn three_nodes() -> Option<Cluster> {
    let url = cluster::redis_url_or_skip()?;
    let db = TestDb::create(Backend::Sqlite).await.expect("SQLite");
    Some(Cluster::start(db, &Transport::Redis(url), 3).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_private_and_group_messages_cross_nodes_once_and_in_order() {
    let Some(c) = three_nodes().await else {
        return;
    };
    cluster::private_and_group_across_nodes(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_thousand_group_messages_reach_every_node_once_in_order() {
    let Some(c) = three_nodes().await else {
        return;
    };
    cluster::thousand_group_messages(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_messages_are_sealed() {
    use futures_util::StreamExt;
    let Some(url) = cluster::redis_url_or_skip() else {
        return;
    };
    let db = TestDb::create(Backend::Sqlite).await.expect("SQLite");
    let c = Cluster::start(db, &Transport::Redis(url.clone()), 2).await;
    let (n0, n1) = (&c.nodes[0], &c.nodes[1]);
    let alice = cluster::user(n0, "alice").await;
    let bob = cluster::user(n1, "bob").await;
    let mut a = cluster::Conn::open(n0, &alice, "alice@n0").await;
    let mut b = cluster::Conn::open(n1, &bob, "bob@n1").await;

    // Whoever can read the Redis channel.
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let mut sub = client.get_async_pubsub().await.expect("subscribe");
    sub.subscribe(format!("chorus:{}:all", c.name))
        .await
        .expect("subscribe");
    let mut heard = sub.on_message();

    let secret_text = format!("the door code is {}", uuid::Uuid::new_v4().simple());
    let sent = a.private("m-1", bob.id, &secret_text).await;
    b.expect_exactly(std::slice::from_ref(&sent)).await;
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        let msg = tokio::time::timeout(left, heard.next())
            .await
            .expect("the message's packet on the redis channel within 20s")
            .expect("subscription open");
        let packet = msg.get_payload_bytes().to_vec();
        assert!(
            !packet
                .windows(secret_text.len())
                .any(|w| w == secret_text.as_bytes()),
            "the redis channel shows the private message in clear: {}",
            String::from_utf8_lossy(&packet)
        );
        // The cluster's key opens it: this is the message, sealed.
        if let Some(env) = c.open(&packet) {
            if env["event"]["e"] == "message" {
                assert_eq!(env["event"]["body"]["content"], secret_text.as_str());
                break;
            }
        }
    }
}
