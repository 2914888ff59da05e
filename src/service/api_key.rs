//! API key management: user sessions only; members manage their own keys, admins all.

use chrono::{DateTime, Duration, Utc};
use entity::api_key;
use entity::enums::{Environment, Scope};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::json;

use crate::auth::api_key as keys;
use crate::auth::principal::Principal;
use crate::context::RequestCtx;
use crate::db::{begin_write, one_locked};
use crate::error::{AppError, AppResult};
use crate::ids::{Ids, Kind};
use crate::service::audit::{self, Actor, Entry};
use crate::service::invalidate::{self, Target};
use crate::service::validate::Errors;
use crate::state::App;

/// Input of `createApiKey`.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    /// Label (1 to 100 characters).
    pub label: String,
    /// Scope; `full` by default.
    pub scope: Option<Scope>,
    /// Environment; the session's by default.
    pub environment: Option<Environment>,
    /// Absolute expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Relative expiry (1 to 3650 days).
    pub expires_in_days: Option<i64>,
}

/// Who a key is issued to and what it may do.
pub struct Grant {
    /// The key's tenant.
    pub tenant_id: i64,
    /// The user the key acts as.
    pub user_id: i64,
    /// Label shown in listings.
    pub label: String,
    /// Environment the key acts on (and its prefix).
    pub environment: Environment,
    /// What the key may do.
    pub scope: Scope,
    /// When the key stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Generates a key for `grant`: the key to show once, and its row (active, never used,
/// created `now`) to insert.
pub fn issue(grant: Grant, now: DateTime<Utc>) -> (keys::NewKey, api_key::ActiveModel) {
    let key = keys::generate(grant.environment);
    let row = api_key::ActiveModel {
        tenant_id: Set(grant.tenant_id),
        user_id: Set(grant.user_id),
        label: Set(grant.label),
        prefix: Set(key.prefix.clone()),
        key_hash: Set(key.hash.clone()),
        environment: Set(grant.environment),
        scope: Set(grant.scope),
        active: Set(true),
        expires_at: Set(grant.expires_at),
        last_used_at: Set(None),
        usage_count: Set(0),
        deleted_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    (key, row)
}

/// Input of `updateApiKey`; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct KeyPatch {
    /// New label.
    pub label: Option<String>,
    /// Activate or deactivate.
    pub active: Option<bool>,
    /// New expiry; `Some(None)` removes it.
    pub expires_at: Option<Option<DateTime<Utc>>>,
}

/// The key's status as LeadHQL names it.
pub fn status(k: &api_key::Model) -> &'static str {
    if !k.active {
        "inactive"
    } else if k.expires_at.is_some_and(|at| at <= Utc::now()) {
        "expired"
    } else {
        "active"
    }
}

/// The public JSON of a key (as audited): never the key or its hash.
pub fn json(ids: &Ids, k: &api_key::Model) -> serde_json::Value {
    json!({
        "id": ids.encode(Kind::ApiKey, k.id),
        "label": k.label,
        "prefix": k.prefix,
        "environment": k.environment,
        "scope": k.scope,
        "active": k.active,
        "expiresAt": k.expires_at.map(crate::service::clock::ts),
    })
}

/// `createApiKey`: returns the row and the key, which is never shown again.
pub async fn create(
    app: &App,
    rc: &RequestCtx,
    input: NewKey,
) -> AppResult<(api_key::Model, String)> {
    let p = rc.principal()?;
    p.check_session()?;
    let now = Utc::now();
    let mut errors = Errors::new();
    errors.name("label", &input.label);
    let expires_at = match (input.expires_at, input.expires_in_days) {
        (Some(_), Some(_)) => {
            errors.add("expiresInDays", "give expiresAt or expiresInDays, not both");
            None
        }
        (Some(at), None) => {
            errors.check(at > now, "expiresAt", "must be in the future");
            Some(at)
        }
        (None, Some(days)) => {
            errors.check(
                (1..=3650).contains(&days),
                "expiresInDays",
                "must be 1 to 3650",
            );
            Some(now + Duration::days(days.clamp(1, 3650)))
        }
        (None, None) => None,
    };
    errors.finish()?;
    let (key, row) = issue(
        Grant {
            tenant_id: p.tenant_id,
            user_id: p.user_id,
            label: input.label.trim().to_owned(),
            environment: input.environment.unwrap_or(p.environment),
            scope: input.scope.unwrap_or(Scope::Full),
            expires_at,
        },
        now,
    );
    let tx = begin_write(&app.db).await?;
    let row = row.insert(&tx).await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "api_key.create",
            resource_type: "api_key",
            resource_id: Some(row.id),
            changes: json!({"after": json(&app.ids, &row)}),
        },
    )
    .await?;
    Ok((row, key.key))
}

fn visible(p: &Principal, k: &api_key::Model) -> bool {
    k.tenant_id == p.tenant_id
        && k.deleted_at.is_none()
        && (p.role.is_admin() || k.user_id == p.user_id)
}

