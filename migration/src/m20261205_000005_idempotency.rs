//! `idempotency_keys`: the first completed response of each `Idempotency-Key`, per tenant,
//! environment and credential, kept for a day so a retried write is answered, not repeated.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Id,
    TenantId,
    Environment,
    Credential,
    Key,
    Fingerprint,
    StatusCode,
    ResponseHeaders,
    ResponseBody,
    StartedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(IdempotencyKeys::Table)
                .if_not_exists()
                .col(big_pk_auto(IdempotencyKeys::Id))
                .col(big_integer(IdempotencyKeys::TenantId))
                .col(string_len(IdempotencyKeys::Environment, 16))
                .col(string_len(IdempotencyKeys::Credential, 32))
                .col(string_len(IdempotencyKeys::Key, 255))
                .col(string_len(IdempotencyKeys::Fingerprint, 64))
                .col(integer_null(IdempotencyKeys::StatusCode))
                .col(json_binary_null(IdempotencyKeys::ResponseHeaders))
                .col(text_null(IdempotencyKeys::ResponseBody))
                .col(timestamp_with_time_zone(IdempotencyKeys::StartedAt))
                .col(timestamp_with_time_zone(IdempotencyKeys::ExpiresAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_idempotency_keys_scope")
                .table(IdempotencyKeys::Table)
                .col(IdempotencyKeys::TenantId)
                .col(IdempotencyKeys::Environment)
                .col(IdempotencyKeys::Credential)
                .col(IdempotencyKeys::Key)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_idempotency_keys_expires_at")
                .table(IdempotencyKeys::Table)
                .col(IdempotencyKeys::ExpiresAt)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table(IdempotencyKeys::Table)
                .if_exists()
                .to_owned(),
        )
        .await
    }
}
