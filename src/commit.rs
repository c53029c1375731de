//! Group commit: the one place a node writes messages.
//!
//! Dispatch hands accepted sends to a writer task through a bounded channel. The task takes
//! whatever is waiting (up to [`MAX_BATCH`]), checks recipients and membership for the whole
//! batch at once and stores the batch in one transaction. Only then, in seq order, does the
//! writer's announcer task ack each sender and queue the message for the recipients'
//! connections. Store before ack; ack before delivery; one writer per conversation, and its
//! announcer takes the batches in the order they were stored, so local delivery order is seq
//! order.
//!
//! The two tasks are a pipeline of two: while the announcer acks and fans out one batch, the
//! writer already stores the next (their work is CPU on one side and database round trips on
//! the other). The announcer holds at most one stored batch in waiting ([`PIPELINE`]).
//!
//! A node runs `chat.writers` writers, each owning the conversations that hash to it: on
//! PostgreSQL and MySQL a batch's time is mostly round trips, and writers of disjoint
//! conversations overlap them without waiting on each other's counter locks. SQLite has one
//! write lock per file, so it gets one writer.
//!
//! One bad send fails only itself: what a backend cannot store is refused before batching
//! ([`storable`]), and a batch the database refuses anyway is stored again send by send.
//!
//! A database that does not answer must not hold senders: a sender waits for room in the queue
//! no longer than the deadline ([`Committer::submit`]), every database step of a batch has one
//! (`database.timeout_ms`), and when one passes, the batch and everything queued behind it get
//! `unavailable` (those would only wait on the same database). A timed-out batch may still have
//! been stored; a re-send with the same id is then acked (and announced) as that message.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::fanout::{Fanout, Notice, Scope};
use crate::frame::ServerFrame;
use crate::hub::{Conn, Outgoing};
use crate::ids::{CommunityId, ConversationId, UserId};
use crate::media::Media;
use crate::metrics::Metrics;
use crate::store::{Appended, NewMessage, Store, StoredMessage};

/// Most sends stored in one transaction.
pub const MAX_BATCH: usize = 256;
/// Conversations the writer remembers as existing before it starts over.
const KNOWN_CONVERSATIONS: usize = 100_000;
/// Stored batches waiting for the announcer; one, so the writer is never more than a batch
/// ahead of what its senders have been told.
const PIPELINE: usize = 1;

/// Where a send goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    User(UserId),
    Community(CommunityId),
    /// A system notice to a user (admin API).
    System(UserId),
}

/// Why a send was refused; becomes an `error` frame (or an HTTP error for the admin API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("no such user {0}")]
    UnknownUser(UserId),
    #[error("you are not in community {0}")]
    NotAMember(CommunityId),
    #[error("{0}")]
    Unstorable(&'static str),
    #[error("the message could not be stored; send it again with the same id")]
    Unavailable,
}

impl SendError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownUser(_) => "unknown_user",
            Self::NotAMember(_) => "not_a_member",
            Self::Unstorable(_) => "invalid_text",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The longest content every backend stores (MySQL/MariaDB `TEXT`), whatever the configured
/// limit: a longer one is refused here rather than failing (or being cut) in the database.
pub const MAX_STORABLE_CONTENT_BYTES: usize = 65_535;
/// The longest client id the `client_id` column holds on every backend, in bytes.
pub const MAX_STORABLE_CLIENT_ID_BYTES: usize = 64;

/// Refuses what some backend cannot store, the same way on every backend, before it can reach
/// (and fail) a batch of other users' sends: U+0000 (PostgreSQL refuses it in text) and lengths
/// over the columns' sizes.
pub fn storable(client_id: Option<&str>, content: &str) -> Result<(), SendError> {
    if content.contains('\0') {
        return Err(SendError::Unstorable("content must not contain U+0000"));
    }
    if content.len() > MAX_STORABLE_CONTENT_BYTES {
        return Err(SendError::Unstorable("content is over 65535 bytes"));
    }
    if let Some(id) = client_id {
        if id.contains('\0') {
            return Err(SendError::Unstorable("id must not contain U+0000"));
        }
        if id.is_empty() || id.len() > MAX_STORABLE_CLIENT_ID_BYTES {
            return Err(SendError::Unstorable("id must be 1-64 bytes"));
        }
    }
    Ok(())
}

