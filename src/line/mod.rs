//! The plain TCP line endpoint (`line.addr`, off while empty): one UTF-8 command per line for
//! scripts, bots and people with `nc`. It is a second transport beside [`crate::ws`], not a
//! second server: a logged-in socket is a [`Conn`] in the hub like a websocket, its commands
//! become the same [`ClientFrame`]s for [`crate::dispatch`], and it receives the same queue items
//! through the same [`crate::send_proc`], rendered as lines ([`render`]) instead of JSON. So it gets
//! the same ordering, offline catch-up, cluster delivery and limits (frame rate, queue length,
//! heartbeat timeout, sockets per user), and log-in is [`crate::session::log_in`], with the
//! throttle, the hashing gate and a session that revocation ends. The protocol is in
//! `docs/line-protocol.md`.

mod command;
mod render;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use self::command::{Command, CommandError, Place, Who};
use self::render::{escape, name_token, render, users_in};
use crate::app::App;
use crate::connection::{self, RateLimit};
use crate::dispatch::{apply, FrameError};
use crate::fanout::{participates, Notice, Scope};
use crate::frame::ClientFrame;
use crate::hub::{CloseReason, Conn, Outgoing};
use crate::ids::{ConversationId, Seq, UserId};
use crate::media::Media;
use crate::send_proc::{self, Transport};
use crate::session::{log_in, Caller, LoginError};
use crate::store::{Store, StoreError};

/// The first line a client reads.
const GREETING: &str = "HELLO chorus 1 (LOGIN name password; HELP lists the commands)";

/// How long a write to a client that is not logged in may take (its answers are short).
const DIRECT_WRITE_LIMIT: Duration = Duration::from_secs(10);

/// What `HELP` answers, one `HELP` line each, then `OK HELP`.
const HELP: &[&str] = &[
    "LOGIN name password      log in (the password is the rest of the line)",
    "WHO                      your contacts who are online",
    "MSG name text            send text to a user (name, \"quoted name\" or #id); ACK lN conv seq",
    "GROUP id text            send text to a community you are in",
    "JOIN id                  join a community",
    "HISTORY conv|name [n]    the last n (1-100, default 20) messages of a conversation",
    "READ conv|name seq       mark a conversation read up to seq",
    "PING                     PONG (any line keeps the connection alive)",
    "QUIT                     BYE, and the server closes the connection",
];

/// Accepts line connections until the node stops, at most `line.max_connections` at once (past
/// that, accepting waits and the kernel queues newcomers, as on the HTTP listener).
pub async fn serve(app: Arc<App>, listener: TcpListener) {
    let cap = crate::listen::connection_cap(app.settings.line.max_connections);
    let slots = Arc::new(Semaphore::new(cap));
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit,
            _ = app.stopping.cancelled() => return,
        };
        let Ok(permit) = permit else { return };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = app.stopping.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Shutdown waits for every connection holding one of these.
                let alive = app.connections.token();
                let app = app.clone();
                tokio::spawn(async move {
                    run(&app, stream, peer, permit).await;
                    drop(alive);
                });
            }
            Err(err) => {
                // Out of descriptors or a reset before accept: wait rather than spin.
                tracing::warn!(%err, "line accept failed");
                drop(permit);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One line read from the client.
enum Input {
    Line(String),
    NotUtf8,
    TooLong,
    Closed,
}

/// Reads lines of at most `max` bytes (the line ending not counted; `\n` or `\r\n`).
struct Lines {
    reader: BufReader<OwnedReadHalf>,
    max: usize,
    buf: Vec<u8>,
}

impl Lines {
    async fn next(&mut self) -> std::io::Result<Input> {
        self.buf.clear();
        // Room for the longest line and its `\r\n`; one byte more proves a line too long.
        let limit = self.max as u64 + 3;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
            .await?;
        if n == 0 {
            return Ok(Input::Closed);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        }
        if self.buf.len() > self.max {
            return Ok(Input::TooLong);
        }
        match String::from_utf8(std::mem::take(&mut self.buf)) {
            Ok(line) => Ok(Input::Line(line)),
            Err(_) => Ok(Input::NotUtf8),
        }
    }
}

/// User names by id, for rendering; shared by a connection's reader and writer. Bounded: it is
/// dropped whole when it grows past a few thousand names.
struct Names {
    store: Store,
    cache: Mutex<HashMap<UserId, String>>,
}

impl Names {
    const MAX: usize = 4096;

    /// Name tokens of `ids` (`#id` for a user that is gone).
    async fn tokens(&self, ids: &[UserId]) -> HashMap<UserId, String> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = crate::lock::lock(&self.cache);
            for id in ids {
                match cache.get(id) {
                    Some(name) => {
                        found.insert(*id, name.clone());
                    }
                    None => missing.push(*id),
                }
            }
        }
        if !missing.is_empty() {
            if let Ok(users) = self.store.users(&missing).await {
                let mut cache = crate::lock::lock(&self.cache);
                if cache.len() > Self::MAX {
                    cache.clear();
                }
                for user in users {
                    let token = name_token(&user.name);
                    cache.insert(UserId(user.id), token.clone());
                    found.insert(UserId(user.id), token);
                }
            }
        }
        for id in ids {
            found.entry(*id).or_insert_with(|| format!("#{}", id.0));
        }
        found
    }

    /// A user renamed themselves: show the new name from now on.
    fn renamed(&self, user: UserId, name: &str) {
        crate::lock::lock(&self.cache).insert(user, name_token(name));
    }
}

