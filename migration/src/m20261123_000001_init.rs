//! Creates every table with the indexes its queries use.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Settings {
    Table,
    Key,
    Value,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    Slug,
    Plan,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    TenantId,
    Email,
    Name,
    Role,
    PasswordHash,
    Active,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    UserId,
    FamilyId,
    TokenHash,
    ExpiresAt,
    RevokedAt,
    ReplacedBy,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    UserId,
    Label,
    Prefix,
    KeyHash,
    Environment,
    Scope,
    Active,
    ExpiresAt,
    LastUsedAt,
    UsageCount,
    DeletedAt,
}

#[derive(DeriveIden)]
enum Sources {
    Table,
    Id,
    TenantId,
    Environment,
    Name,
    Channel,
    Description,
    WebhookTokenHash,
}

#[derive(DeriveIden)]
enum Pipelines {
    Table,
    Id,
    TenantId,
    Environment,
    Name,
}

#[derive(DeriveIden)]
enum Stages {
    Table,
    Id,
    TenantId,
    Environment,
    PipelineId,
    Name,
    Position,
}

#[derive(DeriveIden)]
enum Leads {
    Table,
    Id,
    TenantId,
    Environment,
    Email,
    EmailNormalized,
    FirstName,
    LastName,
    Phone,
    PhoneNormalized,
    Source,
    SourceId,
    PipelineId,
    StageId,
    Status,
    Score,
    AssignedTo,
    CustomFields,
    DuplicateOf,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum LeadTags {
    Table,
    LeadId,
    TenantId,
    Environment,
    Tag,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    TenantId,
    Environment,
    ActorUserId,
    OnBehalfOfUserId,
    ApiKeyId,
    Action,
    ResourceType,
    ResourceId,
    Changes,
    Ip,
    RequestId,
}

/// A table with `created_at` and `updated_at` as `timestamptz` (written by the application).
fn table_ts<T: IntoIden + 'static>(name: T) -> TableCreateStatement {
    Table::create()
        .table(name)
        .if_not_exists()
        .col(timestamp_with_time_zone(Alias::new("created_at")))
        .col(timestamp_with_time_zone(Alias::new("updated_at")))
        .to_owned()
}

fn fk(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(on_delete)
        .to_owned()
}