/// Who hears the outcome of a send.
pub enum Origin {
    /// A websocket client: it gets an `ack` or an `error` frame.
    Conn(Arc<Conn>),
    /// An HTTP handler waiting for the stored message.
    Caller(oneshot::Sender<Result<StoredMessage, SendError>>),
}

/// One accepted send, waiting to be stored.
pub struct Submission {
    pub origin: Origin,
    pub sender: Option<UserId>,
    pub client_id: Option<String>,
    pub target: Target,
    pub media: Media,
    pub content: String,
    /// The message id to store it under, chosen before submitting by a sender without a client
    /// id, so its connection can recognise (and skip) its own message before the ack comes.
    pub message_id: Option<String>,
}

impl Submission {
    fn conversation(&self) -> ConversationId {
        match (self.target, self.sender) {
            (Target::User(to), Some(from)) => ConversationId::private(from, to),
            (Target::User(to), None) | (Target::System(to), _) => ConversationId::System(to),
            (Target::Community(c), _) => ConversationId::Group(c),
        }
    }
}

/// What a writer task works with: storage to write to, the fan-out to announce to.
#[derive(Clone)]
pub struct Writer {
    pub store: Store,
    pub fanout: Arc<Fanout>,
    pub metrics: Metrics,
    /// Longest wait for one database step (`database.timeout_ms`).
    pub deadline: Duration,
}

/// The sending half, held by dispatch and the admin API: one queue per writer.
#[derive(Clone)]
pub struct Committer {
    writers: Arc<[mpsc::Sender<Submission>]>,
    /// Longest wait for room in the queue.
    wait: Duration,
}

impl Committer {
    /// Starts one writer task per queue; the handle ends when all of them have stopped, which
    /// they do after draining once `stop` is cancelled.
    pub fn spawn(
        writer: Writer,
        queues: Vec<mpsc::Receiver<Submission>>,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let tasks: Vec<_> = queues
            .into_iter()
            .map(|rx| tokio::spawn(run(writer.clone(), rx, stop.clone())))
            .collect();
        tokio::spawn(async move {
            for task in tasks {
                if let Err(err) = task.await {
                    tracing::error!(%err, "a message writer panicked");
                }
            }
        })
    }

    /// A committer for `writers` writers with `capacity` places each, whose senders wait at
    /// most `wait` for room, and the queues the writers drain. Each writer gets the whole
    /// capacity: sends to one conversation queue at one writer, and a smaller share would make
    /// their senders wait more often (a reader waiting for room is a reader not answering
    /// heartbeats).
    pub fn channel(
        writers: usize,
        capacity: usize,
        wait: Duration,
    ) -> (Self, Vec<mpsc::Receiver<Submission>>) {
        let writers = writers.max(1);
        let (txs, rxs): (Vec<_>, Vec<_>) =
            (0..writers).map(|_| mpsc::channel(capacity.max(1))).unzip();
        let committer = Self {
            writers: txs.into(),
            wait,
        };
        (committer, rxs)
    }

    /// Queues a send with its conversation's writer, waiting for room (in turn: backpressure
    /// lands on the sending client), but no longer than the database deadline: when the writer
    /// is stuck, the sender gets `unavailable` and its connection goes back to reading frames.
    pub async fn submit(&self, submission: Submission) -> Result<(), SendError> {
        let writer = writer_of(submission.conversation(), self.writers.len());
        self.writers[writer]
            .send_timeout(submission, self.wait)
            .await
            .map_err(|_| SendError::Unavailable)
    }
}

/// The writer that owns `conversation`, of `writers`: the same one for every send of it, so
/// its messages are stored, acked and announced in seq order.
fn writer_of(conversation: ConversationId, writers: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    conversation.hash(&mut hasher);
    (hasher.finish() % writers.max(1) as u64) as usize
}