/// Renders with the names looked up for one frame and this connection's send references.
struct Rendering<'a> {
    names: &'a HashMap<UserId, String>,
    tag: &'a str,
}

impl render::Context for Rendering<'_> {
    fn name(&self, user: UserId) -> String {
        self.names
            .get(&user)
            .cloned()
            .unwrap_or_else(|| format!("#{}", user.0))
    }

    fn reference(&self, id: &str) -> String {
        reference(self.tag, id)
    }
}

/// The client id a line send is stored under: unique for ever (sends are idempotent per sender
/// and client id), while the client sees only `l{n}`.
fn client_id(tag: &str, n: u64) -> String {
    format!("line:{tag}:{n}")
}

/// `l{n}` for this connection's client id `line:{tag}:{n}`.
fn reference(tag: &str, id: &str) -> String {
    id.strip_prefix("line:")
        .and_then(|rest| rest.strip_prefix(tag))
        .and_then(|rest| rest.strip_prefix(':'))
        .map_or_else(|| escape(id), |n| format!("l{n}"))
}

/// The writing half of a line connection, as `send_proc`'s [`Transport`].
struct LineSink {
    out: BufWriter<OwnedWriteHalf>,
    names: Arc<Names>,
    tag: String,
}

impl Transport for LineSink {
    type Error = std::io::Error;

    async fn frame(&mut self, json: &str) -> std::io::Result<()> {
        let Ok(frame) = serde_json::from_str::<Value>(json) else {
            tracing::warn!("line: a server frame that is not JSON");
            return Ok(());
        };
        if frame.get("type").and_then(Value::as_str) == Some("profile") {
            if let (Some(user), Some(name)) = (
                frame.get("user").and_then(Value::as_i64),
                frame.get("name").and_then(Value::as_str),
            ) {
                self.names.renamed(UserId(user), name);
            }
        }
        let names = self.names.tokens(&users_in(&frame)).await;
        let rendering = Rendering {
            names: &names,
            tag: &self.tag,
        };
        match render(&frame, &rendering) {
            Some(line) => self.raw(&line).await,
            None => Ok(()),
        }
    }

    async fn raw(&mut self, text: &str) -> std::io::Result<()> {
        self.out.write_all(text.as_bytes()).await?;
        self.out.write_all(b"\n").await
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush().await
    }

    async fn close(&mut self, reason: CloseReason) {
        let _ = self.raw(&bye(reason)).await;
        let _ = self.out.flush().await;
        let _ = self.out.shutdown().await;
    }
}

/// The last line before the server closes: the websocket close code and reason.
fn bye(reason: CloseReason) -> String {
    format!("BYE {} {}", reason.code, reason.reason)
}

