//! Imports: `import_jobs`, the rows of their files (`import_rows`, until processed) and
//! `leads.import_id`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ImportJobs {
    Table,
    Id,
    TenantId,
    Environment,
    ActorUserId,
    OnBehalfOfUserId,
    ApiKeyId,
    Format,
    OnDuplicate,
    SourceId,
    DryRun,
    Status,
    Ready,
    Total,
    Processed,
    Created,
    Updated,
    Skipped,
    Failed,
    Errors,
    LeaseUntil,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum ImportRows {
    Table,
    JobId,
    RowNo,
    Data,
}

#[derive(DeriveIden)]
enum Leads {
    Table,
    ImportId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ImportJobs::Table)
                .if_not_exists()
                .col(big_pk_auto(ImportJobs::Id))
                .col(big_integer(ImportJobs::TenantId))
                .col(string_len(ImportJobs::Environment, 16))
                .col(big_integer_null(ImportJobs::ActorUserId))
                .col(big_integer_null(ImportJobs::OnBehalfOfUserId))
                .col(big_integer_null(ImportJobs::ApiKeyId))
                .col(string_len(ImportJobs::Format, 16))
                .col(string_len(ImportJobs::OnDuplicate, 16))
                .col(big_integer_null(ImportJobs::SourceId))
                .col(boolean(ImportJobs::DryRun))
                .col(string_len(ImportJobs::Status, 16))
                .col(boolean(ImportJobs::Ready))
                .col(big_integer(ImportJobs::Total).default(0))
                .col(big_integer(ImportJobs::Processed).default(0))
                .col(big_integer(ImportJobs::Created).default(0))
                .col(big_integer(ImportJobs::Updated).default(0))
                .col(big_integer(ImportJobs::Skipped).default(0))
                .col(big_integer(ImportJobs::Failed).default(0))
                .col(json_binary(ImportJobs::Errors))
                .col(timestamp_with_time_zone_null(ImportJobs::LeaseUntil))
                .col(timestamp_with_time_zone(ImportJobs::CreatedAt))
                .col(timestamp_with_time_zone_null(ImportJobs::StartedAt))
                .col(timestamp_with_time_zone_null(ImportJobs::FinishedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_import_jobs_stream")
                .table(ImportJobs::Table)
                .col(ImportJobs::TenantId)
                .col(ImportJobs::Environment)
                .col(ImportJobs::Id)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ImportRows::Table)
                .if_not_exists()
                .col(big_integer(ImportRows::JobId))
                .col(big_integer(ImportRows::RowNo))
                .col(text(ImportRows::Data))
                .primary_key(
                    Index::create()
                        .col(ImportRows::JobId)
                        .col(ImportRows::RowNo),
                )
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Leads::Table)
                .add_column(big_integer_null(Leads::ImportId))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_leads_import_id")
                .table(Leads::Table)
                .col(Leads::ImportId)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("idx_leads_import_id")
                .table(Leads::Table)
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Leads::Table)
                .drop_column(Leads::ImportId)
                .to_owned(),
        )
        .await?;
        m.drop_table(
            Table::drop()
                .table(ImportRows::Table)
                .if_exists()
                .to_owned(),
        )
        .await?;
        m.drop_table(
            Table::drop()
                .table(ImportJobs::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}
