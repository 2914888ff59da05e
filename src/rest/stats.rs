//! `/stats`: lead counts by status, channel, source, stage and day.

use axum::http::Method;
use axum::response::Response;
use serde_json::Value;

use super::envelope;
use super::fields::Ty;
use super::route::{Call, Op, Param, Reply, Route, vars};
use crate::error::AppError;

static STATS: Op = Op::new(
    "query($filter: StatsFilter) { r: stats(filter: $filter) { total byStatus { status count } \
     byChannel { channel count } bySource { sourceId source { name } count } \
     byStage { stageId stage { name pipelineId } count } createdPerDay { date count } } }",
);

const PARAMS: &[Param] = &[
    Param {
        name: "createdAfter",
        ty: Ty::DateTime,
        doc: "Created at or after (default: 30 days ago)",
    },
    Param {
        name: "createdBefore",
        ty: Ty::DateTime,
        doc: "Created before (default: now)",
    },
];

/// The routes.
pub fn routes() -> Vec<Route> {
    let route = |path, summary| {
        Route::new("stats", Method::GET, path, "stats", summary, |c| {
            Box::pin(stats(c))
        })
        .query(PARAMS)
        .reply(Reply::Ok, "Stats")
    };
    vec![
        route("/stats", "Lead counts"),
        route("/stats/counts", "Lead counts (alias)"),
    ]
}

async fn stats(c: Call) -> Result<Response, AppError> {
    // The parameters are the filter's fields, by the same names.
    let vars = if c.params.is_empty() {
        Default::default()
    } else {
        vars([("filter", Value::Object(c.params.clone()))])
    };
    Ok(envelope::object(c.run(&STATS, vars).await?))
}
