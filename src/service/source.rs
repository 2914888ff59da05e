//! Lead sources: CRUD, lead counts, and inbound webhook tokens (stored hashed, shown once).

use base64::Engine;
use entity::enums::Channel;
use entity::{lead, source};
use rand::{RngCore, TryRngCore};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::principal::Principal;
use crate::context::RequestCtx;
use crate::db::{begin_write, one_locked};
use crate::error::{AppError, AppResult};
use crate::ids::{Ids, Kind};
use crate::service::audit::{self, Actor, Entry};
use crate::service::lead::{Change, now, ts};
use crate::service::validate::Errors;
use crate::state::App;

/// Fields of `createSource` / `updateSource`.
#[derive(Debug, Clone, Default)]
pub struct SourceInput {
    /// Name (1 to 100 characters); required on create.
    pub name: Option<String>,
    /// Channel; required on create.
    pub channel: Option<Channel>,
    /// Free text (up to 1000 characters).
    pub description: Change<String>,
}

/// Prefix of webhook tokens.
pub const WEBHOOK_PREFIX: &str = "lgw_";

/// The public JSON of a source (never the webhook token or its hash).
pub fn json(ids: &Ids, s: &source::Model) -> Value {
    json!({
        "id": ids.encode(Kind::Source, s.id),
        "name": s.name,
        "channel": s.channel,
        "description": s.description,
        "hasWebhook": s.webhook_token_hash.is_some(),
        "createdAt": ts(s.created_at),
        "updatedAt": ts(s.updated_at),
    })
}

fn check(input: &SourceInput, create: bool, errors: &mut Errors) {
    match &input.name {
        Some(n) => errors.name("name", n),
        None if create => errors.add("name", "is required"),
        None => {}
    }
    if create && input.channel.is_none() {
        errors.add("channel", "is required");
    }
    if let Change::Set(d) = &input.description {
        errors.length("description", d, 0, 1000);
    }
}

/// A source of the caller's tenant and environment.
pub async fn get(app: &App, rc: &RequestCtx, id: i64) -> AppResult<source::Model> {
    find(&app.db, rc.principal()?, id).await
}

/// A source of `p`'s tenant and environment, read through `db` (a write transaction reads the
/// row it is about to change, so the audit entry's "before" is what was changed).
fn scoped(p: &Principal, id: i64) -> Select<source::Entity> {
    source::Entity::find_by_id(id)
        .filter(source::Column::TenantId.eq(p.tenant_id))
        .filter(source::Column::Environment.eq(p.environment))
}

async fn find<C: ConnectionTrait>(db: &C, p: &Principal, id: i64) -> AppResult<source::Model> {
    scoped(p, id).one(db).await?.ok_or(AppError::NotFound)
}

/// The source `id`, locked for a change until `tx` ends.
async fn find_locked(tx: &DatabaseTransaction, p: &Principal, id: i64) -> AppResult<source::Model> {
    one_locked(tx, scoped(p, id))
        .await?
        .ok_or(AppError::NotFound)
}

/// The caller's sources, oldest first.
pub async fn list(app: &App, rc: &RequestCtx) -> AppResult<Vec<source::Model>> {
    let p = rc.principal()?;
    Ok(source::Entity::find()
        .filter(source::Column::TenantId.eq(p.tenant_id))
        .filter(source::Column::Environment.eq(p.environment))
        .order_by_asc(source::Column::Id)
        .limit(1000)
        .all(&app.db)
        .await?)
}

/// `createSource`.
pub async fn create(app: &App, rc: &RequestCtx, input: SourceInput) -> AppResult<source::Model> {
    let p = rc.principal()?;
    p.check_write()?;
    let mut errors = Errors::new();
    check(&input, true, &mut errors);
    errors.finish()?;
    let now = now();
    let tx = begin_write(&app.db).await?;
    let row = source::ActiveModel {
        tenant_id: Set(p.tenant_id),
        environment: Set(p.environment),
        name: Set(input.name.unwrap_or_default().trim().to_owned()),
        channel: Set(input.channel.unwrap_or(Channel::Manual)),
        description: Set(match input.description {
            Change::Set(d) => Some(d),
            _ => None,
        }),
        webhook_token_hash: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "source.create",
            resource_type: "source",
            resource_id: Some(row.id),
            changes: json!({"after": json(&app.ids, &row)}),
        },
    )
    .await?;
    Ok(row)
}

