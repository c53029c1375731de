//! `send_proc`: the only writer of a connection's socket, and the keeper of its order, for every
//! transport (the websocket and the line endpoint each bring a [`Transport`]: how one frame goes
//! out and how the socket closes).
//!
//! It first replays what the user missed (everything after their read cursors), then drains the
//! queue. Per conversation it remembers which seqs this connection holds: everything up to a
//! floor (the read cursor it started from) is known to the user, everything from there up to the
//! last seq sent was sent here. A message at or below that is a repeat and is dropped; one beyond
//! the next expected seq means something was missed, and the gap is filled from storage first.
//! So a connection gets every message of a conversation once and in seq order, however messages
//! reach the queue. A `sync` asking for less than the floor lowers it and sends what lies between.
//! The connection's own sends come back as acks, never as copies.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::app::App;
use crate::frame::ServerFrame;
use crate::hub::{CloseReason, Conn, Outgoing};
use crate::ids::{ConversationId, Seq};
use crate::store::StoreError;

/// Messages read from storage per query while replaying or filling a gap.
const PAGE: u64 = 500;
/// How long a closing connection may take to flush what is already queued.
const FLUSH_LIMIT: Duration = Duration::from_secs(2);
/// How long an abandoned (stuck) client gets to take its close frame.
const ABANDON_CLOSE_LIMIT: Duration = Duration::from_millis(50);

/// How one transport writes to its socket. `send_proc` hands it server frames as the websocket's
/// JSON text (built once per notice for every connection it goes to); a transport that speaks
/// something else renders them.
pub trait Transport: Send {
    /// A failed write.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Queues one server frame (JSON text) on the socket.
    fn frame(&mut self, json: &str) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Queues text already in this transport's own form (a bare `heartbeat`, a line reply).
    fn raw(&mut self, text: &str) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Writes out what was queued.
    fn flush(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Says goodbye with `reason` and closes the socket.
    fn close(&mut self, reason: CloseReason) -> impl Future<Output = ()> + Send;
}

/// Why sending stopped early.
#[derive(Debug, thiserror::Error)]
enum SendFailure {
    #[error("socket: {0}")]
    Socket(Box<dyn std::error::Error + Send + Sync>),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("client abandoned")]
    Abandoned,
}

/// What one connection holds of one conversation: `floor` and below was known before (not sent
/// here); `(floor, sent]` was sent here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    floor: Seq,
    sent: Seq,
}

impl Mark {
    /// A conversation this connection has not seen: the user has everything up to `cursor`.
    fn at(cursor: Seq) -> Self {
        Self {
            floor: cursor,
            sent: cursor,
        }
    }

    /// Whether the connection holds `seq` already (a repeat, to be dropped).
    fn holds(&self, seq: Seq) -> bool {
        seq <= self.sent
    }

    /// Everything up to `seq` went out here.
    fn sent_up_to(&mut self, seq: Seq) {
        self.sent = self.sent.max(seq);
    }

    /// The client asks for everything after `after`, and the conversation ends at `last`.
    /// Returns the range `(after, floor]` it lacks although this connection assumed it had
    /// it (to send now), and moves the marks; what lies beyond `sent` is filled as usual.
    fn sync(&mut self, after: Seq, last: Seq) -> Option<(Seq, Seq)> {
        // A cursor past the end claims messages that do not exist yet; believing it would drop
        // them when they come.
        let after = after.min(last);
        if after < self.floor {
            let lacking = (after, self.floor);
            self.floor = after;
            Some(lacking)
        } else {
            // The client may already have more than was sent here (another device).
            self.sent_up_to(after);
            None
        }
    }

    /// The user (re)joined a group and the join put their read cursor at `cursor`: what was
    /// sent before an earlier leave says nothing about now, so the absence is not replayed.
    fn rejoin(&mut self, cursor: Seq) {
        if self.sent < cursor {
            *self = Self::at(cursor);
        }
    }
}

