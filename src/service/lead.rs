//! Leads: validation (docs/rest.md), create/update/delete, assignment, tags, stages,
//! filtered keyset-paginated lists. Every write audits in its own transaction.

pub mod bulk;
pub mod duplicates;
pub mod export;
pub mod import;
pub mod listing;

use std::collections::BTreeSet;

use async_graphql::ID;
use chrono::{DateTime, Utc};
use entity::enums::{Channel, EventType, LeadStatus};
use entity::{lead, lead_tag, pipeline, source, stage, user};
use sea_orm::sea_query::{Expr, ExprTrait, Func, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseConnection, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use serde_json::{Value, json};

use crate::auth::principal::Principal;
use crate::context::RequestCtx;
use crate::db::{begin_write, one_locked};
use crate::error::{AppError, AppResult};
use crate::ids::{Ids, Kind};
use crate::service::audit::{self, Actor, Entry};
use crate::service::event::{self, NewEvent};
use crate::service::page::{self, Page, PageArgs, Window};
use crate::service::validate::Errors;
use crate::state::App;

/// A reference to another row given by the client: decoded, or not a valid ID.
pub type IdRef = Result<i64, ()>;

/// A change to an optional field.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Change<T> {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Set it to null.
    Clear,
    /// Set it.
    Set(T),
}

/// Fields of `createLead` and `updateLead`. For create, `None` means absent; for update,
/// absent fields are left unchanged.
#[derive(Debug, Clone, Default)]
pub struct LeadInput {
    /// Contact email.
    pub email: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Phone with country code.
    pub phone: Change<String>,
    /// Channel.
    pub source: Change<Channel>,
    /// Source row.
    pub source_id: Change<IdRef>,
    /// Pipeline.
    pub pipeline_id: Change<IdRef>,
    /// Stage (must belong to the pipeline).
    pub stage_id: Change<IdRef>,
    /// Status.
    pub status: Option<LeadStatus>,
    /// Score 0–100.
    pub score: Option<i64>,
    /// Assigned user.
    pub assigned_to: Change<IdRef>,
    /// Custom fields: a JSON object of scalars.
    pub custom_fields: Option<Value>,
    /// Tags (replacing the lead's tags on update).
    pub tags: Option<Vec<String>>,
}

/// A lead with its tags.
#[derive(Debug, Clone)]
pub struct LeadRow {
    /// The row.
    pub lead: lead::Model,
    /// Its tags, sorted.
    pub tags: Vec<String>,
}

/// Largest number of custom fields.
pub const MAX_CUSTOM_FIELDS: usize = 50;
/// Largest number of tags.
pub const MAX_TAGS: usize = 20;
/// Longest tag.
pub const MAX_TAG_LEN: usize = 50;
/// Longest custom-field key.
pub const MAX_CUSTOM_FIELD_KEY_LEN: usize = 100;
/// Characters a custom field's string value may have (a web form's message fits).
pub const MAX_CUSTOM_FIELD_VALUE_LEN: usize = 2000;
/// Highest score (the lowest is 0).
pub const MAX_SCORE: i32 = 100;

