//! The REST suite from `docs/api.md`, run against the real binary on every database backend.
//!
//! Each test is an async fn taking a [`Backend`]; `backend_tests!` instantiates it once per
//! backend in `mod sqlite`, `mod postgres` and `mod mysql`.

use crate::common;

use std::time::Duration;

use common::{assert_no_secrets, now_ms, wait_for, Backend, Server, DECOY, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

backend_tests!(
    register,
    register_rejects_bad_input,
    concurrent_duplicates,
    login,
    tokens_missing_garbage_revoked,
    token_expires,
    me_read_and_update,
    me_password_change,
    me_avatar,
    me_delete,
    find_users,
    one_user,
    contacts,
    contacts_of_others,
    communities,
    community_membership,
    uploads_of_images,
    uploads_hostile,
    upload_too_large,
    uploads_path_traversal,
    health_ready_metrics,
    unknown_route_and_method,
    openapi_document,
);

// ---------------------------------------------------------------------------------------------
// Backend-specific checks

/// Secrets at rest (SQLite, where the whole database is one file to read): passwords only as
/// Argon2id hashes, tokens only as SHA-256 hashes.
#[tokio::test]
async fn sqlite_stores_no_plaintext_secrets() {
    let s = start!(Backend::Sqlite);
    let secret_pw = "plaintext-canary-pw-4711";
    s.register("alice", secret_pw).await;
    let token = s.login("alice", secret_pw).await;
    s.get("/api/users/me", Some(&token)).await.expect(200);
    let data = s.dir.path().join("data");
    let mut bytes = Vec::new();
    for f in std::fs::read_dir(&data).expect("data dir") {
        bytes.extend(std::fs::read(f.expect("entry").path()).expect("read db file"));
    }
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"$argon2id$"), "no Argon2id PHC string in {data:?}");
    assert!(!has(secret_pw.as_bytes()), "plaintext password stored");
    assert!(!has(token.as_bytes()), "plaintext token stored");
    assert!(
        !has(token.to_uppercase().as_bytes()),
        "plaintext token stored (upper case)"
    );
}

/// `/readyz` tells the truth when PostgreSQL goes away, and recovers when it comes back.
#[tokio::test]
async fn postgres_readyz_follows_the_database() {
    let s = start!(Backend::Postgres);
    s.get("/readyz", None).await.expect(200);
    let name = s.db.name.clone().expect("db name");
    s.db.admin(&format!(
        "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false"
    ))
    .await;
    s.db.admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;
    let down = wait_for(
        Duration::from_secs(30),
        "/readyz still 200 with the database refusing connections",
        || async {
            let r = s.get("/readyz", None).await;
            (r.status != 200).then_some(r)
        },
    )
    .await;
    down.expect(503);
    assert_eq!(down.json()["database"], "down", "{}", down.text());
    // Liveness is not readiness: the process is still up.
    s.get("/healthz", None).await.expect(200);

    s.db.admin(&format!(
        "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS true"
    ))
    .await;
    wait_for(
        Duration::from_secs(30),
        "/readyz did not recover after the database came back",
        || async { (s.get("/readyz", None).await.status == 200).then_some(()) },
    )
    .await;
    s.register("alice", PASSWORD).await;
}

// ---------------------------------------------------------------------------------------------
// Users and sessions

