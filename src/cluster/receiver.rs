//! `udp_recv`'s brain: who the peers are, which of their packets arrived, what is missing.
//! Notices that pass are handed up to the fan-out (over a channel, in the order heard); the
//! cluster itself never touches a connection.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use tokio_util::sync::CancellationToken;

use super::event::{Control, Event};
use super::packet::{Codec, DropReason, Envelope, ReplayWindow};
use super::{Heard, Inbound, Outbound, PeerAddr};
use crate::config::ClusterSettings;
use crate::ids::{ConversationId, Seq, UserId};
use crate::metrics::Metrics;
use crate::notice::Notice;
use crate::presence::Presence;
use crate::store::now_ms;

/// Re-send requests per gap before giving up on the origin and catching up from storage.
const MAX_ATTEMPTS: u32 = 20;
/// Most packets asked for in one request.
const MAX_RANGE: u64 = 256;
/// Most requests sent to one peer per repair round.
const MAX_RANGES: usize = 64;
/// How often gaps are re-requested and liveness is checked.
const REPAIR_EVERY: Duration = Duration::from_millis(150);
/// Read receipts remembered for ordering before the table starts over.
const READS_KEPT: usize = 100_000;
/// Least time between two warnings about the same peer's clock.
const CLOCK_WARN_EVERY: Duration = Duration::from_secs(10);

/// A peer as `/readyz` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub node: String,
    /// Milliseconds since its last packet.
    pub last_heard_ms: u64,
}

/// What this node knows of one origin.
struct Peer {
    addr: PeerAddr,
    epoch: u64,
    /// Every packet up to here arrived (or was given up on).
    contiguous: u64,
    /// Packets above `contiguous` that arrived.
    received: BTreeSet<u64>,
    /// The highest number known to exist (from packets and heartbeats).
    known: u64,
    /// Control numbers seen this epoch: a replayed heartbeat or request is refused.
    controls: ReplayWindow,
    last_heard: Instant,
    /// Where the oldest gap starts, and for how many rounds it has been asked for: attempts
    /// count only while that gap stays open.
    gap_from: u64,
    attempts: u32,
    alive: bool,
    /// It announced its departure: silent from now on, and not revived by late packets of
    /// the same incarnation.
    left: bool,
    /// The number of the last applied `presence` per user: an older one (a re-sent packet
    /// arriving late) must not overwrite it.
    presence_n: HashMap<UserId, u64>,
}

impl Peer {
    fn new(addr: PeerAddr, epoch: u64) -> Self {
        Self {
            addr,
            epoch,
            contiguous: 0,
            received: BTreeSet::new(),
            known: 0,
            controls: ReplayWindow::default(),
            last_heard: Instant::now(),
            gap_from: 0,
            attempts: 0,
            alive: true,
            left: false,
            presence_n: HashMap::new(),
        }
    }

    /// The runs of missing numbers, oldest first, each at most [`MAX_RANGE`] long, at most
    /// [`MAX_RANGES`] of them.
    fn missing(&self) -> Vec<(u64, u64)> {
        let mut runs = Vec::new();
        let mut expect = self.contiguous + 1;
        let received = self.received.iter().copied().chain([self.known + 1]);
        for next in received {
            while next > expect && runs.len() < MAX_RANGES {
                let to = (next - 1).min(expect + MAX_RANGE - 1);
                runs.push((expect, to));
                expect = to + 1;
            }
            expect = expect.max(next + 1);
        }
        runs
    }

    fn mark(&mut self, n: u64) {
        if n > self.contiguous {
            self.received.insert(n);
        }
        self.known = self.known.max(n);
        while self.received.remove(&(self.contiguous + 1)) {
            self.contiguous += 1;
        }
    }

    fn give_up_to(&mut self, n: u64) {
        self.contiguous = self.contiguous.max(n);
        self.received.retain(|r| *r > n);
        while self.received.remove(&(self.contiguous + 1)) {
            self.contiguous += 1;
        }
        self.attempts = 0;
    }
}

/// What the receiver works with besides its own tables.
pub(super) struct Handles {
    /// This node's id: its own echo is dropped.
    pub me: String,
    /// To `udp_send`: re-send requests and answers.
    pub outbox: mpsc::Sender<Outbound>,
    /// To the fan-out: peers' notices and catch-up requests.
    pub heard: mpsc::Sender<Heard>,
    /// Whom each peer reported connected.
    pub presence: Arc<Presence>,
    pub metrics: Metrics,
    /// The live peers, for `/readyz`.
    pub view: Arc<Mutex<Vec<PeerView>>>,
}

