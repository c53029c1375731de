//! `GET /chat`: the websocket. The token is checked before the upgrade; each connection
//! becomes a [`crate::hub::Conn`] with two tasks, `send_proc` (queue → socket, in order, once) and
//! `recv_proc` (socket → [`crate::dispatch`]), as in GinChat, but with a bounded queue. The
//! connection's life around them is [`crate::connection`]'s, its writer [`crate::send_proc`]'s.

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
use crate::hub::CloseReason;
use crate::session::{caller_for_token, Caller, Refused};
use crate::{connection, send_proc};

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
    // Set-up and teardown are boxed so the connection's long-lived task is not sized for them.
    let (conn, queue) = match Box::pin(connection::open(&app, &caller)).await {
        Ok(opened) => opened,
        Err(_) => {
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
    };
    tracing::debug!(conn = conn.id.0, user = user.0, ?peer, "connected");
    app.metrics.ws_connections.inc();

    let (sink, stream) = futures_util::StreamExt::split(socket);
    let sending = tokio::spawn(send_proc::run(
        app.clone(),
        conn.clone(),
        queue,
        send::WsSink(sink),
    ));
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
    app.metrics.ws_connections.dec();
    Box::pin(connection::close(&app, &conn)).await;
    tracing::debug!(conn = conn.id.0, user = user.0, reason = ?conn.close_reason(), "disconnected");
}