/// An error line: `ERR code reference message`.
fn err(code: &str, reference: &str, message: impl std::fmt::Display) -> String {
    format!("ERR {code} {reference} {}", escape(&message.to_string()))
}

/// Per-socket state that outlives log-in.
struct Socket {
    /// Random, so this socket's client ids never repeat another's.
    tag: String,
    /// `MSG` and `GROUP` lines so far: the next is `l{sends + 1}`.
    sends: u64,
    limit: RateLimit,
}

impl Socket {
    /// The reference a line's answers carry: `l{n}` for a send (numbered even when refused),
    /// else the command word, or `-` when there is none.
    fn reference(&mut self, line: &str, parsed: &Result<Command, CommandError>) -> String {
        let (word, _) = command::keyword(line);
        if Command::is_send(word) {
            self.sends += 1;
            return format!("l{}", self.sends);
        }
        match parsed {
            Err(CommandError::Unknown) => "-".to_owned(),
            _ => word.to_ascii_uppercase(),
        }
    }
}

/// Writes lines to a client that has no [`Conn`] yet (before log-in), within a bound.
async fn direct(out: &mut BufWriter<OwnedWriteHalf>, lines: &[String]) -> bool {
    let write = async {
        for line in lines {
            out.write_all(line.as_bytes()).await?;
            out.write_all(b"\n").await?;
        }
        out.flush().await
    };
    matches!(
        tokio::time::timeout(DIRECT_WRITE_LIMIT, write).await,
        Ok(Ok(()))
    )
}

async fn goodbye(out: &mut BufWriter<OwnedWriteHalf>, reason: CloseReason) {
    direct(out, &[bye(reason)]).await;
    let _ = tokio::time::timeout(DIRECT_WRITE_LIMIT, out.shutdown()).await;
}

fn help() -> String {
    let mut text: Vec<String> = HELP.iter().map(|h| format!("HELP {h}")).collect();
    text.push("OK HELP".into());
    text.join("\n")
}

/// One socket's life: greet, wait for a good `LOGIN`, then serve it as a connection.
async fn run(app: &Arc<App>, stream: TcpStream, peer: SocketAddr, _slot: OwnedSemaphorePermit) {
    app.metrics.line_connections.inc();
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut lines = Lines {
        reader: BufReader::new(read),
        max: app.settings.line.max_line_bytes.max(1),
        buf: Vec::new(),
    };
    let mut out = BufWriter::new(write);
    let chat = &app.settings.chat;
    let mut socket = Socket {
        tag: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        sends: 0,
        limit: RateLimit::new(chat.rate_per_sec, chat.rate_burst),
    };
    if direct(&mut out, &[GREETING.to_owned()]).await {
        if let Some(caller) = logged_out(app, &mut lines, &mut out, &mut socket, peer).await {
            logged_in(app, caller, lines, out, socket).await;
        }
    }
    app.metrics.line_connections.dec();
}