/// The connection's writer with its per-conversation high-water marks.
///
/// Every storage read below is boxed (`Box::pin(..).await`): storage futures are large, and this
/// task lives as long as the connection; inline, they would size every idle connection's task for
/// the largest of them, where boxed they cost an allocation only when a read happens.
struct Writer<T> {
    app: Arc<App>,
    conn: Arc<Conn>,
    sink: T,
    marks: HashMap<ConversationId, Mark>,
}

/// Drains `conn`'s queue into `sink` until the connection closes: first what the user missed,
/// then the queue, in order and once; at the end what is still queued (within a bound) and the
/// transport's goodbye.
pub async fn run<T: Transport>(
    app: Arc<App>,
    conn: Arc<Conn>,
    mut queue: mpsc::Receiver<Outgoing>,
    sink: T,
) {
    let mut writer = Writer {
        app,
        conn: conn.clone(),
        sink,
        marks: HashMap::new(),
    };
    let result = async {
        Box::pin(writer.catch_up()).await?;
        loop {
            let out = tokio::select! {
                biased;
                _ = conn.closing() => break,
                out = queue.recv() => out,
            };
            let Some(out) = out else { break };
            writer.handle(out).await?;
            if queue.is_empty() {
                writer.flush().await?;
            }
        }
        Ok::<(), SendFailure>(())
    }
    .await;
    match &result {
        Err(SendFailure::Store(err)) => {
            tracing::warn!(conn = conn.id.0, %err, "send_proc: storage failed; closing");
            conn.close(CloseReason::INTERNAL);
        }
        Err(err) => tracing::debug!(conn = conn.id.0, %err, "send_proc stopped"),
        Ok(()) => {}
    }
    // Whatever ended the writer ends the connection (the reader is told to stop too).
    conn.close(CloseReason::NORMAL);
    let reason = conn.close_reason().unwrap_or(CloseReason::NORMAL);
    if result.is_ok() && !conn.is_abandoned() {
        // Flush what was queued before the close (acks above all), within a bound.
        let flush = async {
            while let Ok(out) = queue.try_recv() {
                writer.handle(out).await?;
            }
            writer.flush().await?;
            Ok::<(), SendFailure>(())
        };
        let _ = tokio::time::timeout(FLUSH_LIMIT, flush).await;
    }
    // An abandoned client is not reading: one short try at the close frame, then hang up.
    let close_limit = if conn.is_abandoned() {
        ABANDON_CLOSE_LIMIT
    } else {
        FLUSH_LIMIT
    };
    let _ = tokio::time::timeout(close_limit, writer.sink.close(reason)).await;
}

/// A transport's write error, kept as the cause.
fn socket<E: std::error::Error + Send + Sync + 'static>(err: E) -> SendFailure {
    SendFailure::Socket(Box::new(err))
}

impl<T: Transport> Writer<T> {
    /// Queues a frame on the socket; gives up at once if the client is abandoned (a full
    /// socket would otherwise hold this task, and the connection, forever).
    async fn text(&mut self, text: &str) -> Result<(), SendFailure> {
        tokio::select! {
            sent = self.sink.frame(text) => sent.map_err(socket),
            _ = self.conn.abandoned() => Err(SendFailure::Abandoned),
        }
    }

    /// Queues text in the transport's own form.
    async fn raw(&mut self, text: &str) -> Result<(), SendFailure> {
        tokio::select! {
            sent = self.sink.raw(text) => sent.map_err(socket),
            _ = self.conn.abandoned() => Err(SendFailure::Abandoned),
        }
    }

    async fn flush(&mut self) -> Result<(), SendFailure> {
        tokio::select! {
            flushed = self.sink.flush() => flushed.map_err(socket),
            _ = self.conn.abandoned() => Err(SendFailure::Abandoned),
        }
    }

