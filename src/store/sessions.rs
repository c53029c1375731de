//! Log-in sessions, found by the SHA-256 of their token. Every request asks the database, so a
//! revocation on one node holds on every node sharing it at once.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::entity::session;
use super::{now_ms, Store, StoreError};
use crate::ids::UserId;

impl Store {
    /// Records a new session that ends at `expires_at` (epoch ms).
    pub async fn create_session(
        &self,
        user: UserId,
        token_hash: String,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        session::ActiveModel {
            user_id: Set(user.0),
            token_hash: Set(token_hash),
            created_at: Set(now_ms()),
            expires_at: Set(expires_at),
            ..Default::default()
        }
        .insert(self.conn())
        .await?;
        Ok(())
    }

    /// The user a live (known, unexpired) token belongs to, and when the session ends (epoch
    /// ms), so a websocket opened with it can be closed at that moment.
    pub async fn session_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(UserId, i64)>, StoreError> {
        Ok(session::Entity::find()
            .filter(session::Column::TokenHash.eq(token_hash))
            .filter(session::Column::ExpiresAt.gt(now_ms()))
            .one(self.conn())
            .await?
            .map(|s| (UserId(s.user_id), s.expires_at)))
    }

    /// `user`'s live sessions, newest first.
    pub async fn sessions_of(&self, user: UserId) -> Result<Vec<session::Model>, StoreError> {
        Ok(session::Entity::find()
            .filter(session::Column::UserId.eq(user.0))
            .filter(session::Column::ExpiresAt.gt(now_ms()))
            .order_by_desc(session::Column::CreatedAt)
            .order_by_desc(session::Column::Id)
            .all(self.conn())
            .await?)
    }

    /// Revokes `user`'s session `id`; its token hash, or `None` when `user` has no such session.
    pub async fn revoke_session(
        &self,
        user: UserId,
        id: i64,
    ) -> Result<Option<String>, StoreError> {
        let Some(found) = session::Entity::find_by_id(id)
            .filter(session::Column::UserId.eq(user.0))
            .one(self.conn())
            .await?
        else {
            return Ok(None);
        };
        session::Entity::delete_by_id(found.id)
            .exec(self.conn())
            .await?;
        Ok(Some(found.token_hash))
    }

    /// Revokes one token.
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        session::Entity::delete_many()
            .filter(session::Column::TokenHash.eq(token_hash))
            .exec(self.conn())
            .await?;
        Ok(())
    }

    /// Revokes every session of `user` but the one presented (after a password change).
    pub async fn delete_other_sessions(
        &self,
        user: UserId,
        keep_token_hash: &str,
    ) -> Result<(), StoreError> {
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(user.0))
            .filter(session::Column::TokenHash.ne(keep_token_hash))
            .exec(self.conn())
            .await?;
        Ok(())
    }
}
