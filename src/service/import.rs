//! Import jobs (docs/rest.md). A file (CSV or NDJSON) is read as it arrives, a row at
//! a time, into `import_rows`; a background worker then turns the rows into leads in
//! committed chunks, each recording how far it got in the same transaction, so a crash or
//! restart resumes after the last chunk and imports no row twice. The job writes one audit
//! entry and one `import.completed` event.

use std::io::{BufRead, Read};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{Duration, Utc};
use entity::enums::{Channel, EventType, ImportFormat, ImportStatus, OnDuplicate, Role, Scope};
use entity::{import_job, import_row};
use futures::{Stream, StreamExt};
use sea_orm::sea_query::LockBehavior;
use sea_orm::sea_query::LockType;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::auth::principal::{KeyInfo, Principal, Via};
use crate::context::RequestCtx;
use crate::db::{begin_write, one_locked};
use crate::error::{AppError, AppResult, FieldError};
use crate::ids::{Ids, Kind};
use crate::service::audit::{Actor, Entry};
use crate::service::event::{self, NewEvent};
use crate::service::lead::IdRef;
use crate::service::lead::import::{self as rows, RowError};
use crate::state::App;

/// Rows committed together.
const CHUNK: u64 = 1000;
/// Rows stored per statement while a file arrives.
const STORE_BATCH: usize = 500;
/// The longest NDJSON line read as a row.
const MAX_LINE: usize = 1024 * 1024;
/// Errors a job lists at most.
pub const MAX_ERRORS: usize = 1000;
/// How long a worker holds a job between chunks before another may take it up.
const LEASE: Duration = Duration::seconds(60);

/// What to import and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The file's format.
    pub format: ImportFormat,
    /// What to do with a row whose email a lead has.
    pub on_duplicate: OnDuplicate,
    /// The source of rows that name none.
    pub source_id: Option<IdRef>,
    /// Count what would happen; write no lead.
    pub dry_run: bool,
}

/// What the reading thread hands over.
enum Parsed {
    /// The header is usable (always, for NDJSON), or why not.
    Header(Result<(), Vec<FieldError>>),
    /// Rows: number and JSON text.
    Rows(Vec<(i64, String)>),
}

/// Receives a file for an import job: reads it as it arrives (never whole), stores its rows
/// and queues the job; answers the job.
pub async fn receive<S, E>(
    app: &App,
    rc: &RequestCtx,
    opts: Options,
    mut body: S,
) -> AppResult<import_job::Model>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    let p = rc.principal()?;
    p.check_write()?;
    let source_id = match opts.source_id {
        None => None,
        Some(Ok(id)) => {
            if crate::service::lead::find_source(&app.db, p, id)
                .await?
                .is_none()
            {
                return Err(AppError::BadQuery(vec![FieldError::new(
                    "sourceId",
                    "not found",
                )]));
            }
            Some(id)
        }
        Some(Err(())) => {
            return Err(AppError::BadQuery(vec![FieldError::new(
                "sourceId",
                "is not a valid ID",
            )]));
        }
    };
    let (bytes_tx, bytes_rx) = mpsc::channel::<Bytes>(8);
    let (rows_tx, mut rows_rx) = mpsc::channel::<Parsed>(4);
    let format = opts.format;
    let reader = tokio::task::spawn_blocking(move || {
        let input = ChannelReader {
            rx: bytes_rx,
            current: Bytes::new(),
        };
        match format {
            ImportFormat::Csv => read_csv(input, &rows_tx),
            ImportFormat::Ndjson => read_ndjson(input, &rows_tx),
        }
    });
    let limit = app.config.max_import_bytes;
    let feed = async move {
        let mut received = 0usize;
        while let Some(frame) = body.next().await {
            let frame =
                frame.map_err(|e| AppError::BadRequest(format!("the upload broke off: {e}")))?;
            received += frame.len();
            if received > limit {
                return Err(AppError::PayloadTooLarge(limit));
            }
            if bytes_tx.send(frame).await.is_err() {
                // The reader stopped (a bad header): nothing more is needed.
                break;
            }
        }
        Ok(())
    };
    let store = async {
        match rows_rx.recv().await {
            Some(Parsed::Header(Ok(()))) => {}
            Some(Parsed::Header(Err(fields))) => return Err(AppError::Validation(fields)),
            _ => return Err(AppError::internal("the import reader stopped early")),
        }
        let job = import_job::ActiveModel {
            tenant_id: Set(p.tenant_id),
            environment: Set(p.environment),
            actor_user_id: Set(Some(p.actor_user_id).filter(|id| *id != 0)),
            on_behalf_of_user_id: Set(p.on_behalf_of()),
            api_key_id: Set(p.key().map(|k| k.id)),
            format: Set(opts.format),
            on_duplicate: Set(opts.on_duplicate),
            source_id: Set(source_id),
            dry_run: Set(opts.dry_run),
            status: Set(ImportStatus::Queued),
            ready: Set(false),
            total: Set(0),
            processed: Set(0),
            created: Set(0),
            updated: Set(0),
            skipped: Set(0),
            failed: Set(0),
            errors: Set(json!([])),
            lease_until: Set(None),
            created_at: Set(crate::service::clock::now()),
            started_at: Set(None),
            finished_at: Set(None),
            ..Default::default()
        }
        .insert(&app.db)
        .await?;
        let mut total = 0i64;
        let stored: AppResult<()> = async {
            while let Some(Parsed::Rows(batch)) = rows_rx.recv().await {
                total += batch.len() as i64;
                let models = batch
                    .into_iter()
                    .map(|(row_no, data)| import_row::ActiveModel {
                        job_id: Set(job.id),
                        row_no: Set(row_no),
                        data: Set(data),
                    });
                import_row::Entity::insert_many(models)
                    .exec_without_returning(&app.db)
                    .await?;
            }
            Ok(())
        }
        .await;
        Ok((job, total, stored))
    };
    let (fed, stored) = tokio::join!(feed, store);
    let _ = reader.await;
    // A broken upload explains a header the reader found missing.
    let (job, total, rows_stored) = match (fed, stored) {
        (Err(e), Err(_)) | (Ok(()), Err(e)) => return Err(e),
        (fed, Ok((job, total, rows_stored))) => (job, total, fed.and(rows_stored)),
    };
    if let Err(e) = rows_stored {
        discard(&app.db, job.id).await?;
        return Err(e);
    }
    let mut ready: import_job::ActiveModel = job.into();
    ready.total = Set(total);
    ready.ready = Set(true);
    let job = ready.update(&app.db).await?;
    app.imports_due.notify_one();
    Ok(job)
}

