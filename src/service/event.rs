//! The change feed (docs/events.md). Every committed lead change appends its events in its
//! own transaction ([`append`], called by `audit::commit_with`), so an event exists if and
//! only if its change committed; the feed, webhooks and subscriptions all read these rows.
//!
//! Order: each tenant and environment is one stream. [`append`] numbers events by bumping the
//! stream's row, which locks it until the transaction ends, so a stream's numbers are handed
//! out in commit order: a reader that has seen number N has seen every number below it, and
//! following `after` never skips an event, whatever order concurrent writers commit in.

use chrono::{DateTime, Utc};
use entity::enums::{Environment, EventType};
use entity::{event, event_stream, webhook_endpoint};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use serde_json::{Map, Value, json};

use crate::context::RequestCtx;
use crate::error::{AppError, AppResult};
use crate::ids::{Ids, Kind};
pub use crate::outbox::Outbox;
use crate::service::audit::{self, Actor};
use crate::service::page;
use crate::service::validate::Errors;
use crate::service::webhook;
use crate::state::App;

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// What happened.
    pub event_type: EventType,
    /// `lead`, …
    pub resource_type: &'static str,
    /// The row.
    pub resource_id: Option<i64>,
    /// The resource as REST shows it after the change (its last state for a delete).
    pub data: Value,
    /// `{field: {from, to}}` for updates.
    pub changes: Option<Value>,
}

impl NewEvent {
    /// A lead event; `before` makes `changes` (only the fields that differ).
    pub fn lead(event_type: EventType, id: i64, before: Option<&Value>, after: Value) -> Self {
        NewEvent {
            event_type,
            resource_type: "lead",
            resource_id: Some(id),
            changes: before.map(|b| changes(b, &after)),
            data: after,
        }
    }
}

/// `{field: {from, to}}` for the fields of `after` that differ from `before` (`updatedAt` is
/// not a change of its own).
pub fn changes(before: &Value, after: &Value) -> Value {
    audit::changed(before, after)
        .into_iter()
        .map(|(k, from, to)| (k.to_owned(), json!({"from": from, "to": to})))
        .collect::<Map<_, _>>()
        .into()
}

/// Appends `events` to the stream of `actor` in `tx` and queues their webhook deliveries;
/// returns the rows, to [`Outbox::announce`] once `tx` has committed. Call it last before the
/// commit: the stream's row stays locked until then.
pub async fn append(
    out: &Outbox,
    tx: &DatabaseTransaction,
    actor: Actor,
    events: Vec<NewEvent>,
) -> Result<Vec<event::Model>, DbErr> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let (rows, endpoints) = if tx.get_database_backend() == sea_orm::DbBackend::Postgres {
        append_postgres(tx, actor, &events, now).await?
    } else {
        append_sqlite(tx, actor, events, now).await?
    };
    // The stream counts its enabled endpoints, so a stream without any (most) looks up none.
    if endpoints > 0 {
        let endpoints = subscribed_endpoints(tx, actor.tenant_id, actor.environment).await?;
        if fan_out(tx, &out.ids, &endpoints, &rows).await? > 0 {
            // Woken before the commit, the worker may find nothing yet; it polls again shortly.
            out.deliveries_due.notify_one();
        }
    }
    Ok(rows)
}

/// The PostgreSQL notification channel of committed events (their row IDs).
pub const CHANNEL: &str = "leadgraph_events";

