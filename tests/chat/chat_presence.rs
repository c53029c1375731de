//! Presence (in memory and in Redis) and system messages from the admin API, against the real
//! binary on SQLite.
//!
//! The Redis test needs `CHORUS_TEST_REDIS_URL` (skipped loudly without it; a panic under `CI`).
//! Test servers of other suites may share that Redis, and user ids repeat across fresh
//! databases (every one starts at 1), while presence keys are per user id. So this suite puts
//! its servers on a Redis database number of its own, picked at random from 1..=15 per run
//! and printed, deletes leftover entries of its own users there (`chorus:online:{id}`, the
//! key named in the README) and checks that they start offline.

use crate::common::{self, ws};

use std::sync::Arc;

use common::{Backend, Server, TestDb, TestUser};
use reqwest::Url;
use serde_json::{json, Value};
use ws::{assert_message, befriend, private_conv, Client};

async fn online(s: &Server, asker: &TestUser, who: &TestUser) -> Value {
    let r = s.get(&format!("/api/users/{}", who.id), asker.t()).await;
    r.expect(200);
    r.json()["online"].clone()
}

/// The presence contract, with `check` the server asked for `online` (the same server, or
/// another one sharing Redis).
async fn presence_flow(s: &Server, check: &Server, redis: Option<&str>) {
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    if let Some(url) = redis {
        forget_presence(url, &[&alice, &bob, &carol]).await;
    }
    befriend(s, &alice, &bob).await;
    // Carol is no contact of bob: she never hears of him.
    assert_eq!(
        online(check, &alice, &bob).await,
        json!(false),
        "bob starts offline"
    );

    // Each connection is announced before the next one opens (see `Client::ready`), so bob
    // cannot hear of alice's or carol's arrival.
    let mut a = Client::connect(s, &alice, "alice").await;
    a.ready().await;
    let mut c = Client::connect(s, &carol, "carol").await;
    c.ready().await;
    let mut b1 = Client::connect_ready(s, &bob, "bob-1").await;
    assert_eq!(
        a.recv().await,
        json!({"type":"presence","user":bob.id,"online":true}),
        "bob's first connection must be announced to his contact"
    );
    assert_eq!(online(check, &alice, &bob).await, json!(true));

    // A second connection is no news: the heartbeat round trip proves it is registered, and
    // alice's next frame is bob's marker message, not another presence frame.
    let mut b2 = Client::connect(s, &bob, "bob-2").await;
    b2.ready().await;
    // Closing one of two connections is no news either.
    b2.close().await;
    assert_eq!(online(check, &alice, &bob).await, json!(true));
    b1.private_acked("m-1", alice.id, "still here").await;
    let m = a.recv().await;
    assert_message(
        &m,
        &private_conv(alice.id, bob.id),
        1,
        bob.id,
        alice.id,
        "private",
        "still here",
    );

    // The last connection going is announced once.
    b1.close().await;
    assert_eq!(
        a.recv().await,
        json!({"type":"presence","user":bob.id,"online":false}),
        "bob's last disconnect must be announced to his contact"
    );
    assert_eq!(online(check, &alice, &bob).await, json!(false));

    // Markers: alice's next frame is carol's message (one offline frame only); carol, no
    // contact of bob, got no presence frame at all.
    let ack = c.private_acked("m-2", alice.id, "marker").await;
    assert_eq!(ack["seq"], 1);
    let m = a.recv().await;
    assert_message(
        &m,
        &private_conv(alice.id, carol.id),
        1,
        carol.id,
        alice.id,
        "private",
        "marker",
    );
    a.private_acked("m-3", carol.id, "marker back").await;
    assert_eq!(c.recv_type("message").await["content"], "marker back");

    // Coming back is announced again.
    let b3 = Client::connect(s, &bob, "bob-3").await;
    assert_eq!(
        a.recv().await,
        json!({"type":"presence","user":bob.id,"online":true})
    );
    // Clean disconnects, so no presence entry outlives the test (the harness kills servers).
    for client in [b3, a, c] {
        client.close().await;
    }
}