/// Deletes a job that never became ready, with its rows.
async fn discard(db: &DatabaseConnection, id: i64) -> Result<(), sea_orm::DbErr> {
    import_row::Entity::delete_many()
        .filter(import_row::Column::JobId.eq(id))
        .exec(db)
        .await?;
    import_job::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

/// A blocking reader over the chunks of a body as they arrive.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Sends rows in batches; `false` once nobody listens.
struct Batcher<'a> {
    out: &'a mpsc::Sender<Parsed>,
    rows: Vec<(i64, String)>,
}

impl Batcher<'_> {
    fn push(&mut self, row: i64, text: String) -> bool {
        self.rows.push((row, text));
        self.rows.len() < STORE_BATCH || self.flush()
    }

    fn flush(&mut self) -> bool {
        if self.rows.is_empty() {
            return true;
        }
        let rows = std::mem::take(&mut self.rows);
        self.out.blocking_send(Parsed::Rows(rows)).is_ok()
    }
}

fn unreadable(why: impl std::fmt::Display) -> String {
    json!({"$error": why.to_string()}).to_string()
}

/// CSV: a header row of REST field names (any order, `customFields.<key>` columns), a UTF-8
/// byte-order mark allowed, quoted cells may hold newlines.
fn read_csv(input: ChannelReader, out: &mpsc::Sender<Parsed>) {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            let _ = out.blocking_send(Parsed::Header(Err(vec![FieldError::new(
                "header",
                format!("cannot be read: {e}"),
            )])));
            return;
        }
    };
    let columns: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 {
                h.trim_start_matches('\u{feff}')
            } else {
                h
            };
            h.trim().to_owned()
        })
        .collect();
    let mut problems = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        if !rows::known_column(c) {
            problems.push(FieldError::new(
                "header",
                format!("has an unknown column \"{c}\""),
            ));
        } else if columns[..i].contains(c) {
            problems.push(FieldError::new("header", format!("names \"{c}\" twice")));
        }
    }
    if !columns.iter().any(|c| c == "email") {
        problems.push(FieldError::new("header", "has no email column"));
    }
    if !problems.is_empty() {
        let _ = out.blocking_send(Parsed::Header(Err(problems)));
        return;
    }
    if out.blocking_send(Parsed::Header(Ok(()))).is_err() {
        return;
    }
    let mut batch = Batcher {
        out,
        rows: Vec::with_capacity(STORE_BATCH),
    };
    let mut record = csv::StringRecord::new();
    let mut row = 0i64;
    loop {
        let text = match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) if record.len() == columns.len() => {
                Value::Object(rows::csv_row(&columns, &record)).to_string()
            }
            Ok(true) => unreadable(format!(
                "has {} cells; the header has {}",
                record.len(),
                columns.len()
            )),
            // Invalid UTF-8 spoils this row only.
            Err(e) if matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) => unreadable(e),
            Err(e) => {
                row += 1;
                let _ = batch.push(row, unreadable(e));
                break;
            }
        };
        row += 1;
        if !batch.push(row, text) {
            return;
        }
    }
    batch.flush();
}

