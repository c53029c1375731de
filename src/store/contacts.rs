//! Friendships. Adding is mutual at once (GinChat's model): two rows, one per direction,
//! written and removed in one transaction so the pair can never be half there.

use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, Set, TransactionTrait};

use super::entity::contact;
use super::{now_ms, Store, StoreError, User};
use crate::ids::UserId;

impl Store {
    /// Makes `a` and `b` contacts of each other.
    pub async fn add_contact(&self, a: UserId, b: UserId) -> Result<User, StoreError> {
        let other = self.user(b).await?;
        let mut attempt = 1;
        loop {
            match self.insert_contact_pair(a, b).await {
                Ok(()) => return Ok(other),
                Err(e) if StoreError::is_unique_violation(&e) => {
                    return Err(StoreError::AlreadyContact(b))
                }
                // Two racing adds of one pair can deadlock on InnoDB's insert locks; the retry
                // then meets the winner's rows and answers "already".
                Err(e) if attempt < 3 && StoreError::is_retryable(&e) => {
                    tracing::debug!(%e, attempt, "adding a contact: retrying");
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Both rows of a friendship in one transaction. Write first, read never: the unique key
    /// answers "already", and an SQLite transaction that starts with a write waits for the lock
    /// instead of failing on a stale snapshot.
    async fn insert_contact_pair(&self, a: UserId, b: UserId) -> Result<(), DbErr> {
        let tx = self.conn().begin().await?;
        let now = now_ms();
        let row = |owner: UserId, other: UserId| contact::ActiveModel {
            owner_id: Set(owner.0),
            contact_id: Set(other.0),
            created_at: Set(now),
        };
        contact::Entity::insert_many([row(a, b), row(b, a)])
            .exec(&tx)
            .await?;
        tx.commit().await
    }

    /// Ends the friendship in both directions.
    pub async fn remove_contact(&self, a: UserId, b: UserId) -> Result<(), StoreError> {
        let tx = self.conn().begin().await?;
        let removed = contact::Entity::delete_many()
            .filter(
                (contact::Column::OwnerId
                    .eq(a.0)
                    .and(contact::Column::ContactId.eq(b.0)))
                .or(contact::Column::OwnerId
                    .eq(b.0)
                    .and(contact::Column::ContactId.eq(a.0))),
            )
            .exec(&tx)
            .await?;
        if removed.rows_affected == 0 {
            return Err(StoreError::NotAContact(b));
        }
        tx.commit().await?;
        Ok(())
    }

    /// `user`'s contacts, by name.
    pub async fn contacts(&self, user: UserId) -> Result<Vec<User>, StoreError> {
        let ids = self.contact_ids(user).await?;
        self.users_by_name(&ids).await
    }

    /// The ids of `user`'s contacts (who hears about their presence).
    pub async fn contact_ids(&self, user: UserId) -> Result<Vec<UserId>, StoreError> {
        Ok(contact::Entity::find()
            .select_only()
            .column(contact::Column::ContactId)
            .filter(contact::Column::OwnerId.eq(user.0))
            .into_tuple::<i64>()
            .all(self.conn())
            .await?
            .into_iter()
            .map(UserId)
            .collect())
    }
}
