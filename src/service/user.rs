//! Users: creation (by admins, and at bootstrap), updates, listing.

use entity::enums::Role;
use entity::{tenant, user};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, SqlErr,
};
use serde_json::json;

use crate::auth::password;
use crate::context::RequestCtx;
use crate::db::{begin_write, one_locked};
use crate::error::{AppError, AppResult};
use crate::ids::{Ids, Kind};
use crate::service::audit::{self, Actor, Entry};
use crate::service::invalidate::{self, Target};
use crate::service::validate::Errors;
use crate::state::App;

/// Input of `createUser`.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Email address (stored lower-cased).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Password (8 to 1024 characters).
    pub password: String,
}

/// Input of `updateUser`; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New name.
    pub name: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// Activate or deactivate.
    pub active: Option<bool>,
}

/// The public JSON of a user (as audited).
pub fn json(ids: &Ids, u: &user::Model) -> serde_json::Value {
    json!({
        "id": ids.encode(Kind::User, u.id),
        "email": u.email,
        "name": u.name,
        "role": u.role,
        "active": u.active,
    })
}

/// Validates a new user's fields.
pub fn validate_new(input: &NewUser) -> AppResult<()> {
    let mut errors = Errors::new();
    errors.email("email", input.email.trim());
    errors.name("name", &input.name);
    errors.length("password", &input.password, 8, 1024);
    if password::is_common(&input.password) {
        errors.add(
            "password",
            "is one of the most common passwords; choose another",
        );
    }
    errors.finish()
}

/// Inserts a user without authorization checks (bootstrap and `createUser`).
pub async fn insert<C: ConnectionTrait>(
    db: &C,
    tenant_id: i64,
    input: &NewUser,
    password_hash: String,
) -> AppResult<user::Model> {
    let now = chrono::Utc::now();
    let row = user::ActiveModel {
        tenant_id: Set(tenant_id),
        email: Set(crate::service::validate::normalize_email(&input.email)),
        name: Set(input.name.trim().to_owned()),
        role: Set(input.role),
        password_hash: Set(password_hash),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    row.insert(db).await.map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => AppError::field("email", "is already in use"),
        _ => e.into(),
    })
}

/// `createUser`: admins and owners, through a session; only owners create owners.
pub async fn create(app: &App, rc: &RequestCtx, input: NewUser) -> AppResult<user::Model> {
    let p = rc.principal()?;
    p.check_session()?;
    p.check_admin()?;
    if input.role == Role::Owner && p.role != Role::Owner {
        return Err(AppError::Forbidden("Only owners can create owners"));
    }
    validate_new(&input)?;
    let hash = password::hash_async(input.password.clone()).await?;
    let tx = begin_write(&app.db).await?;
    let created = insert(&tx, p.tenant_id, &input, hash).await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "user.create",
            resource_type: "user",
            resource_id: Some(created.id),
            changes: json!({"after": json(&app.ids, &created)}),
        },
    )
    .await?;
    Ok(created)
}

