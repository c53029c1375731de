//! `send_proc`: the only writer of a connection's socket, and the keeper of its order.
//!
//! It first replays what the user missed (everything after their read cursors), then drains the
//! queue. Per conversation it remembers the last seq this connection has been sent: a message at
//! or below it is a repeat and is dropped; one beyond the next expected seq means something was
//! missed, and the gap is filled from storage first. So a connection gets every message of a
//! conversation once and in seq order, however messages reach the queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::sync::mpsc;
use warp::filters::ws::{Message, WebSocket};

use crate::app::App;
use crate::frame::ServerFrame;
use crate::hub::{CloseReason, Node, Outgoing};
use crate::ids::{ConversationId, Seq};
use crate::store::StoreError;

/// Messages read from storage per query while replaying or filling a gap.
const PAGE: u64 = 500;
/// How long a closing connection may take to flush what is already queued.
const FLUSH_LIMIT: Duration = Duration::from_secs(2);

type Sink = SplitSink<WebSocket, Message>;

/// Why sending stopped early.
#[derive(Debug, thiserror::Error)]
enum SendFailure {
    #[error("socket: {0}")]
    Socket(#[from] warp::Error),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// The connection's writer with its per-conversation high-water marks.
struct Writer {
    app: Arc<App>,
    node: Arc<Node>,
    sink: Sink,
    sent: HashMap<ConversationId, Seq>,
}

pub(super) async fn send_proc(
    app: Arc<App>,
    node: Arc<Node>,
    mut queue: mpsc::Receiver<Outgoing>,
    sink: Sink,
) {
    let mut writer = Writer {
        app,
        node: node.clone(),
        sink,
        sent: HashMap::new(),
    };
    let result = async {
        writer.catch_up().await?;
        loop {
            let out = tokio::select! {
                biased;
                _ = node.closing() => break,
                out = queue.recv() => out,
            };
            let Some(out) = out else { break };
            writer.handle(out).await?;
            if queue.is_empty() {
                writer.sink.flush().await?;
            }
        }
        Ok::<(), SendFailure>(())
    }
    .await;
    if let Err(err) = &result {
        tracing::debug!(node = node.id.0, %err, "send_proc stopped");
    }
    let reason = node.close_reason().unwrap_or(CloseReason::NORMAL);
    if result.is_ok() && reason != CloseReason::SLOW {
        // Flush what was queued before the close (acks above all), within a bound.
        let flush = async {
            while let Ok(out) = queue.try_recv() {
                writer.handle(out).await?;
            }
            writer.sink.flush().await?;
            Ok::<(), SendFailure>(())
        };
        let _ = tokio::time::timeout(FLUSH_LIMIT, flush).await;
    }
    let close = Message::close_with(reason.code, reason.reason);
    let _ = tokio::time::timeout(FLUSH_LIMIT, async {
        let _ = writer.sink.send(close).await;
        let _ = writer.sink.close().await;
    })
    .await;
}

impl Writer {
    async fn text(&mut self, text: &str) -> Result<(), SendFailure> {
        self.sink.feed(Message::text(text)).await?;
        Ok(())
    }

    /// Everything this connection does not have yet: at connect, all after the user's read
    /// cursors; later (a cluster gap), all after what was sent. Conversation by conversation,
    /// oldest first.
    async fn catch_up(&mut self) -> Result<(), SendFailure> {
        let store = &self.app.store;
        let user = self.node.user;
        let communities = store.community_ids_of(user).await?;
        let mut conversations = store.conversations_of(user, &communities).await?;
        conversations.sort();
        let cursors = store.read_cursors(user).await?;
        for (conversation, last) in conversations {
            let from = cursors.get(&conversation).copied().unwrap_or(Seq(0));
            self.sent.entry(conversation).or_insert(from);
            self.fill(conversation, last).await?;
        }
        self.sink.flush().await?;
        Ok(())
    }

    /// The last seq this connection has of `conversation`; for a conversation it has not seen
    /// yet, the user's read cursor (they have everything up to there).
    async fn high_water(&mut self, conversation: ConversationId) -> Result<Seq, SendFailure> {
        if let Some(seq) = self.sent.get(&conversation) {
            return Ok(*seq);
        }
        let seq = self
            .app
            .store
            .read_cursor(self.node.user, conversation)
            .await?;
        self.sent.insert(conversation, seq);
        Ok(seq)
    }

    /// Sends stored messages of `conversation` from the high-water mark up to `until`.
    async fn fill(&mut self, conversation: ConversationId, until: Seq) -> Result<(), SendFailure> {
        loop {
            let have = self.high_water(conversation).await?;
            if have >= until {
                return Ok(());
            }
            let want = (until.0 - have.0).min(PAGE as i64) as u64;
            let page = self
                .app
                .store
                .messages_after(conversation, have, want)
                .await?;
            let Some(last) = page.last().map(|m| m.seq) else {
                return Ok(());
            };
            for message in &page {
                self.text(&ServerFrame::stored(message).to_text()).await?;
            }
            self.sent.insert(conversation, last);
        }
    }

    async fn handle(&mut self, out: Outgoing) -> Result<(), SendFailure> {
        match out {
            Outgoing::Frame(text) => self.text(&text).await,
            Outgoing::BareHeartbeat => self.text("heartbeat").await,
            Outgoing::Message {
                conversation,
                seq,
                text,
            } => {
                let have = self.high_water(conversation).await?;
                if seq <= have {
                    return Ok(());
                }
                self.fill(conversation, Seq(seq.0 - 1)).await?;
                self.text(&text).await?;
                self.sent.insert(conversation, seq);
                Ok(())
            }
            Outgoing::Ack {
                conversation,
                seq,
                text,
            } => {
                let have = self.high_water(conversation).await?;
                if seq > have {
                    self.fill(conversation, Seq(seq.0 - 1)).await?;
                    self.sent.insert(conversation, seq);
                }
                self.text(&text).await
            }
            Outgoing::Sync {
                conversation,
                after,
            } => {
                let have = self.high_water(conversation).await?;
                self.sent.insert(conversation, have.max(after));
                let last = self.app.store.last_seq(conversation).await?;
                self.fill(conversation, last).await
            }
            Outgoing::Resync => self.catch_up().await,
        }
    }
}
