//! One message to one endpoint: an event, or a test send.

use crate::enums::*;
use sea_orm::entity::prelude::*;

/// One row of `webhook_deliveries`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub endpoint_id: i64,
    pub tenant_id: i64,
    pub environment: Environment,
    pub event_id: Option<i64>,
    /// `webhook-id`: the same on every attempt and redelivery.
    pub message_id: String,
    pub event_type: String,
    /// The exact body sent.
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// When the next attempt is due (or the lease of the worker sending it ends).
    pub next_attempt_at: Option<DateTimeUtc>,
    pub last_status_code: Option<i32>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// No declared relations: services join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
