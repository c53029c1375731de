//! Chorus: a multi-node chat server.
//!
//! The message path reads straight down, and nothing on it imports a module above it:
//!
//! ```text
//! ws   (websocket, JSON frames) --\
//!                                  >-> dispatch -> commit (store, then ack) -> fanout -> hub   (this node)
//! line (plain TCP, command lines) /                                                  \-> cluster (peers)
//! cluster receiver -- a peer's notice, over a channel --> fanout::deliver_here -> hub
//! hub queue -> send_proc (order, catch-up) -> ws | line socket
//! ```
//!
//! - [`ws`]: `GET /chat`, one [`hub::Conn`] per connection with `recv_proc` (socket to
//!   [`dispatch`]) and the websocket's [`send_proc::Transport`];
//! - [`line`]: the plain TCP line endpoint (`line.addr`, off by default): commands parsed into the
//!   same client [`frame`]s for [`dispatch`], queue items rendered as lines; a second transport
//!   beside `ws`, not a second server;
//! - [`connection`]: a connection's life for both transports (the per-user cap, the hub,
//!   presence, online and offline notices) and the per-connection rate limiter;
//! - [`send_proc`]: each connection's only writer: what the user missed first, then the queue, per
//!   conversation in `seq` order and once, through its transport;
//! - [`dispatch`]: what each client [`frame`] does, whichever transport brought it;
//! - [`commit`]: the group-commit writer: store a batch, then ack, then announce;
//! - [`fanout`]: where every [`notice`] goes: [`fanout::Fanout::announce`] delivers here and
//!   publishes to the peers; [`fanout::Fanout::deliver_here`] says who is in a conversation and
//!   builds each frame once, for local notices and peers' alike;
//! - [`hub`]: the connections on this server, by user, with bounded queues and the heartbeat
//!   sweep;
//! - [`cluster`]: peers sharing the database, over UDP broadcast or Redis pub/sub: sealed,
//!   numbered packets, gap repair; what it hears goes up to the fan-out over a channel;
//! - [`http`]: warp filters for the REST API, uploads, the OpenAPI document and Swagger UI,
//!   the web page, health and metrics, with the one HTTP error type ([`http::error`]); REST
//!   writers announce through the fan-out too;
//! - [`listen`]: the accept loop both HTTP and the websocket are served by;
//! - [`session`]: a bearer token to its caller, and the one log-in (`POST /api/sessions` and the
//!   line endpoint's `LOGIN`);
//! - [`auth`]: Argon2id password hashes (a bounded number at once), typed passwords, opaque
//!   session tokens; [`names`]: display names; [`throttle`]: failed log-ins;
//! - [`store`]: sea-orm storage (SQLite, PostgreSQL, MySQL) behind a small API;
//! - [`presence`]: who is online;
//! - [`upload`]: image uploads, typed by their bytes;
//! - [`config`], [`ids`], [`media`], [`metrics`], [`lock`]: settings, typed ids, what a message
//!   carries, Prometheus, the poisoned-lock policy;
//! - [`app`]: the handles a request may need, wired once (no behaviour of its own).
//!
//! [`Server`] starts a node and composes the routes (HTTP and websocket meet only here);
//! `main.rs` only parses flags and calls it. `scripts/modgraph.sh` checks that the imports
//! between these modules have no cycle.

