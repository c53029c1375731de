//! The JSON shapes of the API and the websocket protocol (README "The websocket protocol",
//! docs/api.md), as the client reads and writes them.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A user's id.
pub type UserId = i64;
/// A community's (group's) id.
pub type CommunityId = i64;
/// A message's place in its conversation: 1, 2, 3, ... without gaps.
pub type Seq = i64;

/// A user as the server shows it; `online` is live presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub avatar: Option<String>,
    #[serde(default)]
    pub online: bool,
    /// Epoch milliseconds.
    pub created_at: i64,
}

/// A fresh log-in: the token is shown only here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub token: String,
    pub user: User,
    /// Epoch milliseconds.
    pub expires_at: i64,
}

/// A community (group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Community {
    pub id: CommunityId,
    pub name: String,
    /// `None` once the owner deleted their account.
    pub owner_id: Option<UserId>,
    pub icon: Option<String>,
    pub description: Option<String>,
    pub member_count: u64,
    pub created_at: i64,
}

/// A stored upload; `url` is what an `image` message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: String,
    pub url: String,
    pub content_type: String,
    pub size: u64,
}

/// One participant's read cursor in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadCursor {
    pub user: UserId,
    pub seq: Seq,
}

/// A new account.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Registration {
    pub name: String,
    pub password: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// A change to one's own profile. `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProfileUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar: Option<Option<String>>,
    /// A new password; needs `current_password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_password: Option<String>,
}

/// A new community.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewCommunity {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Which page of a conversation's history to fetch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Page {
    /// The newest messages.
    #[default]
    Latest,
    /// The page just before this seq (paging back).
    Before(Seq),
    /// The page just after this seq (catching up).
    After(Seq),
}

/// A conversation: private between two users, a community's, or a user's system inbox.
/// Written `p:{low}:{high}`, `g:{community}`, `s:{user}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConversationId {
    Private(UserId, UserId),
    Group(CommunityId),
    System(UserId),
}

impl ConversationId {
    /// The private conversation of two users, whichever order they are given in.
    pub fn private(a: UserId, b: UserId) -> Self {
        Self::Private(a.min(b), a.max(b))
    }

    /// For a private conversation seen by `me`: the other person.
    pub fn peer(&self, me: UserId) -> Option<UserId> {
        match *self {
            Self::Private(a, b) if a == me => Some(b),
            Self::Private(a, b) if b == me => Some(a),
            _ => None,
        }
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Private(a, b) => write!(f, "p:{a}:{b}"),
            Self::Group(c) => write!(f, "g:{c}"),
            Self::System(u) => write!(f, "s:{u}"),
        }
    }
}

impl FromStr for ConversationId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("not a conversation id: {s:?}");
        let num = |p: &str| p.parse::<i64>().map_err(|_| bad());
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["p", a, b] => Ok(Self::private(num(a)?, num(b)?)),
            ["g", c] => Ok(Self::Group(num(c)?)),
            ["s", u] => Ok(Self::System(num(u)?)),
            _ => Err(bad()),
        }
    }
}

impl Serialize for ConversationId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConversationId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What a message carries: free text for `text`/`emoji`, an `/uploads/...` URL otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Media {
    #[default]
    Text,
    Emoji,
    Image,
    Audio,
    File,
}

/// Private or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Private,
    Group,
}

/// A stored message, as delivered live (`message`/`system` frames) or read from history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub msg_id: String,
    pub conversation: ConversationId,
    pub seq: Seq,
    /// The sender; `None` for a system message.
    #[serde(default)]
    pub from: Option<UserId>,
    /// The recipient user (private) or community (group); `None` for a system message.
    #[serde(default)]
    pub to: Option<i64>,
    #[serde(default)]
    pub kind: Option<MessageKind>,
    #[serde(default)]
    pub media: Media,
    pub content: String,
    /// Epoch milliseconds.
    pub ts: i64,
}

/// Frames the client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    /// A message to one user; `id` makes a retried send idempotent.
    Private {
        id: String,
        to: UserId,
        media: Media,
        content: String,
    },
    /// A message to a community the sender is in.
    Group {
        id: String,
        to: CommunityId,
        media: Media,
        content: String,
    },
    Heartbeat,
    /// Everything up to `seq` in `conversation` has been read.
    Read {
        conversation: ConversationId,
        seq: Seq,
    },
    /// Typing to a user (`to`) or in a community.
    Typing {
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<UserId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        community: Option<CommunityId>,
    },
    /// Send what came after these seqs.
    Sync {
        after: HashMap<ConversationId, Seq>,
    },
}

impl ClientFrame {
    /// The client id of a send, if this is one.
    pub fn send_id(&self) -> Option<&str> {
        match self {
            Self::Private { id, .. } | Self::Group { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame {
    /// A send is stored: its server id and place.
    Ack {
        id: Option<String>,
        msg_id: String,
        conversation: ConversationId,
        seq: Seq,
        ts: i64,
    },
    /// A message from someone (or from another device of one's own).
    Message(ChatMessage),
    /// A notice from the operators (the `s:{user}` conversation).
    System(ChatMessage),
    /// A contact came online or went offline.
    Presence {
        user: UserId,
        online: bool,
    },
    /// A participant's read cursor moved.
    Read {
        conversation: ConversationId,
        user: UserId,
        seq: Seq,
    },
    /// Someone is typing in a conversation.
    Typing {
        from: UserId,
        conversation: ConversationId,
    },
    /// `user` became (or stopped being) a contact.
    Contact {
        user: UserId,
        added: bool,
    },
    /// `user` joined or left a community one is in.
    Member {
        community: CommunityId,
        user: UserId,
        joined: bool,
    },
    /// A frame was refused; nothing changed.
    Error {
        id: Option<String>,
        code: String,
        message: String,
    },
    Heartbeat,
    /// A frame type this client does not know (a newer server); ignored.
    #[serde(other)]
    Unknown,
}
