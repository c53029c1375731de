//! The websocket side of [`crate::send_proc`]: frames go out as text messages, and the socket closes
//! with an RFC 6455 close frame carrying the [`CloseReason`].

use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use warp::filters::ws::{Message, WebSocket};

use crate::hub::CloseReason;
use crate::send_proc::Transport;

/// The writing half of a websocket.
pub(super) struct WsSink(pub(super) SplitSink<WebSocket, Message>);

impl Transport for WsSink {
    type Error = warp::Error;

    async fn frame(&mut self, json: &str) -> Result<(), warp::Error> {
        self.0.feed(Message::text(json)).await
    }

    async fn raw(&mut self, text: &str) -> Result<(), warp::Error> {
        self.0.feed(Message::text(text)).await
    }

    async fn flush(&mut self) -> Result<(), warp::Error> {
        self.0.flush().await
    }

    async fn close(&mut self, reason: CloseReason) {
        let _ = self
            .0
            .send(Message::close_with(reason.code, reason.reason))
            .await;
        let _ = self.0.close().await;
    }
}
