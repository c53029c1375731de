//! What nodes tell each other.

use serde::{Deserialize, Serialize};

use crate::frame::Media;
use crate::ids::{CommunityId, ConversationId, Seq, UserId};
use crate::store::StoredMessage;

/// A message's body, carried inline when it fits in one packet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Body {
    pub id: String,
    pub sender: Option<UserId>,
    pub media: Media,
    pub content: String,
    pub ts: i64,
}

/// One cluster event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum Event {
    /// A message was stored; peers deliver it to their own Nodes. Without `body` (too big for
    /// one packet), peers load it from the shared database by conversation and seq.
    Message {
        conversation: ConversationId,
        seq: Seq,
        body: Option<Body>,
    },
    Read {
        conversation: ConversationId,
        user: UserId,
        seq: Seq,
    },
    Typing {
        from: UserId,
        conversation: ConversationId,
        #[serde(default)]
        stop: bool,
    },
    /// A user's name or avatar changed.
    Profile {
        user: UserId,
        name: String,
        avatar: Option<String>,
    },
    /// `user` now has (or no longer has) a connection on the origin node; `notify` when that
    /// changed whether they are online anywhere, so peers tell the user's local contacts.
    Presence {
        user: UserId,
        here: bool,
        notify: bool,
    },
    /// Two users became (or stopped being) contacts.
    Contact { a: UserId, b: UserId, added: bool },
    /// A user joined (or left) a community.
    Member {
        community: CommunityId,
        user: UserId,
        joined: bool,
    },
    /// A token was revoked (log-out): close connections opened with it.
    SessionRevoked { token_hash: String },
    /// A user's password changed: close their connections but those opened with `keep`.
    SessionsRevoked { user: UserId, keep: String },
    /// An account was deleted: close all its connections.
    UserDeleted { user: UserId },
    /// Unsequenced: the origin is alive and has sent packets up to `last`.
    Heartbeat { last: u64 },
    /// Unsequenced, unicast: please send your packets `from..=to` again.
    Resend { from: u64, to: u64 },
    /// Unsequenced, unicast: packets `from..=to` are no longer kept; recover from storage.
    Gone { from: u64, to: u64 },
    /// Unsequenced: the origin is shutting down; it sent packets up to `last`, and storage
    /// holds everything it acked. Peers drop its presence and catch up from storage.
    Leave { last: u64 },
}

impl Event {
    /// The event announcing a stored message, with its body inline.
    pub fn message(m: &StoredMessage) -> Self {
        Self::Message {
            conversation: m.conversation,
            seq: m.seq,
            body: Some(Body {
                id: m.id.clone(),
                sender: m.sender,
                media: m.media,
                content: m.content.clone(),
                ts: m.created_at,
            }),
        }
    }

    /// The same event without its body (a reference to storage).
    pub fn without_body(&self) -> Option<Self> {
        match self {
            Self::Message {
                conversation,
                seq,
                body: Some(_),
            } => Some(Self::Message {
                conversation: *conversation,
                seq: *seq,
                body: None,
            }),
            _ => None,
        }
    }

    /// Control packets are not numbered, not kept for resend and not gap-tracked.
    pub fn is_control(&self) -> bool {
        matches!(
            self,
            Self::Heartbeat { .. } | Self::Resend { .. } | Self::Gone { .. } | Self::Leave { .. }
        )
    }
}

impl Body {
    /// The stored message this body describes.
    pub fn into_message(self, conversation: ConversationId, seq: Seq) -> StoredMessage {
        StoredMessage {
            id: self.id,
            conversation,
            seq,
            sender: self.sender,
            media: self.media,
            content: self.content,
            client_id: None,
            created_at: self.ts,
        }
    }
}