/// The receiving side of the cluster.
pub(super) struct Receiver {
    me: String,
    outbox: mpsc::Sender<Outbound>,
    heard: mpsc::Sender<Heard>,
    presence: Arc<Presence>,
    metrics: Metrics,
    codec: Codec,
    settings: ClusterSettings,
    peers: HashMap<String, Peer>,
    view: Arc<Mutex<Vec<PeerView>>>,
    /// The highest read cursor forwarded per (conversation, reader): a late, lower one is
    /// old news.
    reads: HashMap<(ConversationId, UserId), Seq>,
    /// When each peer's clock was last warned about.
    clock_warned: HashMap<String, Instant>,
}

impl Receiver {
    pub(super) fn new(handles: Handles, codec: Codec, settings: ClusterSettings) -> Self {
        let Handles {
            me,
            outbox,
            heard,
            presence,
            metrics,
            view,
        } = handles;
        Self {
            me,
            outbox,
            heard,
            presence,
            metrics,
            codec,
            settings,
            peers: HashMap::new(),
            view,
            reads: HashMap::new(),
            clock_warned: HashMap::new(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        stopping: CancellationToken,
    ) {
        let mut repair = tokio::time::interval(REPAIR_EVERY);
        loop {
            tokio::select! {
                packet = inbound.recv() => match packet {
                    Some(p) => self.packet(p).await,
                    None => return,
                },
                _ = repair.tick() => self.repair().await,
                _ = stopping.cancelled() => return,
            }
        }
    }

    fn drop_packet(&self, reason: DropReason) {
        self.metrics
            .cluster_dropped
            .with_label_values(&[reason.label()])
            .inc();
    }

    async fn packet(&mut self, inbound: Inbound) {
        let envelope = match self.check(&inbound) {
            Ok(e) => e,
            Err(reason) => {
                if reason != DropReason::Own {
                    tracing::debug!(reason = reason.label(), from = ?inbound.from, "cluster: dropped packet");
                }
                self.drop_packet(reason);
                return;
            }
        };
        let max_skew = self.settings.max_skew_ms;
        let Envelope {
            node,
            epoch,
            n,
            c,
            ts,
            event,
            ..
        } = envelope;
        let addr = PeerAddr {
            node: node.clone(),
            udp: inbound.from,
        };
        // Which incarnation is this? Ordering is by the origin's epoch and packet numbers, not
        // by our clock: a peer whose clock is off is warned about loudly but still heard.
        let skew = now_ms() - ts;
        if skew.abs() > max_skew {
            self.warn_clock(&node, format_args!("clock off by {skew} ms (max_skew_ms {max_skew}); ordering by its epoch and packet numbers"));
        }
        let restart = match self.peers.get(&node) {
            None => true,
            Some(p) if epoch == p.epoch => false,
            Some(p) if epoch > p.epoch => true,
            Some(p) if p.alive => {
                // An earlier incarnation's packet, late (or a restart with a clock behind the
                // previous start: heard once the current incarnation has gone silent).
                self.warn_clock(&node, format_args!("sent epoch {epoch}, older than the live incarnation's; ignored until that one goes silent"));
                self.drop_packet(DropReason::Stale);
                return;
            }
            Some(_) if skew.abs() > max_skew => {
                // A dead peer "restarting" into the past with an old timestamp: a replay.
                self.drop_packet(DropReason::Stale);
                return;
            }
            Some(_) => {
                self.warn_clock(&node, format_args!("restarted with a clock behind its previous start; accepted as a new incarnation (it had gone silent)"));
                true
            }
        };
        let mut first_contact = false;
        let mut ghosts = Vec::new();
        if restart {
            if self.peers.contains_key(&node) {
                // Its former connections died with the previous incarnation.
                tracing::info!(%node, epoch, "cluster: peer restarted; dropping its former presence");
                ghosts = self.presence.forget_node(&node);
            }
            self.peers
                .insert(node.clone(), Peer::new(addr.clone(), epoch));
            first_contact = true;
        }
        let Some(peer) = self.peers.get_mut(&node) else {
            return;
        };
        if first_contact {
            // What it sent before we heard it is not ours to re-request: start from here and
            // let local connections catch up from storage instead.
            let before = match &event {
                Event::Control(Control::Heartbeat { last } | Control::Leave { last }) => *last,
                _ if n > 0 => n - 1,
                _ => 0,
            };
            peer.contiguous = before;
            peer.known = before;
        }
        let control = matches!(event, Event::Control(_));
        if control {
            if !peer.controls.accept(c) {
                self.drop_packet(DropReason::Replayed);
                return;
            }
        } else if n == 0 || n <= peer.contiguous || peer.received.contains(&n) {
            self.drop_packet(DropReason::Replayed);
            return;
        }
        // Requests are answered only where the origin was already known to be (learned from
        // authenticated, fresh packets), never at a packet's own source: a request heard first
        // (before any other packet of this epoch) waits for the requester's next round.
        let known_addr = (!first_contact).then(|| peer.addr.clone());
        if let Event::Notice(Notice::Presence { user, .. }) = &event {
            // Numbers order one origin's events: a re-sent older presence is old news.
            if peer.presence_n.get(user).is_some_and(|last| *last > n) {
                peer.mark(n);
                self.drop_packet(DropReason::Stale);
                return;
            }
            peer.presence_n.insert(*user, n);
        }
        peer.addr = addr;
        peer.last_heard = Instant::now();
        let revived = !peer.alive && !peer.left;
        peer.alive = !peer.left;
        if !control {
            peer.mark(n);
        }
        let mut departed = false;
        match event {
            Event::Control(Control::Heartbeat { last }) => {
                peer.known = peer.known.max(last);
            }
            Event::Control(Control::Resend { from, to }) => match known_addr {
                Some(known) => {
                    let to = to.min(from.saturating_add(MAX_RANGE - 1));
                    let _ = self.outbox.try_send(Outbound::Resend(known, from, to));
                }
                None => self.drop_packet(DropReason::WrongAddress),
            },
            Event::Control(Control::Gone { from, to }) => {
                tracing::warn!(%node, from, to, "cluster: origin no longer has packets; catching up from storage");
                peer.give_up_to(to);
                self.metrics.cluster_unrecovered.inc();
                let _ = self.heard.send(Heard::Resync).await;
            }
            Event::Control(Control::Leave { last }) => {
                peer.known = peer.known.max(last);
                if !peer.left {
                    tracing::info!(%node, last, "cluster: peer left");
                    peer.left = true;
                    peer.alive = false;
                    // What we still miss of it is in storage: stop asking, catch up from there.
                    peer.give_up_to(peer.known);
                    departed = true;
                }
            }
            Event::Notice(Notice::Read {
                conversation,
                user,
                seq,
            }) => {
                if self.reads.len() > READS_KEPT {
                    self.reads.clear();
                }
                let newest = self.reads.entry((conversation, user)).or_insert(Seq(0));
                if seq > *newest {
                    *newest = seq;
                    let read = Notice::Read {
                        conversation,
                        user,
                        seq,
                    };
                    let _ = self.heard.send(Heard::Notice(read)).await;
                } else {
                    self.drop_packet(DropReason::Stale);
                }
            }
            Event::Notice(notice) => {
                if let Notice::Presence { user, here, .. } = &notice {
                    self.presence.remote(&node, *user, *here);
                }
                let _ = self.heard.send(Heard::Notice(notice)).await;
            }
        }
        if departed {
            ghosts.extend(self.presence.forget_node(&node));
            let _ = self.heard.send(Heard::Resync).await;
        }
        self.announce_gone(ghosts).await;
        if first_contact || revived {
            tracing::info!(%node, "cluster: peer joined");
            let _ = self.heard.send(Heard::Resync).await;
            let _ = self.heard.send(Heard::PeerJoined).await;
        }
        self.refresh_view();
    }

    /// Users whose connections on a peer are gone (peer silent, restarted or left): their
    /// local contacts hear them go offline unless they are still online elsewhere.
    async fn announce_gone(&self, users: Vec<UserId>) {
        for user in users {
            if !self.presence.is_online(user).await {
                let offline = Notice::Presence {
                    user,
                    here: false,
                    notify: true,
                };
                let _ = self.heard.send(Heard::Notice(offline)).await;
            }
        }
    }

    /// A loud warning about a peer's clock, at most every [`CLOCK_WARN_EVERY`] per peer.
    fn warn_clock(&mut self, node: &str, what: std::fmt::Arguments<'_>) {
        let due = self
            .clock_warned
            .get(node)
            .is_none_or(|at| at.elapsed() >= CLOCK_WARN_EVERY);
        if due {
            tracing::warn!(%node, "cluster: peer {what}");
            self.clock_warned.insert(node.to_owned(), Instant::now());
        }
    }

    /// Magic, tag, cluster name, not our own echo, and not a unicast meant for another node.
    fn check(&self, inbound: &Inbound) -> Result<Envelope, DropReason> {
        let envelope = self.codec.open(&inbound.bytes)?;
        if envelope.cluster != self.settings.name {
            return Err(DropReason::ForeignCluster);
        }
        if envelope.node == self.me {
            return Err(DropReason::Own);
        }
        if envelope.to.as_ref().is_some_and(|to| *to != self.me) {
            return Err(DropReason::NotForUs);
        }
        Ok(envelope)
    }

    /// Re-requests gaps; declares silent peers gone.
    async fn repair(&mut self) {
        let dead_after = self.settings.peer_timeout();
        let mut resync = false;
        let mut gone = Vec::new();
        for (node, peer) in &mut self.peers {
            if peer.alive && peer.last_heard.elapsed() > dead_after {
                tracing::warn!(%node, "cluster: peer silent; considered gone");
                peer.alive = false;
                gone.push(node.clone());
            }
            let runs = peer.missing();
            let Some(&(from, _)) = runs.first() else {
                peer.attempts = 0;
                continue;
            };
            if peer.gap_from != from {
                peer.gap_from = from;
                peer.attempts = 0;
            }
            if peer.attempts >= MAX_ATTEMPTS || !peer.alive {
                let to = peer.known;
                tracing::warn!(%node, from, to, "cluster: gap not repaired; catching up from storage");
                peer.give_up_to(to);
                self.metrics.cluster_unrecovered.inc();
                resync = true;
                continue;
            }
            peer.attempts += 1;
            for (from, to) in runs {
                let request = Outbound::Control(peer.addr.clone(), Control::Resend { from, to });
                let _ = self.outbox.try_send(request);
            }
        }
        // A peer gone for long (a restart without a fixed node id leaves its old id behind) is
        // forgotten, so the table does not grow with every restart.
        let forget_after = dead_after * 20;
        self.peers
            .retain(|_, p| p.alive || p.last_heard.elapsed() < forget_after);
        if !gone.is_empty() {
            // A silent peer may have stored and acked messages it never announced (a crash
            // between commit and broadcast): storage is the truth, catch up from it.
            resync = true;
        }
        for node in gone {
            let users = self.presence.forget_node(&node);
            self.announce_gone(users).await;
        }
        if resync {
            let _ = self.heard.send(Heard::Resync).await;
        }
        self.refresh_view();
    }

    fn refresh_view(&self) {
        let view: Vec<PeerView> = self
            .peers
            .iter()
            .filter(|(_, p)| p.alive)
            .map(|(node, p)| PeerView {
                node: node.clone(),
                last_heard_ms: p.last_heard.elapsed().as_millis() as u64,
            })
            .collect();
        self.metrics.cluster_peers.set(view.len() as i64);
        *crate::lock::lock(&self.view) = view;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(contiguous: u64, received: &[u64], known: u64) -> Peer {
        Peer {
            addr: PeerAddr {
                node: "p".into(),
                udp: None,
            },
            epoch: 1,
            contiguous,
            received: received.iter().copied().collect(),
            known,
            controls: ReplayWindow::default(),
            last_heard: Instant::now(),
            gap_from: 0,
            attempts: 0,
            alive: true,
            left: false,
            presence_n: HashMap::new(),
        }
    }

    #[test]
    fn every_gap_and_the_lost_tail_are_asked_for() {
        assert_eq!(peer(5, &[], 5).missing(), vec![]);
        assert_eq!(
            peer(2, &[4, 5, 9], 12).missing(),
            vec![(3, 3), (6, 8), (10, 12)]
        );
        let long = peer(0, &[], 600).missing();
        assert_eq!(long, vec![(1, 256), (257, 512), (513, 600)]);
    }

    #[test]
    fn marking_advances_over_received_runs() {
        let mut p = peer(2, &[4, 5], 5);
        p.mark(3);
        assert_eq!((p.contiguous, p.received.len()), (5, 0));
        p.mark(9);
        p.give_up_to(7);
        assert_eq!(p.contiguous, 7);
        assert_eq!(p.missing(), vec![(8, 8)]);
    }
}
