//! The change feed: one row per committed change, appended in the change's transaction.

use crate::enums::*;
use sea_orm::entity::prelude::*;

/// One row of `events`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: i64,
    pub environment: Environment,
    /// Position in the tenant's and environment's stream, in commit order.
    pub seq: i64,
    pub event_type: EventType,
    pub occurred_at: DateTimeUtc,
    pub resource_type: String,
    pub resource_id: Option<i64>,
    pub actor_user_id: Option<i64>,
    pub on_behalf_of_user_id: Option<i64>,
    pub api_key_id: Option<i64>,
    pub data: Json,
    pub changes: Option<Json>,
}

/// No declared relations: services join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
