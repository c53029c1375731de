//! Contacts (mutual friendships, one row per direction) and communities with their members.

use sea_orm_migration::prelude::*;

use crate::m20261125_000001_accounts::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Contacts {
    Table,
    OwnerId,
    ContactId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Communities {
    Table,
    Id,
    Name,
    NameKey,
    OwnerId,
    Icon,
    Description,
    CreatedAt,
}

#[derive(DeriveIden)]
enum CommunityMembers {
    Table,
    CommunityId,
    UserId,
    JoinedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Contacts::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Contacts::OwnerId).big_integer().not_null())
                    .col(ColumnDef::new(Contacts::ContactId).big_integer().not_null())
                    .col(ColumnDef::new(Contacts::CreatedAt).big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(Contacts::OwnerId)
                            .col(Contacts::ContactId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_contacts_owner")
                            .from(Contacts::Table, Contacts::OwnerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_contacts_contact")
                            .from(Contacts::Table, Contacts::ContactId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Communities::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Communities::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Communities::Name).string_len(128).not_null())
                    .col(
                        ColumnDef::new(Communities::NameKey)
                            .string_len(128)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Communities::OwnerId).big_integer().null())
                    .col(ColumnDef::new(Communities::Icon).string_len(255).null())
                    .col(ColumnDef::new(Communities::Description).text().null())
                    .col(
                        ColumnDef::new(Communities::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_communities_owner")
                            .from(Communities::Table, Communities::OwnerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_communities_name_key")
                    .if_not_exists()
                    .table(Communities::Table)
                    .col(Communities::NameKey)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CommunityMembers::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(CommunityMembers::CommunityId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CommunityMembers::UserId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(CommunityMembers::JoinedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(CommunityMembers::CommunityId)
                            .col(CommunityMembers::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_members_community")
                            .from(CommunityMembers::Table, CommunityMembers::CommunityId)
                            .to(Communities::Table, Communities::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_members_user")
                            .from(CommunityMembers::Table, CommunityMembers::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_members_user")
                    .if_not_exists()
                    .table(CommunityMembers::Table)
                    .col(CommunityMembers::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CommunityMembers::Table.into_iden(),
            Communities::Table.into_iden(),
            Contacts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
