//! `/pipelines`: the stages a lead moves through.

use axum::http::Method;

use super::fields::{Field, Rule, Ty, f, req};
use super::route::{Access, Op, Reply, Route, plain};

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
    f("stages", Ty::StrList).with(Rule::Name),
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
            |c| Box::pin(plain::list(c, &LIST)),
        )
        .reply(Reply::List, "Pipeline"),
        route(
            Method::POST,
            "/pipelines",
            "createPipeline",
            "Create a pipeline with its stages",
            |c| Box::pin(plain::create(c, &CREATE)),
        )
        .access(Access::Write)
        .body(CREATE_FIELDS)
        .reply(Reply::Created, "Pipeline"),
        route(
            Method::GET,
            "/pipelines/{id}",
            "getPipeline",
            "Get a pipeline",
            |c| Box::pin(plain::by_id(c, &GET)),
        )
        .reply(Reply::Ok, "Pipeline"),
        route(
            Method::PATCH,
            "/pipelines/{id}",
            "updatePipeline",
            "Rename a pipeline",
            |c| Box::pin(plain::update(c, &UPDATE)),
        )
        .access(Access::Write)
        .body(UPDATE_FIELDS)
        .reply(Reply::Ok, "Pipeline"),
        route(
            Method::DELETE,
            "/pipelines/{id}",
            "deletePipeline",
            "Delete a pipeline (refused while leads are in it)",
            |c| Box::pin(plain::delete(c, &DELETE)),
        )
        .access(Access::Write)
        .reply(Reply::Deleted, "Deleted")
        .conflicts(),
    ]
}
