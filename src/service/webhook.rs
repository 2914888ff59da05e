//! Outbound webhook endpoints (docs/events.md): registration, secrets shown once and
//! rotated with an overlap, test sends, the delivery log and redelivery. Sending is
//! `service::delivery`'s.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use entity::enums::{DeliveryStatus, Environment, EventType, Plan, Scope};
use entity::{event_stream, webhook_attempt, webhook_delivery, webhook_endpoint};
use rand::TryRngCore;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};

use crate::auth::principal::{KeyInfo, Principal};
use crate::context::RequestCtx;
use crate::db::{begin_write, one_locked};
use crate::error::{AppError, AppResult};
use crate::ids::Kind;
use crate::service::audit::{self, Actor, Entry};
use crate::service::validate::Errors;
use crate::state::App;

/// How long the secret before a rotation still signs.
pub const ROTATION_OVERLAP: Duration = Duration::hours(24);
/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Longest description accepted.
pub const MAX_DESCRIPTION_LEN: usize = 500;
/// Endpoints per tenant and environment.
pub const MAX_ENDPOINTS: u64 = 20;

/// A change to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    /// `http` or `https` URL.
    pub url: Option<String>,
    /// Types it receives; empty for all.
    pub events: Option<Vec<EventType>>,
    /// Free text; `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// Whether it receives deliveries.
    pub enabled: Option<bool>,
}

/// Admin and owner sessions and full-scope keys manage endpoints, on any plan but free.
pub fn check_manage(p: &Principal) -> AppResult<()> {
    if p.plan == Plan::Free {
        return Err(AppError::InsufficientPlan);
    }
    match p.key() {
        Some(KeyInfo {
            scope: Scope::Read, ..
        }) => Err(AppError::InsufficientScope),
        Some(_) => Ok(()),
        None => p.check_admin(),
    }
}

/// A fresh signing secret: `whsec_` and base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    // The OS generator failing leaves no safe way to make a secret.
    rand::rngs::OsRng
        .try_fill_bytes(&mut key)
        .expect("the operating system's random generator works");
    format!("whsec_{}", STANDARD.encode(key))
}

/// The endpoint URLs accepted (the OpenAPI document states the same pattern): `http` or
/// `https`; a dotted-quad IPv4 address or a DNS name whose last label starts with a letter
/// (a URL parser reads a host ending in a number as an IPv4 address); a port up to 65535;
/// then any printable ASCII.
pub const URL_PATTERN: &str = concat!(
    r"^https?://(?:(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])",
    r"|(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?)",
    r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?",
    r"(?:[/?#][\x21-\x7e]*)?$"
);

fn check_url(url: &str, errors: &mut Errors) {
    static PATTERN: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(URL_PATTERN).ok());
    if url.len() > MAX_URL_LEN {
        errors.add("url", format!("must be at most {MAX_URL_LEN} characters"));
        return;
    }
    if !PATTERN.as_ref().is_some_and(|p| p.is_match(url)) {
        errors.add(
            "url",
            "must be an http or https URL with a host name or IPv4 address",
        );
        return;
    }
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            if !u.username().is_empty() || u.password().is_some() {
                errors.add("url", "must not carry credentials");
            }
        }
        Ok(_) => errors.add("url", "must be an http or https URL with a host"),
        Err(_) => errors.add("url", "is not a valid URL"),
    }
}

fn check(input: &EndpointInput, create: bool, errors: &mut Errors) {
    match &input.url {
        Some(url) => check_url(url, errors),
        None if create => errors.add("url", "is required"),
        None => {}
    }
    if let Some(Some(d)) = &input.description
        && (d.chars().count() > MAX_DESCRIPTION_LEN || d.contains('\0'))
    {
        errors.add(
            "description",
            format!("must be at most {MAX_DESCRIPTION_LEN} characters, without NUL"),
        );
    }
}

fn type_names(types: &[EventType]) -> Value {
    let mut names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    json!(names)
}

