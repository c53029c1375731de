//! `recv_proc`: reads the client's frames and hands them to dispatch, one at a time, so a
//! client's frames are handled in the order it sent them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use warp::filters::ws::WebSocket;

use crate::app::App;
use crate::connection::RateLimit;
use crate::dispatch::{dispatch, parse, FrameError};
use crate::hub::{CloseReason, Conn, Outgoing};

/// The longest single timer for a session's expiry (longer ones are re-armed).
const MAX_TIMER: Duration = Duration::from_secs(86_400);

/// How long a stopping node waits for a client to answer its close frame.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The RFC 6455 close code for a frame the client got wrong (`None`: the connection broke).
fn close_reason_for(err: &warp::Error) -> Option<CloseReason> {
    use std::error::Error as _;
    use tungstenite::error::Error as WsError;
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(ws) = e.downcast_ref::<WsError>() {
            return match ws {
                WsError::Capacity(_) => Some(CloseReason::TOO_BIG),
                WsError::Utf8 => Some(CloseReason::BAD_DATA),
                WsError::Protocol(_) => Some(CloseReason::PROTOCOL),
                _ => None,
            };
        }
        source = e.source();
    }
    None
}

pub(super) async fn recv_proc(
    app: &Arc<App>,
    conn: &Arc<Conn>,
    mut stream: SplitStream<WebSocket>,
) {
    let chat = &app.settings.chat;
    let mut limit = RateLimit::new(chat.rate_per_sec, chat.rate_burst);
    // Presence entries in Redis live a heartbeat timeout; refresh well before that.
    let refresh_every = Duration::from_secs(chat.heartbeat_timeout_secs.max(3) / 3);
    let mut refreshed = Instant::now();
    // Once the node is stopping, frames are read and dropped (never acked, so clients send them
    // again elsewhere) until the client answers the close frame: closing a socket with unread
    // data would reset it and could cost the client acks still in flight to it.
    let mut draining = false;
    // The session ends at `expires_at`: the socket closes then, like a revoked one.
    let left_ms = conn
        .expires_at
        .saturating_sub(crate::store::now_ms())
        .max(0);
    let expiry = tokio::time::sleep(Duration::from_millis(left_ms as u64).min(MAX_TIMER));
    tokio::pin!(expiry);
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = &mut expiry, if !draining => {
                if crate::store::now_ms() >= conn.expires_at {
                    tracing::info!(conn = conn.id.0, user = conn.user.0, "session expired: closing");
                    conn.close(CloseReason::REVOKED);
                    break;
                }
                // A far-off expiry is reached in steps (timers have a range).
                let left_ms = conn.expires_at.saturating_sub(crate::store::now_ms()).max(0);
                expiry.as_mut().reset(
                    tokio::time::Instant::now() + Duration::from_millis(left_ms as u64).min(MAX_TIMER),
                );
                continue;
            }
            _ = conn.closing(), if !draining => break,
            _ = app.stopping.cancelled(), if !draining => {
                draining = true;
                continue;
            }
            _ = async {
                conn.closing().await;
                tokio::time::sleep(DRAIN_LIMIT).await;
            }, if draining => break,
        };
        if draining {
            match next {
                Some(Ok(m)) if !m.is_close() => continue,
                _ => break,
            }
        }
        let message = match next {
            Some(Ok(m)) => m,
            Some(Err(err)) => {
                tracing::debug!(conn = conn.id.0, %err, "websocket read error");
                if let Some(reason) = close_reason_for(&err) {
                    conn.close(reason);
                }
                break;
            }
            None => break,
        };
        conn.touch();
        if refreshed.elapsed() >= refresh_every {
            refreshed = Instant::now();
            Box::pin(app.presence.up(conn.user, conn.id)).await;
        }
        if message.is_close() {
            break;
        }
        if message.is_ping() || message.is_pong() {
            continue;
        }
        let Ok(text) = message.to_str() else {
            conn.push(FrameError::Binary.to_outgoing(None));
            continue;
        };
        if text == "heartbeat" {
            conn.push(Outgoing::BareHeartbeat);
            continue;
        }
        if !limit.allow() {
            conn.push(FrameError::RateLimited.to_outgoing(None));
            continue;
        }
        match parse(text) {
            // Boxed: what a frame does may wait on storage, and those futures are large; inline
            // they would size every idle connection's task for the largest of them.
            Ok(frame) => Box::pin(dispatch(app, conn, frame)).await,
            Err((err, id)) => {
                conn.push(err.to_outgoing(id));
            }
        }
    }
}
