//! The handles one node shares between its HTTP handlers, websocket connections and background
//! tasks. Wiring only: what happens to a notice is [`crate::fanout`]'s, what happens to a send
//! is [`crate::commit`]'s.

use std::convert::Infallible;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::Filter;

use crate::auth::HashGate;
use crate::cluster::Cluster;
use crate::commit::Committer;
use crate::config::Settings;
use crate::fanout::Fanout;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::store::Store;
use crate::throttle::LoginThrottle;
use crate::upload::Uploads;

/// Everything a handler may need, behind one `Arc`.
pub struct App {
    pub settings: Settings,
    pub store: Store,
    pub presence: Arc<Presence>,
    pub uploads: Uploads,
    pub metrics: Metrics,
    pub hub: Arc<Hub>,
    /// Where notices go: this node's connections and the peers.
    pub fanout: Arc<Fanout>,
    pub committer: Committer,
    /// Cancelled when the node begins to shut down: connections stop reading.
    pub stopping: CancellationToken,
    /// One token per open websocket connection, so shutdown can wait for them.
    pub connections: TaskTracker,
    /// Peers sharing the database, when this node is in a cluster.
    pub cluster: Option<Cluster>,
    /// Turns at password hashing (bounded work and memory).
    pub hash_gate: HashGate,
    /// Failed log-ins by account and address.
    pub login_throttle: LoginThrottle,
}

/// Hands the shared state to a warp handler (REST and websocket routes alike).
pub fn with_app(app: &Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone {
    let app = app.clone();
    warp::any().map(move || app.clone())
}
