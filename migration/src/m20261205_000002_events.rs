//! The change feed: `events` (the outbox every lead change appends to in its transaction) and
//! `event_streams`, one row per tenant and environment, whose lock orders the events of a
//! stream by commit.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EventStreams {
    Table,
    TenantId,
    Environment,
    LastSeq,
    PrunedThrough,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    TenantId,
    Environment,
    Seq,
    EventType,
    OccurredAt,
    ResourceType,
    ResourceId,
    ActorUserId,
    OnBehalfOfUserId,
    ApiKeyId,
    Data,
    Changes,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(EventStreams::Table)
                .if_not_exists()
                .col(big_integer(EventStreams::TenantId))
                .col(string_len(EventStreams::Environment, 16))
                .col(big_integer(EventStreams::LastSeq).default(0))
                .col(big_integer(EventStreams::PrunedThrough).default(0))
                .primary_key(
                    Index::create()
                        .col(EventStreams::TenantId)
                        .col(EventStreams::Environment),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Events::Table)
                .if_not_exists()
                .col(big_pk_auto(Events::Id))
                .col(big_integer(Events::TenantId))
                .col(string_len(Events::Environment, 16))
                .col(big_integer(Events::Seq))
                .col(string_len(Events::EventType, 32))
                .col(timestamp_with_time_zone(Events::OccurredAt))
                .col(string_len(Events::ResourceType, 32))
                .col(big_integer_null(Events::ResourceId))
                .col(big_integer_null(Events::ActorUserId))
                .col(big_integer_null(Events::OnBehalfOfUserId))
                .col(big_integer_null(Events::ApiKeyId))
                .col(json_binary(Events::Data))
                .col(json_binary_null(Events::Changes))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_events_stream_seq")
                .table(Events::Table)
                .col(Events::TenantId)
                .col(Events::Environment)
                .col(Events::Seq)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Events::Table).if_exists().to_owned())
            .await?;
        m.drop_table(
            Table::drop()
                .table(EventStreams::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}