/// `+` and 2 to 15 digits after removing spaces, dashes, dots and parentheses.
pub fn normalize_phone(phone: &str) -> Option<String> {
    let n: String = phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = n.strip_prefix('+')?;
    let ok = (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then_some(n)
}

/// Trims, de-duplicates and checks tags, recording errors under `field`.
pub fn clean_tags(tags: &[String], field: &str, errors: &mut Errors) -> Vec<String> {
    let set: BTreeSet<String> = tags.iter().map(|t| t.trim().to_owned()).collect();
    if set.len() > MAX_TAGS {
        errors.add(field, format!("at most {MAX_TAGS} tags"));
    }
    for t in &set {
        let n = t.chars().count();
        if n == 0 || n > MAX_TAG_LEN || t.contains('\0') {
            errors.add(
                field,
                format!("each tag must be 1 to {MAX_TAG_LEN} characters"),
            );
            break;
        }
    }
    set.into_iter().collect()
}

/// Checks `customFields`: an object of at most 50 keys with scalar or null values.
pub fn check_custom_fields(v: &Value, errors: &mut Errors) {
    let Some(obj) = v.as_object() else {
        errors.add("customFields", "must be a JSON object");
        return;
    };
    if obj.len() > MAX_CUSTOM_FIELDS {
        errors.add("customFields", format!("at most {MAX_CUSTOM_FIELDS} keys"));
    }
    for (k, val) in obj {
        // PostgreSQL's jsonb cannot hold NUL characters: refused on both databases alike.
        if k.is_empty() || k.chars().count() > MAX_CUSTOM_FIELD_KEY_LEN || k.contains('\0') {
            errors.add(
                "customFields",
                format!("keys must be 1 to {MAX_CUSTOM_FIELD_KEY_LEN} characters, without NUL"),
            );
        } else if val.as_str().is_some_and(|s| s.contains('\0')) {
            errors.add(
                format!("customFields.{k}"),
                "must not contain NUL characters",
            );
        } else if val
            .as_str()
            .is_some_and(|s| s.chars().count() > MAX_CUSTOM_FIELD_VALUE_LEN)
        {
            errors.add(
                format!("customFields.{k}"),
                format!("must be at most {MAX_CUSTOM_FIELD_VALUE_LEN} characters"),
            );
        } else if val.is_object() || val.is_array() {
            errors.add(
                format!("customFields.{k}"),
                "must be a string, number, boolean or null",
            );
        }
    }
}

/// The pure checks of docs/rest.md (no database). `create` demands the required fields.
pub fn check_fields(input: &LeadInput, create: bool, errors: &mut Errors) {
    match &input.email {
        Some(e) => errors.email("email", e.trim()),
        None if create => errors.add("email", "is required"),
        None => {}
    }
    for (field, value) in [
        ("firstName", &input.first_name),
        ("lastName", &input.last_name),
    ] {
        match value {
            Some(v) => errors.name(field, v),
            None if create => errors.add(field, "is required"),
            None => {}
        }
    }
    if let Change::Set(p) = &input.phone
        && normalize_phone(p).is_none()
    {
        errors.add(
            "phone",
            "must include the country code, e.g. +1 555 0199 (E.164)",
        );
    }
    if let Some(s) = input.score
        && !(0..=i64::from(MAX_SCORE)).contains(&s)
    {
        errors.add("score", format!("must be an integer from 0 to {MAX_SCORE}"));
    }
    if let Some(cf) = &input.custom_fields {
        check_custom_fields(cf, errors);
    }
    if let Some(tags) = &input.tags {
        clean_tags(tags, "tags", errors);
    }
    for (field, r) in [
        ("sourceId", &input.source_id),
        ("pipelineId", &input.pipeline_id),
        ("stageId", &input.stage_id),
        ("assignedTo", &input.assigned_to),
    ] {
        if let Change::Set(Err(())) = r {
            errors.add(field, "is not a valid ID");
        }
    }
}

pub use crate::service::clock::{now, ts};

/// The public JSON of a lead (REST body and audit record).
pub fn json(ids: &Ids, row: &LeadRow) -> Value {
    let l = &row.lead;
    let id = |kind, v: Option<i64>| v.map(|v| ids.encode(kind, v));
    json!({
        "id": ids.encode(Kind::Lead, l.id),
        "tenantId": ids.encode(Kind::Tenant, l.tenant_id),
        "email": l.email,
        "firstName": l.first_name,
        "lastName": l.last_name,
        "phone": l.phone,
        "source": l.source,
        "sourceId": id(Kind::Source, l.source_id),
        "pipelineId": id(Kind::Pipeline, l.pipeline_id),
        "stageId": id(Kind::Stage, l.stage_id),
        "status": l.status,
        "score": l.score,
        "assignedTo": id(Kind::User, l.assigned_to),
        "customFields": l.custom_fields,
        "tags": row.tags,
        "duplicateOf": id(Kind::Lead, l.duplicate_of),
        "importId": id(Kind::ImportJob, l.import_id),
        "createdAt": ts(l.created_at),
        "updatedAt": ts(l.updated_at),
    })
}

fn scoped(p: &Principal, id: i64) -> Select<lead::Entity> {
    lead::Entity::find_by_id(id)
        .filter(lead::Column::TenantId.eq(p.tenant_id))
        .filter(lead::Column::Environment.eq(p.environment))
}

/// The lead `id` of the caller's tenant and environment.
pub async fn find<C: ConnectionTrait>(db: &C, p: &Principal, id: i64) -> AppResult<lead::Model> {
    scoped(p, id).one(db).await?.ok_or(AppError::NotFound)
}

/// The lead `id`, locked for a change until `tx` ends.
pub async fn find_locked(
    tx: &DatabaseTransaction,
    p: &Principal,
    id: i64,
) -> AppResult<lead::Model> {
    one_locked(tx, scoped(p, id))
        .await?
        .ok_or(AppError::NotFound)
}

/// Tags of one lead, sorted.
pub async fn tags_of<C: ConnectionTrait>(db: &C, lead_id: i64) -> AppResult<Vec<String>> {
    let rows = lead_tag::Entity::find()
        .filter(lead_tag::Column::LeadId.eq(lead_id))
        .order_by_asc(lead_tag::Column::Tag)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|t| t.tag).collect())
}

/// A lead with its tags, for the caller.
pub async fn get(app: &App, rc: &RequestCtx, id: i64) -> AppResult<LeadRow> {
    let p = rc.principal()?;
    let lead = find(&app.db, p, id).await?;
    let tags = tags_of(&app.db, id).await?;
    Ok(LeadRow { lead, tags })
}

