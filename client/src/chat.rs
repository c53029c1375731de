//! A chat session that survives its connection: reconnects with backoff, catches up with
//! `sync` from the last seq it holds per conversation, re-sends unacknowledged messages with
//! their original id (the server stores a repeated id once), and hands each stored message
//! (conversation, seq) to the application exactly once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

use crate::error::ClientError;
use crate::rest::Api;
use crate::socket::Socket;
use crate::types::*;

/// How the session behaves; the defaults match the web page's.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// First wait before reconnecting; doubles (with jitter) up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest wait between reconnect attempts.
    pub backoff_max: Duration,
    /// How often the client sends a heartbeat (the server closes silent connections).
    pub heartbeat: Duration,
    /// A connection that yields nothing (not even a heartbeat answer) this long is dead.
    pub dead_after: Duration,
}

impl Default for ChatOptions {
    fn default() -> Self {
        Self {
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(15),
            heartbeat: Duration::from_secs(20),
            dead_after: Duration::from_secs(50),
        }
    }
}

/// What the session tells the application.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// The websocket is open and `sync` was sent; pending sends were sent again.
    Connected,
    /// The websocket is down; the next attempt is in `retry_in`.
    Disconnected {
        reason: String,
        retry_in: Duration,
    },
    /// A stored message (someone's, or one's own from another device or a replay), each
    /// (conversation, seq) once.
    Message(ChatMessage),
    /// One's own send is stored; `message` is it as stored (`from` is only known, and set, in
    /// private conversations: a session does not know its own user id).
    Acked {
        id: String,
        message: ChatMessage,
    },
    /// The server refused a frame (`id` is the send's when it was a send); nothing changed.
    Rejected {
        id: Option<String>,
        code: String,
        message: String,
    },
    Presence {
        user: UserId,
        online: bool,
    },
    Read {
        conversation: ConversationId,
        user: UserId,
        seq: Seq,
    },
    Typing {
        from: UserId,
        conversation: ConversationId,
    },
    Contact {
        user: UserId,
        added: bool,
    },
    Member {
        community: CommunityId,
        user: UserId,
        joined: bool,
    },
    /// The session is no longer valid (logged out, account gone): the task has stopped.
    SessionEnded(String),
}

enum Command {
    Send(ClientFrame),
    Read(ConversationId, Seq),
    Typing(ClientFrame),
    ReconnectNow,
    Close,
}

/// The handle of a running session. Dropping it stops the session.
pub struct Chat {
    cmd: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<ChatEvent>,
}

/// A fresh client id for a send.
pub fn new_send_id() -> String {
    format!("c-{}", uuid::Uuid::new_v4().simple())
}

impl Chat {
    /// Starts a session for the logged-in `api`. `cursors` are the last seq already held per
    /// conversation (from a previous run); messages at or below them are not handed out again.
    pub fn start(api: Api, cursors: HashMap<ConversationId, Seq>, options: ChatOptions) -> Chat {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let task = Task {
            api,
            options,
            cursors,
            own: HashSet::new(),
            pending: Vec::new(),
            frames: HashMap::new(),
            reads: HashMap::new(),
            events: ev_tx,
            cmds: cmd_rx,
            resend: cmd_tx.downgrade(),
        };
        tokio::spawn(task.run());
        Chat {
            cmd: cmd_tx,
            events: ev_rx,
        }
    }

    /// Sends a private message; returns its client id (the `Acked` event carries it).
    pub fn send_private(&self, to: UserId, media: Media, content: impl Into<String>) -> String {
        let id = new_send_id();
        self.send(ClientFrame::Private {
            id: id.clone(),
            to,
            media,
            content: content.into(),
        });
        id
    }

    /// Sends a message to a community; returns its client id.
    pub fn send_group(&self, to: CommunityId, media: Media, content: impl Into<String>) -> String {
        let id = new_send_id();
        self.send(ClientFrame::Group {
            id: id.clone(),
            to,
            media,
            content: content.into(),
        });
        id
    }

    /// Sends a `private` or `group` frame as given (its id chosen by the caller). It is kept
    /// and sent again after every reconnect until the server acks or refuses it.
    pub fn send(&self, frame: ClientFrame) {
        let _ = self.cmd.send(Command::Send(frame));
    }

    /// Marks `conversation` read up to `seq` (sent now, or on reconnect).
    pub fn read(&self, conversation: ConversationId, seq: Seq) {
        let _ = self.cmd.send(Command::Read(conversation, seq));
    }

    /// Tells a user that I am typing (dropped while disconnected).
    pub fn typing_to(&self, user: UserId) {
        let _ = self.cmd.send(Command::Typing(ClientFrame::Typing {
            to: Some(user),
            community: None,
        }));
    }

    /// Tells a community that I am typing.
    pub fn typing_in(&self, community: CommunityId) {
        let _ = self.cmd.send(Command::Typing(ClientFrame::Typing {
            to: None,
            community: Some(community),
        }));
    }

    /// Skips the backoff wait and tries to connect at once.
    pub fn reconnect_now(&self) {
        let _ = self.cmd.send(Command::ReconnectNow);
    }

