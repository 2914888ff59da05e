//! Pipelines and their ordered stages. Positions are 0-based and contiguous; deleting a
//! pipeline or stage that leads still use is refused with `409 CONFLICT`.

use entity::{lead, pipeline, stage};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use serde_json::{Value, json};

use crate::auth::principal::Principal;
use crate::context::RequestCtx;
use crate::db::{begin_write, one_locked};
use crate::error::{AppError, AppResult};
use crate::ids::{Ids, Kind};
use crate::service::audit::{self, Actor, Entry};
use crate::service::lead::{IdRef, now, ts};
use crate::service::validate::Errors;
use crate::state::App;

/// Most stages in one pipeline.
pub const MAX_STAGES: usize = 50;

/// The public JSON of a pipeline with its stages.
pub fn json(ids: &Ids, p: &pipeline::Model, stages: &[stage::Model]) -> Value {
    json!({
        "id": ids.encode(Kind::Pipeline, p.id),
        "name": p.name,
        "stages": stages.iter().map(|s| stage_json(ids, s)).collect::<Vec<_>>(),
        "createdAt": ts(p.created_at),
        "updatedAt": ts(p.updated_at),
    })
}

/// The public JSON of a stage.
pub fn stage_json(ids: &Ids, s: &stage::Model) -> Value {
    json!({
        "id": ids.encode(Kind::Stage, s.id),
        "pipelineId": ids.encode(Kind::Pipeline, s.pipeline_id),
        "name": s.name,
        "position": s.position,
    })
}

fn scoped(p: &Principal, id: i64) -> Select<pipeline::Entity> {
    pipeline::Entity::find_by_id(id)
        .filter(pipeline::Column::TenantId.eq(p.tenant_id))
        .filter(pipeline::Column::Environment.eq(p.environment))
}

async fn find<C: ConnectionTrait>(db: &C, p: &Principal, id: i64) -> AppResult<pipeline::Model> {
    scoped(p, id).one(db).await?.ok_or(AppError::NotFound)
}

/// The pipeline `id`, locked until `tx` ends: every change to a pipeline or its stages takes
/// this lock, so stage positions are renumbered by one writer at a time.
async fn find_locked(
    tx: &DatabaseTransaction,
    p: &Principal,
    id: i64,
) -> AppResult<pipeline::Model> {
    one_locked(tx, scoped(p, id))
        .await?
        .ok_or(AppError::NotFound)
}

/// Stage `id` with its pipeline locked until `tx` ends, read again under the lock (a
/// concurrent change may have moved or deleted it meanwhile).
async fn find_stage_locked(
    tx: &DatabaseTransaction,
    p: &Principal,
    id: i64,
) -> AppResult<stage::Model> {
    let found = crate::service::lead::find_stage(tx, p, id)
        .await?
        .ok_or(AppError::NotFound)?;
    find_locked(tx, p, found.pipeline_id).await?;
    crate::service::lead::find_stage(tx, p, id)
        .await?
        .ok_or(AppError::NotFound)
}

/// Stages of a pipeline in order.
pub async fn stages_of<C: ConnectionTrait>(
    db: &C,
    pipeline_id: i64,
) -> AppResult<Vec<stage::Model>> {
    Ok(stage::Entity::find()
        .filter(stage::Column::PipelineId.eq(pipeline_id))
        .order_by_asc(stage::Column::Position)
        .order_by_asc(stage::Column::Id)
        .all(db)
        .await?)
}

/// A pipeline of the caller.
pub async fn get(app: &App, rc: &RequestCtx, id: i64) -> AppResult<pipeline::Model> {
    find(&app.db, rc.principal()?, id).await
}

/// A stage of the caller.
pub async fn get_stage(app: &App, rc: &RequestCtx, id: i64) -> AppResult<stage::Model> {
    crate::service::lead::find_stage(&app.db, rc.principal()?, id)
        .await?
        .ok_or(AppError::NotFound)
}

/// The caller's pipelines, oldest first.
pub async fn list(app: &App, rc: &RequestCtx) -> AppResult<Vec<pipeline::Model>> {
    let p = rc.principal()?;
    Ok(pipeline::Entity::find()
        .filter(pipeline::Column::TenantId.eq(p.tenant_id))
        .filter(pipeline::Column::Environment.eq(p.environment))
        .order_by_asc(pipeline::Column::Id)
        .limit(1000)
        .all(&app.db)
        .await?)
}