/// Resolved references of a lead.
#[derive(Debug, Default, Clone, Copy)]
struct Refs {
    source: Option<(i64, Channel)>,
    pipeline_id: Option<i64>,
    stage_id: Option<i64>,
    assigned_to: Option<i64>,
}

/// A source of the caller's tenant and environment.
pub async fn find_source<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<Option<source::Model>> {
    Ok(source::Entity::find_by_id(id)
        .filter(source::Column::TenantId.eq(p.tenant_id))
        .filter(source::Column::Environment.eq(p.environment))
        .one(db)
        .await?)
}

async fn find_pipeline<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<Option<pipeline::Model>> {
    Ok(pipeline::Entity::find_by_id(id)
        .filter(pipeline::Column::TenantId.eq(p.tenant_id))
        .filter(pipeline::Column::Environment.eq(p.environment))
        .one(db)
        .await?)
}

/// A stage of the caller's tenant and environment.
pub async fn find_stage<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<Option<stage::Model>> {
    Ok(stage::Entity::find_by_id(id)
        .filter(stage::Column::TenantId.eq(p.tenant_id))
        .filter(stage::Column::Environment.eq(p.environment))
        .one(db)
        .await?)
}

async fn first_stage<C: ConnectionTrait>(db: &C, pipeline_id: i64) -> AppResult<Option<i64>> {
    Ok(stage::Entity::find()
        .filter(stage::Column::PipelineId.eq(pipeline_id))
        .order_by_asc(stage::Column::Position)
        .order_by_asc(stage::Column::Id)
        .one(db)
        .await?
        .map(|s| s.id))
}

/// A user of the caller's tenant that leads can be assigned to (active).
pub async fn find_assignee<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id: i64,
) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|u| u.tenant_id == p.tenant_id && u.active))
}

/// Resolves the references of `input` on top of `current`, recording field errors.
async fn resolve_refs<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    input: &LeadInput,
    current: Refs,
    errors: &mut Errors,
) -> AppResult<Refs> {
    let mut refs = current;
    match input.source_id {
        Change::Set(Ok(id)) => match find_source(db, p, id).await? {
            Some(s) => refs.source = Some((s.id, s.channel)),
            None => errors.add("sourceId", "not found"),
        },
        Change::Clear => refs.source = None,
        _ => {}
    }
    let pipeline_changed = match input.pipeline_id {
        Change::Set(Ok(id)) => {
            if find_pipeline(db, p, id).await?.is_some() {
                refs.pipeline_id = Some(id);
            } else {
                errors.add("pipelineId", "not found");
            }
            current.pipeline_id != Some(id)
        }
        Change::Clear => {
            refs.pipeline_id = None;
            refs.stage_id = None;
            true
        }
        _ => false,
    };
    match input.stage_id {
        Change::Set(Ok(id)) => match find_stage(db, p, id).await? {
            Some(s)
                if refs.pipeline_id.is_none() && !matches!(input.pipeline_id, Change::Set(_)) =>
            {
                refs.pipeline_id = Some(s.pipeline_id);
                refs.stage_id = Some(s.id);
            }
            Some(s) if Some(s.pipeline_id) == refs.pipeline_id => refs.stage_id = Some(s.id),
            Some(_) => errors.add("stageId", "does not belong to the lead's pipeline"),
            None => errors.add("stageId", "not found"),
        },
        Change::Clear => refs.stage_id = None,
        Change::Keep | Change::Set(Err(())) if pipeline_changed => {
            refs.stage_id = match refs.pipeline_id {
                Some(pid) => first_stage(db, pid).await?,
                None => None,
            };
        }
        _ => {}
    }
    match input.assigned_to {
        Change::Set(Ok(id)) => match find_assignee(db, p, id).await? {
            Some(u) => refs.assigned_to = Some(u.id),
            None => errors.add("assignedTo", "not found"),
        },
        Change::Clear => refs.assigned_to = None,
        _ => {}
    }
    Ok(refs)
}

async fn replace_tags<C: ConnectionTrait>(
    db: &C,
    l: &lead::Model,
    tags: &[String],
) -> AppResult<()> {
    lead_tag::Entity::delete_many()
        .filter(lead_tag::Column::LeadId.eq(l.id))
        .exec(db)
        .await?;
    insert_tags(db, l, tags).await
}

async fn insert_tags<C: ConnectionTrait>(
    db: &C,
    l: &lead::Model,
    tags: &[String],
) -> AppResult<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let rows = tags.iter().map(|t| lead_tag::ActiveModel {
        lead_id: Set(l.id),
        tag: Set(t.clone()),
        tenant_id: Set(l.tenant_id),
        environment: Set(l.environment),
    });
    lead_tag::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// `createLead`. Duplicate detection runs after the commit, off the request path.
