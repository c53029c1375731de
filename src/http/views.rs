//! The JSON shapes of the API's resources. Built from store rows here and only here, so no
//! field (a password hash, a token) can leak by being added to a table.

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{Attachment, Community, User};

/// A user as others see it. `online` is live presence.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub avatar: Option<String>,
    pub online: bool,
    /// Epoch milliseconds.
    pub created_at: i64,
}

impl UserView {
    pub fn new(user: User, online: bool) -> Self {
        Self {
            id: user.id,
            name: user.name,
            email: user.email,
            phone: user.phone,
            avatar: user.avatar,
            online,
            created_at: user.created_at,
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
}

impl From<Attachment> for AttachmentView {
    fn from(a: Attachment) -> Self {
        Self {
            id: a.id,
            url: format!("/uploads/{}", a.file_name),
            content_type: a.content_type,
            size: a.size,
        }
    }
}