/// Fields every user object must have, and no secrets.
fn check_user_shape(u: &Value, name: &str) {
    assert_no_secrets(u);
    assert!(u["id"].is_i64(), "user id not an integer: {u}");
    assert_eq!(u["name"], name, "user name: {u}");
    assert!(
        u["online"].is_boolean(),
        "user without boolean `online`: {u}"
    );
    let created = u["created_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("user without created_at: {u}"));
    // Milliseconds, not seconds: within a day of now.
    assert!(
        (created - now_ms()).abs() < 86_400_000,
        "created_at {created} is not epoch milliseconds near now"
    );
    for k in ["email", "phone", "avatar"] {
        assert!(u.get(k).is_some(), "user without `{k}` key: {u}");
    }
}

async fn register(backend: Backend) {
    let s = start!(backend);
    let r = s
        .post(
            "/api/users",
            None,
            json!({"name": "alice", "password": PASSWORD, "email": "a@example.com", "phone": "+1 555"}),
        )
        .await;
    r.expect(201);
    let u = r.json();
    check_user_shape(&u, "alice");
    assert_eq!(u["email"], "a@example.com");
    assert_eq!(u["phone"], "+1 555");
    assert!(u["avatar"].is_null());
    assert!(
        !r.text().contains(PASSWORD),
        "the password is echoed back: {}",
        r.text()
    );

    // Without the optional fields they are null.
    let bob = s.register("bob", PASSWORD).await;
    check_user_shape(&bob, "bob");
    assert!(bob["email"].is_null() && bob["phone"].is_null());
    assert_ne!(bob["id"], u["id"]);

    // Lengths count characters, not bytes, and any script works (on MySQL too: utf8mb4).
    for name in ["名字", "🦀crab", &"字".repeat(32)] {
        let u = s.register(name, "пароль-密码-🔑").await;
        check_user_shape(&u, name);
        s.login(name, "пароль-密码-🔑").await;
    }

    // The name is unique.
    s.post(
        "/api/users",
        None,
        json!({"name": "alice", "password": "another password"}),
    )
    .await
    .expect_error(409, "name_taken");
}

async fn register_rejects_bad_input(backend: Backend) {
    let s = start!(backend);
    let bad_json = s
        .send_raw(
            Method::POST,
            "/api/users",
            None,
            "application/json",
            b"{\"name\": \"carol\", \"password\":".to_vec(),
        )
        .await;
    bad_json.expect_error(400, "malformed_json");
    // Right syntax, wrong shape.
    s.post("/api/users", None, json!({"name": 7, "password": PASSWORD}))
        .await
        .expect_error(400, "malformed_json");
    s.post("/api/users", None, json!({"name": "carol"}))
        .await
        .expect_error(400, "malformed_json");

    // Out of bounds.
    s.post(
        "/api/users",
        None,
        json!({"name": "carol", "password": "short"}),
    )
    .await
    .expect_error(422, "invalid_input");
    s.post(
        "/api/users",
        None,
        json!({"name": "", "password": PASSWORD}),
    )
    .await
    .expect_error(422, "invalid_input");
    s.post(
        "/api/users",
        None,
        json!({"name": " carol", "password": PASSWORD}),
    )
    .await
    .expect_error(422, "invalid_input");
    s.post(
        "/api/users",
        None,
        json!({"name": "x".repeat(33), "password": PASSWORD}),
    )
    .await
    .expect_error(422, "invalid_input");
    s.post(
        "/api/users",
        None,
        json!({"name": "carol", "password": "p".repeat(129)}),
    )
    .await
    .expect_error(422, "invalid_input");

    // A JSON body over 64 KiB.
    s.post(
        "/api/users",
        None,
        json!({"name": "carol", "password": PASSWORD, "email": "e".repeat(70_000)}),
    )
    .await
    .expect_error(413, "payload_too_large");

    // None of that created the user: the name is still free.
    s.register("carol", PASSWORD).await;
}

/// Racing duplicates must hit the unique constraints as clean 409s: exactly one winner, and
/// never a 500 from a check-then-insert race.
async fn concurrent_duplicates(backend: Backend) {
    let s = start!(backend);
    let statuses = |rs: Vec<common::Resp>, code: &str| {
        let mut ok = 0;
        for r in rs {
            if r.status == 201 {
                ok += 1;
            } else {
                r.expect_error(409, code);
            }
        }
        ok
    };

    let regs = (0..6).map(|_| {
        s.post(
            "/api/users",
            None,
            json!({"name": "racer", "password": PASSWORD}),
        )
    });
    let rs = futures_util::future::join_all(regs).await;
    assert_eq!(statuses(rs, "name_taken"), 1, "one registration wins");

    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let adds = [
        s.post("/api/contacts", a.t(), json!({"user_id": b.id})),
        s.post("/api/contacts", b.t(), json!({"user_id": a.id})),
        s.post("/api/contacts", a.t(), json!({"user_id": b.id})),
        s.post("/api/contacts", b.t(), json!({"user_id": a.id})),
    ];
    let rs = futures_util::future::join_all(adds).await;
    assert_eq!(statuses(rs, "already_contact"), 1, "one contact add wins");
    assert_eq!(ids(&s.get("/api/contacts", a.t()).await), vec![b.id]);

    let c = s
        .post("/api/communities", a.t(), json!({"name": "club"}))
        .await;
    c.expect(201);
    let path = format!("/api/communities/{}/members", c.json()["id"]);
    let joins = (0..4).map(|_| s.post_empty(&path, b.t()));
    let rs = futures_util::future::join_all(joins).await;
    assert_eq!(statuses(rs, "already_member"), 1, "one join wins");
    let found = s.get("/api/communities", b.t()).await;
    found.expect(200);
    assert_eq!(found.json()[0]["member_count"], 2, "{}", found.text());
}

async fn login(backend: Backend) {
    let s = start!(backend);
    let alice = s.register("alice", PASSWORD).await;

    let r = s
        .post(
            "/api/sessions",
            None,
            json!({"name": "alice", "password": PASSWORD}),
        )
        .await;
    r.expect(201);
    let body = r.json();
    assert_no_secrets(&body["user"]);
    assert_eq!(body["user"]["id"], alice["id"]);
    let token = body["token"].as_str().expect("token string");
    assert!(
        token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "token is not 32 bytes of hex: {token:?}"
    );
    let expires = body["expires_at"].as_i64().expect("expires_at");
    let thirty_days = 2_592_000_000_i64;
    assert!(
        (expires - now_ms() - thirty_days).abs() < 3_600_000,
        "expires_at {expires} is not about 30 days from now (ms)"
    );
    let me = s.get("/api/users/me", Some(token)).await;
    me.expect(200);
    assert_eq!(me.json()["id"], alice["id"]);

    // Two log-ins are two sessions with two tokens.
    let other = s.login("alice", PASSWORD).await;
    assert_ne!(other, token);

    // Wrong password and unknown name: the same answer.
    let wrong = s
        .post(
            "/api/sessions",
            None,
            json!({"name": "alice", "password": "not the password"}),
        )
        .await;
    wrong.expect_error(401, "invalid_credentials");
    let unknown = s
        .post(
            "/api/sessions",
            None,
            json!({"name": "nobody", "password": "not the password"}),
        )
        .await;
    unknown.expect_error(401, "invalid_credentials");
    assert_eq!(
        wrong.bytes, unknown.bytes,
        "wrong password and unknown name must be indistinguishable"
    );

    s.send_raw(
        Method::POST,
        "/api/sessions",
        None,
        "application/json",
        b"not json".to_vec(),
    )
    .await
    .expect_error(400, "malformed_json");
}

async fn tokens_missing_garbage_revoked(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;

    s.get("/api/users/me", None)
        .await
        .expect_error(401, "unauthorized");
    s.get("/api/users/me", Some("garbage"))
        .await
        .expect_error(401, "unauthorized");
    s.get("/api/users/me", Some(&"0".repeat(64)))
        .await
        .expect_error(401, "unauthorized");
    s.get_with_auth("/api/users/me", &format!("Basic {}", a.token))
        .await
        .expect_error(401, "unauthorized");
    s.get_with_auth("/api/users/me", "Bearer")
        .await
        .expect_error(401, "unauthorized");
    // Auth applies to every non-public /api route, not only /me.
    s.get("/api/contacts", None)
        .await
        .expect_error(401, "unauthorized");
    s.get("/api/communities", Some("garbage"))
        .await
        .expect_error(401, "unauthorized");
    s.delete("/api/sessions", None)
        .await
        .expect_error(401, "unauthorized");

    // Log-out revokes the presented token only.
    let second = s.login("alice", PASSWORD).await;
    s.get("/api/users/me", a.t()).await.expect(200);
    s.delete("/api/sessions", a.t()).await.expect(204);
    s.get("/api/users/me", a.t())
        .await
        .expect_error(401, "unauthorized");
    s.delete("/api/sessions", a.t())
        .await
        .expect_error(401, "unauthorized");
    s.get("/api/users/me", Some(&second)).await.expect(200);
}

async fn token_expires(backend: Backend) {
    let s = start!(backend, &[("CHORUS__AUTH__TOKEN_TTL_SECS", "1")]);
    s.register("alice", PASSWORD).await;
    let r = s
        .post(
            "/api/sessions",
            None,
            json!({"name": "alice", "password": PASSWORD}),
        )
        .await;
    r.expect(201);
    let body = r.json();
    let expires = body["expires_at"].as_i64().expect("expires_at");
    assert!(
        expires - now_ms() <= 5_000,
        "with a 1 s TTL, expires_at {expires} is too far in the future"
    );
    let token = body["token"].as_str().expect("token").to_string();
    let last = wait_for(
        Duration::from_secs(15),
        "a token with a 1 s TTL is still accepted",
        || async {
            let r = s.get("/api/users/me", Some(&token)).await;
            (r.status != 200).then_some(r)
        },
    )
    .await;
    last.expect_error(401, "unauthorized");
}

async fn me_read_and_update(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;
    let b = s.user("bob").await;

    let me = s.get("/api/users/me", a.t()).await;
    me.expect(200);
    check_user_shape(&me.json(), "alice");
    assert_eq!(me.json()["id"], a.id);

    // Rename plus email/phone.
    let r = s
        .patch(
            "/api/users/me",
            a.t(),
            json!({"name": "alicia", "email": "x@example.com", "phone": "12345"}),
        )
        .await;
    r.expect(200);
    let u = r.json();
    check_user_shape(&u, "alicia");
    assert_eq!(u["id"], a.id);
    assert_eq!(u["email"], "x@example.com");
    assert_eq!(u["phone"], "12345");
    let me = s.get("/api/users/me", a.t()).await;
    assert_eq!(me.json()["name"], "alicia", "rename not persisted");
    // Omitted fields stay; null clears.
    let u = s
        .patch("/api/users/me", a.t(), json!({"email": null}))
        .await;
    u.expect(200);
    assert!(u.json()["email"].is_null(), "null must clear: {}", u.text());
    assert_eq!(u.json()["phone"], "12345", "omitted field changed");
    assert_eq!(u.json()["name"], "alicia");

    // The old name is free, the new one is taken.
    s.login("alicia", PASSWORD).await;
    s.post(
        "/api/sessions",
        None,
        json!({"name": "alice", "password": PASSWORD}),
    )
    .await
    .expect_error(401, "invalid_credentials");
    s.patch("/api/users/me", b.t(), json!({"name": "alicia"}))
        .await
        .expect_error(409, "name_taken");
    s.patch("/api/users/me", b.t(), json!({"name": ""}))
        .await
        .expect_error(422, "invalid_input");
    s.send_raw(
        Method::PATCH,
        "/api/users/me",
        b.t(),
        "application/json",
        b"{\"name\":".to_vec(),
    )
    .await
    .expect_error(400, "malformed_json");

    // PATCH /me only ever touches the caller: bob renaming himself leaves alice alone.
    let r = s
        .patch("/api/users/me", b.t(), json!({"name": "robert"}))
        .await;
    r.expect(200);
    assert_eq!(r.json()["id"], b.id, "PATCH /me changed another user");
    let alice = s.get(&format!("/api/users/{}", a.id), b.t()).await;
    alice.expect(200);
    assert_eq!(alice.json()["name"], "alicia");
    let bob = s.get(&format!("/api/users/{}", b.id), a.t()).await;
    assert_eq!(bob.json()["name"], "robert");
}

async fn me_password_change(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;
    let other_session = s.login("alice", PASSWORD).await;
    let new_pw = "a brand new password";

    s.patch(
        "/api/users/me",
        a.t(),
        json!({"password": new_pw, "current_password": "not the password"}),
    )
    .await
    .expect_error(403, "wrong_password");
    // No current password at all is not the right one either.
    s.patch("/api/users/me", a.t(), json!({"password": new_pw}))
        .await
        .expect_error_in(&[(403, "wrong_password"), (422, "invalid_input")]);
    // The failed attempts changed nothing.
    s.login("alice", PASSWORD).await;
    // Out-of-bounds new password.
    s.patch(
        "/api/users/me",
        a.t(),
        json!({"password": "short", "current_password": PASSWORD}),
    )
    .await
    .expect_error(422, "invalid_input");

    let r = s
        .patch(
            "/api/users/me",
            a.t(),
            json!({"password": new_pw, "current_password": PASSWORD}),
        )
        .await;
    r.expect(200);
    assert_no_secrets(&r.json());

    s.post(
        "/api/sessions",
        None,
        json!({"name": "alice", "password": PASSWORD}),
    )
    .await
    .expect_error(401, "invalid_credentials");
    s.login("alice", new_pw).await;
    // The other sessions are revoked; the one that made the change lives on.
    s.get("/api/users/me", Some(&other_session))
        .await
        .expect_error(401, "unauthorized");
    s.get("/api/users/me", a.t()).await.expect(200);
}

async fn me_avatar(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;
    let up = s.upload(a.t(), "me.png", "image/png", png_1x1()).await;
    up.expect(201);
    let url = up.json()["url"].as_str().expect("url").to_string();

    for bad in [
        "https://evil.example/x.png",
        "javascript:alert(1)",
        "/static/x.png",
    ] {
        s.patch("/api/users/me", a.t(), json!({"avatar": bad}))
            .await
            .expect_error(422, "invalid_input");
    }
    let r = s
        .patch("/api/users/me", a.t(), json!({"avatar": url}))
        .await;
    r.expect(200);
    assert_eq!(r.json()["avatar"], url.as_str());
    assert_eq!(s.get("/api/users/me", a.t()).await.json()["avatar"], url);
    let r = s
        .patch("/api/users/me", a.t(), json!({"avatar": null}))
        .await;
    r.expect(200);
    assert!(r.json()["avatar"].is_null(), "null must clear the avatar");
}

async fn me_delete(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    s.post("/api/contacts", a.t(), json!({"user_id": b.id}))
        .await
        .expect(201);
    let c = s
        .post("/api/communities", b.t(), json!({"name": "club"}))
        .await;
    c.expect(201);
    let cid = c.json()["id"].as_i64().expect("community id");
    s.post_empty(&format!("/api/communities/{cid}/members"), a.t())
        .await
        .expect(201);

    s.delete("/api/users/me", None)
        .await
        .expect_error(401, "unauthorized");
    s.delete("/api/users/me", a.t()).await.expect(204);

    s.get("/api/users/me", a.t())
        .await
        .expect_error(401, "unauthorized");
    s.post(
        "/api/sessions",
        None,
        json!({"name": "alice", "password": PASSWORD}),
    )
    .await
    .expect_error(401, "invalid_credentials");
    s.get(&format!("/api/users/{}", a.id), b.t())
        .await
        .expect_error(404, "not_found");
    // Contacts and memberships went with the user.
    let contacts = s.get("/api/contacts", b.t()).await;
    contacts.expect(200);
    assert_eq!(contacts.json(), json!([]), "deleted user still a contact");
    let members = s
        .get(&format!("/api/communities/{cid}/members"), b.t())
        .await;
    members.expect(200);
    let ids: Vec<i64> = members
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, vec![b.id], "deleted user still a member");

    // The name is free again, for a different user.
    let again = s.register("alice", "yet another password").await;
    assert_ne!(again["id"], a.id);
    s.login("alice", "yet another password").await;
    // Bob is untouched.
    s.get("/api/users/me", b.t()).await.expect(200);
}

