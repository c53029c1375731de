//! `dispatch`: what each client frame does, whichever transport it came by (the websocket's JSON
//! frames, the line endpoint's commands, both as a [`ClientFrame`]). Sends go to the group-commit
//! writer ([`crate::commit`]); reads, typing and sync are answered here.
//!
//! The sender of anything is always the connection's user, never a field from the client.

use std::sync::Arc;

use serde_json::Value;

use crate::app::App;
use crate::commit::{Origin, SendError, Submission, Target};
use crate::fanout::{participants, participates, Notice, Scope};
use crate::frame::{ClientFrame, ServerFrame};
use crate::hub::{Conn, Outgoing};
use crate::ids::{ConversationId, Seq, UserId};
use crate::media::Media;
use crate::store::StoreError;

/// Longest client `id`, in bytes (it is stored to make sends idempotent).
pub const MAX_CLIENT_ID_BYTES: usize = 64;

/// Why a frame was refused. Each becomes an `error` frame with a stable code; the connection
/// stays open and nothing else changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not JSON: {0}")]
    Malformed(String),
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    #[error("{0}")]
    Invalid(String),
    #[error("content is over the {0}-byte limit")]
    TooLarge(usize),
    #[error("binary frames are not part of the protocol")]
    Binary,
    #[error("you cannot message yourself")]
    SelfMessage,
    #[error("you are not in conversation {0}")]
    NotAParticipant(ConversationId),
    #[error("slow down: over the per-connection rate")]
    RateLimited,
    #[error(transparent)]
    Send(#[from] SendError),
    #[error("internal error")]
    Internal,
}

impl FrameError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_frame",
            Self::UnknownType(_) => "unknown_type",
            Self::Invalid(_) => "invalid_frame",
            Self::TooLarge(_) => "too_large",
            Self::Binary => "unsupported_frame",
            Self::SelfMessage => "invalid_recipient",
            Self::NotAParticipant(_) => "not_a_participant",
            Self::RateLimited => "rate_limited",
            Self::Send(e) => e.code(),
            Self::Internal => "internal",
        }
    }

    /// The `error` frame, echoing the client's `id` when it had one.
    pub fn to_outgoing(&self, id: Option<String>) -> Outgoing {
        ServerFrame::Error {
            id,
            code: self.code(),
            message: self.to_string(),
        }
        .into()
    }
}

impl From<StoreError> for FrameError {
    fn from(err: StoreError) -> Self {
        tracing::error!(%err, "storage error in dispatch");
        Self::Internal
    }
}

/// Parses a text frame, telling not-JSON, unknown type and wrong shape apart. On error, the
/// client's `id` (if it could be read) comes back for the error frame.
pub fn parse(text: &str) -> Result<ClientFrame, (FrameError, Option<String>)> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| (FrameError::Malformed(e.to_string()), None))?;
    let id = value.get("id").and_then(Value::as_str).map(str::to_owned);
    let kind = value.get("type").and_then(Value::as_str);
    match kind {
        None => Err((FrameError::Invalid("missing \"type\"".into()), id)),
        Some(t) if !ClientFrame::types().contains(&t) => {
            Err((FrameError::UnknownType(t.to_owned()), id))
        }
        Some(_) => {
            serde_json::from_value(value).map_err(|e| (FrameError::Invalid(e.to_string()), id))
        }
    }
}

/// Handles one frame from `conn`. Errors go back to that connection only.
pub async fn dispatch(app: &Arc<App>, conn: &Arc<Conn>, frame: ClientFrame) {
    let id = match &frame {
        ClientFrame::Private { id, .. } | ClientFrame::Group { id, .. } => id.clone(),
        _ => None,
    };
    if let Err(err) = apply(app, conn, frame).await {
        conn.push(err.to_outgoing(id));
    }
}

