//! Records of uploaded files.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set};

use super::entity::attachment;
use super::{now_ms, Attachment, Store, StoreError};
use crate::ids::UserId;

/// An upload whose bytes are already on disk.
pub struct NewAttachment {
    pub id: String,
    pub owner: UserId,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
}

impl Store {
    /// Records an upload.
    pub async fn create_attachment(&self, new: NewAttachment) -> Result<Attachment, StoreError> {
        Ok(attachment::ActiveModel {
            id: Set(new.id),
            owner_id: Set(Some(new.owner.0)),
            file_name: Set(new.file_name),
            content_type: Set(new.content_type),
            size: Set(new.size as i64),
            created_at: Set(now_ms()),
        }
        .insert(self.conn())
        .await?)
    }

    /// The record of a stored file, by its file name under `uploads/`.
    pub async fn attachment_by_file(&self, file_name: &str) -> Result<Attachment, StoreError> {
        attachment::Entity::find()
            .filter(attachment::Column::FileName.eq(file_name))
            .one(self.conn())
            .await?
            .ok_or(StoreError::NotFound("file"))
    }

    /// Bytes `user` has uploaded and still owns (for the per-user quota).
    pub async fn upload_bytes_of(&self, user: UserId) -> Result<u64, StoreError> {
        let sizes: Vec<i64> = attachment::Entity::find()
            .select_only()
            .column(attachment::Column::Size)
            .filter(attachment::Column::OwnerId.eq(user.0))
            .into_tuple()
            .all(self.conn())
            .await?;
        Ok(sizes.into_iter().map(|s| s.max(0) as u64).sum())
    }

    /// Forgets every upload of `user` and returns their file names (to remove from disk).
    pub async fn delete_attachments_of(&self, user: UserId) -> Result<Vec<String>, StoreError> {
        let files: Vec<String> = attachment::Entity::find()
            .select_only()
            .column(attachment::Column::FileName)
            .filter(attachment::Column::OwnerId.eq(user.0))
            .into_tuple()
            .all(self.conn())
            .await?;
        attachment::Entity::delete_many()
            .filter(attachment::Column::OwnerId.eq(user.0))
            .exec(self.conn())
            .await?;
        Ok(files)
    }
}
