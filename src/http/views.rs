//! The JSON shapes of the API's resources. Built from store rows here and only here, so no
//! field (a password hash, a token) can leak by being added to a table.

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::App;
use crate::ids::UserId;
use crate::store::{Attachment, Community, User};

/// A user. `online` is live presence. `email` and `phone` are shown to the user themselves
/// only; everyone else gets `null`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub name: String,
    /// Only in the user's own view.
    pub email: Option<String>,
    /// Only in the user's own view.
    pub phone: Option<String>,
    pub avatar: Option<String>,
    pub online: bool,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// When they were last online (epoch ms); `null` if never recorded. Shown while offline.
    pub last_seen: Option<i64>,
}

impl UserView {
    /// The user as others see them: no email, no phone.
    pub fn new(user: User, online: bool) -> Self {
        Self {
            email: None,
            phone: None,
            ..Self::own(user, online)
        }
    }

    /// The user as they see themselves, contact details included.
    pub fn own(user: User, online: bool) -> Self {
        Self {
            id: user.id,
            name: user.name,
            email: user.email,
            phone: user.phone,
            avatar: user.avatar,
            online,
            created_at: user.created_at,
            last_seen: user.last_seen,
        }
    }
}

/// A community (group).
#[derive(Debug, Serialize, ToSchema)]
pub struct CommunityView {
    pub id: i64,
    pub name: String,
    /// Null once the owner has deleted their account.
    pub owner_id: Option<i64>,
    pub icon: Option<String>,
    pub description: Option<String>,
    pub member_count: u64,
    /// Epoch milliseconds.
    pub created_at: i64,
}

impl CommunityView {
    pub fn new(community: Community, member_count: u64) -> Self {
        Self {
            id: community.id,
            name: community.name,
            owner_id: community.owner_id,
            icon: community.icon,
            description: community.description,
            member_count,
            created_at: community.created_at,
        }
    }
}

/// A stored upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentView {
    pub id: String,
    /// Where to fetch it: `/uploads/<uuid>.<ext>`.
    pub url: String,
    pub content_type: String,
    pub size: i64,
    /// Pixels, when the image's header tells; also in the URL (`<uuid>.<w>x<h>.<ext>`).
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl From<Attachment> for AttachmentView {
    fn from(a: Attachment) -> Self {
        let size = a
            .file_name
            .split('.')
            .nth(1)
            .and_then(crate::upload::parse_dimensions);
        Self {
            id: a.id,
            url: format!("/uploads/{}", a.file_name),
            content_type: a.content_type,
            size: a.size,
            width: size.map(|(w, _)| w),
            height: size.map(|(_, h)| h),
        }
    }
}

/// Another user as the caller sees them, with live presence.
pub(super) async fn user_view(app: &App, user: User) -> UserView {
    let online = app.presence.is_online(UserId(user.id)).await;
    UserView::new(user, online)
}

/// Users as the caller sees them, with live presence (one presence look-up for all).
pub(super) async fn user_views(app: &App, users: Vec<User>) -> Vec<UserView> {
    let ids: Vec<UserId> = users.iter().map(|u| UserId(u.id)).collect();
    let online = app.presence.online_among(&ids).await;
    users
        .into_iter()
        .map(|u| {
            let on = online.contains(&UserId(u.id));
            UserView::new(u, on)
        })
        .collect()
}
