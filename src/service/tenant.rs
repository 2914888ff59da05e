//! Tenants: bootstrap (CLI and first start) and plan changes (CLI only).

use entity::enums::{Environment, Plan, Role, Scope};
use entity::tenant;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder,
};
use serde::Serialize;

use crate::auth::password;
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::ids::Kind;
use crate::service::api_key::{Grant, issue};
use crate::service::user::{self, NewUser};
use crate::settings;
use crate::state::App;

/// What bootstrap created; printed once.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrapped {
    /// The tenant's opaque ID.
    pub tenant_id: String,
    /// The tenant's slug (what operator commands such as `import` and `set-plan` take).
    pub tenant_slug: String,
    /// The owner's opaque ID.
    pub user_id: String,
    /// The owner's email.
    pub email: String,
    /// The owner's password.
    pub password: String,
    /// A live, full-scope API key.
    pub api_key: String,
}

fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() {
        "tenant".to_owned()
    } else {
        slug
    }
}

/// Creates a tenant, its owner and a live full-scope API key in one transaction.
pub async fn bootstrap(
    app: &App,
    name: &str,
    email: &str,
    password: Option<String>,
    plan: Plan,
) -> AppResult<Bootstrapped> {
    let password = password.unwrap_or_else(password::generate);
    let owner = NewUser {
        email: email.to_owned(),
        name: "Owner".to_owned(),
        role: Role::Owner,
        password: password.clone(),
    };
    user::validate_new(&owner)?;
    let mut errors = crate::service::validate::Errors::new();
    errors.name("tenant", name);
    errors.finish()?;
    let hash = password::hash_async(password.clone()).await?;

    let tx = begin_write(&app.db).await?;
    let base = slugify(name);
    let mut slug = base.clone();
    let mut n = 1;
    while tenant::Entity::find()
        .filter(tenant::Column::Slug.eq(&slug))
        .count(&tx)
        .await?
        > 0
    {
        n += 1;
        slug = format!("{base}-{n}");
    }
    let now = chrono::Utc::now();
    let tenant = tenant::ActiveModel {
        name: Set(name.trim().to_owned()),
        slug: Set(slug.clone()),
        plan: Set(plan),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    let owner_row = user::insert(&tx, tenant.id, &owner, hash).await?;
    let (key, row) = issue(
        Grant {
            tenant_id: tenant.id,
            user_id: owner_row.id,
            label: "Bootstrap key".to_owned(),
            environment: Environment::Live,
            scope: Scope::Full,
            expires_at: None,
        },
        now,
    );
    row.insert(&tx).await?;
    tx.commit().await?;
    Ok(Bootstrapped {
        tenant_id: app.ids.encode(Kind::Tenant, tenant.id),
        tenant_slug: slug,
        user_id: app.ids.encode(Kind::User, owner_row.id),
        email: owner_row.email,
        password,
        api_key: key.key,
    })
}

/// On first start of an empty database, bootstraps one tenant; `None` on every later start.
pub async fn bootstrap_if_empty(
    app: &App,
    email: Option<String>,
    password: Option<String>,
) -> AppResult<Option<Bootstrapped>> {
    if tenant::Entity::find().count(&app.db).await? > 0 {
        return Ok(None);
    }
    // Of several processes starting on one empty database, only one bootstraps.
    let now = chrono::Utc::now().to_rfc3339();
    if !settings::insert_if_absent(&app.db, "bootstrapped_at", &now).await? {
        return Ok(None);
    }
    let email = email.unwrap_or_else(|| "admin@leadgraph.local".to_owned());
    bootstrap(app, "Default", &email, password, Plan::Pro)
        .await
        .map(Some)
}

/// A tenant as an operator names it: its slug, its opaque ID (as `bootstrap --json` prints
/// it) or its name (any case); `NOT_FOUND` when none or several match.
pub async fn find(app: &App, spec: &str) -> AppResult<tenant::Model> {
    use sea_orm::QuerySelect;
    use sea_orm::sea_query::{Expr, ExprTrait, Func};
    let spec = spec.trim();
    let by_slug = tenant::Entity::find()
        .filter(tenant::Column::Slug.eq(spec))
        .one(&app.db)
        .await?;
    if let Some(t) = by_slug {
        return Ok(t);
    }
    if let Some(id) = app.ids.decode(Kind::Tenant, spec)
        && let Some(t) = tenant::Entity::find_by_id(id).one(&app.db).await?
    {
        return Ok(t);
    }
    let mut named = tenant::Entity::find()
        .filter(Func::lower(Expr::col(tenant::Column::Name)).eq(spec.to_lowercase()))
        .limit(2)
        .all(&app.db)
        .await?;
    match named.len() {
        1 => Ok(named.remove(0)),
        _ => Err(AppError::NotFound),
    }
}

/// One line of `leadgraph tenants`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The opaque ID.
    pub id: String,
    /// The slug.
    pub slug: String,
    /// The display name.
    pub name: String,
    /// The plan.
    pub plan: Plan,
    /// Users, active or not.
    pub users: i64,
    /// API keys not deleted.
    pub keys: i64,
}

