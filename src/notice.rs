//! What happened that connections should hear about: one [`Notice`] type for the fan-out and
//! for the cluster, so a peer's notice is the same value as a local one.
//!
//! Notices are data only. [`crate::fanout`] decides who hears one here; the cluster carries
//! them to peers (serialized as they are, tagged by `e`), with its own control packets beside
//! them. This module sits below both, so neither has to import the other to name a notice.

use serde::{Deserialize, Serialize};

use crate::ids::{CommunityId, ConversationId, Seq, UserId};
use crate::media::Media;
use crate::store::StoredMessage;

/// A message's body, carried inline when it fits in one packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    pub id: String,
    pub sender: Option<UserId>,
    pub media: Media,
    pub content: String,
    pub ts: i64,
}

/// Something connections hear about, here and on every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum Notice {
    /// A message was stored. Without `body` (too big for one packet), it is loaded from the
    /// shared database by conversation and seq.
    Message {
        conversation: ConversationId,
        seq: Seq,
        body: Option<Body>,
    },
    /// `user` read `conversation` up to `seq`.
    Read {
        conversation: ConversationId,
        user: UserId,
        seq: Seq,
    },
    /// `from` is typing in `conversation` (or, with `stop`, cleared the draft).
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
    /// `user` now has (or no longer has) a connection on the node that says so; `notify` when
    /// that changed whether they are online anywhere, so their contacts hear it.
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
}

impl Notice {
    /// The conversation a message, read or typing notice is about (the others have none).
    pub fn conversation(&self) -> Option<ConversationId> {
        match self {
            Self::Message { conversation, .. }
            | Self::Read { conversation, .. }
            | Self::Typing { conversation, .. } => Some(*conversation),
            _ => None,
        }
    }

    /// The notice announcing a stored message, with its body inline.
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

    /// The same notice without its body (a reference to storage), for a packet that would
    /// not fit otherwise; `None` when there is no body to leave out.
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
}

impl Body {
    /// The stored message this body describes.
    pub fn to_message(&self, conversation: ConversationId, seq: Seq) -> StoredMessage {
        StoredMessage {
            id: self.id.clone(),
            conversation,
            seq,
            sender: self.sender,
            media: self.media,
            content: self.content.clone(),
            client_id: None,
            created_at: self.ts,
        }
    }
}