fn index(name: &str, table: impl IntoIden, cols: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(name).table(table).if_not_exists();
    for col in cols {
        stmt.col(Alias::new(*col));
    }
    stmt.to_owned()
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Settings::Table)
                .if_not_exists()
                .col(string(Settings::Key).primary_key())
                .col(text(Settings::Value))
                .to_owned(),
        )
        .await?;

        m.create_table(
            table_ts(Tenants::Table)
                .col(big_pk_auto(Tenants::Id))
                .col(string(Tenants::Name))
                .col(string_uniq(Tenants::Slug))
                .col(string_len(Tenants::Plan, 16))
                .to_owned(),
        )
        .await?;

        m.create_table(
            table_ts(Users::Table)
                .col(big_pk_auto(Users::Id))
                .col(big_integer(Users::TenantId))
                // Stored lower-cased, so the unique key is case-insensitive.
                .col(string_uniq(Users::Email))
                .col(string(Users::Name))
                .col(string_len(Users::Role, 16))
                .col(string(Users::PasswordHash))
                .col(boolean(Users::Active).default(true))
                .foreign_key(&mut fk(
                    "fk_users_tenant",
                    (Users::Table, Users::TenantId),
                    (Tenants::Table, Tenants::Id),
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index("idx_users_tenant", Users::Table, &["tenant_id"]))
            .await?;

        m.create_table(
            table_ts(RefreshTokens::Table)
                .col(big_pk_auto(RefreshTokens::Id))
                .col(big_integer(RefreshTokens::UserId))
                .col(string_len(RefreshTokens::FamilyId, 64))
                .col(string_len_uniq(RefreshTokens::TokenHash, 64))
                .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                .col(timestamp_with_time_zone_null(RefreshTokens::RevokedAt))
                .col(big_integer_null(RefreshTokens::ReplacedBy))
                .foreign_key(&mut fk(
                    "fk_refresh_tokens_user",
                    (RefreshTokens::Table, RefreshTokens::UserId),
                    (Users::Table, Users::Id),
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "idx_refresh_tokens_family",
            RefreshTokens::Table,
            &["family_id"],
        ))
        .await?;

        m.create_table(
            table_ts(ApiKeys::Table)
                .col(big_pk_auto(ApiKeys::Id))
                .col(big_integer(ApiKeys::TenantId))
                .col(big_integer(ApiKeys::UserId))
                .col(string(ApiKeys::Label))
                .col(string_len(ApiKeys::Prefix, 32))
                .col(string_len_uniq(ApiKeys::KeyHash, 64))
                .col(string_len(ApiKeys::Environment, 16))
                .col(string_len(ApiKeys::Scope, 16))
                .col(boolean(ApiKeys::Active).default(true))
                .col(timestamp_with_time_zone_null(ApiKeys::ExpiresAt))
                .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                .col(big_integer(ApiKeys::UsageCount).default(0))
                // Deleted keys are kept (without listing them) so their use answers REVOKED_TOKEN.
                .col(timestamp_with_time_zone_null(ApiKeys::DeletedAt))
                .foreign_key(&mut fk(
                    "fk_api_keys_tenant",
                    (ApiKeys::Table, ApiKeys::TenantId),
                    (Tenants::Table, Tenants::Id),
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    "fk_api_keys_user",
                    (ApiKeys::Table, ApiKeys::UserId),
                    (Users::Table, Users::Id),
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "idx_api_keys_tenant",
            ApiKeys::Table,
            &["tenant_id", "user_id"],
        ))
        .await?;

        m.create_table(
            table_ts(Sources::Table)
                .col(big_pk_auto(Sources::Id))
                .col(big_integer(Sources::TenantId))
                .col(string_len(Sources::Environment, 16))
                .col(string(Sources::Name))
                .col(string_len(Sources::Channel, 16))
                .col(text_null(Sources::Description))
                .col(string_len_null(Sources::WebhookTokenHash, 64).unique_key())
                .foreign_key(&mut fk(
                    "fk_sources_tenant",
                    (Sources::Table, Sources::TenantId),
                    (Tenants::Table, Tenants::Id),
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "idx_sources_tenant_env",
            Sources::Table,
            &["tenant_id", "environment", "id"],
        ))
        .await?;

        m.create_table(
            table_ts(Pipelines::Table)
                .col(big_pk_auto(Pipelines::Id))
                .col(big_integer(Pipelines::TenantId))
                .col(string_len(Pipelines::Environment, 16))
                .col(string(Pipelines::Name))
                .foreign_key(&mut fk(
                    "fk_pipelines_tenant",
                    (Pipelines::Table, Pipelines::TenantId),
                    (Tenants::Table, Tenants::Id),
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "idx_pipelines_tenant_env",
            Pipelines::Table,
            &["tenant_id", "environment", "id"],
        ))
        .await?;

        m.create_table(
            table_ts(Stages::Table)
                .col(big_pk_auto(Stages::Id))
                .col(big_integer(Stages::TenantId))
                .col(string_len(Stages::Environment, 16))
                .col(big_integer(Stages::PipelineId))
                .col(string(Stages::Name))
                .col(integer(Stages::Position))
                .foreign_key(&mut fk(
                    "fk_stages_pipeline",
                    (Stages::Table, Stages::PipelineId),
                    (Pipelines::Table, Pipelines::Id),
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "idx_stages_pipeline",
            Stages::Table,
            &["pipeline_id", "position"],
        ))
        .await?;
        m.create_index(index(
            "idx_stages_tenant_env",
            Stages::Table,
            &["tenant_id", "environment"],
        ))
        .await?;

        m.create_table(
            Table::create()
                .table(Leads::Table)
                .if_not_exists()
                .col(big_pk_auto(Leads::Id))
                .col(big_integer(Leads::TenantId))
                .col(string_len(Leads::Environment, 16))
                .col(string(Leads::Email))
                .col(string(Leads::EmailNormalized))
                .col(string_len(Leads::FirstName, 100))
                .col(string_len(Leads::LastName, 100))
                .col(string_len_null(Leads::Phone, 64))
                .col(string_len_null(Leads::PhoneNormalized, 32))
                .col(string_len_null(Leads::Source, 16))
                .col(big_integer_null(Leads::SourceId))
                .col(big_integer_null(Leads::PipelineId))
                .col(big_integer_null(Leads::StageId))
                .col(string_len(Leads::Status, 16))
                .col(integer(Leads::Score).default(0))
                .col(big_integer_null(Leads::AssignedTo))
                .col(json_binary(Leads::CustomFields))
                .col(big_integer_null(Leads::DuplicateOf))
                .col(timestamp_with_time_zone(Leads::CreatedAt))
                .col(timestamp_with_time_zone(Leads::UpdatedAt))
                .foreign_key(&mut fk(
                    "fk_leads_tenant",
                    (Leads::Table, Leads::TenantId),
                    (Tenants::Table, Tenants::Id),
                    ForeignKeyAction::Cascade,
                ))
                .foreign_key(&mut fk(
                    "fk_leads_source",
                    (Leads::Table, Leads::SourceId),
                    (Sources::Table, Sources::Id),
                    ForeignKeyAction::Restrict,
                ))
                .foreign_key(&mut fk(
                    "fk_leads_pipeline",
                    (Leads::Table, Leads::PipelineId),
                    (Pipelines::Table, Pipelines::Id),
                    ForeignKeyAction::Restrict,
                ))
                .foreign_key(&mut fk(
                    "fk_leads_stage",
                    (Leads::Table, Leads::StageId),
                    (Stages::Table, Stages::Id),
                    ForeignKeyAction::Restrict,
                ))
                .foreign_key(&mut fk(
                    "fk_leads_assigned_to",
                    (Leads::Table, Leads::AssignedTo),
                    (Users::Table, Users::Id),
                    ForeignKeyAction::SetNull,
                ))
                .foreign_key(&mut fk(
                    "fk_leads_duplicate_of",
                    (Leads::Table, Leads::DuplicateOf),
                    (Leads::Table, Leads::Id),
                    ForeignKeyAction::SetNull,
                ))
                .to_owned(),
        )
        .await?;
        // Keyset pagination reads (tenant, environment, sort key, id) in index order.
        for (name, cols) in [
            (
                "idx_leads_created",
                &["tenant_id", "environment", "created_at", "id"][..],
            ),
            (
                "idx_leads_updated",
                &["tenant_id", "environment", "updated_at", "id"][..],
            ),
            (
                "idx_leads_score",
                &["tenant_id", "environment", "score", "id"][..],
            ),
            (
                "idx_leads_last_name",
                &["tenant_id", "environment", "last_name", "id"][..],
            ),
            (
                "idx_leads_email",
                &["tenant_id", "environment", "email_normalized"][..],
            ),
            (
                "idx_leads_phone",
                &["tenant_id", "environment", "phone_normalized"][..],
            ),
            ("idx_leads_source", &["source_id"][..]),
            ("idx_leads_stage", &["stage_id"][..]),
            ("idx_leads_pipeline", &["pipeline_id"][..]),
            ("idx_leads_assigned", &["assigned_to"][..]),
            ("idx_leads_duplicate", &["duplicate_of"][..]),
        ] {
            m.create_index(index(name, Leads::Table, cols)).await?;
        }

        m.create_table(
            Table::create()
                .table(LeadTags::Table)
                .if_not_exists()
                .col(big_integer(LeadTags::LeadId))
                .col(big_integer(LeadTags::TenantId))
                .col(string_len(LeadTags::Environment, 16))
                .col(string_len(LeadTags::Tag, 50))
                .primary_key(Index::create().col(LeadTags::LeadId).col(LeadTags::Tag))
                .foreign_key(&mut fk(
                    "fk_lead_tags_lead",
                    (LeadTags::Table, LeadTags::LeadId),
                    (Leads::Table, Leads::Id),
                    ForeignKeyAction::Cascade,
                ))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "idx_lead_tags_tag",
            LeadTags::Table,
            &["tenant_id", "environment", "tag"],
        ))
        .await?;

        m.create_table(
            table_ts(AuditLog::Table)
                .col(big_pk_auto(AuditLog::Id))
                .col(big_integer(AuditLog::TenantId))
                .col(string_len(AuditLog::Environment, 16))
                .col(big_integer_null(AuditLog::ActorUserId))
                .col(big_integer_null(AuditLog::OnBehalfOfUserId))
                .col(big_integer_null(AuditLog::ApiKeyId))
                .col(string_len(AuditLog::Action, 64))
                .col(string_len(AuditLog::ResourceType, 32))
                .col(big_integer_null(AuditLog::ResourceId))
                .col(json_binary(AuditLog::Changes))
                .col(string_len_null(AuditLog::Ip, 64))
                .col(string_len_null(AuditLog::RequestId, 128))
                .to_owned(),
        )
        .await?;
        m.create_index(index(
            "idx_audit_log_tenant_env",
            AuditLog::Table,
            &["tenant_id", "environment", "id"],
        ))
        .await?;
        m.create_index(index(
            "idx_audit_log_resource",
            AuditLog::Table,
            &["resource_type", "resource_id"],
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditLog::Table.into_iden(),
            LeadTags::Table.into_iden(),
            Leads::Table.into_iden(),
            Stages::Table.into_iden(),
            Pipelines::Table.into_iden(),
            Sources::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Users::Table.into_iden(),
            Tenants::Table.into_iden(),
            Settings::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