pub async fn create(app: &App, rc: &RequestCtx, input: LeadInput) -> AppResult<LeadRow> {
    let p = rc.principal()?;
    p.check_write()?;
    let mut errors = Errors::new();
    check_fields(&input, true, &mut errors);
    let tx = begin_write(&app.db).await?;
    let new = prepare(&tx, p, input, &mut errors).await?;
    errors.finish()?;
    let created = insert(&tx, new).await?;
    let (entry, event) = created_records(&app.ids, &created);
    event::commit(&app.outbox, tx, Actor::of(p), rc, entry, vec![event]).await?;
    duplicates::spawn(app, created.lead.clone());
    Ok(created)
}

/// A checked lead, ready to insert.
struct NewLead {
    row: lead::ActiveModel,
    tags: Vec<String>,
}

/// Resolves the references of `input` (already through [`check_fields`] for a create) in
/// `tx`, recording field errors; writes nothing.
async fn prepare(
    tx: &DatabaseTransaction,
    p: &Principal,
    input: LeadInput,
    errors: &mut Errors,
) -> AppResult<NewLead> {
    let tags = input
        .tags
        .as_deref()
        .map(|t| clean_tags(t, "tags", &mut Errors::new()))
        .unwrap_or_default();
    let refs = resolve_refs(tx, p, &input, Refs::default(), errors).await?;
    let email = input.email.unwrap_or_default().trim().to_owned();
    let phone = match &input.phone {
        Change::Set(ph) => Some(ph.trim().to_owned()),
        _ => None,
    };
    let channel = match input.source {
        Change::Set(c) => Some(c),
        _ => refs.source.map(|(_, c)| c),
    };
    let now = now();
    let row = lead::ActiveModel {
        tenant_id: Set(p.tenant_id),
        environment: Set(p.environment),
        email_normalized: Set(email.to_lowercase()),
        email: Set(email),
        first_name: Set(input.first_name.unwrap_or_default().trim().to_owned()),
        last_name: Set(input.last_name.unwrap_or_default().trim().to_owned()),
        phone_normalized: Set(phone.as_deref().and_then(normalize_phone)),
        phone: Set(phone),
        source: Set(channel),
        source_id: Set(refs.source.map(|(id, _)| id)),
        pipeline_id: Set(refs.pipeline_id),
        stage_id: Set(refs.stage_id),
        status: Set(input.status.unwrap_or(LeadStatus::New)),
        score: Set(input.score.unwrap_or(0) as i32),
        assigned_to: Set(refs.assigned_to),
        custom_fields: Set(input.custom_fields.unwrap_or_else(|| json!({}))),
        duplicate_of: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    Ok(NewLead { row, tags })
}

/// Inserts a prepared lead and its tags.
async fn insert(tx: &DatabaseTransaction, new: NewLead) -> AppResult<LeadRow> {
    let row = new.row.insert(tx).await?;
    insert_tags(tx, &row, &new.tags).await?;
    Ok(LeadRow {
        lead: row,
        tags: new.tags,
    })
}

/// The audit entry and the event of a created lead.
fn created_records(ids: &Ids, created: &LeadRow) -> (Entry<'static>, NewEvent) {
    let after = json(ids, created);
    let entry = Entry {
        action: "lead.create",
        resource_type: "lead",
        resource_id: Some(created.lead.id),
        changes: json!({"after": after.clone()}),
    };
    let event = NewEvent::lead(EventType::LeadCreated, created.lead.id, None, after);
    (entry, event)
}

fn refs_of(l: &lead::Model) -> Refs {
    Refs {
        source: l
            .source_id
            .map(|id| (id, l.source.unwrap_or(Channel::Manual))),
        pipeline_id: l.pipeline_id,
        stage_id: l.stage_id,
        assigned_to: l.assigned_to,
    }
}

/// Applies `input` to lead `id` in one audited transaction; `action` names the mutation and
/// `event` the type of its event (none when nothing changed).
#[expect(
    clippy::too_many_arguments,
    reason = "the mutation's names, input and checks"
)]
async fn apply(
    app: &App,
    rc: &RequestCtx,
    id: i64,
    action: &str,
    event: EventType,
    input: LeadInput,
    tag_change: impl FnOnce(Vec<String>) -> Option<Vec<String>>,
    errors: Errors,
) -> AppResult<LeadRow> {
    let p = rc.principal()?;
    p.check_write()?;
    let tx = begin_write(&app.db).await?;
    let before_lead = find_locked(&tx, p, id).await?;
    let changed = change(
        &tx,
        &app.ids,
        p,
        before_lead,
        event,
        input,
        tag_change,
        errors,
    )
    .await?;
    event::commit(
        &app.outbox,
        tx,
        Actor::of(p),
        rc,
        Entry {
            action,
            resource_type: "lead",
            resource_id: Some(id),
            changes: changed.audit,
        },
        changed.events,
    )
    .await?;
    Ok(changed.after)
}