/// Before log-in: only `HELP`, `PING`, `QUIT` and `LOGIN`. Returns the session once a log-in
/// succeeds (its `OK LOGIN` written), `None` when the socket is done.
async fn logged_out(
    app: &Arc<App>,
    lines: &mut Lines,
    out: &mut BufWriter<OwnedWriteHalf>,
    socket: &mut Socket,
    peer: SocketAddr,
) -> Option<(Caller, String)> {
    let silence = app.settings.chat.heartbeat_timeout();
    loop {
        let input = tokio::select! {
            input = tokio::time::timeout(silence, lines.next()) => input,
            _ = app.stopping.cancelled() => {
                goodbye(out, CloseReason::SHUTDOWN).await;
                return None;
            }
        };
        let line = match input {
            Err(_) => {
                goodbye(out, CloseReason::IDLE).await;
                return None;
            }
            Ok(Err(_)) | Ok(Ok(Input::Closed)) => return None,
            Ok(Ok(Input::TooLong)) => {
                let limit = app.settings.line.max_line_bytes;
                direct(out, &[err("too_large", "-", too_long(limit))]).await;
                goodbye(out, CloseReason::TOO_BIG).await;
                return None;
            }
            Ok(Ok(Input::NotUtf8)) => {
                if !direct(out, &[err("invalid_command", "-", "not UTF-8")]).await {
                    return None;
                }
                continue;
            }
            Ok(Ok(Input::Line(line))) => line,
        };
        if line.trim().is_empty() {
            continue;
        }
        let parsed = command::parse(&line);
        let reference = socket.reference(&line, &parsed);
        if !socket.limit.allow() {
            direct(
                out,
                &[err("rate_limited", &reference, FrameError::RateLimited)],
            )
            .await;
            continue;
        }
        let reply = match parsed {
            Err(e) => err(e.code(), &reference, &e),
            Ok(Command::Help) => help(),
            Ok(Command::Ping) => "PONG".to_owned(),
            Ok(Command::Quit) => {
                goodbye(out, CloseReason::NORMAL).await;
                return None;
            }
            Ok(Command::Login { name, password }) => {
                let ttl = app.settings.auth.token_ttl();
                match log_in(app, &name, password, Some(peer.ip()), ttl).await {
                    Ok(done) => {
                        let ok =
                            format!("OK LOGIN {} {}", name_token(&done.user.name), done.user.id);
                        return Some((done.caller, ok));
                    }
                    Err(e) => err(e.code(), &reference, login_message(&e)),
                }
            }
            Ok(_) => err(
                "unauthorized",
                &reference,
                "log in first: LOGIN name password",
            ),
        };
        if !direct(out, &[reply]).await {
            return None;
        }
    }
}

fn too_long(limit: usize) -> String {
    format!("line is over the {limit}-byte limit; closing")
}

fn login_message(e: &LoginError) -> String {
    match e {
        LoginError::Store(err) => {
            tracing::error!(%err, "line log-in: storage");
            "internal error".to_owned()
        }
        other => other.to_string(),
    }
}

/// After log-in: a connection in the hub with `send_proc` writing to the socket, until `QUIT`,
/// the client leaving, or the connection being closed (slow, silent, revoked, shutdown).
async fn logged_in(
    app: &Arc<App>,
    (caller, ok): (Caller, String),
    mut lines: Lines,
    mut out: BufWriter<OwnedWriteHalf>,
    mut socket: Socket,
) {
    let token_hash = caller.token_hash.clone();
    // Boxed, like every storage step below: this task lives as long as the connection, and
    // inline those large futures would size it for the rarest of them (as in `ws`).
    let (conn, queue) = match Box::pin(connection::open(app, &caller)).await {
        Ok(opened) => opened,
        Err(too_many) => {
            forget_session(app, &token_hash).await;
            direct(&mut out, &[err("too_many_connections", "LOGIN", too_many)]).await;
            goodbye(&mut out, CloseReason::TOO_MANY).await;
            return;
        }
    };
    tracing::debug!(conn = conn.id.0, user = conn.user.0, "line connected");
    // The log-in's answer goes before anything `send_proc` sends (the catch-up first).
    if direct(&mut out, &[ok]).await {
        let names = Arc::new(Names {
            store: app.store.clone(),
            cache: Mutex::default(),
        });
        let sink = LineSink {
            out,
            names: names.clone(),
            tag: socket.tag.clone(),
        };
        let sending = tokio::spawn(send_proc::run(app.clone(), conn.clone(), queue, sink));
        read_commands(app, &conn, &mut lines, &mut socket, &names).await;
        if app.stopping.is_cancelled() {
            // Shutdown closes every connection once the writer has stored and acked what it
            // took, so those acks still reach this socket.
            conn.closing().await;
        } else {
            conn.close(CloseReason::NORMAL);
        }
        if let Err(err) = sending.await {
            tracing::warn!(%err, "line send_proc panicked");
        }
    } else {
        conn.close(CloseReason::NORMAL);
    }
    Box::pin(connection::close(app, &conn)).await;
    // The session was this socket's alone (no one else holds its token).
    forget_session(app, &token_hash).await;
    tracing::debug!(conn = conn.id.0, reason = ?conn.close_reason(), "line disconnected");
}

