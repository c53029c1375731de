//! The caller's log-in sessions (`GET /api/sessions`) and revoking one of them
//! (`DELETE /api/sessions/{id}`): a token kept by "Keep me signed in" can be ended from any
//! other device. Logging out the presented token stays `DELETE /api/sessions`.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::error::ApiError;
use super::{authed, json, no_content, with_app, ApiResult, Caller};
use crate::app::App;
use crate::fanout::{Notice, Scope};

pub(super) fn routes(app: &Arc<App>) -> BoxedFilter<(Response,)> {
    let list = warp::path!("api" / "sessions")
        .and(warp::get())
        .and(with_app(app))
        .and(authed(app))
        .then(list);
    let revoke = warp::path!("api" / "sessions" / i64)
        .and(warp::delete())
        .and(with_app(app))
        .and(authed(app))
        .then(revoke);
    list.or(revoke)
        .unify()
        .map(|r: ApiResult| warp::Reply::into_response(r))
        .boxed()
}

/// One live session; the token itself is never shown again.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: i64,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds.
    pub expires_at: i64,
    /// The session whose token made this request.
    pub current: bool,
}

#[utoipa::path(get, path = "/api/sessions", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, description = "The caller's live sessions, newest first", body = [SessionView]),
              (status = 401, body = crate::http::error::ErrorBody)))]
async fn list(app: Arc<App>, caller: Caller) -> ApiResult {
    let sessions: Vec<SessionView> = app
        .store
        .sessions_of(caller.user)
        .await?
        .into_iter()
        .map(|s| SessionView {
            id: s.id,
            created_at: s.created_at,
            expires_at: s.expires_at,
            current: s.token_hash == caller.token_hash,
        })
        .collect();
    Ok(json(StatusCode::OK, &sessions))
}

#[utoipa::path(delete, path = "/api/sessions/{id}", tag = "accounts", security(("bearer" = [])),
    params(("id" = i64, Path, description = "a session id from GET /api/sessions")),
    responses((status = 204, description = "Revoked: its connections close on every node"),
              (status = 404, body = crate::http::error::ErrorBody)))]
async fn revoke(id: i64, app: Arc<App>, caller: Caller) -> ApiResult {
    // Only the caller's own sessions: another user's id reads as not found.
    let token_hash = app
        .store
        .revoke_session(caller.user, id)
        .await?
        .ok_or(ApiError::NotFound("session"))?;
    // Its connections close here and on every node.
    let revoked = Notice::SessionRevoked { token_hash };
    app.fanout.announce(revoked, Scope::default()).await;
    Ok(no_content())
}
