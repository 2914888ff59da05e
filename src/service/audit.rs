//! The audit log: one entry per mutation, written in the mutation's transaction.

use entity::audit_log;
use entity::enums::Environment;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};

use crate::auth::principal::{Principal, Via};
use crate::context::RequestCtx;

/// Who an entry is attributed to.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    /// Tenant of the change.
    pub tenant_id: i64,
    /// Environment of the change.
    pub environment: Environment,
    /// The session's user or the key's creator.
    pub actor_user_id: Option<i64>,
    /// The impersonated user.
    pub on_behalf_of_user_id: Option<i64>,
    /// The key used.
    pub api_key_id: Option<i64>,
}

impl Actor {
    /// The actor of an authenticated request.
    pub fn of(p: &Principal) -> Self {
        Actor {
            tenant_id: p.tenant_id,
            environment: p.environment,
            actor_user_id: (p.via != Via::Webhook).then_some(p.actor_user_id),
            on_behalf_of_user_id: p.on_behalf_of(),
            api_key_id: p.key().map(|k| k.id),
        }
    }

    /// A user acting through a session (login and friends) on the live environment.
    pub fn user(tenant_id: i64, user_id: i64) -> Self {
        Actor {
            tenant_id,
            environment: Environment::Live,
            actor_user_id: Some(user_id),
            on_behalf_of_user_id: None,
            api_key_id: None,
        }
    }
}

/// What changed. `changes` uses public (opaque) IDs only: it is shown to admins.
#[derive(Debug)]
pub struct Entry<'a> {
    /// `lead.create`, `api_key.delete`, …
    pub action: &'a str,
    /// `lead`, `api_key`, …
    pub resource_type: &'a str,
    /// The row's ID.
    pub resource_id: Option<i64>,
    /// `{before, after}` for updates, `{after}` for creates, `{before}` (the whole row) for deletes.
    pub changes: serde_json::Value,
}

/// Writes one entry.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    actor: Actor,
    rc: &RequestCtx,
    entry: Entry<'_>,
) -> Result<(), DbErr> {
    let now = chrono::Utc::now();
    let row = audit_log::ActiveModel {
        tenant_id: Set(actor.tenant_id),
        environment: Set(actor.environment),
        actor_user_id: Set(actor.actor_user_id),
        on_behalf_of_user_id: Set(actor.on_behalf_of_user_id),
        api_key_id: Set(actor.api_key_id),
        action: Set(entry.action.to_owned()),
        resource_type: Set(entry.resource_type.to_owned()),
        resource_id: Set(entry.resource_id),
        changes: Set(entry.changes),
        ip: Set(rc.ip.map(|ip| ip.to_string())),
        request_id: Set(Some(rc.request_id.clone())),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    audit_log::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Records the audit entry of a change in its transaction, then commits both: every mutation
/// ends this way, so no change is committed without its entry.
pub async fn commit(
    tx: sea_orm::DatabaseTransaction,
    actor: Actor,
    rc: &RequestCtx,
    entry: Entry<'_>,
) -> Result<(), DbErr> {
    record(&tx, actor, rc, entry).await?;
    tx.commit().await
}

/// `{"before": …, "after": …}` keeping only the fields that differ.
pub fn diff(before: &serde_json::Value, after: &serde_json::Value) -> serde_json::Value {
    if !(before.is_object() && after.is_object()) {
        return serde_json::json!({"before": before, "after": after});
    }
    let mut bo = serde_json::Map::new();
    let mut ao = serde_json::Map::new();
    for (k, bv, av) in changed(before, after) {
        bo.insert(k.to_owned(), bv.clone());
        ao.insert(k.to_owned(), av.clone());
    }
    serde_json::json!({"before": bo, "after": ao})
}

/// The fields of object `after` whose value differs from `before`'s (`updatedAt` is no change
/// of its own), with both values; none when either is not an object.
pub fn changed<'a>(
    before: &'a serde_json::Value,
    after: &'a serde_json::Value,
) -> Vec<(&'a str, &'a serde_json::Value, &'a serde_json::Value)> {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return Vec::new();
    };
    a.iter()
        .filter(|(k, _)| k.as_str() != "updatedAt")
        .map(|(k, av)| (k.as_str(), b.get(k).unwrap_or(&serde_json::Value::Null), av))
        .filter(|(_, bv, av)| bv != av)
        .collect()
}