/// Every tenant, oldest first, with its numbers of users and keys.
pub async fn list(app: &App) -> AppResult<Vec<Summary>> {
    use entity::api_key;
    use sea_orm::QuerySelect;
    let tenants = tenant::Entity::find()
        .order_by_asc(tenant::Column::Id)
        .all(&app.db)
        .await?;
    let users: std::collections::HashMap<i64, i64> = entity::user::Entity::find()
        .select_only()
        .column(entity::user::Column::TenantId)
        .column_as(entity::user::Column::Id.count(), "n")
        .group_by(entity::user::Column::TenantId)
        .into_tuple::<(i64, i64)>()
        .all(&app.db)
        .await?
        .into_iter()
        .collect();
    let keys: std::collections::HashMap<i64, i64> = api_key::Entity::find()
        .select_only()
        .column(api_key::Column::TenantId)
        .column_as(api_key::Column::Id.count(), "n")
        .filter(api_key::Column::DeletedAt.is_null())
        .group_by(api_key::Column::TenantId)
        .into_tuple::<(i64, i64)>()
        .all(&app.db)
        .await?
        .into_iter()
        .collect();
    Ok(tenants
        .into_iter()
        .map(|t| Summary {
            id: app.ids.encode(Kind::Tenant, t.id),
            users: users.get(&t.id).copied().unwrap_or(0),
            keys: keys.get(&t.id).copied().unwrap_or(0),
            slug: t.slug,
            name: t.name,
            plan: t.plan,
        })
        .collect())
}

/// Sets tenant `id`'s plan.
pub async fn set_plan(db: &DatabaseConnection, id: i64, plan: Plan) -> AppResult<tenant::Model> {
    let t = tenant::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut row: tenant::ActiveModel = t.into();
    row.plan = Set(plan);
    row.updated_at = Set(chrono::Utc::now());
    let t = row.update(db).await?;
    // Keys cached by running instances carry the old plan.
    let target = crate::service::invalidate::Target::Tenant(t.id);
    crate::service::invalidate::announce(db, target).await?;
    Ok(t)
}

/// The request context of a tenant's (first active) owner in `environment`, for operator
/// commands that act for the tenant.
pub async fn owner_context(
    app: &App,
    t: &tenant::Model,
    environment: Environment,
) -> AppResult<crate::context::RequestCtx> {
    use entity::enums::Role;
    let owner = entity::user::Entity::find()
        .filter(entity::user::Column::TenantId.eq(t.id))
        .filter(entity::user::Column::Role.eq(Role::Owner))
        .filter(entity::user::Column::Active.eq(true))
        .order_by_asc(entity::user::Column::Id)
        .one(&app.db)
        .await?
        .ok_or_else(|| AppError::Conflict("the tenant has no active owner".into()))?;
    Ok(crate::context::RequestCtx {
        principal: Some(crate::auth::principal::Principal {
            tenant_id: t.id,
            plan: t.plan,
            environment,
            user_id: owner.id,
            role: Role::Owner,
            actor_user_id: owner.id,
            via: crate::auth::principal::Via::Session,
        }),
        ..crate::context::RequestCtx::operator()
    })
}

/// A tenant by ID.
pub async fn get(db: &DatabaseConnection, id: i64) -> AppResult<tenant::Model> {
    tenant::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound)
}
