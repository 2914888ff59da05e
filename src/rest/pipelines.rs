//! `/pipelines`: the stages a lead moves through.

use axum::http::Method;
use axum::response::Response;
use serde_json::Value;

use super::envelope;
use super::fields::{Field, Rule, Ty, f, req};
use super::route::{Access, Call, Op, Reply, Route, vars};
use crate::error::AppError;

macro_rules! pipeline {
    () => {
        "id name stages { id name position } createdAt updatedAt"
    };
}

static LIST: Op = Op::new(concat!("query { r: pipelines { ", pipeline!(), " } }"));
static CREATE: Op = Op::new(concat!(
    "mutation($input: CreatePipelineInput!) { r: createPipeline(input: $input) { ",
    pipeline!(),
    " } }"
));
static GET: Op = Op::new(concat!(
    "query($id: ID!) { r: pipeline(id: $id) { ",
    pipeline!(),
    " } }"
));
static UPDATE: Op = Op::new(concat!(
    "mutation($id: ID!, $input: UpdatePipelineInput!) { r: updatePipeline(id: $id, input: $input) { ",
    pipeline!(),
    " } }"
));
static DELETE: Op = Op::new("mutation($id: ID!) { r: deletePipeline(id: $id) }");

/// `POST /pipelines`.
const CREATE_FIELDS: &[Field] = &[
    req("name", Ty::Str).with(Rule::Name),
    f("stages", Ty::StrList),
];
/// `PATCH /pipelines/{id}`.
const UPDATE_FIELDS: &[Field] = &[f("name", Ty::Str).with(Rule::Name)];

/// The routes.
pub fn routes() -> Vec<Route> {
    let route = |method, path, id, summary, handler| {
        Route::new("pipelines", method, path, id, summary, handler)
    };
    vec![
        route(
            Method::GET,
            "/pipelines",
            "listPipelines",
            "List pipelines",
            |c| Box::pin(list(c)),
        )
        .reply(Reply::List, "Pipeline"),
        route(
            Method::POST,
            "/pipelines",
            "createPipeline",
            "Create a pipeline with its stages",
            |c| Box::pin(create(c)),
        )
        .access(Access::Write)
        .body(CREATE_FIELDS)
        .reply(Reply::Created, "Pipeline"),
        route(
            Method::GET,
            "/pipelines/{id}",
            "getPipeline",
            "Get a pipeline",
            |c| Box::pin(get(c)),
        )
        .reply(Reply::Ok, "Pipeline"),
        route(
            Method::PATCH,
            "/pipelines/{id}",
            "updatePipeline",
            "Rename a pipeline",
            |c| Box::pin(update(c)),
        )
        .access(Access::Write)
        .body(UPDATE_FIELDS)
        .reply(Reply::Ok, "Pipeline"),
        route(
            Method::DELETE,
            "/pipelines/{id}",
            "deletePipeline",
            "Delete a pipeline (refused while leads are in it)",
            |c| Box::pin(delete(c)),
        )
        .access(Access::Write)
        .reply(Reply::Deleted, "Deleted")
        .conflicts(),
    ]
}

async fn list(c: Call) -> Result<Response, AppError> {
    Ok(envelope::all(c.run(&LIST, Default::default()).await?))
}

async fn create(mut c: Call) -> Result<Response, AppError> {
    let input = c.input().await?;
    let data = c
        .run(&CREATE, vars([("input", Value::Object(input))]))
        .await?;
    Ok(envelope::created(data))
}

async fn get(c: Call) -> Result<Response, AppError> {
    Ok(envelope::object(c.run(&GET, vars([("id", c.id())])).await?))
}

async fn update(mut c: Call) -> Result<Response, AppError> {
    let input = c.input().await?;
    let vars = vars([("id", c.id()), ("input", Value::Object(input))]);
    Ok(envelope::object(c.run(&UPDATE, vars).await?))
}

async fn delete(c: Call) -> Result<Response, AppError> {
    Ok(envelope::deleted(
        c.run(&DELETE, vars([("id", c.id())])).await?,
    ))
}
