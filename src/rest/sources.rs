//! `/sources`: where leads come from.

use axum::http::Method;
use entity::enums::Channel;

use super::fields::{Field, Rule, Ty, f, null, req};
use super::route::{Access, Op, Reply, Route, plain};

macro_rules! source {
    () => {
        "id name channel description hasWebhook leadCount createdAt updatedAt"
    };
}

static LIST: Op = Op::new(concat!("query { r: sources { ", source!(), " } }"));
static CREATE: Op = Op::new(concat!(
    "mutation($input: CreateSourceInput!) { r: createSource(input: $input) { ",
    source!(),
    " } }"
));
static GET: Op = Op::new(concat!(
    "query($id: ID!) { r: source(id: $id) { ",
    source!(),
    " } }"
));
static UPDATE: Op = Op::new(concat!(
    "mutation($id: ID!, $input: UpdateSourceInput!) { r: updateSource(id: $id, input: $input) { ",
    source!(),
    " } }"
));
static DELETE: Op = Op::new("mutation($id: ID!) { r: deleteSource(id: $id) }");

/// `POST /sources`.
const CREATE_FIELDS: &[Field] = &[
    req("name", Ty::Str).with(Rule::Name),
    req("channel", Ty::Enum(Channel::NAMES)),
    f("description", Ty::Str),
];
/// `PATCH /sources/{id}`.
const UPDATE_FIELDS: &[Field] = &[
    f("name", Ty::Str).with(Rule::Name),
    f("channel", Ty::Enum(Channel::NAMES)),
    null("description", Ty::Str),
];

/// The routes.
pub fn routes() -> Vec<Route> {
    let route = |method, path, id, summary, handler| {
        Route::new("sources", method, path, id, summary, handler)
    };
    vec![
        route(
            Method::GET,
            "/sources",
            "listSources",
            "List sources",
            |c| Box::pin(plain::list(c, &LIST)),
        )
        .reply(Reply::List, "Source"),
        route(
            Method::POST,
            "/sources",
            "createSource",
            "Create a source",
            |c| Box::pin(plain::create(c, &CREATE)),
        )
        .access(Access::Write)
        .body(CREATE_FIELDS)
        .reply(Reply::Created, "Source"),
        route(
            Method::GET,
            "/sources/{id}",
            "getSource",
            "Get a source",
            |c| Box::pin(plain::by_id(c, &GET)),
        )
        .reply(Reply::Ok, "Source"),
        route(
            Method::PATCH,
            "/sources/{id}",
            "updateSource",
            "Update a source",
            |c| Box::pin(plain::update(c, &UPDATE)),
        )
        .access(Access::Write)
        .body(UPDATE_FIELDS)
        .reply(Reply::Ok, "Source"),
        route(
            Method::DELETE,
            "/sources/{id}",
            "deleteSource",
            "Delete a source (refused while leads use it)",
            |c| Box::pin(plain::delete(c, &DELETE)),
        )
        .access(Access::Write)
        .reply(Reply::Deleted, "Deleted")
        .conflicts(),
    ]
}