async fn find_users(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;
    let alicia = s.register("ALICIA", PASSWORD).await;
    s.register("bob", PASSWORD).await;

    let r = s.get("/api/users?q=ali", a.t()).await;
    r.expect(200);
    let found = r.json();
    assert_no_secrets(&found);
    let names: Vec<&str> = found
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {found}"))
        .iter()
        .map(|u| u["name"].as_str().expect("name"))
        .collect();
    // Case-insensitive, ordered by id.
    assert_eq!(names, vec!["alice", "ALICIA"], "search for `ali`");
    assert_eq!(found[1]["id"], alicia["id"]);

    let r = s.get("/api/users?q=ob", a.t()).await;
    r.expect(200);
    let names: Vec<Value> = r.json().as_array().expect("array").to_vec();
    assert_eq!(names.len(), 1);
    assert_eq!(names[0]["name"], "bob");

    // At most 50, by id.
    let mut made = Vec::new();
    for i in 0..51 {
        let u = s.register(&format!("member{i:02}"), PASSWORD).await;
        made.push(u["id"].as_i64().unwrap());
    }
    let r = s.get("/api/users?q=MEMBER", a.t()).await;
    r.expect(200);
    let got: Vec<i64> = r
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, made[..50].to_vec(), "first 50 matches by id");

    let r = s.get("/api/users?q=zzz", a.t()).await;
    r.expect(200);
    assert_eq!(r.json(), json!([]));

    s.get("/api/users?q=", a.t())
        .await
        .expect_error(422, "invalid_input");
    s.get("/api/users", a.t())
        .await
        .expect_error_in(&[(422, "invalid_input"), (400, "bad_request")]);
    s.get(&format!("/api/users?q={}", "a".repeat(33)), a.t())
        .await
        .expect_error(422, "invalid_input");
    s.get("/api/users?q=ali", None)
        .await
        .expect_error(401, "unauthorized");
}

