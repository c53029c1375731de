//! One connection's side of a scenario: it may send (a window of unacknowledged sends, and
//! optionally a rate), and it always receives, checking every delivery: each sender's messages
//! must arrive exactly once and in order.
//!
//! A message's content is `sender:k:micros` — the global sender number, the sender's k-th
//! message (0, 1, 2, ...), and when it was sent (microseconds on the run's clock).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::time::sleep_until;
use tokio_tungstenite::tungstenite::Message;

use crate::proto::{classify, keepalive, send_frame, Incoming, Kind, System, Ws};

/// How often a worker says something on its own (Chorus drops silent connections).
const KEEPALIVE: Duration = Duration::from_secs(10);

/// At most this many sends go out before the worker reads again.
const BURST: usize = 64;

/// What a sending connection sends.
#[derive(Clone, Debug)]
pub struct SendPlan {
    /// The sender's global number (in the content).
    pub sender: u32,
    pub kind: Kind,
    /// The target's address as JSON.
    pub to: String,
    /// Sends in flight (unacknowledged) at most.
    pub window: usize,
    /// Time between sends when rate-limited; `None` sends as fast as the window allows.
    pub interval: Option<Duration>,
    /// Prefix of this phase's send ids (Chorus de-duplicates by id per sender).
    pub tag: String,
    /// How many connections each message should reach.
    pub fanout: u64,
}

/// The clock and the counters every worker of a phase shares.
pub struct Phase {
    /// The run's clock (content timestamps are microseconds since this).
    pub clock: Instant,
    /// Sending starts here.
    pub begin: Instant,
    /// Sending stops here (in-flight sends are still awaited).
    pub until: Instant,
    /// First-time deliveries so far, all workers.
    pub unique: AtomicU64,
    /// Deliveries expected, added by each sender when it is done (sent × fanout).
    pub expected: AtomicU64,
    /// Senders done.
    pub senders_done: AtomicU64,
}

/// One sender's deliveries as seen by one connection.
#[derive(Default, Debug)]
pub struct Track {
    seen: Vec<u64>,
    pub unique: u64,
    pub dup: u64,
    /// Arrived after a later message of the same sender.
    pub out_of_order: u64,
    next: u64,
}

impl Track {
    /// Records message `k`; true if it is new.
    pub fn record(&mut self, k: u64) -> bool {
        let (word, bit) = ((k / 64) as usize, 1u64 << (k % 64));
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & bit != 0 {
            self.dup += 1;
            return false;
        }
        self.seen[word] |= bit;
        self.unique += 1;
        if k < self.next {
            self.out_of_order += 1;
        }
        self.next = self.next.max(k + 1);
        true
    }
}

/// What a worker saw.
#[derive(Default, Debug)]
pub struct Outcome {
    pub sent: u64,
    /// Per sender number.
    pub tracks: HashMap<u32, Track>,
    /// Delivery latencies of first-time deliveries, microseconds.
    pub latencies: Vec<u32>,
    /// When the last first-time delivery arrived (µs on the run clock).
    pub last_delivery_us: u64,
    pub refused: u64,
    /// The first refusal or connection failure, for the report.
    pub problem: Option<String>,
}

