//! `stats(filter)`: lead counts for the caller's tenant and environment.

use crate::graphql::time::DateTime;
use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::NaiveDate;
use entity::enums::{Channel, LeadStatus};

use super::guard::Need;
use super::pipeline::Stage;
use super::source::Source;
use super::{app, rc};
use crate::ids::Kind;
use crate::service::{self, stats::StatsFilter as Filter};

/// Leads with one status.
#[derive(SimpleObject)]
pub struct StatusCount {
    /// The status.
    pub status: LeadStatus,
    /// Leads.
    pub count: i64,
}

/// Leads of one channel.
#[derive(SimpleObject)]
pub struct ChannelCount {
    /// The channel (null: none).
    pub channel: Option<Channel>,
    /// Leads.
    pub count: i64,
}

/// Leads created on one UTC day.
#[derive(SimpleObject)]
pub struct DayCount {
    /// The day.
    pub date: NaiveDate,
    /// Leads created.
    pub count: i64,
}

/// Leads of one source.
pub struct SourceCount(Option<i64>, i64);

#[Object]
impl SourceCount {
    /// The source's ID (null: no source).
    async fn source_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        self.0
            .map(|id| super::encode(ctx, Kind::Source, id))
            .transpose()
    }
    /// The source.
    async fn source(&self, ctx: &Context<'_>) -> Result<Option<Source>> {
        let Some(id) = self.0 else { return Ok(None) };
        Ok(super::loaders(ctx)?.sources.load_one(id).await?.map(Source))
    }
    /// Leads.
    async fn count(&self) -> i64 {
        self.1
    }
}

/// Leads in one stage.
pub struct StageCount(Option<i64>, i64);

#[Object]
impl StageCount {
    /// The stage's ID (null: in no stage).
    async fn stage_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        self.0
            .map(|id| super::encode(ctx, Kind::Stage, id))
            .transpose()
    }
    /// The stage (with its pipeline).
    async fn stage(&self, ctx: &Context<'_>) -> Result<Option<Stage>> {
        let Some(id) = self.0 else { return Ok(None) };
        Ok(super::loaders(ctx)?.stages.load_one(id).await?.map(Stage))
    }
    /// Leads.
    async fn count(&self) -> i64 {
        self.1
    }
}

/// Lead statistics.
#[derive(SimpleObject)]
pub struct Stats {
    /// Leads in the range.
    pub total: i64,
    /// By status.
    pub by_status: Vec<StatusCount>,
    /// By channel.
    pub by_channel: Vec<ChannelCount>,
    /// By source.
    pub by_source: Vec<SourceCount>,
    /// By pipeline stage.
    pub by_stage: Vec<StageCount>,
    /// Created per UTC day over the range (default: the last 30 days), zeros included.
    pub created_per_day: Vec<DayCount>,
}

/// The range counted.
#[derive(InputObject, Default)]
pub struct StatsFilter {
    /// Created at or after (per-day counts: 30 days before `createdBefore` by default).
    pub created_after: Option<DateTime>,
    /// Created before (default: now).
    pub created_before: Option<DateTime>,
}

/// `stats`.
#[derive(Default)]
pub struct StatsQuery;

#[Object]
impl StatsQuery {
    /// Lead counts by status, channel, source, stage, and created per day.
    #[graphql(guard = "Need::Auth")]
    async fn stats(&self, ctx: &Context<'_>, filter: Option<StatsFilter>) -> Result<Stats> {
        let f = filter.unwrap_or_default();
        let s = service::stats::stats(
            app(ctx)?,
            rc(ctx)?,
            Filter {
                created_after: f.created_after.map(Into::into),
                created_before: f.created_before.map(Into::into),
            },
        )
        .await?;
        Ok(Stats {
            total: s.total,
            by_status: s
                .by_status
                .into_iter()
                .map(|(status, count)| StatusCount { status, count })
                .collect(),
            by_channel: s
                .by_channel
                .into_iter()
                .map(|(channel, count)| ChannelCount { channel, count })
                .collect(),
            by_source: s
                .by_source
                .into_iter()
                .map(|(id, n)| SourceCount(id, n))
                .collect(),
            by_stage: s
                .by_stage
                .into_iter()
                .map(|(id, n)| StageCount(id, n))
                .collect(),
            created_per_day: s
                .per_day
                .into_iter()
                .map(|(date, count)| DayCount { date, count })
                .collect(),
        })
    }
}
