//! The kept response of an `Idempotency-Key` (none yet while its first request runs).

use crate::enums::*;
use sea_orm::entity::prelude::*;

/// One row of `idempotency_keys`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub tenant_id: i64,
    pub environment: Environment,
    /// `key:<id>` or `user:<id>`: whose key it is.
    pub credential: String,
    pub key: String,
    /// SHA-256 (hex) of the method, path and canonical body of the first request.
    pub fingerprint: String,
    /// The kept response's status; `None` while the first request runs.
    pub status_code: Option<i32>,
    pub response_headers: Option<Json>,
    pub response_body: Option<String>,
    pub started_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

/// No declared relations: services join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