pub mod app;
pub mod auth;
pub mod cluster;
pub mod commit;
pub mod config;
pub mod connection;
pub mod dispatch;
pub mod fanout;
pub mod frame;
pub mod http;
pub mod hub;
pub mod ids;
pub mod imagesize;
pub mod line;
pub mod listen;
pub mod lock;
pub mod media;
pub mod metrics;
pub mod names;
pub mod notice;
pub mod presence;
pub mod send_proc;
pub mod session;
pub mod store;
pub mod throttle;
pub mod upload;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::cluster::Cluster;
use crate::commit::{Committer, Writer};
use crate::config::Settings;
use crate::fanout::Fanout;
use crate::hub::{CloseReason, Hub};
use crate::metrics::{Metrics, RouteLabels};
use crate::presence::Presence;
use crate::store::{now_ms, Store, StoreError};
use crate::upload::Uploads;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("uploads folder: {0}")]
    Uploads(#[from] std::io::Error),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cluster: {0}")]
    Cluster(#[from] cluster::ClusterError),
    #[error("{setting} {text:?} is not an address: {reason}")]
    Address {
        setting: String,
        text: String,
        reason: String,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running node.
pub struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    stop_http: Option<oneshot::Sender<()>>,
    http: JoinHandle<()>,
    writer: JoinHandle<()>,
    stop_writer: CancellationToken,
    /// `udp_send`, which ends after announcing this node's departure.
    cluster_sender: Option<JoinHandle<()>>,
    /// Where the line endpoint listens, when it is on.
    line_addr: Option<SocketAddr>,
    /// Every other background task (the heartbeat sweep, the metrics listener, the cluster's
    /// receivers, the fan-out of peers' notices): each ends when `stopping` is cancelled, and
    /// shutdown waits for them all.
    tasks: TaskTracker,
}

impl Server {
    /// Opens storage (running migrations), connects presence, starts the writer and the
    /// heartbeat sweep, binds the listener and starts serving.
    pub async fn start(settings: Settings) -> Result<Self, StartError> {
        let store = Store::open(&settings.database).await?;
        let uploads = Uploads::new(&settings.uploads.dir, settings.uploads.max_bytes)?;
        let node_name = if settings.cluster.node_id.is_empty() {
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            settings.cluster.node_id.clone()
        };
        let presence = Arc::new(if settings.redis.url.is_empty() {
            Presence::memory()
        } else {
            let ttl_ms = settings.chat.heartbeat_timeout().as_millis() as i64;
            Presence::redis(&settings.redis.url, node_name.clone(), ttl_ms).await?
        });
        let (cluster, cluster_parts) = if settings.cluster.enabled {
            let (cluster, parts) =
                Cluster::open(&settings.cluster, &settings.redis.url, node_name).await?;
            (Some(cluster), Some(parts))
        } else {
            (None, None)
        };
        // Requests are labelled by the templates of the routes composed below.
        let templates = http::route_templates()
            .into_iter()
            .chain([ws::PATH.to_owned()]);
        let metrics = Metrics::new(RouteLabels::new(templates))?;
        let stopping = CancellationToken::new();
        let hub = Arc::new(Hub::default());
        let tasks = TaskTracker::new();
        let fanout = Arc::new(Fanout::new(hub.clone(), store.clone(), cluster.clone()));
        let cluster_sender = match (&cluster, cluster_parts) {
            (Some(cluster), Some(parts)) => {
                let (sender, heard) =
                    cluster.spawn(parts, metrics.clone(), presence.clone(), &tasks, &stopping);
                // Peers' notices enter the same fan-out as this node's own.
                tasks.spawn(fanout.clone().hear(heard));
                Some(sender)
            }
            _ => None,
        };
        let writers = match settings.chat.writers {
            0 if settings.database.is_sqlite() => 1,
            0 => 2,
            n => n,
        };
        let (committer, submissions) = Committer::channel(
            writers,
            settings.chat.writer_queue.max(1),
            settings.database.timeout(),
        );
        let stop_writer = CancellationToken::new();
        let writer = Committer::spawn(
            Writer {
                store: store.clone(),
                fanout: fanout.clone(),
                metrics: metrics.clone(),
                deadline: settings.database.timeout(),
            },
            submissions,
            stop_writer.clone(),
        );
        let app = Arc::new(App {
            store,
            uploads,
            presence,
            metrics,
            hub,
            fanout,
            committer,
            stopping,
            connections: TaskTracker::new(),
            cluster,
            hash_gate: auth::HashGate::new(
                settings.auth.hash_concurrency,
                settings.auth.hash_queue,
            ),
            login_throttle: throttle::LoginThrottle::new(&settings.auth),
            settings,
        });
        tasks.spawn(sweep(app.clone()));

        // HTTP and the websocket meet here, at the top: neither imports the other.
        let routes = http::routes(app.clone(), ws::routes(&app));
        let (stop_http, stopped) = oneshot::channel::<()>();
        let addr = app.settings.server.addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let http = tokio::spawn(listen::serve(
            listener,
            routes,
            app.settings.server.clone(),
            app.metrics.clone(),
            async {
                let _ = stopped.await;
            },
        ));
        tracing::info!(%addr, "serving");
        if !app.settings.metrics.addr.is_empty() {
            let listener = bind_extra("metrics.addr", &app.settings.metrics.addr).await?;
            let bound = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            // Scripts read this line to find a metrics port chosen by the system.
            println!("metrics on {bound}");
            let routes = http::metrics_routes(app.clone());
            let stopping = app.stopping.clone();
            tasks.spawn(listen::serve(
                listener,
                routes,
                app.settings.server.clone(),
                app.metrics.clone(),
                async move { stopping.cancelled().await },
            ));
        }
        let line_addr = if app.settings.line.addr.is_empty() {
            None
        } else {
            let listener = bind_extra("line.addr", &app.settings.line.addr).await?;
            let bound = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
            tracing::info!(addr = %bound, "line endpoint");
            tasks.spawn(line::serve(app.clone(), listener));
            Some(bound)
        };
        Ok(Self {
            addr,
            line_addr,
            app,
            stop_http: Some(stop_http),
            http,
            writer,
            stop_writer,
            cluster_sender,
            tasks,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The line endpoint's bound address, when `line.addr` turned it on.
    pub fn line_addr(&self) -> Option<SocketAddr> {
        self.line_addr
    }

    /// Graceful stop, in this order: refuse new connections and frames; store every send
    /// already accepted (and ack it); send every cluster announcement that produced, then tell
    /// the peers this node leaves; flush each connection's queue and close sockets with a
    /// close frame; close the database pool. Each step bounded by `server.shutdown_grace_secs`.
    pub async fn shutdown(mut self) {
        let grace = self.app.settings.server.shutdown_grace();
        if let Some(stop) = self.stop_http.take() {
            let _ = stop.send(());
        }
        self.app.stopping.cancel();
        self.stop_writer.cancel();
        if tokio::time::timeout(grace, &mut self.writer).await.is_err() {
            tracing::warn!("writer still busy after the grace period");
        }
        // Only now: everything the writer stored during the drain is announced, not dropped
        // into a closed queue.
        if let (Some(cluster), Some(sender)) = (&self.app.cluster, self.cluster_sender.as_mut()) {
            cluster.leave();
            if tokio::time::timeout(grace, sender).await.is_err() {
                tracing::warn!("cluster sender still busy after the grace period");
            }
        }
        for conn in self.app.hub.all() {
            conn.close(CloseReason::SHUTDOWN);
        }
        self.app.connections.close();
        if tokio::time::timeout(grace, self.app.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the grace period");
        }
        if tokio::time::timeout(grace, &mut self.http).await.is_err() {
            self.http.abort();
        }
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks still running after the grace period");
        }
        self.app.store.clone().close().await;
    }
}

/// Binds one of the optional listeners (`metrics.addr`, `line.addr`) from its setting's text.
async fn bind_extra(setting: &str, text: &str) -> Result<tokio::net::TcpListener, StartError> {
    let addr: SocketAddr =
        text.parse()
            .map_err(|e: std::net::AddrParseError| StartError::Address {
                setting: setting.to_owned(),
                text: text.to_owned(),
                reason: e.to_string(),
            })?;
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Closes connections that have been silent longer than the heartbeat timeout.
async fn sweep(app: Arc<App>) {
    let timeout = app.settings.chat.heartbeat_timeout();
    let timeout_ms = timeout.as_millis() as i64;
    let every = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = app.stopping.cancelled() => return,
        }
        app.hub.sweep(now_ms() - timeout_ms);
        app.hub.sweep_expired(now_ms());
    }
}
