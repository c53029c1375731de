//! Chorus: a multi-node chat server.
//!
//! The map, in the order a request travels:
//! - [`http`]: warp filters for the REST API, uploads, the OpenAPI document and Swagger UI,
//!   the web page, health and metrics;
//! - [`auth`]: Argon2id password hashes and opaque session tokens;
//! - [`store`]: sea-orm storage (SQLite, PostgreSQL, MySQL) behind a small API;
//! - [`presence`]: who is online;
//! - [`upload`]: image uploads, typed by their bytes;
//! - [`error`]: the one API error type and its JSON rendering;
//! - [`config`], [`ids`], [`metrics`], [`app`]: settings, typed ids, Prometheus, shared state.
//!
//! [`Server`] starts a node; `main.rs` only parses flags and calls it.

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod presence;
pub mod store;
pub mod upload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::store::{Store, StoreError};
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
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: warp::Error,
    },
}

/// A running node.
pub struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Opens storage (running migrations), binds the listener and starts serving.
    pub async fn start(settings: Settings) -> Result<Self, StartError> {
        let store = Store::open(&settings.database).await?;
        let uploads = Uploads::new(&settings.uploads.dir, settings.uploads.max_bytes)?;
        let app = Arc::new(App {
            store,
            uploads,
            presence: Presence::default(),
            metrics: Metrics::new()?,
            settings,
        });
        let routes = http::routes(app.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let addr = app.settings.server.addr;
        let (addr, serving) = warp::serve(routes)
            .try_bind_with_graceful_shutdown(addr, async {
                let _ = stopped.await;
            })
            .map_err(|source| StartError::Bind { addr, source })?;
        let task = tokio::spawn(serving);
        tracing::info!(%addr, "serving");
        Ok(Self {
            addr,
            app,
            stop: Some(stop),
            task,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (up to the configured grace), and
    /// closes the database pool.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let grace = Duration::from_secs(self.app.settings.server.shutdown_grace_secs);
        if tokio::time::timeout(grace, &mut self.task).await.is_err() {
            tracing::warn!("connections still open after the grace period; closing");
            self.task.abort();
        }
        self.app.store.clone().close().await;
    }
}