async fn one_user(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let r = s.get(&format!("/api/users/{}", b.id), a.t()).await;
    r.expect(200);
    let u = r.json();
    check_user_shape(&u, "bob");
    assert_eq!(u["id"], b.id);
    s.get("/api/users/999999", a.t())
        .await
        .expect_error(404, "not_found");
    // Not an id at all: a bad path or no such route, never a server error.
    s.get("/api/users/abc", a.t())
        .await
        .expect_error_in(&[(400, "bad_request"), (404, "not_found")]);
    s.get(&format!("/api/users/{}", b.id), None)
        .await
        .expect_error(401, "unauthorized");
}

// ---------------------------------------------------------------------------------------------
// Contacts

/// The ids in a `[User]` response, in order.
fn ids(r: &common::Resp) -> Vec<i64> {
    r.expect(200);
    let v = r.json();
    assert_no_secrets(&v);
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|u| u["id"].as_i64().expect("id"))
        .collect()
}

async fn contacts(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let c = s.user("carol").await;

    assert_eq!(ids(&s.get("/api/contacts", a.t()).await), Vec::<i64>::new());
    let r = s
        .post("/api/contacts", a.t(), json!({"user_id": b.id}))
        .await;
    r.expect(201);
    check_user_shape(&r.json(), "bob");
    assert_eq!(r.json()["id"], b.id);

    // Mutual at once.
    assert_eq!(ids(&s.get("/api/contacts", a.t()).await), vec![b.id]);
    assert_eq!(ids(&s.get("/api/contacts", b.t()).await), vec![a.id]);

    s.post("/api/contacts", a.t(), json!({"user_id": b.id}))
        .await
        .expect_error(409, "already_contact");
    s.post("/api/contacts", b.t(), json!({"user_id": a.id}))
        .await
        .expect_error(409, "already_contact");
    s.post("/api/contacts", a.t(), json!({"user_id": a.id}))
        .await
        .expect_error(422, "invalid_input");
    s.post("/api/contacts", a.t(), json!({"user_id": 999_999}))
        .await
        .expect_error(404, "not_found");
    s.post("/api/contacts", a.t(), json!({"user_id": "bob"}))
        .await
        .expect_error(400, "malformed_json");

    // Listed by name.
    s.post("/api/contacts", c.t(), json!({"user_id": a.id}))
        .await
        .expect(201);
    assert_eq!(
        ids(&s.get("/api/contacts", a.t()).await),
        vec![b.id, c.id],
        "contacts by name"
    );

    // Remove: both directions go.
    s.delete(&format!("/api/contacts/{}", a.id), b.t())
        .await
        .expect(204);
    assert_eq!(ids(&s.get("/api/contacts", a.t()).await), vec![c.id]);
    assert_eq!(ids(&s.get("/api/contacts", b.t()).await), Vec::<i64>::new());
    s.delete(&format!("/api/contacts/{}", b.id), a.t())
        .await
        .expect_error(404, "not_a_contact");
    s.delete("/api/contacts/999999", a.t())
        .await
        .expect_error(404, "not_a_contact");
    s.delete(&format!("/api/contacts/{}", c.id), None)
        .await
        .expect_error(401, "unauthorized");
    // And it can be added again.
    s.post("/api/contacts", b.t(), json!({"user_id": a.id}))
        .await
        .expect(201);
}

