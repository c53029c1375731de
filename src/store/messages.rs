//! Messages and read cursors.
//!
//! [`Store::append_batch`] is the write path of every message: one transaction for a whole
//! batch (group commit), where each conversation's `last_seq` is bumped by the number of new
//! messages, all counters of the batch in one statement, and the rows are inserted together. The
//! bump takes the conversation rows' write locks (in id order), so writers on several nodes
//! sharing the database still get gapless, strictly increasing seqs; a rolled-back batch gives
//! its numbers back.

use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement, TransactionTrait, Value,
};

use super::entity::{conversation, message, read_cursor};
use super::{now_ms, Store, StoreError};
use crate::ids::{CommunityId, ConversationId, Seq, UserId};
use crate::media::Media;

/// A stored message, as every layer above storage sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: String,
    pub conversation: ConversationId,
    pub seq: Seq,
    /// `None` for system messages.
    pub sender: Option<UserId>,
    pub media: Media,
    pub content: String,
    pub client_id: Option<String>,
    pub created_at: i64,
}

/// A message to store; the store gives it an id and a seq.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation: ConversationId,
    pub sender: Option<UserId>,
    pub media: Media,
    pub content: String,
    /// The client's id for the send, which makes a retry return the first result.
    pub client_id: Option<String>,
    /// The message id, when the caller chose it up front (a new uuid otherwise).
    pub id: Option<String>,
}

/// The outcome of one appended message.
#[derive(Debug, Clone)]
pub struct Appended {
    pub message: StoredMessage,
    /// True when this was a retry of an already stored send: nothing new was written.
    pub duplicate: bool,
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Db(DbErr::Custom(detail))
}

impl TryFrom<message::Model> for StoredMessage {
    type Error = StoreError;

    fn try_from(row: message::Model) -> Result<Self, StoreError> {
        Ok(Self {
            conversation: row
                .conversation_id
                .parse()
                .map_err(|e| corrupt(format!("message {}: {e}", row.id)))?,
            id: row.id,
            seq: Seq(row.seq),
            sender: row.sender_id.map(UserId),
            media: Media::from_stored(&row.media),
            content: row.content,
            client_id: row.client_id,
            created_at: row.created_at,
        })
    }
}

fn to_messages(rows: Vec<message::Model>) -> Result<Vec<StoredMessage>, StoreError> {
    rows.into_iter().map(StoredMessage::try_from).collect()
}

