//! `GET /chat`: the websocket. The token is checked before the upgrade; each connection
//! becomes a [`Conn`] with two tasks, `send_proc` (queue → socket, in order, once) and
//! `recv_proc` (socket → dispatch), as in GinChat, but with a bounded queue.

pub mod dispatch;
mod recv;
mod send;

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;
use warp::filters::ws::{WebSocket, Ws};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::app::{with_app, App};
use crate::fanout::{Notice, Scope};
use crate::hub::{CloseReason, Conn};
use crate::session::{caller_for_token, Caller, Refused};

/// Where the websocket is served.
pub const PATH: &str = "/chat";

/// `?token=`: browsers cannot set headers on a websocket.
#[derive(Debug, Deserialize)]
struct ChatQuery {
    token: Option<String>,
}

/// The `/chat` route.
pub fn routes(app: &Arc<App>) -> BoxedFilter<(Response,)> {
    let authenticated = warp::query::<ChatQuery>().and(with_app(app)).and_then(
        |q: ChatQuery, app: Arc<App>| async move {
            let token = q
                .token
                .filter(|t| !t.is_empty())
                .ok_or(Refused::Unauthorized)?;
            caller_for_token(&app.store, &token)
                .await
                .map_err(Rejection::from)
        },
    );
    warp::path!("chat")
        .and(warp::get())
        .and(authenticated)
        .and(warp::ws())
        .and(crate::listen::peer())
        .and(with_app(app))
        .map(
            |caller: Caller, ws: Ws, peer: Option<SocketAddr>, app: Arc<App>| {
                let chat = &app.settings.chat;
                ws.max_message_size(chat.max_message_bytes)
                    .max_frame_size(chat.max_frame_bytes)
                    .on_upgrade(move |socket| run(app, caller, peer, socket))
                    .into_response()
            },
        )
        .boxed()
}

/// One connection's life: register, announce, run both tasks, clean up.
async fn run(app: Arc<App>, caller: Caller, peer: Option<SocketAddr>, socket: WebSocket) {
    if app.stopping.is_cancelled() {
        return;
    }
    // Shutdown waits for every connection holding one of these.
    let _alive = app.connections.token();
    let user = caller.user;
    let cap = app.settings.chat.max_sockets_per_user;
    if cap > 0 && app.hub.count(user) >= cap {
        // The newest is refused, so a user's working devices are never the ones cut off.
        tracing::info!(user = user.0, cap, "too many sockets: refusing");
        let mut socket = socket;
        let reason = CloseReason::TOO_MANY;
        let close = warp::filters::ws::Message::close_with(reason.code, reason.reason);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            let _ = futures_util::SinkExt::send(&mut socket, close).await;
            let _ = futures_util::SinkExt::close(&mut socket).await;
        })
        .await;
        return;
    }
    let (conn, queue) = Conn::new(
        app.hub.next_id(),
        user,
        caller.token_hash,
        caller.expires_at,
        app.settings.chat.queue_len,
    );
    tracing::debug!(conn = conn.id.0, user = user.0, ?peer, "connected");
    app.metrics.ws_connections.inc();
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

    let (sink, stream) = futures_util::StreamExt::split(socket);
    let sending = tokio::spawn(send::send_proc(app.clone(), conn.clone(), queue, sink));
    recv::recv_proc(&app, &conn, stream).await;
    if app.stopping.is_cancelled() {
        // Shutdown closes every connection once the writer has stored and acked what it took, so
        // those acks still reach this socket.
        conn.closing().await;
    } else {
        conn.close(CloseReason::NORMAL);
    }
    if let Err(err) = sending.await {
        tracing::warn!(%err, "send_proc panicked");
    }

    if conn.close_reason() == Some(CloseReason::SLOW) {
        app.metrics.slow_closed.inc();
    }
    let last_here = app.hub.unregister(&conn);
    app.metrics.ws_connections.dec();
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
    tracing::debug!(conn = conn.id.0, user = user.0, reason = ?conn.close_reason(), "disconnected");
}
