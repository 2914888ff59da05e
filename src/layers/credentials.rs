//! Turns request headers into a [`Principal`]: `X-API-Key`, `Authorization: ApiKey …`,
//! `Authorization: Bearer <key or access token>`, plus `X-Environment` and `X-On-Behalf-Of`.

use axum::http::{HeaderMap, HeaderName};
use entity::enums::{Environment, Plan, Role, Scope};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{EntityTrait, FromQueryResult};

use crate::auth::api_key;
use crate::auth::key_cache::KeyRecord;
use crate::auth::principal::{KeyInfo, Principal, Via};
use crate::error::AppError;
use crate::ids::Kind;
use crate::state::App;

// Header names parsed once: a look-up by `&str` parses and classifies the name every time,
// and these are looked up on every authenticated request.
/// Header carrying an API key.
const API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// Header naming the user an API-key request acts as.
const ON_BEHALF_OF: HeaderName = HeaderName::from_static("x-on-behalf-of");
/// Header choosing a session's environment.
const ENVIRONMENT: HeaderName = HeaderName::from_static("x-environment");

enum Credential<'a> {
    Key(&'a str),
    Jwt(&'a str),
}

/// Whether the request sends a credential header at all (`X-API-Key` or `Authorization`).
pub fn carries_credential(headers: &HeaderMap) -> bool {
    headers.contains_key(API_KEY) || headers.contains_key(axum::http::header::AUTHORIZATION)
}

fn credential(headers: &HeaderMap) -> Result<Option<Credential<'_>>, AppError> {
    let authorization = headers
        .get_all(axum::http::header::AUTHORIZATION)
        .iter()
        .count();
    let keys = headers.get_all(API_KEY).iter().count();
    // Exactly one credential: a second one, valid or not, is never silently ignored.
    if authorization + keys > 1 {
        return Err(AppError::InvalidToken);
    }
    if let Some(value) = headers.get(API_KEY) {
        let key = value.to_str().map_err(|_| AppError::InvalidToken)?.trim();
        return Ok(Some(Credential::Key(key)));
    }
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AppError::InvalidToken)?.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("apikey") {
        Ok(Some(Credential::Key(rest)))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if api_key::looks_like_key(rest) {
            Ok(Some(Credential::Key(rest)))
        } else {
            Ok(Some(Credential::Jwt(rest)))
        }
    } else {
        Err(AppError::InvalidToken)
    }
}

/// Authenticates a request; `Ok(None)` when it carries no credential at all.
pub async fn authenticate(app: &App, headers: &HeaderMap) -> Result<Option<Principal>, AppError> {
    let principal = match credential(headers)? {
        None => return Ok(None),
        Some(Credential::Key(key)) => key_principal(app, key, headers).await?,
        Some(Credential::Jwt(token)) => session_principal(app, token, headers).await?,
    };
    Ok(Some(principal))
}

fn requested_environment(headers: &HeaderMap) -> Result<Option<Environment>, AppError> {
    headers
        .get(ENVIRONMENT)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| Environment::parse(&s.trim().to_ascii_lowercase()))
                .ok_or_else(|| AppError::BadRequest("X-Environment must be live or sandbox".into()))
        })
        .transpose()
}

async fn key_principal(app: &App, key: &str, headers: &HeaderMap) -> Result<Principal, AppError> {
    let digest = api_key::digest(key);
    // Only real keys are cached, so a hit needs no checksum; a miss is checked before the
    // database is asked, so mistyped keys never reach it.
    let record = match app.key_cache.get(&digest) {
        Some(record) => record,
        None => {
            if api_key::parse(key).is_none() {
                return Err(AppError::InvalidToken);
            }
            let record = load_key(app, &hex::encode(digest))
                .await?
                .ok_or(AppError::InvalidToken)?;
            app.key_cache.insert(digest, record.clone());
            record
        }
    };
    if !record.active || !record.user_active {
        return Err(AppError::RevokedToken);
    }
    if record.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
        return Err(AppError::ExpiredToken);
    }
    if let Some(env) = requested_environment(headers)?
        && env != record.environment
    {
        return Err(AppError::Forbidden(
            "X-Environment does not match the API key's environment",
        ));
    }
    app.usage.record(record.id);
    let mut principal = Principal {
        tenant_id: record.tenant_id,
        plan: record.plan,
        environment: record.environment,
        user_id: record.user_id,
        role: record.user_role,
        actor_user_id: record.user_id,
        via: Via::ApiKey(KeyInfo {
            id: record.id,
            scope: record.scope,
        }),
    };
    if let Some(target) = headers.get(ON_BEHALF_OF) {
        let (user_id, role) = impersonation_target(app, &principal, target.to_str().ok()).await?;
        principal.user_id = user_id;
        principal.role = role;
    }
    Ok(principal)
}

