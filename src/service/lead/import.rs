//! One committed chunk of an import: rows read from the job's file become leads (created,
//! updated or skipped as the job says), each bad row recorded with its fields, never stopping
//! the others. No row writes an audit entry or event of its own: the job writes one of each.

use std::collections::HashMap;

use entity::enums::{Channel, LeadStatus, OnDuplicate};
use entity::{import_job, lead, lead_tag};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect,
};
use serde_json::{Map, Value};

use super::{Change, LeadInput, change, check_fields, find_locked, prepare};
use crate::auth::principal::Principal;
use crate::error::{AppResult, FieldError};
use crate::ids::{Ids, Kind};
use crate::service::validate::Errors;

/// A row's problem, as the job lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RowError {
    /// 1 for the first row after the header.
    pub row: i64,
    /// The field (REST name), or empty for the row as a whole.
    pub field: String,
    /// `VALIDATION_FAILED`, `INVALID_ROW`, `AMBIGUOUS_MATCH`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

/// What a chunk did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Leads created.
    pub created: i64,
    /// Leads updated.
    pub updated: i64,
    /// Rows whose email a lead already had (`onDuplicate=skip`).
    pub skipped: i64,
    /// Rows refused.
    pub failed: i64,
    /// Their problems.
    pub errors: Vec<RowError>,
}

/// Whether a row's field is one imports read (REST names): the export's columns, and
/// `customFields` (NDJSON; CSV's `customFields.<key>` columns are gathered into it).
fn known_field(name: &str) -> bool {
    name == "customFields" || super::export::COLUMNS.contains(&name)
}

/// Applies rows `(row number, JSON text)` of `job` in `tx`. `source` is the job's source,
/// given to rows that name none.
pub async fn apply(
    tx: &DatabaseTransaction,
    ids: &Ids,
    p: &Principal,
    job: &import_job::Model,
    source: Option<(i64, Channel)>,
    rows: Vec<(i64, String)>,
) -> AppResult<Outcome> {
    let mut out = Outcome::default();
    let mut inputs = Vec::with_capacity(rows.len());
    for (row, text) in rows {
        match input_of(ids, &text) {
            Ok(input) => inputs.push((row, input)),
            Err(fields) => out.fail(row, "VALIDATION_FAILED", fields),
        }
    }
    // The leads that already have these emails, when it matters.
    let mut existing: HashMap<String, Vec<i64>> = HashMap::new();
    if job.on_duplicate != OnDuplicate::Create && !inputs.is_empty() {
        let emails: Vec<String> = inputs
            .iter()
            .filter_map(|(_, i)| i.email.as_deref().map(|e| e.trim().to_lowercase()))
            .collect();
        let found: Vec<(i64, String)> = lead::Entity::find()
            .select_only()
            .column(lead::Column::Id)
            .column(lead::Column::EmailNormalized)
            .filter(lead::Column::TenantId.eq(p.tenant_id))
            .filter(lead::Column::Environment.eq(p.environment))
            .filter(lead::Column::EmailNormalized.is_in(emails))
            .into_tuple()
            .all(tx)
            .await?;
        for (id, email) in found {
            existing.entry(email).or_default().push(id);
        }
    }
    let mut creates = Vec::new();
    for (row, mut input) in inputs {
        let email = input
            .email
            .as_deref()
            .map(|e| e.trim().to_lowercase())
            .unwrap_or_default();
        let mut matches = existing.get(&email).cloned().unwrap_or_default();
        if matches.contains(&PENDING) && job.on_duplicate == OnDuplicate::Update && !job.dry_run {
            // An earlier row of this chunk creates it: written now, so this row can update it.
            insert(
                tx,
                job.on_duplicate,
                std::mem::take(&mut creates),
                &mut existing,
            )
            .await?;
            matches = existing.get(&email).cloned().unwrap_or_default();
        }
        match (job.on_duplicate, matches.as_slice()) {
            (OnDuplicate::Skip, [_, ..]) => {
                out.skipped += 1;
                continue;
            }
            (OnDuplicate::Update, [id]) => {
                let mut errors = Errors::new();
                check_fields(&input, false, &mut errors);
                if !errors.is_empty() {
                    out.fail(row, "VALIDATION_FAILED", errors.fields().to_vec());
                    continue;
                }
                if job.dry_run || *id == PENDING {
                    out.updated += 1;
                    continue;
                }
                let before = find_locked(tx, p, *id).await?;
                match change(
                    tx,
                    ids,
                    p,
                    before,
                    entity::enums::EventType::LeadUpdated,
                    input,
                    |_| None,
                    Errors::new(),
                )
                .await
                {
                    Ok(_) => out.updated += 1,
                    Err(e) => out.fail(row, e.code(), e.fields().to_vec()),
                }
                continue;
            }
            (OnDuplicate::Update, [_, _, ..]) => {
                out.failed += 1;
                out.errors.push(RowError {
                    row,
                    field: "email".into(),
                    code: "AMBIGUOUS_MATCH",
                    message: format!("{} leads have this email", matches.len()),
                });
                continue;
            }
            _ => {}
        }
        let mut errors = Errors::new();
        check_fields(&input, true, &mut errors);
        // The job's source was looked up once; its ID is set after `prepare`, which would look
        // it up for every row.
        let job_source = source.filter(|_| matches!(input.source_id, Change::Keep));
        if let Some((_, channel)) = job_source
            && matches!(input.source, Change::Keep)
        {
            input.source = Change::Set(channel);
        }
        let mut new = prepare(tx, p, input, &mut errors).await?;
        if !errors.is_empty() {
            out.fail(row, "VALIDATION_FAILED", errors.fields().to_vec());
            continue;
        }
        if let Some((id, _)) = job_source {
            new.row.source_id = Set(Some(id));
        }
        new.row.import_id = Set(Some(job.id));
        out.created += 1;
        // Later rows of this chunk with the email see this one.
        existing.entry(email).or_default().push(PENDING);
        if !job.dry_run {
            creates.push(new);
        }
    }
    insert(tx, job.on_duplicate, creates, &mut existing).await?;
    // Unreadable rows were found before the others' checks: the list goes by row.
    out.errors.sort_by_key(|e| e.row);
    Ok(out)
}

