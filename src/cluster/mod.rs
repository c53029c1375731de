//! The cluster: nodes that share a database tell each other what happened, so a message sent
//! on one node reaches recipients connected to any node, at once.
//!
//! Shape (GinChat's `udp_send`/`udp_recv`, made reliable):
//! - `udp_send` (the `Sender` task here) numbers each published [`Notice`] per origin, seals it
//!   ([`packet`]: XChaCha20-Poly1305 under a key derived from the cluster secret), keeps the
//!   last packets for re-sending, and broadcasts it; every second it broadcasts a heartbeat
//!   carrying the last number. [`Control`] packets (heartbeats, re-send requests, gaps,
//!   departures) carry their own number, so a replayed one is refused, and a re-send request
//!   is answered only at the requester's known address, with at most [`MAX_RESEND`] packets.
//! - `udp_recv` ([`receiver`]) drops what is not ours (bad MAC, other cluster, our own echo,
//!   replayed or stale numbers, each counted in `/metrics`) and notices gaps from the numbers
//!   and heartbeats: it asks the origin to re-send, and if the origin no longer has the
//!   packets, every local connection catches up from the shared database. What passes is
//!   handed up as [`Heard`] over a channel to the fan-out ([`crate::fanout`]), which delivers
//!   a peer's notice exactly as it delivers a local one; the cluster never touches a
//!   connection. Delivery stays once-and-in-order because each connection's `send_proc`
//!   drops repeats and fills gaps from storage.
//! - Transports: UDP broadcast ([`udp`]) or Redis pub/sub ([`pubsub`]).

mod event;
mod packet;
mod pubsub;
mod receiver;
pub mod secret;
mod udp;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use event::{Control, Event};
pub use packet::{Codec, DropReason, Envelope, MAX_PACKET};
pub use receiver::PeerView;

use crate::config::{ClusterSettings, Transport as TransportKind};
use crate::metrics::Metrics;
use crate::notice::Notice;
use crate::presence::Presence;
use crate::store::now_ms;

/// Packets kept for re-sending.
const RESEND_WINDOW: usize = 16_384;
/// Most packets sent in answer to one re-send request (its size: the request asks for no more).
pub const MAX_RESEND: u64 = 256;
/// Peers' notices waiting for the fan-out.
const HEARD: usize = 16_384;
/// Copies of the departure announcement, 50 ms apart.
const LEAVE_COPIES: usize = 5;

/// A packet as it arrived.
pub struct Inbound {
    pub bytes: Vec<u8>,
    /// The UDP source address (none over Redis, where the node id is the address).
    pub from: Option<SocketAddr>,
}

/// How packets travel.
pub enum Transport {
    Udp(udp::Udp),
    Redis(pubsub::PubSub),
}

/// Where to send a unicast.
#[derive(Debug, Clone)]
pub struct PeerAddr {
    pub node: String,
    pub udp: Option<SocketAddr>,
}

impl Transport {
    async fn broadcast(&self, packet: &[u8]) {
        match self {
            Self::Udp(u) => u.broadcast(packet).await,
            Self::Redis(r) => r.broadcast(packet).await,
        }
    }