impl Store {
    /// Creates the conversation row if it is missing (safe to race with other nodes).
    pub async fn ensure_conversation(&self, id: ConversationId) -> Result<(), StoreError> {
        let (user_low, user_high, community) = match id {
            ConversationId::Private(a, b) => (Some(a.0), Some(b.0), None),
            ConversationId::System(u) => (Some(u.0), Some(u.0), None),
            ConversationId::Group(c) => (None, None, Some(c.0)),
        };
        let row = conversation::ActiveModel {
            id: Set(id.to_string()),
            kind: Set(id.kind().to_owned()),
            user_low: Set(user_low),
            user_high: Set(user_high),
            community_id: Set(community),
            last_seq: Set(0),
            created_at: Set(now_ms()),
        };
        // A plain insert whose unique violation means "already there": portable where
        // `ON CONFLICT`/`INSERT IGNORE` spellings differ between the three backends.
        match conversation::Entity::insert(row)
            .exec_without_returning(self.conn())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if StoreError::is_unique_violation(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a batch in one transaction and returns one outcome per input, in input order.
    /// Conversation rows must exist ([`Store::ensure_conversation`]).
    ///
    /// Almost no batch repeats an earlier send, so the first attempt writes every input as new
    /// and lets the unique indexes say otherwise: a repeated `(sender, client id)` (or message
    /// id) makes the insert fail, the transaction is rolled back (its seqs with it), and
    /// only then are the earlier sends looked up and the batch written again, repeats answered
    /// with what was stored the first time.
    pub async fn append_batch(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        let fresh = batch.iter().map(|_| Plan::New).collect();
        if let Some(out) = self.write(batch, fresh, OnRepeat::RollBack).await? {
            return Ok(out);
        }
        let earlier = self.find_sent(batch).await?;
        let plans = plan(batch, &earlier);
        self.write(batch, plans, OnRepeat::Fail)
            .await?
            .ok_or_else(|| corrupt("a planned batch was rolled back".into()))
    }

    /// Writes the batch's new inputs as planned; `None` when `on_repeat` is
    /// [`OnRepeat::RollBack`] and a unique index refused a row.
    async fn write(
        &self,
        batch: &[NewMessage],
        plans: Vec<Plan>,
        on_repeat: OnRepeat,
    ) -> Result<Option<Vec<Appended>>, StoreError> {
        let now = now_ms();
        let mut per_conversation: Vec<(ConversationId, i64)> = Vec::new();
        for (new, _) in batch
            .iter()
            .zip(&plans)
            .filter(|(_, p)| matches!(p, Plan::New))
        {
            match per_conversation
                .iter_mut()
                .find(|(c, _)| *c == new.conversation)
            {
                Some((_, n)) => *n += 1,
                None => per_conversation.push((new.conversation, 1)),
            }
        }
        // Counter rows are locked in one global order (the database's order of conversation ids,
        // see `bump_seqs`) on every node, so two writers with the same conversations in
        // different orders cannot deadlock. Sorted here too, so the statement text is stable.
        per_conversation.sort_by_key(|(c, _)| *c);
        let mut stored: Vec<Option<StoredMessage>> = vec![None; batch.len()];
        if !per_conversation.is_empty() {
            let tx = self.conn().begin().await?;
            let last = bump_seqs(&tx, &per_conversation).await?;
            let mut next_seq: HashMap<ConversationId, i64> =
                HashMap::with_capacity(per_conversation.len());
            for (conversation, count) in &per_conversation {
                let last = last
                    .get(conversation)
                    .ok_or_else(|| corrupt(format!("conversation {conversation} not bumped")))?;
                next_seq.insert(*conversation, last - count + 1);
            }
            for (i, (new, plan)) in batch.iter().zip(&plans).enumerate() {
                if !matches!(plan, Plan::New) {
                    continue;
                }
                let seq = next_seq.entry(new.conversation).or_default();
                stored[i] = Some(StoredMessage {
                    id: new.id.clone().unwrap_or_else(crate::ids::new_message_id),
                    conversation: new.conversation,
                    seq: Seq(*seq),
                    sender: new.sender,
                    media: new.media,
                    content: new.content.clone(),
                    client_id: new.client_id.clone(),
                    created_at: now,
                });
                *seq += 1;
            }
            let rows: Vec<&StoredMessage> = stored.iter().flatten().collect();
            // Bounded chunks keep each statement under every backend's bind-parameter limit.
            for chunk in rows.chunks(INSERT_CHUNK) {
                let inserted = insert_messages(&tx, chunk, on_repeat).await?;
                if inserted != chunk.len() as u64 {
                    tx.rollback().await?;
                    return Ok(None);
                }
            }
            tx.commit().await?;
        }

        let mut out: Vec<Appended> = Vec::with_capacity(batch.len());
        for (i, plan) in plans.into_iter().enumerate() {
            let appended = match plan {
                Plan::Earlier(message) => Appended {
                    message,
                    duplicate: true,
                },
                Plan::New => Appended {
                    message: stored[i]
                        .take()
                        .ok_or_else(|| corrupt("planned message not stored".into()))?,
                    duplicate: false,
                },
                Plan::SameAs(j) => Appended {
                    message: out[j].message.clone(),
                    duplicate: true,
                },
            };
            out.push(appended);
        }
        Ok(Some(out))
    }

    /// Earlier sends matching the batch's (sender, client id) pairs.
    async fn find_sent(
        &self,
        batch: &[NewMessage],
    ) -> Result<HashMap<(UserId, String), StoredMessage>, StoreError> {
        let keys: HashSet<(i64, &str)> = batch
            .iter()
            .filter_map(|m| Some((m.sender?.0, m.client_id.as_deref()?)))
            .collect();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let mut condition = Condition::any();
        for (sender, client_id) in &keys {
            condition = condition.add(
                message::Column::SenderId
                    .eq(*sender)
                    .and(message::Column::ClientId.eq(*client_id)),
            );
        }
        let rows = message::Entity::find()
            .filter(condition)
            .all(self.conn())
            .await?;
        let mut found = HashMap::new();
        for message in to_messages(rows)? {
            if let (Some(sender), Some(client_id)) = (message.sender, message.client_id.clone()) {
                found.insert((sender, client_id), message);
            }
        }
        Ok(found)
    }

    /// Up to `limit` messages of a conversation with seq > `after`, oldest first.
    pub async fn messages_after(
        &self,
        conversation: ConversationId,
        after: Seq,
        limit: u64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        to_messages(
            message::Entity::find()
                .filter(message::Column::ConversationId.eq(conversation.to_string()))
                .filter(message::Column::Seq.gt(after.0))
                .order_by_asc(message::Column::Seq)
                .limit(limit)
                .all(self.conn())
                .await?,
        )
    }

    /// One message by its place (for cluster events that carry a reference, not the body).
    pub async fn message_at(
        &self,
        conversation: ConversationId,
        seq: Seq,
    ) -> Result<Option<StoredMessage>, StoreError> {
        message::Entity::find()
            .filter(message::Column::ConversationId.eq(conversation.to_string()))
            .filter(message::Column::Seq.eq(seq.0))
            .one(self.conn())
            .await?
            .map(StoredMessage::try_from)
            .transpose()
    }

    /// The last `limit` messages with seq < `before`, oldest first (for scrolling back).
    pub async fn messages_before(
        &self,
        conversation: ConversationId,
        before: Seq,
        limit: u64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut rows = message::Entity::find()
            .filter(message::Column::ConversationId.eq(conversation.to_string()))
            .filter(message::Column::Seq.lt(before.0))
            .order_by_desc(message::Column::Seq)
            .limit(limit)
            .all(self.conn())
            .await?;
        rows.reverse();
        to_messages(rows)
    }

    /// A conversation's latest seq (0 when it has no messages or does not exist).
    pub async fn last_seq(&self, conversation: ConversationId) -> Result<Seq, StoreError> {
        Ok(Seq(conversation::Entity::find_by_id(
            conversation.to_string(),
        )
        .select_only()
        .column(conversation::Column::LastSeq)
        .into_tuple::<i64>()
        .one(self.conn())
        .await?
        .unwrap_or(0)))
    }

    /// Every conversation `user` takes part in, with its latest seq: their private pairs,
    /// their system inbox, and the communities they are in now.
    pub async fn conversations_of(
        &self,
        user: UserId,
        communities: &[CommunityId],
    ) -> Result<Vec<(ConversationId, Seq)>, StoreError> {
        let mut condition = Condition::any()
            .add(conversation::Column::UserLow.eq(user.0))
            .add(conversation::Column::UserHigh.eq(user.0));
        if !communities.is_empty() {
            condition = condition
                .add(conversation::Column::CommunityId.is_in(communities.iter().map(|c| c.0)));
        }
        let rows: Vec<(String, i64)> = conversation::Entity::find()
            .select_only()
            .column(conversation::Column::Id)
            .column(conversation::Column::LastSeq)
            .filter(condition)
            .into_tuple()
            .all(self.conn())
            .await?;
        rows.into_iter()
            .map(|(id, last)| {
                let id: ConversationId = id.parse().map_err(|e| corrupt(format!("{e}")))?;
                Ok((id, Seq(last)))
            })
            .collect()
    }

    /// `user`'s read cursors, by conversation.
    pub async fn read_cursors(
        &self,
        user: UserId,
    ) -> Result<HashMap<ConversationId, Seq>, StoreError> {
        let rows: Vec<(String, i64)> = read_cursor::Entity::find()
            .select_only()
            .column(read_cursor::Column::ConversationId)
            .column(read_cursor::Column::Seq)
            .filter(read_cursor::Column::UserId.eq(user.0))
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(c, s)| Some((c.parse().ok()?, Seq(s))))
            .collect())
    }