/// The types an endpoint receives (all when empty).
pub fn event_types(e: &webhook_endpoint::Model) -> Vec<EventType> {
    e.event_types
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().and_then(EventType::parse))
                .collect()
        })
        .unwrap_or_default()
}

/// The public JSON of an endpoint (audit record); never its secret.
pub fn json(app: &App, e: &webhook_endpoint::Model) -> Value {
    json!({
        "id": app.ids.encode(Kind::WebhookEndpoint, e.id),
        "url": e.url,
        "description": e.description,
        "events": e.event_types,
        "enabled": e.enabled,
        "disabledReason": e.disabled_reason,
    })
}

/// `createWebhookEndpoint`: returns the endpoint and its secret, which is shown this once.
pub async fn create(
    app: &App,
    rc: &RequestCtx,
    input: EndpointInput,
) -> AppResult<(webhook_endpoint::Model, String)> {
    let p = rc.principal()?;
    check_manage(p)?;
    let mut errors = Errors::new();
    check(&input, true, &mut errors);
    errors.finish()?;
    let tx = begin_write(&app.db).await?;
    // The tenant's row serialises creates, so the cap holds under concurrency.
    one_locked(&tx, entity::tenant::Entity::find_by_id(p.tenant_id)).await?;
    let existing = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::TenantId.eq(p.tenant_id))
        .filter(webhook_endpoint::Column::Environment.eq(p.environment))
        .count(&tx)
        .await?;
    if existing >= MAX_ENDPOINTS {
        return Err(AppError::field(
            "url",
            format!("a tenant has at most {MAX_ENDPOINTS} endpoints per environment"),
        ));
    }
    let secret = new_secret();
    let now = Utc::now();
    let row = webhook_endpoint::ActiveModel {
        tenant_id: Set(p.tenant_id),
        environment: Set(p.environment),
        url: Set(input.url.unwrap_or_default().trim().to_owned()),
        description: Set(input.description.flatten()),
        event_types: Set(type_names(&input.events.unwrap_or_default())),
        enabled: Set(input.enabled.unwrap_or(true)),
        disabled_reason: Set(None),
        secret: Set(secret.clone()),
        previous_secret: Set(None),
        previous_secret_until: Set(None),
        failing_since: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    count_endpoints(&tx, p.tenant_id, p.environment).await?;
    let after = json(app, &row);
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "webhook_endpoint.create",
            resource_type: "webhook_endpoint",
            resource_id: Some(row.id),
            changes: json!({"after": after}),
        },
    )
    .await?;
    Ok((row, secret))
}

/// Queues one message to `endpoint` in `tx`.
pub async fn queue<C: ConnectionTrait>(
    tx: &C,
    endpoint: &webhook_endpoint::Model,
    event_id: Option<i64>,
    message_id: &str,
    event_type: &str,
    payload: &Value,
    now: DateTime<Utc>,
) -> Result<webhook_delivery::Model, DbErr> {
    webhook_delivery::ActiveModel {
        endpoint_id: Set(endpoint.id),
        tenant_id: Set(endpoint.tenant_id),
        environment: Set(endpoint.environment),
        event_id: Set(event_id),
        message_id: Set(message_id.to_owned()),
        event_type: Set(event_type.to_owned()),
        payload: Set(payload.to_string()),
        status: Set(DeliveryStatus::Pending),
        attempts: Set(0),
        next_attempt_at: Set(Some(now)),
        last_status_code: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(tx)
    .await
}

/// The caller's endpoints, oldest first.
pub async fn list(app: &App, rc: &RequestCtx) -> AppResult<Vec<webhook_endpoint::Model>> {
    let p = rc.principal()?;
    check_manage(p)?;
    Ok(webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::TenantId.eq(p.tenant_id))
        .filter(webhook_endpoint::Column::Environment.eq(p.environment))
        .order_by_asc(webhook_endpoint::Column::Id)
        .all(&app.db)
        .await?)
}

