//! Accounts: create, find, change, delete.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};

use super::entity::{community_member, contact, session, user};
use super::{contains_pattern, now_ms, Store, StoreError, User};
use crate::ids::UserId;

/// A validated registration; the password is already hashed.
pub struct NewUser {
    pub name: String,
    pub password_hash: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A profile update: `None` leaves a field alone, `Some(None)` clears an optional one.
#[derive(Default)]
pub struct UserChanges {
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub avatar: Option<Option<String>>,
}

/// The key that name uniqueness, log-in and search use: the name's skeleton, so "Alice",
/// "alice" and "аlice" (Cyrillic а) are one name everywhere.
pub(crate) fn name_key(name: &str) -> String {
    crate::names::skeleton(name)
}

impl Store {
    /// Brings name keys stored by an older rule (plain lower case) up to the skeleton, so old
    /// accounts still log in and still block look-alikes. A key another account already holds
    /// stays as it was (logged): two old names that are now confusable keep working.
    pub(super) async fn rekey_names(&self) -> Result<(), StoreError> {
        use super::entity::community;
        for row in user::Entity::find().all(self.conn()).await? {
            let key = name_key(&row.name);
            if key != row.name_key {
                let mut active: user::ActiveModel = row.into();
                active.name_key = Set(key);
                if let Err(err) = active.update(self.conn()).await {
                    tracing::warn!(%err, "name key left as it was");
                }
            }
        }
        for row in community::Entity::find().all(self.conn()).await? {
            let key = name_key(&row.name);
            if key != row.name_key {
                let mut active: community::ActiveModel = row.into();
                active.name_key = Set(key);
                active.update(self.conn()).await?;
            }
        }
        Ok(())
    }

    /// Registers a user; `NameTaken` if the name (case-insensitively) is in use.
    pub async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let row = user::ActiveModel {
            name_key: Set(name_key(&new.name)),
            name: Set(new.name),
            password_hash: Set(new.password_hash),
            email: Set(new.email),
            phone: Set(new.phone),
            avatar: Set(None),
            created_at: Set(now_ms()),
            ..Default::default()
        };
        row.insert(self.conn()).await.map_err(|e| {
            if StoreError::is_unique_violation(&e) {
                StoreError::NameTaken
            } else {
                e.into()
            }
        })
    }

    /// One user by id.
    pub async fn user(&self, id: UserId) -> Result<User, StoreError> {
        user::Entity::find_by_id(id.0)
            .one(self.conn())
            .await?
            .ok_or(StoreError::NotFound("user"))
    }

    /// Users by ids, in id order; unknown ids are skipped.
    pub async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(user::Entity::find()
            .filter(user::Column::Id.is_in(ids.iter().map(|u| u.0)))
            .order_by_asc(user::Column::Id)
            .all(self.conn())
            .await?)
    }

    /// The accounts among `ids` that exist (deleted ones are absent), by name.
    pub async fn users_by_ids(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        self.users_by_name(ids).await
    }

    /// Users by ids, by name; unknown ids are skipped.
    pub(super) async fn users_by_name(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(user::Entity::find()
            .filter(user::Column::Id.is_in(ids.iter().map(|u| u.0)))
            .order_by_asc(user::Column::NameKey)
            .all(self.conn())
            .await?)
    }

    /// The user with this name, case-insensitively (for log-in).
    pub async fn user_by_name(&self, name: &str) -> Result<Option<User>, StoreError> {
        Ok(user::Entity::find()
            .filter(user::Column::NameKey.eq(name_key(name)))
            .one(self.conn())
            .await?)
    }

    /// Users whose name contains `needle`, case-insensitively, at most `limit`, by id.
    pub async fn search_users(&self, needle: &str, limit: u64) -> Result<Vec<User>, StoreError> {
        Ok(user::Entity::find()
            .filter(user::Column::NameKey.like(contains_pattern(&name_key(needle))))
            .order_by_asc(user::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?)
    }

    /// Applies a profile update and returns the new profile.
    pub async fn update_user(&self, id: UserId, changes: UserChanges) -> Result<User, StoreError> {
        let current = self.user(id).await?;
        let mut row: user::ActiveModel = current.into();
        if let Some(name) = changes.name {
            row.name_key = Set(name_key(&name));
            row.name = Set(name);
        }
        if let Some(hash) = changes.password_hash {
            row.password_hash = Set(hash);
        }
        if let Some(email) = changes.email {
            row.email = Set(email);
        }
        if let Some(phone) = changes.phone {
            row.phone = Set(phone);
        }
        if let Some(avatar) = changes.avatar {
            row.avatar = Set(avatar);
        }
        row.update(self.conn()).await.map_err(|e| {
            if StoreError::is_unique_violation(&e) {
                StoreError::NameTaken
            } else {
                e.into()
            }
        })
    }

    /// Records that `user` was online until `at` (their last connection closed).
    pub async fn set_last_seen(&self, user: UserId, at: i64) -> Result<(), StoreError> {
        user::Entity::update_many()
            .col_expr(user::Column::LastSeen, sea_orm::sea_query::Expr::value(at))
            .filter(user::Column::Id.eq(user.0))
            .exec(self.conn())
            .await?;
        Ok(())
    }

    /// Deletes a user with their sessions, contacts (both directions) and memberships, in one
    /// transaction. Their messages stay: the other side's history must not change.
    pub async fn delete_user(&self, id: UserId) -> Result<(), StoreError> {
        let tx = self.conn().begin().await?;
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(id.0))
            .exec(&tx)
            .await?;
        contact::Entity::delete_many()
            .filter(
                contact::Column::OwnerId
                    .eq(id.0)
                    .or(contact::Column::ContactId.eq(id.0)),
            )
            .exec(&tx)
            .await?;
        community_member::Entity::delete_many()
            .filter(community_member::Column::UserId.eq(id.0))
            .exec(&tx)
            .await?;
        let deleted = user::Entity::delete_by_id(id.0).exec(&tx).await?;
        if deleted.rows_affected == 0 {
            return Err(StoreError::NotFound("user"));
        }
        tx.commit().await?;
        Ok(())
    }
}
