//! Prometheus metrics for `/metrics`. Routes are labelled by their template (`/api/users/{id}`),
//! never by the raw path, so a scan of random URLs cannot grow the label set.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The node's metric families, registered once at start.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    routes: RouteLabels,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    /// Websocket connections open on this node.
    pub ws_connections: IntGauge,
    /// Line-endpoint connections open on this node (logged in or not).
    pub line_connections: IntGauge,
    /// Client TCP connections open (capped by `server.max_connections`).
    pub http_connections: IntGauge,
    /// Connections closed for sending nothing, idling or not reading.
    pub http_timeouts: IntCounter,
    /// Log-ins refused by the failure throttle or the hashing queue, by reason.
    pub login_refused: IntCounterVec,
    /// Messages stored by this node (retries not counted).
    pub messages_stored: IntCounter,
    /// Sends per batch the writer committed: how much each database round is shared.
    pub commit_batch: Histogram,
    /// Connections closed because their queue was full.
    pub slow_closed: IntCounter,
    /// Cluster packets this node published.
    pub cluster_sent: IntCounter,
    /// Packets re-sent on a peer's request.
    pub cluster_resent: IntCounter,
    /// Gaps that could not be re-sent and were caught up from storage.
    pub cluster_unrecovered: IntCounter,
    /// Packets dropped, by reason (bad_mac, foreign_cluster, replayed, stale, malformed, own).
    pub cluster_dropped: IntCounterVec,
    /// Peers heard from recently.
    pub cluster_peers: IntGauge,
}

/// The route templates requests are labelled by, matched segment by segment; `{…}` matches any
/// one segment. Given at start by whoever composes the routes (the OpenAPI document's paths
/// and the few routes outside it), so the list cannot drift from the routes themselves.
#[derive(Debug, Clone, Default)]
pub struct RouteLabels {
    templates: Vec<String>,
}

impl RouteLabels {
    /// Labels by these templates.
    pub fn new(templates: impl IntoIterator<Item = String>) -> Self {
        let mut templates: Vec<String> = templates.into_iter().collect();
        templates.sort();
        templates.dedup();
        Self { templates }
    }

    /// The template a request path belongs to: a known route, `/swagger/*`, a static file, or
    /// `other`.
    pub fn label<'a>(&'a self, path: &str) -> &'a str {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // Literal routes beat templates: `/api/users/me` is not `/api/users/{id}`.
        let literal = self.templates.iter().find(|t| *t == path);
        let exact = || {
            self.templates.iter().find(|template| {
                let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
                parts.len() == segments.len()
                    && parts
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| t.starts_with('{') || t == s)
            })
        };
        match literal.or_else(exact) {
            Some(t) => t,
            None if path.starts_with("/swagger") => "/swagger/*",
            None if !path.starts_with("/api") && !path.starts_with("/uploads") => "/static",
            None => "other",
        }
    }
}

/// The method as a label: one of the standard methods, else `other`, so made-up methods cannot
/// grow the label set.
pub fn method_label(method: &str) -> &'static str {
    const METHODS: &[&str] = &[
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    METHODS
        .iter()
        .copied()
        .find(|m| *m == method)
        .unwrap_or("other")
}

impl Metrics {
    /// Registers every family; HTTP requests are labelled by `routes`.
    pub fn new(routes: RouteLabels) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "chorus_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "chorus_http_request_duration_seconds",
                "HTTP request latency by route and method",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["route", "method"],
        )?;
        let ws_connections = IntGauge::new(
            "chorus_ws_connections",
            "Websocket connections open on this node",
        )?;
        let line_connections = IntGauge::new(
            "chorus_line_connections",
            "Line-endpoint connections open on this node",
        )?;
        let http_connections = IntGauge::new(
            "chorus_http_connections",
            "Client TCP connections open on this node",
        )?;
        let http_timeouts = IntCounter::new(
            "chorus_http_timeouts_total",
            "Client connections closed for silence, idling or a stalled write",
        )?;
        let login_refused = IntCounterVec::new(
            Opts::new(
                "chorus_login_refused_total",
                "Log-ins refused before checking the password, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(http_connections.clone()))?;
        registry.register(Box::new(http_timeouts.clone()))?;
        registry.register(Box::new(login_refused.clone()))?;
        let messages_stored = IntCounter::new(
            "chorus_messages_stored_total",
            "Messages stored by this node",
        )?;
        let commit_batch = Histogram::with_opts(
            HistogramOpts::new(
                "chorus_commit_batch_sends",
                "Sends per batch committed by this node's writer",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )?;
        let slow_closed = IntCounter::new(
            "chorus_ws_slow_closed_total",
            "Websocket connections closed because their outgoing queue was full",
        )?;
        let cluster_sent = IntCounter::new(
            "chorus_cluster_packets_sent_total",
            "Cluster packets published",
        )?;
        let cluster_resent = IntCounter::new(
            "chorus_cluster_packets_resent_total",
            "Cluster packets re-sent on a peer's request",
        )?;
        let cluster_unrecovered = IntCounter::new(
            "chorus_cluster_gaps_unrecovered_total",
            "Cluster gaps caught up from storage instead of re-sent",
        )?;
        let cluster_dropped = IntCounterVec::new(
            Opts::new(
                "chorus_cluster_dropped_total",
                "Cluster packets dropped, by reason",
            ),
            &["reason"],
        )?;
        let cluster_peers = IntGauge::new("chorus_cluster_peers", "Peers heard from recently")?;
        registry.register(Box::new(cluster_sent.clone()))?;
        registry.register(Box::new(cluster_resent.clone()))?;
        registry.register(Box::new(cluster_unrecovered.clone()))?;
        registry.register(Box::new(cluster_dropped.clone()))?;
        registry.register(Box::new(cluster_peers.clone()))?;
        registry.register(Box::new(messages_stored.clone()))?;
        registry.register(Box::new(commit_batch.clone()))?;
        registry.register(Box::new(slow_closed.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(ws_connections.clone()))?;
        registry.register(Box::new(line_connections.clone()))?;
        Ok(Self {
            registry,
            routes,
            http_requests,
            http_duration,
            ws_connections,
            line_connections,
            http_connections,
            http_timeouts,
            login_refused,
            messages_stored,
            commit_batch,
            slow_closed,
            cluster_sent,
            cluster_resent,
            cluster_unrecovered,
            cluster_dropped,
            cluster_peers,
        })
    }

    /// Counts one finished HTTP request.
    pub fn observe_http(&self, path: &str, method: &str, status: u16, seconds: f64) {
        let route = self.routes.label(path);
        let method = method_label(method);
        self.http_requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(%err, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::RouteLabels;

    #[test]
    fn labels_are_templates() {
        let routes = RouteLabels::new(
            [
                "/api/users",
                "/api/users/me",
                "/api/users/{id}",
                "/api/communities/{id}/members",
                "/api/communities/{id}/members/me",
                "/uploads/{file}",
            ]
            .map(String::from),
        );
        let route_label = |path: &str| routes.label(path).to_owned();
        assert_eq!(route_label("/api/users/me"), "/api/users/me");
        assert_eq!(route_label("/api/users/42"), "/api/users/{id}");
        assert_eq!(
            route_label("/api/communities/7/members/me"),
            "/api/communities/{id}/members/me"
        );
        assert_eq!(route_label("/uploads/abc.png"), "/uploads/{file}");
        assert_eq!(route_label("/api/nope/1/2/3"), "other");
        assert_eq!(route_label("/swagger/index.html"), "/swagger/*");
    }
}