fn scoped(p: &Principal, id: i64) -> sea_orm::Select<webhook_endpoint::Entity> {
    webhook_endpoint::Entity::find_by_id(id)
        .filter(webhook_endpoint::Column::TenantId.eq(p.tenant_id))
        .filter(webhook_endpoint::Column::Environment.eq(p.environment))
}

/// Endpoint `id` of the caller.
pub async fn get(app: &App, rc: &RequestCtx, id: i64) -> AppResult<webhook_endpoint::Model> {
    let p = rc.principal()?;
    check_manage(p)?;
    scoped(p, id).one(&app.db).await?.ok_or(AppError::NotFound)
}

/// `updateWebhookEndpoint`. Enabling clears the reason it was disabled for.
pub async fn update(
    app: &App,
    rc: &RequestCtx,
    id: i64,
    input: EndpointInput,
) -> AppResult<webhook_endpoint::Model> {
    let p = rc.principal()?;
    check_manage(p)?;
    let mut errors = Errors::new();
    check(&input, false, &mut errors);
    errors.finish()?;
    let tx = begin_write(&app.db).await?;
    let before = one_locked(&tx, scoped(p, id))
        .await?
        .ok_or(AppError::NotFound)?;
    let mut row: webhook_endpoint::ActiveModel = before.clone().into();
    if let Some(url) = input.url {
        row.url = Set(url.trim().to_owned());
    }
    if let Some(events) = input.events {
        row.event_types = Set(type_names(&events));
    }
    if let Some(d) = input.description {
        row.description = Set(d);
    }
    if let Some(enabled) = input.enabled {
        row.enabled = Set(enabled);
        if enabled {
            row.disabled_reason = Set(None);
            row.failing_since = Set(None);
        }
    }
    row.updated_at = Set(Utc::now());
    let after = row.update(&tx).await?;
    if after.enabled != before.enabled {
        count_endpoints(&tx, p.tenant_id, p.environment).await?;
    }
    let resumed = after.enabled && !before.enabled;
    if resumed {
        // What waited while it was disabled goes now, not at its next scheduled retry.
        webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::value(Utc::now()),
            )
            .filter(webhook_delivery::Column::EndpointId.eq(id))
            .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
            .exec(&tx)
            .await?;
    }
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "webhook_endpoint.update",
            resource_type: "webhook_endpoint",
            resource_id: Some(id),
            changes: audit::diff(&json(app, &before), &json(app, &after)),
        },
    )
    .await?;
    if resumed {
        app.outbox.deliveries_due.notify_one();
    }
    Ok(after)
}

/// `rotateWebhookEndpointSecret`: a new secret, returned once; the old one also signs for
/// [`ROTATION_OVERLAP`].
pub async fn rotate_secret(
    app: &App,
    rc: &RequestCtx,
    id: i64,
) -> AppResult<(webhook_endpoint::Model, String)> {
    let p = rc.principal()?;
    check_manage(p)?;
    let tx = begin_write(&app.db).await?;
    let before = one_locked(&tx, scoped(p, id))
        .await?
        .ok_or(AppError::NotFound)?;
    let secret = new_secret();
    let now = Utc::now();
    let mut row: webhook_endpoint::ActiveModel = before.clone().into();
    row.previous_secret = Set(Some(before.secret.clone()));
    row.previous_secret_until = Set(Some(now + ROTATION_OVERLAP));
    row.secret = Set(secret.clone());
    row.updated_at = Set(now);
    let after = row.update(&tx).await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "webhook_endpoint.rotate_secret",
            resource_type: "webhook_endpoint",
            resource_id: Some(id),
            changes: json!({}),
        },
    )
    .await?;
    Ok((after, secret))
}