    /// The next event; `None` once the session has stopped.
    pub async fn next_event(&mut self) -> Option<ChatEvent> {
        self.events.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_event(&mut self) -> Option<ChatEvent> {
        self.events.try_recv().ok()
    }

    /// The next event within `deadline`.
    pub async fn event_within(&mut self, deadline: Duration) -> Result<ChatEvent, ClientError> {
        match tokio::time::timeout(deadline, self.events.recv()).await {
            Ok(Some(e)) => Ok(e),
            Ok(None) => Err(ClientError::Closed(None)),
            Err(_) => Err(ClientError::Timeout(deadline)),
        }
    }

    /// Stops the session and closes the websocket.
    pub fn close(&self) {
        let _ = self.cmd.send(Command::Close);
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.cmd.send(Command::Close);
    }
}

struct Task {
    api: Api,
    options: ChatOptions,
    /// The highest seq handed out per conversation, from `message`/`system` frames.
    cursors: HashMap<ConversationId, Seq>,
    /// One's own acked messages (they come back as `message` frames on a replay).
    own: HashSet<(ConversationId, Seq)>,
    /// Sends not yet acked, in order.
    pending: Vec<String>,
    frames: HashMap<String, ClientFrame>,
    /// The latest read mark per conversation not yet sent.
    reads: HashMap<ConversationId, Seq>,
    events: mpsc::UnboundedSender<ChatEvent>,
    cmds: mpsc::UnboundedReceiver<Command>,
    /// For re-sends scheduled by the task itself (weak: the handle owns the queue).
    resend: mpsc::WeakUnboundedSender<Command>,
}

enum Outcome {
    Closed,
    Lost(String),
    SessionEnded(String),
}

impl Task {
    async fn run(mut self) {
        let mut backoff = self.options.backoff_min;
        loop {
            match Socket::connect(&self.api).await {
                Ok(socket) => {
                    backoff = self.options.backoff_min;
                    match self.connected(socket).await {
                        Outcome::Closed => return,
                        Outcome::SessionEnded(why) => {
                            let _ = self.events.send(ChatEvent::SessionEnded(why));
                            return;
                        }
                        Outcome::Lost(why) => {
                            tracing::info!(%why, "chat connection lost");
                            // Reconnect at once the first time: a restarted server is often back.
                            if !self.wait(Duration::from_millis(100), why).await {
                                return;
                            }
                        }
                    }
                }
                Err(e) if e.is_auth() => {
                    let _ = self.events.send(ChatEvent::SessionEnded(e.to_string()));
                    return;
                }
                Err(e) => {
                    let jitter = rand::thread_rng().gen_range(0.8..1.2);
                    let wait = backoff.mul_f64(jitter);
                    backoff = (backoff * 2).min(self.options.backoff_max);
                    if !self.wait(wait, e.to_string()).await {
                        return;
                    }
                }
            }
        }
    }