async fn contacts_of_others(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let c = s.user("carol").await;
    s.post("/api/contacts", a.t(), json!({"user_id": c.id}))
        .await
        .expect(201);

    // Bob cannot cut the alice–carol relation from either end.
    s.delete(&format!("/api/contacts/{}", c.id), b.t())
        .await
        .expect_error(404, "not_a_contact");
    s.delete(&format!("/api/contacts/{}", a.id), b.t())
        .await
        .expect_error(404, "not_a_contact");
    assert_eq!(ids(&s.get("/api/contacts", a.t()).await), vec![c.id]);
    assert_eq!(ids(&s.get("/api/contacts", c.t()).await), vec![a.id]);
    // Bob's own list shows nothing of it.
    assert_eq!(ids(&s.get("/api/contacts", b.t()).await), Vec::<i64>::new());
}

// ---------------------------------------------------------------------------------------------
// Communities

fn check_community(c: &Value, name: &str, owner: i64, members: i64) {
    assert!(c["id"].is_i64(), "community id: {c}");
    assert_eq!(c["name"], name, "community name: {c}");
    assert_eq!(c["owner_id"], owner, "owner_id: {c}");
    assert_eq!(c["member_count"], members, "member_count: {c}");
    assert!(c["created_at"].is_i64(), "created_at: {c}");
    assert!(c.get("icon").is_some() && c.get("description").is_some());
}

fn community_ids(r: &common::Resp) -> Vec<i64> {
    r.expect(200);
    r.json()
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {}", r.text()))
        .iter()
        .map(|c| c["id"].as_i64().expect("id"))
        .collect()
}

async fn communities(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;
    let b = s.user("bob").await;

    let r = s
        .post(
            "/api/communities",
            a.t(),
            json!({"name": "rustaceans", "description": "crabs"}),
        )
        .await;
    r.expect(201);
    let rust = r.json();
    check_community(&rust, "rustaceans", a.id, 1);
    assert_eq!(rust["description"], "crabs");
    let rust_id = rust["id"].as_i64().unwrap();

    let up = s.upload(a.t(), "i.gif", "image/gif", gif_1x1()).await;
    up.expect(201);
    let icon = up.json()["url"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/api/communities",
            b.t(),
            json!({"name": "Gophers", "icon": icon}),
        )
        .await;
    r.expect(201);
    check_community(&r.json(), "Gophers", b.id, 1);
    assert_eq!(r.json()["icon"], icon.as_str());
    let go_id = r.json()["id"].as_i64().unwrap();
    // Names are not unique.
    let r = s
        .post("/api/communities", b.t(), json!({"name": "rustaceans"}))
        .await;
    r.expect(201);
    let rust2_id = r.json()["id"].as_i64().unwrap();

    // Bad input.
    s.post("/api/communities", a.t(), json!({"name": ""}))
        .await
        .expect_error(422, "invalid_input");
    s.post("/api/communities", a.t(), json!({"name": "n".repeat(65)}))
        .await
        .expect_error(422, "invalid_input");
    s.post(
        "/api/communities",
        a.t(),
        json!({"name": "x", "description": "d".repeat(501)}),
    )
    .await
    .expect_error(422, "invalid_input");
    s.post(
        "/api/communities",
        a.t(),
        json!({"name": "x", "icon": "https://evil.example/i.png"}),
    )
    .await
    .expect_error(422, "invalid_input");
    s.post("/api/communities", a.t(), json!({"description": "no name"}))
        .await
        .expect_error(400, "malformed_json");
    s.post("/api/communities", None, json!({"name": "x"}))
        .await
        .expect_error(401, "unauthorized");

    // Mine.
    assert_eq!(
        community_ids(&s.get("/api/communities", a.t()).await),
        vec![rust_id]
    );
    let mut bobs = community_ids(&s.get("/api/communities", b.t()).await);
    bobs.sort();
    assert_eq!(bobs, vec![go_id, rust2_id]);

    // Search (by name, any member).
    let mut found = community_ids(&s.get("/api/communities/search?q=rust", a.t()).await);
    found.sort();
    assert_eq!(found, vec![rust_id, rust2_id]);
    assert_eq!(
        community_ids(&s.get("/api/communities/search?q=Goph", a.t()).await),
        vec![go_id]
    );
    assert_eq!(
        community_ids(&s.get("/api/communities/search?q=zzz", a.t()).await),
        Vec::<i64>::new()
    );
    s.get("/api/communities/search?q=", a.t())
        .await
        .expect_error(422, "invalid_input");
    s.get(
        &format!("/api/communities/search?q={}", "q".repeat(65)),
        a.t(),
    )
    .await
    .expect_error(422, "invalid_input");
}