/// `deleteWebhookEndpoint`: its pending deliveries are dropped with it.
pub async fn delete(app: &App, rc: &RequestCtx, id: i64) -> AppResult<()> {
    let p = rc.principal()?;
    check_manage(p)?;
    let tx = begin_write(&app.db).await?;
    let before = one_locked(&tx, scoped(p, id))
        .await?
        .ok_or(AppError::NotFound)?;
    let deliveries = webhook_delivery::Entity::find()
        .select_only()
        .column(webhook_delivery::Column::Id)
        .filter(webhook_delivery::Column::EndpointId.eq(id))
        .into_tuple::<i64>()
        .all(&tx)
        .await?;
    for chunk in deliveries.chunks(500) {
        webhook_attempt::Entity::delete_many()
            .filter(webhook_attempt::Column::DeliveryId.is_in(chunk.iter().copied()))
            .exec(&tx)
            .await?;
    }
    webhook_delivery::Entity::delete_many()
        .filter(webhook_delivery::Column::EndpointId.eq(id))
        .exec(&tx)
        .await?;
    webhook_endpoint::Entity::delete_by_id(id).exec(&tx).await?;
    count_endpoints(&tx, p.tenant_id, p.environment).await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "webhook_endpoint.delete",
            resource_type: "webhook_endpoint",
            resource_id: Some(id),
            changes: json!({"before": json(app, &before)}),
        },
    )
    .await?;
    Ok(())
}

/// `sendTestWebhook`: queues a `webhook.test` message to the endpoint, enabled or not.
pub async fn send_test(app: &App, rc: &RequestCtx, id: i64) -> AppResult<webhook_delivery::Model> {
    let p = rc.principal()?;
    check_manage(p)?;
    let tx = begin_write(&app.db).await?;
    let endpoint = one_locked(&tx, scoped(p, id))
        .await?
        .ok_or(AppError::NotFound)?;
    let now = Utc::now();
    let message_id = format!("msg_test_{}", uuid::Uuid::new_v4().simple());
    let payload = json!({
        "id": message_id,
        "type": "webhook.test",
        "timestamp": crate::service::clock::ts(now),
        "data": {"endpointId": app.ids.encode(Kind::WebhookEndpoint, endpoint.id)},
    });
    let row = queue(
        &tx,
        &endpoint,
        None,
        &message_id,
        "webhook.test",
        &payload,
        now,
    )
    .await?;
    tx.commit().await?;
    app.outbox.deliveries_due.notify_one();
    Ok(row)
}

/// Deliveries of endpoint `id`, newest first: `first` of them after the delivery `after` (its
/// opaque ID, the list's cursor).
pub async fn deliveries(
    app: &App,
    rc: &RequestCtx,
    endpoint_id: i64,
    status: Option<DeliveryStatus>,
    first: Option<i64>,
    after: Option<&str>,
) -> AppResult<(Vec<webhook_delivery::Model>, bool)> {
    let mut errors = Errors::new();
    let limit = crate::service::page::size(first, &mut errors);
    let after = after.and_then(|c| {
        let id = app.ids.decode(Kind::WebhookDelivery, c);
        if id.is_none() {
            errors.add("after", "is not a valid cursor");
        }
        id
    });
    errors.finish()?;
    get(app, rc, endpoint_id).await?;
    let mut q = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id));
    if let Some(s) = status {
        q = q.filter(webhook_delivery::Column::Status.eq(s));
    }
    if let Some(after) = after {
        q = q.filter(webhook_delivery::Column::Id.lt(after));
    }
    let mut rows = q
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(limit + 1)
        .all(&app.db)
        .await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// The attempts of deliveries, oldest first.
pub async fn attempts(app: &App, delivery_ids: Vec<i64>) -> AppResult<Vec<webhook_attempt::Model>> {
    Ok(webhook_attempt::Entity::find()
        .filter(webhook_attempt::Column::DeliveryId.is_in(delivery_ids))
        .order_by_asc(webhook_attempt::Column::Id)
        .all(&app.db)
        .await?)
}