/// A lead as changed in a transaction, with what its commit records.
struct Changed {
    after: LeadRow,
    /// The audit entry's `changes`.
    audit: Value,
    /// Its event, or none when nothing changed.
    events: Vec<NewEvent>,
}

/// Applies `input` (and `tag_change`, when `input` sets no tags) to `before_lead`, locked in
/// `tx`; nothing is written when a field fails.
#[expect(
    clippy::too_many_arguments,
    reason = "the mutation's names, input and checks"
)]
async fn change(
    tx: &DatabaseTransaction,
    ids: &Ids,
    p: &Principal,
    before_lead: lead::Model,
    event: EventType,
    input: LeadInput,
    tag_change: impl FnOnce(Vec<String>) -> Option<Vec<String>>,
    mut errors: Errors,
) -> AppResult<Changed> {
    let id = before_lead.id;
    check_fields(&input, false, &mut errors);
    let before_tags = tags_of(tx, id).await?;
    let refs = resolve_refs(tx, p, &input, refs_of(&before_lead), &mut errors).await?;
    let new_tags = match &input.tags {
        Some(t) => Some(clean_tags(t, "tags", &mut errors)),
        None => tag_change(before_tags.clone()),
    };
    errors.finish()?;
    // Tags added to those the lead has: the request is valid, the lead's state refuses it.
    if let Some(t) = new_tags.as_ref().filter(|t| t.len() > MAX_TAGS)
        && input.tags.is_none()
    {
        return Err(AppError::Conflict(format!(
            "A lead has at most {MAX_TAGS} tags; this would give it {}",
            t.len()
        )));
    }

    let before = LeadRow {
        lead: before_lead.clone(),
        tags: before_tags,
    };
    let mut row: lead::ActiveModel = before_lead.clone().into();
    if let Some(e) = input.email {
        let e = e.trim().to_owned();
        row.email_normalized = Set(e.to_lowercase());
        row.email = Set(e);
    }
    if let Some(v) = input.first_name {
        row.first_name = Set(v.trim().to_owned());
    }
    if let Some(v) = input.last_name {
        row.last_name = Set(v.trim().to_owned());
    }
    match input.phone {
        Change::Set(ph) => {
            row.phone_normalized = Set(normalize_phone(&ph));
            row.phone = Set(Some(ph.trim().to_owned()));
        }
        Change::Clear => {
            row.phone = Set(None);
            row.phone_normalized = Set(None);
        }
        Change::Keep => {}
    }
    match input.source {
        Change::Set(c) => row.source = Set(Some(c)),
        Change::Clear => row.source = Set(None),
        Change::Keep => {
            if let Change::Set(_) = input.source_id {
                row.source = Set(refs.source.map(|(_, c)| c));
            }
        }
    }
    row.source_id = Set(refs.source.map(|(id, _)| id));
    row.pipeline_id = Set(refs.pipeline_id);
    row.stage_id = Set(refs.stage_id);
    row.assigned_to = Set(refs.assigned_to);
    if let Some(s) = input.status {
        row.status = Set(s);
    }
    if let Some(s) = input.score {
        row.score = Set(s as i32);
    }
    if let Some(cf) = input.custom_fields {
        row.custom_fields = Set(cf);
    }
    row.updated_at = Set(Ord::max(now(), before_lead.updated_at));
    let after_lead = row.update(tx).await?;
    let after_tags = match new_tags {
        Some(tags) => {
            replace_tags(tx, &after_lead, &tags).await?;
            tags
        }
        None => before.tags.clone(),
    };
    let after = LeadRow {
        lead: after_lead,
        tags: after_tags,
    };
    let (before, after_json) = (json(ids, &before), json(ids, &after));
    let event = NewEvent::lead(event, id, Some(&before), after_json.clone());
    let changed = event
        .changes
        .as_ref()
        .and_then(Value::as_object)
        .is_some_and(|c| !c.is_empty());
    Ok(Changed {
        after,
        audit: audit::diff(&before, &after_json),
        events: if changed { vec![event] } else { Vec::new() },
    })
}

/// `updateLead`: a partial update.
pub async fn update(app: &App, rc: &RequestCtx, id: i64, input: LeadInput) -> AppResult<LeadRow> {
    let event = EventType::LeadUpdated;
    apply(
        app,
        rc,
        id,
        "lead.update",
        event,
        input,
        |_| None,
        Errors::new(),
    )
    .await
}

/// `assignLead`: `None` unassigns.
pub async fn assign(
    app: &App,
    rc: &RequestCtx,
    id: i64,
    user: Option<IdRef>,
) -> AppResult<LeadRow> {
    let input = LeadInput {
        assigned_to: match user {
            Some(r) => Change::Set(r),
            None => Change::Clear,
        },
        ..Default::default()
    };
    let event = EventType::LeadAssigned;
    apply(
        app,
        rc,
        id,
        "lead.assign",
        event,
        input,
        |_| None,
        Errors::new(),
    )
    .await
}

