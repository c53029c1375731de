//! Users and sessions: register, log in and out, the caller's own profile, finding others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::error::ApiError;
use super::input::{display_name, new_password, search_term, upload_url, SearchQuery};
use super::views::{user_view, user_views, UserView};
use super::{authed, json, json_body, no_content, with_app, ApiResult, Caller};
use crate::app::App;
use crate::auth::{hash_password, verify_password};
use crate::fanout::{Notice, Scope};
use crate::ids::UserId;
use crate::session::{log_in, LoggedIn, LoginError};
use crate::store::{NewUser, UserChanges};

/// Longest user name, in characters.
pub const MAX_NAME_CHARS: usize = 32;
/// Most users a search returns.
const SEARCH_LIMIT: u64 = 50;

pub(super) fn routes(app: &Arc<App>) -> BoxedFilter<(Response,)> {
    let register = warp::path!("api" / "users")
        .and(warp::post())
        .and(with_app(app))
        .and(json_body())
        .then(register);
    let login = warp::path!("api" / "sessions")
        .and(warp::post())
        .and(with_app(app))
        .and(json_body())
        .and(crate::listen::peer())
        .then(login);
    let logout = warp::path!("api" / "sessions")
        .and(warp::delete())
        .and(with_app(app))
        .and(authed(app))
        .then(logout);
    let me = warp::path!("api" / "users" / "me")
        .and(warp::get())
        .and(with_app(app))
        .and(authed(app))
        .then(me);
    let update_me = warp::path!("api" / "users" / "me")
        .and(warp::patch())
        .and(with_app(app))
        .and(authed(app))
        .and(json_body())
        .then(update_me);
    let delete_me = warp::path!("api" / "users" / "me")
        .and(warp::delete())
        .and(with_app(app))
        .and(authed(app))
        .then(delete_me);
    let search = warp::path!("api" / "users")
        .and(warp::get())
        .and(with_app(app))
        .and(authed(app))
        .and(warp::query::<SearchQuery>())
        .then(search);
    let one = warp::path!("api" / "users" / i64)
        .and(warp::get())
        .and(with_app(app))
        .and(authed(app))
        .then(one);
    register
        .or(login)
        .unify()
        .or(logout)
        .unify()
        .or(me)
        .unify()
        .or(update_me)
        .unify()
        .or(delete_me)
        .unify()
        .or(search)
        .unify()
        .or(one)
        .unify()
        .map(|r: ApiResult| warp::Reply::into_response(r))
        .boxed()
}

/// A registration.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    pub name: String,
    pub password: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A log-in.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
    /// `false` ("Keep me signed in" left unticked): the session lasts at most
    /// [`SHORT_SESSION`]. Absent or `true`: the configured `auth.token_ttl_secs`.
    #[serde(default)]
    pub remember: Option<bool>,
}

/// The longest a session not kept ("Keep me signed in" unticked) lives: one working day.
pub const SHORT_SESSION: Duration = Duration::from_secs(12 * 3600);

/// A new session: the token is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub token: String,
    pub user: UserView,
    /// Epoch milliseconds.
    pub expires_at: i64,
}

/// A profile update. Absent fields stay; `null` clears `email`, `phone`, `avatar`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ProfileUpdate {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// An `/uploads/…` URL from `POST /api/attachments`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub avatar: Option<Option<String>>,
    /// A new password; needs `current_password`.
    pub password: Option<String>,
    pub current_password: Option<String>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Most ids one `?ids=` look-up takes.
const MAX_LOOKUP_IDS: usize = 100;

/// Parses `?ids=1,2,3`: 1..=[`MAX_LOOKUP_IDS`] integers.
fn lookup_ids(ids: &str) -> Result<Vec<UserId>, ApiError> {
    let invalid = || {
        ApiError::Invalid(format!(
            "ids must be 1-{MAX_LOOKUP_IDS} comma-separated user ids"
        ))
    };
    let parsed = ids
        .split(',')
        .map(|s| s.trim().parse::<i64>().map(UserId).map_err(|_| invalid()))
        .collect::<Result<Vec<_>, _>>()?;
    if parsed.is_empty() || parsed.len() > MAX_LOOKUP_IDS {
        return Err(invalid());
    }
    Ok(parsed)
}

fn valid_email(email: Option<String>) -> Result<Option<String>, ApiError> {
    match email {
        Some(e) if e.len() > 254 || !e.contains('@') || e.chars().any(char::is_whitespace) => {
            Err(ApiError::Invalid("email is not an address".into()))
        }
        other => Ok(other),
    }
}

