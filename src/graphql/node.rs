//! Relay global object identification: the `Node` interface and `node(id)`.

use async_graphql::{Context, ID, Interface, Object, Result};
use sea_orm::EntityTrait;

use super::api_key::ApiKey;
use super::audit::AuditEntry;
use super::guard::Need;
use super::lead::Lead;
use super::pipeline::{Pipeline, Stage};
use super::source::Source;
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
    /// A lead.
    Lead(Lead),
    /// A lead source.
    Source(Source),
    /// A pipeline.
    Pipeline(Pipeline),
    /// A pipeline stage.
    Stage(Stage),
    /// An audit log entry.
    AuditEntry(AuditEntry),
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
            Kind::Lead => service::lead::get(app, rc, id)
                .await
                .optional()?
                .map(|l| Node::Lead(l.into())),
            Kind::Source => service::source::get(app, rc, id)
                .await
                .optional()?
                .map(|s| Node::Source(Source(s))),
            Kind::Pipeline => service::pipeline::get(app, rc, id)
                .await
                .optional()?
                .map(|pl| Node::Pipeline(Pipeline(pl))),
            Kind::Stage => service::pipeline::get_stage(app, rc, id)
                .await
                .optional()?
                .map(|s| Node::Stage(Stage(s))),
            Kind::AuditEntry => {
                if p.role.is_admin() {
                    service::audit::get(app, rc, id)
                        .await
                        .optional()?
                        .map(|e| Node::AuditEntry(AuditEntry(e)))
                } else {
                    None
                }
            }
            // Events are read through the feed; a cursor is no object.
            Kind::Event
            | Kind::EventCursor
            | Kind::WebhookEndpoint
            | Kind::WebhookDelivery
            | Kind::ImportJob => None,
        };
        Ok(found)
    }
}