async fn community_membership(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    let c = s.user("carol").await;
    let r = s
        .post("/api/communities", a.t(), json!({"name": "club"}))
        .await;
    r.expect(201);
    let id = r.json()["id"].as_i64().unwrap();
    let members = format!("/api/communities/{id}/members");

    // Join.
    let r = s.post_empty(&members, b.t()).await;
    r.expect(201);
    check_community(&r.json(), "club", a.id, 2);
    s.post_empty(&members, b.t())
        .await
        .expect_error(409, "already_member");
    s.post_empty(&members, a.t())
        .await
        .expect_error(409, "already_member");
    s.post_empty("/api/communities/999999/members", b.t())
        .await
        .expect_error(404, "not_found");
    s.post_empty(&members, None)
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(
        community_ids(&s.get("/api/communities", b.t()).await),
        vec![id]
    );

    // List: members only.
    let mut listed = ids(&s.get(&members, a.t()).await);
    listed.sort();
    assert_eq!(listed, vec![a.id, b.id]);
    s.get(&members, c.t())
        .await
        .expect_error(403, "not_a_member");
    s.get("/api/communities/999999/members", a.t())
        .await
        .expect_error(404, "not_found");

    // Leave.
    let me = format!("/api/communities/{id}/members/me");
    s.delete(&me, c.t()).await.expect_error(404, "not_a_member");
    s.delete(&me, b.t()).await.expect(204);
    s.delete(&me, b.t()).await.expect_error(404, "not_a_member");
    assert_eq!(ids(&s.get(&members, a.t()).await), vec![a.id]);
    assert_eq!(
        community_ids(&s.get("/api/communities", b.t()).await),
        Vec::<i64>::new()
    );
    s.get(&members, b.t())
        .await
        .expect_error(403, "not_a_member");
    // Carol leaving did not evict anybody.
    let found = s.get("/api/communities/search?q=club", c.t()).await;
    found.expect(200);
    assert_eq!(found.json()[0]["member_count"], 1);

    // The owner may leave; the community stays and can be joined.
    s.delete(&me, a.t()).await.expect(204);
    assert_eq!(
        community_ids(&s.get("/api/communities/search?q=club", c.t()).await),
        vec![id]
    );
    let r = s.post_empty(&members, c.t()).await;
    r.expect(201);
    assert_eq!(r.json()["member_count"], 1);
    assert_eq!(ids(&s.get(&members, c.t()).await), vec![c.id]);
}

// ---------------------------------------------------------------------------------------------
// Attachments

/// CRC-32 (IEEE) as PNG chunks need it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffff_u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid 1x1 RGBA PNG, built chunk by chunk with real CRCs and a stored zlib block.
fn png_1x1() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&1u32.to_be_bytes()); // width
    ihdr.extend_from_slice(&1u32.to_be_bytes()); // height
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA, deflate, no filter, no interlace
    chunk(&mut png, b"IHDR", &ihdr);
    let raw = [0u8, 0xff, 0x00, 0x00, 0xff]; // filter byte + one red pixel
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    let mut z = vec![0x78, 0x01, 0x01]; // zlib header, final stored block
    z.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    z.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    z.extend_from_slice(&raw);
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    chunk(&mut png, b"IDAT", &z);
    chunk(&mut png, b"IEND", &[]);
    png
}

/// A baseline 1x1 grey JPEG: one-code Huffman tables, DC diff 0, then end-of-block.
fn jpeg_1x1() -> Vec<u8> {
    let mut j = vec![0xff, 0xd8]; // SOI
    j.extend_from_slice(&[
        0xff, 0xe0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00,
        0x01, 0x00, 0x00,
    ]); // APP0 JFIF
    j.extend_from_slice(&[0xff, 0xdb, 0x00, 0x43, 0x00]); // DQT, table 0
    j.extend_from_slice(&[1u8; 64]);
    j.extend_from_slice(&[
        0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00,
    ]); // SOF0: 8 bit, 1x1, one component
    for class in [0x00u8, 0x10] {
        // DHT: one code of length 1 for symbol 0 (DC category 0 / AC end-of-block)
        j.extend_from_slice(&[0xff, 0xc4, 0x00, 0x14, class, 0x01]);
        j.extend_from_slice(&[0u8; 15]);
        j.push(0x00);
    }
    j.extend_from_slice(&[0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00]); // SOS
    j.push(0x3f); // bits 0 (DC) 0 (EOB), padded with ones
    j.extend_from_slice(&[0xff, 0xd9]); // EOI
    j
}

/// The classic 1x1 GIF89a: two-colour table, one LZW-coded pixel.
fn gif_1x1() -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&[0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00]);
    g.extend_from_slice(&[0xff, 0xff, 0xff, 0x00, 0x00, 0x00]);
    g.extend_from_slice(&[0x2c, 0, 0, 0, 0, 0x01, 0x00, 0x01, 0x00, 0x00]);
    g.extend_from_slice(&[0x02, 0x02, 0x44, 0x01, 0x00, 0x3b]);
    g
}

