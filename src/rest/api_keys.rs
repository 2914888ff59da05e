//! `/api-keys`: a user's keys, managed from a session only.

use axum::http::Method;
use axum::response::Response;
use entity::enums::{Environment, Scope};
use serde_json::{Map, Value};

use super::envelope;
use super::fields::{Field, Rule, Ty, f, null, req};
use super::route::{Access, Call, Op, Reply, Route, plain, vars};
use crate::error::AppError;

macro_rules! key {
    () => {
        "id label name prefix scope environment status active createdAt expiresAt lastUsedAt usageCount"
    };
}

static LIST: Op = Op::new(concat!("query { r: apiKeys { ", key!(), " } }"));
static CREATE: Op = Op::new(concat!(
    "mutation($input: CreateApiKeyInput!) { r: createApiKey(input: $input) { key apiKey { ",
    key!(),
    " } } }"
));
static UPDATE: Op = Op::new(concat!(
    "mutation($id: ID!, $input: UpdateApiKeyInput!) { r: updateApiKey(id: $id, input: $input) { ",
    key!(),
    " } }"
));
static DELETE: Op = Op::new("mutation($id: ID!) { r: deleteApiKey(id: $id) }");

/// `POST /api-keys` (`label` or `name`; `expiresInDays` or `expiresAt`).
const CREATE_FIELDS: &[Field] = &[
    req("label", Ty::Str).with(Rule::Name).or("name"),
    f("name", Ty::Str).with(Rule::Name),
    f("scope", Ty::Enum(Scope::NAMES)),
    f("environment", Ty::Enum(Environment::NAMES)),
    f("expiresInDays", Ty::Int)
        .with(Rule::Between(1, 3650))
        .or("expiresAt"),
    f("expiresAt", Ty::DateTime),
];
/// `PATCH /api-keys/{id}`.
const UPDATE_FIELDS: &[Field] = &[
    f("label", Ty::Str).with(Rule::Name).or("name"),
    f("name", Ty::Str).with(Rule::Name),
    f("active", Ty::Bool),
    null("expiresAt", Ty::DateTime),
];

/// The routes.
pub fn routes() -> Vec<Route> {
    let route = |method, path, id, summary, handler| {
        Route::new("api-keys", method, path, id, summary, handler).access(Access::Session)
    };
    vec![
        route(
            Method::GET,
            "/api-keys",
            "listKeys",
            "List API keys (sessions only)",
            |c| Box::pin(plain::list(c, &LIST)),
        )
        .reply(Reply::List, "ApiKey"),
        route(
            Method::POST,
            "/api-keys",
            "createKey",
            "Create an API key; the key is returned once (sessions only)",
            |c| Box::pin(create(c)),
        )
        .body(CREATE_FIELDS)
        .reply(Reply::Created, "CreatedApiKey"),
        route(
            Method::PATCH,
            "/api-keys/{id}",
            "updateKey",
            "Update an API key (sessions only)",
            |c| Box::pin(update(c)),
        )
        .body(UPDATE_FIELDS)
        .reply(Reply::Ok, "ApiKey"),
        route(
            Method::DELETE,
            "/api-keys/{id}",
            "deleteKey",
            "Revoke an API key at once (sessions only)",
            |c| Box::pin(plain::delete(c, &DELETE)),
        )
        .reply(Reply::Deleted, "Deleted"),
    ]
}

async fn create(mut c: Call) -> Result<Response, AppError> {
    let mut input = c.input().await?;
    one_label(&mut input);
    let data = c
        .run(&CREATE, vars([("input", Value::Object(input))]))
        .await?;
    // The key itself sits beside its metadata, shown this once.
    let mut key = data["apiKey"].clone();
    key["key"] = data["key"].clone();
    Ok(envelope::created(key))
}

async fn update(mut c: Call) -> Result<Response, AppError> {
    let mut input = c.input().await?;
    one_label(&mut input);
    let vars = vars([("id", c.id()), ("input", Value::Object(input))]);
    Ok(envelope::object(c.run(&UPDATE, vars).await?))
}

/// LeadHQL calls the label `name`: either is accepted (the body check refuses both).
fn one_label(input: &mut Map<String, Value>) {
    if let Some(name) = input.remove("name") {
        input.insert("label".into(), name);
    }
}
