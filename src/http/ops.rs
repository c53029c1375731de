//! Operations endpoints: liveness, readiness, Prometheus metrics.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{json, with_app};
use crate::app::App;

pub(super) fn routes(app: &Arc<App>) -> BoxedFilter<(Response,)> {
    let healthz = warp::path!("healthz").and(warp::get()).then(healthz);
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_app(app))
        .then(readyz);
    let routes = healthz.or(readyz).unify();
    if app.settings.metrics.addr.is_empty() {
        routes.or(metrics_route(app)).unify().boxed()
    } else {
        // Served on its own address only (see `crate::Server::start`).
        routes.boxed()
    }
}

/// `GET /metrics`, behind `metrics.token` when one is set.
pub fn metrics_route(app: &Arc<App>) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(warp::get())
        .and(with_app(app))
        .and(warp::header::optional::<String>("authorization"))
        .then(|app: Arc<App>, auth: Option<String>| async move {
            let token = &app.settings.metrics.token;
            if !token.is_empty() {
                let given = auth
                    .as_deref()
                    .and_then(|h| h.strip_prefix("Bearer "))
                    .unwrap_or("");
                // Digests of equal length: the comparison time says nothing about the token.
                use sha2::{Digest, Sha256};
                if Sha256::digest(given.as_bytes()) != Sha256::digest(token.expose().as_bytes()) {
                    return crate::http::error::ApiError::Unauthorized.into_response();
                }
            }
            metrics(app).await
        })
        .boxed()
}

/// Liveness.
#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Readiness: whether this node can serve.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// `ok` or `down`.
    pub database: &'static str,
    /// Present when the node is in a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
}

/// This node's view of its cluster.
#[derive(Serialize, ToSchema)]
pub struct ClusterStatus {
    pub node: String,
    /// Peers heard from within the peer timeout.
    pub peers: Vec<String>,
}

#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
async fn healthz() -> Response {
    json(StatusCode::OK, &Health { status: "ok" })
}

#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn readyz(app: Arc<App>) -> Response {
    let db_ok = app.store.ping().await;
    let body = Readiness {
        status: if db_ok { "ready" } else { "not_ready" },
        database: if db_ok { "ok" } else { "down" },
        cluster: app.cluster.as_ref().map(|c| ClusterStatus {
            node: c.node.clone(),
            peers: c.peers().into_iter().map(|p| p.node).collect(),
        }),
    };
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, &body)
}

#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(app: Arc<App>) -> Response {
    warp::reply::with_header(
        app.metrics.render(),
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4",
    )
    .into_response()
}