    /// Everything this connection does not have yet: at connect, all after the user's read
    /// cursors; later (a cluster gap), all after what was sent. Conversation by conversation,
    /// oldest first.
    async fn catch_up(&mut self) -> Result<(), SendFailure> {
        let store = &self.app.store;
        let user = self.conn.user;
        let communities = store.community_ids_of(user).await?;
        let mut conversations = store.conversations_of(user, &communities).await?;
        conversations.sort();
        let cursors = store.read_cursors(user).await?;
        for (conversation, last) in conversations {
            let from = cursors.get(&conversation).copied().unwrap_or(Seq(0));
            self.marks.entry(conversation).or_insert(Mark::at(from));
            self.fill(conversation, last).await?;
        }
        self.flush().await
    }

    /// The last seq this connection has of `conversation`; for a conversation it has not seen
    /// yet, the user's read cursor (they have everything up to there).
    async fn high_water(&mut self, conversation: ConversationId) -> Result<Seq, SendFailure> {
        Ok(self.mark(conversation).await?.sent)
    }

    async fn mark(&mut self, conversation: ConversationId) -> Result<Mark, SendFailure> {
        if let Some(mark) = self.marks.get(&conversation) {
            return Ok(*mark);
        }
        let seq = Box::pin(self.app.store.read_cursor(self.conn.user, conversation)).await?;
        let mark = Mark::at(seq);
        self.marks.insert(conversation, mark);
        Ok(mark)
    }

    fn set_sent(&mut self, conversation: ConversationId, seq: Seq) {
        if let Some(mark) = self.marks.get_mut(&conversation) {
            mark.sent_up_to(seq);
        }
    }

    /// Sends stored messages with seq in `(after, until]`, except this connection's own sends that
    /// still wait for their ack (the ack stands for them).
    async fn send_range(
        &mut self,
        conversation: ConversationId,
        after: Seq,
        until: Seq,
    ) -> Result<Option<Seq>, SendFailure> {
        let mut from = after;
        let mut last_sent = None;
        while from < until {
            let want = (until.0 - from.0).min(PAGE as i64) as u64;
            let page = Box::pin(self.app.store.messages_after(conversation, from, want)).await?;
            let Some(last) = page.last().map(|m| m.seq) else {
                break;
            };
            for message in page.iter().filter(|m| m.seq <= until) {
                let own_pending = message.sender == Some(self.conn.user)
                    && (message
                        .client_id
                        .as_deref()
                        .is_some_and(|id| self.conn.awaits_ack(id))
                        || self.conn.awaits_ack(&message.id));
                if !own_pending {
                    self.text(&ServerFrame::stored(message).to_text()).await?;
                }
                last_sent = Some(message.seq);
            }
            from = last;
        }
        Ok(last_sent)
    }

    /// Sends stored messages of `conversation` from the high-water mark up to `until`.
    async fn fill(&mut self, conversation: ConversationId, until: Seq) -> Result<(), SendFailure> {
        let have = self.high_water(conversation).await?;
        if have >= until {
            return Ok(());
        }
        if let Some(last) = self.send_range(conversation, have, until).await? {
            self.set_sent(conversation, last);
        }
        Ok(())
    }