/// The ID standing for a lead of this chunk not inserted yet.
const PENDING: i64 = 0;

/// Inserts the chunk's new leads with their tags, in one statement each, each linked to the
/// earliest earlier lead with its email or phone as detection does for a single create
/// (per-lead detection would cost a transaction per row); their emails then name their IDs in
/// `existing`.
async fn insert(
    tx: &DatabaseTransaction,
    on_duplicate: OnDuplicate,
    creates: Vec<super::NewLead>,
    existing: &mut HashMap<String, Vec<i64>>,
) -> AppResult<()> {
    if creates.is_empty() {
        return Ok(());
    }
    let tags: Vec<Vec<String>> = creates.iter().map(|n| n.tags.clone()).collect();
    let mut rows: Vec<lead::ActiveModel> = creates.into_iter().map(|n| n.row).collect();
    // Rows duplicating a lead written before this chunk are inserted already linked: linking
    // them afterwards rewrote most rows of a typical file a second time.
    // Unless the job creates duplicates, no row created has an email a lead already has: the
    // chunk's emails were looked up before (`existing`).
    let by_email = on_duplicate == OnDuplicate::Create;
    let earlier = Earliest::before(tx, &rows, by_email).await?;
    for r in &mut rows {
        let email = r.email_normalized.try_as_ref().map(String::as_str);
        let phone = r.phone_normalized.try_as_ref().and_then(Option::as_deref);
        if let Some(original) = earlier.of(email, phone) {
            r.duplicate_of = Set(Some(original));
        }
    }
    let inserted = lead::Entity::insert_many(rows)
        .exec_with_returning(tx)
        .await?;
    for l in &inserted {
        if let Some(ids) = existing.get_mut(&l.email_normalized)
            && let Some(slot) = ids.iter_mut().find(|id| **id == PENDING)
        {
            *slot = l.id;
        }
    }
    {
        let tag_rows: Vec<lead_tag::ActiveModel> = inserted
            .iter()
            .zip(tags)
            .flat_map(|(l, tags)| {
                tags.into_iter().map(|tag| lead_tag::ActiveModel {
                    lead_id: Set(l.id),
                    tag: Set(tag),
                    tenant_id: Set(l.tenant_id),
                    environment: Set(l.environment),
                })
            })
            .collect();
        for chunk in tag_rows.chunks(1000) {
            lead_tag::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(tx)
                .await?;
        }
    }
    link_within(tx, &inserted).await
}