/// On PostgreSQL: listens for committed events of every instance and hands them to this
/// instance's subscribers. Reconnects when the connection drops (events committed meanwhile
/// are in the feed).
pub async fn listen(db: DatabaseConnection, url: String, out: Outbox) {
    out.notified
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let announce = |payload: String| {
        let (db, out) = (db.clone(), out.clone());
        async move {
            let ids: Vec<i64> = payload.split(',').filter_map(|s| s.parse().ok()).collect();
            if out.committed.receiver_count() == 0 || ids.is_empty() {
                return;
            }
            match event::Entity::find()
                .filter(event::Column::Id.is_in(ids))
                .order_by_asc(event::Column::Seq)
                .all(&db)
                .await
            {
                Ok(rows) => {
                    for e in rows {
                        let _ = out.committed.send(std::sync::Arc::new(e));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not load notified events"),
            }
        }
    };
    // Events committed while it was away are in the feed.
    crate::db::listen(url, CHANNEL, "events", || {}, announce).await;
}

/// SQLite: bumps the stream's row (one atomic upsert; SQLite has one writer at a time) and
/// inserts the events with the numbers it handed out; returns them and the stream's count of
/// enabled endpoints.
async fn append_sqlite(
    tx: &DatabaseTransaction,
    actor: Actor,
    events: Vec<NewEvent>,
    now: DateTime<Utc>,
) -> Result<(Vec<event::Model>, i64), DbErr> {
    let n = events.len() as i64;
    // One atomic statement creates or bumps the stream's row and locks it.
    let bump = Query::insert()
        .into_table(event_stream::Entity)
        .columns([
            event_stream::Column::TenantId,
            event_stream::Column::Environment,
            event_stream::Column::LastSeq,
            event_stream::Column::PrunedThrough,
        ])
        .values_panic([
            actor.tenant_id.into(),
            actor.environment.as_str().into(),
            n.into(),
            0i64.into(),
        ])
        .on_conflict(
            OnConflict::columns([
                event_stream::Column::TenantId,
                event_stream::Column::Environment,
            ])
            .value(
                event_stream::Column::LastSeq,
                Expr::col((event_stream::Entity, event_stream::Column::LastSeq)).add(n),
            )
            .to_owned(),
        )
        .returning(Query::returning().columns([
            event_stream::Column::LastSeq,
            event_stream::Column::Endpoints,
        ]))
        .to_owned();
    let row = tx
        .query_one(&bump)
        .await?
        .ok_or_else(|| DbErr::Custom("the event stream returned no number".into()))?;
    let last: i64 = row.try_get_by_index(0)?;
    let endpoints: i64 = row.try_get_by_index(1)?;
    let mut rows = Vec::with_capacity(events.len());
    for (i, e) in events.into_iter().enumerate() {
        let row = event::ActiveModel {
            tenant_id: Set(actor.tenant_id),
            environment: Set(actor.environment),
            seq: Set(last - n + 1 + i as i64),
            event_type: Set(e.event_type),
            occurred_at: Set(now),
            resource_type: Set(e.resource_type.to_owned()),
            resource_id: Set(e.resource_id),
            actor_user_id: Set(actor.actor_user_id),
            on_behalf_of_user_id: Set(actor.on_behalf_of_user_id),
            api_key_id: Set(actor.api_key_id),
            data: Set(e.data),
            changes: Set(e.changes),
            ..Default::default()
        };
        rows.push(row.insert(tx).await?);
    }
    Ok((rows, endpoints))
}

/// PostgreSQL: bumps the stream's row, which locks it until the commit, inserts the events
/// numbered from it and notifies the listeners of their IDs (delivered on commit only), in one
/// statement: one round trip under the lock. Returns the events and the stream's count of
/// enabled endpoints.
async fn append_postgres(
    tx: &DatabaseTransaction,
    actor: Actor,
    events: &[NewEvent],
    now: DateTime<Utc>,
) -> Result<(Vec<event::Model>, i64), DbErr> {
    let mut values: Vec<sea_orm::Value> = vec![
        actor.tenant_id.into(),
        actor.environment.as_str().into(),
        (events.len() as i64).into(),
        now.into(),
        actor.actor_user_id.into(),
        actor.on_behalf_of_user_id.into(),
        actor.api_key_id.into(),
        CHANNEL.into(),
    ];
    let mut rows = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let b = values.len();
        values.push((i as i64 + 1).into());
        values.push(e.event_type.as_str().into());
        values.push(e.resource_type.into());
        values.push(e.resource_id.into());
        values.push(e.data.clone().into());
        values.push(e.changes.clone().into());
        rows.push(format!(
            "(${}::bigint, ${}::text, ${}::text, ${}::bigint, ${}::jsonb, ${}::jsonb)",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6
        ));
    }
    let sql = format!(
        "WITH s AS (INSERT INTO event_streams (tenant_id, environment, last_seq, pruned_through) \
         VALUES ($1, $2, $3, 0) ON CONFLICT (tenant_id, environment) \
         DO UPDATE SET last_seq = event_streams.last_seq + EXCLUDED.last_seq \
         RETURNING last_seq, endpoints), \
         ins AS (INSERT INTO events (tenant_id, environment, seq, event_type, occurred_at, \
         resource_type, resource_id, actor_user_id, on_behalf_of_user_id, api_key_id, data, \
         changes) \
         SELECT $1, $2, s.last_seq - $3 + v.ord, v.event_type, $4, v.resource_type, \
         v.resource_id, $5, $6, $7, v.data, v.changes \
         FROM s, (VALUES {}) AS v(ord, event_type, resource_type, resource_id, data, changes) \
         RETURNING *) \
         SELECT ins.*, s.endpoints AS stream_endpoints FROM ins CROSS JOIN s \
         CROSS JOIN (SELECT pg_notify($8, string_agg(id::text, ',' ORDER BY seq)) FROM ins) n",
        rows.join(", ")
    );
    let result = tx
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            sql,
            values,
        ))
        .await?;
    let mut endpoints = 0;
    let mut inserted = Vec::with_capacity(result.len());
    for row in &result {
        endpoints = row.try_get::<i64>("", "stream_endpoints")?;
        inserted.push(<event::Model as sea_orm::FromQueryResult>::from_query_result(row, "")?);
    }
    inserted.sort_by_key(|e| e.seq);
    Ok((inserted, endpoints))
}