    /// Waits before the next attempt, taking commands meanwhile. False: stop.
    async fn wait(&mut self, wait: Duration, reason: String) -> bool {
        let _ = self.events.send(ChatEvent::Disconnected {
            reason,
            retry_in: wait,
        });
        let until = Instant::now() + wait;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                cmd = self.cmds.recv() => match cmd {
                    None | Some(Command::Close) => return false,
                    Some(Command::ReconnectNow) => return true,
                    Some(Command::Send(f)) => self.queue(f),
                    Some(Command::Read(c, s)) => self.queue_read(c, s),
                    Some(Command::Typing(_)) => {}
                },
            }
        }
    }

    fn queue(&mut self, frame: ClientFrame) {
        if let Some(id) = frame.send_id() {
            let id = id.to_owned();
            if self.frames.insert(id.clone(), frame).is_none() {
                self.pending.push(id);
            }
        }
    }

    fn queue_read(&mut self, c: ConversationId, s: Seq) {
        let e = self.reads.entry(c).or_insert(s);
        *e = (*e).max(s);
    }

    async fn connected(&mut self, mut socket: Socket) -> Outcome {
        // Catch up, then re-send what is not acked yet, then the read marks.
        let mut first: Vec<ClientFrame> = Vec::new();
        if !self.cursors.is_empty() {
            first.push(ClientFrame::Sync {
                after: self.cursors.clone(),
            });
        }
        first.extend(
            self.pending
                .iter()
                .filter_map(|id| self.frames.get(id).cloned()),
        );
        first.extend(
            self.reads
                .drain()
                .map(|(conversation, seq)| ClientFrame::Read { conversation, seq }),
        );
        for (i, f) in first.iter().enumerate() {
            if let Err(e) = socket.send(f).await {
                // Read marks not sent yet go again on the next connection.
                for f in &first[i..] {
                    if let ClientFrame::Read { conversation, seq } = f {
                        self.queue_read(*conversation, *seq);
                    }
                }
                return Outcome::Lost(e.to_string());
            }
        }
        let _ = self.events.send(ChatEvent::Connected);

        let mut heartbeat = tokio::time::interval(self.options.heartbeat);
        heartbeat.tick().await;
        let mut last_heard = Instant::now();
        loop {
            let dead_at = last_heard + self.options.dead_after;
            tokio::select! {
                frame = socket.recv() => match frame {
                    Ok(f) => {
                        last_heard = Instant::now();
                        self.on_frame(f);
                    }
                    Err(ClientError::Closed(Some(4401))) => {
                        return Outcome::SessionEnded("the server ended the session (close 4401)".into());
                    }
                    Err(ClientError::Decode(e)) => tracing::warn!(%e, "unreadable frame"),
                    Err(e) => return Outcome::Lost(e.to_string()),
                },
                cmd = self.cmds.recv() => {
                    let frame = match cmd {
                        None | Some(Command::Close) => {
                            let _ = socket.close().await;
                            return Outcome::Closed;
                        }
                        Some(Command::ReconnectNow) => continue,
                        Some(Command::Send(f)) => {
                            self.queue(f.clone());
                            f
                        }
                        Some(Command::Read(conversation, seq)) => ClientFrame::Read { conversation, seq },
                        Some(Command::Typing(f)) => f,
                    };
                    if let Err(e) = socket.send(&frame).await {
                        if let ClientFrame::Read { conversation, seq } = frame {
                            self.queue_read(conversation, seq);
                        }
                        return Outcome::Lost(e.to_string());
                    }
                }
                _ = heartbeat.tick() => {
                    if let Err(e) = socket.send(&ClientFrame::Heartbeat).await {
                        return Outcome::Lost(e.to_string());
                    }
                }
                _ = tokio::time::sleep_until(dead_at) => {
                    return Outcome::Lost("the server went silent".into());
                }
            }
        }
    }

    /// Hands a stored message out unless it was handed out before.
    fn deliver(&mut self, m: ChatMessage) {
        let key = (m.conversation, m.seq);
        let cursor = self.cursors.entry(m.conversation).or_insert(0);
        if m.seq <= *cursor {
            return;
        }
        *cursor = m.seq;
        if self.own.remove(&key) {
            return;
        }
        let _ = self.events.send(ChatEvent::Message(m));
    }

    fn on_frame(&mut self, frame: ServerFrame) {
        let event = match frame {
            ServerFrame::Message(m) | ServerFrame::System(m) => return self.deliver(m),
            ServerFrame::Ack {
                id,
                msg_id,
                conversation,
                seq,
                ts,
            } => {
                let Some(id) = id else { return };
                let Some(sent) = self.frames.remove(&id) else {
                    return; // an ack repeated after a re-send
                };
                self.pending.retain(|p| p != &id);
                let already = self.cursors.get(&conversation).is_some_and(|c| seq <= *c);
                if already {
                    return; // it came back as a `message` before its ack
                }
                self.own.insert((conversation, seq));
                let (to, kind, media, content) = match sent {
                    ClientFrame::Private {
                        to, media, content, ..
                    } => (to, MessageKind::Private, media, content),
                    ClientFrame::Group {
                        to, media, content, ..
                    } => (to, MessageKind::Group, media, content),
                    _ => return,
                };
                let me = match conversation {
                    ConversationId::Private(a, b) => Some(if a == to { b } else { a }),
                    _ => None,
                };
                ChatEvent::Acked {
                    id,
                    message: ChatMessage {
                        msg_id,
                        conversation,
                        seq,
                        from: me,
                        to: Some(to),
                        kind: Some(kind),
                        media,
                        content,
                        ts,
                    },
                }
            }
            ServerFrame::Error { id, code, message } => {
                if let Some(id) = &id {
                    if code == "unavailable" {
                        // Not stored: it stays pending and goes again after a short wait.
                        self.retry_later(id.clone());
                    } else if self.frames.remove(id).is_some() {
                        self.pending.retain(|p| p != id);
                    }
                }
                ChatEvent::Rejected { id, code, message }
            }
            ServerFrame::Presence { user, online } => ChatEvent::Presence { user, online },
            ServerFrame::Read {
                conversation,
                user,
                seq,
            } => ChatEvent::Read {
                conversation,
                user,
                seq,
            },
            ServerFrame::Typing { from, conversation } => ChatEvent::Typing { from, conversation },
            ServerFrame::Contact { user, added } => ChatEvent::Contact { user, added },
            ServerFrame::Member {
                community,
                user,
                joined,
            } => ChatEvent::Member {
                community,
                user,
                joined,
            },
            ServerFrame::Heartbeat | ServerFrame::Unknown => return,
        };
        let _ = self.events.send(event);
    }

    fn retry_later(&self, id: String) {
        let Some(frame) = self.frames.get(&id).cloned() else {
            return;
        };
        // Through the command queue, so it goes out on whichever connection is current.
        let cmds = self.resend.clone();
        tokio::spawn(async move {
            sleep(Duration::from_secs(1)).await;
            if let Some(tx) = cmds.upgrade() {
                let _ = tx.send(Command::Send(frame));
            }
        });
    }
}
