//! A client connection's life on this node, whatever its transport (the websocket in [`crate::ws`],
//! the line endpoint in [`crate::line`]): the per-user cap, registering in the hub, presence and
//! the online notice at the start; the reverse at the end. Also the per-connection frame rate.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::app::App;
use crate::fanout::{Notice, Scope};
use crate::hub::{Conn, Outgoing};
use crate::session::Caller;

/// The user already has `chat.max_sockets_per_user` connections on this node: the newest is
/// refused, so a user's working devices are never the ones cut off.
#[derive(Debug, thiserror::Error)]
#[error("too many connections for this user (at most {0} on a node)")]
pub struct TooMany(pub usize);

/// Registers a connection for `caller` and announces the user online when this is their first
/// anywhere. Returns the connection and its queue's receiving end (for its `send_proc`).
pub async fn open(
    app: &Arc<App>,
    caller: &Caller,
) -> Result<(Arc<Conn>, mpsc::Receiver<Outgoing>), TooMany> {
    let user = caller.user;
    let cap = app.settings.chat.max_sockets_per_user;
    if cap > 0 && app.hub.count(user) >= cap {
        tracing::info!(user = user.0, cap, "too many connections: refusing");
        return Err(TooMany(cap));
    }
    let (conn, queue) = Conn::new(
        app.hub.next_id(),
        user,
        caller.token_hash.clone(),
        caller.expires_at,
        app.settings.chat.queue_len,
    );
    let first_here = app.hub.register(conn.clone());
    let was_online = !first_here || app.presence.is_online(user).await;
    app.presence.up(user, conn.id).await;
    if first_here {
        // Contacts hear of it (here and on every node) when the user was offline until now.
        let online = Notice::Presence {
            user,
            here: true,
            notify: !was_online,
        };
        app.fanout.announce(online, Scope::default()).await;
    }
    Ok((conn, queue))
}

/// The end of a connection whose tasks have stopped: out of the hub, presence down, and the
/// offline notice when it was the user's last connection.
pub async fn close(app: &Arc<App>, conn: &Arc<Conn>) {
    let user = conn.user;
    if conn.close_reason() == Some(crate::hub::CloseReason::SLOW) {
        app.metrics.slow_closed.inc();
    }
    let last_here = app.hub.unregister(conn);
    let still_online = app.presence.down(user, conn.id).await;
    if last_here {
        let offline = Notice::Presence {
            user,
            here: false,
            notify: !still_online,
        };
        // Peers hear at once; this node's connections once "last seen" is recorded (not on
        // shutdown: the user may just move node), so a page that asks for it finds it.
        app.fanout.publish(offline.clone());
        if !still_online && !app.stopping.is_cancelled() {
            let now = crate::store::now_ms();
            if let Err(err) = app.store.set_last_seen(user, now).await {
                tracing::warn!(%err, "cannot record last seen");
            }
        }
        app.fanout.deliver_here(&offline, Scope::default()).await;
    }
}

/// A token bucket: `rate` frames (or lines) a second on average, bursts up to `burst`.
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// A full bucket; a `rate` of 0 allows everything.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: Instant::now(),
        }
    }

    /// Takes a token if there is one.
    pub fn allow(&mut self) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RateLimit;

    #[test]
    fn a_burst_then_refusals() {
        let mut limit = RateLimit::new(1, 3);
        assert!((0..3).all(|_| limit.allow()));
        assert!(!limit.allow(), "the burst is spent");
        assert!(
            (0..100).all(|_| RateLimit::new(0, 1).allow()),
            "0 = no limit"
        );
    }
}
