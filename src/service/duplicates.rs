//! Duplicate detection: after a lead is created, off the request path, link it to the
//! earliest lead of the same tenant and environment with the same normalized email or phone.

use entity::lead;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

use crate::state::App;

/// Starts detection for a just-committed lead; the create does not wait for it.
pub fn spawn(app: &App, created: lead::Model) {
    let db = app.db.clone();
    app.tasks.spawn(async move {
        if let Err(e) = link(&db, &created).await {
            tracing::warn!(error = %e, lead_id = created.id, "duplicate detection failed");
        }
    });
}

/// Sets `duplicate_of` of `l` to the earliest earlier lead with the same email or phone.
pub async fn link(db: &DatabaseConnection, l: &lead::Model) -> Result<Option<i64>, DbErr> {
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
    lead::Entity::update_many()
        .col_expr(
            lead::Column::DuplicateOf,
            sea_orm::sea_query::Expr::value(original.id),
        )
        .filter(lead::Column::Id.eq(l.id))
        .exec(db)
        .await?;
    Ok(Some(original.id))
}
