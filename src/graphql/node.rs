//! Relay global object identification: the `Node` interface and `node(id)`.

use async_graphql::{Context, ID, Interface, Object, Result};
use sea_orm::EntityTrait;

use super::api_key::ApiKey;
use super::guard::Need;
use super::tenant::Tenant;
use super::user::User;
use super::{app, rc};
use crate::error::OptionalExt;
use crate::ids::Kind;
use crate::service;

/// An object with an opaque, globally unique ID.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Opaque ID."))]
pub enum Node {
    /// A tenant.
    Tenant(Tenant),
    /// A user.
    User(User),
    /// An API key.
    ApiKey(ApiKey),
}

/// `node(id)`.
#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Fetches any object by its opaque ID; null when it does not exist or is not visible.
    #[graphql(guard = "Need::Auth")]
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let app = app(ctx)?;
        let rc = rc(ctx)?;
        let p = rc.principal()?;
        let Some((kind, id)) = app.ids.decode_any(id.as_str()) else {
            return Ok(None);
        };
        let found = match kind {
            Kind::Tenant => (id == p.tenant_id)
                .then_some(())
                .and(entity::tenant::Entity::find_by_id(id).one(&app.db).await?)
                .map(|t| Node::Tenant(Tenant(t))),
            Kind::User => service::user::get(app, rc, id)
                .await
                .optional()?
                .map(|u| Node::User(User(u))),
            Kind::ApiKey => {
                if p.is_session() {
                    service::api_key::get(app, rc, id)
                        .await
                        .optional()?
                        .map(|k| Node::ApiKey(ApiKey(k)))
                } else {
                    None
                }
            }
            _ => None,
        };
        Ok(found)
    }
}
