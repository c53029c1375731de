//! What one packet carries: a [`Notice`] for every node's connections, or the cluster's own
//! control traffic. On the wire both are a JSON object tagged by `e`, as they always were.

use serde::{Deserialize, Serialize};

use crate::notice::Notice;

/// The body of one packet.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Event {
    /// Numbered, kept for re-sending and gap-tracked; peers hand it to their fan-out.
    Notice(Notice),
    /// Unnumbered: the cluster talking about itself.
    Control(Control),
}

/// The cluster's own packets: liveness, repair and departure. They carry a control number
/// (replay-checked) instead of a packet number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum Control {
    /// The origin is alive and has sent packets up to `last`.
    Heartbeat { last: u64 },
    /// Unicast: please send your packets `from..=to` again.
    Resend { from: u64, to: u64 },
    /// Unicast: packets `from..=to` are no longer kept; recover from storage.
    Gone { from: u64, to: u64 },
    /// The origin is shutting down; it sent packets up to `last`, and storage holds everything
    /// it acked. Peers drop its presence and catch up from storage.
    Leave { last: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConversationId, Seq, UserId};

    #[test]
    fn the_wire_shape_is_one_object_tagged_by_e() {
        let read = Event::Notice(Notice::Read {
            conversation: ConversationId::private(UserId(3), UserId(42)),
            user: UserId(3),
            seq: Seq(17),
        });
        let text = serde_json::to_string(&read).unwrap();
        assert_eq!(
            text,
            r#"{"e":"read","conversation":"p:3:42","user":3,"seq":17}"#
        );
        let heartbeat = serde_json::to_string(&Event::Control(Control::Heartbeat { last: 9 }));
        assert_eq!(heartbeat.unwrap(), r#"{"e":"heartbeat","last":9}"#);
        for text in [
            r#"{"e":"heartbeat","last":9}"#,
            r#"{"e":"leave","last":2}"#,
            r#"{"e":"resend","from":1,"to":4}"#,
        ] {
            let event: Event = serde_json::from_str(text).unwrap();
            assert!(matches!(event, Event::Control(_)), "{text}");
        }
        let typing: Event =
            serde_json::from_str(r#"{"e":"typing","from":3,"conversation":"g:7"}"#).unwrap();
        assert!(matches!(
            typing,
            Event::Notice(Notice::Typing { stop: false, .. })
        ));
        assert!(serde_json::from_str::<Event>(r#"{"e":"shout"}"#).is_err());
    }
}
