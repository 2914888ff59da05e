//! One row per tenant and environment: the last event number handed out, and how far
//! retention has pruned.

use crate::enums::*;
use sea_orm::entity::prelude::*;

/// One row of `event_streams`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "event_streams")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub environment: Environment,
    pub last_seq: i64,
    /// Events up to this number were deleted by retention.
    pub pruned_through: i64,
    /// How many enabled webhook endpoints the stream has (kept by endpoint writes).
    pub endpoints: i64,
}

/// No declared relations: services join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