    async fn unicast(&self, to: &PeerAddr, packet: &[u8]) {
        match (self, to.udp) {
            (Self::Udp(u), Some(addr)) => u.unicast(addr, packet).await,
            (Self::Udp(_), None) => {}
            (Self::Redis(r), _) => r.unicast(&to.node, packet).await,
        }
    }
}

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{0}")]
    WeakSecret(#[from] secret::WeakSecret),
    #[error("redis transport needs redis.url")]
    NoRedis,
    #[error("udp: {0}")]
    Udp(#[from] std::io::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What goes to `udp_send`.
enum Outbound {
    /// A numbered notice for every peer.
    Publish(Notice),
    /// An unsequenced control packet to one peer.
    Control(PeerAddr, Control),
    /// Re-send kept packets `from..=to` to a peer.
    Resend(PeerAddr, u64, u64),
}

/// What the receiver hands up to the fan-out, in the order it heard it.
#[derive(Debug)]
pub enum Heard {
    /// A peer's notice, for this node's own connections.
    Notice(Notice),
    /// Something may have been missed (a gap given up on, a peer gone or back): every local
    /// connection catches up from storage.
    Resync,
    /// A peer was heard for the first time (or again): tell it who is connected here.
    PeerJoined,
}

/// This node's handle on the cluster (cheap to clone: handles to the tasks' shared state).
#[derive(Clone)]
pub struct Cluster {
    pub node: String,
    outbox: mpsc::Sender<Outbound>,
    peers: Arc<Mutex<Vec<PeerView>>>,
    /// Events that found the outbox full: `udp_send` burns a packet number for them (kept as
    /// "gone"), so every peer sees a gap, is told the packets are gone and catches up from
    /// storage. An event is never dropped silently.
    overflowed: Arc<AtomicU64>,
    /// Cancelled by shutdown once the writer has drained: `udp_send` sends what is queued,
    /// announces departure and stops.
    leave: CancellationToken,
}

/// The parts the tasks take when they start ([`Cluster::spawn`]).
pub struct Parts {
    transport: Arc<Transport>,
    outbox: mpsc::Receiver<Outbound>,
    settings: ClusterSettings,
    codec: Codec,
    epoch: u64,
}

impl Cluster {
    /// Binds the transport; the tasks start with [`Cluster::spawn`].
    pub async fn open(
        settings: &ClusterSettings,
        redis_url: &str,
        node: String,
    ) -> Result<(Self, Parts), ClusterError> {
        secret::check(settings.secret.expose())?;
        let transport = match settings.transport {
            TransportKind::Udp => {
                let udp = udp::Udp::bind(settings.broadcast, settings.port)?;
                tracing::info!(
                    broadcast = %settings.broadcast,
                    port = settings.port,
                    recv_buffer = udp.recv_buffer(),
                    "cluster: udp transport"
                );
                Transport::Udp(udp)
            }
            TransportKind::Redis => {
                if redis_url.is_empty() {
                    return Err(ClusterError::NoRedis);
                }
                Transport::Redis(pubsub::PubSub::connect(redis_url, &settings.name).await?)
            }
        };
        let (tx, rx) = mpsc::channel(settings.outbox.max(1));
        let epoch = now_ms() as u64;
        Ok((
            Self {
                node: node.clone(),
                outbox: tx,
                peers: Arc::default(),
                overflowed: Arc::default(),
                leave: CancellationToken::new(),
            },
            Parts {
                transport: Arc::new(transport),
                outbox: rx,
                codec: Codec::new(settings.secret.expose(), &settings.name),
                settings: settings.clone(),
                epoch,
            },
        ))
    }

    /// Starts `udp_send`, `udp_recv` and the repair loop, all on `tasks`. Returns `udp_send`'s
    /// handle, which ends after [`Cluster::leave`] once everything queued is sent and
    /// departure announced, and what the receiver hears from peers, for the fan-out. The
    /// receiving tasks stop when `stopping` is cancelled.
    pub fn spawn(
        &self,
        parts: Parts,
        metrics: Metrics,
        presence: Arc<Presence>,
        tasks: &TaskTracker,
        stopping: &CancellationToken,
    ) -> (JoinHandle<()>, mpsc::Receiver<Heard>) {
        let cluster = self;
        let (inbound_tx, inbound_rx) = mpsc::channel(HEARD);
        match parts.transport.as_ref() {
            Transport::Udp(udp) => udp.spawn_receivers(inbound_tx, tasks, stopping),
            Transport::Redis(r) => r.spawn_receiver(&cluster.node, inbound_tx, tasks, stopping),
        }
        let (heard_tx, heard_rx) = mpsc::channel(HEARD);
        let sender = Sender {
            metrics: metrics.clone(),
            node: cluster.node.clone(),
            transport: parts.transport.clone(),
            codec: parts.codec.clone(),
            name: parts.settings.name.clone(),
            epoch: parts.epoch,
            next: 1,
            next_control: 1,
            kept: VecDeque::with_capacity(RESEND_WINDOW),
            heartbeat: parts.settings.heartbeat(),
            overflowed: cluster.overflowed.clone(),
        };
        let sending = tasks.spawn(sender.run(parts.outbox, cluster.leave.clone()));
        let receiver = receiver::Receiver::new(
            receiver::Handles {
                me: cluster.node.clone(),
                outbox: cluster.outbox.clone(),
                heard: heard_tx,
                presence,
                metrics,
                view: cluster.peers.clone(),
            },
            parts.codec,
            parts.settings,
        );
        tasks.spawn(receiver.run(inbound_rx, stopping.clone()));
        (sending, heard_rx)
    }

    /// Tells every peer about a notice. Never blocks: a notice that finds the outbox full
    /// becomes a numbered gap every peer sees and repairs from storage (see `overflowed`).
    pub fn publish(&self, notice: Notice) {
        match self.outbox.try_send(Outbound::Publish(notice)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if self.overflowed.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        "cluster: outbox full; peers will see a gap and repair from storage"
                    );
                }
            }
            // After departure (shutdown): connections closing say goodbye to no one; peers
            // drop this node's presence when they hear it leave.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!("cluster: left; event not sent");
            }
        }
    }

    /// Shutdown, after the writer drained: send everything queued, announce departure, stop.
    pub fn leave(&self) {
        self.leave.cancel();
    }

    /// The peers heard from recently (for `/readyz`).
    pub fn peers(&self) -> Vec<PeerView> {
        crate::lock::lock(&self.peers).clone()
    }
}

/// `udp_send`: numbers, seals, keeps and sends; heartbeats on a timer.
struct Sender {
    metrics: Metrics,
    node: String,
    transport: Arc<Transport>,
    codec: Codec,
    name: String,
    epoch: u64,
    next: u64,
    /// The next control number (heartbeats, requests): its own sequence, for replay windows.
    next_control: u64,
    /// Packets kept for re-sending; an empty one stands for events lost to a full outbox.
    kept: VecDeque<(u64, Vec<u8>)>,
    heartbeat: Duration,
    overflowed: Arc<AtomicU64>,
}

