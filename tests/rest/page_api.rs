//! What the web page (issue 12) needs from the server, against the real binary: profile
//! notices to contacts and group co-members (on one node and across a cluster), typing stops,
//! look-ups that tell deleted accounts apart without a 404, the list of one's conversations,
//! and uploads that keep their pixel size.

use crate::common::{self, cluster, ws};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cluster::{Cluster, Transport};
use common::{Backend, Server, TestDb, TestUser, PASSWORD};
use serde_json::{json, Value};
use ws::{befriend, community, private_conv, Client};

/// A PNG header of `w` x `h` (enough for the type and the size; the server reads no further).
fn png(w: u32, h: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend_from_slice(&w.to_be_bytes());
    b.extend_from_slice(&h.to_be_bytes());
    b.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    b
}

/// Reads frames until a `profile` frame about `user` arrives (other notices may come first).
async fn profile_of(c: &mut Client, user: i64) -> Value {
    let (_, frame) = c
        .recv_until(|f| f["type"] == "profile" && f["user"] == user)
        .await;
    frame
}

#[tokio::test]
async fn a_rename_or_new_avatar_reaches_contacts_co_members_and_own_devices() {
    let s = start!(Backend::Sqlite);
    let alice = s.user("alice").await;
    let friend = s.user("friend").await;
    let member = s.user("member").await;
    let stranger = s.user("stranger").await;
    befriend(&s, &alice, &friend).await;
    community(&s, &member, &[&alice]).await;

    let mut to_friend = Client::connect_ready(&s, &friend, "friend").await;
    let mut to_member = Client::connect_ready(&s, &member, "member").await;
    let mut own = Client::connect_ready(&s, &alice, "alice's other device").await;
    let mut to_stranger = Client::connect_ready(&s, &stranger, "stranger").await;

    s.patch("/api/users/me", alice.t(), json!({"name": "alicia"}))
        .await
        .expect(200);
    for c in [&mut to_friend, &mut to_member, &mut own] {
        let f = profile_of(c, alice.id).await;
        assert_eq!(f["name"], "alicia", "{}: {f}", c.label);
        assert_eq!(f["avatar"], Value::Null, "{}: {f}", c.label);
    }

    let url = s
        .upload(alice.t(), "me.png", "image/png", png(48, 48))
        .await;
    url.expect(201);
    let url = url.json()["url"].as_str().expect("url").to_string();
    s.patch("/api/users/me", alice.t(), json!({"avatar": url}))
        .await
        .expect(200);
    for c in [&mut to_friend, &mut to_member, &mut own] {
        let f = profile_of(c, alice.id).await;
        assert_eq!(f["avatar"], url.as_str(), "{}: {f}", c.label);
    }

    // Changing only an email tells nobody; someone who shows alice nowhere never hears.
    s.patch(
        "/api/users/me",
        alice.t(),
        json!({"email": "a@example.org"}),
    )
    .await
    .expect(200);
    to_friend.ready().await;
    to_stranger.ready().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_reaches_contacts_and_co_members_on_other_nodes() {
    let db = TestDb::create(Backend::Sqlite).await.expect("SQLite");
    let c = Cluster::start(db, &Transport::Udp, 2).await;
    let (here, there) = (&c.nodes[0], &c.nodes[1]);
    let alice = here.user("alice").await;
    let friend = here.user("friend").await;
    let member = here.user("member").await;
    befriend(here, &alice, &friend).await;
    community(here, &member, &[&alice]).await;
    let mut to_friend = Client::connect_ready(there, &friend, "friend on node 2").await;
    let mut to_member = Client::connect_ready(there, &member, "member on node 2").await;

    here.patch("/api/users/me", alice.t(), json!({"name": "alicia"}))
        .await
        .expect(200);
    for ws in [&mut to_friend, &mut to_member] {
        let f = profile_of(ws, alice.id).await;
        assert_eq!(f["name"], "alicia", "{}: {f}", ws.label);
    }
}

#[tokio::test]
async fn typing_stop_is_relayed() {
    let s = start!(Backend::Sqlite);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let mut a = Client::connect_ready(&s, &alice, "alice").await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;
    a.send_json(json!({"type": "typing", "to": bob.id, "stop": true}))
        .await;
    let f = b.recv_type("typing").await;
    assert_eq!(
        f,
        json!({"type": "typing", "from": alice.id, "conversation": private_conv(alice.id, bob.id), "stop": true})
    );
    a.ready().await;
}

async fn lookup_by_ids_leaves_deleted_accounts_out(backend: Backend) {
    let s = start!(backend);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let gone = s.user("gone").await;
    s.delete("/api/users/me", gone.t()).await.expect(204);
    let r = s
        .get(
            &format!("/api/users?ids={},{},{}", bob.id, gone.id, alice.id),
            alice.t(),
        )
        .await;
    r.expect(200);
    let list = r.json();
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["name"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(names, ["alice", "bob"], "the deleted account is absent");
    for bad in [
        "",
        "1,x",
        &(1..=101)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(","),
    ] {
        s.get(&format!("/api/users?ids={bad}"), alice.t())
            .await
            .expect_error(422, "invalid_input");
    }
}

async fn conversations_lists_every_conversation_with_cursors(backend: Backend) {
    let s = start!(backend);
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let carol = s.user("carol").await;
    let g = community(&s, &carol, &[&alice]).await;
    let mut b = Client::connect_ready(&s, &bob, "bob").await;
    let mut c = Client::connect_ready(&s, &carol, "carol").await;
    // bob is no friend of alice's: his conversation is listed all the same (a request).
    b.private_acked("b1", alice.id, "hello?").await;
    b.private_acked("b2", alice.id, "anyone?").await;
    c.group_acked("c1", g, "hi all").await;
    // Not `connect_ready`: what alice missed arrives first. bob hears her read once stored.
    let mut a = Client::connect(&s, &alice, "alice").await;
    a.send_json(json!({"type": "read", "conversation": private_conv(alice.id, bob.id), "seq": 1}))
        .await;
    b.recv_until(|f| f["type"] == "read").await;

    let r = s.get("/api/conversations", alice.t()).await;
    r.expect(200);
    let list = r.json();
    let find = |id: &str| {
        list.as_array()
            .expect("array")
            .iter()
            .find(|x| x["conversation"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} missing from {list}"))
    };
    let p = find(&private_conv(alice.id, bob.id));
    assert_eq!(
        (p["last_seq"].as_i64(), p["read_seq"].as_i64()),
        (Some(2), Some(1))
    );
    let grp = find(&format!("g:{g}"));
    assert_eq!(
        (grp["last_seq"].as_i64(), grp["read_seq"].as_i64()),
        (Some(1), Some(0))
    );
    assert!(
        !list.to_string().contains(&private_conv(bob.id, carol.id)),
        "only alice's own: {list}"
    );
    s.get("/api/conversations", None).await.expect(401);
}

async fn uploads_keep_their_pixel_size(backend: Backend) {
    let s = start!(backend);
    let alice = s.user("alice").await;
    let r = s
        .upload(alice.t(), "tall.png", "image/png", png(60, 400))
        .await;
    r.expect(201);
    let a = r.json();
    assert_eq!(
        (a["width"].as_u64(), a["height"].as_u64()),
        (Some(60), Some(400))
    );
    let url = a["url"].as_str().expect("url");
    assert!(url.ends_with(".60x400.png"), "{url}");
    // The named file is served, and it can be sent as an image.
    s.get(url, None).await.expect(200);
    let bob = s.user("bob").await;
    let mut c = Client::connect_ready(&s, &alice, "alice").await;
    c.send_json(
        json!({"type": "private", "id": "i1", "to": bob.id, "media": "image", "content": url}),
    )
    .await;
    c.expect_ack("i1").await;
}

async fn sessions_are_listed_and_revocable(backend: Backend) {
    let s = start!(backend);
    let alice = s.user("alice").await;
    let mallory = s.user("mallory").await;
    // A second device that did not tick "Keep me signed in".
    let r = s
        .post(
            "/api/sessions",
            None,
            json!({"name": "alice", "password": PASSWORD, "remember": false}),
        )
        .await;
    r.expect(201);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let short = r.json();
    assert!(
        short["expires_at"].as_i64().expect("expires_at") <= now + 12 * 3600 * 1000 + 60_000,
        "a session not kept is short: {short}"
    );
    let other = TestUser {
        token: short["token"].as_str().expect("token").to_string(),
        ..alice.clone()
    };
    let mut other_ws = Client::connect_ready(&s, &other, "alice's other device").await;

    let list = s.get("/api/sessions", alice.t()).await;
    list.expect(200);
    let list = list.json();
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list.iter().filter(|x| x["current"] == true).count(), 1);
    let other_id = list
        .iter()
        .find(|x| x["current"] == false)
        .and_then(|x| x["id"].as_i64())
        .expect("the other session");

    // Nobody else can end it; an unknown id is not found either.
    s.delete(&format!("/api/sessions/{other_id}"), mallory.t())
        .await
        .expect_error(404, "not_found");
    s.delete("/api/sessions/999999", alice.t())
        .await
        .expect_error(404, "not_found");

    s.delete(&format!("/api/sessions/{other_id}"), alice.t())
        .await
        .expect(204);
    let (code, _) = other_ws.expect_closed(Duration::from_secs(20)).await;
    assert_eq!(code, Some(4401));
    s.get("/api/users/me", other.t()).await.expect(401);
    s.get("/api/users/me", alice.t()).await.expect(200);
    let left = s.get("/api/sessions", alice.t()).await.json();
    assert_eq!(left.as_array().map(Vec::len), Some(1), "{left}");
}

backend_tests!(
    sessions_are_listed_and_revocable,
    lookup_by_ids_leaves_deleted_accounts_out,
    conversations_lists_every_conversation_with_cursors,
    uploads_keep_their_pixel_size,
);