/// The earliest lead by normalized email and by phone among leads already written.
#[derive(Default)]
struct Earliest {
    email: HashMap<String, i64>,
    phone: HashMap<String, i64>,
}

impl Earliest {
    /// Looks up the phones of `rows` (all of one tenant and environment), and their emails if
    /// `by_email`: one grouped statement each, probing the (tenant, environment, email or
    /// phone) indexes.
    async fn before(
        tx: &DatabaseTransaction,
        rows: &[lead::ActiveModel],
        by_email: bool,
    ) -> AppResult<Self> {
        let Some(first) = rows.first() else {
            return Ok(Earliest::default());
        };
        let (tenant, environment) = (
            first.tenant_id.try_as_ref().copied().unwrap_or_default(),
            first.environment.try_as_ref().copied(),
        );
        let emails: Vec<String> = if by_email {
            rows.iter()
                .filter_map(|r| r.email_normalized.try_as_ref().cloned())
                .collect()
        } else {
            Vec::new()
        };
        let phones: Vec<String> = rows
            .iter()
            .filter_map(|r| r.phone_normalized.try_as_ref().cloned().flatten())
            .collect();
        let lookup = |column: lead::Column, values: Vec<String>| async move {
            if values.is_empty() {
                return Ok::<_, sea_orm::DbErr>(HashMap::new());
            }
            let found: Vec<(Option<String>, Option<i64>)> = lead::Entity::find()
                .select_only()
                .column(column)
                .column_as(lead::Column::Id.min(), "first")
                .filter(lead::Column::TenantId.eq(tenant))
                .filter(lead::Column::Environment.eq(environment))
                .filter(column.is_in(values))
                .group_by(column)
                .into_tuple()
                .all(tx)
                .await?;
            Ok(found
                .into_iter()
                .filter_map(|(k, id)| Some((k?, id?)))
                .collect())
        };
        Ok(Earliest {
            email: lookup(lead::Column::EmailNormalized, emails).await?,
            phone: lookup(lead::Column::PhoneNormalized, phones).await?,
        })
    }

    /// The earlier of the leads with this email or this phone.
    fn of(&self, email: Option<&str>, phone: Option<&str>) -> Option<i64> {
        let by_email = email.and_then(|e| self.email.get(e));
        let by_phone = phone.and_then(|p| self.phone.get(p));
        by_email.into_iter().chain(by_phone).min().copied()
    }
}

/// Links the leads just inserted that duplicate an earlier one of the same insert (and no lead
/// written before it), in one statement; imports announce one `import.completed`, so no
/// `lead.duplicate_detected` event is written for these.
async fn link_within(tx: &DatabaseTransaction, inserted: &[lead::Model]) -> AppResult<()> {
    let mut by_id: Vec<&lead::Model> = inserted.iter().collect();
    by_id.sort_by_key(|l| l.id);
    let mut first = Earliest::default();
    let mut links = Vec::new();
    for l in by_id {
        if l.duplicate_of.is_none()
            && let Some(original) =
                first.of(Some(&l.email_normalized), l.phone_normalized.as_deref())
        {
            links.push((l.id, original));
        }
        first
            .email
            .entry(l.email_normalized.clone())
            .or_insert(l.id);
        if let Some(p) = &l.phone_normalized {
            first.phone.entry(p.clone()).or_insert(l.id);
        }
    }
    if links.is_empty() {
        return Ok(());
    }
    let mut case = sea_orm::sea_query::CaseStatement::new();
    for (id, original) in &links {
        case = case.case(lead::Column::Id.eq(*id), *original);
    }
    lead::Entity::update_many()
        .col_expr(lead::Column::DuplicateOf, case.into())
        .filter(lead::Column::Id.is_in(links.iter().map(|(id, _)| *id)))
        .exec(tx)
        .await?;
    Ok(())
}

impl Outcome {
    fn fail(&mut self, row: i64, code: &'static str, fields: Vec<FieldError>) {
        self.failed += 1;
        if fields.is_empty() {
            self.errors.push(RowError {
                row,
                field: String::new(),
                code,
                message: "the row was refused".into(),
            });
        }
        for f in fields {
            self.errors.push(RowError {
                row,
                field: f.field,
                code,
                message: f.message,
            });
        }
    }
}