/// Handles one frame from `conn` and says whether it was refused (for a transport that answers
/// in its own form). A send's ack, or the writer's refusal, still comes later on the queue.
pub async fn apply(app: &Arc<App>, conn: &Arc<Conn>, frame: ClientFrame) -> Result<(), FrameError> {
    match frame {
        ClientFrame::Private {
            id,
            to,
            media,
            content,
        } => {
            if to == conn.user {
                return Err(FrameError::SelfMessage);
            }
            send(app, conn, id, Target::User(to), media, content).await
        }
        ClientFrame::Group {
            id,
            to,
            media,
            content,
        } => send(app, conn, id, Target::Community(to), media, content).await,
        ClientFrame::Heartbeat => {
            conn.push(ServerFrame::Heartbeat.into());
            Ok(())
        }
        ClientFrame::Read { conversation, seq } => read(app, conn, conversation, seq).await,
        ClientFrame::Typing {
            to,
            community,
            stop,
        } => {
            let conversation = match (to, community) {
                (Some(to), None) if to != conn.user => ConversationId::private(conn.user, to),
                (None, Some(c)) => ConversationId::Group(c),
                _ => {
                    return Err(FrameError::Invalid(
                        "typing needs one of \"to\" (another user) or \"community\"".into(),
                    ))
                }
            };
            let audience = audience(app, conn.user, conversation).await?;
            let typing = Notice::Typing {
                from: conn.user,
                conversation,
                stop,
            };
            let scope = Scope {
                except: None,
                participants: Some(audience),
            };
            app.fanout.announce(typing, scope).await;
            Ok(())
        }
        ClientFrame::Sync { after } => {
            for (conversation, seq) in after {
                if seq.0 < 0 {
                    conn.push(
                        FrameError::Invalid(format!("after for {conversation} must be 0 or more"))
                            .to_outgoing(None),
                    );
                    continue;
                }
                if !participates(&app.store, conn.user, conversation).await? {
                    conn.push(FrameError::NotAParticipant(conversation).to_outgoing(None));
                    continue;
                }
                conn.push(Outgoing::Sync {
                    conversation,
                    after: seq,
                });
            }
            Ok(())
        }
    }
}

/// Validates a send and hands it to the writer; the ack or error comes from there.
async fn send(
    app: &Arc<App>,
    conn: &Arc<Conn>,
    id: Option<String>,
    target: Target,
    media: Media,
    content: String,
) -> Result<(), FrameError> {
    let limit = app.settings.chat.max_content_bytes;
    if id
        .as_ref()
        .is_some_and(|id| id.is_empty() || id.len() > MAX_CLIENT_ID_BYTES)
    {
        return Err(FrameError::Invalid(format!(
            "id must be 1-{MAX_CLIENT_ID_BYTES} bytes"
        )));
    }
    if content.trim().is_empty() {
        return Err(FrameError::Invalid("content is empty".into()));
    }
    if content.len() > limit {
        return Err(FrameError::TooLarge(limit));
    }
    crate::commit::storable(id.as_deref(), &content)?;
    if !matches!(media, Media::Text | Media::Emoji) {
        // Media other than text must be one of our own uploads, never a foreign URL.
        let ours = match content.strip_prefix("/uploads/") {
            Some(file) => app.uploads.exists(file).await,
            None => false,
        };
        if !ours {
            return Err(FrameError::Invalid(format!(
                "{} content must be an /uploads/ URL from POST /api/attachments",
                media.as_str()
            )));
        }
    }
    // Until its ack, this connection must not get its own message as a copy: a send with an
    // id waits under that id, one without under the message id it is given here.
    let message_id = id.is_none().then(crate::ids::new_message_id);
    let settle = id.clone().or(message_id.clone());
    if let Some(key) = &settle {
        conn.expect_ack(key);
    }
    let submitted = app
        .committer
        .submit(Submission {
            origin: Origin::Conn(conn.clone()),
            sender: Some(conn.user),
            client_id: id,
            target,
            media,
            content,
            message_id,
        })
        .await;
    if submitted.is_err() {
        if let Some(id) = &settle {
            conn.settle(id);
        }
    }
    Ok(submitted?)
}

/// Moves the reader's cursor and tells the other participants (and the reader's other devices).
async fn read(
    app: &Arc<App>,
    conn: &Arc<Conn>,
    conversation: ConversationId,
    seq: Seq,
) -> Result<(), FrameError> {
    let audience = audience(app, conn.user, conversation).await?;
    let last = app.store.last_seq(conversation).await?;
    let seq = seq.min(last);
    if seq.0 <= 0
        || !app
            .store
            .advance_read_cursor(conn.user, conversation, seq)
            .await?
    {
        return Ok(());
    }
    let read = Notice::Read {
        conversation,
        user: conn.user,
        seq,
    };
    let scope = Scope {
        except: Some(conn.id),
        participants: Some(audience),
    };
    app.fanout.announce(read, scope).await;
    Ok(())
}

/// Everyone in `conversation`, if `user` is one of them.
async fn audience(
    app: &App,
    user: UserId,
    conversation: ConversationId,
) -> Result<Vec<UserId>, FrameError> {
    let people = participants(&app.store, conversation).await?;
    if people.contains(&user) {
        Ok(people)
    } else {
        Err(FrameError::NotAParticipant(conversation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_have_distinct_codes() {
        assert_eq!(parse("hello").unwrap_err().0.code(), "malformed_frame");
        assert_eq!(
            parse(r#"{"type":"shout","id":"x"}"#).unwrap_err(),
            (FrameError::UnknownType("shout".into()), Some("x".into()))
        );
        assert_eq!(
            parse(r#"{"type":"private","id":"c-9"}"#)
                .unwrap_err()
                .0
                .code(),
            "invalid_frame"
        );
        assert!(parse(r#"{"type":"heartbeat"}"#).is_ok());
    }
}
