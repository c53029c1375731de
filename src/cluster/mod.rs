//! The cluster: nodes that share a database tell each other what happened, so a message sent
//! on one node reaches recipients connected to any node, at once.
//!
//! Shape (GinChat's `udp_send`/`udp_recv`, made reliable):
//! - `udp_send` ([`sender`]) numbers each event per origin, seals it ([`packet`]:
//!   XChaCha20-Poly1305 under a key derived from the cluster secret), keeps the last packets for
//!   re-sending, and broadcasts it; every second it broadcasts a heartbeat carrying the last
//!   number. Control packets (heartbeats, re-send requests) carry their own number, so a
//!   replayed one is refused, and a re-send request is answered only at the requester's known
//!   address, with at most [`MAX_RESEND`] packets.
//! - `udp_recv` ([`receiver`]) drops what is not ours (bad MAC, other cluster, our own echo,
//!   replayed or stale numbers, each counted in `/metrics`), applies the rest to local Nodes
//!   only, and notices gaps from the numbers and heartbeats: it asks the origin to re-send,
//!   and if the origin no longer has the packets, every local connection catches up from the
//!   shared database. Delivery stays once-and-in-order because each connection's `send_proc`
//!   drops repeats and fills gaps from storage.
//! - Transports: UDP broadcast ([`udp`]) or Redis pub/sub ([`pubsub`]).

mod event;
mod packet;
mod peers;
mod pubsub;
pub mod secret;
mod udp;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

pub use event::Event;
pub use packet::{Codec, Drop, Envelope, MAX_PACKET};
pub use peers::PeerView;

use crate::app::App;
use crate::config::{ClusterSettings, Transport as TransportKind};
use crate::store::now_ms;

/// Packets kept for re-sending.
const RESEND_WINDOW: usize = 16_384;
/// Most packets sent in answer to one re-send request (its size: the request asks for no more).
pub const MAX_RESEND: u64 = 256;
/// Events waiting for `udp_send`.
const OUTBOX: usize = 16_384;

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
    /// A numbered event for every peer.
    Publish(Event),
    /// An unsequenced control event to one peer.
    Control(PeerAddr, Event),
    /// Re-send kept packets `from..=to` to a peer.
    Resend(PeerAddr, u64, u64),
}

/// This node's handle on the cluster.
pub struct Cluster {
    pub node: String,
    outbox: mpsc::Sender<Outbound>,
    peers: Arc<Mutex<Vec<PeerView>>>,
}