impl Sender {
    fn envelope(&self, n: u64, c: u64, to: Option<&str>, event: Event) -> Envelope {
        Envelope {
            cluster: self.name.clone(),
            node: self.node.clone(),
            epoch: self.epoch,
            n,
            c,
            to: to.map(str::to_string),
            ts: now_ms(),
            event,
        }
    }

    /// Seals a control packet with the next control number, for one node or (`None`) all.
    fn seal_control(&mut self, to: Option<&str>, control: Control) -> Vec<u8> {
        let c = self.next_control;
        self.next_control += 1;
        self.codec
            .seal(&self.envelope(0, c, to, Event::Control(control)))
    }

    /// Seals a notice, falling back to a body-less reference when it does not fit.
    fn seal(&self, n: u64, notice: Notice) -> Vec<u8> {
        let reference = notice.without_body();
        let packet = self
            .codec
            .seal(&self.envelope(n, 0, None, Event::Notice(notice)));
        match reference {
            Some(small) if packet.len() > MAX_PACKET => {
                self.codec
                    .seal(&self.envelope(n, 0, None, Event::Notice(small)))
            }
            _ => packet,
        }
    }

    async fn run(mut self, mut outbox: mpsc::Receiver<Outbound>, leave: CancellationToken) {
        let mut tick = tokio::time::interval(self.heartbeat);
        loop {
            tokio::select! {
                out = outbox.recv() => match out {
                    Some(out) => self.handle(out).await,
                    None => return,
                },
                _ = tick.tick() => {
                    self.mark_overflow();
                    let last = self.next - 1;
                    let packet = self.seal_control(None, Control::Heartbeat { last });
                    self.transport.broadcast(&packet).await;
                }
                _ = leave.cancelled() => break,
            }
        }
        // Departure: everything the drained writer announced goes out first, then the peers
        // hear that this node leaves, with its last number. They give up on whatever of ours
        // they still miss and catch their connections up from storage, which already holds
        // every message this node acked.
        while let Ok(out) = outbox.try_recv() {
            self.handle(out).await;
        }
        self.mark_overflow();
        let last = self.next - 1;
        tracing::info!(last, "cluster: leaving");
        // A few copies (UDP may lose one), still answering whatever arrives meanwhile.
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut copies = 0;
        while copies < LEAVE_COPIES {
            tokio::select! {
                _ = tick.tick() => {
                    let packet = self.seal_control(None, Control::Leave { last });
                    self.transport.broadcast(&packet).await;
                    copies += 1;
                }
                Some(out) = outbox.recv() => self.handle(out).await,
            }
        }
    }

    /// Burns one packet number for events lost to a full outbox, so peers see the gap.
    fn mark_overflow(&mut self) {
        if self.overflowed.swap(0, Ordering::Relaxed) > 0 {
            let n = self.next;
            self.next += 1;
            tracing::warn!(
                n,
                "cluster: announced a gap for events lost to a full outbox"
            );
            self.keep(n, Vec::new());
        }
    }

    fn keep(&mut self, n: u64, packet: Vec<u8>) {
        if self.kept.len() == RESEND_WINDOW {
            self.kept.pop_front();
        }
        self.kept.push_back((n, packet));
    }

    async fn handle(&mut self, out: Outbound) {
        match out {
            Outbound::Publish(notice) => {
                self.mark_overflow();
                let n = self.next;
                self.next += 1;
                let packet = self.seal(n, notice);
                self.transport.broadcast(&packet).await;
                self.metrics.cluster_sent.inc();
                self.keep(n, packet);
            }
            Outbound::Control(to, control) => {
                let packet = self.seal_control(Some(&to.node), control);
                self.transport.unicast(&to, &packet).await;
            }
            Outbound::Resend(to, from, until) => {
                // One request, one bounded answer, whatever it asked for.
                let until = until.min(from.saturating_add(MAX_RESEND - 1));
                let oldest = self.kept.front().map(|(n, _)| *n).unwrap_or(self.next);
                if from < oldest {
                    let gone = self.seal_control(
                        Some(&to.node),
                        Control::Gone {
                            from,
                            to: until.min(oldest.saturating_sub(1)),
                        },
                    );
                    self.transport.unicast(&to, &gone).await;
                }
                let start = from.max(oldest);
                for n in start..=until.min(self.next - 1) {
                    let index = (n - oldest) as usize;
                    match self.kept.get(index) {
                        Some((_, packet)) if packet.is_empty() => {
                            // Lost to a full outbox: the peer recovers from storage.
                            let gone =
                                self.seal_control(Some(&to.node), Control::Gone { from: n, to: n });
                            self.transport.unicast(&to, &gone).await;
                        }
                        Some((_, packet)) => {
                            self.transport.unicast(&to, packet).await;
                            self.metrics.cluster_resent.inc();
                        }
                        None => {}
                    }
                }
            }
        }
    }
}