fn valid_phone(phone: Option<String>) -> Result<Option<String>, ApiError> {
    match phone {
        Some(p) if p.is_empty() || p.len() > 32 || p.chars().any(char::is_control) => {
            Err(ApiError::Invalid("phone must be 1-32 characters".into()))
        }
        other => Ok(other),
    }
}

/// A turn at password hashing, or 503 with `Retry-After` when too many wait already.
async fn hash_turn(app: &App) -> Result<crate::auth::Turn, ApiError> {
    app.hash_gate.enter().await.map_err(|_| {
        app.metrics.login_refused.with_label_values(&["busy"]).inc();
        ApiError::Busy(1)
    })
}

/// The caller's own view of themselves (with email and phone).
async fn own_view(app: &App, user: crate::store::User) -> UserView {
    let online = app.presence.is_online(UserId(user.id)).await;
    UserView::own(user, online)
}

#[utoipa::path(post, path = "/api/users", tag = "accounts", request_body = RegisterRequest,
    responses((status = 201, body = UserView), (status = 400, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody)))]
async fn register(app: Arc<App>, req: RegisterRequest) -> ApiResult {
    let name = display_name(&req.name, MAX_NAME_CHARS, "name")?.into_string();
    let password = new_password(req.password)?;
    let email = valid_email(req.email)?;
    let phone = valid_phone(req.phone)?;
    let password_hash = hash_password(hash_turn(&app).await?, password)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = app
        .store
        .create_user(NewUser {
            name,
            password_hash,
            email,
            phone,
        })
        .await?;
    tracing::info!(user = user.id, "registered");
    Ok(json(StatusCode::CREATED, &UserView::own(user, false)))
}

#[utoipa::path(post, path = "/api/sessions", tag = "accounts", request_body = LoginRequest,
    responses((status = 201, body = LoginResponse), (status = 401, body = crate::http::error::ErrorBody),
              (status = 429, description = "too many failed log-ins; see Retry-After", body = crate::http::error::ErrorBody),
              (status = 503, description = "password checks busy; see Retry-After", body = crate::http::error::ErrorBody)))]
async fn login(app: Arc<App>, req: LoginRequest, peer: Option<SocketAddr>) -> ApiResult {
    let ttl = match req.remember {
        Some(false) => app.settings.auth.token_ttl().min(SHORT_SESSION),
        _ => app.settings.auth.token_ttl(),
    };
    let address = peer.map(|p| p.ip());
    let LoggedIn {
        token,
        user,
        caller,
    } = log_in(&app, &req.name, req.password, address, ttl)
        .await
        .map_err(|err| match err {
            LoginError::Throttled(wait) => ApiError::TooManyAttempts(wait),
            LoginError::Busy => ApiError::Busy(1),
            LoginError::InvalidCredentials => ApiError::InvalidCredentials,
            LoginError::Store(err) => err.into(),
        })?;
    let expires_at = caller.expires_at;
    let user = own_view(&app, user).await;
    Ok(json(
        StatusCode::CREATED,
        &LoginResponse {
            token,
            user,
            expires_at,
        },
    ))
}

#[utoipa::path(delete, path = "/api/sessions", tag = "accounts", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::http::error::ErrorBody)))]
async fn logout(app: Arc<App>, caller: Caller) -> ApiResult {
    app.store.delete_session(&caller.token_hash).await?;
    let revoked = Notice::SessionRevoked {
        token_hash: caller.token_hash,
    };
    app.fanout.announce(revoked, Scope::default()).await;
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/users/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = crate::http::error::ErrorBody)))]
async fn me(app: Arc<App>, caller: Caller) -> ApiResult {
    let user = app.store.user(caller.user).await?;
    Ok(json(StatusCode::OK, &own_view(&app, user).await))
}

#[utoipa::path(patch, path = "/api/users/me", tag = "accounts", security(("bearer" = [])),
    request_body = ProfileUpdate,
    responses((status = 200, body = UserView), (status = 403, body = crate::http::error::ErrorBody),
              (status = 409, body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody)))]
