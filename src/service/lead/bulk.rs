//! Leads in bulk (docs/rest.md): batches of creates, upsert by email, and merging
//! duplicates into one lead. Each is one transaction: all of it is written or none.

use std::collections::BTreeSet;

use entity::enums::EventType;
use entity::{lead, lead_tag};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::{Map, Value, json};

use super::{
    Changed, LeadInput, LeadRow, MAX_CUSTOM_FIELDS, MAX_TAGS, change, check_fields,
    created_records, duplicates, find_locked, insert, json as lead_json, prepare, replace_tags,
    tags_of,
};
use crate::auth::principal::Principal;
use crate::context::RequestCtx;
use crate::db::begin_write;
use crate::error::{AppError, AppResult};
use crate::ids::Kind;
use crate::service::audit::{Actor, Entry};
use crate::service::event::{self, NewEvent};
use crate::service::validate::Errors;
use crate::state::App;

/// The most leads one batch creates, and the most duplicates one merge takes.
pub const MAX_BATCH: usize = 100;

/// `createLeads` / `POST /v1/leads/batch`: all or nothing. Errors name the item under
/// `field` (`inputs[3].email` in GraphQL, `leads[3].email` in REST).
pub async fn create_many(
    app: &App,
    rc: &RequestCtx,
    field: &str,
    inputs: Vec<LeadInput>,
) -> AppResult<Vec<LeadRow>> {
    let p = rc.principal()?;
    p.check_write()?;
    if inputs.is_empty() || inputs.len() > MAX_BATCH {
        return Err(AppError::field(
            field,
            format!("must hold 1 to {MAX_BATCH} leads"),
        ));
    }
    let mut errors = Errors::new();
    for (i, input) in inputs.iter().enumerate() {
        let mut item = Errors::new();
        check_fields(input, true, &mut item);
        errors.absorb(&format!("{field}[{i}]"), item);
    }
    errors.finish()?;
    let tx = begin_write(&app.db).await?;
    let mut errors = Errors::new();
    let mut ready = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let mut item = Errors::new();
        ready.push(prepare(&tx, p, input, &mut item).await?);
        errors.absorb(&format!("{field}[{i}]"), item);
    }
    // Dropping the transaction rolls it back: nothing was written yet anyway.
    errors.finish()?;
    let mut created = Vec::with_capacity(ready.len());
    let (mut entries, mut events) = (Vec::new(), Vec::new());
    for new in ready {
        let row = insert(&tx, new).await?;
        let (entry, event) = created_records(&app.ids, &row);
        entries.push(entry);
        events.push(event);
        created.push(row);
    }
    event::commit_all(&app.outbox, tx, Actor::of(p), rc, entries, events).await?;
    for row in &created {
        duplicates::spawn(app, row.lead.clone());
    }
    Ok(created)
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No lead had the email: one was created.
    Created,
    /// The one lead with the email was updated.
    Updated,
}

/// `upsertLead` / `PUT /v1/leads/by-email/{email}`: updates the one lead of the caller's
/// tenant and environment with this email (case-insensitive), or creates it. More than one
/// is `409 AMBIGUOUS_MATCH` with their IDs.
pub async fn upsert(app: &App, rc: &RequestCtx, input: LeadInput) -> AppResult<(LeadRow, Outcome)> {
    let p = rc.principal()?;
    p.check_write()?;
    let mut errors = Errors::new();
    let email = input.email.clone().unwrap_or_default();
    errors.email("email", email.trim());
    errors.finish()?;
    let normalized = email.trim().to_lowercase();
    let tx = begin_write(&app.db).await?;
    serialize_email(&tx, p, &normalized).await?;
    let matches: Vec<i64> = lead::Entity::find()
        .select_only()
        .column(lead::Column::Id)
        .filter(lead::Column::TenantId.eq(p.tenant_id))
        .filter(lead::Column::Environment.eq(p.environment))
        .filter(lead::Column::EmailNormalized.eq(&normalized))
        .order_by_asc(lead::Column::Id)
        .limit(11)
        .into_tuple()
        .all(&tx)
        .await?;
    match matches.as_slice() {
        [] => {
            let mut errors = Errors::new();
            check_fields(&input, true, &mut errors);
            let new = prepare(&tx, p, input, &mut errors).await?;
            errors.finish()?;
            let created = insert(&tx, new).await?;
            let (entry, event) = created_records(&app.ids, &created);
            event::commit(&app.outbox, tx, Actor::of(p), rc, entry, vec![event]).await?;
            duplicates::spawn(app, created.lead.clone());
            Ok((created, Outcome::Created))
        }
        [id] => {
            let before = find_locked(&tx, p, *id).await?;
            let Changed {
                after,
                audit,
                events,
            } = change(
                &tx,
                &app.ids,
                p,
                before,
                EventType::LeadUpdated,
                input,
                |_| None,
                Errors::new(),
            )
            .await?;
            let entry = Entry {
                action: "lead.update",
                resource_type: "lead",
                resource_id: Some(*id),
                changes: audit,
            };
            event::commit(&app.outbox, tx, Actor::of(p), rc, entry, events).await?;
            Ok((after, Outcome::Updated))
        }
        many => Err(AppError::AmbiguousMatch(
            many.iter()
                .map(|id| app.ids.encode(Kind::Lead, *id))
                .collect(),
        )),
    }
}