/// A row's lead input; the type errors of its fields otherwise (or the reader's, for a row
/// that could not be read).
fn input_of(ids: &Ids, text: &str) -> Result<LeadInput, Vec<FieldError>> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| vec![FieldError::new("", format!("is not a JSON object: {e}"))])?;
    let Value::Object(row) = value else {
        return Err(vec![FieldError::new("", "is not a JSON object")]);
    };
    if let Some(problem) = row.get("$error") {
        return Err(vec![FieldError::new(
            "",
            problem.as_str().unwrap_or("could not be read").to_owned(),
        )]);
    }
    let mut errors = Vec::new();
    for key in row.keys() {
        if !known_field(key) {
            errors.push(FieldError::new(key.as_str(), "is not a known field"));
        }
    }
    let text = |k: &str, errors: &mut Vec<FieldError>| match row.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(k, "must be a string"));
            None
        }
    };
    let id = |k: &str, kind: Kind, errors: &mut Vec<FieldError>| match text(k, errors) {
        None => Change::Keep,
        Some(s) => Change::Set(ids.decode(kind, &s).ok_or(())),
    };
    let mut input = LeadInput {
        email: text("email", &mut errors),
        first_name: text("firstName", &mut errors),
        last_name: text("lastName", &mut errors),
        phone: text("phone", &mut errors).map_or(Change::Keep, Change::Set),
        source_id: id("sourceId", Kind::Source, &mut errors),
        pipeline_id: id("pipelineId", Kind::Pipeline, &mut errors),
        stage_id: id("stageId", Kind::Stage, &mut errors),
        assigned_to: id("assignedTo", Kind::User, &mut errors),
        ..Default::default()
    };
    if let Some(s) = text("source", &mut errors) {
        match Channel::parse(&s) {
            Some(c) => input.source = Change::Set(c),
            None => errors.push(FieldError::new(
                "source",
                format!("must be one of {}", Channel::NAMES.join(", ")),
            )),
        }
    }
    if let Some(s) = text("status", &mut errors) {
        match LeadStatus::parse(&s) {
            Some(v) => input.status = Some(v),
            None => errors.push(FieldError::new(
                "status",
                format!("must be one of {}", LeadStatus::NAMES.join(", ")),
            )),
        }
    }
    match row.get("score") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_i64() {
            Some(n) => input.score = Some(n),
            None => errors.push(FieldError::new("score", "must be an integer")),
        },
    }
    match row.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            input.tags = Some(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            );
        }
        Some(_) => errors.push(FieldError::new("tags", "must be a list of strings")),
    }
    match row.get("customFields") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => input.custom_fields = Some(Value::Object(m.clone())),
        Some(_) => errors.push(FieldError::new("customFields", "must be a JSON object")),
    }
    if errors.is_empty() {
        Ok(input)
    } else {
        Err(errors)
    }
}

/// A CSV row as the JSON object its fields make: empty cells are absent, `tags` are split on
/// `;`, `score` and custom-field cells that read as numbers or booleans are those.
pub fn csv_row(columns: &[String], cells: &csv::StringRecord) -> Map<String, Value> {
    let mut row = Map::new();
    let mut custom = Map::new();
    for (name, cell) in columns.iter().zip(cells.iter()) {
        let cell = cell.trim();
        if cell.is_empty() {
            continue;
        }
        if let Some(key) = name.strip_prefix("customFields.") {
            custom.insert(key.to_owned(), typed(cell));
        } else if name == "tags" {
            let tags: Vec<Value> = cell
                .split(';')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| Value::String(t.to_owned()))
                .collect();
            row.insert(name.clone(), Value::Array(tags));
        } else if name == "score" {
            row.insert(
                name.clone(),
                cell.parse::<i64>()
                    .map_or_else(|_| cell.into(), Value::from),
            );
        } else {
            row.insert(name.clone(), Value::String(cell.to_owned()));
        }
    }
    if !custom.is_empty() {
        row.insert("customFields".into(), Value::Object(custom));
    }
    row
}

/// A custom-field cell: a number or boolean if it reads as one, else the text.
fn typed(cell: &str) -> Value {
    match cell {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => serde_json::from_str::<serde_json::Number>(cell)
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(cell.to_owned())),
    }
}

/// Whether a CSV header names a column imports read.
pub fn known_column(name: &str) -> bool {
    super::export::COLUMNS.contains(&name)
        || name
            .strip_prefix("customFields.")
            .is_some_and(|k| !k.is_empty())
}
