//! Who is calling: a bearer token looked up to its live session. The REST API and the websocket
//! upgrade both start here, and each turns a refusal into its own answer.

use std::fmt;

use crate::auth::token_hash;
use crate::ids::UserId;
use crate::store::{Store, StoreError};

/// The authenticated caller of a request.
#[derive(Clone)]
pub struct Caller {
    pub user: UserId,
    /// The hash of the token presented, to revoke exactly this session.
    pub token_hash: String,
    /// When the session ends (epoch ms): a websocket opened with it closes then.
    pub expires_at: i64,
}

impl fmt::Debug for Caller {
    /// Without the token hash: it names the session, and logs are no place for it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("user", &self.user)
            .field("token_hash", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a token opened no session (a warp rejection too, for filters that guard a route).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("missing, unknown, expired or revoked token")]
    Unauthorized,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl warp::reject::Reject for Refused {}

/// Looks a bearer token up; shared by the REST filter and the websocket upgrade.
pub async fn caller_for_token(store: &Store, token: &str) -> Result<Caller, Refused> {
    let hash = token_hash(token);
    match store.session_user(&hash).await? {
        Some((user, expires_at)) => Ok(Caller {
            user,
            token_hash: hash,
            expires_at,
        }),
        None => Err(Refused::Unauthorized),
    }
}