async fn update_me(app: Arc<App>, caller: Caller, req: ProfileUpdate) -> ApiResult {
    let mut changes = UserChanges {
        name: req
            .name
            .map(|n| display_name(&n, MAX_NAME_CHARS, "name").map(|n| n.into_string()))
            .transpose()?,
        email: req.email.map(valid_email).transpose()?,
        phone: req.phone.map(valid_phone).transpose()?,
        avatar: match req.avatar {
            Some(a) => Some(upload_url(&app, a).await?),
            None => None,
        },
        password_hash: None,
    };
    if let Some(password) = req.password {
        let password = new_password(password)?;
        let current = app.store.user(caller.user).await?;
        let given = req.current_password.unwrap_or_default();
        if !verify_password(hash_turn(&app).await?, given, Some(current.password_hash)).await {
            return Err(ApiError::WrongPassword);
        }
        changes.password_hash = Some(
            hash_password(hash_turn(&app).await?, password)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?,
        );
    }
    let changed_password = changes.password_hash.is_some();
    let shown_changed = changes.name.is_some() || changes.avatar.is_some();
    let user = app.store.update_user(caller.user, changes).await?;
    if shown_changed {
        // Contacts and group co-members see the new name or avatar now, not at their reload.
        let profile = Notice::Profile {
            user: caller.user,
            name: user.name.clone(),
            avatar: user.avatar.clone(),
        };
        app.fanout.announce(profile, Scope::default()).await;
    }
    if changed_password {
        // Whoever knew the old password loses every other session.
        app.store
            .delete_other_sessions(caller.user, &caller.token_hash)
            .await?;
        let revoked = Notice::SessionsRevoked {
            user: caller.user,
            keep: caller.token_hash,
        };
        app.fanout.announce(revoked, Scope::default()).await;
    }
    Ok(json(StatusCode::OK, &own_view(&app, user).await))
}

#[utoipa::path(delete, path = "/api/users/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::http::error::ErrorBody)))]
async fn delete_me(app: Arc<App>, caller: Caller) -> ApiResult {
    let contacts = app.store.contact_ids(caller.user).await?;
    let communities = app.store.community_ids_of(caller.user).await?;
    app.store.delete_user(caller.user).await?;
    // Its connections close here and on every node.
    let deleted = Notice::UserDeleted { user: caller.user };
    app.fanout.announce(deleted, Scope::default()).await;
    // Their images go with them: messages that showed one now get a 404 for it.
    match app.store.delete_attachments_of(caller.user).await {
        Ok(files) => {
            for file in files {
                app.uploads.discard(&file).await;
            }
        }
        Err(err) => tracing::warn!(%err, user = caller.user.0, "uploads of a deleted account kept"),
    }
    // Their friends' lists and their groups' member lists lose them now, not at next reload.
    for contact in contacts {
        let removed = Notice::Contact {
            a: caller.user,
            b: contact,
            added: false,
        };
        app.fanout.announce(removed, Scope::default()).await;
    }
    for community in communities {
        let left = Notice::Member {
            community,
            user: caller.user,
            joined: false,
        };
        app.fanout.announce(left, Scope::default()).await;
    }
    tracing::info!(user = caller.user.0, "account deleted");
    Ok(no_content())
}

#[utoipa::path(get, path = "/api/users", tag = "accounts", security(("bearer" = [])),
    params(SearchQuery),
    responses((status = 200, body = [UserView]), (status = 422, body = crate::http::error::ErrorBody)))]
async fn search(app: Arc<App>, _caller: Caller, query: SearchQuery) -> ApiResult {
    if let Some(ids) = query.ids {
        let users = app.store.users_by_ids(&lookup_ids(&ids)?).await?;
        return Ok(json(StatusCode::OK, &user_views(&app, users).await));
    }
    let q = query.q.unwrap_or_default();
    search_term(&q, MAX_NAME_CHARS)?;
    let users = app.store.search_users(&q, SEARCH_LIMIT).await?;
    Ok(json(StatusCode::OK, &user_views(&app, users).await))
}

#[utoipa::path(get, path = "/api/users/{id}", tag = "accounts", security(("bearer" = [])),
    params(("id" = i64, Path, description = "user id")),
    responses((status = 200, body = UserView), (status = 404, body = crate::http::error::ErrorBody)))]
async fn one(id: i64, app: Arc<App>, caller: Caller) -> ApiResult {
    let user = app.store.user(UserId(id)).await?;
    if caller.user == UserId(id) {
        return Ok(json(StatusCode::OK, &own_view(&app, user).await));
    }
    Ok(json(StatusCode::OK, &user_view(&app, user).await))
}