/// The parts the tasks take once the app exists.
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
        secret::check(&settings.secret)?;
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
        let (tx, rx) = mpsc::channel(OUTBOX);
        let epoch = now_ms() as u64;
        Ok((
            Self {
                node: node.clone(),
                outbox: tx,
                peers: Arc::default(),
            },
            Parts {
                transport: Arc::new(transport),
                outbox: rx,
                codec: Codec::new(&settings.secret, &settings.name),
                settings: settings.clone(),
                epoch,
            },
        ))
    }

    /// Starts `udp_send`, `udp_recv` and the repair loop.
    pub fn spawn(app: Arc<App>, parts: Parts) {
        let Some(cluster) = app.cluster.as_ref() else {
            return;
        };
        let (inbound_tx, inbound_rx) = mpsc::channel(OUTBOX);
        match parts.transport.as_ref() {
            Transport::Udp(udp) => udp.spawn_receivers(inbound_tx),
            Transport::Redis(r) => r.spawn_receiver(&cluster.node, inbound_tx),
        }
        let sender = Sender {
            app: app.clone(),
            node: cluster.node.clone(),
            transport: parts.transport.clone(),
            codec: parts.codec.clone(),
            name: parts.settings.name.clone(),
            epoch: parts.epoch,
            next: 1,
            next_control: 1,
            kept: VecDeque::with_capacity(RESEND_WINDOW),
            heartbeat: Duration::from_millis(parts.settings.heartbeat_ms.max(50)),
        };
        tokio::spawn(sender.run(parts.outbox));
        let receiver = peers::Receiver::new(
            app.clone(),
            cluster.node.clone(),
            parts.codec,
            parts.settings,
            cluster.peers.clone(),
        );
        tokio::spawn(receiver.run(inbound_rx));
    }

    /// Tells every peer about an event (never blocks: a full outbox drops it, and the peers
    /// recover through the heartbeat gap check).
    pub fn publish(&self, event: Event) {
        if self.outbox.try_send(Outbound::Publish(event)).is_err() {
            tracing::warn!("cluster: outbox full; peers will repair from storage");
        }
    }

    fn control(&self, to: PeerAddr, event: Event) {
        let _ = self.outbox.try_send(Outbound::Control(to, event));
    }

    fn resend(&self, to: PeerAddr, from: u64, until: u64) {
        let _ = self.outbox.try_send(Outbound::Resend(to, from, until));
    }

    /// The peers heard from recently (for `/readyz`).
    pub fn peers(&self) -> Vec<PeerView> {
        self.peers.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// `udp_send`: numbers, seals, keeps and sends; heartbeats on a timer.
struct Sender {
    app: Arc<App>,
    node: String,
    transport: Arc<Transport>,
    codec: Codec,
    name: String,
    epoch: u64,
    next: u64,
    /// The next control number (heartbeats, requests): its own sequence, for replay windows.
    next_control: u64,
    kept: VecDeque<(u64, Vec<u8>)>,
    heartbeat: Duration,
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

    /// Seals a control event with the next control number, for one node or (`None`) all.
    fn seal_control(&mut self, to: Option<&str>, event: Event) -> Vec<u8> {
        let c = self.next_control;
        self.next_control += 1;
        self.codec.seal(&self.envelope(0, c, to, event))
    }

    /// Seals an event, falling back to a body-less reference when it does not fit.
    fn seal(&self, n: u64, event: Event) -> Vec<u8> {
        let reference = event.without_body();
        let packet = self.codec.seal(&self.envelope(n, 0, None, event));
        match reference {
            Some(small) if packet.len() > MAX_PACKET => {
                self.codec.seal(&self.envelope(n, 0, None, small))
            }
            _ => packet,
        }
    }

    async fn run(mut self, mut outbox: mpsc::Receiver<Outbound>) {
        let mut tick = tokio::time::interval(self.heartbeat);
        loop {
            tokio::select! {
                out = outbox.recv() => match out {
                    Some(out) => self.handle(out).await,
                    None => return,
                },
                _ = tick.tick() => {
                    let last = self.next - 1;
                    let packet = self.seal_control(None, Event::Heartbeat { last });
                    self.transport.broadcast(&packet).await;
                }
                _ = self.app.stopping.cancelled() => return,
            }
        }
    }

    async fn handle(&mut self, out: Outbound) {
        match out {
            Outbound::Publish(event) => {
                let n = self.next;
                self.next += 1;
                let packet = self.seal(n, event);
                self.transport.broadcast(&packet).await;
                self.app.metrics.cluster_sent.inc();
                if self.kept.len() == RESEND_WINDOW {
                    self.kept.pop_front();
                }
                self.kept.push_back((n, packet));
            }
            Outbound::Control(to, event) => {
                let packet = self.seal_control(Some(&to.node), event);
                self.transport.unicast(&to, &packet).await;
            }
            Outbound::Resend(to, from, until) => {
                // One request, one bounded answer, whatever it asked for.
                let until = until.min(from.saturating_add(MAX_RESEND - 1));
                let oldest = self.kept.front().map(|(n, _)| *n).unwrap_or(self.next);
                if from < oldest {
                    let gone = self.seal_control(
                        Some(&to.node),
                        Event::Gone {
                            from,
                            to: until.min(oldest.saturating_sub(1)),
                        },
                    );
                    self.transport.unicast(&to, &gone).await;
                }
                let start = from.max(oldest);
                for n in start..=until.min(self.next - 1) {
                    let index = (n - oldest) as usize;
                    if let Some((_, packet)) = self.kept.get(index) {
                        self.transport.unicast(&to, packet).await;
                        self.app.metrics.cluster_resent.inc();
                    }
                }
            }
        }
    }
}
