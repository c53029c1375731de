//! The REST surface: small warp filters, one file per resource, composed here.
//!
//! Handlers return `Result<Response, ApiError>`; warp renders both sides, so an error becomes
//! the JSON error body in exactly one place ([`ApiError`]'s `Reply`). Filters that guard a route
//! (authentication, body parsing) reject with an `ApiError`, which [`crate::http::error::recover`]
//! renders the same way.

mod accounts;
mod attachments;
mod communities;
mod contacts;
mod conversations;
pub mod docs;
pub mod error;
mod input;
pub mod ops;
mod page;
mod sessions;
mod system;
mod views;

use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::app::App;
use crate::session::caller_for_token;
use error::{recover, ApiError};

/// Largest JSON body any route accepts.
pub const JSON_BODY_LIMIT: u64 = 64 * 1024;
/// Largest body read (and then refused) rather than cut off unread.
const JSON_BODY_DRAIN_LIMIT: u64 = 1024 * 1024;

/// What a handler returns.
pub type ApiResult = Result<Response, ApiError>;

/// Every route of a node (REST, uploads, docs, page, and the `chat` route the caller composes
/// in: the websocket), with errors rendered and requests counted.
pub fn routes(app: Arc<App>, chat: BoxedFilter<(Response,)>) -> BoxedFilter<(Response,)> {
    let api = accounts::routes(&app)
        .or(contacts::routes(&app))
        .unify()
        .or(communities::routes(&app))
        .unify()
        .or(attachments::routes(&app))
        .unify()
        .or(conversations::routes(&app))
        .unify()
        .or(system::routes(&app))
        .unify()
        .or(sessions::routes(&app))
        .unify()
        .or(chat)
        .unify()
        .or(ops::routes(&app))
        .unify()
        .or(docs::routes())
        .unify()
        .or(page::routes())
        .unify();
    let metrics = app.metrics.clone();
    warp::path::full()
        .and(api.recover(recover).unify())
        .map(|path: warp::path::FullPath, reply: Response| harden(path.as_str(), reply))
        .with(warp::log::custom(move |info| {
            metrics.observe_http(
                info.path(),
                info.method().as_str(),
                info.status().as_u16(),
                info.elapsed().as_secs_f64(),
            );
        }))
        .map(Reply::into_response)
        .boxed()
}

/// The template of every route here, for metric labels: the OpenAPI document's paths, the
/// document itself and the page (static files and Swagger UI are labelled by prefix).
pub fn route_templates() -> Vec<String> {
    let mut templates = docs::path_templates();
    templates.push(docs::OPENAPI_PATH.to_owned());
    templates.push("/".to_owned());
    templates
}

/// What JSON, text and errors may do in a browser: nothing (no scripts, no frames).
const DATA_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// Swagger UI runs its own bundled scripts and styles, nothing from elsewhere.
const SWAGGER_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                           script-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'";

/// Adds the headers every response carries: `nosniff`, no framing, and a CSP for responses
/// that do not set their own (the page and uploads do).
fn harden(path: &str, mut reply: Response) -> Response {
    use warp::http::header::{
        HeaderValue, CONTENT_SECURITY_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
    };
    let headers = reply.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        let csp = if path.starts_with("/swagger") {
            SWAGGER_CSP
        } else {
            DATA_CSP
        };
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    }
    reply
}

/// `/metrics` alone, for `metrics.addr`, with the same headers as everything else.
pub fn metrics_routes(app: Arc<App>) -> BoxedFilter<(Response,)> {
    warp::path::full()
        .and(ops::metrics_route(&app).recover(recover).unify())
        .map(|path: warp::path::FullPath, reply: Response| harden(path.as_str(), reply))
        .boxed()
}

pub use crate::app::with_app;
pub use crate::session::Caller;

/// Requires `Authorization: Bearer <token>` naming a live session.
pub fn authed(app: &Arc<App>) -> impl Filter<Extract = (Caller,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(with_app(app))
        .and_then(|header: Option<String>, app: Arc<App>| async move {
            let token = header
                .as_deref()
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or(ApiError::Unauthorized)?;
            caller_for_token(&app.store, token)
                .await
                .map_err(|refused| Rejection::from(ApiError::from(refused)))
        })
}

/// A JSON body of type `T`, at most [`JSON_BODY_LIMIT`] bytes, with a clear error when it is
/// not JSON or not the expected shape.
pub fn json_body<T: DeserializeOwned + Send>(
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    // A body a little over the limit is still read, so the client gets its 413 instead of a
    // reset connection while it is still sending; a far bigger one is refused unread.
    warp::body::content_length_limit(JSON_BODY_DRAIN_LIMIT)
        .and(warp::body::bytes())
        .and_then(|body: Bytes| async move {
            if body.len() as u64 > JSON_BODY_LIMIT {
                return Err(Rejection::from(ApiError::PayloadTooLarge(JSON_BODY_LIMIT)));
            }
            serde_json::from_slice::<T>(&body)
                .map_err(|e| Rejection::from(ApiError::MalformedJson(e.to_string())))
        })
}

/// A JSON response with a status.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

/// An empty 204.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
