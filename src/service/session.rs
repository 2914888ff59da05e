//! User sessions: login, refresh-token rotation with reuse detection, logout.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use entity::refresh_token;
use entity::user;
use rand::{RngCore, TryRngCore};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter,
};
use sha2::{Digest, Sha256};

use crate::auth::jwt::Subject;
use crate::auth::password;
use crate::context::RequestCtx;
use crate::db::{begin_write, one_locked};
use crate::error::{AppError, AppResult};
use crate::ids::Kind;
use crate::service::audit::{self, Actor, Entry};
use crate::state::App;

/// Refresh token lifetime.
pub const REFRESH_TTL_DAYS: i64 = 30;
/// Prefix of refresh tokens, so they are told apart from keys and JWTs.
pub const REFRESH_PREFIX: &str = "lgr_";

/// A freshly issued session.
#[derive(Debug)]
pub struct Session {
    /// The access token (JWT).
    pub token: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// The refresh token, shown once.
    pub refresh_token: String,
    /// The user.
    pub user: user::Model,
}

/// The audit entry of a session event, attributed to the user.
async fn record<C: ConnectionTrait>(
    tx: &C,
    rc: &RequestCtx,
    user: &user::Model,
    action: &str,
) -> AppResult<()> {
    let entry = Entry {
        action,
        resource_type: "user",
        resource_id: Some(user.id),
        changes: serde_json::json!({}),
    };
    Ok(audit::record(tx, Actor::user(user.tenant_id, user.id), rc, entry).await?)
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.unwrap_err().fill_bytes(&mut bytes);
    format!(
        "{REFRESH_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

async fn insert_refresh<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    family_id: &str,
) -> AppResult<(String, refresh_token::Model)> {
    let token = new_refresh_token();
    let now = Utc::now();
    let row = refresh_token::ActiveModel {
        user_id: Set(user_id),
        family_id: Set(family_id.to_owned()),
        token_hash: Set(hash(&token)),
        expires_at: Set(now + Duration::days(REFRESH_TTL_DAYS)),
        revoked_at: Set(None),
        replaced_by: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok((token, row))
}

fn access_token(app: &App, u: &user::Model, family: &str) -> AppResult<(String, DateTime<Utc>)> {
    let (token, exp) = app.jwt.issue(Subject {
        user: &app.ids.encode(Kind::User, u.id),
        tenant: &app.ids.encode(Kind::Tenant, u.tenant_id),
        family,
        epoch: u.session_epoch,
    })?;
    Ok((
        token,
        DateTime::from_timestamp(exp, 0).unwrap_or_else(Utc::now),
    ))
}

/// Logs in. A wrong email, a wrong password and an inactive user get the same answer, after
/// the same argon2 work.
pub async fn login(app: &App, rc: &RequestCtx, email: &str, password: &str) -> AppResult<Session> {
    let email = crate::service::validate::normalize_email(email);
    app.limits.charge_credential_check(rc)?;
    if let Some(retry_after) = app.limits.login_refused(&email) {
        return Err(AppError::RateLimited { retry_after });
    }
    let found = if email.is_empty()
        || email.len() > crate::service::validate::EMAIL_MAX
        || email.contains('\0')
    {
        None
    } else {
        user::Entity::find()
            .filter(user::Column::Email.eq(&email))
            .one(&app.db)
            .await?
    };
    let phc = found
        .as_ref()
        .map_or_else(|| app.dummy_hash.clone(), |u| u.password_hash.clone());
    let ok = password::verify_async(password.to_owned(), phc).await?;
    let user = match found {
        Some(u) if ok && u.active => u,
        _ => {
            app.limits.login_failed(&email);
            return Err(AppError::InvalidCredentials);
        }
    };
    app.limits.login_succeeded(&email);
    let family = uuid::Uuid::new_v4().to_string();
    let tx = begin_write(&app.db).await?;
    let (refresh, _) = insert_refresh(&tx, user.id, &family).await?;
    record(&tx, rc, &user, "session.login").await?;
    tx.commit().await?;
    let (token, expires_at) = access_token(app, &user, &family)?;
    Ok(Session {
        token,
        expires_at,
        refresh_token: refresh,
        user,
    })
}

/// Revokes every refresh token of a user.
pub async fn revoke_user<C: ConnectionTrait>(db: &C, user_id: i64) -> AppResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

async fn revoke_family<C: ConnectionTrait>(db: &C, family_id: &str) -> AppResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(refresh_token::Column::FamilyId.eq(family_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

async fn find(app: &App, token: &str) -> AppResult<refresh_token::Model> {
    if !token.starts_with(REFRESH_PREFIX) || token.len() > 128 {
        return Err(AppError::InvalidToken);
    }
    refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash(token)))
        .one(&app.db)
        .await?
        .ok_or(AppError::InvalidToken)
}

/// Rotates a refresh token. Presenting one that was already used or revoked revokes its
/// whole family and answers `REVOKED_TOKEN`, except a token rotated less than
/// `--refresh-reuse-interval-ms` ago whose session is still live: that is a concurrent refresh
/// (two tabs), and it gets a token of the same session too.
pub async fn refresh(app: &App, rc: &RequestCtx, token: &str) -> AppResult<Session> {
    app.limits.charge_credential_check(rc)?;
    let found = find(app, token).await?;
    let tx = begin_write(&app.db).await?;
    // Concurrent refreshes of one token take turns on its row.
    let current = one_locked(&tx, refresh_token::Entity::find_by_id(found.id))
        .await?
        .ok_or(AppError::InvalidToken)?;
    let now = Utc::now();
    let rotated_recently = current.replaced_by.is_some()
        && current.revoked_at.is_some_and(|at| {
            now.signed_duration_since(at).num_milliseconds()
                < app.config.refresh_reuse_interval_ms as i64
        });
    if current.revoked_at.is_some()
        && !(rotated_recently && family_live(&tx, &current.family_id).await?)
    {
        revoke_family(&tx, &current.family_id).await?;
        tx.commit().await?;
        return Err(AppError::RevokedToken);
    }
    if current.expires_at <= now {
        return Err(AppError::ExpiredToken);
    }
    let user = user::Entity::find_by_id(current.user_id)
        .one(&tx)
        .await?
        .filter(|u| u.active)
        .ok_or(AppError::RevokedToken)?;
    let (next, next_row) = insert_refresh(&tx, user.id, &current.family_id).await?;
    if current.revoked_at.is_none() {
        let mut row: refresh_token::ActiveModel = current.clone().into();
        row.revoked_at = Set(Some(now));
        row.replaced_by = Set(Some(next_row.id));
        row.update(&tx).await?;
    }
    record(&tx, rc, &user, "session.refresh").await?;
    tx.commit().await?;
    let (token, expires_at) = access_token(app, &user, &current.family_id)?;
    Ok(Session {
        token,
        expires_at,
        refresh_token: next,
        user,
    })
}

/// Whether a login's refresh-token family still has an unrevoked token: logging out and
/// reusing a refresh token revoke them all, and the access tokens of that login with them.
pub async fn family_live<C: ConnectionTrait>(db: &C, family_id: &str) -> AppResult<bool> {
    let live = refresh_token::Entity::find()
        .filter(refresh_token::Column::FamilyId.eq(family_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .count(db)
        .await?;
    Ok(live > 0)
}

/// Revokes the family of a refresh token.
pub async fn logout(app: &App, rc: &RequestCtx, token: &str) -> AppResult<()> {
    app.limits.charge_credential_check(rc)?;
    let current = find(app, token).await?;
    let user = user::Entity::find_by_id(current.user_id)
        .one(&app.db)
        .await?
        .ok_or(AppError::InvalidToken)?;
    let tx = begin_write(&app.db).await?;
    revoke_family(&tx, &current.family_id).await?;
    record(&tx, rc, &user, "session.logout").await?;
    tx.commit().await?;
    Ok(())
}
