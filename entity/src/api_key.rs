//! API keys, stored only as SHA-256 hashes.

use crate::enums::*;
use sea_orm::entity::prelude::*;

/// One row of `api_keys`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: i64,
    /// The creator.
    pub user_id: i64,
    pub label: String,
    /// The display prefix, safe to show (the first characters of the key).
    pub prefix: String,
    #[sea_orm(unique)]
    pub key_hash: String,
    pub environment: Environment,
    pub scope: Scope,
    pub active: bool,
    pub expires_at: Option<DateTimeUtc>,
    pub last_used_at: Option<DateTimeUtc>,
    pub usage_count: i64,
    /// Set when the key is deleted; deleted keys are never listed and answer `REVOKED_TOKEN`.
    pub deleted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// No declared relations: services join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