/// `updateSource`.
pub async fn update(
    app: &App,
    rc: &RequestCtx,
    id: i64,
    input: SourceInput,
) -> AppResult<source::Model> {
    let p = rc.principal()?;
    p.check_write()?;
    let mut errors = Errors::new();
    check(&input, false, &mut errors);
    errors.finish()?;
    let tx = begin_write(&app.db).await?;
    let before = find_locked(&tx, p, id).await?;
    let mut row: source::ActiveModel = before.clone().into();
    if let Some(n) = input.name {
        row.name = Set(n.trim().to_owned());
    }
    if let Some(c) = input.channel {
        row.channel = Set(c);
    }
    match input.description {
        Change::Set(d) => row.description = Set(Some(d)),
        Change::Clear => row.description = Set(None),
        Change::Keep => {}
    }
    row.updated_at = Set(now());
    let after = row.update(&tx).await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "source.update",
            resource_type: "source",
            resource_id: Some(id),
            changes: audit::diff(&json(&app.ids, &before), &json(&app.ids, &after)),
        },
    )
    .await?;
    Ok(after)
}

/// `deleteSource`: refused with `409 CONFLICT` while leads use the source.
pub async fn delete(app: &App, rc: &RequestCtx, id: i64) -> AppResult<()> {
    let p = rc.principal()?;
    p.check_write()?;
    let tx = begin_write(&app.db).await?;
    let before = find_locked(&tx, p, id).await?;
    let used = lead::Entity::find()
        .filter(lead::Column::SourceId.eq(id))
        .count(&tx)
        .await?;
    if used > 0 {
        return Err(AppError::Conflict(format!(
            "{used} lead(s) use this source; move them to another source or delete them first"
        )));
    }
    source::Entity::delete_by_id(id).exec(&tx).await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "source.delete",
            resource_type: "source",
            resource_id: Some(id),
            changes: json!({"before": json(&app.ids, &before)}),
        },
    )
    .await?;
    Ok(())
}

/// Hex SHA-256 of a webhook token, as stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates or replaces a source's webhook token; returns the token, shown this once.
pub async fn rotate_webhook_token(
    app: &App,
    rc: &RequestCtx,
    id: i64,
) -> AppResult<(source::Model, String)> {
    let p = rc.principal()?;
    p.check_write()?;
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.unwrap_err().fill_bytes(&mut bytes);
    let token = format!(
        "{WEBHOOK_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let tx = begin_write(&app.db).await?;
    let before = find_locked(&tx, p, id).await?;
    let mut row: source::ActiveModel = before.clone().into();
    row.webhook_token_hash = Set(Some(hash_token(&token)));
    row.updated_at = Set(now());
    let after = row.update(&tx).await?;
    audit::commit(tx, Actor::of(p), rc, Entry {
        action: "source.rotate_webhook_token",
        resource_type: "source",
        resource_id: Some(id),
        changes: json!({"before": {"hasWebhook": before.webhook_token_hash.is_some()}, "after": {"hasWebhook": true}}),
    }).await?;
    Ok((after, token))
}

/// Removes a source's webhook token.
pub async fn revoke_webhook_token(app: &App, rc: &RequestCtx, id: i64) -> AppResult<source::Model> {
    let p = rc.principal()?;
    p.check_write()?;
    let tx = begin_write(&app.db).await?;
    let before = find_locked(&tx, p, id).await?;
    source::Entity::update_many()
        .col_expr(
            source::Column::WebhookTokenHash,
            Expr::value(Option::<String>::None),
        )
        .filter(source::Column::Id.eq(id))
        .exec(&tx)
        .await?;
    let after = find(&tx, p, id).await?;
    audit::commit(tx, Actor::of(p), rc, Entry {
        action: "source.revoke_webhook_token",
        resource_type: "source",
        resource_id: Some(id),
        changes: json!({"before": {"hasWebhook": before.webhook_token_hash.is_some()}, "after": {"hasWebhook": false}}),
    })
    .await?;
    Ok(after)
}

/// The source a webhook token belongs to.
pub async fn by_webhook_token(
    db: &sea_orm::DatabaseConnection,
    token: &str,
) -> AppResult<Option<source::Model>> {
    if !token.starts_with(WEBHOOK_PREFIX) || token.len() > 128 {
        return Ok(None);
    }
    Ok(source::Entity::find()
        .filter(source::Column::WebhookTokenHash.eq(hash_token(token)))
        .one(db)
        .await?)
}