async fn run(w: Writer, mut rx: mpsc::Receiver<Submission>, stop: CancellationToken) {
    let (stored_tx, stored_rx) = mpsc::channel(PIPELINE);
    let announcer = tokio::spawn(announce_batches(w.fanout.clone(), stored_rx));
    let mut known = HashSet::new();
    loop {
        let first = tokio::select! {
            biased;
            got = rx.recv() => got,
            _ = stop.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        let (outcome, stored) = commit(&w, &mut known, batch).await;
        hand_over(&stored_tx, stored).await;
        if outcome == Outcome::Stalled {
            refuse_queued(&mut rx);
        }
    }
    // Shutdown: store what was already accepted, so nothing a client handed over is dropped
    // silently (those clients may be gone; they find the messages on reconnect).
    rx.close();
    let mut rest = Vec::new();
    while let Ok(s) = rx.try_recv() {
        rest.push(s);
    }
    while !rest.is_empty() {
        let batch: Vec<Submission> = rest.drain(..rest.len().min(MAX_BATCH)).collect();
        let (_, stored) = commit(&w, &mut known, batch).await;
        hand_over(&stored_tx, stored).await;
    }
    drop(stored_tx);
    if let Err(err) = announcer.await {
        tracing::error!(%err, "a message announcer panicked");
    }
}

/// Passes a stored batch to the announcer, waiting while it is busy with the one before.
async fn hand_over(to: &mpsc::Sender<Stored>, stored: Option<Stored>) {
    let Some(stored) = stored else { return };
    if let Err(mpsc::error::SendError(stored)) = to.send(stored).await {
        // The announcer is gone (it panicked): its senders must still hear, if not be announced.
        tracing::error!(
            batch = stored.sends.len(),
            "no announcer: acking without fan-out"
        );
        for (s, appended) in stored.sends {
            reply(
                s.origin,
                s.client_id,
                s.message_id,
                appended.map(|a| a.message),
            );
        }
    }
}

/// A stored batch on its way to the senders and recipients: each accepted send with its
/// outcome, in seq order, and the member lists the batch was checked against.
struct Stored {
    sends: Vec<(Submission, Result<Appended, SendError>)>,
    members: Members,
}

/// The announcer: acks and fans out each stored batch, in the order the writer stored them.
async fn announce_batches(fanout: Arc<Fanout>, mut stored: mpsc::Receiver<Stored>) {
    while let Some(batch) = stored.recv().await {
        announce(&fanout, batch).await;
    }
}

/// Acks each send of a stored batch and announces its message.
async fn announce(fanout: &Fanout, batch: Stored) {
    let Stored { sends, members } = batch;
    for (s, appended) in sends {
        let appended = match appended {
            Ok(appended) => appended,
            Err(e) => {
                reply(s.origin, s.client_id, s.message_id, Err(e));
                continue;
            }
        };
        let message = appended.message;
        let origin_conn = match &s.origin {
            Origin::Conn(conn) => Some(conn.id),
            Origin::Caller(_) => None,
        };
        reply(s.origin, s.client_id, s.message_id, Ok(message.clone()));
        // A retry of a stored send is announced again too: the first attempt may have been
        // stored but never announced (a crash between commit and fan-out). Repeats cost
        // nothing downstream, since every connection drops seqs it already holds.
        let participants = match s.target {
            // Read for this batch's check already: the fan-out need not ask again.
            Target::Community(c) => Some(members.get(&c).cloned().unwrap_or_default()),
            Target::User(_) | Target::System(_) => None,
        };
        let scope = Scope {
            except: origin_conn,
            participants,
        };
        fanout.announce(Notice::message(&message), scope).await;
    }
}

/// How a batch ended, for the writer loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    /// A database step passed its deadline: the database hangs or is overloaded.
    Stalled,
}

/// Gives `unavailable` to every send waiting in the queue, at once: after a timed-out batch they
/// would each wait on the same database.
fn refuse_queued(rx: &mut mpsc::Receiver<Submission>) {
    let queued: Vec<Submission> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    if !queued.is_empty() {
        tracing::warn!(
            refused = queued.len(),
            "database stalled: refused the queued sends"
        );
    }
    refuse(queued);
}

/// Runs one database step within the writer's deadline; `None` when it passed.
async fn within<T>(deadline: Duration, step: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(deadline, step).await.ok()
}

/// Refuses a whole batch with `unavailable`.
fn refuse(batch: Vec<Submission>) {
    for s in batch {
        reply(
            s.origin,
            s.client_id,
            s.message_id,
            Err(SendError::Unavailable),
        );
    }
}

