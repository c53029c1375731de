//! The hub: every live client connection (a [`Conn`]: a websocket or a line-endpoint socket) on
//! this server, by user.
//!
//! Delivery never waits on a client: frames go into each connection's bounded queue with `try_send`;
//! a connection whose queue is full is closed (it catches up from storage when it reconnects), so one
//! slow reader cannot hold up dispatch for anyone else.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::frame::ServerFrame;
use crate::ids::{ConversationId, Seq, UserId};
use crate::lock::{lock, read, write};
use crate::store::now_ms;

/// A connection's id, unique on this server for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What goes into a connection's queue. Messages and acks carry their place in the conversation so
/// the connection's `send_proc` can keep order and drop repeats.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// Any frame that needs no ordering (presence, typing, read, error, heartbeat).
    Frame(Arc<str>),
    /// The bare text `heartbeat`, answering the bare text frame.
    BareHeartbeat,
    /// Text already in the connection's own transport form, written as is (the line
    /// endpoint's answers to commands: they need no ordering and no rendering).
    Raw(Arc<str>),
    /// A stored message (or system notice) for this user.
    Message {
        conversation: ConversationId,
        seq: Seq,
        text: Arc<str>,
    },
    /// The ack for this connection's own send; it counts as delivered for ordering.
    Ack {
        conversation: ConversationId,
        seq: Seq,
        /// The key the send waited under: its client id, or for an id-less send its message id.
        client_id: Option<String>,
        text: Arc<str>,
    },
    /// The client asked for everything after `after` in a conversation.
    Sync {
        conversation: ConversationId,
        after: Seq,
    },
    /// Something may have been missed (a cluster gap): catch up on every conversation.
    Resync,
    /// The `member` frame telling this user they joined a community: the group's conversation
    /// restarts at their read cursor (which the join put at its current end), not where this
    /// connection left off before an earlier leave.
    Joined {
        conversation: ConversationId,
        text: Arc<str>,
    },
}

impl From<ServerFrame> for Outgoing {
    /// A frame that needs no ordering, serialized here once for every queue it goes to.
    fn from(frame: ServerFrame) -> Self {
        Self::Frame(frame.to_text().into())
    }
}

/// Why a connection was closed: a websocket close code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

impl CloseReason {
    pub const NORMAL: Self = Self {
        code: 1000,
        reason: "bye",
    };
    pub const SLOW: Self = Self {
        code: 1008,
        reason: "too slow: outgoing queue full",
    };
    pub const IDLE: Self = Self {
        code: 4408,
        reason: "heartbeat timeout",
    };
    pub const SHUTDOWN: Self = Self {
        code: 1001,
        reason: "server shutting down",
    };
    pub const INTERNAL: Self = Self {
        code: 1011,
        reason: "server error; reconnect",
    };
    pub const REVOKED: Self = Self {
        code: 4401,
        reason: "session ended",
    };
    /// A message over `chat.max_message_bytes` (RFC 6455: 1009).
    pub const TOO_BIG: Self = Self {
        code: 1009,
        reason: "message too big",
    };
    /// A text frame that is not UTF-8 (RFC 6455: 1007).
    pub const BAD_DATA: Self = Self {
        code: 1007,
        reason: "invalid UTF-8",
    };
    /// Reserved bits, an unmasked frame, a bad opcode (RFC 6455: 1002).
    pub const PROTOCOL: Self = Self {
        code: 1002,
        reason: "protocol error",
    };
    /// The user already has `chat.max_sockets_per_user` sockets on this node.
    pub const TOO_MANY: Self = Self {
        code: 4429,
        reason: "too many connections for this user",
    };
}

/// One client connection (a websocket or a line-endpoint socket): GinChat's `Node`, with a
/// bounded queue instead of an unbounded one.
pub struct Conn {
    pub id: ConnId,
    pub user: UserId,
    /// The hash of the token the connection was opened with (log-out closes it).
    pub token_hash: String,
    /// Epoch ms when the session behind the token ends; the connection closes then.
    pub expires_at: i64,
    last_seen: AtomicI64,
    queue: mpsc::Sender<Outgoing>,
    closed: CancellationToken,
    /// Cancelled when the client is judged unable to take more: writes stop mid-way.
    abandoned: CancellationToken,
    close_reason: Mutex<Option<CloseReason>>,
    /// Client ids of this connection's sends that are not acked yet: storage may show those messages
    /// before their ack is queued, and the sender must get the ack, not a copy.
    pending: Mutex<HashSet<String>>,
}