async fn insert_stage<C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    pipeline_id: i64,
    name: &str,
    position: i32,
) -> AppResult<stage::Model> {
    let now = now();
    Ok(stage::ActiveModel {
        tenant_id: Set(p.tenant_id),
        environment: Set(p.environment),
        pipeline_id: Set(pipeline_id),
        name: Set(name.trim().to_owned()),
        position: Set(position),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// Rewrites positions to 0..n in the given order.
async fn renumber<C: ConnectionTrait>(
    db: &C,
    stages: &[stage::Model],
) -> AppResult<Vec<stage::Model>> {
    let mut out = Vec::with_capacity(stages.len());
    for (i, s) in stages.iter().enumerate() {
        if s.position == i as i32 {
            out.push(s.clone());
            continue;
        }
        let mut row: stage::ActiveModel = s.clone().into();
        row.position = Set(i as i32);
        row.updated_at = Set(now());
        out.push(row.update(db).await?);
    }
    Ok(out)
}

/// `createPipeline` with its stages in order.
pub async fn create(
    app: &App,
    rc: &RequestCtx,
    name: String,
    stages: Vec<String>,
) -> AppResult<(pipeline::Model, Vec<stage::Model>)> {
    let p = rc.principal()?;
    p.check_write()?;
    let mut errors = Errors::new();
    errors.name("name", &name);
    errors.check(stages.len() <= MAX_STAGES, "stages", "at most 50 stages");
    for (i, s) in stages.iter().enumerate() {
        errors.name(&format!("stages.{i}"), s);
    }
    errors.finish()?;
    let now = now();
    let tx = begin_write(&app.db).await?;
    let row = pipeline::ActiveModel {
        tenant_id: Set(p.tenant_id),
        environment: Set(p.environment),
        name: Set(name.trim().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&tx)
    .await?;
    let mut created = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        created.push(insert_stage(&tx, p, row.id, s, i as i32).await?);
    }
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "pipeline.create",
            resource_type: "pipeline",
            resource_id: Some(row.id),
            changes: json!({"after": json(&app.ids, &row, &created)}),
        },
    )
    .await?;
    Ok((row, created))
}

/// `updatePipeline`: rename.
pub async fn update(
    app: &App,
    rc: &RequestCtx,
    id: i64,
    name: Option<String>,
) -> AppResult<pipeline::Model> {
    let p = rc.principal()?;
    p.check_write()?;
    let mut errors = Errors::new();
    if let Some(n) = &name {
        errors.name("name", n);
    }
    errors.finish()?;
    let tx = begin_write(&app.db).await?;
    let before = find_locked(&tx, p, id).await?;
    let mut row: pipeline::ActiveModel = before.clone().into();
    if let Some(n) = name {
        row.name = Set(n.trim().to_owned());
    }
    row.updated_at = Set(now());
    let after = row.update(&tx).await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "pipeline.update",
            resource_type: "pipeline",
            resource_id: Some(id),
            changes: audit::diff(&json!({"name": before.name}), &json!({"name": after.name})),
        },
    )
    .await?;
    Ok(after)
}

async fn refuse_if_used<C: ConnectionTrait>(
    db: &C,
    col: lead::Column,
    id: i64,
    what: &str,
) -> AppResult<()> {
    let used = lead::Entity::find().filter(col.eq(id)).count(db).await?;
    if used > 0 {
        return Err(AppError::Conflict(format!(
            "{used} lead(s) are in this {what}; move them to another {what} first"
        )));
    }
    Ok(())
}

/// `deletePipeline` with its stages; refused while leads are in it.
pub async fn delete(app: &App, rc: &RequestCtx, id: i64) -> AppResult<()> {
    let p = rc.principal()?;
    p.check_write()?;
    let tx = begin_write(&app.db).await?;
    let before = find_locked(&tx, p, id).await?;
    refuse_if_used(&tx, lead::Column::PipelineId, id, "pipeline").await?;
    let stages = stages_of(&tx, id).await?;
    stage::Entity::delete_many()
        .filter(stage::Column::PipelineId.eq(id))
        .exec(&tx)
        .await?;
    pipeline::Entity::delete_by_id(id).exec(&tx).await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "pipeline.delete",
            resource_type: "pipeline",
            resource_id: Some(id),
            changes: json!({"before": json(&app.ids, &before, &stages)}),
        },
    )
    .await?;
    Ok(())
}

/// `createStage`: inserted at `position` (0-based), appended by default.
pub async fn create_stage(
    app: &App,
    rc: &RequestCtx,
    pipeline: IdRef,
    name: String,
    position: Option<i64>,
) -> AppResult<stage::Model> {
    let p = rc.principal()?;
    p.check_write()?;
    let mut errors = Errors::new();
    errors.name("name", &name);
    if pipeline.is_err() {
        errors.add("pipelineId", "is not a valid ID");
    }
    if let Some(pos) = position {
        errors.check(pos >= 0, "position", "must be 0 or more");
    }
    errors.finish()?;
    let tx = begin_write(&app.db).await?;
    let Ok(pipeline_id) = pipeline else {
        return Err(AppError::NotFound);
    };
    let pl = find_locked(&tx, p, pipeline_id)
        .await
        .map_err(|_| AppError::field("pipelineId", "not found"))?;
    let mut stages = stages_of(&tx, pl.id).await?;
    if stages.len() >= MAX_STAGES {
        return Err(AppError::field(
            "pipelineId",
            "a pipeline has at most 50 stages",
        ));
    }
    let at = position.map_or(stages.len(), |pos| (pos as usize).min(stages.len()));
    let created = insert_stage(&tx, p, pl.id, &name, at as i32).await?;
    stages.insert(at, created.clone());
    renumber(&tx, &stages).await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "stage.create",
            resource_type: "stage",
            resource_id: Some(created.id),
            changes: json!({"after": stage_json(&app.ids, &created)}),
        },
    )
    .await?;
    Ok(created)
}

