//! The `chorus-client` crate against the real binary: every REST call with its success and its
//! server error, the bare websocket, and the reconnecting chat session (acks, idempotent ids,
//! presence, typing, reads, contact and member notices, refusals, and a server restart with
//! nothing lost and nothing handed out twice).

use crate::common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chorus_client::{
    Api, Chat, ChatEvent, ChatOptions, ClientError, ClientFrame, ConversationId, Media,
    NewCommunity, Page, ProfileUpdate, Registration, ServerFrame, Socket,
};
use common::{Backend, Server, TestDb};

/// How long any one expected event may take (two shared cores).
const DEADLINE: Duration = Duration::from_secs(30);
const PW: &str = "correct horse battery";

/// The classic 1x1 transparent GIF.
const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

fn fast() -> ChatOptions {
    ChatOptions {
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_secs(1),
        ..ChatOptions::default()
    }
}

/// Registers `name` and logs in.
async fn account(base: &str, name: &str) -> (Api, chorus_client::User) {
    let mut api = Api::new(base).unwrap();
    api.register(&Registration {
        name: name.into(),
        password: PW.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let s = api.login(name, PW).await.unwrap();
    (api, s.user)
}

/// Waits for the first event `pick` accepts, skipping others.
async fn until<T>(chat: &mut Chat, what: &str, mut pick: impl FnMut(&ChatEvent) -> Option<T>) -> T {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        match chat.event_within(left).await {
            Ok(ev) => {
                if let Some(v) = pick(&ev) {
                    return v;
                }
            }
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    }
}

fn api_code(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test]
async fn every_rest_call_and_its_errors() {
    let s = start!(Backend::Sqlite);
    let anon = Api::new(&s.base).unwrap();
    anon.health().await.unwrap();
    assert!(matches!(Api::new("ftp://x"), Err(ClientError::BadUrl(..))));
    assert!(matches!(anon.me().await, Err(ClientError::NoSession)));

    let (mut alice, a) = account(&s.base, "alice").await;
    let (bob, b) = account(&s.base, "bob").await;
    let dup = anon
        .register(&Registration {
            name: "alice".into(),
            password: PW.into(),
            ..Default::default()
        })
        .await;
    assert_eq!(api_code(dup), (409, "name_taken".into()));
    let mut wrong = Api::new(&s.base).unwrap();
    assert_eq!(
        api_code(wrong.login("alice", "nope nope nope").await),
        (401, "invalid_credentials".into())
    );

    // Profile.
    assert_eq!(alice.me().await.unwrap().id, a.id);
    let upd = ProfileUpdate {
        email: Some(Some("a@example.org".into())),
        ..Default::default()
    };
    assert_eq!(
        alice.update_me(&upd).await.unwrap().email.as_deref(),
        Some("a@example.org")
    );
    let bad = ProfileUpdate {
        password: Some("another long one".into()),
        current_password: Some("not the password".into()),
        ..Default::default()
    };
    assert_eq!(
        api_code(alice.update_me(&bad).await),
        (403, "wrong_password".into())
    );
    let found = alice.search_users("bo").await.unwrap();
    assert!(found.iter().any(|u| u.id == b.id));
    assert_eq!(api_code(alice.search_users("").await).0, 422);
    assert_eq!(alice.user(b.id).await.unwrap().name, "bob");
    assert_eq!(
        api_code(alice.user(999_999).await),
        (404, "not_found".into())
    );

    // Contacts.
    assert_eq!(alice.add_contact(b.id).await.unwrap().id, b.id);
    assert_eq!(
        api_code(alice.add_contact(b.id).await),
        (409, "already_contact".into())
    );
    assert_eq!(
        bob.contacts()
            .await
            .unwrap()
            .iter()
            .map(|u| u.id)
            .collect::<Vec<_>>(),
        vec![a.id]
    );
    alice.remove_contact(b.id).await.unwrap();
    assert_eq!(
        api_code(alice.remove_contact(b.id).await),
        (404, "not_a_contact".into())
    );
    assert!(alice.contacts().await.unwrap().is_empty());

    // Communities.
    let c = alice
        .create_community(&NewCommunity {
            name: "rustaceans".into(),
            description: Some("crabs".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(c.member_count, 1);
    assert_eq!(
        api_code(bob.members(c.id).await),
        (403, "not_a_member".into())
    );
    assert_eq!(bob.search_communities("rust").await.unwrap()[0].id, c.id);
    assert_eq!(bob.join_community(c.id).await.unwrap().member_count, 2);
    assert_eq!(
        api_code(bob.join_community(c.id).await),
        (409, "already_member".into())
    );
    assert_eq!(
        api_code(bob.join_community(987_654).await),
        (404, "not_found".into())
    );
    assert_eq!(bob.communities().await.unwrap()[0].id, c.id);
    assert_eq!(alice.members(c.id).await.unwrap().len(), 2);
    bob.leave_community(c.id).await.unwrap();
    assert_eq!(
        api_code(bob.leave_community(c.id).await),
        (404, "not_a_member".into())
    );

    // Uploads.
    let att = alice.upload("dot.gif", GIF.to_vec()).await.unwrap();
    assert!(
        att.url.starts_with("/uploads/") && att.content_type == "image/gif",
        "{att:?}"
    );
    assert_eq!(
        api_code(alice.upload("x.txt", b"plain text".to_vec()).await),
        (415, "unsupported_media_type".into())
    );

    // History and reads of a conversation with two stored messages.
    alice.add_contact(b.id).await.unwrap();
    let conv = ConversationId::private(a.id, b.id);
    let mut chat = Chat::start(alice.clone(), HashMap::new(), fast());
    chat.send_private(b.id, Media::Text, "one");
    chat.send_private(b.id, Media::Image, att.url.clone());
    for want in 1..=2 {
        let seq = until(&mut chat, "ack", |e| match e {
            ChatEvent::Acked { message, .. } => Some(message.seq),
            _ => None,
        })
        .await;
        assert_eq!(seq, want);
    }
    let all = bob.history(conv, Page::Latest, 50).await.unwrap();
    assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!((all[0].from, all[1].media), (Some(a.id), Media::Image));
    assert_eq!(
        bob.history(conv, Page::Before(2), 50).await.unwrap().len(),
        1
    );
    assert_eq!(
        bob.history(conv, Page::After(1), 50).await.unwrap()[0].content,
        att.url
    );
    let stranger = account(&s.base, "carol").await.0;
    assert_eq!(
        api_code(stranger.history(conv, Page::Latest, 10).await),
        (403, "forbidden".into())
    );
    assert!(!bob.reads(conv).await.unwrap().iter().any(|r| r.seq > 0));
    chat.read(conv, 2);
    common::wait_for(DEADLINE, "alice's read cursor", || {
        let bob = bob.clone();
        async move {
            let reads = bob.reads(conv).await.unwrap();
            reads
                .iter()
                .any(|r| r.user == a.id && r.seq == 2)
                .then_some(())
        }
    })
    .await;
    assert_eq!(
        api_code(stranger.reads(conv).await),
        (403, "forbidden".into())
    );
    drop(chat);

    // Log-out ends the session everywhere; deleting the account frees the name.
    let mut again = Api::new(&s.base).unwrap();
    again.login("alice", PW).await.unwrap();
    again.logout().await.unwrap();
    assert!(matches!(again.me().await, Err(ClientError::NoSession)));
    let revoked = Api::new(&s.base).unwrap().with_token("00".repeat(32));
    let err = revoked.me().await.unwrap_err();
    assert!(
        err.is_auth() && err.code() == Some("unauthorized"),
        "{err:?}"
    );
    alice.delete_me().await.unwrap();
    account(&s.base, "alice").await;
}

#[tokio::test]
async fn bare_socket_frames_and_refusals() {
    let s = start!(Backend::Sqlite);
    let (alice, _) = account(&s.base, "alice").await;
    let (bob, b) = account(&s.base, "bob").await;
    alice.add_contact(b.id).await.unwrap();

    let bad = Api::new(&s.base).unwrap().with_token("ff".repeat(32));
    let err = Socket::connect(&bad).await.err().expect("refused");
    assert!(
        err.is_auth() && err.code() == Some("unauthorized"),
        "{err:?}"
    );

    let mut sa = Socket::connect(&alice).await.unwrap();
    let mut sb = Socket::connect(&bob).await.unwrap();
    sa.send_text("{not json").await.unwrap();
    let code = loop {
        match sa.recv_within(DEADLINE).await.unwrap() {
            ServerFrame::Error { code, .. } => break code,
            // Bob's socket may have come online just before.
            ServerFrame::Presence { .. } => continue,
            f => panic!("{f:?}"),
        }
    };
    assert_eq!(code, "malformed_frame");
    sa.send(&ClientFrame::Private {
        id: "s-1".into(),
        to: b.id,
        media: Media::Text,
        content: "hello".into(),
    })
    .await
    .unwrap();
    let ack = loop {
        if let f @ ServerFrame::Ack { .. } = sa.recv_within(DEADLINE).await.unwrap() {
            break f;
        }
    };
    let got = loop {
        if let ServerFrame::Message(m) = sb.recv_within(DEADLINE).await.unwrap() {
            break m;
        }
    };
    assert_eq!(got.content, "hello");
    let ServerFrame::Ack { msg_id, .. } = ack else {
        unreachable!()
    };
    assert_eq!(got.msg_id, msg_id);
    sa.send(&ClientFrame::Heartbeat).await.unwrap();
    sa.close().await.unwrap();
}

#[tokio::test]
async fn chat_session_delivers_notices_and_refusals() {
    let s = start!(Backend::Sqlite);
    let (alice, a) = account(&s.base, "alice").await;
    let (bob, b) = account(&s.base, "bob").await;
    let mut ca = Chat::start(alice.clone(), HashMap::new(), fast());
    until(&mut ca, "alice connected", |e| {
        (*e == ChatEvent::Connected).then_some(())
    })
    .await;

    // A contact added by the other side, then their presence.
    bob.add_contact(a.id).await.unwrap();
    until(&mut ca, "contact notice", |e| {
        (*e == ChatEvent::Contact {
            user: b.id,
            added: true,
        })
        .then_some(())
    })
    .await;
    let mut cb = Chat::start(bob.clone(), HashMap::new(), fast());
    until(&mut ca, "bob online", |e| {
        (*e == ChatEvent::Presence {
            user: b.id,
            online: true,
        })
        .then_some(())
    })
    .await;
    until(&mut cb, "bob connected", |e| {
        (*e == ChatEvent::Connected).then_some(())
    })
    .await;

    // A send, acked with its id; the same id again is stored once and acked the same.
    let frame = ClientFrame::Private {
        id: "fixed-1".into(),
        to: b.id,
        media: Media::Text,
        content: "hi bob".into(),
    };
    ca.send(frame.clone());
    let first = until(&mut ca, "ack", |e| match e {
        ChatEvent::Acked { id, message } if id == "fixed-1" => Some(message.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        (first.seq, first.from, first.content.as_str()),
        (1, Some(a.id), "hi bob")
    );
    let got = until(&mut cb, "message", |e| match e {
        ChatEvent::Message(m) => Some(m.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        (got.msg_id.as_str(), got.from),
        (first.msg_id.as_str(), Some(a.id))
    );
    ca.send(frame);
    let second = until(&mut ca, "repeat ack", |e| match e {
        ChatEvent::Acked { message, .. } => Some(message.clone()),
        _ => None,
    })
    .await;
    assert_eq!((second.msg_id, second.seq), (first.msg_id.clone(), 1));

    // Typing and read marks reach the other side.
    cb.typing_to(a.id);
    let conv = ConversationId::private(a.id, b.id);
    until(&mut ca, "typing", |e| {
        (*e == ChatEvent::Typing {
            from: b.id,
            conversation: conv,
        })
        .then_some(())
    })
    .await;
    cb.read(conv, 1);
    until(&mut ca, "seen", |e| {
        (*e == ChatEvent::Read {
            conversation: conv,
            user: b.id,
            seq: 1,
        })
        .then_some(())
    })
    .await;

    // Groups: a member notice, a group message, and a refusal for a non-member.
    let c = alice
        .create_community(&NewCommunity {
            name: "g".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = cb.send_group(c.id, Media::Text, "let me in");
    let (code, rid) = until(&mut cb, "refusal", |e| match e {
        ChatEvent::Rejected { id, code, .. } => Some((code.clone(), id.clone())),
        _ => None,
    })
    .await;
    assert_eq!((code.as_str(), rid), ("not_a_member", Some(id)));
    bob.join_community(c.id).await.unwrap();
    until(&mut ca, "member notice", |e| {
        (*e == ChatEvent::Member {
            community: c.id,
            user: b.id,
            joined: true,
        })
        .then_some(())
    })
    .await;
    cb.send_group(c.id, Media::Text, "in now");
    let m = until(&mut ca, "group message", |e| match e {
        ChatEvent::Message(m) => Some(m.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        (m.conversation, m.content.as_str()),
        (ConversationId::Group(c.id), "in now")
    );

    // Offline: bob's presence goes away when his session stops.
    drop(cb);
    until(&mut ca, "bob offline", |e| {
        (*e == ChatEvent::Presence {
            user: b.id,
            online: false,
        })
        .then_some(())
    })
    .await;

    // Logging out ends the session's websocket: the chat says so and stops.
    let mut alice2 = alice.clone();
    alice2.logout().await.unwrap();
    until(&mut ca, "session ended", |e| {
        matches!(e, ChatEvent::SessionEnded(_)).then_some(())
    })
    .await;
}

/// The server stops and comes back on the same address and database: both sessions reconnect
/// by themselves, a message queued while it was down is stored once and delivered once, and
/// what was delivered before is not handed out again (the server replays from read cursors).
#[tokio::test]
async fn chat_session_survives_a_server_restart() {
    let db = match TestDb::create(Backend::Sqlite).await {
        Some(db) => db,
        None => return,
    };
    let mut s = Server::start_on(db.clone(), &[]).await;
    let (alice, a) = account(&s.base, "alice").await;
    let (bob, b) = account(&s.base, "bob").await;
    alice.add_contact(b.id).await.unwrap();
    let mut ca = Chat::start(alice.clone(), HashMap::new(), fast());
    let mut cb = Chat::start(bob.clone(), HashMap::new(), fast());
    for c in [&mut ca, &mut cb] {
        until(c, "connected", |e| {
            (*e == ChatEvent::Connected).then_some(())
        })
        .await;
    }
    let mut seen = HashSet::new();
    for text in ["before 1", "before 2"] {
        ca.send_private(b.id, Media::Text, text);
        let m = until(&mut cb, text, |e| match e {
            ChatEvent::Message(m) => Some(m.clone()),
            _ => None,
        })
        .await;
        assert!(seen.insert((m.conversation, m.seq)));
    }

    let addr = s.addr.clone();
    s.terminate().await;
    drop(s);
    until(&mut ca, "alice disconnected", |e| {
        matches!(e, ChatEvent::Disconnected { .. }).then_some(())
    })
    .await;
    let queued = ca.send_private(b.id, Media::Text, "while down");

    let s = Server::start_on(db.clone(), &[("CHORUS__SERVER__ADDR", &addr)]).await;
    until(&mut ca, "queued send acked", |e| match e {
        ChatEvent::Acked { id, .. } if *id == queued => Some(()),
        _ => None,
    })
    .await;
    ca.send_private(b.id, Media::Text, "after");
    let mut texts = Vec::new();
    while texts.last().map(String::as_str) != Some("after") {
        let m = until(&mut cb, "messages after the restart", |e| match e {
            ChatEvent::Message(m) => Some(m.clone()),
            _ => None,
        })
        .await;
        assert!(
            seen.insert((m.conversation, m.seq)),
            "handed out twice: {m:?}"
        );
        texts.push(m.content);
    }
    assert_eq!(texts, ["while down", "after"]);
    let stored = bob
        .history(ConversationId::private(a.id, b.id), Page::Latest, 50)
        .await
        .unwrap();
    assert_eq!(stored.len(), 4, "each send stored once: {stored:?}");
    drop(s);
}
