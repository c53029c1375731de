//! The Redis transport outlives its Redis: two nodes on a private `redis-server` (started by the
//! test on a port of its own, so the machine's Redis is never touched), which is killed and
//! started again. A message acknowledged while Redis was down, and one sent after, both reach
//! the recipient on the other node, once and in order. Skips loudly without `redis-server`
//! (a failure under `CI`).

use crate::common::{self, cluster};

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cluster::{Cluster, Conn, Transport};
use common::{wait_for, Backend, TestDb};

/// A `redis-server` of the test's own, killed on drop.
struct PrivateRedis {
    child: Child,
}

impl PrivateRedis {
    async fn start(port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let redis = PrivateRedis { child };
        wait_for(
            Duration::from_secs(20),
            "redis-server to listen",
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        redis
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_server_available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but redis-server is missing: the Redis restart test must run in CI"
        );
        eprintln!("\n######## SKIPPED (no redis-server): the Redis restart test ########\n");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_transport_recovers_when_redis_restarts() {
    if !redis_server_available() {
        return;
    }
    // Below the ephemeral range (32768+), where an outgoing socket may already hold a port.
    let port = 10000 + rand::random::<u16>() % 9000;
    let redis = PrivateRedis::start(port).await;
    let db = TestDb::create(Backend::Sqlite).await.expect("SQLite");
    let c = Cluster::start(
        db,
        &Transport::Redis(format!("redis://127.0.0.1:{port}")),
        2,
    )
    .await;
    let alice = cluster::user(&c.nodes[0], "alice").await;
    let bob = cluster::user(&c.nodes[1], "bob").await;
    let mut a = Conn::open(&c.nodes[0], &alice, "alice@n0")
        .await
        .ignoring("presence");
    let mut b = Conn::open(&c.nodes[1], &bob, "bob@n1")
        .await
        .ignoring("presence");
    let before = a.private("r-1", bob.id, "before the outage").await;
    b.expect_exactly(std::slice::from_ref(&before)).await;

    redis.stop();
    // Stored and acknowledged on n0 while its peers cannot hear it.
    let during = a.private("r-2", bob.id, "while redis is down").await;
    let redis = PrivateRedis::start(port).await;
    c.wait_full_mesh().await;
    let after = a.private("r-3", bob.id, "after the restart").await;
    b.expect_exactly(&[during, after]).await;
    drop(redis);
    eprintln!("redis restart on port {}: recovered", port);
}
