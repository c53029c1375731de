//! Who is calling: a bearer token looked up to its live session, and the log-in that opens one.
//! The REST API, the websocket upgrade and the line endpoint all start here, and each turns a
//! refusal into its own answer.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::app::App;
use crate::auth::{new_token, token_hash, verify_password};
use crate::ids::UserId;
use crate::store::{now_ms, Store, StoreError, User};

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

/// Why a log-in opened no session. Each transport answers in its own form with these codes.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Too many failed log-ins for this name or address: try again in this many seconds.
    #[error("too many failed log-ins; try again in {0} s")]
    Throttled(u64),
    /// Every password-hashing turn is taken and the queue for them is full.
    #[error("password checks are busy; try again shortly")]
    Busy,
    #[error("wrong name or password")]
    InvalidCredentials,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LoginError {
    /// The stable error code (the same as `POST /api/sessions` answers with).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Throttled(_) => "too_many_attempts",
            Self::Busy => "busy",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Store(_) => "internal",
        }
    }
}

/// A new session: the token (shown once), and who it is for.
pub struct LoggedIn {
    pub token: String,
    pub user: User,
    pub caller: Caller,
}

/// Checks a name and password and opens a session of `ttl`: the one log-in of every transport
/// (`POST /api/sessions`, the line endpoint's `LOGIN`), so the throttle, the hashing gate and
/// revocation hold for all of them. `address` is the client's, for the throttle.
pub async fn log_in(
    app: &App,
    name: &str,
    password: String,
    address: Option<IpAddr>,
    ttl: Duration,
) -> Result<LoggedIn, LoginError> {
    if let Some(wait) = app.login_throttle.check(name, address) {
        app.metrics
            .login_refused
            .with_label_values(&["throttled"])
            .inc();
        return Err(LoginError::Throttled(wait));
    }
    let turn = app.hash_gate.enter().await.map_err(|_| {
        app.metrics.login_refused.with_label_values(&["busy"]).inc();
        LoginError::Busy
    })?;
    let user = app.store.user_by_name(name).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    if !verify_password(turn, password, stored).await {
        app.login_throttle.failed(name, address);
        return Err(LoginError::InvalidCredentials);
    }
    let user = user.ok_or(LoginError::InvalidCredentials)?;
    let (token, hash) = new_token();
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    let expires_at = now_ms().saturating_add(ttl_ms);
    app.store
        .create_session(UserId(user.id), hash.clone(), expires_at)
        .await?;
    let caller = Caller {
        user: UserId(user.id),
        token_hash: hash,
        expires_at,
    };
    Ok(LoggedIn {
        token,
        user,
        caller,
    })
}
