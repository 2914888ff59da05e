//! Leads: the people a tenant is selling to.

use crate::enums::*;
use sea_orm::entity::prelude::*;

/// One row of `leads`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "leads")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: i64,
    pub environment: Environment,
    pub email: String,
    /// Lower-cased and trimmed, for duplicate detection and search.
    pub email_normalized: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: Option<String>,
    /// E.164 digits, for duplicate detection and search.
    pub phone_normalized: Option<String>,
    pub source: Option<Channel>,
    pub source_id: Option<i64>,
    pub pipeline_id: Option<i64>,
    pub stage_id: Option<i64>,
    pub status: LeadStatus,
    pub score: i32,
    pub assigned_to: Option<i64>,
    pub custom_fields: Json,
    pub duplicate_of: Option<i64>,
    /// The import job that created it.
    pub import_id: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// No declared relations: services join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
