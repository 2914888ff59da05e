//! Duplicate detection: after a lead is created, off the request path, link it to the
//! earliest lead of the same tenant and environment with the same normalized email or phone.

use entity::enums::EventType;
use entity::lead;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

use super::{LeadRow, json, tags_of};
use crate::db::begin_write;
use crate::service::audit::Actor;
use crate::service::event::{self, NewEvent, Outbox};
use crate::state::App;

/// Starts detection for a just-committed lead; the create does not wait for it.
pub fn spawn(app: &App, created: lead::Model) {
    let (db, out) = (app.db.clone(), app.outbox.clone());
    app.tasks.spawn(async move {
        if let Err(e) = link(&db, &out, &created).await {
            tracing::warn!(error = %e, lead_id = created.id, "duplicate detection failed");
        }
    });
}

/// Sets `duplicate_of` of `l` to the earliest earlier lead with the same email or phone, and
/// appends `lead.duplicate_detected` to the feed in the same transaction.
pub async fn link(
    db: &DatabaseConnection,
    out: &Outbox,
    l: &lead::Model,
) -> Result<Option<i64>, DbErr> {
    let ids = &out.ids;
    let mut same = Condition::any().add(lead::Column::EmailNormalized.eq(&l.email_normalized));
    if let Some(phone) = &l.phone_normalized {
        same = same.add(lead::Column::PhoneNormalized.eq(phone));
    }
    let earliest = lead::Entity::find()
        .filter(lead::Column::TenantId.eq(l.tenant_id))
        .filter(lead::Column::Environment.eq(l.environment))
        .filter(lead::Column::Id.lt(l.id))
        .filter(same)
        .order_by_asc(lead::Column::Id)
        .one(db)
        .await?;
    let Some(original) = earliest else {
        return Ok(None);
    };
    let tx = begin_write(db).await?;
    // The lead may have changed or gone since its create committed.
    let Some(current) = crate::db::one_locked(&tx, lead::Entity::find_by_id(l.id)).await? else {
        return Ok(None);
    };
    let tags = tags_of(&tx, l.id)
        .await
        .map_err(|e| DbErr::Custom(e.message()))?;
    let mut row = LeadRow {
        lead: current,
        tags,
    };
    let before = json(ids, &row);
    row.lead.duplicate_of = Some(original.id);
    lead::Entity::update_many()
        .col_expr(
            lead::Column::DuplicateOf,
            sea_orm::sea_query::Expr::value(original.id),
        )
        .filter(lead::Column::Id.eq(l.id))
        .exec(&tx)
        .await?;
    // Made by the server itself: the event has no actor.
    let actor = Actor {
        tenant_id: l.tenant_id,
        environment: l.environment,
        actor_user_id: None,
        on_behalf_of_user_id: None,
        api_key_id: None,
    };
    let detected = NewEvent::lead(
        EventType::LeadDuplicateDetected,
        l.id,
        Some(&before),
        json(ids, &row),
    );
    let appended = event::append(out, &tx, actor, vec![detected]).await?;
    tx.commit().await?;
    out.announce(appended);
    Ok(Some(original.id))
}
