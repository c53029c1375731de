//! The websocket protocol: what clients send and what the server sends back, as serde enums
//! tagged by `type`. Unknown fields are ignored; an unknown `type` is a parse error that the
//! connection answers with an `error` frame.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::de::value::MapDeserializer;
use serde::{Deserialize, Serialize};

use crate::ids::{CommunityId, ConversationId, Seq, UserId};
use crate::media::Media;
use crate::store::StoredMessage;

/// Frames a client sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ClientFrame {
    /// A message to one user.
    Private {
        id: Option<String>,
        to: UserId,
        #[serde(default = "text")]
        media: Media,
        content: String,
    },
    /// A message to a community the sender is in.
    Group {
        id: Option<String>,
        to: CommunityId,
        #[serde(default = "text")]
        media: Media,
        content: String,
    },
    Heartbeat,
    /// Everything up to `seq` in `conversation` has been read.
    Read {
        conversation: ConversationId,
        seq: Seq,
    },
    /// The sender is typing to a user (`to`) or in a community; `stop` when the draft was
    /// cleared, so others stop showing "typing…" at once.
    Typing {
        to: Option<UserId>,
        community: Option<CommunityId>,
        #[serde(default)]
        stop: bool,
    },
    /// Send what came after these seqs.
    Sync {
        #[serde(default)]
        after: HashMap<ConversationId, Seq>,
    },
}

fn text() -> Media {
    Media::Text
}

impl ClientFrame {
    /// Every `type` a client may send, as this enum's own serde names: the parser tells an
    /// unknown type from a malformed frame by this list, and it cannot drift from the enum.
    pub fn types() -> &'static [&'static str] {
        static TYPES: OnceLock<&'static [&'static str]> = OnceLock::new();
        TYPES.get_or_init(|| {
            // Ask serde for a type that does not exist: the error it builds names them all.
            let probe = MapDeserializer::<_, VariantNames>::new(std::iter::once(("type", "")));
            match ClientFrame::deserialize(probe) {
                Err(VariantNames(Some(names))) => names,
                _ => &[],
            }
        })
    }
}

/// Catches the variant names serde lists when it refuses an unknown one.
#[derive(Debug)]
struct VariantNames(Option<&'static [&'static str]>);

impl std::fmt::Display for VariantNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "variants: {:?}", self.0)
    }
}

impl std::error::Error for VariantNames {}

impl serde::de::Error for VariantNames {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Self(None)
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        Self(Some(expected))
    }
}

/// Private or group, as the `kind` of a delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Private,
    Group,
}

/// Frames the server sends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerFrame {
    /// The sender's message is stored: here is its server id and place.
    Ack {
        id: Option<String>,
        msg_id: String,
        conversation: ConversationId,
        seq: Seq,
        ts: i64,
    },
    Message {
        msg_id: String,
        conversation: ConversationId,
        seq: Seq,
        from: UserId,
        /// The recipient user for a private message, the community for a group message.
        to: i64,
        kind: MessageKind,
        media: Media,
        content: String,
        ts: i64,
    },
    Presence {
        user: UserId,
        online: bool,
    },
    /// A notice from the operators, stored in the user's `s:{user}` conversation.
    System {
        msg_id: String,
        conversation: ConversationId,
        seq: Seq,
        content: String,
        ts: i64,
    },
    Read {
        conversation: ConversationId,
        user: UserId,
        seq: Seq,
    },
    Typing {
        from: UserId,
        conversation: ConversationId,
        /// The draft was cleared: stop showing "typing…" now (omitted when false).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        stop: bool,
    },
    /// `user` changed their name or avatar: sent to everyone who shows them (contacts, members
    /// of shared groups, their own devices), on every node.
    Profile {
        user: UserId,
        name: String,
        avatar: Option<String>,
    },
    /// `user` became (or stopped being) your contact: someone added or removed you, or you did
    /// on another device.
    Contact {
        user: UserId,
        added: bool,
    },
    /// `user` joined (or left) a community you are in.
    Member {
        community: CommunityId,
        user: UserId,
        joined: bool,
    },
    Error {
        id: Option<String>,
        code: &'static str,
        message: String,
    },
    Heartbeat,
}

impl ServerFrame {
    /// The frame that delivers a stored message: `system` for the system inbox, else `message`.
    pub fn stored(m: &StoredMessage) -> Self {
        match (m.conversation, m.sender) {
            (ConversationId::System(_), _) | (_, None) => Self::System {
                msg_id: m.id.clone(),
                conversation: m.conversation,
                seq: m.seq,
                content: m.content.clone(),
                ts: m.created_at,
            },
            (conversation, Some(from)) => {
                let (kind, to) = match conversation {
                    ConversationId::Private(a, b) => {
                        (MessageKind::Private, if a == from { b.0 } else { a.0 })
                    }
                    ConversationId::Group(c) => (MessageKind::Group, c.0),
                    ConversationId::System(u) => (MessageKind::Private, u.0),
                };
                Self::Message {
                    msg_id: m.id.clone(),
                    conversation,
                    seq: m.seq,
                    from,
                    to,
                    kind,
                    media: m.media,
                    content: m.content.clone(),
                    ts: m.created_at,
                }
            }
        }
    }

    /// The JSON text sent on the socket.
    pub fn to_text(&self) -> String {
        // Serializing these plain enums cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_as_designed() {
        let f: ClientFrame = serde_json::from_str(
            r#"{"type":"private","id":"c-1","to":42,"media":"text","content":"hi","extra":1}"#,
        )
        .unwrap();
        assert!(matches!(f, ClientFrame::Private { to: UserId(42), .. }));
        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"sync","after":{"p:3:42":17,"g:7":5}}"#).unwrap();
        let ClientFrame::Sync { after } = f else {
            panic!("not sync")
        };
        assert_eq!(after.get(&"g:7".parse().unwrap()), Some(&Seq(5)));
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"shout"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(
            r#"{"type":"read","conversation":"p:9:1","seq":1}"#
        )
        .is_err());
    }

    #[test]
    fn client_frame_types_come_from_the_enum() {
        assert_eq!(
            ClientFrame::types(),
            ["private", "group", "heartbeat", "read", "typing", "sync"]
        );
    }

    #[test]
    fn server_frames_serialize_as_designed() {
        let ack = ServerFrame::Ack {
            id: Some("c-1".into()),
            msg_id: "m".into(),
            conversation: ConversationId::private(UserId(42), UserId(3)),
            seq: Seq(18),
            ts: 5,
        };
        assert_eq!(
            ack.to_text(),
            r#"{"type":"ack","id":"c-1","msg_id":"m","conversation":"p:3:42","seq":18,"ts":5}"#
        );
        assert_eq!(ServerFrame::Heartbeat.to_text(), r#"{"type":"heartbeat"}"#);
    }
}