/// A 1x1 lossless WebP (RIFF / WEBP / VP8L).
fn webp_1x1() -> Vec<u8> {
    let vp8l = [
        0x2f, 0x00, 0x00, 0x00, 0x10, 0x07, 0x10, 0x11, 0x11, 0x88, 0x88, 0xfe, 0x07,
    ];
    let mut w = b"RIFF".to_vec();
    w.extend_from_slice(&((4 + 8 + vp8l.len() + 1) as u32).to_le_bytes());
    w.extend_from_slice(b"WEBPVP8L");
    w.extend_from_slice(&(vp8l.len() as u32).to_le_bytes());
    w.extend_from_slice(&vp8l);
    w.push(0); // pad to even length
    w
}

async fn uploads_of_images(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;
    let b = s.user("bob").await;
    assert_eq!(webp_1x1().len(), 34, "webp fixture");

    for (file, mime, ext, bytes) in [
        ("dot.png", "image/png", "png", png_1x1()),
        ("dot.jpg", "image/jpeg", "jpg", jpeg_1x1()),
        ("dot.gif", "image/gif", "gif", gif_1x1()),
        ("dot.webp", "image/webp", "webp", webp_1x1()),
        // The type comes from the bytes, not the name or the declared type.
        ("photo.bin", "application/octet-stream", "png", png_1x1()),
    ] {
        let r = s.upload(a.t(), file, mime, bytes.clone()).await;
        r.expect(201);
        let att = r.json();
        let id = att["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: id: {att}"));
        assert!(
            uuid::Uuid::parse_str(id).is_ok(),
            "{file}: id is no uuid: {att}"
        );
        let want_type = format!("image/{}", if ext == "jpg" { "jpeg" } else { ext });
        assert_eq!(att["content_type"], want_type.as_str(), "{file}: {att}");
        assert_eq!(att["size"], bytes.len(), "{file}: {att}");
        let url = att["url"].as_str().expect("url");
        // The pixel size read from the header is kept in the name (and shown as width/height).
        assert_eq!(url, format!("/uploads/{id}.1x1.{ext}"), "{file}: {att}");
        assert_eq!(
            (att["width"].as_u64(), att["height"].as_u64()),
            (Some(1), Some(1)),
            "{file}: {att}"
        );
        let on_disk = s.dir.path().join("uploads").join(format!("{id}.1x1.{ext}"));
        assert!(on_disk.is_file(), "{file}: not stored at {on_disk:?}");

        // Anyone can fetch it back, byte for byte, with safe headers.
        let got = s.get(url, b.t()).await;
        got.expect(200);
        assert_eq!(got.bytes, bytes, "{file}: bytes differ");
        assert_eq!(
            got.header("content-type").as_deref(),
            Some(want_type.as_str()),
            "{file}"
        );
        assert_eq!(
            got.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{file}"
        );
        // "A Content-Security-Policy that runs nothing."
        let csp = got.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'")
                || csp.contains("script-src 'none'")
                || csp.contains("sandbox"),
            "{file}: Content-Security-Policy {csp:?} does not forbid scripts"
        );
        s.get(url, None).await.expect(200);
    }

    // A uuid-shaped name that was never uploaded.
    s.get(&format!("/uploads/{}.png", uuid::Uuid::new_v4()), None)
        .await
        .expect_error(404, "not_found");
    // No `file` field: the wrong shape (400) or a missing value (422), never a success.
    let r = s
        .send_raw(
            Method::POST,
            "/api/attachments",
            a.t(),
            "multipart/form-data; boundary=XyZ",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--XyZ--\r\n"
                .to_vec(),
        )
        .await;
    r.expect_error_in(&[
        (400, "malformed_json"),
        (400, "bad_request"),
        (422, "invalid_input"),
    ]);
}

async fn uploads_hostile(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "page.html",
            "text/html",
            b"<!doctype html><html><body><script>alert(1)</script></body></html>".to_vec(),
        ),
        (
            "pic.svg",
            "image/svg+xml",
            br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="1" height="1"/></svg>"#
                .to_vec(),
        ),
        (
            "evil.png",
            "image/png",
            b"<script>alert(document.cookie)</script>".to_vec(),
        ),
        // Magic alone, cut short.
        ("cut.png", "image/png", b"\x89PNG".to_vec()),
    ];
    for (name, mime, bytes) in cases {
        s.upload(a.t(), name, mime, bytes)
            .await
            .expect_error(415, "unsupported_media_type");
    }
    // An empty file is no image either; "out of bounds" (422) is an equally fair answer.
    s.upload(a.t(), "empty.png", "image/png", Vec::new())
        .await
        .expect_error_in(&[(415, "unsupported_media_type"), (422, "invalid_input")]);
    // Nothing was stored.
    let stored: Vec<_> = std::fs::read_dir(s.dir.path().join("uploads"))
        .expect("uploads dir")
        .collect();
    assert!(stored.is_empty(), "rejected uploads left files: {stored:?}");

    s.upload(None, "dot.png", "image/png", png_1x1())
        .await
        .expect_error(401, "unauthorized");
    s.upload(Some("garbage"), "dot.png", "image/png", png_1x1())
        .await
        .expect_error(401, "unauthorized");
}

async fn upload_too_large(backend: Backend) {
    let s = start!(backend, &[("CHORUS__UPLOADS__MAX_BYTES", "1024")]);
    let a = s.user("alice").await;
    let mut big = png_1x1();
    big.resize(1024 * 1024, 0);
    s.raw_upload(&a.token, "big.png", "image/png", &big)
        .await
        .expect_error(413, "payload_too_large");
    // Nothing of it was kept.
    let stored = std::fs::read_dir(s.dir.path().join("uploads"))
        .unwrap()
        .count();
    assert_eq!(stored, 0, "the oversize upload left a file");
    // The limit is on the file, not the multipart framing: exactly 1024 bytes is fine, one
    // more is not.
    let mut at_limit = png_1x1();
    at_limit.resize(1024, 0);
    let r = s.upload(a.t(), "edge.png", "image/png", at_limit).await;
    r.expect(201);
    assert_eq!(r.json()["size"], 1024);
    let mut over = png_1x1();
    over.resize(1025, 0);
    s.raw_upload(&a.token, "over.png", "image/png", &over)
        .await
        .expect_error(413, "payload_too_large");
}