    async fn handle(&mut self, out: Outgoing) -> Result<(), SendFailure> {
        match out {
            Outgoing::Frame(text) => self.text(&text).await,
            Outgoing::BareHeartbeat => self.raw("heartbeat").await,
            Outgoing::Raw(text) => self.raw(&text).await,
            Outgoing::Message {
                conversation,
                seq,
                text,
            } => {
                if self.mark(conversation).await?.holds(seq) {
                    return Ok(());
                }
                self.fill(conversation, Seq(seq.0 - 1)).await?;
                self.text(&text).await?;
                self.set_sent(conversation, seq);
                Ok(())
            }
            Outgoing::Ack {
                conversation,
                seq,
                client_id,
                text,
            } => {
                if !self.mark(conversation).await?.holds(seq) {
                    self.fill(conversation, Seq(seq.0 - 1)).await?;
                    self.set_sent(conversation, seq);
                }
                if let Some(id) = &client_id {
                    self.conn.settle(id);
                }
                self.text(&text).await
            }
            Outgoing::Sync {
                conversation,
                after,
            } => {
                let mut mark = self.mark(conversation).await?;
                let last = Box::pin(self.app.store.last_seq(conversation)).await?;
                if let Some((after, until)) = mark.sync(after, last) {
                    // The client lacks what this connection assumed it had: send that part.
                    self.send_range(conversation, after, until).await?;
                }
                self.marks.insert(conversation, mark);
                self.fill(conversation, last).await
            }
            Outgoing::Resync => Box::pin(self.catch_up()).await,
            Outgoing::Joined { conversation, text } => {
                // Start where the join put the read cursor (the end).
                let cursor =
                    Box::pin(self.app.store.read_cursor(self.conn.user, conversation)).await?;
                self.marks
                    .entry(conversation)
                    .or_insert(Mark::at(cursor))
                    .rejoin(cursor);
                self.text(&text).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Mark;
    use crate::ids::Seq;

    #[test]
    fn a_new_conversation_starts_at_the_read_cursor() {
        let mark = Mark::at(Seq(5));
        assert!(
            mark.holds(Seq(5)) && mark.holds(Seq(1)),
            "read before: repeats"
        );
        assert!(!mark.holds(Seq(6)));
    }

    #[test]
    fn what_was_sent_is_held_and_never_goes_back() {
        let mut mark = Mark::at(Seq(5));
        mark.sent_up_to(Seq(9));
        assert!(mark.holds(Seq(9)) && !mark.holds(Seq(10)));
        mark.sent_up_to(Seq(7));
        assert_eq!(
            mark.sent,
            Seq(9),
            "a late, lower seq does not lower the mark"
        );
        assert_eq!(mark.floor, Seq(5));
    }

    #[test]
    fn a_sync_below_the_floor_sends_what_the_client_lacks() {
        let mut mark = Mark::at(Seq(10));
        assert_eq!(mark.sync(Seq(4), Seq(20)), Some((Seq(4), Seq(10))));
        assert_eq!(
            mark,
            Mark {
                floor: Seq(4),
                sent: Seq(10)
            }
        );
        // Asking again for the same sends nothing twice.
        assert_eq!(mark.sync(Seq(4), Seq(20)), None);
    }

    #[test]
    fn a_sync_ahead_of_this_connection_moves_it_on() {
        // Another device read further: this connection need not send those.
        let mut mark = Mark::at(Seq(10));
        assert_eq!(mark.sync(Seq(15), Seq(20)), None);
        assert_eq!(mark.sent, Seq(15));
        assert!(mark.holds(Seq(15)) && !mark.holds(Seq(16)));
    }

    #[test]
    fn a_sync_past_the_end_is_clamped_to_it() {
        // Believing a cursor at 99 would drop messages 13..=99 when they come.
        let mut mark = Mark::at(Seq(10));
        assert_eq!(mark.sync(Seq(99), Seq(12)), None);
        assert_eq!(mark.sent, Seq(12));
        assert!(!mark.holds(Seq(13)));
    }

    #[test]
    fn a_rejoin_starts_over_only_when_the_cursor_is_ahead() {
        let mut mark = Mark {
            floor: Seq(2),
            sent: Seq(7),
        };
        mark.rejoin(Seq(5));
        assert_eq!(
            mark.sent,
            Seq(7),
            "already past the cursor: nothing changes"
        );
        assert_eq!(mark.floor, Seq(2));
        mark.rejoin(Seq(30));
        assert_eq!(mark, Mark::at(Seq(30)), "the absence is not replayed");
        assert!(mark.holds(Seq(29)) && !mark.holds(Seq(31)));
    }
}