async fn forget_session(app: &App, token_hash: &str) {
    if let Err(err) = app.store.delete_session(token_hash).await {
        tracing::warn!(%err, "line: cannot delete the session");
    }
}

/// Reads and runs commands until the socket or the connection ends.
async fn read_commands(
    app: &Arc<App>,
    conn: &Arc<Conn>,
    lines: &mut Lines,
    socket: &mut Socket,
    names: &Names,
) {
    // Presence entries in Redis live a heartbeat timeout; refresh well before that.
    let refresh_every = Duration::from_secs(app.settings.chat.heartbeat_timeout_secs.max(3) / 3);
    let mut refreshed = Instant::now();
    // Once the node is stopping, lines are read and dropped (never acked, so clients send them
    // again elsewhere) until shutdown closes the connection.
    let mut draining = false;
    loop {
        let input = tokio::select! {
            input = lines.next() => input,
            _ = conn.closing() => return,
            _ = app.stopping.cancelled(), if !draining => {
                draining = true;
                continue;
            }
        };
        let line = match input {
            Err(_) | Ok(Input::Closed) => return,
            Ok(Input::TooLong) => {
                let limit = app.settings.line.max_line_bytes;
                conn.push(raw(err("too_large", "-", too_long(limit))));
                conn.close(CloseReason::TOO_BIG);
                return;
            }
            Ok(Input::NotUtf8) => {
                conn.push(raw(err("invalid_command", "-", "not UTF-8")));
                continue;
            }
            Ok(Input::Line(line)) => line,
        };
        conn.touch();
        if draining {
            continue;
        }
        if refreshed.elapsed() >= refresh_every {
            refreshed = Instant::now();
            Box::pin(app.presence.up(conn.user, conn.id)).await;
        }
        if line.trim().is_empty() {
            continue;
        }
        let parsed = command::parse(&line);
        let reference = socket.reference(&line, &parsed);
        if !socket.limit.allow() {
            conn.push(raw(err(
                "rate_limited",
                &reference,
                FrameError::RateLimited,
            )));
            continue;
        }
        let command = match parsed {
            Ok(command) => command,
            Err(e) => {
                conn.push(raw(err(e.code(), &reference, &e)));
                continue;
            }
        };
        if let Command::Quit = command {
            conn.close(CloseReason::NORMAL);
            return;
        }
        let run = Run {
            app,
            conn,
            names,
            socket,
        };
        if let Err(Refusal { code, message }) = Box::pin(run.command(command)).await {
            conn.push(raw(err(code, &reference, message)));
        }
    }
}

fn raw(line: String) -> Outgoing {
    Outgoing::Raw(line.into())
}

/// A command's refusal: its code and message.
struct Refusal {
    code: &'static str,
    message: String,
}

impl From<FrameError> for Refusal {
    fn from(e: FrameError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::NotFound(_) => "not_found",
            StoreError::AlreadyMember(_) => "already_member",
            StoreError::NotAMember(_) => "not_a_member",
            StoreError::AlreadyContact(_) => "already_contact",
            StoreError::NotAContact(_) => "not_a_contact",
            StoreError::NameTaken => "name_taken",
            StoreError::Db(err) => {
                tracing::error!(%err, "line command: storage");
                return Self {
                    code: "internal",
                    message: "internal error".into(),
                };
            }
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

/// One logged-in command being run.
struct Run<'a> {
    app: &'a Arc<App>,
    conn: &'a Arc<Conn>,
    names: &'a Names,
    socket: &'a Socket,
}

impl Run<'_> {
    fn reply(&self, text: String) {
        self.conn.push(raw(text));
    }