/// NDJSON: one JSON object per line; blank lines are not rows.
fn read_ndjson(input: ChannelReader, out: &mpsc::Sender<Parsed>) {
    if out.blocking_send(Parsed::Header(Ok(()))).is_err() {
        return;
    }
    let mut reader = std::io::BufReader::with_capacity(64 * 1024, input);
    let mut batch = Batcher {
        out,
        rows: Vec::with_capacity(STORE_BATCH),
    };
    let mut line = Vec::new();
    let mut row = 0i64;
    loop {
        line.clear();
        let n = match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(n) => n,
            Err(e) => {
                row += 1;
                let _ = batch.push(row, unreadable(e));
                break;
            }
        };
        if n == 0 {
            break;
        }
        let text = if line.len() > MAX_LINE && !line.ends_with(b"\n") {
            // Too long to be a lead: skipped to its end.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match (&mut reader).take(64 * 1024).read_until(b'\n', &mut rest) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if rest.ends_with(b"\n") => break,
                    Ok(_) => {}
                }
            }
            unreadable(format!("is longer than {MAX_LINE} bytes"))
        } else {
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Value>(trimmed) {
                Ok(Value::Object(m)) => Value::Object(m).to_string(),
                Ok(_) => unreadable("is not a JSON object"),
                Err(e) => unreadable(format!("is not JSON: {e}")),
            }
        };
        row += 1;
        if !batch.push(row, text) {
            return;
        }
    }
    batch.flush();
}

/// Import jobs of the caller's tenant and environment, newest first (at most 100).
pub async fn list(app: &App, rc: &RequestCtx) -> AppResult<Vec<import_job::Model>> {
    let p = rc.principal()?;
    Ok(import_job::Entity::find()
        .filter(import_job::Column::TenantId.eq(p.tenant_id))
        .filter(import_job::Column::Environment.eq(p.environment))
        .filter(import_job::Column::Ready.eq(true))
        .order_by_desc(import_job::Column::Id)
        .limit(100)
        .all(&app.db)
        .await?)
}

/// One import job of the caller's tenant and environment.
pub async fn get(app: &App, rc: &RequestCtx, id: i64) -> AppResult<import_job::Model> {
    scoped(rc.principal()?, id)
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound)
}

/// Job `id` if the caller's tenant and environment received it whole.
fn scoped(p: &Principal, id: i64) -> sea_orm::Select<import_job::Entity> {
    import_job::Entity::find_by_id(id)
        .filter(import_job::Column::TenantId.eq(p.tenant_id))
        .filter(import_job::Column::Environment.eq(p.environment))
        .filter(import_job::Column::Ready.eq(true))
}

/// Cancels a queued or running job: the chunks already committed stay, the rest is dropped.
/// A finished job is `409 CONFLICT`.
pub async fn cancel(app: &App, rc: &RequestCtx, id: i64) -> AppResult<import_job::Model> {
    let p = rc.principal()?;
    p.check_write()?;
    let tx = begin_write(&app.db).await?;
    let job = one_locked(&tx, scoped(p, id))
        .await?
        .ok_or(AppError::NotFound)?;
    if !matches!(job.status, ImportStatus::Queued | ImportStatus::Running) {
        return Err(AppError::Conflict(format!(
            "the import is already {}",
            job.status.as_str()
        )));
    }
    let mut row: import_job::ActiveModel = job.into();
    row.status = Set(ImportStatus::Cancelled);
    row.finished_at = Set(Some(crate::service::clock::now()));
    row.lease_until = Set(None);
    let job = row.update(&tx).await?;
    import_row::Entity::delete_many()
        .filter(import_row::Column::JobId.eq(id))
        .exec(&tx)
        .await?;
    crate::service::audit::commit(
        tx,
        Actor::of(p),
        rc,
        Entry {
            action: "import.cancel",
            resource_type: "import",
            resource_id: Some(id),
            changes: json!({}),
        },
    )
    .await?;
    Ok(job)
}

