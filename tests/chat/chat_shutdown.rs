//! Graceful shutdown: on SIGTERM a node stores and acknowledges every send it already took,
//! flushes each connection, closes the sockets with 1001 and exits 0; after a restart the
//! recipient gets exactly what was acknowledged (and stored), once and in order.

use crate::common::{self, ws};

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::{Backend, Server, TestDb};
use serde_json::Value;
use ws::{private_conv, Client};

#[tokio::test]
async fn sigterm_flushes_acks_and_closes_with_going_away() {
    const SENT: i64 = 600;
    let db = TestDb::create(Backend::Sqlite).await.expect("sqlite");
    let mut s1 = Server::start_on(db.clone(), &[]).await;
    let alice = s1.user("alice").await;
    let bob = s1.user("bob").await;
    let conv = private_conv(alice.id, bob.id);
    let mut a = Client::connect_ready(&s1, &alice, "alice").await;
    let mut b = Client::connect_ready(&s1, &bob, "bob").await;
    for i in 1..=SENT {
        a.private(&format!("t-{i}"), bob.id, &format!("graceful {i}"))
            .await;
    }
    // Some sends are surely stored by now: the stop lands mid-stream, not before it.
    let first = a.recv_type("ack").await;
    let status = s1.terminate().await;
    assert!(status.success(), "chorus exited with {status:?} on SIGTERM");

    // Alice's connection ends with the close frame, after every ack the node owed her.
    let (code, rest) = a.expect_closed(Duration::from_secs(20)).await;
    assert_eq!(code, Some(1001), "close code after SIGTERM");
    let mut acked: BTreeMap<i64, String> = BTreeMap::new();
    for frame in std::iter::once(first).chain(rest.iter().map(|t| parse(t))) {
        assert_eq!(frame["type"], "ack", "only acks go to the sender: {frame}");
        acked.insert(
            frame["seq"].as_i64().expect("seq"),
            frame["id"].as_str().expect("id").to_owned(),
        );
    }
    let (bob_code, _) = b.expect_closed(Duration::from_secs(20)).await;
    assert_eq!(bob_code, Some(1001), "bob's close code after SIGTERM");

    // After a restart, what is stored is exactly what was acknowledged: nothing stored went
    // unacknowledged, nothing acknowledged went missing.
    let s2 = Server::start_on(db, &[]).await;
    let history: Vec<Value> = {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = s2
                .get(
                    &format!("/api/conversations/{conv}/messages?after={after}&limit=200"),
                    bob.t(),
                )
                .await;
            page.expect(200);
            let items = page.json().as_array().cloned().unwrap_or_default();
            let Some(last) = items.last() else { break };
            after = last["seq"].as_i64().expect("seq");
            all.extend(items);
        }
        all
    };
    let stored: Vec<i64> = history.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        stored,
        acked.keys().copied().collect::<Vec<_>>(),
        "stored seqs must equal acknowledged seqs"
    );
    assert!(!acked.is_empty() && acked.len() as i64 <= SENT);

    // Bob, reconnecting, gets every one of them once, in order.
    let mut b = Client::connect(&s2, &bob, "bob-2").await;
    let mut seen = HashSet::new();
    for expected in &stored {
        let m = b.recv_type("message").await;
        let seq = m["seq"].as_i64().unwrap();
        assert_eq!(seq, *expected, "replay out of order: {m}");
        assert!(seen.insert(seq), "seq {seq} twice");
    }
    eprintln!(
        "SIGTERM: {} of {SENT} sends acked and stored before the node stopped",
        acked.len()
    );
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
