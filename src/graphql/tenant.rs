//! The `Tenant` type.

use crate::graphql::time::DateTime;
use async_graphql::{Context, ID, Object, Result};
use entity::enums::Plan;
use entity::tenant;

use crate::ids::Kind;

/// A tenant: the unit of isolation.
pub struct Tenant(pub tenant::Model);

#[Object]
impl Tenant {
    /// Opaque ID.
    pub async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::Tenant, self.0.id)
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Unique slug.
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    /// Billing plan.
    async fn plan(&self) -> Plan {
        self.0.plan
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}
