//! Drops the foreign key from `messages.conversation_id` to `conversations.id` on PostgreSQL
//! and MySQL/MariaDB.
//!
//! Every message is written in the transaction that locks and bumps its conversation's
//! `last_seq` (the write fails when that row is missing), and nothing deletes conversations,
//! so the key checked nothing the write path does not. It cost one referential check per row,
//! which on PostgreSQL is a query of its own: about a tenth of the private-message rate
//! (docs/performance.md). SQLite keeps it: there the check is an index probe in-process, and
//! dropping a key means rebuilding the table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

const KEY: &str = "fk_messages_conversation";

#[derive(DeriveIden)]
enum Messages {
    Table,
    ConversationId,
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Id,
}

/// Whether `messages` still has the key (a node that raced this one may have dropped it).
async fn has_key(manager: &SchemaManager<'_>) -> Result<bool, DbErr> {
    let db = manager.get_connection();
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT 1 FROM information_schema.table_constraints \
             WHERE table_name = 'messages' AND constraint_name = $1 \
             AND constraint_schema = current_schema()"
        }
        _ => {
            "SELECT 1 FROM information_schema.table_constraints \
             WHERE table_name = 'messages' AND constraint_name = ? \
             AND constraint_schema = DATABASE()"
        }
    };
    let found = db
        .query_one(Statement::from_sql_and_values(backend, sql, [KEY.into()]))
        .await?;
    Ok(found.is_some())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Sqlite || !has_key(manager).await? {
            return Ok(());
        }
        manager
            .drop_foreign_key(
                ForeignKey::drop()
                    .name(KEY)
                    .table(Messages::Table)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Sqlite || has_key(manager).await? {
            return Ok(());
        }
        manager
            .create_foreign_key(
                ForeignKey::create()
                    .name(KEY)
                    .from(Messages::Table, Messages::ConversationId)
                    .to(Conversations::Table, Conversations::Id)
                    .on_delete(ForeignKeyAction::Cascade)
                    .to_owned(),
            )
            .await
    }
}