/// Makes concurrent upserts of one email wait for each other, so two cannot both create it.
/// SQLite has one writer at a time already; PostgreSQL takes a transaction advisory lock.
async fn serialize_email(tx: &DatabaseTransaction, p: &Principal, email: &str) -> AppResult<()> {
    if tx.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    let key = format!(
        "lead-email:{}:{}:{email}",
        p.tenant_id,
        p.environment.as_str()
    );
    tx.execute_raw(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        [key.into()],
    ))
    .await?;
    Ok(())
}

/// What a merge made.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The primary lead as merged (as it would be, for a dry run).
    pub lead: LeadRow,
    /// The duplicates merged into it (deleted, unless a dry run).
    pub merged: Vec<i64>,
    /// Whether nothing was written.
    pub dry_run: bool,
}

/// `mergeLeads` / `POST /v1/leads/{id}/merge`: the primary's non-null fields win, its nulls
/// are filled from the duplicates (oldest first), tags are united, custom fields merged key by
/// key (the primary's win, then the oldest duplicate's); the duplicates are deleted and
/// `duplicateOf` links to them point to the primary. One audit entry and one `lead.merged`
/// event. Every lead involved is locked first, in ID order, so concurrent merges neither lose
/// nor double anything.
pub async fn merge(
    app: &App,
    rc: &RequestCtx,
    primary: i64,
    duplicates: Vec<crate::service::lead::IdRef>,
    dry_run: bool,
) -> AppResult<Merged> {
    let p = rc.principal()?;
    p.check_write()?;
    let mut errors = Errors::new();
    let mut ids = BTreeSet::new();
    for (i, d) in duplicates.iter().enumerate() {
        match d {
            Ok(id) if *id == primary => {
                errors.add(format!("duplicateIds[{i}]"), "is the primary lead itself");
            }
            Ok(id) => {
                // IDs that name nothing all read as NO_ROW: they are not repeats.
                if !ids.insert(*id) && *id != crate::ids::NO_ROW {
                    errors.add(format!("duplicateIds[{i}]"), "is given more than once");
                }
            }
            Err(()) => errors.add(format!("duplicateIds[{i}]"), "is not a valid ID"),
        }
    }
    if duplicates.is_empty() || duplicates.len() > MAX_BATCH {
        errors.add("duplicateIds", format!("must hold 1 to {MAX_BATCH} IDs"));
    }
    errors.finish()?;
    let tx = begin_write(&app.db).await?;
    let mut all: Vec<i64> = ids.iter().copied().collect();
    all.push(primary);
    let locked = lead::Entity::find()
        .filter(lead::Column::Id.is_in(all))
        .filter(lead::Column::TenantId.eq(p.tenant_id))
        .filter(lead::Column::Environment.eq(p.environment))
        .order_by_asc(lead::Column::Id)
        .lock_exclusive()
        .all(&tx)
        .await?;
    let Some(first) = locked.iter().find(|l| l.id == primary).cloned() else {
        return Err(AppError::NotFound);
    };
    let mut errors = Errors::new();
    for (i, d) in duplicates.iter().enumerate() {
        if let Ok(id) = d
            && !locked.iter().any(|l| l.id == *id)
        {
            errors.add(format!("duplicateIds[{i}]"), "not found");
        }
    }
    errors.finish()?;
    let mut dups: Vec<lead::Model> = locked.into_iter().filter(|l| l.id != primary).collect();
    dups.sort_by_key(|l| (l.created_at, l.id));
    let before = LeadRow {
        tags: tags_of(&tx, primary).await?,
        lead: first,
    };
    let mut merged = before.clone();
    let mut dup_rows = Vec::with_capacity(dups.len());
    for d in dups {
        let tags = tags_of(&tx, d.id).await?;
        dup_rows.push(LeadRow { lead: d, tags });
    }
    let mut errors = Errors::new();
    combine(&mut merged, &dup_rows, &mut errors);
    errors.finish()?;
    let merged_ids: Vec<i64> = dup_rows.iter().map(|d| d.lead.id).collect();
    if dry_run {
        // Dropped: the transaction rolls back, having written nothing.
        return Ok(Merged {
            lead: merged,
            merged: merged_ids,
            dry_run,
        });
    }
    merged.lead.updated_at = Ord::max(super::now(), before.lead.updated_at);
    let mut row: lead::ActiveModel = merged.lead.clone().into();
    for c in [
        lead::Column::Phone,
        lead::Column::PhoneNormalized,
        lead::Column::Source,
        lead::Column::SourceId,
        lead::Column::PipelineId,
        lead::Column::StageId,
        lead::Column::AssignedTo,
        lead::Column::CustomFields,
        lead::Column::DuplicateOf,
        lead::Column::UpdatedAt,
    ] {
        row.reset(c);
    }
    merged.lead = row.update(&tx).await?;
    replace_tags(&tx, &merged.lead, &merged.tags).await?;
    // Copies of the duplicates are copies of the primary now.
    lead::Entity::update_many()
        .col_expr(lead::Column::DuplicateOf, Expr::value(primary))
        .filter(lead::Column::DuplicateOf.is_in(merged_ids.clone()))
        .filter(lead::Column::Id.ne(primary))
        .exec(&tx)
        .await?;
    lead_tag::Entity::delete_many()
        .filter(lead_tag::Column::LeadId.is_in(merged_ids.clone()))
        .exec(&tx)
        .await?;
    lead::Entity::delete_many()
        .filter(lead::Column::Id.is_in(merged_ids.clone()))
        .exec(&tx)
        .await?;
    let ids_json: Vec<String> = merged_ids
        .iter()
        .map(|id| app.ids.encode(Kind::Lead, *id))
        .collect();
    let (was, now) = (lead_json(&app.ids, &before), lead_json(&app.ids, &merged));
    let mut event = NewEvent::lead(EventType::LeadMerged, primary, Some(&was), now.clone());
    if let Some(Value::Object(c)) = event.changes.as_mut() {
        c.insert("merged".into(), json!({"from": ids_json, "to": null}));
    }
    let entry = Entry {
        action: "lead.merge",
        resource_type: "lead",
        resource_id: Some(primary),
        changes: json!({
            "before": was,
            "after": now,
            "merged": dup_rows.iter().map(|d| lead_json(&app.ids, d)).collect::<Vec<_>>(),
        }),
    };
    event::commit(&app.outbox, tx, Actor::of(p), rc, entry, vec![event]).await?;
    Ok(Merged {
        lead: merged,
        merged: merged_ids,
        dry_run,
    })
}

