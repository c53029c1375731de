//! Conversations, their messages and each user's read cursor.
//!
//! A conversation names its participants in columns (`user_low`/`user_high` for a private
//! conversation, both the same user for a system conversation, `community_id` for a group), so
//! "everything this user missed" is an indexed query, not a parse of ids.
//!
//! `conversations.last_seq` is the per-conversation counter: a writer bumps it inside the same
//! transaction that inserts the message, so `seq` stays gapless and strictly increasing even
//! when several nodes write to one database. The unique `(conversation_id, seq)` index is the
//! backstop; the unique `(sender_id, client_id)` index makes a retried send idempotent.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Id,
    Kind,
    UserLow,
    UserHigh,
    CommunityId,
    LastSeq,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    ConversationId,
    Seq,
    SenderId,
    Media,
    Content,
    ClientId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ReadCursors {
    Table,
    UserId,
    ConversationId,
    Seq,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Conversations::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Conversations::Id)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Conversations::Kind).string_len(8).not_null())
                    .col(ColumnDef::new(Conversations::UserLow).big_integer().null())
                    .col(ColumnDef::new(Conversations::UserHigh).big_integer().null())
                    .col(
                        ColumnDef::new(Conversations::CommunityId)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Conversations::LastSeq)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Conversations::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_conversations_user_low", Conversations::UserLow),
            ("ix_conversations_user_high", Conversations::UserHigh),
            ("ix_conversations_community", Conversations::CommunityId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .if_not_exists()
                        .table(Conversations::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Messages::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Messages::ConversationId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Messages::Seq).big_integer().not_null())
                    .col(ColumnDef::new(Messages::SenderId).big_integer().null())
                    .col(ColumnDef::new(Messages::Media).string_len(16).not_null())
                    .col(ColumnDef::new(Messages::Content).text().not_null())
                    .col(ColumnDef::new(Messages::ClientId).string_len(64).null())
                    .col(ColumnDef::new(Messages::CreatedAt).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_messages_conversation")
                            .from(Messages::Table, Messages::ConversationId)
                            .to(Conversations::Table, Conversations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_messages_conversation_seq")
                    .if_not_exists()
                    .table(Messages::Table)
                    .col(Messages::ConversationId)
                    .col(Messages::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_messages_sender_client")
                    .if_not_exists()
                    .table(Messages::Table)
                    .col(Messages::SenderId)
                    .col(Messages::ClientId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReadCursors::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(ReadCursors::UserId).big_integer().not_null())
                    .col(
                        ColumnDef::new(ReadCursors::ConversationId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(ReadCursors::Seq).big_integer().not_null())
                    .col(
                        ColumnDef::new(ReadCursors::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ReadCursors::UserId)
                            .col(ReadCursors::ConversationId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ReadCursors::Table.into_iden(),
            Messages::Table.into_iden(),
            Conversations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
