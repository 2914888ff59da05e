//! `/imports`: receive a file of leads (CSV or NDJSON) as a background job, list, get and
//! cancel jobs. These routes call the import service directly: a file is no GraphQL value.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use entity::enums::{ImportFormat, OnDuplicate};
use serde_json::Value;

use super::envelope;
use super::fields::Ty;
use super::route::{Access, Call, Param, Reply, Route};
use crate::error::{AppError, FieldError};
use crate::ids::Kind;
use crate::service::import::{self, Options};

/// The routes.
pub fn routes() -> Vec<Route> {
    let route = |method, path, id, summary, handler| {
        Route::new("imports", method, path, id, summary, handler)
    };
    vec![
        route(
            Method::POST,
            "/imports",
            "importLeads",
            "Import leads from a CSV or NDJSON body, in the background (202)",
            |c| Box::pin(create(c)),
        )
        .access(Access::Write)
        .query(PARAMS)
        .upload()
        .reply(Reply::Accepted, "ImportJob"),
        route(
            Method::GET,
            "/imports",
            "listImports",
            "List import jobs",
            |c| Box::pin(list(c)),
        )
        .reply(Reply::List, "ImportJob"),
        route(
            Method::GET,
            "/imports/{id}",
            "getImport",
            "Get an import job",
            |c| Box::pin(get(c)),
        )
        .reply(Reply::Ok, "ImportJob"),
        route(
            Method::DELETE,
            "/imports/{id}",
            "cancelImport",
            "Cancel an import job (committed chunks stay)",
            |c| Box::pin(cancel(c)),
        )
        .access(Access::Write)
        .conflicts()
        .reply(Reply::Ok, "ImportJob"),
    ]
}

const PARAMS: &[Param] = &[
    Param {
        name: "onDuplicate",
        ty: Ty::Enum(OnDuplicate::NAMES),
        doc: "A row whose email a lead has: skip (default), update it, or create another",
    },
    Param {
        name: "sourceId",
        ty: Ty::Id,
        doc: "The source of rows that name none",
    },
    Param {
        name: "dryRun",
        ty: Ty::Enum(&["true", "false"]),
        doc: "Count what would happen and write no lead",
    },
];

async fn create(c: Call) -> Result<Response, AppError> {
    let format = match crate::http::media_type(c.headers()).as_str() {
        "text/csv" => ImportFormat::Csv,
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => ImportFormat::Ndjson,
        _ => {
            return Err(AppError::BadRequest(
                "Content-Type must be text/csv or application/x-ndjson".into(),
            ));
        }
    };
    let param = |name: &str| c.params.get(name).and_then(Value::as_str);
    let on_duplicate = match param("onDuplicate") {
        Some(v) => OnDuplicate::parse(v).ok_or_else(|| {
            AppError::BadQuery(vec![FieldError::new("onDuplicate", "is not a valid value")])
        })?,
        None => OnDuplicate::Skip,
    };
    let opts = Options {
        format,
        on_duplicate,
        source_id: param("sourceId").map(|id| c.state.ids.decode(Kind::Source, id).ok_or(())),
        dry_run: param("dryRun") == Some("true"),
    };
    let rc = c.request_ctx();
    let body = c.take_body().into_data_stream();
    let job = import::receive(&c.state.app, &rc, opts, body).await?;
    Ok(envelope::ok(
        StatusCode::ACCEPTED,
        import::json(&c.state.ids, &job),
        None,
    ))
}

fn id(c: &Call) -> Result<i64, AppError> {
    c.id()
        .as_str()
        .and_then(|id| c.state.ids.decode(Kind::ImportJob, id))
        .ok_or(AppError::NotFound)
}

async fn list(c: Call) -> Result<Response, AppError> {
    let jobs = import::list(&c.state.app, &c.request_ctx()).await?;
    let items = jobs.iter().map(|j| import::json(&c.state.ids, j)).collect();
    Ok(envelope::list(items, Value::Null, Value::from(100)))
}

async fn get(c: Call) -> Result<Response, AppError> {
    let job = import::get(&c.state.app, &c.request_ctx(), id(&c)?).await?;
    Ok(envelope::ok(
        StatusCode::OK,
        import::json(&c.state.ids, &job),
        None,
    ))
}

async fn cancel(c: Call) -> Result<Response, AppError> {
    let job = import::cancel(&c.state.app, &c.request_ctx(), id(&c)?).await?;
    Ok(envelope::ok(
        StatusCode::OK,
        import::json(&c.state.ids, &job),
        None,
    ))
}