/// Checks `X-On-Behalf-Of`: the key's creator must be an admin or owner, the target an active
/// user of the same tenant. Every refusal, unknown users included, is the same `403`.
async fn impersonation_target(
    app: &App,
    principal: &Principal,
    target: Option<&str>,
) -> Result<(i64, Role), AppError> {
    const REFUSED: AppError = AppError::Forbidden(
        "X-On-Behalf-Of needs a key created by an admin and an active user of the same tenant",
    );
    if !principal.role.is_admin() {
        return Err(REFUSED);
    }
    let id = target
        .and_then(|t| app.ids.decode(Kind::User, t.trim()))
        .ok_or(REFUSED)?;
    let user = entity::user::Entity::find_by_id(id)
        .one(&app.db)
        .await?
        .ok_or(REFUSED)?;
    if user.tenant_id != principal.tenant_id || !user.active {
        return Err(REFUSED);
    }
    Ok((user.id, user.role))
}

#[derive(Debug, FromQueryResult)]
struct KeyRow {
    id: i64,
    tenant_id: i64,
    user_id: i64,
    environment: Environment,
    scope: Scope,
    active: bool,
    deleted_at: Option<chrono::DateTime<chrono::Utc>>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    plan: Plan,
    role: Role,
    user_active: bool,
}

async fn load_key(app: &App, hash: &str) -> Result<Option<KeyRecord>, AppError> {
    use entity::{api_key, tenant, user};
    let stmt = Query::select()
        .columns([
            (api_key::Entity, api_key::Column::Id),
            (api_key::Entity, api_key::Column::TenantId),
            (api_key::Entity, api_key::Column::UserId),
            (api_key::Entity, api_key::Column::Environment),
            (api_key::Entity, api_key::Column::Scope),
            (api_key::Entity, api_key::Column::Active),
            (api_key::Entity, api_key::Column::DeletedAt),
            (api_key::Entity, api_key::Column::ExpiresAt),
        ])
        .column((tenant::Entity, tenant::Column::Plan))
        .column((user::Entity, user::Column::Role))
        .expr_as(
            Expr::col((user::Entity, user::Column::Active)),
            "user_active",
        )
        .from(api_key::Entity)
        .inner_join(
            user::Entity,
            Expr::col((user::Entity, user::Column::Id))
                .equals((api_key::Entity, api_key::Column::UserId)),
        )
        .inner_join(
            tenant::Entity,
            Expr::col((tenant::Entity, tenant::Column::Id))
                .equals((api_key::Entity, api_key::Column::TenantId)),
        )
        .and_where(Expr::col((api_key::Entity, api_key::Column::KeyHash)).eq(hash.to_owned()))
        .to_owned();
    let row = KeyRow::find_by_statement(app.db.get_database_backend().build(&stmt))
        .one(&app.db)
        .await?;
    Ok(row.map(|r| KeyRecord {
        id: r.id,
        tenant_id: r.tenant_id,
        plan: r.plan,
        user_id: r.user_id,
        user_role: r.role,
        user_active: r.user_active,
        environment: r.environment,
        scope: r.scope,
        active: r.active && r.deleted_at.is_none(),
        expires_at: r.expires_at,
    }))
}

async fn session_principal(
    app: &App,
    token: &str,
    headers: &HeaderMap,
) -> Result<Principal, AppError> {
    let claims = app.jwt.verify(token)?;
    let user_id = app
        .ids
        .decode(Kind::User, &claims.sub)
        .ok_or(AppError::InvalidToken)?;
    let tenant_id = app
        .ids
        .decode(Kind::Tenant, &claims.tid)
        .ok_or(AppError::InvalidToken)?;
    let user = entity::user::Entity::find_by_id(user_id)
        .one(&app.db)
        .await?
        .filter(|u| u.tenant_id == tenant_id)
        .ok_or(AppError::InvalidToken)?;
    // Deactivation and role changes move the epoch on; reactivation does not move it back.
    if !user.active || claims.epoch != user.session_epoch {
        return Err(AppError::RevokedToken);
    }
    if let Some(family) = &claims.sid
        && !crate::service::session::family_live(&app.db, family).await?
    {
        return Err(AppError::RevokedToken);
    }
    if headers.contains_key(ON_BEHALF_OF) {
        return Err(AppError::Forbidden(
            "X-On-Behalf-Of is only accepted with an API key",
        ));
    }
    let tenant = entity::tenant::Entity::find_by_id(tenant_id)
        .one(&app.db)
        .await?
        .ok_or(AppError::InvalidToken)?;
    Ok(Principal {
        tenant_id,
        plan: tenant.plan,
        environment: requested_environment(headers)?.unwrap_or(Environment::Live),
        user_id,
        role: user.role,
        actor_user_id: user_id,
        via: Via::Session,
    })
}
