//! Duplicate detection: after a lead is created, off the request path, link it to the
//! earliest lead of the same tenant and environment with the same normalized email or phone.
//! Leads created meanwhile are linked together, in one transaction with one append per
//! stream, so a burst of creates does not double the writes it makes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use entity::enums::EventType;
use entity::lead;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
};

use super::{LeadRow, json, tags_of};
use crate::db::begin_write;
use crate::service::audit::Actor;
use crate::service::event::{self, NewEvent, Outbox};
use crate::state::App;

/// The most leads linked in one transaction.
const BATCH: usize = 100;

/// Just-created leads waiting for detection, and whether a task is draining them.
#[derive(Default)]
pub struct Pending {
    queue: Mutex<Vec<lead::Model>>,
    draining: AtomicBool,
}

/// Queues detection for a just-committed lead; the create does not wait for it.
pub fn spawn(app: &App, created: lead::Model) {
    let pending = &app.duplicates;
    pending
        .queue
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(created);
    if pending.draining.swap(true, Ordering::AcqRel) {
        return;
    }
    let (db, out, pending) = (app.db.clone(), app.outbox.clone(), app.duplicates.clone());
    app.tasks
        .spawn(async move { drain(&db, &out, &pending).await });
}

/// Links queued leads, a batch at a time, until none are left.
async fn drain(db: &DatabaseConnection, out: &Outbox, pending: &Pending) {
    loop {
        let batch: Vec<lead::Model> = {
            let mut q = pending.queue.lock().unwrap_or_else(|p| p.into_inner());
            let n = q.len().min(BATCH);
            q.drain(..n).collect()
        };
        if batch.is_empty() {
            pending.draining.store(false, Ordering::Release);
            // A lead queued between the take above and the store saw `draining` still set.
            let left = !pending
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty();
            if left && !pending.draining.swap(true, Ordering::AcqRel) {
                continue;
            }
            return;
        }
        if let Err(e) = link_all(db, out, &batch).await {
            let ids: Vec<i64> = batch.iter().map(|l| l.id).collect();
            tracing::warn!(error = %e, lead_ids = ?ids, "duplicate detection failed");
        }
    }
}

/// Sets `duplicate_of` of `l` to the earliest earlier lead with the same email or phone, and
/// appends `lead.duplicate_detected` to the feed in the same transaction.
pub async fn link(
    db: &DatabaseConnection,
    out: &Outbox,
    l: &lead::Model,
) -> Result<Option<i64>, DbErr> {
    Ok(link_all(db, out, std::slice::from_ref(l)).await?.pop())
}

/// [`link`] for several leads in one transaction; returns the originals found.
async fn link_all(
    db: &DatabaseConnection,
    out: &Outbox,
    leads: &[lead::Model],
) -> Result<Vec<i64>, DbErr> {
    let mut found = Vec::new();
    for l in leads {
        if let Some(original) = earliest(db, l).await? {
            found.push((l, original));
        }
    }
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let tx = begin_write(db).await?;
    // One append per stream; a batch may hold leads of several.
    let mut streams: Vec<(Actor, Vec<NewEvent>)> = Vec::new();
    let mut linked = Vec::new();
    for (l, original) in found {
        let Some(event) = set_original(&tx, out, l, original).await? else {
            continue;
        };
        linked.push(original);
        // Made by the server itself: the event has no actor.
        let actor = Actor {
            tenant_id: l.tenant_id,
            environment: l.environment,
            actor_user_id: None,
            on_behalf_of_user_id: None,
            api_key_id: None,
        };
        match streams
            .iter_mut()
            .find(|(a, _)| a.tenant_id == actor.tenant_id && a.environment == actor.environment)
        {
            Some((_, events)) => events.push(event),
            None => streams.push((actor, vec![event])),
        }
    }
    // Streams locked in one order, so two instances' batches cannot wait on each other.
    streams.sort_by_key(|(a, _)| (a.tenant_id, a.environment.as_str()));
    let mut appended = Vec::new();
    for (actor, events) in streams {
        appended.extend(event::append(out, &tx, actor, events).await?);
    }
    tx.commit().await?;
    out.announce(appended);
    Ok(linked)
}

/// The earliest earlier lead of `l`'s stream with its email or phone.
async fn earliest(db: &DatabaseConnection, l: &lead::Model) -> Result<Option<i64>, DbErr> {
    let mut same = Condition::any().add(lead::Column::EmailNormalized.eq(&l.email_normalized));
    if let Some(phone) = &l.phone_normalized {
        same = same.add(lead::Column::PhoneNormalized.eq(phone));
    }
    Ok(lead::Entity::find()
        .filter(lead::Column::TenantId.eq(l.tenant_id))
        .filter(lead::Column::Environment.eq(l.environment))
        .filter(lead::Column::Id.lt(l.id))
        .filter(same)
        .order_by_asc(lead::Column::Id)
        .one(db)
        .await?
        .map(|o| o.id))
}

/// Links `l` to `original` under its row lock; returns its `lead.duplicate_detected` event,
/// or nothing when the lead has gone since its create committed.
async fn set_original(
    tx: &DatabaseTransaction,
    out: &Outbox,
    l: &lead::Model,
    original: i64,
) -> Result<Option<NewEvent>, DbErr> {
    let ids = &out.ids;
    let Some(current) = crate::db::one_locked(tx, lead::Entity::find_by_id(l.id)).await? else {
        return Ok(None);
    };
    let tags = tags_of(tx, l.id)
        .await
        .map_err(|e| DbErr::Custom(e.message()))?;
    let mut row = LeadRow {
        lead: current,
        tags,
    };
    let before = json(ids, &row);
    row.lead.duplicate_of = Some(original);
    lead::Entity::update_many()
        .col_expr(
            lead::Column::DuplicateOf,
            sea_orm::sea_query::Expr::value(original),
        )
        .filter(lead::Column::Id.eq(l.id))
        .exec(tx)
        .await?;
    Ok(Some(NewEvent::lead(
        EventType::LeadDuplicateDetected,
        l.id,
        Some(&before),
        json(ids, &row),
    )))
}