async fn uploads_path_traversal(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;
    // Something real to aim at inside uploads/, and the decoy beside it.
    let up = s.upload(a.t(), "dot.png", "image/png", png_1x1()).await;
    up.expect(201);
    let url = up.json()["url"].as_str().unwrap().to_string();
    let name = url.trim_start_matches("/uploads/").to_string();
    let stem = name.split('.').next().unwrap().to_string();
    std::fs::write(s.dir.path().join("uploads").join("notes.txt"), DECOY).unwrap();

    let paths = [
        "/uploads/..%2fCargo.toml".to_string(),
        "/uploads/..%2FCargo.toml".to_string(),
        "/uploads/../Cargo.toml".to_string(),
        "/uploads/../data/chorus.db".to_string(),
        "/uploads/..%2fdata%2fchorus.db".to_string(),
        "/uploads/%2e%2e/x".to_string(),
        "/uploads/%2e%2e%2fCargo.toml".to_string(),
        "/uploads/....//Cargo.toml".to_string(),
        "/uploads/notes.txt".to_string(),
        "/uploads/.gitkeep".to_string(),
        format!("/uploads/{stem}"),
        format!("/uploads/{stem}.html"),
        format!("/uploads/{stem}.png%00.html"),
        format!("/uploads/x/../{name}"),
    ];
    for p in &paths {
        let r = s.raw_get(p).await;
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains("decoy-secret") && !body.contains("SQLite format 3"),
            "GET {p} leaked a file: {}\n{body}",
            r.head
        );
        assert_eq!(
            r.status, 404,
            "GET {p}: expected 404, got:\n{}\n{body}",
            r.head
        );
    }
    // The real file still comes back by its real name.
    assert_eq!(s.raw_get(&url).await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Operations

/// Label values of one Prometheus sample line, e.g. `name{a="1",b="2"} 3`.
fn labels(line: &str) -> Vec<(String, String)> {
    let Some(start) = line.find('{') else {
        return Vec::new();
    };
    let end = line.rfind('}').unwrap_or(line.len());
    line[start + 1..end]
        .split("\",")
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        })
        .collect()
}

async fn health_ready_metrics(backend: Backend) {
    let s = start!(backend);
    let h = s.get("/healthz", None).await;
    h.expect(200);
    assert_eq!(h.json()["status"], "ok");
    let r = s.get("/readyz", None).await;
    r.expect(200);
    assert_eq!(r.json()["status"], "ready", "{}", r.text());
    assert_eq!(r.json()["database"], "ok", "{}", r.text());

    let alice = s.user("alice").await;
    // Raw paths must not become label values (unbounded cardinality): ids and unknown paths
    // are folded into their route.
    let canary = uuid::Uuid::new_v4().simple().to_string();
    s.get(&format!("/no-such-{canary}"), None).await.expect(404);
    s.get(&format!("/uploads/{canary}.png"), None)
        .await
        .expect(404);
    s.get("/api/users/987654321", alice.t()).await.expect(404);
    let m = s.get("/metrics", None).await;
    m.expect(200);
    let text = m.text();
    let sample = |method: &str, status: &str, route_has: &str| {
        text.lines()
            .filter(|l| l.starts_with("chorus_http_requests_total{"))
            .find(|l| {
                let ls = labels(l);
                let get = |k: &str| {
                    ls.iter()
                        .find(|(key, _)| key == k)
                        .map(|(_, v)| v.as_str())
                        .unwrap_or("")
                };
                get("method") == method
                    && get("status") == status
                    && get("route").contains(route_has)
                    && l.rsplit(' ')
                        .next()
                        .and_then(|v| v.parse::<f64>().ok())
                        .is_some_and(|v| v >= 1.0)
            })
            .map(str::to_string)
    };
    assert!(
        sample("POST", "201", "/api/users").is_some(),
        "no chorus_http_requests_total sample for POST /api/users 201 in:\n{text}"
    );
    assert!(
        sample("GET", "200", "/healthz").is_some(),
        "no chorus_http_requests_total sample for GET /healthz 200 in:\n{text}"
    );
    assert!(
        !text.contains(&canary) && !text.contains("987654321"),
        "raw paths leak into metric labels:\n{text}"
    );
    assert!(
        text.contains("chorus_http_request_duration_seconds"),
        "no duration histogram in:\n{text}"
    );
}

async fn unknown_route_and_method(backend: Backend) {
    let s = start!(backend);
    let a = s.user("alice").await;
    s.get("/api/nope", a.t())
        .await
        .expect_error(404, "not_found");
    s.get("/definitely/not/here", None)
        .await
        .expect_error(404, "not_found");
    s.request(Method::PUT, "/api/users/me", a.t(), Some(json!({})))
        .await
        .expect_error(405, "method_not_allowed");
    s.request(Method::PUT, "/api/contacts", a.t(), Some(json!({})))
        .await
        .expect_error(405, "method_not_allowed");
}

async fn openapi_document(backend: Backend) {
    let s = start!(backend);
    let r = s.get("/api-docs/openapi.json", None).await;
    r.expect(200);
    let doc = r.json();
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "not OpenAPI 3: {}",
        r.text()
    );
    for path in [
        "/api/users",
        "/api/sessions",
        "/api/users/me",
        "/api/contacts",
        "/api/communities",
        "/api/attachments",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "OpenAPI document lacks {path}"
        );
    }
    let ui = s.get("/swagger/", None).await;
    ui.expect(200);
    assert!(
        ui.text().to_lowercase().contains("swagger"),
        "/swagger/ is not the Swagger UI"
    );
}
