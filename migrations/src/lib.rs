//! Schema migrations for Chorus, one file per step, run by the server at start-up
//! (`Migrator::up`). They are written with sea-query so the same steps build the schema on
//! SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! Conventions: times are Unix epoch milliseconds in `BIGINT`; uuids are 36-char strings (portable
//! across the three backends); names that must be unique are also kept lower-cased in a `*_key`
//! column with a unique index, so "Alice" and "alice" collide everywhere, not only on MySQL's
//! case-insensitive collations.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_accounts;
mod m20261125_000002_social;
mod m20261125_000003_messaging;
mod m20261125_000004_attachments;
mod m20261126_000005_client_id_bytes;
mod m20261126_000006_last_seen;
mod m20261126_000007_message_conversation_unchecked;

/// Every migration, in the order it must run.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_accounts::Migration),
            Box::new(m20261125_000002_social::Migration),
            Box::new(m20261125_000003_messaging::Migration),
            Box::new(m20261125_000004_attachments::Migration),
            Box::new(m20261126_000005_client_id_bytes::Migration),
            Box::new(m20261126_000006_last_seen::Migration),
            Box::new(m20261126_000007_message_conversation_unchecked::Migration),
        ]
    }
}
