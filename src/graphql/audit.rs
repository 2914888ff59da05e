//! The audit log: `auditLog(first, after, filter)` for admins and owners.

use crate::graphql::time::DateTime;
use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use entity::audit_log;

use super::api_key::ApiKey;
use super::guard::Need;
use super::lead::PageInfo;
use super::user::User;
use super::{app, rc};
use crate::ids::Kind;
use crate::service::audit::{AuditFilter as Filter, kind_of, type_of};
use crate::service::page::{PageArgs, encode_cursor};
use crate::service::{self};

/// One audited mutation.
pub struct AuditEntry(pub audit_log::Model);

#[Object]
impl AuditEntry {
    /// Opaque ID.
    pub async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::AuditEntry, self.0.id)
    }
    /// What happened: `lead.create`, `api_key.delete`, …
    async fn action(&self) -> &str {
        &self.0.action
    }
    /// The kind of resource: `lead`, `source`, `pipeline`, `stage`, `api_key`, `user`.
    async fn resource_type(&self) -> &str {
        &self.0.resource_type
    }
    /// The resource's opaque ID.
    async fn resource_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        match (kind_of(&self.0.resource_type), self.0.resource_id) {
            (Some(kind), Some(id)) => Ok(Some(super::encode(ctx, kind, id)?)),
            _ => Ok(None),
        }
    }
    /// `{before, after}` of the changed fields; the whole row for deletes.
    async fn changes(&self) -> Json<serde_json::Value> {
        Json(self.0.changes.clone())
    }
    /// The session's user or the key's creator.
    async fn actor(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Some(id) = self.0.actor_user_id else {
            return Ok(None);
        };
        Ok(super::loaders(ctx)?.users.load_one(id).await?.map(User))
    }
    /// The user acted for (`X-On-Behalf-Of`).
    async fn on_behalf_of(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Some(id) = self.0.on_behalf_of_user_id else {
            return Ok(None);
        };
        Ok(super::loaders(ctx)?.users.load_one(id).await?.map(User))
    }
    /// The API key used.
    async fn api_key(&self, ctx: &Context<'_>) -> Result<Option<ApiKey>> {
        let Some(id) = self.0.api_key_id else {
            return Ok(None);
        };
        Ok(super::loaders(ctx)?
            .api_keys
            .load_one(id)
            .await?
            .map(ApiKey))
    }
    /// The client's IP.
    async fn ip(&self) -> Option<&str> {
        self.0.ip.as_deref()
    }
    /// The request's `X-Request-Id`.
    async fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }
    /// When.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}

/// An edge of the audit log.
#[derive(SimpleObject)]
pub struct AuditEntryEdge {
    /// Opaque cursor.
    pub cursor: String,
    /// The entry.
    pub node: AuditEntry,
}

/// A page of the audit log, newest first.
#[derive(SimpleObject)]
pub struct AuditEntryConnection {
    /// Entries with cursors.
    pub edges: Vec<AuditEntryEdge>,
    /// Paging.
    pub page_info: PageInfo,
}

/// Audit log filters.
#[derive(InputObject, Default)]
pub struct AuditLogFilter {
    /// Exact action, e.g. `lead.update`.
    pub action: Option<String>,
    /// Resource type, e.g. `lead`.
    pub resource_type: Option<String>,
    /// The resource's ID (any kind).
    pub resource_id: Option<ID>,
    /// Entries by this user (as actor).
    pub actor_id: Option<ID>,
    /// At or after.
    pub created_after: Option<DateTime>,
    /// Before.
    pub created_before: Option<DateTime>,
}

/// `auditLog`.
#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The audit log of the caller's tenant and environment, newest first (admins and owners).
    #[graphql(guard = "Need::Admin")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i64>,
        after: Option<String>,
        filter: Option<AuditLogFilter>,
    ) -> Result<AuditEntryConnection> {
        let app = app(ctx)?;
        let f = filter.unwrap_or_default();
        // An ID that decodes to nothing matches nothing (-1 is never a row ID).
        let (resource_type, resource_id) = match &f.resource_id {
            None => (f.resource_type, None),
            Some(id) => match app.ids.decode_any(id.as_str()) {
                Some((kind, n)) => (
                    f.resource_type.or_else(|| type_of(kind).map(str::to_owned)),
                    Some(n),
                ),
                None => (f.resource_type, Some(-1)),
            },
        };
        let filter = Filter {
            action: f.action,
            resource_type,
            resource_id,
            actor_user_id: f
                .actor_id
                .map(|id| app.ids.decode(Kind::User, id.as_str()).unwrap_or(-1)),
            created_after: f.created_after.map(Into::into),
            created_before: f.created_before.map(Into::into),
        };
        let page = service::audit::list(
            app,
            rc(ctx)?,
            &filter,
            &PageArgs {
                first,
                after,
                last: None,
                before: None,
            },
        )
        .await?;
        let node = ctx.look_ahead().field("edges").field("node");
        let loaders = super::loaders(ctx)?;
        if node.field("actor").exists() || node.field("onBehalfOf").exists() {
            let mut users: Vec<i64> = Vec::new();
            for e in &page.items {
                users.extend(e.actor_user_id);
                users.extend(e.on_behalf_of_user_id);
            }
            loaders.users.load_many(users).await?;
        }
        if node.field("apiKey").exists() {
            let keys: Vec<i64> = page.items.iter().filter_map(|e| e.api_key_id).collect();
            loaders.api_keys.load_many(keys).await?;
        }
        let edges: Vec<AuditEntryEdge> = page
            .items
            .into_iter()
            .map(|e| AuditEntryEdge {
                cursor: encode_cursor(&app.ids, Kind::AuditEntry, "id:desc", "", e.id),
                node: AuditEntry(e),
            })
            .collect();
        Ok(AuditEntryConnection {
            page_info: PageInfo::new(
                page.has_next,
                page.has_previous,
                edges.first().map(|e| e.cursor.clone()),
                edges.last().map(|e| e.cursor.clone()),
            ),
            edges,
        })
    }
}