/// The enabled endpoints of a stream.
async fn subscribed_endpoints<C: ConnectionTrait>(
    tx: &C,
    tenant_id: i64,
    environment: Environment,
) -> Result<Vec<webhook_endpoint::Model>, DbErr> {
    webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::TenantId.eq(tenant_id))
        .filter(webhook_endpoint::Column::Environment.eq(environment))
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(tx)
        .await
}

/// Queues `events` (just appended in `tx`) to every enabled endpoint of the stream that
/// subscribed to their type; returns how many deliveries were queued.
async fn fan_out<C: ConnectionTrait>(
    tx: &C,
    ids: &Ids,
    endpoints: &[webhook_endpoint::Model],
    events: &[event::Model],
) -> Result<usize, DbErr> {
    if endpoints.is_empty() {
        return Ok(0);
    }
    let mut queued = 0;
    for e in events {
        let event = json(ids, e);
        let message_id = ids.encode(Kind::Event, e.id);
        let payload = json!({
            "id": message_id,
            "type": e.event_type.as_str(),
            "timestamp": crate::service::clock::ts(e.occurred_at),
            "data": event,
        });
        for endpoint in endpoints {
            let types = webhook::event_types(endpoint);
            if types.is_empty() || types.contains(&e.event_type) {
                let t = e.event_type.as_str();
                webhook::queue(
                    tx,
                    endpoint,
                    Some(e.id),
                    &message_id,
                    t,
                    &payload,
                    e.occurred_at,
                )
                .await?;
                queued += 1;
            }
        }
    }
    Ok(queued)
}

/// Records the audit entry of a change and appends its events, then commits all three: the
/// way every change that tells the feed ends (see `audit::commit` for the others).
pub async fn commit(
    out: &Outbox,
    tx: DatabaseTransaction,
    actor: Actor,
    rc: &RequestCtx,
    entry: audit::Entry<'_>,
    events: Vec<NewEvent>,
) -> Result<(), DbErr> {
    commit_all(out, tx, actor, rc, vec![entry], events).await
}

/// [`commit`] for a change of several rows, with an audit entry each (a batch).
pub async fn commit_all(
    out: &Outbox,
    tx: DatabaseTransaction,
    actor: Actor,
    rc: &RequestCtx,
    entries: Vec<audit::Entry<'_>>,
    events: Vec<NewEvent>,
) -> Result<(), DbErr> {
    for entry in entries {
        audit::record(&tx, actor, rc, entry).await?;
    }
    let appended = append(out, &tx, actor, events).await?;
    tx.commit().await?;
    out.announce(appended);
    Ok(())
}

/// What to read of the feed.
#[derive(Debug, Clone, Default)]
pub struct FeedArgs {
    /// Events after this cursor; from the oldest kept when `None`.
    pub after: Option<String>,
    /// Page size, 1 to 100 (default 20).
    pub first: Option<i64>,
    /// Only these types (all when empty).
    pub types: Vec<EventType>,
    /// Only events of this lead (opaque ID).
    pub resource_id: Option<String>,
}

/// A page of the feed.
#[derive(Debug, Clone)]
pub struct Feed {
    /// The events, oldest first.
    pub events: Vec<event::Model>,
    /// Whether more events follow now.
    pub has_more: bool,
    /// Where to resume: after the last event returned, else where the reader was.
    pub cursor: Option<String>,
}

/// The cursor after event number `seq` of a stream.
pub fn cursor(ids: &Ids, seq: i64) -> String {
    ids.encode(Kind::EventCursor, seq)
}

