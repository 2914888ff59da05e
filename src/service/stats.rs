//! Lead statistics for the caller's tenant and environment.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::enums::{Channel, LeadStatus};
use entity::lead;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, DbBackend, EntityTrait, QueryFilter, QuerySelect};

use crate::context::RequestCtx;
use crate::error::AppResult;
use crate::state::App;

/// The range counted; per-day counts default to the last 30 days.
#[derive(Debug, Clone, Default)]
pub struct StatsFilter {
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
}

/// Counts.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Leads in range.
    pub total: i64,
    /// By status.
    pub by_status: Vec<(LeadStatus, i64)>,
    /// By channel (`None`: no channel).
    pub by_channel: Vec<(Option<Channel>, i64)>,
    /// By source row (`None`: no source).
    pub by_source: Vec<(Option<i64>, i64)>,
    /// By stage (`None`: in no stage).
    pub by_stage: Vec<(Option<i64>, i64)>,
    /// Created per UTC day, every day of the range (zeros included), oldest first.
    pub per_day: Vec<(NaiveDate, i64)>,
}

/// Longest per-day series, in days (the totals cover the whole range).
pub const MAX_DAYS: i64 = 366;

/// Computes the statistics.
pub async fn stats(app: &App, rc: &RequestCtx, f: StatsFilter) -> AppResult<Stats> {
    let p = rc.principal()?;
    let to = f.created_before.unwrap_or_else(Utc::now);
    let from = f.created_after.unwrap_or(to - Duration::days(30));
    // A window that ends before it starts holds no lead: the counts are zero.
    // The per-day series covers at most the last 366 days of the range.
    let from = Ord::max(from, to - Duration::days(MAX_DAYS));

    let mut cond = Condition::all()
        .add(lead::Column::TenantId.eq(p.tenant_id))
        .add(lead::Column::Environment.eq(p.environment));
    if let Some(at) = f.created_after {
        cond = cond.add(lead::Column::CreatedAt.gte(at));
    }
    if let Some(at) = f.created_before {
        cond = cond.add(lead::Column::CreatedAt.lt(at));
    }
    let count = || Expr::col(lead::Column::Id).count();
    let grouped = |col: lead::Column| {
        lead::Entity::find()
            .select_only()
            .column(col)
            .column_as(count(), "n")
            .filter(cond.clone())
            .group_by(col)
    };
    let db = &app.db;
    let by_status: Vec<(LeadStatus, i64)> =
        grouped(lead::Column::Status).into_tuple().all(db).await?;
    let by_channel: Vec<(Option<Channel>, i64)> =
        grouped(lead::Column::Source).into_tuple().all(db).await?;
    let by_source: Vec<(Option<i64>, i64)> =
        grouped(lead::Column::SourceId).into_tuple().all(db).await?;
    let by_stage: Vec<(Option<i64>, i64)> =
        grouped(lead::Column::StageId).into_tuple().all(db).await?;
    let total = by_status.iter().map(|(_, n)| n).sum();

    // The UTC day of `created_at`: the only dialect-specific expression in the services.
    let day = match db.get_database_backend() {
        DbBackend::Postgres => Expr::cust("to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
        _ => Expr::cust("substr(created_at, 1, 10)"),
    };
    let days: Vec<(String, i64)> = lead::Entity::find()
        .select_only()
        .column_as(day.clone(), "day")
        .column_as(count(), "n")
        .filter(
            Condition::all()
                .add(lead::Column::TenantId.eq(p.tenant_id))
                .add(lead::Column::Environment.eq(p.environment))
                .add(lead::Column::CreatedAt.gte(from))
                .add(lead::Column::CreatedAt.lt(to)),
        )
        .group_by(day)
        .into_tuple()
        .all(db)
        .await?;
    let mut per_day = Vec::new();
    let mut d = from.date_naive();
    while d <= to.date_naive() {
        let key = d.format("%Y-%m-%d").to_string();
        per_day.push((
            d,
            days.iter().find(|(k, _)| *k == key).map_or(0, |(_, n)| *n),
        ));
        d = d.succ_opt().unwrap_or(d);
        if per_day.len() > MAX_DAYS as usize + 1 {
            break;
        }
    }
    let mut s = Stats {
        total,
        by_status,
        by_channel,
        by_source,
        by_stage,
        per_day,
    };
    s.by_status.sort_by_key(|(k, _)| k.as_str());
    s.by_channel.sort_by_key(|(k, _)| k.map(|c| c.as_str()));
    s.by_source.sort();
    s.by_stage.sort();
    Ok(s)
}
