//! The caller's conversations (`GET /api/conversations`), history
//! (`GET /api/conversations/{conversation}/messages`, paged by seq) and read positions
//! (`GET /api/conversations/{conversation}/reads`), for participants only.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::error::ApiError;
use super::{authed, json, with_app, ApiResult, Caller};
use crate::app::App;
use crate::fanout::participates;
use crate::frame::ServerFrame;
use crate::ids::{ConversationId, Seq};

/// Page size when none is asked for, and the most one page may hold.
const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 200;

pub(super) fn routes(app: &Arc<App>) -> BoxedFilter<(Response,)> {
    let history = warp::path!("api" / "conversations" / String / "messages")
        .and(warp::get())
        .and(with_app(app))
        .and(authed(app))
        .and(warp::query::<HistoryQuery>())
        .then(history);
    let reads = warp::path!("api" / "conversations" / String / "reads")
        .and(warp::get())
        .and(with_app(app))
        .and(authed(app))
        .then(reads);
    let list = warp::path!("api" / "conversations")
        .and(warp::get())
        .and(with_app(app))
        .and(authed(app))
        .then(list);
    list.or(history)
        .unify()
        .or(reads)
        .unify()
        .map(|r: ApiResult| warp::Reply::into_response(r))
        .boxed()
}

/// How far one participant has read.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadPosition {
    pub user: i64,
    pub seq: i64,
}

/// One conversation of the caller's, with how far it goes and how far they read it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationSummary {
    /// `p:{low}:{high}`, `g:{community}` or `s:{user}`.
    pub conversation: String,
    /// The latest message's seq (0: none yet).
    pub last_seq: i64,
    /// The caller's read cursor.
    pub read_seq: i64,
}

#[utoipa::path(get, path = "/api/conversations", tag = "messages", security(("bearer" = [])),
    responses((status = 200,
        description = "Every conversation the caller takes part in: private ones (with friends or not), their groups and their system inbox; a page lists them all, requests from strangers included, without a request per contact",
        body = [ConversationSummary])))]
async fn list(app: Arc<App>, caller: Caller) -> ApiResult {
    let communities = app.store.community_ids_of(caller.user).await?;
    let reads = app.store.read_cursors(caller.user).await?;
    let mut out: Vec<ConversationSummary> = app
        .store
        .conversations_of(caller.user, &communities)
        .await?
        .into_iter()
        .map(|(conversation, last)| ConversationSummary {
            conversation: conversation.to_string(),
            last_seq: last.0,
            read_seq: reads.get(&conversation).map_or(0, |s| s.0),
        })
        .collect();
    out.sort_by(|a, b| a.conversation.cmp(&b.conversation));
    Ok(json(StatusCode::OK, &out))
}

/// The conversation, if `caller` takes part in it.
async fn conversation_of(
    app: &App,
    caller: &Caller,
    conversation: &str,
) -> Result<ConversationId, ApiError> {
    let conversation: ConversationId = conversation
        .parse()
        .map_err(|_| ApiError::NotFound("conversation"))?;
    if !participates(&app.store, caller.user, conversation).await? {
        return Err(ApiError::Forbidden("you are not in this conversation"));
    }
    Ok(conversation)
}

#[utoipa::path(get, path = "/api/conversations/{conversation}/reads", tag = "messages",
    security(("bearer" = [])),
    params(("conversation" = String, Path, description = "`p:{low}:{high}`, `g:{community}` or `s:{user}`")),
    responses(
        (status = 200, description = "Each participant's read cursor (the `read` frames, for a page that just loaded)", body = [ReadPosition]),
        (status = 403, body = crate::http::error::ErrorBody),
        (status = 404, body = crate::http::error::ErrorBody)))]
async fn reads(conversation: String, app: Arc<App>, caller: Caller) -> ApiResult {
    let conversation = conversation_of(&app, &caller, &conversation).await?;
    let positions: Vec<ReadPosition> = app
        .store
        .read_cursors_in(conversation)
        .await?
        .into_iter()
        .map(|(user, seq)| ReadPosition {
            user: user.0,
            seq: seq.0,
        })
        .collect();
    Ok(json(StatusCode::OK, &positions))
}

/// Paging: `after` gives the page just after a seq (reading forward), `before` the page just
/// before one (scrolling back); neither gives the latest page.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    /// Only messages with a smaller seq.
    pub before: Option<i64>,
    /// Only messages with a larger seq.
    pub after: Option<i64>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<u64>,
}

#[utoipa::path(get, path = "/api/conversations/{conversation}/messages", tag = "messages",
    security(("bearer" = [])),
    params(("conversation" = String, Path, description = "`p:{low}:{high}`, `g:{community}` or `s:{user}`"), HistoryQuery),
    responses(
        (status = 200, description = "Messages oldest first, each shaped like the websocket `message` (or `system`) frame", body = Vec<serde_json::Value>),
        (status = 403, body = crate::http::error::ErrorBody),
        (status = 404, body = crate::http::error::ErrorBody),
        (status = 422, body = crate::http::error::ErrorBody)))]
async fn history(
    conversation: String,
    app: Arc<App>,
    caller: Caller,
    query: HistoryQuery,
) -> ApiResult {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::Invalid(format!("limit must be 1-{MAX_LIMIT}")));
    }
    let conversation = conversation_of(&app, &caller, &conversation).await?;
    let before = Seq(query.before.unwrap_or(i64::MAX));
    let messages = match query.after {
        Some(after) => app
            .store
            .messages_after(conversation, Seq(after), limit)
            .await?
            .into_iter()
            .filter(|m| m.seq < before)
            .collect(),
        None => {
            app.store
                .messages_before(conversation, before, limit)
                .await?
        }
    };
    let frames: Vec<ServerFrame> = messages.iter().map(ServerFrame::stored).collect();
    Ok(json(StatusCode::OK, &frames))
}