/// `updateStage`: rename and/or move to another position.
pub async fn update_stage(
    app: &App,
    rc: &RequestCtx,
    id: i64,
    name: Option<String>,
    position: Option<i64>,
) -> AppResult<stage::Model> {
    let p = rc.principal()?;
    p.check_write()?;
    let mut errors = Errors::new();
    if let Some(n) = &name {
        errors.name("name", n);
    }
    if let Some(pos) = position {
        errors.check(pos >= 0, "position", "must be 0 or more");
    }
    errors.finish()?;
    let tx = begin_write(&app.db).await?;
    let before = find_stage_locked(&tx, p, id).await?;
    let mut stages = stages_of(&tx, before.pipeline_id).await?;
    if let Some(n) = &name {
        let mut row: stage::ActiveModel = before.clone().into();
        row.name = Set(n.trim().to_owned());
        row.updated_at = Set(now());
        let renamed = row.update(&tx).await?;
        if let Some(s) = stages.iter_mut().find(|s| s.id == id) {
            *s = renamed;
        }
    }
    if let Some(pos) = position {
        let from = stages.iter().position(|s| s.id == id).unwrap_or(0);
        let moved = stages.remove(from);
        stages.insert((pos as usize).min(stages.len()), moved);
    }
    let stages = renumber(&tx, &stages).await?;
    let after = stages
        .iter()
        .find(|s| s.id == id)
        .cloned()
        .ok_or(AppError::NotFound)?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "stage.update",
            resource_type: "stage",
            resource_id: Some(id),
            changes: audit::diff(
                &stage_json(&app.ids, &before),
                &stage_json(&app.ids, &after),
            ),
        },
    )
    .await?;
    Ok(after)
}

/// `deleteStage`: refused while leads are in it.
pub async fn delete_stage(app: &App, rc: &RequestCtx, id: i64) -> AppResult<()> {
    let p = rc.principal()?;
    p.check_write()?;
    let tx = begin_write(&app.db).await?;
    let before = find_stage_locked(&tx, p, id).await?;
    refuse_if_used(&tx, lead::Column::StageId, id, "stage").await?;
    stage::Entity::delete_by_id(id).exec(&tx).await?;
    let rest = stages_of(&tx, before.pipeline_id).await?;
    renumber(&tx, &rest).await?;
    audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "stage.delete",
            resource_type: "stage",
            resource_id: Some(id),
            changes: json!({"before": stage_json(&app.ids, &before)}),
        },
    )
    .await?;
    Ok(())
}

/// `reorderStages`: `order` must list each of the pipeline's stages once.
pub async fn reorder_stages(
    app: &App,
    rc: &RequestCtx,
    id: i64,
    order: Vec<IdRef>,
) -> AppResult<Vec<stage::Model>> {
    let p = rc.principal()?;
    p.check_write()?;
    let tx = begin_write(&app.db).await?;
    find_locked(&tx, p, id).await?;
    let stages = stages_of(&tx, id).await?;
    let mut wanted: Vec<i64> = order.iter().filter_map(|r| r.ok()).collect();
    let mut have: Vec<i64> = stages.iter().map(|s| s.id).collect();
    let before: Vec<Value> = stages.iter().map(|s| stage_json(&app.ids, s)).collect();
    let ordered: Vec<stage::Model> = wanted
        .iter()
        .filter_map(|w| stages.iter().find(|s| s.id == *w).cloned())
        .collect();
    wanted.sort_unstable();
    have.sort_unstable();
    if wanted != have || order.len() != have.len() {
        return Err(AppError::field(
            "stageIds",
            "must list each stage of the pipeline exactly once",
        ));
    }
    let after = renumber(&tx, &ordered).await?;
    audit::commit(tx, Actor::of(p), rc, Entry {
        action: "pipeline.reorder_stages",
        resource_type: "pipeline",
        resource_id: Some(id),
        changes: json!({"before": before, "after": after.iter().map(|s| stage_json(&app.ids, s)).collect::<Vec<_>>()}),
    }).await?;
    Ok(after)
}
