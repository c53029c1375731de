//! Domain identifiers as newtypes, so a user id can never be passed where a community id is
//! meant, and a conversation id is always one of the three well-formed shapes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A user's id (`users.id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

/// A community's id (`communities.id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommunityId(pub i64);

/// A message's position in its conversation: starts at 1, no gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub i64);

/// A new message id: a UUIDv7, so ids made later sort later and the messages' primary-key
/// index grows at its end. A random (v4) id lands on a random index page: on a large table
/// every insert then reads, splits and rewrites pages all over the index.
pub fn new_message_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for CommunityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who talks in a conversation. Its text form is the wire id: `p:{low}:{high}` for a private
/// pair (the smaller user id first, so both sides name it alike), `g:{community}` for a group,
/// `s:{user}` for a user's system inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConversationId {
    Private(UserId, UserId),
    Group(CommunityId),
    System(UserId),
}

impl ConversationId {
    /// The private conversation of two users, whichever of them asks.
    pub fn private(a: UserId, b: UserId) -> Self {
        if a <= b {
            Self::Private(a, b)
        } else {
            Self::Private(b, a)
        }
    }

    /// Whether `user` takes part, leaving community membership to the caller.
    pub fn names_user(&self, user: UserId) -> bool {
        match *self {
            Self::Private(a, b) => a == user || b == user,
            Self::System(u) => u == user,
            Self::Group(_) => false,
        }
    }

    /// The short kind stored in `conversations.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Private(..) => "private",
            Self::Group(_) => "group",
            Self::System(_) => "system",
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

/// A conversation id that is not one of the three shapes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a conversation id: {0:?}")]
pub struct BadConversationId(pub String);

impl FromStr for ConversationId {
    type Err = BadConversationId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadConversationId(s.to_owned());
        let num = |part: &str| -> Result<i64, BadConversationId> {
            // Only canonical decimal: "+1" or "01" would name the same row twice.
            if part.is_empty() || part.starts_with(['+', '0']) && part != "0" {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        let mut parts = s.split(':');
        let id = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("p"), Some(a), Some(b), None) => {
                let (a, b) = (UserId(num(a)?), UserId(num(b)?));
                if a >= b {
                    return Err(bad());
                }
                Self::Private(a, b)
            }
            (Some("g"), Some(c), None, None) => Self::Group(CommunityId(num(c)?)),
            (Some("s"), Some(u), None, None) => Self::System(UserId(num(u)?)),
            _ => return Err(bad()),
        };
        Ok(id)
    }
}

impl Serialize for ConversationId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConversationId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ids_are_canonical_whoever_asks() {
        let a = ConversationId::private(UserId(42), UserId(3));
        assert_eq!(a, ConversationId::private(UserId(3), UserId(42)));
        assert_eq!(a.to_string(), "p:3:42");
        assert_eq!("p:3:42".parse::<ConversationId>(), Ok(a));
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "", "p:42:3", "p:3:3", "p:3", "g:", "g:07", "g:+7", "x:1", "g:1:2", "s:a",
        ] {
            assert!(bad.parse::<ConversationId>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            "g:7".parse::<ConversationId>(),
            Ok(ConversationId::Group(CommunityId(7)))
        );
    }
}