/// The public JSON of a job (REST body, event data).
pub fn json(ids: &Ids, j: &import_job::Model) -> Value {
    json!({
        "id": ids.encode(Kind::ImportJob, j.id),
        "status": j.status.as_str(),
        "format": j.format.as_str(),
        "onDuplicate": j.on_duplicate.as_str(),
        "sourceId": j.source_id.map(|id| ids.encode(Kind::Source, id)),
        "dryRun": j.dry_run,
        "total": j.total,
        "processed": j.processed,
        "created": j.created,
        "updated": j.updated,
        "skipped": j.skipped,
        "failed": j.failed,
        "errors": j.errors,
        "createdAt": crate::service::clock::ts(j.created_at),
        "startedAt": j.started_at.map(crate::service::clock::ts),
        "finishedAt": j.finished_at.map(crate::service::clock::ts),
    })
}

/// The import worker: takes up queued jobs (and jobs whose worker died) one at a time until
/// `stop`.
pub async fn run(app: Arc<App>, stop: tokio_util::sync::CancellationToken) {
    loop {
        match claim(&app.db, None).await {
            Ok(Some(id)) => {
                if let Err(e) = process(&app, id, &stop).await {
                    tracing::warn!(error = %e.message(), job = id, "import chunk failed; will retry");
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not look for import jobs"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = app.imports_due.notified() => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

/// Takes the oldest job (or job `only`) no live worker holds; `SKIP LOCKED` lets several
/// instances look at once.
async fn claim(db: &DatabaseConnection, only: Option<i64>) -> Result<Option<i64>, sea_orm::DbErr> {
    let tx = begin_write(db).await?;
    let now = Utc::now();
    let mut find = import_job::Entity::find();
    if let Some(id) = only {
        find = find.filter(import_job::Column::Id.eq(id));
    }
    let job = find
        .filter(import_job::Column::Ready.eq(true))
        .filter(import_job::Column::Status.is_in([ImportStatus::Queued, ImportStatus::Running]))
        .filter(
            sea_orm::Condition::any()
                .add(import_job::Column::LeaseUntil.is_null())
                .add(import_job::Column::LeaseUntil.lt(now)),
        )
        .order_by_asc(import_job::Column::Id)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .one(&tx)
        .await?;
    let Some(job) = job else {
        return Ok(None);
    };
    let id = job.id;
    let started = job.started_at;
    let mut row: import_job::ActiveModel = job.into();
    row.status = Set(ImportStatus::Running);
    row.lease_until = Set(Some(now + LEASE));
    row.started_at = Set(Some(started.unwrap_or_else(crate::service::clock::now)));
    row.update(&tx).await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// Processes job `id` here and now (the CLI), unless a worker already holds it; either way
/// `progress` sees the job after every chunk until it is finished.
pub async fn run_now(
    app: &App,
    id: i64,
    mut progress: impl FnMut(&import_job::Model),
) -> AppResult<import_job::Model> {
    let stop = tokio_util::sync::CancellationToken::new();
    let mine = claim(&app.db, Some(id)).await?.is_some();
    let work = async {
        if mine {
            process(app, id, &stop).await
        } else {
            Ok(())
        }
    };
    let watch = async {
        loop {
            let job = import_job::Entity::find_by_id(id)
                .one(&app.db)
                .await?
                .ok_or(AppError::NotFound)?;
            progress(&job);
            if !matches!(job.status, ImportStatus::Queued | ImportStatus::Running) {
                return Ok::<_, AppError>(job);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    let (worked, job) = tokio::join!(work, watch);
    worked?;
    job
}

/// The job's caller, as its rows are checked (its tenant and environment).
fn principal(j: &import_job::Model) -> Principal {
    let actor = j.actor_user_id.unwrap_or(0);
    Principal {
        tenant_id: j.tenant_id,
        plan: entity::enums::Plan::Enterprise,
        environment: j.environment,
        user_id: j.on_behalf_of_user_id.unwrap_or(actor),
        role: Role::Member,
        actor_user_id: actor,
        via: match j.api_key_id {
            Some(id) => Via::ApiKey(KeyInfo {
                id,
                scope: Scope::Full,
            }),
            None => Via::Session,
        },
    }
}

/// Processes job `id` a committed chunk at a time until it is done or cancelled; `stop`
/// ends it between chunks (the next start resumes it).
pub async fn process(
    app: &App,
    id: i64,
    stop: &tokio_util::sync::CancellationToken,
) -> AppResult<()> {
    let mut source: Option<Option<(i64, Channel)>> = None;
    let mut chunks = 0u64;
    while !stop.is_cancelled() {
        let tx = begin_write(&app.db).await?;
        let Some(job) = one_locked(&tx, import_job::Entity::find_by_id(id)).await? else {
            return Ok(());
        };
        if job.status != ImportStatus::Running {
            return Ok(());
        }
        let source = match source {
            Some(s) => s,
            None => {
                let found = match job.source_id {
                    Some(sid) => entity::source::Entity::find_by_id(sid)
                        .one(&tx)
                        .await?
                        .map(|s| (s.id, s.channel)),
                    None => None,
                };
                source = Some(found);
                found
            }
        };
        let batch: Vec<(i64, String)> = import_row::Entity::find()
            .select_only()
            .column(import_row::Column::RowNo)
            .column(import_row::Column::Data)
            .filter(import_row::Column::JobId.eq(id))
            .filter(import_row::Column::RowNo.gt(job.processed))
            .order_by_asc(import_row::Column::RowNo)
            .limit(CHUNK)
            .into_tuple()
            .all(&tx)
            .await?;
        let Some(&(last, _)) = batch.last() else {
            return finish(app, tx, job).await;
        };
        let p = principal(&job);
        let outcome = rows::apply(&tx, &app.ids, &p, &job, source, batch).await?;
        let mut errors: Vec<Value> = job.errors.as_array().cloned().unwrap_or_default();
        let room = MAX_ERRORS.saturating_sub(errors.len());
        errors.extend(outcome.errors.iter().take(room).map(error_json));
        let mut row: import_job::ActiveModel = job.clone().into();
        row.processed = Set(last);
        row.created = Set(job.created + outcome.created);
        row.updated = Set(job.updated + outcome.updated);
        row.skipped = Set(job.skipped + outcome.skipped);
        row.failed = Set(job.failed + outcome.failed);
        row.errors = Set(Value::Array(errors));
        row.lease_until = Set(Some(Utc::now() + LEASE));
        row.update(&tx).await?;
        tx.commit().await?;
        chunks += 1;
        if chunks % ANALYZE_EVERY == 1 {
            refresh_statistics(&app.db).await;
        }
    }
    Ok(())
}

/// Chunks between two refreshes of PostgreSQL's statistics during an import.
const ANALYZE_EVERY: u64 = 25;

/// On PostgreSQL, brings the planner's statistics of the tables an import fills up to date:
/// autovacuum comes too late for a bulk load, and a planner that still takes the tenant's
/// leads for a handful tests every row against each chunk's emails (an import ran ten times
/// slower without it).
async fn refresh_statistics(db: &DatabaseConnection) {
    use sea_orm::ConnectionTrait;
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return;
    }
    if let Err(e) = db.execute_unprepared("ANALYZE leads, lead_tags").await {
        tracing::warn!(error = %e, "could not refresh statistics during an import");
    }
}

fn error_json(e: &RowError) -> Value {
    json!({"row": e.row, "field": e.field, "code": e.code, "message": e.message})
}

/// Completes a job whose rows are all done: its audit entry and `import.completed` event in
/// the same transaction; its stored rows are dropped.
async fn finish(
    app: &App,
    tx: sea_orm::DatabaseTransaction,
    job: import_job::Model,
) -> AppResult<()> {
    let mut row: import_job::ActiveModel = job.clone().into();
    row.status = Set(ImportStatus::Completed);
    row.finished_at = Set(Some(crate::service::clock::now()));
    row.lease_until = Set(None);
    let job = row.update(&tx).await?;
    import_row::Entity::delete_many()
        .filter(import_row::Column::JobId.eq(job.id))
        .exec(&tx)
        .await?;
    let p = principal(&job);
    let rc = RequestCtx {
        principal: Some(p.clone()),
        ip: None,
        request_id: format!("import-{}", app.ids.encode(Kind::ImportJob, job.id)),
        credential_checks: Default::default(),
    };
    let data = json(&app.ids, &job);
    event::commit(
        &app.outbox,
        tx,
        Actor::of(&p),
        &rc,
        Entry {
            action: "import.complete",
            resource_type: "import",
            resource_id: Some(job.id),
            changes: json!({"after": data.clone()}),
        },
        vec![NewEvent {
            event_type: EventType::ImportCompleted,
            resource_type: "import",
            resource_id: Some(job.id),
            data,
            changes: None,
        }],
    )
    .await?;
    Ok(())
}
