//! Load generator: pairs of users exchange private messages through running Chorus nodes and
//! the tool reports throughput and latency. With several `--server`s, each pair's sender and
//! recipient sit on different nodes, so the figures are cross-node.
//!
//! ```sh
//! cargo run --release --example load -- --server http://127.0.0.1:8081 --pairs 20 --messages 500
//! ```
//! `scripts/bench-chorus.sh` starts the nodes and runs this (the side-by-side bench with
//! Socket.IO and a bare relay is `bench/load`). Traffic goes only to the given servers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
struct Args {
    /// Base URL of a node; repeat for several (recipients go to the next node).
    #[arg(long = "server", required = true)]
    servers: Vec<String>,
    /// Sender/recipient pairs, each with its own two connections.
    #[arg(long, default_value_t = 20)]
    pairs: usize,
    /// Messages each sender sends.
    #[arg(long, default_value_t = 500)]
    messages: usize,
    /// Unacknowledged sends a sender may have in flight.
    #[arg(long, default_value_t = 64)]
    window: usize,
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> Value {
    let resp = http.post(&url).json(&body).send().await.expect("request");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.json().await.expect("json")
}

/// Registers a user and returns (id, token).
async fn account(http: &reqwest::Client, server: &str, name: &str) -> (i64, String) {
    let user = post(
        http,
        format!("{server}/api/users"),
        json!({"name": name, "password": "load-test-pass"}),
    )
    .await;
    let session = post(
        http,
        format!("{server}/api/sessions"),
        json!({"name": name, "password": "load-test-pass"}),
    )
    .await;
    (
        user["id"].as_i64().expect("id"),
        session["token"].as_str().expect("token").to_owned(),
    )
}

fn ws_url(server: &str, token: &str) -> String {
    format!("{}/chat?token={token}", server.replacen("http", "ws", 1))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let http = reqwest::Client::new();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let start = Instant::now();
    let delivery = Arc::new(Mutex::new(Vec::<f64>::new()));
    let acks = Arc::new(Mutex::new(Vec::<f64>::new()));
    let mut tasks = Vec::new();
    // Senders start together once every connection is open, so the clock times only traffic.
    let go = Arc::new(tokio::sync::Barrier::new(args.pairs + 1));
    for pair in 0..args.pairs {
        let from_server = args.servers[pair % args.servers.len()].clone();
        let to_server = args.servers[(pair + 1) % args.servers.len()].clone();
        let (_, from_token) = account(&http, &from_server, &format!("s{run}{pair}")).await;
        let (to_id, to_token) = account(&http, &to_server, &format!("r{run}{pair}")).await;
        let (mut tx, _) = tokio_tungstenite::connect_async(ws_url(&from_server, &from_token))
            .await
            .expect("sender connects");
        let (rx, _) = tokio_tungstenite::connect_async(ws_url(&to_server, &to_token))
            .await
            .expect("recipient connects");
        let (messages, window) = (args.messages, args.window);
        let delivery = delivery.clone();
        let acks = acks.clone();
        let receiver = tokio::spawn(async move {
            let mut rx = rx;
            let mut got = 0;
            let mut seen = Vec::with_capacity(messages);
            while got < messages {
                let Some(Ok(Message::Text(text))) = rx.next().await else {
                    panic!("recipient connection ended after {got}");
                };
                let frame: Value = serde_json::from_str(&text).expect("json frame");
                if frame["type"] != "message" {
                    continue;
                }
                let sent: f64 = frame["content"]
                    .as_str()
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0.0);
                seen.push(start.elapsed().as_secs_f64() - sent);
                got += 1;
            }
            delivery.lock().await.extend(seen);
        });
        let go = go.clone();
        let sender = tokio::spawn(async move {
            go.wait().await;
            let mut in_flight = std::collections::HashMap::new();
            let mut sent = 0;
            let mut acked = 0;
            let mut latencies = Vec::with_capacity(messages);
            while acked < messages {
                while sent < messages && in_flight.len() < window {
                    let id = format!("m{sent}");
                    let now = start.elapsed().as_secs_f64();
                    let frame = json!({"type": "private", "id": id, "to": to_id,
                                       "content": format!("{now:.6}")});
                    tx.send(Message::Text(frame.to_string()))
                        .await
                        .expect("send");
                    in_flight.insert(id, now);
                    sent += 1;
                }
                let Some(Ok(Message::Text(text))) = tx.next().await else {
                    panic!("sender connection ended");
                };
                let frame: Value = serde_json::from_str(&text).expect("json frame");
                if frame["type"] == "ack" {
                    if let Some(at) = frame["id"].as_str().and_then(|id| in_flight.remove(id)) {
                        latencies.push(start.elapsed().as_secs_f64() - at);
                        acked += 1;
                    }
                } else if frame["type"] == "error" {
                    panic!("server refused a send: {text}");
                }
            }
            acks.lock().await.extend(latencies);
        });
        tasks.push(receiver);
        tasks.push(sender);
    }
    go.wait().await;
    let began = Instant::now();
    for task in tasks {
        task.await.expect("load task");
    }
    let elapsed = began.elapsed().max(Duration::from_millis(1));
    let mut delivery = delivery.lock().await.clone();
    let mut acks = acks.lock().await.clone();
    delivery.sort_by(f64::total_cmp);
    acks.sort_by(f64::total_cmp);
    let total = delivery.len();
    println!(
        "servers={} pairs={} messages={} window={}",
        args.servers.len(),
        args.pairs,
        total,
        args.window
    );
    println!(
        "delivered {total} in {:.2}s: {:.0} msg/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "delivery latency p50={:.2}ms p99={:.2}ms; ack latency p50={:.2}ms p99={:.2}ms",
        percentile(&delivery, 0.50) * 1e3,
        percentile(&delivery, 0.99) * 1e3,
        percentile(&acks, 0.50) * 1e3,
        percentile(&acks, 0.99) * 1e3
    );
}
