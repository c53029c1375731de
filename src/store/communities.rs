//! Communities (groups) and their members.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use super::entity::{community, community_member};
use super::users::name_key;
use super::{contains_pattern, now_ms, Community, Store, StoreError, User};
use crate::ids::{CommunityId, ConversationId, UserId};

/// A validated community to create.
pub struct NewCommunity {
    pub name: String,
    pub icon: Option<String>,
    pub description: Option<String>,
}

impl Store {
    /// Creates a community with its owner as the first member, in one transaction.
    pub async fn create_community(
        &self,
        owner: UserId,
        new: NewCommunity,
    ) -> Result<Community, StoreError> {
        let now = now_ms();
        let tx = self.conn().begin().await?;
        let created = community::ActiveModel {
            name_key: Set(name_key(&new.name)),
            name: Set(new.name),
            owner_id: Set(Some(owner.0)),
            icon: Set(new.icon),
            description: Set(new.description),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&tx)
        .await?;
        community_member::ActiveModel {
            community_id: Set(created.id),
            user_id: Set(owner.0),
            joined_at: Set(now),
        }
        .insert(&tx)
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// One community.
    pub async fn community(&self, id: CommunityId) -> Result<Community, StoreError> {
        community::Entity::find_by_id(id.0)
            .one(self.conn())
            .await?
            .ok_or(StoreError::NotFound("community"))
    }

    /// The communities `user` is in, oldest first.
    pub async fn communities_of(&self, user: UserId) -> Result<Vec<Community>, StoreError> {
        let ids = self.community_ids_of(user).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(community::Entity::find()
            .filter(community::Column::Id.is_in(ids.iter().map(|c| c.0)))
            .order_by_asc(community::Column::Id)
            .all(self.conn())
            .await?)
    }

    /// The ids of the communities `user` is in.
    pub async fn community_ids_of(&self, user: UserId) -> Result<Vec<CommunityId>, StoreError> {
        Ok(community_member::Entity::find()
            .select_only()
            .column(community_member::Column::CommunityId)
            .filter(community_member::Column::UserId.eq(user.0))
            .into_tuple::<i64>()
            .all(self.conn())
            .await?
            .into_iter()
            .map(CommunityId)
            .collect())
    }

    /// Communities whose name contains `needle`, case-insensitively, at most `limit`.
    pub async fn search_communities(
        &self,
        needle: &str,
        limit: u64,
    ) -> Result<Vec<Community>, StoreError> {
        Ok(community::Entity::find()
            .filter(community::Column::NameKey.like(contains_pattern(&name_key(needle))))
            .order_by_asc(community::Column::Id)
            .limit(limit)
            .all(self.conn())
            .await?)
    }

    /// Adds `user` to a community.
    pub async fn join_community(
        &self,
        id: CommunityId,
        user: UserId,
    ) -> Result<Community, StoreError> {
        let found = self.community(id).await?;
        if self.is_member(id, user).await? {
            return Err(StoreError::AlreadyMember(id));
        }
        community_member::ActiveModel {
            community_id: Set(id.0),
            user_id: Set(user.0),
            joined_at: Set(now_ms()),
        }
        .insert(self.conn())
        .await
        .map_err(|e| {
            if StoreError::is_unique_violation(&e) {
                StoreError::AlreadyMember(id)
            } else {
                e.into()
            }
        })?;
        // A newcomer starts at the community's current end: offline delivery does not replay
        // the whole past (history stays readable through the REST route).
        let conversation = ConversationId::Group(id);
        let last = self.last_seq(conversation).await?;
        if last.0 > 0 {
            self.advance_read_cursor(user, conversation, last).await?;
        }
        Ok(found)
    }

    /// Removes `user` from a community; the community stays even if it empties.
    pub async fn leave_community(&self, id: CommunityId, user: UserId) -> Result<(), StoreError> {
        self.community(id).await?;
        let removed = community_member::Entity::delete_by_id((id.0, user.0))
            .exec(self.conn())
            .await?;
        if removed.rows_affected == 0 {
            return Err(StoreError::NotAMember(id));
        }
        Ok(())
    }

    /// Whether `user` is in the community.
    pub async fn is_member(&self, id: CommunityId, user: UserId) -> Result<bool, StoreError> {
        Ok(community_member::Entity::find_by_id((id.0, user.0))
            .count(self.conn())
            .await?
            > 0)
    }

    /// The member ids of a community (who a group message goes to).
    pub async fn member_ids(&self, id: CommunityId) -> Result<Vec<UserId>, StoreError> {
        Ok(community_member::Entity::find()
            .select_only()
            .column(community_member::Column::UserId)
            .filter(community_member::Column::CommunityId.eq(id.0))
            .into_tuple::<i64>()
            .all(self.conn())
            .await?
            .into_iter()
            .map(UserId)
            .collect())
    }

    /// The members of a community as users, by name.
    pub async fn members(&self, id: CommunityId) -> Result<Vec<User>, StoreError> {
        let ids = self.member_ids(id).await?;
        self.users_by_name(&ids).await
    }

    /// Member counts for the given communities (for the community JSON).
    pub async fn member_counts(
        &self,
        ids: &[CommunityId],
    ) -> Result<HashMap<CommunityId, u64>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(i64, i64)> = community_member::Entity::find()
            .select_only()
            .column(community_member::Column::CommunityId)
            .column_as(community_member::Column::UserId.count(), "n")
            .filter(community_member::Column::CommunityId.is_in(ids.iter().map(|c| c.0)))
            .group_by(community_member::Column::CommunityId)
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(rows
            .into_iter()
            .map(|(c, n)| (CommunityId(c), n.max(0) as u64))
            .collect())
    }
}