/// Key `id` if the caller may manage it; `NOT_FOUND` otherwise.
async fn find_visible<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<api_key::Model> {
    api_key::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|k| visible(p, k))
        .ok_or(AppError::NotFound)
}

/// Key `id`, locked for a change until `tx` ends, if the caller may manage it: of two
/// concurrent deletes, the second finds it deleted.
async fn find_visible_locked(
    tx: &DatabaseTransaction,
    p: &Principal,
    id: i64,
) -> AppResult<api_key::Model> {
    one_locked(tx, api_key::Entity::find_by_id(id))
        .await?
        .filter(|k| visible(p, k))
        .ok_or(AppError::NotFound)
}

/// Folds in this process's not-yet-written usage, so counts are current.
fn with_pending(app: &App, mut k: api_key::Model) -> api_key::Model {
    if let Some(p) = app.usage.pending(k.id) {
        k.usage_count += p.count;
        let last = p.last_used_at();
        k.last_used_at = Some(k.last_used_at.map_or(last, |at| at.max(last)));
    }
    k
}

/// `apiKeys`: the caller's keys, or all the tenant's for admins; newest first.
pub async fn list(app: &App, rc: &RequestCtx) -> AppResult<Vec<api_key::Model>> {
    let p = rc.principal()?;
    p.check_session()?;
    let mut q = api_key::Entity::find()
        .filter(api_key::Column::TenantId.eq(p.tenant_id))
        .filter(api_key::Column::DeletedAt.is_null());
    if !p.role.is_admin() {
        q = q.filter(api_key::Column::UserId.eq(p.user_id));
    }
    let rows = q.order_by_desc(api_key::Column::Id).all(&app.db).await?;
    Ok(rows.into_iter().map(|k| with_pending(app, k)).collect())
}

/// One key the caller may manage.
pub async fn get(app: &App, rc: &RequestCtx, id: i64) -> AppResult<api_key::Model> {
    let p = rc.principal()?;
    p.check_session()?;
    let k = find_visible(&app.db, p, id).await?;
    Ok(with_pending(app, k))
}

/// `updateApiKey`: label, active, expiresAt. Takes effect on the next request.
pub async fn update(
    app: &App,
    rc: &RequestCtx,
    id: i64,
    patch: KeyPatch,
) -> AppResult<api_key::Model> {
    let p = rc.principal()?;
    p.check_session()?;
    let mut errors = Errors::new();
    if let Some(label) = &patch.label {
        errors.name("label", label);
    }
    errors.finish()?;
    let tx = begin_write(&app.db).await?;
    let before = find_visible_locked(&tx, p, id).await?;
    let mut row: api_key::ActiveModel = before.clone().into();
    if let Some(label) = patch.label {
        row.label = Set(label.trim().to_owned());
    }
    if let Some(active) = patch.active {
        row.active = Set(active);
    }
    if let Some(expires_at) = patch.expires_at {
        row.expires_at = Set(expires_at);
    }
    row.updated_at = Set(Utc::now());
    let after = row.update(&tx).await?;
    invalidate::announce(&tx, Target::Key(id)).await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "api_key.update",
            resource_type: "api_key",
            resource_id: Some(id),
            changes: audit::diff(&json(&app.ids, &before), &json(&app.ids, &after)),
        },
    )
    .await?;
    app.key_cache.evict_key(id);
    Ok(with_pending(app, after))
}

/// `leadgraph keys revoke`: the keys not deleted whose display prefix is `given`, or the key
/// that `given` is whole.
pub async fn find_by_prefix(app: &App, given: &str) -> AppResult<Vec<api_key::Model>> {
    let given = given.trim();
    let by = if crate::auth::api_key::parse(given).is_some() {
        api_key::Column::KeyHash.eq(crate::auth::api_key::hash(given))
    } else {
        api_key::Column::Prefix.eq(given)
    };
    Ok(api_key::Entity::find()
        .filter(by)
        .filter(api_key::Column::DeletedAt.is_null())
        .order_by_asc(api_key::Column::Id)
        .all(&app.db)
        .await?)
}

/// `deleteApiKey`: the key stops working at once and is no longer listed.
pub async fn delete(app: &App, rc: &RequestCtx, id: i64) -> AppResult<()> {
    let p = rc.principal()?;
    p.check_session()?;
    let tx = begin_write(&app.db).await?;
    let before = find_visible_locked(&tx, p, id).await?;
    let mut row: api_key::ActiveModel = before.clone().into();
    row.active = Set(false);
    row.deleted_at = Set(Some(Utc::now()));
    row.updated_at = Set(Utc::now());
    row.update(&tx).await?;
    invalidate::announce(&tx, Target::Key(id)).await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "api_key.delete",
            resource_type: "api_key",
            resource_id: Some(id),
            changes: json!({"before": json(&app.ids, &before)}),
        },
    )
    .await?;
    app.key_cache.evict_key(id);
    Ok(())
}