    async fn command(&self, command: Command) -> Result<(), Refusal> {
        let user = self.conn.user;
        match command {
            Command::Help => self.reply(help()),
            Command::Ping => self.reply("PONG".into()),
            Command::Quit => {}
            Command::Login { .. } => {
                return Err(Refusal {
                    code: CommandError::Invalid(String::new()).code(),
                    message: "already logged in; QUIT and connect again to change user".into(),
                });
            }
            Command::Who => {
                let contacts = self.app.store.contacts(user).await?;
                let ids: Vec<UserId> = contacts.iter().map(|u| UserId(u.id)).collect();
                let online = self.app.presence.online_among(&ids).await;
                let mut text: Vec<String> = contacts
                    .iter()
                    .filter(|u| online.contains(&UserId(u.id)))
                    .map(|u| format!("WHO {}", name_token(&u.name)))
                    .collect();
                text.push(format!("OK WHO {}", text.len()));
                self.reply(text.join("\n"));
            }
            Command::Msg { to, text } => {
                let to = self.user(&to).await?;
                let frame = ClientFrame::Private {
                    id: Some(self.client_id()),
                    to,
                    media: Media::Text,
                    content: text,
                };
                apply(self.app, self.conn, frame).await?;
            }
            Command::Group { to, text } => {
                let frame = ClientFrame::Group {
                    id: Some(self.client_id()),
                    to,
                    media: Media::Text,
                    content: text,
                };
                apply(self.app, self.conn, frame).await?;
            }
            Command::Join(community) => {
                let joined = self.app.store.join_community(community, user).await?;
                let notice = Notice::Member {
                    community,
                    user,
                    joined: true,
                };
                self.app.fanout.announce(notice, Scope::default()).await;
                self.reply(format!(
                    "OK JOIN {} {}",
                    community.0,
                    name_token(&joined.name)
                ));
            }
            Command::History { place, n } => {
                let conversation = self.conversation(&place).await?;
                if !participates(&self.app.store, user, conversation).await? {
                    return Err(FrameError::NotAParticipant(conversation).into());
                }
                let messages = self
                    .app
                    .store
                    .messages_before(conversation, Seq(i64::MAX), n)
                    .await?;
                let senders: Vec<UserId> = messages.iter().filter_map(|m| m.sender).collect();
                let names = self.names.tokens(&senders).await;
                let mut text: Vec<String> = messages
                    .iter()
                    .map(|m| {
                        let from = m
                            .sender
                            .and_then(|s| names.get(&s).cloned())
                            .unwrap_or_else(|| "-".into());
                        format!(
                            "HISTORY {conversation} {} {from} {}",
                            m.seq.0,
                            render::content(m.media.as_str(), &m.content)
                        )
                    })
                    .collect();
                text.push(format!("OK HISTORY {conversation} {}", messages.len()));
                self.reply(text.join("\n"));
            }
            Command::Read { place, seq } => {
                let conversation = self.conversation(&place).await?;
                apply(self.app, self.conn, ClientFrame::Read { conversation, seq }).await?;
                self.reply(format!("OK READ {conversation} {}", seq.0));
            }
        }
        Ok(())
    }

    /// The stored client id of this send (its reference is `l{n}`).
    fn client_id(&self) -> String {
        client_id(&self.socket.tag, self.socket.sends)
    }

    /// The user a command names; an unknown name is `unknown_user`, as for an unknown id.
    async fn user(&self, who: &Who) -> Result<UserId, Refusal> {
        match who {
            Who::Id(id) => Ok(*id),
            Who::Name(name) => match self.app.store.user_by_name(name).await? {
                Some(user) => Ok(UserId(user.id)),
                None => Err(Refusal {
                    code: "unknown_user",
                    message: format!("no such user {name}"),
                }),
            },
        }
    }

    async fn conversation(&self, place: &Place) -> Result<ConversationId, Refusal> {
        match place {
            Place::Conversation(conversation) => Ok(*conversation),
            Place::With(who) => {
                let other = self.user(who).await?;
                if other == self.conn.user {
                    return Err(FrameError::SelfMessage.into());
                }
                Ok(ConversationId::private(self.conn.user, other))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_client_ids_come_back_as_references() {
        let id = client_id("abc", 7);
        assert_eq!(id, "line:abc:7");
        assert!(id.len() <= crate::dispatch::MAX_CLIENT_ID_BYTES);
        assert_eq!(reference("abc", &id), "l7");
        assert_eq!(reference("abd", &id), "line:abc:7", "another socket's id");
        assert_eq!(reference("abc", "c 1"), "c 1");
    }
}
