//! `POST /api/system-messages`: operators send a notice to a user. It is stored in the user's
//! `s:{user}` conversation and delivered like any message, offline too.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::error::ApiError;
use super::{json, json_body, with_app, ApiResult};
use crate::app::App;
use crate::commit::{Origin, SendError, Submission, Target};
use crate::ids::{ConversationId, Seq, UserId};
use crate::media::Media;

pub(super) fn routes(app: &Arc<App>) -> BoxedFilter<(Response,)> {
    warp::path!("api" / "system-messages")
        .and(warp::post())
        .and(with_app(app))
        .and(warp::header::optional::<String>("authorization"))
        .and(json_body())
        .then(send)
        .map(|r: ApiResult| warp::Reply::into_response(r))
        .boxed()
}

/// A notice to one user.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SystemMessage {
    pub user_id: i64,
    pub content: String,
}

/// Where the notice was stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemMessageStored {
    pub msg_id: String,
    #[schema(value_type = String)]
    pub conversation: ConversationId,
    #[schema(value_type = i64)]
    pub seq: Seq,
    pub ts: i64,
}

/// Checks the admin token; equal-length digests keep the comparison free of length leaks.
fn is_admin(app: &App, header: Option<&str>) -> Result<(), ApiError> {
    let configured = app.settings.admin.token.expose();
    if configured.is_empty() {
        return Err(ApiError::NotFound("route"));
    }
    let given = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    if Sha256::digest(given.trim().as_bytes()) == Sha256::digest(configured.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("admin token required"))
    }
}

#[utoipa::path(post, path = "/api/system-messages", tag = "messages",
    security(("bearer" = [])), request_body = SystemMessage,
    responses((status = 201, body = SystemMessageStored), (status = 401, body = crate::http::error::ErrorBody),
              (status = 403, body = crate::http::error::ErrorBody), (status = 404, body = crate::http::error::ErrorBody),
              (status = 422, body = crate::http::error::ErrorBody)))]
async fn send(app: Arc<App>, authorization: Option<String>, req: SystemMessage) -> ApiResult {
    is_admin(&app, authorization.as_deref())?;
    let limit = app.settings.chat.max_content_bytes;
    if req.content.trim().is_empty() || req.content.len() > limit {
        return Err(ApiError::Invalid(format!(
            "content must be 1-{limit} bytes"
        )));
    }
    let (tx, rx) = oneshot::channel();
    app.committer
        .submit(Submission {
            origin: Origin::Caller(tx),
            sender: None,
            client_id: None,
            target: Target::System(UserId(req.user_id)),
            media: Media::Text,
            content: req.content,
            message_id: None,
        })
        .await
        .map_err(ApiError::from)?;
    let stored = rx
        .await
        .map_err(|_| ApiError::from(SendError::Unavailable))??;
    Ok(json(
        StatusCode::CREATED,
        &SystemMessageStored {
            msg_id: stored.id,
            conversation: stored.conversation,
            seq: stored.seq,
            ts: stored.created_at,
        },
    ))
}
