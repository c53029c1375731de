//! One error type for every call, so a UI can show the server's own `code` and `message`.

use std::time::Duration;

/// What went wrong with a call to Chorus.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with its `{"error":{"code","message"}}` body (REST, or a refused
    /// websocket upgrade).
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's stable snake_case code, e.g. `invalid_credentials`.
        code: String,
        /// The server's human text.
        message: String,
    },
    /// The server refused a websocket frame with an `error` frame.
    #[error("{message} ({code})")]
    Rejected {
        /// The client id of the refused send, when it had one.
        id: Option<String>,
        /// The server's stable code, e.g. `not_a_member`.
        code: String,
        /// The server's human text.
        message: String,
    },
    /// The server could not be reached, or the HTTP exchange broke.
    #[error("cannot reach the server: {0}")]
    Http(#[from] reqwest::Error),
    /// The websocket broke (boxed: the websocket error is large).
    #[error("websocket: {0}")]
    Ws(Box<tokio_tungstenite::tungstenite::Error>),
    /// The websocket was closed by the server (with its close code when it sent one).
    #[error("the server closed the connection (code {0:?})")]
    Closed(Option<u16>),
    /// The server URL given is not usable.
    #[error("bad server URL {0:?}: {1}")]
    BadUrl(String, String),
    /// The server sent something this client cannot read.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
    /// The call needs a session and the client has none.
    #[error("not logged in")]
    NoSession,
    /// Nothing came within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        Self::Ws(Box::new(e))
    }
}

impl ClientError {
    /// The server's error code, when the server gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } | Self::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True when the session is no longer valid (log in again), as opposed to a passing failure.
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Api { status: 401, .. } | Self::NoSession)
            || matches!(self, Self::Closed(Some(4401)))
    }
}

/// Result of every client call.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