    /// Every participant's read cursor in one conversation (who has read how far).
    pub async fn read_cursors_in(
        &self,
        conversation: ConversationId,
    ) -> Result<Vec<(UserId, Seq)>, StoreError> {
        let rows: Vec<(i64, i64)> = read_cursor::Entity::find()
            .select_only()
            .column(read_cursor::Column::UserId)
            .column(read_cursor::Column::Seq)
            .filter(read_cursor::Column::ConversationId.eq(conversation.to_string()))
            .order_by_asc(read_cursor::Column::UserId)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(rows.into_iter().map(|(u, s)| (UserId(u), Seq(s))).collect())
    }

    /// `user`'s read cursor in one conversation (0 when never read).
    pub async fn read_cursor(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> Result<Seq, StoreError> {
        Ok(Seq(read_cursor::Entity::find_by_id((
            user.0,
            conversation.to_string(),
        ))
        .select_only()
        .column(read_cursor::Column::Seq)
        .into_tuple::<i64>()
        .one(self.conn())
        .await?
        .unwrap_or(0)))
    }

    /// Moves a read cursor forward to `seq` (never back). Returns whether it moved.
    ///
    /// A conditional update (`seq < new`) is atomic per row; a missing row is inserted, and an
    /// insert that loses the race to another device's first read retries the update, so the
    /// higher cursor always wins.
    pub async fn advance_read_cursor(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Seq,
    ) -> Result<bool, StoreError> {
        if self.raise_read_cursor(user, conversation, seq).await? {
            return Ok(true);
        }
        let row = read_cursor::ActiveModel {
            user_id: Set(user.0),
            conversation_id: Set(conversation.to_string()),
            seq: Set(seq.0),
            updated_at: Set(now_ms()),
        };
        match read_cursor::Entity::insert(row)
            .exec_without_returning(self.conn())
            .await
        {
            Ok(n) => Ok(n > 0),
            // The row exists now (another device, or already at or past `seq`).
            Err(e) if StoreError::is_unique_violation(&e) => {
                self.raise_read_cursor(user, conversation, seq).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Raises an existing read cursor to `seq` if it is below; whether it moved.
    async fn raise_read_cursor(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Seq,
    ) -> Result<bool, StoreError> {
        let moved = read_cursor::Entity::update_many()
            .col_expr(read_cursor::Column::Seq, Expr::value(seq.0))
            .col_expr(read_cursor::Column::UpdatedAt, Expr::value(now_ms()))
            .filter(read_cursor::Column::UserId.eq(user.0))
            .filter(read_cursor::Column::ConversationId.eq(conversation.to_string()))
            .filter(read_cursor::Column::Seq.lt(seq.0))
            .exec(self.conn())
            .await?;
        Ok(moved.rows_affected > 0)
    }
}

/// What a batch input becomes: a new row, a repeat of a stored send, or a repeat of an
/// earlier input of the same batch.
enum Plan {
    Earlier(StoredMessage),
    New,
    SameAs(usize),
}

/// What an insert does with a row a unique index refuses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnRepeat {
    /// The statement fails, and the caller rolls the batch back (the cheap first attempt).
    RollBack,
    /// Fail the statement (the batch was planned against what is stored).
    Fail,
}

/// Rows per insert statement: 8 binds each, under every backend's limit.
const INSERT_CHUNK: usize = 500;

/// Decides, before writing, which inputs repeat an earlier send or an earlier input of this
/// same batch.
fn plan(batch: &[NewMessage], earlier: &HashMap<(UserId, String), StoredMessage>) -> Vec<Plan> {
    let mut first_index: HashMap<(UserId, &str), usize> = HashMap::new();
    let mut plans = Vec::with_capacity(batch.len());
    for (i, new) in batch.iter().enumerate() {
        if let Some(key) = new.sender.zip(new.client_id.as_deref()) {
            if let Some(found) = earlier.get(&(key.0, key.1.to_owned())) {
                plans.push(Plan::Earlier(found.clone()));
                continue;
            }
            if let Some(&j) = first_index.get(&key) {
                plans.push(Plan::SameAs(j));
                continue;
            }
            first_index.insert(key, i);
        }
        plans.push(Plan::New);
    }
    plans
}

/// One multi-row insert in fixed-shape SQL (no query builder on the hot path); returns how many
/// rows went in. With [`OnRepeat::RollBack`] a row a unique index refuses makes it 0 (the
/// statement failed, the caller rolls back and takes the careful path, so nothing is lost).
async fn insert_messages<C: ConnectionTrait>(
    tx: &C,
    rows: &[&StoredMessage],
    on_repeat: OnRepeat,
) -> Result<u64, StoreError> {
    let backend = tx.get_database_backend();
    let mut binds = Binds::new(backend);
    let mut sql = String::with_capacity(120 + rows.len() * 48);
    sql.push_str(
        "INSERT INTO messages (id, conversation_id, seq, sender_id, media, content, client_id, created_at) VALUES ",
    );
    for (i, m) in rows.iter().enumerate() {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        binds.put(&mut sql, m.id.as_str());
        sql.push_str(", ");
        binds.put(&mut sql, m.conversation.to_string());
        sql.push_str(", ");
        binds.put(&mut sql, m.seq.0);
        sql.push_str(", ");
        binds.put(&mut sql, m.sender.map(|u| u.0));
        sql.push_str(", ");
        binds.put(&mut sql, m.media.as_str());
        sql.push_str(", ");
        binds.put(&mut sql, m.content.as_str());
        sql.push_str(", ");
        binds.put(&mut sql, m.client_id.as_deref());
        sql.push_str(", ");
        binds.put(&mut sql, m.created_at);
        sql.push(')');
    }
    // A plain insert, not `ON CONFLICT DO NOTHING` / `INSERT IGNORE`: the batch is rolled back
    // on a repeat either way, and PostgreSQL checks every row of an `ON CONFLICT` insert against
    // the unique indexes before inserting it (speculative insertion), a cost every batch paid
    // for the rare one with a repeat.
    match tx.execute(binds.statement(sql)).await {
        Ok(done) => Ok(done.rows_affected()),
        Err(e) if on_repeat == OnRepeat::RollBack && StoreError::is_unique_violation(&e) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Adds each conversation's count to its `last_seq` inside `tx` and returns the new values, in
/// one statement per batch (two on MariaDB, which has no `UPDATE ... RETURNING`), instead of two
/// per conversation.
///
/// The counter rows are first locked in one global order (`ORDER BY id FOR UPDATE`): a single
/// `UPDATE ... WHERE id IN (..)` promises no row order (PostgreSQL may scan the heap), and two
/// writers on different nodes locking the same rows in different orders would deadlock. SQLite
/// has one writer per database and no row locks, so it skips that step.
async fn bump_seqs<C: ConnectionTrait>(
    tx: &C,
    counts: &[(ConversationId, i64)],
) -> Result<HashMap<ConversationId, i64>, StoreError> {
    let backend = tx.get_database_backend();
    let mut binds = Binds::new(backend);
    let ids: Vec<String> = counts.iter().map(|(c, _)| c.to_string()).collect();
    let id_list = |binds: &mut Binds| {
        ids.iter()
            .map(|id| binds.push(id.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if backend != DbBackend::Sqlite {
        let list = id_list(&mut binds);
        let sql =
            format!("SELECT id FROM conversations WHERE id IN ({list}) ORDER BY id FOR UPDATE");
        let locked = tx.query_all(binds.statement(sql)).await?;
        if locked.len() != counts.len() {
            return Err(corrupt(format!(
                "{} of {} conversations are missing",
                counts.len() - locked.len().min(counts.len()),
                counts.len()
            )));
        }
        binds = Binds::new(backend);
    }
    let mut case = String::from("CASE id");
    for (id, (_, count)) in ids.iter().zip(counts) {
        let id = binds.push(id.as_str());
        let count = binds.push(*count);
        case.push_str(&format!(" WHEN {id} THEN {count}"));
    }
    case.push_str(" ELSE 0 END");
    let list = id_list(&mut binds);
    let update =
        format!("UPDATE conversations SET last_seq = last_seq + {case} WHERE id IN ({list})");
    let rows = if backend == DbBackend::MySql {
        let updated = tx.execute(binds.statement(update)).await?;
        if updated.rows_affected() != counts.len() as u64 {
            return Err(corrupt(format!(
                "{} of {} conversations are missing",
                counts.len() as u64 - updated.rows_affected().min(counts.len() as u64),
                counts.len()
            )));
        }
        let mut binds = Binds::new(backend);
        let list = id_list(&mut binds);
        let select = format!("SELECT id, last_seq FROM conversations WHERE id IN ({list})");
        tx.query_all(binds.statement(select)).await?
    } else {
        tx.query_all(binds.statement(format!("{update} RETURNING id, last_seq")))
            .await?
    };
    let mut last = HashMap::with_capacity(counts.len());
    for row in rows {
        let id: String = row.try_get("", "id")?;
        let seq: i64 = row.try_get("", "last_seq")?;
        let id: ConversationId = id
            .parse()
            .map_err(|e| corrupt(format!("conversation {id}: {e}")))?;
        last.insert(id, seq);
    }
    if let Some((missing, _)) = counts.iter().find(|(c, _)| !last.contains_key(c)) {
        return Err(corrupt(format!("conversation {missing} is missing")));
    }
    Ok(last)
}

/// A raw statement's bind values with the backend's placeholder spelling (`$n` on PostgreSQL,
/// `?` elsewhere).
struct Binds {
    backend: DbBackend,
    values: Vec<Value>,
}

impl Binds {
    fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            values: Vec::new(),
        }
    }

    /// Adds a value and returns its placeholder.
    fn push(&mut self, value: impl Into<Value>) -> String {
        let mut placeholder = String::new();
        self.put(&mut placeholder, value);
        placeholder
    }

    /// Adds a value and writes its placeholder onto `sql`.
    fn put(&mut self, sql: &mut String, value: impl Into<Value>) {
        use std::fmt::Write;
        self.values.push(value.into());
        match self.backend {
            DbBackend::Postgres => {
                let _ = write!(sql, "${}", self.values.len());
            }
            DbBackend::MySql | DbBackend::Sqlite => sql.push('?'),
        }
    }

    fn statement(self, sql: String) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::sqlite_with_users;

    fn send(from: UserId, to: UserId, client_id: &str) -> NewMessage {
        NewMessage {
            conversation: ConversationId::private(from, to),
            sender: Some(from),
            media: Media::Text,
            content: format!("{client_id} from {from}"),
            client_id: Some(client_id.into()),
            id: None,
        }
    }

    /// The cheap first attempt is rolled back when a unique index refuses a row: repeats get
    /// what was stored the first time, new sends get the next seqs, and no seq is skipped.
    #[tokio::test]
    async fn repeats_in_a_batch_leave_no_gap_in_the_seqs() {
        let dir = tempfile::tempdir().unwrap();
        let (store, users) = sqlite_with_users(dir.path(), &["ann", "bob"]).await;
        let (ann, bob) = (users[0], users[1]);
        let pair = ConversationId::private(ann, bob);
        store.ensure_conversation(pair).await.unwrap();

        let first = store
            .append_batch(&[send(ann, bob, "a1"), send(bob, ann, "b1")])
            .await
            .unwrap();
        assert_eq!(
            first
                .iter()
                .map(|a| (a.message.seq, a.duplicate))
                .collect::<Vec<_>>(),
            [(Seq(1), false), (Seq(2), false)]
        );

        let second = store
            .append_batch(&[
                send(ann, bob, "a2"),
                send(bob, ann, "b1"),
                send(bob, ann, "b2"),
                send(ann, bob, "a2"),
            ])
            .await
            .unwrap();
        let got: Vec<_> = second
            .iter()
            .map(|a| (a.message.seq, a.duplicate))
            .collect();
        assert_eq!(
            got,
            [
                (Seq(3), false),
                (Seq(2), true),
                (Seq(4), false),
                (Seq(3), true)
            ]
        );
        assert_eq!(
            second[1].message, first[1].message,
            "the stored send, as stored"
        );
        assert_eq!(store.last_seq(pair).await.unwrap(), Seq(4));
        let seqs: Vec<Seq> = store
            .messages_after(pair, Seq(0), 100)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(seqs, [Seq(1), Seq(2), Seq(3), Seq(4)]);
        store.close().await;
    }
}
