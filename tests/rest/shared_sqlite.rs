//! Two `chorus` processes on one SQLite file: what one node writes, the other sees at once
//! (sessions are checked against the database on every request, never cached per node).

use crate::common;

use common::{Backend, Server, TestDb, PASSWORD};
use serde_json::json;

/// Starts two servers on one fresh SQLite database.
async fn two_nodes() -> (Server, Server) {
    let db = TestDb::create(Backend::Sqlite)
        .await
        .expect("SQLite is always available");
    let a = Server::start_on(db.clone(), &[]).await;
    let b = Server::start_on(db, &[]).await;
    assert_ne!(a.base, b.base, "two processes, two ports");
    (a, b)
}

#[tokio::test]
async fn register_on_one_log_in_on_the_other() {
    let (a, b) = two_nodes().await;
    let user = a.register("alice", PASSWORD).await;
    let token = b.login("alice", PASSWORD).await;
    let me = a.get("/api/users/me", Some(&token)).await;
    me.expect(200);
    assert_eq!(me.json()["id"], user["id"]);
    // The name is taken on both nodes.
    b.post(
        "/api/users",
        None,
        json!({"name": "alice", "password": PASSWORD}),
    )
    .await
    .expect_error(409, "name_taken");
}

#[tokio::test]
async fn log_out_on_one_is_refused_on_the_other_at_once() {
    let (a, b) = two_nodes().await;
    a.register("alice", PASSWORD).await;
    let token = a.login("alice", PASSWORD).await;
    let keep = b.login("alice", PASSWORD).await;
    // Warm both nodes up with the token, so a per-node cache would be populated.
    a.get("/api/users/me", Some(&token)).await.expect(200);
    b.get("/api/users/me", Some(&token)).await.expect(200);

    a.delete("/api/sessions", Some(&token)).await.expect(204);
    // No waiting: the very next request on the other node must fail.
    b.get("/api/users/me", Some(&token))
        .await
        .expect_error(401, "unauthorized");
    a.get("/api/users/me", Some(&token))
        .await
        .expect_error(401, "unauthorized");
    // Only that session went.
    b.get("/api/users/me", Some(&keep)).await.expect(200);
    a.get("/api/users/me", Some(&keep)).await.expect(200);
}

#[tokio::test]
async fn concurrent_writes_from_both_nodes() {
    let (a, b) = two_nodes().await;
    // Both processes write at the same time; WAL and a busy timeout must absorb it.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let node = if i % 2 == 0 { &a } else { &b };
        tasks.push(async move {
            node.post(
                "/api/users",
                None,
                json!({"name": format!("user{i:02}"), "password": PASSWORD}),
            )
            .await
        });
    }
    for r in futures_util::future::join_all(tasks).await {
        r.expect(201);
    }
    let t = a.login("user00", PASSWORD).await;
    for node in [&a, &b] {
        let found = node.get("/api/users?q=user", Some(&t)).await;
        found.expect(200);
        assert_eq!(
            found.json().as_array().map(Vec::len),
            Some(16),
            "{}: {}",
            node.base,
            found.text()
        );
    }
}
