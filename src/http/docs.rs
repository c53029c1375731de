//! The OpenAPI 3 document, generated from the handlers' annotations, and Swagger UI, served
//! from the binary (the UI's files are vendored into the crate; nothing is fetched).

use std::sync::Arc;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::Config;
use warp::filters::BoxedFilter;
use warp::http::{header, Response as HttpResponse, StatusCode, Uri};
use warp::path::{FullPath, Tail};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::error::{ErrorBody, ErrorDetail};
use super::{
    accounts, attachments, communities, contacts, conversations, ops, sessions, system, views,
};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api-docs/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Chorus",
        description = "A multi-node chat server. Websocket protocol: see the README.",
        license(name = "MIT")
    ),
    paths(
        accounts::register,
        accounts::login,
        accounts::logout,
        accounts::me,
        accounts::update_me,
        accounts::delete_me,
        accounts::search,
        accounts::one,
        contacts::list,
        contacts::add,
        contacts::remove,
        communities::create,
        communities::mine,
        communities::search,
        communities::join,
        communities::leave,
        communities::members,
        conversations::list,
        sessions::list,
        sessions::revoke,
        conversations::history,
        conversations::reads,
        system::send,
        attachments::upload,
        attachments::serve,
        ops::healthz,
        ops::readyz,
        ops::metrics,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        views::UserView,
        views::CommunityView,
        views::AttachmentView,
        accounts::RegisterRequest,
        accounts::LoginRequest,
        accounts::LoginResponse,
        accounts::ProfileUpdate,
        contacts::AddContact,
        communities::CreateCommunity,
        conversations::ReadPosition,
        conversations::ConversationSummary,
        sessions::SessionView,
        system::SystemMessage,
        system::SystemMessageStored,
        ops::Health,
        ops::Readiness,
        ops::ClusterStatus,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts", description = "Users and sessions"),
        (name = "contacts", description = "Friends (mutual)"),
        (name = "communities", description = "Groups"),
        (name = "messages", description = "History and system messages (live traffic is on the /chat websocket)"),
        (name = "attachments", description = "Image uploads"),
        (name = "ops", description = "Health and metrics"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every path template the document lists (`/api/users/{id}`, ...): the routes' one list.
pub fn path_templates() -> Vec<String> {
    ApiDoc::openapi().paths.paths.keys().cloned().collect()
}

/// The document as pretty JSON: what `/api-docs/openapi.json` serves and
/// `swagger/openapi.json` holds.
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}

pub(super) fn routes() -> BoxedFilter<(Response,)> {
    let document = Arc::new(openapi_json());
    let spec = warp::path!("api-docs" / "openapi.json")
        .and(warp::get())
        .map(move || {
            warp::reply::with_header(
                document.as_str().to_owned(),
                header::CONTENT_TYPE,
                "application/json",
            )
            .into_response()
        });
    let config = Arc::new(Config::from(OPENAPI_PATH));
    let ui = warp::path("swagger")
        .and(warp::get())
        .and(warp::path::full())
        .and(warp::path::tail())
        .map(move |full: FullPath, tail: Tail| swagger(full, tail, config.clone()));
    spec.or(ui).unify().boxed()
}

fn swagger(full: FullPath, tail: Tail, config: Arc<Config<'static>>) -> Response {
    if full.as_str() == "/swagger" {
        return warp::redirect::found(Uri::from_static("/swagger/")).into_response();
    }
    match utoipa_swagger_ui::serve(tail.as_str(), config) {
        Ok(Some(file)) => HttpResponse::builder()
            .header(header::CONTENT_TYPE, file.content_type)
            .body(file.bytes.into_owned().into())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Ok(None) => crate::http::error::ApiError::NotFound("file").into_response(),
        Err(err) => crate::http::error::ApiError::Internal(err.to_string()).into_response(),
    }
}
