//! Client ids compare as bytes on MySQL/MariaDB too.
//!
//! The unique `(sender_id, client_id)` index follows the column's collation, which on
//! MySQL/MariaDB was case-insensitive and ignored trailing spaces, while the writer's
//! earlier-send lookup (and SQLite and PostgreSQL) compare bytes: `Msg-1` then `msg-1` passed the
//! lookup and broke the index. A binary, no-pad collation makes every backend agree that those
//! are two different ids. SQLite and PostgreSQL already compare bytes; nothing changes there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::MySql {
            return Ok(());
        }
        let db = manager.get_connection();
        // MariaDB spells the no-pad binary collation `utf8mb4_nopad_bin`, MySQL 8
        // `utf8mb4_0900_bin`; older servers only have `utf8mb4_bin`, which still pads.
        let found = db
            .query_one(Statement::from_string(
                DbBackend::MySql,
                "SELECT COLLATION_NAME AS name FROM information_schema.COLLATIONS \
                 WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin') \
                 ORDER BY COLLATION_NAME LIMIT 1",
            ))
            .await?;
        let collation = match found {
            Some(row) => row.try_get::<String>("", "name")?,
            None => "utf8mb4_bin".to_owned(),
        };
        db.execute_unprepared(&format!(
            "ALTER TABLE messages MODIFY client_id VARCHAR(64) \
             CHARACTER SET utf8mb4 COLLATE {collation} NULL"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::MySql {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE messages MODIFY client_id VARCHAR(64) \
                 CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL",
            )
            .await?;
        Ok(())
    }
}