/// Audit log filters.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact action, e.g. `lead.update`.
    pub action: Option<String>,
    /// Resource type, e.g. `lead`.
    pub resource_type: Option<String>,
    /// Resource row (with its type).
    pub resource_id: Option<i64>,
    /// Entries by this actor.
    pub actor_user_id: Option<i64>,
    /// At or after.
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Before.
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// The kind of ID a resource type's rows have.
pub fn kind_of(resource_type: &str) -> Option<crate::ids::Kind> {
    use crate::ids::Kind;
    Some(match resource_type {
        "lead" => Kind::Lead,
        "source" => Kind::Source,
        "pipeline" => Kind::Pipeline,
        "stage" => Kind::Stage,
        "api_key" => Kind::ApiKey,
        "user" => Kind::User,
        "webhook_endpoint" => Kind::WebhookEndpoint,
        "webhook_delivery" => Kind::WebhookDelivery,
        "import" => Kind::ImportJob,
        _ => return None,
    })
}

/// The resource type whose rows have IDs of `kind`.
pub fn type_of(kind: crate::ids::Kind) -> Option<&'static str> {
    use crate::ids::Kind;
    Some(match kind {
        Kind::Lead => "lead",
        Kind::Source => "source",
        Kind::Pipeline => "pipeline",
        Kind::Stage => "stage",
        Kind::ApiKey => "api_key",
        Kind::User => "user",
        Kind::WebhookEndpoint => "webhook_endpoint",
        Kind::WebhookDelivery => "webhook_delivery",
        Kind::ImportJob => "import",
        Kind::Tenant | Kind::AuditEntry | Kind::Event | Kind::EventCursor => return None,
    })
}

/// One page of the caller's tenant's and environment's audit log, newest first (admins).
pub async fn list(
    app: &crate::state::App,
    rc: &RequestCtx,
    filter: &AuditFilter,
    args: &crate::service::page::PageArgs,
) -> crate::error::AppResult<crate::service::page::Page<audit_log::Model>> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};

    use crate::service::page::{self, Page};
    let p = rc.principal()?;
    p.check_admin()?;
    let nul = |s: &Option<String>| s.as_deref().is_some_and(|s| s.contains('\0'));
    if nul(&filter.action) || nul(&filter.resource_type) {
        // Nothing stored contains NUL; PostgreSQL would refuse the parameter.
        return Ok(Page {
            items: Vec::new(),
            has_next: false,
            has_previous: false,
        });
    }
    let window = page::window(&app.ids, crate::ids::Kind::AuditEntry, "id:desc", args)?;
    let mut q = audit_log::Entity::find()
        .filter(audit_log::Column::TenantId.eq(p.tenant_id))
        .filter(audit_log::Column::Environment.eq(p.environment));
    if let Some(a) = &filter.action {
        q = q.filter(audit_log::Column::Action.eq(a.as_str()));
    }
    if let Some(t) = &filter.resource_type {
        q = q.filter(audit_log::Column::ResourceType.eq(t.as_str()));
    }
    if let Some(id) = filter.resource_id {
        q = q.filter(audit_log::Column::ResourceId.eq(id));
    }
    if let Some(id) = filter.actor_user_id {
        q = q.filter(audit_log::Column::ActorUserId.eq(id));
    }
    if let Some(at) = filter.created_after {
        q = q.filter(audit_log::Column::CreatedAt.gte(at));
    }
    if let Some(at) = filter.created_before {
        q = q.filter(audit_log::Column::CreatedAt.lt(at));
    }
    if let Some(from) = &window.from {
        q = if window.forward {
            q.filter(audit_log::Column::Id.lt(from.id))
        } else {
            q.filter(audit_log::Column::Id.gt(from.id))
        };
    }
    q = if window.forward {
        q.order_by_desc(audit_log::Column::Id)
    } else {
        q.order_by_asc(audit_log::Column::Id)
    };
    let rows = q.limit(window.limit + 1).all(&app.db).await?;
    Ok(Page::from_fetched(rows, &window))
}

/// One entry of the caller's tenant and environment.
pub async fn get(
    app: &crate::state::App,
    rc: &RequestCtx,
    id: i64,
) -> crate::error::AppResult<audit_log::Model> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let p = rc.principal()?;
    audit_log::Entity::find_by_id(id)
        .filter(audit_log::Column::TenantId.eq(p.tenant_id))
        .filter(audit_log::Column::Environment.eq(p.environment))
        .one(&app.db)
        .await?
        .ok_or(crate::error::AppError::NotFound)
}
