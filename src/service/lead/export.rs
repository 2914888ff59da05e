//! Export (docs/rest.md): the caller's leads matching a list filter, as CSV or NDJSON
//! in the import's columns, read from one snapshot and streamed a page at a time, so memory
//! stays flat whatever the count.

use std::collections::{BTreeMap, BTreeSet};

use entity::{lead, lead_tag};
use sea_orm::{
    AccessMode, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, IsolationLevel,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::{LeadFilter, condition};
use crate::context::RequestCtx;
use crate::error::{AppError, AppResult};
use crate::ids::{Ids, Kind};
use crate::state::App;

/// Leads read per statement.
const PAGE: u64 = 1000;

/// The columns every export has, before one `customFields.<key>` column per key in use.
pub const COLUMNS: &[&str] = &[
    "email",
    "firstName",
    "lastName",
    "phone",
    "source",
    "sourceId",
    "pipelineId",
    "stageId",
    "status",
    "score",
    "assignedTo",
    "tags",
];

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A header row, then one row per lead; tags joined by `;`.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

/// Chunks of the file, in order; an error ends it early.
pub type Chunks = mpsc::Receiver<Result<Vec<u8>, std::io::Error>>;

/// Starts an export; the file's chunks arrive on the receiver. Stopping to read ends the
/// export and its transaction.
pub async fn export(
    app: &App,
    rc: &RequestCtx,
    filter: &LeadFilter,
    format: Format,
) -> AppResult<Chunks> {
    let p = rc.principal()?;
    let rows = filter.rows(&app.ids)?;
    let cond = condition(p, filter, rows);
    // One snapshot for both passes: PostgreSQL's repeatable read; SQLite's read transaction
    // sees one state of the WAL from its first read.
    let tx = app
        .db
        .begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await?;
    let keys = if format == Format::Csv {
        custom_field_keys(&tx, &cond).await?
    } else {
        Vec::new()
    };
    let (send, recv) = mpsc::channel(4);
    let ids = app.ids.clone();
    app.tasks.spawn(async move {
        if let Err(e) = stream(&tx, &ids, cond, format, &keys, &send).await {
            let _ = send.send(Err(std::io::Error::other(e.message()))).await;
        }
        // Read only: ending it either way is the same.
        let _ = tx.rollback().await;
    });
    Ok(recv)
}

/// Every custom-field key of the matching leads, sorted (CSV needs its columns first).
async fn custom_field_keys(tx: &DatabaseTransaction, cond: &Condition) -> AppResult<Vec<String>> {
    let mut keys = BTreeSet::new();
    let mut after = 0i64;
    loop {
        let page: Vec<(i64, Value)> = lead::Entity::find()
            .select_only()
            .column(lead::Column::Id)
            .column(lead::Column::CustomFields)
            .filter(cond.clone())
            .filter(lead::Column::Id.gt(after))
            .order_by_asc(lead::Column::Id)
            .limit(PAGE)
            .into_tuple()
            .all(tx)
            .await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, fields) in &page {
            if let Some(obj) = fields.as_object() {
                keys.extend(obj.keys().cloned());
            }
        }
    }
    Ok(keys.into_iter().collect())
}

async fn stream(
    tx: &DatabaseTransaction,
    ids: &Ids,
    cond: Condition,
    format: Format,
    keys: &[String],
    send: &mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) -> AppResult<()> {
    let csv_error = |e: csv::Error| AppError::internal(e);
    if format == Format::Csv {
        let mut w = csv::Writer::from_writer(Vec::new());
        let header = COLUMNS
            .iter()
            .map(|c| (*c).to_owned())
            .chain(keys.iter().map(|k| format!("customFields.{k}")));
        w.write_record(header).map_err(csv_error)?;
        if send
            .send(Ok(w
                .into_inner()
                .map_err(|e| AppError::internal(e.to_string()))?))
            .await
            .is_err()
        {
            return Ok(());
        }
    }
    let mut after = 0i64;
    loop {
        let leads = lead::Entity::find()
            .filter(cond.clone())
            .filter(lead::Column::Id.gt(after))
            .order_by_asc(lead::Column::Id)
            .limit(PAGE)
            .all(tx)
            .await?;
        let Some(last) = leads.last() else { break };
        after = last.id;
        let mut tags: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for t in lead_tag::Entity::find()
            .filter(lead_tag::Column::LeadId.is_in(leads.iter().map(|l| l.id)))
            .order_by_asc(lead_tag::Column::Tag)
            .all(tx)
            .await?
        {
            tags.entry(t.lead_id).or_default().push(t.tag);
        }
        let mut out = Vec::with_capacity(leads.len() * 160);
        match format {
            Format::Csv => {
                let mut w = csv::Writer::from_writer(&mut out);
                for l in &leads {
                    let row = record(ids, l, tags.get(&l.id).map_or(&[][..], Vec::as_slice));
                    let mut cells: Vec<String> =
                        COLUMNS.iter().map(|c| cell(row.get(*c))).collect();
                    let fields = l.custom_fields.as_object();
                    cells.extend(keys.iter().map(|k| cell(fields.and_then(|f| f.get(k)))));
                    w.write_record(&cells).map_err(csv_error)?;
                }
                w.flush().map_err(AppError::internal)?;
            }
            Format::Ndjson => {
                for l in &leads {
                    let mut row = record(ids, l, tags.get(&l.id).map_or(&[][..], Vec::as_slice));
                    row.insert("customFields".into(), l.custom_fields.clone());
                    serde_json::to_writer(&mut out, &Value::Object(row))
                        .map_err(AppError::internal)?;
                    out.push(b'\n');
                }
            }
        }
        if send.send(Ok(out)).await.is_err() {
            // The client stopped reading.
            return Ok(());
        }
    }
    Ok(())
}

/// A lead's import columns (without custom fields), as JSON values.
fn record(ids: &Ids, l: &lead::Model, tags: &[String]) -> Map<String, Value> {
    let id = |kind, v: Option<i64>| v.map_or(Value::Null, |v| Value::String(ids.encode(kind, v)));
    let mut m = Map::new();
    m.insert("email".into(), l.email.clone().into());
    m.insert("firstName".into(), l.first_name.clone().into());
    m.insert("lastName".into(), l.last_name.clone().into());
    m.insert(
        "phone".into(),
        l.phone.clone().map_or(Value::Null, Value::String),
    );
    m.insert(
        "source".into(),
        l.source.map_or(Value::Null, |c| c.as_str().into()),
    );
    m.insert("sourceId".into(), id(Kind::Source, l.source_id));
    m.insert("pipelineId".into(), id(Kind::Pipeline, l.pipeline_id));
    m.insert("stageId".into(), id(Kind::Stage, l.stage_id));
    m.insert("status".into(), l.status.as_str().into());
    m.insert("score".into(), l.score.into());
    m.insert("assignedTo".into(), id(Kind::User, l.assigned_to));
    m.insert("tags".into(), tags.to_vec().into());
    m
}

/// A CSV cell: empty for null, tags joined by `;`, JSON scalars as their text.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(";"),
        Some(other) => other.to_string(),
    }
}
