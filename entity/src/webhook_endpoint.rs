//! A tenant's outbound webhook endpoint in one environment.

use crate::enums::*;
use sea_orm::entity::prelude::*;

/// One row of `webhook_endpoints`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: i64,
    pub environment: Environment,
    pub url: String,
    pub description: Option<String>,
    /// Event type names it receives (`lead.created` …); empty for all.
    pub event_types: Json,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// `whsec_` and base64 of the key.
    pub secret: String,
    /// The secret before the last rotation, still signing until `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTimeUtc>,
    /// Start of the current run of failed attempts.
    pub failing_since: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// No declared relations: services join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