/// Fills `into` from `dups` (oldest first) as a merge does; too many tags or custom fields
/// for one lead are field errors.
fn combine(into: &mut LeadRow, dups: &[LeadRow], errors: &mut Errors) {
    let l = &mut into.lead;
    let merged_ids: Vec<i64> = dups.iter().map(|d| d.lead.id).collect();
    if l.duplicate_of.is_some_and(|o| merged_ids.contains(&o)) {
        l.duplicate_of = None;
    }
    for d in dups {
        let d = &d.lead;
        if l.phone.is_none() && d.phone.is_some() {
            l.phone = d.phone.clone();
            l.phone_normalized = d.phone_normalized.clone();
        }
        if l.source.is_none() {
            l.source = d.source;
        }
        if l.source_id.is_none() {
            l.source_id = d.source_id;
        }
        // A stage only with its pipeline.
        if l.pipeline_id.is_none() && d.pipeline_id.is_some() {
            l.pipeline_id = d.pipeline_id;
            l.stage_id = d.stage_id;
        } else if l.stage_id.is_none() && d.pipeline_id == l.pipeline_id {
            l.stage_id = d.stage_id;
        }
        if l.assigned_to.is_none() {
            l.assigned_to = d.assigned_to;
        }
        if l.duplicate_of.is_none()
            && let Some(o) = d.duplicate_of
            && o != l.id
            && !merged_ids.contains(&o)
        {
            l.duplicate_of = Some(o);
        }
    }
    let mut fields: Map<String, Value> = l.custom_fields.as_object().cloned().unwrap_or_default();
    for d in dups {
        if let Some(obj) = d.lead.custom_fields.as_object() {
            for (k, v) in obj {
                fields.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    if fields.len() > MAX_CUSTOM_FIELDS {
        errors.add(
            "duplicateIds",
            format!(
                "the merged lead would have {} custom fields; at most {MAX_CUSTOM_FIELDS}",
                fields.len()
            ),
        );
    }
    l.custom_fields = Value::Object(fields);
    let tags: BTreeSet<String> = into
        .tags
        .iter()
        .chain(dups.iter().flat_map(|d| d.tags.iter()))
        .cloned()
        .collect();
    if tags.len() > MAX_TAGS {
        errors.add(
            "duplicateIds",
            format!(
                "the merged lead would have {} tags; at most {MAX_TAGS}",
                tags.len()
            ),
        );
    }
    into.tags = tags.into_iter().collect();
}