/// Removes presence entries of these users left in this run's Redis database by an earlier
/// run that failed (its servers were killed with their connections open; entries then live
/// for a heartbeat timeout).
async fn forget_presence(url: &str, users: &[&TestUser]) {
    let client = redis::Client::open(url).expect("redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("cannot reach Redis at {url}: {e}"));
    let keys: Vec<String> = users
        .iter()
        .map(|u| format!("chorus:online:{}", u.id))
        .collect();
    redis::cmd("DEL")
        .arg(&keys)
        .query_async::<()>(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("DEL {keys:?}: {e}"));
}

/// Presence in memory (no Redis): contacts get `presence` on first connect and last
/// disconnect, and `GET /api/users/{id}` shows `online`.
#[tokio::test]
async fn presence_in_memory() {
    let s = Server::start(Backend::Sqlite).await.expect("sqlite");
    presence_flow(&s, &s, None).await;
}

/// A Redis URL on a database number of this run's own, or `None` (skip) without Redis.
fn redis_url() -> Option<String> {
    let base = match std::env::var("CHORUS_TEST_REDIS_URL") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "CI is set but CHORUS_TEST_REDIS_URL is not: the Redis tests must run in CI"
                );
            }
            eprintln!("\n######## SKIPPED (no Redis): set CHORUS_TEST_REDIS_URL ########\n");
            return None;
        }
    };
    let mut url = Url::parse(&base).expect("CHORUS_TEST_REDIS_URL is not a URL");
    let db = 1 + (uuid::Uuid::new_v4().as_u128() % 15) as u8;
    url.set_path(&format!("/{db}"));
    eprintln!("Redis presence test on {url} (database {db}, chosen at random)");
    Some(url.to_string())
}

/// Presence in Redis (`CHORUS__REDIS__URL`): the same contract, and a second server sharing
/// the database and Redis, with no cluster between them, sees who is online on the first.
#[tokio::test]
async fn presence_in_redis_is_shared() {
    let Some(redis) = redis_url() else { return };
    let env = [("CHORUS__REDIS__URL", redis.as_str())];
    let db: Arc<TestDb> = TestDb::create(Backend::Sqlite).await.expect("sqlite");
    let s = Server::start_on(db.clone(), &env).await;
    let other = Server::start_on(db, &env).await;
    presence_flow(&s, &other, Some(&redis)).await;
}

/// A system message from the admin API arrives as a `system` frame (online), is stored in
/// `s:{user}`, and is delivered on connect to a user who was offline; only the admin may send.
#[tokio::test]
async fn system_messages_online_and_offline() {
    const ADMIN: &str = "admin-secret-for-tests";
    let s = Server::start_with(Backend::Sqlite, &[("CHORUS__ADMIN__TOKEN", ADMIN)])
        .await
        .expect("sqlite");
    let bob = s.user("bob").await;
    let conv = format!("s:{}", bob.id);
    let mut b = Client::connect(&s, &bob, "bob").await;

    let r = s
        .post(
            "/api/system-messages",
            Some(ADMIN),
            json!({"user_id": bob.id, "content": "maintenance at noon"}),
        )
        .await;
    r.expect(201);
    let stored = r.json();
    assert_eq!(stored["conversation"], conv.as_str(), "{stored}");
    assert_eq!(stored["seq"], 1, "{stored}");
    let frame = b.recv().await;
    assert_eq!(
        frame,
        json!({"type":"system","msg_id":stored["msg_id"],"conversation":conv,"seq":1,
               "content":"maintenance at noon","ts":stored["ts"]}),
    );
    b.close().await;

    // Offline: stored now, delivered on connect (after the first one, which was never read).
    let r = s
        .post(
            "/api/system-messages",
            Some(ADMIN),
            json!({"user_id": bob.id, "content": "you missed this"}),
        )
        .await;
    r.expect(201);
    assert_eq!(r.json()["seq"], 2);
    let mut b = Client::connect(&s, &bob, "bob-again").await;
    let first = b.recv_type("system").await;
    assert_eq!(first["seq"], 1, "{first}");
    let second = b.recv_type("system").await;
    assert_eq!(second["seq"], 2, "{second}");
    assert_eq!(second["content"], "you missed this");
    assert_eq!(second["msg_id"], r.json()["msg_id"]);

    // History has both; nobody but the admin may send.
    let h = s
        .get(&format!("/api/conversations/{conv}/messages"), bob.t())
        .await;
    h.expect(200);
    assert_eq!(h.json().as_array().map(Vec::len), Some(2), "{}", h.text());
    let body = json!({"user_id": bob.id, "content": "fake"});
    s.post("/api/system-messages", bob.t(), body.clone())
        .await
        .expect(403);
    s.post("/api/system-messages", None, body).await.expect(401);
    // Marker: the refused sends reached nobody.
    s.post(
        "/api/system-messages",
        Some(ADMIN),
        json!({"user_id": bob.id, "content": "marker"}),
    )
    .await
    .expect(201);
    let m = b.recv_type("system").await;
    assert_eq!(
        (m["seq"].clone(), m["content"].clone()),
        (json!(3), json!("marker"))
    );
}
