//! Request input several resources share, parsed once at the edge: display names and new
//! passwords into their types, search terms, and references to our own uploads. A rule broken
//! becomes `invalid_input` with a message that names the field.

use serde::Deserialize;

use super::error::ApiError;
use crate::app::App;
use crate::auth::Password;
use crate::names::DisplayName;

/// `?q=` for searches, or `?ids=` to look people up by id.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    /// Part of the name, case-insensitive.
    pub q: Option<String>,
    /// Comma-separated user ids (at most 100), instead of `q`: the accounts that exist, so a
    /// client learns that an account was deleted (it is absent) without a 404.
    pub ids: Option<String>,
}

/// A display name (`what` names the field in the message), normalised: see [`DisplayName`].
pub(super) fn display_name(raw: &str, max: usize, what: &str) -> Result<DisplayName, ApiError> {
    DisplayName::parse(raw, max).map_err(|e| ApiError::Invalid(format!("{what} {e}")))
}

/// A new password: see [`Password`].
pub(super) fn new_password(raw: String) -> Result<Password, ApiError> {
    Password::parse(raw).map_err(|e| ApiError::Invalid(e.to_string()))
}

/// A search term: 1..=`max` characters.
pub(super) fn search_term(q: &str, max: usize) -> Result<(), ApiError> {
    let n = q.chars().count();
    if n == 0 || n > max {
        return Err(ApiError::Invalid(format!("q must be 1-{max} characters")));
    }
    // A NUL or other control character can mean "anything" to some databases' LIKE; no name
    // contains one, so such a term is refused.
    if q.chars().any(char::is_control) {
        return Err(ApiError::Invalid(
            "q must not contain control characters".into(),
        ));
    }
    Ok(())
}

/// An image reference must point at one of our own uploads, so pages only ever load images
/// from `/uploads/`.
pub(super) async fn upload_url(app: &App, url: Option<String>) -> Result<Option<String>, ApiError> {
    match url {
        Some(u) => {
            let exists = match u.strip_prefix("/uploads/") {
                Some(file) => app.uploads.exists(file).await,
                None => false,
            };
            if exists {
                Ok(Some(u))
            } else {
                Err(ApiError::Invalid(
                    "image must be an existing /uploads/ URL from POST /api/attachments".into(),
                ))
            }
        }
        None => Ok(None),
    }
}