/// `addLeadTags`.
pub async fn add_tags(
    app: &App,
    rc: &RequestCtx,
    id: i64,
    tags: Vec<String>,
) -> AppResult<LeadRow> {
    let mut errors = Errors::new();
    let tags = clean_tags(&tags, "tags", &mut errors);
    let change = move |mut current: Vec<String>| {
        current.extend(tags);
        current.sort();
        current.dedup();
        Some(current)
    };
    apply(
        app,
        rc,
        id,
        "lead.add_tags",
        EventType::LeadTagsChanged,
        LeadInput::default(),
        change,
        errors,
    )
    .await
}

/// `removeLeadTags`.
pub async fn remove_tags(
    app: &App,
    rc: &RequestCtx,
    id: i64,
    tags: Vec<String>,
) -> AppResult<LeadRow> {
    let remove: BTreeSet<String> = tags.iter().map(|t| t.trim().to_owned()).collect();
    let change = move |current: Vec<String>| {
        Some(
            current
                .into_iter()
                .filter(|t| !remove.contains(t))
                .collect(),
        )
    };
    apply(
        app,
        rc,
        id,
        "lead.remove_tags",
        EventType::LeadTagsChanged,
        LeadInput::default(),
        change,
        Errors::new(),
    )
    .await
}

/// `moveLeadToStage`: the stage must belong to the lead's pipeline.
pub async fn move_to_stage(
    app: &App,
    rc: &RequestCtx,
    id: i64,
    stage: IdRef,
) -> AppResult<LeadRow> {
    let p = rc.principal()?;
    p.check_write()?;
    let mut errors = Errors::new();
    if find(&app.db, p, id).await?.pipeline_id.is_none() {
        errors.add(
            "stageId",
            "the lead is in no pipeline: set its pipelineId first",
        );
        return Err(errors.finish().err().unwrap_or(AppError::NotFound));
    }
    let input = LeadInput {
        stage_id: Change::Set(stage),
        ..Default::default()
    };
    let event = EventType::LeadStageChanged;
    apply(
        app,
        rc,
        id,
        "lead.move_to_stage",
        event,
        input,
        |_| None,
        errors,
    )
    .await
}

/// `deleteLead`: the audit entry keeps the whole row.
pub async fn delete(app: &App, rc: &RequestCtx, id: i64) -> AppResult<()> {
    let p = rc.principal()?;
    p.check_write()?;
    let tx = begin_write(&app.db).await?;
    let lead = find_locked(&tx, p, id).await?;
    let tags = tags_of(&tx, id).await?;
    let before = json(&app.ids, &LeadRow { lead, tags });
    // Later copies pointed at this lead; they lose the link rather than point at nothing, and
    // the feed tells of their change too.
    let mut events = Vec::new();
    let copies = lead::Entity::find()
        .filter(lead::Column::DuplicateOf.eq(id))
        .lock_exclusive()
        .all(&tx)
        .await?;
    for copy in copies {
        let tags = tags_of(&tx, copy.id).await?;
        let mut row = LeadRow { lead: copy, tags };
        let was = json(&app.ids, &row);
        row.lead.duplicate_of = None;
        let event = NewEvent::lead(
            EventType::LeadUpdated,
            row.lead.id,
            Some(&was),
            json(&app.ids, &row),
        );
        events.push(event);
    }
    lead::Entity::update_many()
        .col_expr(lead::Column::DuplicateOf, Expr::value(Option::<i64>::None))
        .filter(lead::Column::DuplicateOf.eq(id))
        .exec(&tx)
        .await?;
    lead::Entity::delete_by_id(id).exec(&tx).await?;
    events.push(NewEvent::lead(
        EventType::LeadDeleted,
        id,
        None,
        before.clone(),
    ));
    event::commit(
        &app.outbox,
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "lead.delete",
            resource_type: "lead",
            resource_id: Some(id),
            changes: json!({"before": before}),
        },
        events,
    )
    .await?;
    Ok(())
}

// docs/graphql.md. GraphQL's `LeadFilter` input is this type, so there is one; its IDs stay
// opaque until the list decodes them.
/// Lead list filters; all are combined with AND.
#[derive(async_graphql::InputObject, Debug, Clone, Default)]
pub struct LeadFilter {
    /// Any of these statuses.
    pub status: Option<Vec<LeadStatus>>,
    /// Any of these channels.
    pub channel: Option<Vec<Channel>>,
    /// From this source.
    pub source_id: Option<ID>,
    /// In this pipeline.
    pub pipeline_id: Option<ID>,
    /// In this stage.
    pub stage_id: Option<ID>,
    /// Assigned to this user.
    pub assigned_to: Option<ID>,
    /// Carrying this tag.
    pub tag: Option<String>,
    /// Lowest score.
    pub score_min: Option<i64>,
    /// Highest score.
    pub score_max: Option<i64>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// Free text over name, email and phone (every word must match).
    pub search: Option<String>,
    /// Created by this import job.
    pub import_id: Option<ID>,
}