/// `redeliverWebhook`: sends the same message again (same `webhook-id`), now, whatever its
/// state.
pub async fn redeliver(app: &App, rc: &RequestCtx, id: i64) -> AppResult<webhook_delivery::Model> {
    let p = rc.principal()?;
    check_manage(p)?;
    let tx = begin_write(&app.db).await?;
    let before = one_locked(
        &tx,
        webhook_delivery::Entity::find_by_id(id)
            .filter(webhook_delivery::Column::TenantId.eq(p.tenant_id))
            .filter(webhook_delivery::Column::Environment.eq(p.environment)),
    )
    .await?
    .ok_or(AppError::NotFound)?;
    let mut row: webhook_delivery::ActiveModel = before.into();
    let now = Utc::now();
    row.status = Set(DeliveryStatus::Pending);
    row.next_attempt_at = Set(Some(now));
    row.updated_at = Set(now);
    let after = row.update(&tx).await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "webhook_delivery.redeliver",
            resource_type: "webhook_delivery",
            resource_id: Some(id),
            changes: json!({}),
        },
    )
    .await?;
    app.outbox.deliveries_due.notify_one();
    Ok(after)
}

/// Sets the stream's count of enabled endpoints from the endpoints as they now are; every
/// write that adds, removes, enables or disables one calls it before its commit. The stream's
/// row is locked first, so the count is taken after every earlier writer has committed.
pub async fn count_endpoints(
    tx: &DatabaseTransaction,
    tenant_id: i64,
    environment: Environment,
) -> Result<(), DbErr> {
    let lock = Query::insert()
        .into_table(event_stream::Entity)
        .columns([
            event_stream::Column::TenantId,
            event_stream::Column::Environment,
            event_stream::Column::LastSeq,
            event_stream::Column::PrunedThrough,
        ])
        .values_panic([
            tenant_id.into(),
            environment.as_str().into(),
            0i64.into(),
            0i64.into(),
        ])
        .on_conflict(
            OnConflict::columns([
                event_stream::Column::TenantId,
                event_stream::Column::Environment,
            ])
            .value(
                event_stream::Column::LastSeq,
                Expr::col((event_stream::Entity, event_stream::Column::LastSeq)),
            )
            .to_owned(),
        )
        .to_owned();
    tx.execute(&lock).await?;
    let count = Query::select()
        .expr(Expr::col(webhook_endpoint::Column::Id).count())
        .from(webhook_endpoint::Entity)
        .and_where(webhook_endpoint::Column::TenantId.eq(tenant_id))
        .and_where(webhook_endpoint::Column::Environment.eq(environment))
        .and_where(webhook_endpoint::Column::Enabled.eq(true))
        .to_owned();
    event_stream::Entity::update_many()
        .col_expr(event_stream::Column::Endpoints, Expr::expr(count))
        .filter(event_stream::Column::TenantId.eq(tenant_id))
        .filter(event_stream::Column::Environment.eq(environment))
        .exec(tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pattern the OpenAPI document states is the one endpoints are checked against: what
    /// it allows is accepted, what it refuses is refused.
    #[test]
    fn urls_match_the_documented_pattern() {
        let accepted = |url: &str| {
            let mut errors = Errors::new();
            check_url(url, &mut errors);
            errors.is_empty()
        };
        for ok in [
            "https://example.com/hooks",
            "http://127.0.0.1:65535/x?y=1#z",
            "https://a-b.example.org:8443",
            "http://localhost/{weird}^path",
        ] {
            assert!(accepted(ok), "{ok}");
        }
        for bad in [
            "",
            "ftp://example.com",
            "https://user:pw@example.com/",
            "https://example.com:65536/",
            "https://-example.com/",
            "https://exa mple.com/",
            " https://example.com",
            "https://example.com/\n",
            "http://yjIe.1:64068",
            "http://256.1.1.1/",
            "HTTPS://example.com",
        ] {
            assert!(!accepted(bad), "{bad:?}");
        }
    }
}
