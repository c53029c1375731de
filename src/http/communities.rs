//! Communities (groups): create, mine, search, join, leave, members.

use std::sync::Arc;

use serde::Deserialize;
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::error::ApiError;
use super::input::{display_name, search_term, upload_url, SearchQuery};
use super::views::{user_views, CommunityView, UserView};
use super::{authed, json, json_body, no_content, with_app, ApiResult, Caller};
use crate::app::App;
use crate::fanout::{Notice, Scope};
use crate::ids::CommunityId;
use crate::store::{Community, NewCommunity};

/// Longest community name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Most communities a search returns.
const SEARCH_LIMIT: u64 = 50;

pub(super) fn routes(app: &Arc<App>) -> BoxedFilter<(Response,)> {
    let create = warp::path!("api" / "communities")
        .and(warp::post())
        .and(with_app(app))
        .and(authed(app))
        .and(json_body())
        .then(create);
    let mine = warp::path!("api" / "communities")
        .and(warp::get())
        .and(with_app(app))
        .and(authed(app))
        .then(mine);
    let search = warp::path!("api" / "communities" / "search")
        .and(warp::get())
        .and(with_app(app))
        .and(authed(app))
        .and(warp::query::<SearchQuery>())
        .then(search);
    let join = warp::path!("api" / "communities" / i64 / "members")
        .and(warp::post())
        .and(with_app(app))
        .and(authed(app))
        .then(join);
    let leave = warp::path!("api" / "communities" / i64 / "members" / "me")
        .and(warp::delete())
        .and(with_app(app))
        .and(authed(app))
        .then(leave);
    let members = warp::path!("api" / "communities" / i64 / "members")
        .and(warp::get())
        .and(with_app(app))
        .and(authed(app))
        .then(members);
    create
        .or(mine)
        .unify()
        .or(search)
        .unify()
        .or(join)
        .unify()
        .or(leave)
        .unify()
        .or(members)
        .unify()
        .map(|r: ApiResult| warp::Reply::into_response(r))
        .boxed()
}

/// A community to create.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateCommunity {
    pub name: String,
    /// An `/uploads/…` URL from `POST /api/attachments`.
    pub icon: Option<String>,
    pub description: Option<String>,
}

async fn views(app: &App, communities: Vec<Community>) -> Result<Vec<CommunityView>, ApiError> {
    let ids: Vec<CommunityId> = communities.iter().map(|c| CommunityId(c.id)).collect();
    let counts = app.store.member_counts(&ids).await?;
    Ok(communities
        .into_iter()
        .map(|c| {
            let n = counts.get(&CommunityId(c.id)).copied().unwrap_or(0);
            CommunityView::new(c, n)
        })
        .collect())
}

async fn view(app: &App, community: Community) -> Result<CommunityView, ApiError> {
    let mut all = views(app, vec![community]).await?;
    all.pop()
        .ok_or_else(|| ApiError::Internal("community vanished".into()))
}

#[utoipa::path(post, path = "/api/communities", tag = "communities", security(("bearer" = [])),
    request_body = CreateCommunity,
    responses((status = 201, body = CommunityView), (status = 422, body = crate::http::error::ErrorBody)))]
async fn create(app: Arc<App>, caller: Caller, req: CreateCommunity) -> ApiResult {
    let name = display_name(&req.name, MAX_NAME_CHARS, "name")?.into_string();
    let icon = upload_url(&app, req.icon).await?;
    let description = req.description.filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
    {
        return Err(ApiError::Invalid(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    let community = app
        .store
        .create_community(
            caller.user,
            NewCommunity {
                name,
                icon,
                description,
            },
        )
        .await?;
    Ok(json(StatusCode::CREATED, &view(&app, community).await?))
}

#[utoipa::path(get, path = "/api/communities", tag = "communities", security(("bearer" = [])),
    responses((status = 200, body = [CommunityView])))]
async fn mine(app: Arc<App>, caller: Caller) -> ApiResult {
    let communities = app.store.communities_of(caller.user).await?;
    Ok(json(StatusCode::OK, &views(&app, communities).await?))
}

#[utoipa::path(get, path = "/api/communities/search", tag = "communities", security(("bearer" = [])),
    params(SearchQuery),
    responses((status = 200, body = [CommunityView]), (status = 422, body = crate::http::error::ErrorBody)))]
async fn search(app: Arc<App>, _caller: Caller, query: SearchQuery) -> ApiResult {
    let q = query.q.unwrap_or_default();
    search_term(&q, MAX_NAME_CHARS)?;
    let communities = app.store.search_communities(&q, SEARCH_LIMIT).await?;
    Ok(json(StatusCode::OK, &views(&app, communities).await?))
}

#[utoipa::path(post, path = "/api/communities/{id}/members", tag = "communities", security(("bearer" = [])),
    params(("id" = i64, Path, description = "community id")),
    responses((status = 201, body = CommunityView), (status = 404, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody)))]
async fn join(id: i64, app: Arc<App>, caller: Caller) -> ApiResult {
    let community = app
        .store
        .join_community(CommunityId(id), caller.user)
        .await?;
    let joined = Notice::Member {
        community: CommunityId(id),
        user: caller.user,
        joined: true,
    };
    app.fanout.announce(joined, Scope::default()).await;
    Ok(json(StatusCode::CREATED, &view(&app, community).await?))
}

#[utoipa::path(delete, path = "/api/communities/{id}/members/me", tag = "communities", security(("bearer" = [])),
    params(("id" = i64, Path, description = "community id")),
    responses((status = 204), (status = 404, body = crate::http::error::ErrorBody)))]
async fn leave(id: i64, app: Arc<App>, caller: Caller) -> ApiResult {
    app.store
        .leave_community(CommunityId(id), caller.user)
        .await?;
    let left = Notice::Member {
        community: CommunityId(id),
        user: caller.user,
        joined: false,
    };
    app.fanout.announce(left, Scope::default()).await;
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/communities/{id}/members", tag = "communities", security(("bearer" = [])),
    params(("id" = i64, Path, description = "community id")),
    responses((status = 200, body = [UserView]), (status = 403, body = crate::http::error::ErrorBody),
              (status = 404, body = crate::http::error::ErrorBody)))]
async fn members(id: i64, app: Arc<App>, caller: Caller) -> ApiResult {
    let id = CommunityId(id);
    app.store.community(id).await?;
    if !app.store.is_member(id, caller.user).await? {
        return Err(ApiError::NotAMember(id));
    }
    let users = app.store.members(id).await?;
    Ok(json(StatusCode::OK, &user_views(&app, users).await))
}