impl fmt::Debug for Conn {
    /// Without the token hash, which names the session.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("expires_at", &self.expires_at)
            .field("closing", &self.is_closing())
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// A connection and the receiving end of its queue (for its `send_proc`).
    pub fn new(
        id: ConnId,
        user: UserId,
        token_hash: String,
        expires_at: i64,
        queue_len: usize,
    ) -> (Arc<Self>, mpsc::Receiver<Outgoing>) {
        let (queue, rx) = mpsc::channel(queue_len.max(1));
        let now = now_ms();
        let conn = Arc::new(Self {
            id,
            user,
            token_hash,
            expires_at,
            last_seen: AtomicI64::new(now),
            queue,
            closed: CancellationToken::new(),
            abandoned: CancellationToken::new(),
            close_reason: Mutex::new(None),
            pending: Mutex::default(),
        });
        (conn, rx)
    }

    /// Records that the client said something (any frame counts as a heartbeat).
    pub fn touch(&self) {
        self.last_seen.store(now_ms(), Ordering::Relaxed);
    }

    /// Epoch ms of the last frame from the client.
    pub fn last_seen(&self) -> i64 {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// Queues a frame without waiting; a full queue closes the connection. Returns whether it was
    /// queued. A connection that is closing takes nothing more: what was queued before still goes
    /// out, but a session that ended (log-out, deleted account) hears nothing after the end.
    pub fn push(&self, out: Outgoing) -> bool {
        if self.is_closing() {
            return false;
        }
        match self.queue.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    conn = self.id.0,
                    user = self.user.0,
                    "queue full: closing slow client"
                );
                self.close(CloseReason::SLOW);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the connection's tasks to stop; the first reason given wins. A slow or silent client is
    /// abandoned: nothing more is written to it, not even what is queued.
    pub fn close(&self, reason: CloseReason) {
        lock(&self.close_reason).get_or_insert(reason);
        if reason == CloseReason::SLOW || reason == CloseReason::IDLE {
            self.abandoned.cancel();
        }
        self.closed.cancel();
    }

    /// Whether the client was abandoned (slow or silent).
    pub fn is_abandoned(&self) -> bool {
        self.abandoned.is_cancelled()
    }

    /// Resolves when writes to this client should stop at once.
    pub async fn abandoned(&self) {
        self.abandoned.cancelled().await
    }

    /// Notes a send of this connection waiting for its ack.
    pub fn expect_ack(&self, client_id: &str) {
        lock(&self.pending).insert(client_id.to_owned());
    }

    /// The send's ack (or error) is on its way: it no longer waits.
    pub fn settle(&self, client_id: &str) {
        lock(&self.pending).remove(client_id);
    }

    /// Whether a send with this client id still waits for its ack.
    pub fn awaits_ack(&self, client_id: &str) -> bool {
        lock(&self.pending).contains(client_id)
    }

    /// Resolves when the connection is asked to close.
    pub async fn closing(&self) {
        self.closed.cancelled().await
    }

    /// Whether the connection has been asked to close.
    pub fn is_closing(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// The reason given to [`Conn::close`], if any.
    pub fn close_reason(&self) -> Option<CloseReason> {
        *lock(&self.close_reason)
    }
}

/// The connections of this server, by user.
#[derive(Default)]
pub struct Hub {
    conns: RwLock<HashMap<UserId, Vec<Arc<Conn>>>>,
    next_id: AtomicU64,
}

impl Hub {
    /// A fresh connection id.
    pub fn next_id(&self) -> ConnId {
        ConnId(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Adds a connection; true when it is the user's first on this server.
    pub fn register(&self, conn: Arc<Conn>) -> bool {
        let mut map = write(&self.conns);
        let list = map.entry(conn.user).or_default();
        list.push(conn);
        list.len() == 1
    }

    /// Removes a connection by id (never another connection of the same user); true when it was
    /// the user's last on this server.
    pub fn unregister(&self, conn: &Conn) -> bool {
        let mut map = write(&self.conns);
        let Some(list) = map.get_mut(&conn.user) else {
            return false;
        };
        let before = list.len();
        list.retain(|n| n.id != conn.id);
        let removed = list.len() < before;
        if list.is_empty() {
            map.remove(&conn.user);
            return removed;
        }
        false
    }

    /// Queues `out` on every connection of every one of `users` but `except` (one lock for all: a
    /// group's fan-out is a single pass).
    pub fn send_to_users(
        &self,
        users: impl IntoIterator<Item = UserId>,
        out: &Outgoing,
        except: Option<ConnId>,
    ) {
        let map = read(&self.conns);
        for user in users {
            for conn in map.get(&user).into_iter().flatten() {
                if Some(conn.id) != except {
                    conn.push(out.clone());
                }
            }
        }
    }

    /// How many connections `user` has here.
    pub fn count(&self, user: UserId) -> usize {
        let map = read(&self.conns);
        map.get(&user).map_or(0, Vec::len)
    }

    /// Whether `user` has a connection here.
    pub fn has_user(&self, user: UserId) -> bool {
        read(&self.conns).contains_key(&user)
    }

    /// The users with a connection here.
    pub fn users(&self) -> Vec<UserId> {
        let map = read(&self.conns);
        map.keys().copied().collect()
    }

    /// Asks every connection to catch up from storage.
    pub fn resync_all(&self) {
        for conn in self.all() {
            conn.push(Outgoing::Resync);
        }
    }

    /// Every connection (for the heartbeat sweep and shutdown).
    pub fn all(&self) -> Vec<Arc<Conn>> {
        let map = read(&self.conns);
        map.values().flatten().cloned().collect()
    }

    /// Closes every connection opened with this token (log-out, account deletion).
    pub fn close_session(&self, token_hash: &str, reason: CloseReason) {
        for conn in self
            .all()
            .into_iter()
            .filter(|n| n.token_hash == token_hash)
        {
            conn.close(reason);
        }
    }

    /// Closes every connection of a user but those opened with `keep` (a password change keeps the
    /// session that made it).
    pub fn close_user_except(&self, user: UserId, keep: &str, reason: CloseReason) {
        let map = read(&self.conns);
        for conn in map.get(&user).into_iter().flatten() {
            if conn.token_hash != keep {
                conn.close(reason);
            }
        }
    }

    /// Closes every connection of a user.
    pub fn close_user(&self, user: UserId, reason: CloseReason) {
        let map = read(&self.conns);
        for conn in map.get(&user).into_iter().flatten() {
            conn.close(reason);
        }
    }

    /// Closes connections whose session ended by `now` (epoch ms), as a backstop to each
    /// connection's own expiry timer. Returns how many.
    pub fn sweep_expired(&self, now: i64) -> usize {
        let expired: Vec<Arc<Conn>> = self
            .all()
            .into_iter()
            .filter(|n| n.expires_at <= now && !n.is_closing())
            .collect();
        for conn in &expired {
            conn.close(CloseReason::REVOKED);
        }
        expired.len()
    }

    /// Closes connections silent since before `deadline` (epoch ms). Returns how many.
    pub fn sweep(&self, deadline: i64) -> usize {
        let stale: Vec<Arc<Conn>> = self
            .all()
            .into_iter()
            .filter(|n| n.last_seen() < deadline && !n.is_closing())
            .collect();
        for conn in &stale {
            tracing::info!(
                conn = conn.id.0,
                user = conn.user.0,
                "heartbeat timeout: closing"
            );
            conn.close(CloseReason::IDLE);
        }
        stale.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(
        hub: &Hub,
        user: i64,
        token: &str,
        queue: usize,
    ) -> (Arc<Conn>, mpsc::Receiver<Outgoing>) {
        Conn::new(hub.next_id(), UserId(user), token.into(), i64::MAX, queue)
    }

    fn frames(rx: &mut mpsc::Receiver<Outgoing>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(o) = rx.try_recv() {
            if let Outgoing::Frame(text) = o {
                out.push(text.to_string());
            }
        }
        out
    }

    #[test]
    fn first_and_last_connection_of_a_user() {
        let hub = Hub::default();
        let (a1, _q1) = conn(&hub, 1, "t", 4);
        let (a2, _q2) = conn(&hub, 1, "t", 4);
        assert_ne!(a1.id, a2.id);
        assert!(hub.register(a1.clone()), "first here");
        assert!(!hub.register(a2.clone()));
        assert_eq!(hub.count(UserId(1)), 2);
        assert!(!hub.unregister(&a1), "another one is still here");
        assert!(!hub.unregister(&a1), "removing twice removes nothing else");
        assert!(hub.has_user(UserId(1)));
        assert!(hub.unregister(&a2), "last one gone");
        assert!(!hub.has_user(UserId(1)) && hub.users().is_empty());
    }

    #[test]
    fn a_fan_out_reaches_every_connection_but_the_excepted_one() {
        let hub = Hub::default();
        let (a1, mut q1) = conn(&hub, 1, "t", 4);
        let (a2, mut q2) = conn(&hub, 1, "t", 4);
        let (b, mut qb) = conn(&hub, 2, "u", 4);
        let (c, mut qc) = conn(&hub, 3, "v", 4);
        for x in [&a1, &a2, &b, &c] {
            hub.register(x.clone());
        }
        let out: Outgoing = ServerFrame::Heartbeat.into();
        hub.send_to_users([UserId(1), UserId(2), UserId(42)], &out, Some(a1.id));
        assert!(frames(&mut q1).is_empty(), "the excepted connection");
        assert_eq!(frames(&mut q2), [r#"{"type":"heartbeat"}"#]);
        assert_eq!(frames(&mut qb).len(), 1);
        assert!(frames(&mut qc).is_empty(), "not among the users");
    }

    #[test]
    fn a_full_queue_closes_the_slow_connection_and_nobody_waits() {
        let hub = Hub::default();
        let (slow, _queue) = conn(&hub, 1, "t", 2);
        assert!(slow.push(Outgoing::BareHeartbeat));
        assert!(slow.push(Outgoing::BareHeartbeat));
        assert!(!slow.push(Outgoing::BareHeartbeat), "full: refused at once");
        assert_eq!(slow.close_reason(), Some(CloseReason::SLOW));
        assert!(slow.is_closing() && slow.is_abandoned());
        assert!(
            !slow.push(Outgoing::BareHeartbeat),
            "closing: takes nothing more"
        );
    }

    #[test]
    fn the_first_close_reason_wins() {
        let hub = Hub::default();
        let (c, _q) = conn(&hub, 1, "t", 2);
        c.close(CloseReason::REVOKED);
        c.close(CloseReason::SHUTDOWN);
        assert_eq!(c.close_reason(), Some(CloseReason::REVOKED));
        assert!(
            !c.is_abandoned(),
            "a revoked client still gets what was queued"
        );
    }

    #[test]
    fn sessions_close_exactly_their_connections() {
        let hub = Hub::default();
        let (keep, _q1) = conn(&hub, 1, "keep", 2);
        let (other, _q2) = conn(&hub, 1, "other", 2);
        let (stranger, _q3) = conn(&hub, 2, "other", 2);
        for x in [&keep, &other, &stranger] {
            hub.register(x.clone());
        }
        hub.close_user_except(UserId(1), "keep", CloseReason::REVOKED);
        assert!(!keep.is_closing());
        assert!(other.is_closing() && !stranger.is_closing());
        hub.close_session("keep", CloseReason::REVOKED);
        assert!(keep.is_closing() && !stranger.is_closing());
        hub.close_user(UserId(2), CloseReason::REVOKED);
        assert!(stranger.is_closing());
    }

    #[test]
    fn the_sweeps_close_the_silent_and_the_expired() {
        let hub = Hub::default();
        let (silent, _q1) = conn(&hub, 1, "t", 2);
        let (also_silent, _q2) = conn(&hub, 2, "u", 2);
        hub.register(silent.clone());
        hub.register(also_silent.clone());
        let oldest = silent.last_seen().min(also_silent.last_seen());
        let newest = silent.last_seen().max(also_silent.last_seen());
        assert_eq!(hub.sweep(oldest - 1), 0, "heard from since");
        // Past both: they were made a few milliseconds apart on a slow machine.
        assert_eq!(hub.sweep(newest + 1), 2);
        assert_eq!(silent.close_reason(), Some(CloseReason::IDLE));
        assert!(silent.is_abandoned(), "a silent client is not waited for");
        assert_eq!(hub.sweep(i64::MAX), 0, "closing ones are not counted twice");

        let (expired, _q3) = Conn::new(hub.next_id(), UserId(3), "w".into(), 1_000, 2);
        hub.register(expired.clone());
        assert_eq!(hub.sweep_expired(999), 0);
        assert_eq!(hub.sweep_expired(1_000), 1);
        assert_eq!(expired.close_reason(), Some(CloseReason::REVOKED));
    }

    #[test]
    fn a_send_waits_for_its_ack_until_settled() {
        let hub = Hub::default();
        let (c, _q) = conn(&hub, 1, "t", 2);
        assert!(!c.awaits_ack("c-1"));
        c.expect_ack("c-1");
        assert!(c.awaits_ack("c-1") && !c.awaits_ack("c-2"));
        c.settle("c-1");
        assert!(!c.awaits_ack("c-1"));
    }

    #[test]
    fn resync_reaches_every_connection() {
        let hub = Hub::default();
        let (a, mut qa) = conn(&hub, 1, "t", 2);
        let (b, mut qb) = conn(&hub, 2, "u", 2);
        hub.register(a);
        hub.register(b);
        hub.resync_all();
        assert!(matches!(qa.try_recv(), Ok(Outgoing::Resync)));
        assert!(matches!(qb.try_recv(), Ok(Outgoing::Resync)));
    }
}