/// The rows a filter names, decoded.
#[derive(Debug, Clone, Copy, Default)]
struct FilterRows {
    source_id: Option<i64>,
    pipeline_id: Option<i64>,
    stage_id: Option<i64>,
    assigned_to: Option<i64>,
    import_id: Option<i64>,
}

impl LeadFilter {
    /// Decodes the IDs. A misspelled one or one of another kind is `VALIDATION_FAILED` on
    /// `filter.<field>` (a typo must not look like an empty list); one spelled as an ID that
    /// names no row matches nothing, as another tenant's ID does.
    fn rows(&self, ids: &Ids) -> AppResult<FilterRows> {
        let mut errors = Errors::new();
        let mut decode = |name: &str, kind: Kind, id: &Option<ID>| {
            let id = id.as_ref()?;
            let found = ids.lookup(kind, id.as_str());
            if found.is_none() {
                errors.add(format!("filter.{name}"), "is not a valid ID");
            }
            found
        };
        let rows = FilterRows {
            source_id: decode("sourceId", Kind::Source, &self.source_id),
            pipeline_id: decode("pipelineId", Kind::Pipeline, &self.pipeline_id),
            stage_id: decode("stageId", Kind::Stage, &self.stage_id),
            assigned_to: decode("assignedTo", Kind::User, &self.assigned_to),
            import_id: decode("importId", Kind::ImportJob, &self.import_id),
        };
        errors.finish()?;
        Ok(rows)
    }
}

/// Sort keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortField {
    /// Creation time (default).
    #[default]
    CreatedAt,
    /// Last change.
    UpdatedAt,
    /// Score.
    Score,
    /// Last name.
    LastName,
}

impl SortField {
    fn name(self) -> &'static str {
        match self {
            SortField::CreatedAt => "createdAt",
            SortField::UpdatedAt => "updatedAt",
            SortField::Score => "score",
            SortField::LastName => "lastName",
        }
    }

    fn column(self) -> lead::Column {
        match self {
            SortField::CreatedAt => lead::Column::CreatedAt,
            SortField::UpdatedAt => lead::Column::UpdatedAt,
            SortField::Score => lead::Column::Score,
            SortField::LastName => lead::Column::LastName,
        }
    }

    /// The sort key of a row, as stored in cursors.
    pub fn value_of(self, l: &lead::Model) -> String {
        match self {
            SortField::CreatedAt => l
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            SortField::UpdatedAt => l
                .updated_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            SortField::Score => l.score.to_string(),
            SortField::LastName => l.last_name.clone(),
        }
    }

    fn parse_value(self, v: &str) -> Option<sea_orm::Value> {
        Some(match self {
            SortField::CreatedAt | SortField::UpdatedAt => DateTime::parse_from_rfc3339(v)
                .ok()?
                .with_timezone(&Utc)
                .into(),
            SortField::Score => v.parse::<i32>().ok()?.into(),
            SortField::LastName => v.to_owned().into(),
        })
    }
}

/// An ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Order {
    /// The key.
    pub field: SortField,
    /// Ascending (else descending, the default).
    pub asc: bool,
}

