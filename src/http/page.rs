//! The web page: files from `static/`, embedded in the binary so a node serves its page from
//! anywhere with nothing fetched at run time.

use rust_embed::RustEmbed;
use warp::filters::BoxedFilter;
use warp::http::{header, Response as HttpResponse};
use warp::path::Tail;
use warp::reply::Response;
use warp::{Filter, Rejection};

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

/// Our page loads nothing from elsewhere and runs no inline script.
const PAGE_CSP: &str = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; \
                        connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(super) fn routes() -> BoxedFilter<(Response,)> {
    warp::get()
        .and(warp::path::tail())
        .and_then(|tail: Tail| async move { asset(tail.as_str()) })
        .boxed()
}

fn asset(path: &str) -> Result<Response, Rejection> {
    let path = if path.is_empty() { "index.html" } else { path };
    let file = Assets::get(path).ok_or_else(warp::reject::not_found)?;
    HttpResponse::builder()
        .header(header::CONTENT_TYPE, content_type(path))
        .header(header::CONTENT_SECURITY_POLICY, PAGE_CSP)
        .header("x-content-type-options", "nosniff")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(file.data.into_owned().into())
        .map_err(|_| warp::reject::not_found())
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}
