//! Three real `chorus` nodes joined by Redis pub/sub (`CHORUS__CLUSTER__TRANSPORT=redis`) on one
//! SQLite file: the same cross-node delivery checks as the UDP suite. Each cluster has a name of
//! its own, so its channels (`chorus:{name}:all`, `chorus:{name}:node:{id}`) never collide with
//! another test's. Skips loudly without `CHORUS_TEST_REDIS_URL` (a failure under `CI`).

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/ws.rs"]
mod ws;

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