impl Order {
    /// The name cursors carry.
    pub fn cursor_name(self) -> String {
        format!(
            "{}:{}",
            self.field.name(),
            if self.asc { "asc" } else { "desc" }
        )
    }
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The filter as a condition on leads of the caller's tenant and environment.
fn condition(p: &Principal, f: &LeadFilter, rows: FilterRows) -> Condition {
    let mut c = Condition::all()
        .add(lead::Column::TenantId.eq(p.tenant_id))
        .add(lead::Column::Environment.eq(p.environment));
    if let Some(status) = f.status.as_ref().filter(|s| !s.is_empty()) {
        c = c.add(lead::Column::Status.is_in(status.clone()));
    }
    if let Some(channel) = f.channel.as_ref().filter(|s| !s.is_empty()) {
        c = c.add(lead::Column::Source.is_in(channel.clone()));
    }
    for (col, id) in [
        (lead::Column::SourceId, rows.source_id),
        (lead::Column::PipelineId, rows.pipeline_id),
        (lead::Column::StageId, rows.stage_id),
        (lead::Column::AssignedTo, rows.assigned_to),
        (lead::Column::ImportId, rows.import_id),
    ] {
        if let Some(id) = id {
            c = c.add(col.eq(id));
        }
    }
    // Text that cannot be stored cannot match (PostgreSQL refuses NUL in text parameters).
    let unmatchable = |s: &Option<String>| s.as_deref().is_some_and(|s| s.contains('\0'));
    if unmatchable(&f.tag) || unmatchable(&f.search) {
        return c.add(Expr::val(1).eq(0));
    }
    if let Some(tag) = &f.tag {
        c = c.add(
            lead::Column::Id.in_subquery(
                Query::select()
                    .column(lead_tag::Column::LeadId)
                    .from(lead_tag::Entity)
                    .and_where(Expr::col(lead_tag::Column::TenantId).eq(p.tenant_id))
                    .and_where(Expr::col(lead_tag::Column::Environment).eq(p.environment.as_str()))
                    .and_where(Expr::col(lead_tag::Column::Tag).eq(tag.trim()))
                    .to_owned(),
            ),
        );
    }
    if let Some(min) = f.score_min {
        c = c.add(lead::Column::Score.gte(min));
    }
    if let Some(max) = f.score_max {
        c = c.add(lead::Column::Score.lte(max));
    }
    if let Some(at) = f.created_after {
        c = c.add(lead::Column::CreatedAt.gte(at));
    }
    if let Some(at) = f.created_before {
        c = c.add(lead::Column::CreatedAt.lt(at));
    }
    if let Some(search) = &f.search {
        for word in search.split_whitespace().take(8) {
            let pattern = escape_like(&word.to_lowercase());
            let lower = |col: lead::Column| Expr::expr(Func::lower(Expr::col((lead::Entity, col))));
            let mut any = Condition::any()
                .add(
                    lower(lead::Column::FirstName)
                        .like(sea_orm::sea_query::LikeExpr::new(&pattern).escape('\\')),
                )
                .add(
                    lower(lead::Column::LastName)
                        .like(sea_orm::sea_query::LikeExpr::new(&pattern).escape('\\')),
                )
                .add(
                    Expr::col((lead::Entity, lead::Column::EmailNormalized))
                        .like(sea_orm::sea_query::LikeExpr::new(&pattern).escape('\\')),
                );
            let digits: String = word.chars().filter(|c| c.is_ascii_digit()).collect();
            if digits.len() >= 3 {
                any = any.add(
                    Expr::col((lead::Entity, lead::Column::PhoneNormalized))
                        .like(format!("%{digits}%")),
                );
            }
            c = c.add(any);
        }
    }
    c
}

/// One page of leads, with the relations of `with` read in the same statement.
pub async fn list(
    app: &App,
    rc: &RequestCtx,
    filter: &LeadFilter,
    order: Order,
    args: &PageArgs,
    with: listing::With,
) -> AppResult<(Page<listing::Listed>, Condition)> {
    let p = rc.principal()?;
    let rows = filter.rows(&app.ids)?;
    let window = page::window(&app.ids, Kind::Lead, &order.cursor_name(), args)?;
    let cond = condition(p, filter, rows);
    let q = page_query(cond.clone(), order, &window)?;
    let rows = listing::fetch(
        &app.db,
        q,
        with,
        order.field.column(),
        p.tenant_id,
        p.environment,
    )
    .await?;
    Ok((Page::from_fetched(rows, &window), cond))
}

/// The select of one window of leads: filtered, ordered, one row more than the page.
fn page_query(cond: Condition, order: Order, w: &Window) -> AppResult<Select<lead::Entity>> {
    // Qualified: the page's statement may join tables with columns of the same names.
    let col = Expr::col((lead::Entity, order.field.column()));
    // Walking backward reverses the order; the page is flipped back afterwards.
    let asc = order.asc == w.forward;
    let mut q = lead::Entity::find().filter(cond);
    if let Some(from) = &w.from {
        let v = order
            .field
            .parse_value(&from.value)
            .ok_or_else(|| AppError::field("after", "is not a valid cursor"))?;
        let beyond = if asc {
            Condition::any().add(col.clone().gt(v.clone())).add(
                Condition::all()
                    .add(col.clone().eq(v))
                    .add(lead::Column::Id.gt(from.id)),
            )
        } else {
            Condition::any().add(col.clone().lt(v.clone())).add(
                Condition::all()
                    .add(col.clone().eq(v))
                    .add(lead::Column::Id.lt(from.id)),
            )
        };
        q = q.filter(beyond);
    }
    let col = order.field.column();
    q = if asc {
        q.order_by_asc(col).order_by_asc(lead::Column::Id)
    } else {
        q.order_by_desc(col).order_by_desc(lead::Column::Id)
    };
    Ok(q.limit(w.limit + 1))
}

/// Leads matching a condition (for `totalCount`, computed only when selected).
pub async fn count(db: &DatabaseConnection, cond: Condition) -> AppResult<u64> {
    Ok(lead::Entity::find().filter(cond).count(db).await?)
}