/// Runs one connection through a phase and hands the connection back (for the next phase)
/// unless it failed.
pub async fn run(
    mut ws: Ws,
    system: System,
    plan: Option<SendPlan>,
    phase: Arc<Phase>,
    mut stop: watch::Receiver<bool>,
) -> (Option<Ws>, Outcome) {
    let mut out = Outcome::default();
    let mut in_flight = 0usize;
    let mut ack_no = 1_000u64;
    let mut sending = plan.is_some();
    let mut reported = plan.is_none();
    let mut next_at = phase.begin;
    let mut last_said = Instant::now();
    sleep_until(phase.begin.into()).await;
    loop {
        let now = Instant::now();
        if let (Some(p), true) = (&plan, sending) {
            if now >= phase.until {
                sending = false;
            } else {
                let mut burst = 0;
                while in_flight < p.window
                    && burst < BURST
                    && p.interval.map_or(true, |_| next_at <= now)
                {
                    let t = phase.clock.elapsed().as_micros();
                    let k = out.sent;
                    let content = format!("{}:{k}:{t}", p.sender);
                    let id = format!("{}{k}", p.tag);
                    ack_no += 1;
                    let text = send_frame(system, p.kind, &p.to, &id, &content, ack_no);
                    if let Err(e) = ws.feed(Message::Text(text)).await {
                        out.problem = Some(format!("send: {e}"));
                        return (None, out);
                    }
                    in_flight += 1;
                    out.sent += 1;
                    burst += 1;
                    if let Some(iv) = p.interval {
                        next_at += iv;
                    }
                }
                if burst > 0 {
                    if let Err(e) = ws.flush().await {
                        out.problem = Some(format!("send: {e}"));
                        return (None, out);
                    }
                    last_said = now;
                }
            }
        }
        if let (Some(p), false, false, 0) = (&plan, reported, sending, in_flight) {
            phase
                .expected
                .fetch_add(out.sent * p.fanout, Ordering::SeqCst);
            phase.senders_done.fetch_add(1, Ordering::SeqCst);
            reported = true;
        }
        if last_said.elapsed() >= KEEPALIVE {
            if let Some(text) = keepalive(system) {
                if ws.send(Message::Text(text.into())).await.is_err() {
                    out.problem = Some("keep-alive failed".into());
                    return (None, out);
                }
            }
            last_said = Instant::now();
        }
        // Wake for the next rate-limited send, or for the end of sending.
        let wake = match &plan {
            Some(p) if sending && now < phase.until => {
                let rate_wait = p.interval.is_some() && in_flight < p.window;
                Some(if rate_wait {
                    next_at.min(phase.until)
                } else {
                    phase.until
                })
            }
            _ => None,
        };
        let keepalive_at = last_said + KEEPALIVE;
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(c))) => {
                        out.problem = Some(format!("closed by the server: {c:?}"));
                        return (None, out);
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        out.problem = Some(format!("receive: {e}"));
                        return (None, out);
                    }
                    None => {
                        out.problem = Some("connection ended".into());
                        return (None, out);
                    }
                };
                match classify(system, &text) {
                    Incoming::Ack => in_flight = in_flight.saturating_sub(1),
                    Incoming::Delivery(content) => deliver(&mut out, &phase, content),
                    Incoming::Refused(t) => {
                        out.refused += 1;
                        if out.problem.is_none() {
                            out.problem = Some(format!("refused: {}", &t[..t.len().min(200)]));
                        }
                        in_flight = in_flight.saturating_sub(1);
                    }
                    Incoming::Ping => {
                        if ws.send(Message::Text("3".into())).await.is_err() {
                            out.problem = Some("pong failed".into());
                            return (None, out);
                        }
                    }
                    Incoming::Other => {}
                }
            }
            _ = sleep_until(wake.unwrap_or(now).into()), if wake.is_some() => {}
            _ = sleep_until(keepalive_at.into()), if keepalive(system).is_some() => {}
        }
    }
    (Some(ws), out)
}

fn deliver(out: &mut Outcome, phase: &Phase, content: &str) {
    let mut parts = content.splitn(3, ':');
    let (Some(Ok(sender)), Some(Ok(k)), Some(Ok(t))) = (
        parts.next().map(str::parse::<u32>),
        parts.next().map(str::parse::<u64>),
        parts.next().map(str::parse::<u64>),
    ) else {
        out.refused += 1;
        out.problem
            .get_or_insert_with(|| format!("a delivery not sent by this run: {content:?}"));
        return;
    };
    if out.tracks.entry(sender).or_default().record(k) {
        let now = phase.clock.elapsed().as_micros() as u64;
        out.latencies
            .push(now.saturating_sub(t).min(u32::MAX as u64) as u32);
        out.last_delivery_us = out.last_delivery_us.max(now);
        phase.unique.fetch_add(1, Ordering::Relaxed);
    }
}

/// Keeps an idle connection alive until `stop`: answers Engine.IO pings, sends Chorus
/// heartbeats. Returns false if the server dropped it.
pub async fn idle(mut ws: Ws, system: System, mut stop: watch::Receiver<bool>) -> bool {
    let mut tick = tokio::time::interval(KEEPALIVE);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = ws.close(None).await;
                return true;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) if t == "2" && system == System::Socketio => {
                    if ws.send(Message::Text("3".into())).await.is_err() {
                        return false;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {
                if let Some(text) = keepalive(system) {
                    if ws.send(Message::Text(text.into())).await.is_err() {
                        return false;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Track;

    #[test]
    fn track_counts_dups_and_order() {
        let mut t = Track::default();
        for k in [0, 1, 3, 2, 3, 200] {
            t.record(k);
        }
        assert_eq!((t.unique, t.dup, t.out_of_order), (5, 1, 1));
    }
}
