//! `event_streams.endpoints`: how many enabled webhook endpoints a stream has, kept by every
//! endpoint write under the stream's lock, so appending an event knows without a look-up
//! whether it has deliveries to queue.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EventStreams {
    Table,
    Endpoints,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(EventStreams::Table)
                .add_column(
                    ColumnDef::new(EventStreams::Endpoints)
                        .big_integer()
                        .not_null()
                        .default(0),
                )
                .to_owned(),
        )
        .await?;
        // Both databases speak this upsert.
        m.get_connection()
            .execute_unprepared(
                "INSERT INTO event_streams (tenant_id, environment, last_seq, pruned_through, endpoints) \
                 SELECT tenant_id, environment, 0, 0, COUNT(*) FROM webhook_endpoints \
                 WHERE enabled GROUP BY tenant_id, environment \
                 ON CONFLICT (tenant_id, environment) DO UPDATE SET endpoints = excluded.endpoints",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(EventStreams::Table)
                .drop_column(EventStreams::Endpoints)
                .to_owned(),
        )
        .await
    }
}