/// Checks and stores one batch; what was stored goes on to the announcer.
async fn commit(
    w: &Writer,
    known: &mut HashSet<ConversationId>,
    batch: Vec<Submission>,
) -> (Outcome, Option<Stored>) {
    let deadline = w.deadline;
    let members = match within(deadline, resolve(&w.store, &batch)).await {
        Some(Ok(m)) => m,
        Some(Err(err)) => {
            tracing::error!(%err, "resolving recipients");
            refuse(batch);
            return (Outcome::Done, None);
        }
        None => {
            tracing::error!(
                ?deadline,
                "resolving recipients: no answer from the database"
            );
            refuse(batch);
            return (Outcome::Stalled, None);
        }
    };
    let mut accepted = Vec::with_capacity(batch.len());
    for s in batch {
        let verdict =
            storable(s.client_id.as_deref(), &s.content).and_then(|()| check(&s, &members));
        match verdict {
            Ok(()) => accepted.push(s),
            Err(e) => reply(s.origin, s.client_id, s.message_id, Err(e)),
        }
    }
    if accepted.is_empty() {
        return (Outcome::Done, None);
    }
    if known.len() > KNOWN_CONVERSATIONS {
        // A cache, not a record: forgetting only costs one idempotent insert per conversation.
        known.clear();
    }
    let missing: HashSet<ConversationId> = accepted
        .iter()
        .map(Submission::conversation)
        .filter(|c| !known.contains(c))
        .collect();
    for conversation in missing {
        match within(deadline, w.store.ensure_conversation(conversation)).await {
            Some(Ok(())) => {
                known.insert(conversation);
            }
            Some(Err(err)) => tracing::error!(%err, %conversation, "creating conversation"),
            None => {
                tracing::error!(?deadline, %conversation, "creating conversation: no answer");
                refuse(accepted);
                return (Outcome::Stalled, None);
            }
        }
    }
    let new: Vec<NewMessage> = accepted
        .iter()
        .map(|s| NewMessage {
            conversation: s.conversation(),
            sender: s.sender,
            media: s.media,
            content: s.content.clone(),
            client_id: s.client_id.clone(),
            id: s.message_id.clone(),
        })
        .collect();
    w.metrics.commit_batch.observe(new.len() as f64);
    let Some(stored) = store(&w.store, &new, deadline).await else {
        tracing::error!(
            ?deadline,
            batch = new.len(),
            "storing a batch: no answer from the database"
        );
        refuse(accepted);
        return (Outcome::Stalled, None);
    };
    w.metrics.messages_stored.inc_by(
        stored
            .iter()
            .filter(|a| a.as_ref().is_ok_and(|a| !a.duplicate))
            .count() as u64,
    );
    let sends = accepted.into_iter().zip(stored).collect();
    (Outcome::Done, Some(Stored { sends, members }))
}

/// Stores a batch in one transaction; if that fails, stores its sends one by one, so a send the
/// database refuses fails alone and not the (up to [`MAX_BATCH`]) others that shared its batch.
/// One outcome per input, in input order; `None` when a step passed `deadline` (then the
/// database is not answering, and the rest is not tried).
async fn store(
    db: &Store,
    new: &[NewMessage],
    deadline: Duration,
) -> Option<Vec<Result<Appended, SendError>>> {
    let err = match within(deadline, db.append_batch(new)).await? {
        Ok(stored) => return Some(stored.into_iter().map(Ok).collect()),
        Err(err) => err,
    };
    if new.len() == 1 {
        tracing::error!(%err, "storing a send");
        return Some(vec![Err(SendError::Unavailable)]);
    }
    tracing::warn!(%err, batch = new.len(), "storing a batch failed; storing its sends one by one");
    let mut out = Vec::with_capacity(new.len());
    for one in new {
        out.push(
            match within(deadline, db.append_batch(std::slice::from_ref(one))).await? {
                Ok(mut stored) => stored.pop().ok_or(SendError::Unavailable),
                Err(err) => {
                    tracing::error!(%err, conversation = %one.conversation, "storing a send");
                    Err(SendError::Unavailable)
                }
            },
        );
    }
    Some(out)
}

