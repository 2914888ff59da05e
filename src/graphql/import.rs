//! Imports: `importLeads(file: Upload!, …)` (the GraphQL multipart request specification),
//! `importJob`, `importJobs`, `cancelImport`.

use crate::graphql::time::DateTime;
use async_graphql::{Context, ID, Object, Result, SimpleObject, Upload};
use entity::enums::{ImportFormat, ImportStatus, OnDuplicate};
use entity::import_job;

use super::guard::Need;
use super::{app, rc};
use crate::ids::Kind;
use crate::service::import::{self, Options};

/// An import job.
pub struct ImportJob(pub import_job::Model);

/// A problem with one row of an import.
#[derive(SimpleObject)]
pub struct ImportRowError {
    /// 1 for the first row after the header.
    pub row: i64,
    /// The field, or empty for the row as a whole.
    pub field: String,
    /// `VALIDATION_FAILED`, `AMBIGUOUS_MATCH`.
    pub code: String,
    /// What is wrong.
    pub message: String,
}

#[Object]
impl ImportJob {
    /// Opaque ID.
    async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::ImportJob, self.0.id)
    }
    /// Where it stands.
    async fn status(&self) -> ImportStatus {
        self.0.status
    }
    /// The file's format.
    async fn format(&self) -> ImportFormat {
        self.0.format
    }
    /// What a row whose email a lead has does.
    async fn on_duplicate(&self) -> OnDuplicate {
        self.0.on_duplicate
    }
    /// The source of rows that name none.
    async fn source_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        self.0
            .source_id
            .map(|id| super::encode(ctx, Kind::Source, id))
            .transpose()
    }
    /// Whether it only counts.
    async fn dry_run(&self) -> bool {
        self.0.dry_run
    }
    /// Rows in the file.
    async fn total(&self) -> i64 {
        self.0.total
    }
    /// Rows done (in committed chunks).
    async fn processed(&self) -> i64 {
        self.0.processed
    }
    /// Leads created.
    async fn created(&self) -> i64 {
        self.0.created
    }
    /// Leads updated.
    async fn updated(&self) -> i64 {
        self.0.updated
    }
    /// Rows skipped (their email had a lead).
    async fn skipped(&self) -> i64 {
        self.0.skipped
    }
    /// Rows refused.
    async fn failed(&self) -> i64 {
        self.0.failed
    }
    /// The refused rows' problems (the first 1000).
    async fn errors(&self) -> Vec<ImportRowError> {
        let list = self.0.errors.as_array().cloned().unwrap_or_default();
        list.iter()
            .map(|e| ImportRowError {
                row: e["row"].as_i64().unwrap_or(0),
                field: e["field"].as_str().unwrap_or("").to_owned(),
                code: e["code"].as_str().unwrap_or("").to_owned(),
                message: e["message"].as_str().unwrap_or("").to_owned(),
            })
            .collect()
    }
    /// When the file was received.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// When a worker first took it up.
    async fn started_at(&self) -> Option<DateTime> {
        self.0.started_at.map(DateTime)
    }
    /// When it completed or was cancelled.
    async fn finished_at(&self) -> Option<DateTime> {
        self.0.finished_at.map(DateTime)
    }
}

/// Import queries.
#[derive(Default)]
pub struct ImportQuery;

#[Object]
impl ImportQuery {
    /// An import job of the caller's tenant and environment.
    #[graphql(guard = "Need::Auth")]
    async fn import_job(&self, ctx: &Context<'_>, id: ID) -> Result<ImportJob> {
        let id = super::decode_arg(ctx, Kind::ImportJob, &id)?;
        Ok(ImportJob(import::get(app(ctx)?, rc(ctx)?, id).await?))
    }

    /// The caller's import jobs, newest first (the latest 100).
    #[graphql(guard = "Need::Auth")]
    async fn import_jobs(&self, ctx: &Context<'_>) -> Result<Vec<ImportJob>> {
        let jobs = import::list(app(ctx)?, rc(ctx)?).await?;
        Ok(jobs.into_iter().map(ImportJob).collect())
    }
}

/// Import mutations.
#[derive(Default)]
pub struct ImportMutation;

#[Object]
impl ImportMutation {
    /// Imports leads from an uploaded CSV (`text/csv`, or a `.csv` name) or NDJSON file in
    /// the background; answers the queued job.
    #[graphql(guard = "Need::Write")]
    async fn import_leads(
        &self,
        ctx: &Context<'_>,
        file: Upload,
        #[graphql(default_with = "Some(OnDuplicate::Skip)")] on_duplicate: Option<OnDuplicate>,
        source_id: Option<ID>,
        #[graphql(default_with = "Some(false)")] dry_run: Option<bool>,
    ) -> Result<ImportJob> {
        let app = app(ctx)?;
        let upload = file.value(ctx)?;
        let ndjson = upload
            .content_type
            .as_deref()
            .is_some_and(|t| t.contains("ndjson") || t.contains("jsonl"))
            || [".ndjson", ".jsonl"]
                .iter()
                .any(|ext| upload.filename.to_ascii_lowercase().ends_with(ext));
        let opts = Options {
            format: if ndjson {
                ImportFormat::Ndjson
            } else {
                ImportFormat::Csv
            },
            on_duplicate: on_duplicate.unwrap_or(OnDuplicate::Skip),
            source_id: source_id.map(|id| app.ids.decode(Kind::Source, id.as_str()).ok_or(())),
            dry_run: dry_run.unwrap_or(false),
        };
        // The upload was spooled to a temporary file; it is read from there as a stream.
        let file = tokio::fs::File::from_std(upload.content);
        let body = tokio_util::io::ReaderStream::new(file);
        Ok(ImportJob(import::receive(app, rc(ctx)?, opts, body).await?))
    }

    /// Cancels a queued or running import (committed chunks stay).
    #[graphql(guard = "Need::Write")]
    async fn cancel_import(&self, ctx: &Context<'_>, id: ID) -> Result<ImportJob> {
        let id = super::decode_arg(ctx, Kind::ImportJob, &id)?;
        Ok(ImportJob(import::cancel(app(ctx)?, rc(ctx)?, id).await?))
    }
}