/// A page of the caller's stream.
pub async fn feed(app: &App, rc: &RequestCtx, args: FeedArgs) -> AppResult<Feed> {
    let p = rc.principal()?;
    let mut errors = Errors::new();
    let limit = page::size(args.first, &mut errors);
    let after = match &args.after {
        Some(c) => {
            let seq = app.ids.decode(Kind::EventCursor, c);
            if seq.is_none() {
                errors.add("after", "is not a valid cursor");
            }
            seq
        }
        None => None,
    };
    let resource = match &args.resource_id {
        Some(id) => {
            let lead = app.ids.lookup(Kind::Lead, id);
            if lead.is_none() {
                errors.add("resourceId", "is not a valid ID");
            }
            lead
        }
        None => None,
    };
    errors.finish()?;
    let stream = event_stream::Entity::find_by_id((p.tenant_id, p.environment))
        .one(&app.db)
        .await?;
    let pruned = stream.as_ref().map_or(0, |s| s.pruned_through);
    if let Some(seq) = after
        && seq < pruned
    {
        return Err(AppError::CursorExpired);
    }
    let mut q = event::Entity::find()
        .filter(event::Column::TenantId.eq(p.tenant_id))
        .filter(event::Column::Environment.eq(p.environment))
        .filter(event::Column::Seq.gt(after.unwrap_or(0)));
    if !args.types.is_empty() {
        q = q.filter(event::Column::EventType.is_in(args.types.clone()));
    }
    if let Some(id) = resource {
        q = q
            .filter(event::Column::ResourceType.eq("lead"))
            .filter(event::Column::ResourceId.eq(id));
    }
    let mut events = q
        .order_by_asc(event::Column::Seq)
        .limit(limit + 1)
        .all(&app.db)
        .await?;
    let has_more = events.len() as u64 > limit;
    events.truncate(limit as usize);
    let cursor = match events.last() {
        Some(e) => Some(cursor(&app.ids, e.seq)),
        None => args.after.clone(),
    };
    Ok(Feed {
        events,
        has_more,
        cursor,
    })
}

/// The public JSON of an event (REST body, webhook payload's `data` source).
pub fn json(ids: &Ids, e: &event::Model) -> Value {
    let id = |kind, v: Option<i64>| v.map(|v| ids.encode(kind, v));
    let resource_kind = match e.resource_type.as_str() {
        "lead" => Some(Kind::Lead),
        "import" => Some(Kind::ImportJob),
        _ => None,
    };
    json!({
        "id": ids.encode(Kind::Event, e.id),
        "type": e.event_type.as_str(),
        "occurredAt": crate::service::clock::ts(e.occurred_at),
        "resourceType": e.resource_type,
        "resourceId": resource_kind.and_then(|k| id(k, e.resource_id)),
        "actor": {
            "userId": id(Kind::User, e.actor_user_id),
            "onBehalfOfUserId": id(Kind::User, e.on_behalf_of_user_id),
            "apiKeyId": id(Kind::ApiKey, e.api_key_id),
        },
        "data": e.data,
        "changes": e.changes,
    })
}

/// Deletes events older than `days` days, remembering per stream how far it pruned so an
/// older cursor is answered `410 CURSOR_EXPIRED`; returns how many were deleted.
pub async fn prune(db: &DatabaseConnection, days: u32) -> Result<u64, DbErr> {
    let cutoff: DateTime<Utc> = Utc::now() - chrono::Duration::days(i64::from(days));
    let ends: Vec<(i64, Environment, Option<i64>)> = event::Entity::find()
        .select_only()
        .column(event::Column::TenantId)
        .column(event::Column::Environment)
        .column_as(event::Column::Seq.max(), "seq")
        .filter(event::Column::OccurredAt.lt(cutoff))
        .group_by(event::Column::TenantId)
        .group_by(event::Column::Environment)
        .into_tuple()
        .all(db)
        .await?;
    let mut deleted = 0;
    for (tenant_id, environment, seq) in ends {
        let Some(seq) = seq else { continue };
        let tx = db.begin().await?;
        event_stream::Entity::update_many()
            .col_expr(event_stream::Column::PrunedThrough, Expr::value(seq))
            .filter(event_stream::Column::TenantId.eq(tenant_id))
            .filter(event_stream::Column::Environment.eq(environment))
            .filter(event_stream::Column::PrunedThrough.lt(seq))
            .exec(&tx)
            .await?;
        deleted += event::Entity::delete_many()
            .filter(event::Column::TenantId.eq(tenant_id))
            .filter(event::Column::Environment.eq(environment))
            .filter(event::Column::Seq.lte(seq))
            .exec(&tx)
            .await?
            .rows_affected;
        tx.commit().await?;
    }
    Ok(deleted)
}