/// `updateUser`: admins and owners, through a session. An admin cannot change an owner or
/// make anyone an owner, and a tenant always keeps one active owner.
pub async fn update(
    app: &App,
    rc: &RequestCtx,
    id: i64,
    patch: UserPatch,
) -> AppResult<user::Model> {
    let p = rc.principal()?;
    p.check_session()?;
    p.check_admin()?;
    let mut errors = Errors::new();
    if let Some(name) = &patch.name {
        errors.name("name", name);
    }
    errors.finish()?;
    let tx = begin_write(&app.db).await?;
    // The tenant's row is the lock of its set of owners: two owners demoting each other at
    // once take turns, and the second sees that it would leave no owner.
    one_locked(&tx, tenant::Entity::find_by_id(p.tenant_id)).await?;
    let before = one_locked(&tx, user::Entity::find_by_id(id))
        .await?
        .filter(|u| u.tenant_id == p.tenant_id)
        .ok_or(AppError::NotFound)?;
    if p.role != Role::Owner && (before.role == Role::Owner || patch.role == Some(Role::Owner)) {
        return Err(AppError::Forbidden(
            "Only owners can change owners or grant the owner role",
        ));
    }
    let stays_owner =
        patch.role.unwrap_or(before.role) == Role::Owner && patch.active.unwrap_or(before.active);
    if before.role == Role::Owner && before.active && !stays_owner {
        let owners = user::Entity::find()
            .filter(user::Column::TenantId.eq(p.tenant_id))
            .filter(user::Column::Role.eq(Role::Owner))
            .filter(user::Column::Active.eq(true))
            .count(&tx)
            .await?;
        if owners <= 1 {
            return Err(AppError::Conflict(
                "A tenant must keep at least one active owner".into(),
            ));
        }
    }
    let mut row: user::ActiveModel = before.clone().into();
    if let Some(name) = patch.name {
        row.name = Set(name.trim().to_owned());
    }
    if let Some(role) = patch.role {
        row.role = Set(role);
    }
    if let Some(active) = patch.active {
        row.active = Set(active);
    }
    // A deactivated or re-roled user's sessions end: their refresh tokens are revoked and the
    // access tokens issued before carry an older epoch.
    let revoke = patch.active == Some(false) || patch.role.is_some_and(|r| r != before.role);
    if revoke {
        row.session_epoch = Set(before.session_epoch + 1);
        crate::service::session::revoke_user(&tx, id).await?;
    }
    row.updated_at = Set(chrono::Utc::now());
    let after = row.update(&tx).await?;
    invalidate::announce(&tx, Target::Tenant(p.tenant_id)).await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "user.update",
            resource_type: "user",
            resource_id: Some(id),
            changes: audit::diff(&json(&app.ids, &before), &json(&app.ids, &after)),
        },
    )
    .await?;
    // Keys of a deactivated or demoted user must stop working at once.
    app.key_cache.evict_tenant(p.tenant_id);
    Ok(after)
}

/// `leadgraph users reset-password`: a new generated password for the user with `email`, and
/// the end of their sessions (refresh tokens revoked, access tokens of an older epoch). An
/// operator at the server's machine acts: the audit entry (`user.reset_password`) names no
/// user, and its request ID is `cli`.
pub async fn reset_password(app: &App, email: &str) -> AppResult<(user::Model, String)> {
    let password = password::generate();
    let hash = password::hash_async(password.clone()).await?;
    let tx = begin_write(&app.db).await?;
    let email = email.trim().to_lowercase();
    let before = one_locked(
        &tx,
        user::Entity::find().filter(user::Column::Email.eq(email)),
    )
    .await?
    .ok_or(AppError::NotFound)?;
    let mut row: user::ActiveModel = before.clone().into();
    row.password_hash = Set(hash);
    row.session_epoch = Set(before.session_epoch + 1);
    row.updated_at = Set(chrono::Utc::now());
    let after = row.update(&tx).await?;
    crate::service::session::revoke_user(&tx, before.id).await?;
    invalidate::announce(&tx, Target::Tenant(before.tenant_id)).await?;
    let actor = Actor {
        tenant_id: before.tenant_id,
        environment: entity::enums::Environment::Live,
        actor_user_id: None,
        on_behalf_of_user_id: None,
        api_key_id: None,
    };
    audit::commit(
        tx,
        actor,
        &RequestCtx::operator(),
        Entry {
            action: "user.reset_password",
            resource_type: "user",
            resource_id: Some(before.id),
            changes: json!({}),
        },
    )
    .await?;
    app.key_cache.evict_tenant(before.tenant_id);
    Ok((after, password))
}

/// The caller's tenant's users, oldest first.
pub async fn list(app: &App, rc: &RequestCtx) -> AppResult<Vec<user::Model>> {
    let p = rc.principal()?;
    Ok(user::Entity::find()
        .filter(user::Column::TenantId.eq(p.tenant_id))
        .order_by_asc(user::Column::Id)
        .all(&app.db)
        .await?)
}

/// A user of the caller's tenant.
pub async fn get(app: &App, rc: &RequestCtx, id: i64) -> AppResult<user::Model> {
    let p = rc.principal()?;
    user::Entity::find_by_id(id)
        .one(&app.db)
        .await?
        .filter(|u| u.tenant_id == p.tenant_id)
        .ok_or(AppError::NotFound)
}