/// Everything the batch needs to know about recipients, in one query per kind:
/// which private recipients exist, and the members of each community.
async fn resolve(store: &Store, batch: &[Submission]) -> Result<Members, crate::store::StoreError> {
    let users: Vec<UserId> = batch
        .iter()
        .filter_map(|s| match s.target {
            Target::User(u) | Target::System(u) => Some(u),
            Target::Community(_) => None,
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let existing: HashSet<UserId> = store
        .users(&users)
        .await?
        .into_iter()
        .map(|u| UserId(u.id))
        .collect();
    let mut communities = HashMap::new();
    for c in batch.iter().filter_map(|s| match s.target {
        Target::Community(c) => Some(c),
        _ => None,
    }) {
        if let std::collections::hash_map::Entry::Vacant(slot) = communities.entry(c) {
            slot.insert(store.member_ids(c).await?);
        }
    }
    Ok(Members {
        existing,
        communities,
    })
}

/// Recipients known for a batch.
struct Members {
    existing: HashSet<UserId>,
    communities: HashMap<CommunityId, Vec<UserId>>,
}

impl Members {
    fn get(&self, c: &CommunityId) -> Option<&Vec<UserId>> {
        self.communities.get(c)
    }
}

fn check(s: &Submission, members: &Members) -> Result<(), SendError> {
    match s.target {
        Target::User(u) | Target::System(u) if !members.existing.contains(&u) => {
            Err(SendError::UnknownUser(u))
        }
        Target::Community(c) => {
            let list = members.get(&c).map(Vec::as_slice).unwrap_or_default();
            // An unknown community has no members, so it answers the same: not yours.
            if s.sender.is_some_and(|me| list.contains(&me)) {
                Ok(())
            } else {
                Err(SendError::NotAMember(c))
            }
        }
        _ => Ok(()),
    }
}

/// Tells the origin how a send ended. `message_id` is the key an id-less send waits under.
fn reply(
    origin: Origin,
    client_id: Option<String>,
    message_id: Option<String>,
    result: Result<StoredMessage, SendError>,
) {
    match origin {
        Origin::Conn(conn) => {
            let waits_as = client_id.clone().or(message_id);
            let out = match result {
                Ok(m) => Outgoing::Ack {
                    conversation: m.conversation,
                    seq: m.seq,
                    client_id: waits_as,
                    text: ServerFrame::Ack {
                        id: client_id,
                        msg_id: m.id,
                        conversation: m.conversation,
                        seq: m.seq,
                        ts: m.created_at,
                    }
                    .to_text()
                    .into(),
                },
                Err(e) => {
                    if let Some(id) = &waits_as {
                        conn.settle(id);
                    }
                    ServerFrame::Error {
                        id: client_id,
                        code: e.code(),
                        message: e.to_string(),
                    }
                    .into()
                }
            };
            conn.push(out);
        }
        Origin::Caller(tx) => {
            let _ = tx.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(sender: Option<UserId>, target: Target) -> Submission {
        let (tx, _rx) = oneshot::channel();
        Submission {
            origin: Origin::Caller(tx),
            sender,
            client_id: None,
            target,
            media: Media::Text,
            content: "hi".into(),
            message_id: None,
        }
    }

    fn members() -> Members {
        Members {
            existing: [UserId(1), UserId(2), UserId(3)].into_iter().collect(),
            communities: [(CommunityId(7), vec![UserId(1), UserId(2)])]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn a_private_send_needs_an_existing_recipient() {
        let m = members();
        assert_eq!(
            check(&send(Some(UserId(1)), Target::User(UserId(2))), &m),
            Ok(())
        );
        assert_eq!(
            check(&send(Some(UserId(1)), Target::User(UserId(99))), &m),
            Err(SendError::UnknownUser(UserId(99)))
        );
        assert_eq!(
            check(&send(None, Target::System(UserId(99))), &m),
            Err(SendError::UnknownUser(UserId(99)))
        );
        assert_eq!(check(&send(None, Target::System(UserId(3))), &m), Ok(()));
    }

    #[test]
    fn a_group_send_needs_a_member_sender() {
        let m = members();
        let to = Target::Community(CommunityId(7));
        assert_eq!(check(&send(Some(UserId(2)), to), &m), Ok(()));
        assert_eq!(
            check(&send(Some(UserId(3)), to), &m),
            Err(SendError::NotAMember(CommunityId(7)))
        );
        // No sender (never from a client) is no member either.
        assert_eq!(
            check(&send(None, to), &m),
            Err(SendError::NotAMember(CommunityId(7)))
        );
        // An unknown community has no members: it answers the same as one you are not in.
        let unknown = Target::Community(CommunityId(8));
        assert_eq!(
            check(&send(Some(UserId(1)), unknown), &m),
            Err(SendError::NotAMember(CommunityId(8)))
        );
    }

    #[test]
    fn a_conversation_always_has_the_same_writer() {
        let conversations: Vec<ConversationId> = (1..200)
            .map(|i| ConversationId::private(UserId(i), UserId(i + 1)))
            .chain((1..50).map(|c| ConversationId::Group(CommunityId(c))))
            .collect();
        let mut used = HashSet::new();
        for c in &conversations {
            let w = writer_of(*c, 4);
            assert!(w < 4);
            assert_eq!(writer_of(*c, 4), w, "stable");
            used.insert(w);
        }
        assert_eq!(used.len(), 4, "spread over every writer");
        assert!(conversations.iter().all(|c| writer_of(*c, 1) == 0));
    }

    #[test]
    fn each_send_knows_its_conversation() {
        let private = send(Some(UserId(9)), Target::User(UserId(2)));
        assert_eq!(
            private.conversation(),
            ConversationId::private(UserId(2), UserId(9))
        );
        let group = send(Some(UserId(9)), Target::Community(CommunityId(7)));
        assert_eq!(group.conversation(), ConversationId::Group(CommunityId(7)));
        let system = send(None, Target::System(UserId(2)));
        assert_eq!(system.conversation(), ConversationId::System(UserId(2)));
        // A user target without a sender (the admin API) is a system notice too.
        let admin = send(None, Target::User(UserId(2)));
        assert_eq!(admin.conversation(), ConversationId::System(UserId(2)));
    }

    #[tokio::test]
    async fn resolve_reads_the_whole_batch_at_once() {
        use crate::store::testing::sqlite_with_users;
        use crate::store::NewCommunity;
        let dir = tempfile::tempdir().unwrap();
        let (store, users) = sqlite_with_users(dir.path(), &["ann", "bob", "cy"]).await;
        let (ann, bob, cy) = (users[0], users[1], users[2]);
        let new = |name: &str| NewCommunity {
            name: name.into(),
            icon: None,
            description: None,
        };
        let group = CommunityId(store.create_community(ann, new("g")).await.unwrap().id);
        let unknown = CommunityId(9_999);
        let batch = [
            send(Some(ann), Target::User(bob)),
            send(Some(ann), Target::User(UserId(9_999))),
            send(None, Target::System(cy)),
            send(Some(ann), Target::Community(group)),
            send(Some(cy), Target::Community(group)),
            send(Some(bob), Target::Community(unknown)),
        ];
        let members = resolve(&store, &batch).await.unwrap();
        // Only the users sends go to are looked up (9999 among them, and missing).
        assert_eq!(members.existing, [bob, cy].into_iter().collect());
        assert_eq!(members.get(&group), Some(&vec![ann]));
        assert_eq!(members.get(&unknown), Some(&vec![]), "read, and empty");
        let verdicts: Vec<_> = batch.iter().map(|s| check(s, &members)).collect();
        assert_eq!(
            verdicts,
            [
                Ok(()),
                Err(SendError::UnknownUser(UserId(9_999))),
                Ok(()),
                Ok(()),
                Err(SendError::NotAMember(group)),
                Err(SendError::NotAMember(unknown)),
            ]
        );
        store.close().await;
    }

    #[test]
    fn what_no_backend_can_store_is_refused_before_the_batch() {
        assert_eq!(storable(Some("c-1"), "hi"), Ok(()));
        assert_eq!(storable(None, "hi"), Ok(()));
        for (id, content) in [
            (None, "a\0b".to_owned()),
            (None, "x".repeat(MAX_STORABLE_CONTENT_BYTES + 1)),
            (Some("a\0"), "hi".to_owned()),
            (Some(""), "hi".to_owned()),
        ] {
            let refused = storable(id, &content);
            assert!(
                matches!(refused, Err(SendError::Unstorable(_))),
                "{id:?}: {refused:?}"
            );
        }
        let long_id = "i".repeat(MAX_STORABLE_CLIENT_ID_BYTES + 1);
        assert_eq!(
            storable(Some(&long_id), "hi").map_err(|e| e.code()),
            Err("invalid_text")
        );
        let longest = "x".repeat(MAX_STORABLE_CONTENT_BYTES);
        assert_eq!(storable(None, &longest), Ok(()));
    }
}
