//! The one error type of the HTTP API (it lives with HTTP: other transports have their own, such
//! as the websocket's `error` frames), and the single place where errors become responses:
//! `{"error":{"code","message"}}` with a stable snake_case `code` and the matching status.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::ids::{CommunityId, UserId};
use crate::store::StoreError;

/// Everything a request can fail with. Handlers return it (as a rejection); [`recover`] renders it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("missing, unknown, expired or revoked token")]
    Unauthorized,
    #[error("wrong name or password")]
    InvalidCredentials,
    #[error("current_password is wrong")]
    WrongPassword,
    #[error("you are not in community {0}")]
    NotAMember(CommunityId),
    #[error("you are not in community {0}")]
    NotAMemberToLeave(CommunityId),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("user {0} is not your contact")]
    NotAContact(UserId),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("a Content-Length header is required")]
    LengthRequired,
    #[error("that name is taken")]
    NameTaken,
    #[error("user {0} is already your contact")]
    AlreadyContact(UserId),
    #[error("you are already in community {0}")]
    AlreadyMember(CommunityId),
    #[error("payload over the {0}-byte limit")]
    PayloadTooLarge(u64),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
    /// The user's uploads would pass `uploads.quota_bytes`.
    #[error("over your upload quota of {0} bytes")]
    QuotaExceeded(u64),
    /// Too many failed log-ins from this address or for this account; retry after the seconds.
    #[error("too many failed log-ins; try again in {0} s")]
    TooManyAttempts(u64),
    /// Every password-hashing slot is taken and the queue is full; retry after the seconds.
    #[error("busy checking passwords; try again in {0} s")]
    Busy(u64),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::WrongPassword => "wrong_password",
            Self::NotAMember(_) | Self::NotAMemberToLeave(_) => "not_a_member",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::NotAContact(_) => "not_a_contact",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::LengthRequired => "length_required",
            Self::NameTaken => "name_taken",
            Self::AlreadyContact(_) => "already_contact",
            Self::AlreadyMember(_) => "already_member",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Invalid(_) => "invalid_input",
            Self::Unavailable(_) => "unavailable",
            Self::TooManyAttempts(_) => "too_many_attempts",
            Self::QuotaExceeded(_) => "quota_exceeded",
            Self::Busy(_) => "busy",
            Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::WrongPassword | Self::NotAMember(_) | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::NotAMemberToLeave(_) | Self::NotAContact(_) => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::LengthRequired => StatusCode::LENGTH_REQUIRED,
            Self::NameTaken | Self::AlreadyContact(_) | Self::AlreadyMember(_) => {
                StatusCode::CONFLICT
            }
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) | Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::QuotaExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The client-facing message; internal details stay in the log.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

impl warp::reject::Reject for ApiError {}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NameTaken => Self::NameTaken,
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::AlreadyContact(u) => Self::AlreadyContact(u),
            StoreError::NotAContact(u) => Self::NotAContact(u),
            StoreError::AlreadyMember(c) => Self::AlreadyMember(c),
            StoreError::NotAMember(c) => Self::NotAMemberToLeave(c),
            StoreError::Db(e) => Self::Internal(e.to_string()),
        }
    }
}

/// The JSON body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A stable `code` for programs and a `message` for people.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.message(),
            },
        };
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status()).into_response();
        if let Self::TooManyAttempts(secs) | Self::Busy(secs) = self {
            response
                .headers_mut()
                .insert(warp::http::header::RETRY_AFTER, secs.max(1).into());
        }
        response
    }
}

/// Turns every rejection, ours and warp's own, into the JSON error shape.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    // Route-specific rejections first: warp merges the rejections of every route tried, and a
    // neighbour's "wrong method" or "not found" must not hide the real problem.
    let err = if let Some(err) = rejection.find::<ApiError>() {
        err.clone()
    } else if let Some(refused) = rejection.find::<crate::session::Refused>() {
        // The websocket upgrade's token check.
        match refused {
            crate::session::Refused::Unauthorized => ApiError::Unauthorized,
            crate::session::Refused::Store(err) => ApiError::Internal(err.to_string()),
        }
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        // Only JSON bodies use warp's length limit; uploads count their own bytes.
        ApiError::PayloadTooLarge(super::JSON_BODY_LIMIT)
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::LengthRequired
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::BadRequest(e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::MissingHeader>() {
        ApiError::BadRequest(e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::BadRequest(e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::UnsupportedMediaType>() {
        ApiError::UnsupportedMediaType(e.to_string())
    } else if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        ApiError::MalformedJson(e.to_string())
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if rejection.is_not_found() {
        ApiError::NotFound("route")
    } else {
        ApiError::Internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(err.into_response())
}

impl From<crate::session::Refused> for ApiError {
    fn from(refused: crate::session::Refused) -> Self {
        use crate::session::Refused;
        match refused {
            Refused::Unauthorized => Self::Unauthorized,
            Refused::Store(err) => err.into(),
        }
    }
}

impl From<crate::upload::UploadError> for ApiError {
    fn from(err: crate::upload::UploadError) -> Self {
        use crate::upload::UploadError;
        match err {
            UploadError::TooLarge(max) => Self::PayloadTooLarge(max),
            UploadError::NotAnImage => Self::UnsupportedMediaType(err.to_string()),
            UploadError::Empty => Self::Invalid(err.to_string()),
            UploadError::Body(e) => Self::BadRequest(e),
            UploadError::Io(e) => Self::Internal(e.to_string()),
        }
    }
}

impl From<crate::commit::SendError> for ApiError {
    fn from(err: crate::commit::SendError) -> Self {
        use crate::commit::SendError;
        match err {
            SendError::UnknownUser(_) => Self::NotFound("user"),
            SendError::NotAMember(c) => Self::NotAMember(c),
            SendError::Unstorable(why) => Self::Invalid(why.to_owned()),
            SendError::Unavailable => Self::Unavailable(err.to_string()),
        }
    }
}
