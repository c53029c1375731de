//! Image upload (`POST /api/attachments`) and serving (`GET /uploads/{file}`).
//!
//! Served files carry their sniffed type, `nosniff`, and a CSP that runs nothing, so even a
//! polyglot file can only ever be shown as an image from our origin.

use std::pin::pin;
use std::sync::Arc;

use futures_util::TryStreamExt;
use warp::filters::multipart::FormData;
use warp::filters::BoxedFilter;
use warp::http::{header, Response as HttpResponse, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::error::ApiError;
use super::views::AttachmentView;
use super::{authed, json, with_app, ApiResult, Caller};
use crate::app::App;
use crate::store::NewAttachment;

/// Room for multipart boundaries and part headers around the file itself.
const MULTIPART_OVERHEAD: u64 = 16 * 1024;

pub(super) fn routes(app: &Arc<App>) -> BoxedFilter<(Response,)> {
    let upload = warp::path!("api" / "attachments")
        .and(warp::post())
        .and(with_app(app))
        .and(authed(app))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::multipart::form().max_length(None))
        .then(upload);
    let serve = warp::path!("uploads" / String)
        .and(warp::get())
        .and(with_app(app))
        .then(serve);
    upload
        .or(serve)
        .unify()
        .map(|r: ApiResult| r.into_response())
        .boxed()
}

#[utoipa::path(post, path = "/api/attachments", tag = "attachments", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "field `file`: a png, jpeg, gif or webp image"),
    responses((status = 201, body = AttachmentView), (status = 413, body = crate::http::error::ErrorBody),
              (status = 413, description = "over the per-user upload quota (code quota_exceeded)", body = crate::http::error::ErrorBody),
              (status = 415, body = crate::http::error::ErrorBody)))]
async fn upload(
    app: Arc<App>,
    caller: Caller,
    content_length: Option<u64>,
    mut form: FormData,
) -> ApiResult {
    let max = app.uploads.max_bytes();
    // Refuse an announced oversize body before reading any of it.
    if content_length.is_some_and(|n| n > max.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(ApiError::PayloadTooLarge(max));
    }
    let quota = app.settings.uploads.quota_bytes;
    let used = app.store.upload_bytes_of(caller.user).await?;
    if used >= quota
        || content_length
            .is_some_and(|n| used.saturating_add(n) > quota.saturating_add(MULTIPART_OVERHEAD))
    {
        return Err(ApiError::QuotaExceeded(quota));
    }
    while let Some(part) = form
        .try_next()
        .await
        .map_err(|e| ApiError::BadRequest(format!("multipart: {e}")))?
    {
        if part.name() != "file" {
            continue;
        }
        let stored = app.uploads.store(pin!(part.stream())).await?;
        if used.saturating_add(stored.size) > quota {
            app.uploads.discard(&stored.file_name).await;
            return Err(ApiError::QuotaExceeded(quota));
        }
        let record = app
            .store
            .create_attachment(NewAttachment {
                id: stored.id.to_string(),
                owner: caller.user,
                file_name: stored.file_name.clone(),
                content_type: stored.image_type.content_type().to_owned(),
                size: stored.size,
            })
            .await;
        let record = match record {
            Ok(r) => r,
            Err(err) => {
                app.uploads.discard(&stored.file_name).await;
                return Err(err.into());
            }
        };
        tracing::info!(user = caller.user.0, file = %stored.file_name, size = stored.size, "uploaded");
        return Ok(json(StatusCode::CREATED, &AttachmentView::from(record)));
    }
    Err(ApiError::Invalid(
        "multipart field `file` is required".into(),
    ))
}

#[utoipa::path(get, path = "/uploads/{file}", tag = "attachments",
    params(("file" = String, Path, description = "`<uuid>.<png|jpg|gif|webp>`")),
    responses((status = 200, description = "the image", content_type = "image/*"),
              (status = 404, body = crate::http::error::ErrorBody)))]
async fn serve(file: String, app: Arc<App>) -> ApiResult {
    let (path, image_type) = app
        .uploads
        .resolve(&file)
        .ok_or(ApiError::NotFound("file"))?;
    // Streamed from disk in small chunks: a hundred slow downloads of a big file hold a
    // hundred file handles, not a hundred copies of it (and `server.write_timeout_secs` ends
    // those that stop reading).
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound("file"))
        }
        Err(e) => {
            return Err(ApiError::Internal(format!(
                "reading {}: {e}",
                path.display()
            )))
        }
    };
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(format!("reading {}: {e}", path.display())))?
        .len();
    let body = warp::hyper::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        file,
        64 * 1024,
    ));
    HttpResponse::builder()
        .header(header::CONTENT_TYPE, image_type.content_type())
        .header(header::CONTENT_LENGTH, len)
        .header("x-content-type-options", "nosniff")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; img-src 'self'; sandbox",
        )
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
        .body(body)
        .map_err(|e| ApiError::Internal(e.to_string()))
}
