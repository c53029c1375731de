//! Contacts (friends): list, add (mutual at once), remove.

use std::sync::Arc;

use serde::Deserialize;
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::error::ApiError;
use super::views::{user_view, user_views, UserView};
use super::{authed, json, json_body, no_content, with_app, ApiResult, Caller};
use crate::app::App;
use crate::fanout::{Notice, Scope};
use crate::ids::UserId;

pub(super) fn routes(app: &Arc<App>) -> BoxedFilter<(Response,)> {
    let list = warp::path!("api" / "contacts")
        .and(warp::get())
        .and(with_app(app))
        .and(authed(app))
        .then(list);
    let add = warp::path!("api" / "contacts")
        .and(warp::post())
        .and(with_app(app))
        .and(authed(app))
        .and(json_body())
        .then(add);
    let remove = warp::path!("api" / "contacts" / i64)
        .and(warp::delete())
        .and(with_app(app))
        .and(authed(app))
        .then(remove);
    list.or(add)
        .unify()
        .or(remove)
        .unify()
        .map(|r: ApiResult| warp::Reply::into_response(r))
        .boxed()
}

/// Whom to befriend.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AddContact {
    pub user_id: i64,
}

#[utoipa::path(get, path = "/api/contacts", tag = "contacts", security(("bearer" = [])),
    responses((status = 200, body = [UserView]), (status = 401, body = crate::http::error::ErrorBody)))]
async fn list(app: Arc<App>, caller: Caller) -> ApiResult {
    let users = app.store.contacts(caller.user).await?;
    Ok(json(StatusCode::OK, &user_views(&app, users).await))
}

#[utoipa::path(post, path = "/api/contacts", tag = "contacts", security(("bearer" = [])),
    request_body = AddContact,
    responses((status = 201, body = UserView), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody)))]
async fn add(app: Arc<App>, caller: Caller, req: AddContact) -> ApiResult {
    let other = UserId(req.user_id);
    if other == caller.user {
        return Err(ApiError::Invalid("you cannot add yourself".into()));
    }
    let user = app.store.add_contact(caller.user, other).await?;
    let added = Notice::Contact {
        a: caller.user,
        b: other,
        added: true,
    };
    app.fanout.announce(added, Scope::default()).await;
    Ok(json(StatusCode::CREATED, &user_view(&app, user).await))
}

#[utoipa::path(delete, path = "/api/contacts/{user_id}", tag = "contacts", security(("bearer" = [])),
    params(("user_id" = i64, Path, description = "the contact to remove")),
    responses((status = 204), (status = 404, body = crate::http::error::ErrorBody)))]
async fn remove(user_id: i64, app: Arc<App>, caller: Caller) -> ApiResult {
    app.store
        .remove_contact(caller.user, UserId(user_id))
        .await?;
    let removed = Notice::Contact {
        a: caller.user,
        b: UserId(user_id),
        added: false,
    };
    app.fanout.announce(removed, Scope::default()).await;
    Ok(no_content())
}
