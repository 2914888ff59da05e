//! `/webhook-endpoints` and `/webhook-deliveries`: outbound webhooks (docs/events.md).

use axum::http::Method;
use axum::response::Response;
use entity::enums::{DeliveryStatus, EventType};
use serde_json::{Map, Value};

use super::envelope;
use super::events::{graphql_name, rest_name};
use super::fields::{Field, Rule, Ty, f, null, req};
use super::route::{Access, CURSOR, Call, LIMIT, Op, Param, Reply, Route, plain, vars};
use crate::error::AppError;
use crate::service::validate::Errors;
use crate::service::webhook::check_manage;

macro_rules! endpoint {
    () => {
        "id url description events enabled disabledReason previousSecretExpiresAt createdAt updatedAt"
    };
}
macro_rules! delivery {
    () => {
        "id messageId eventType status attempts nextAttemptAt lastStatusCode payload createdAt \
         attemptLog { attemptedAt statusCode latencyMs error responseBody }"
    };
}

static LIST: Op = Op::new(concat!(
    "query { r: webhookEndpoints { ",
    endpoint!(),
    " } }"
));
static CREATE: Op = Op::new(concat!(
    "mutation($input: CreateWebhookEndpointInput!) { r: createWebhookEndpoint(input: $input) { \
     secret endpoint { ",
    endpoint!(),
    " } } }"
));
static GET: Op = Op::new(concat!(
    "query($id: ID!) { r: webhookEndpoint(id: $id) { ",
    endpoint!(),
    " } }"
));
static UPDATE: Op = Op::new(concat!(
    "mutation($id: ID!, $input: UpdateWebhookEndpointInput!) { \
     r: updateWebhookEndpoint(id: $id, input: $input) { ",
    endpoint!(),
    " } }"
));
static DELETE: Op = Op::new("mutation($id: ID!) { r: deleteWebhookEndpoint(id: $id) }");
static ROTATE: Op = Op::new(concat!(
    "mutation($id: ID!) { r: rotateWebhookEndpointSecret(id: $id) { secret endpoint { ",
    endpoint!(),
    " } } }"
));
static TEST: Op = Op::new(concat!(
    "mutation($id: ID!) { r: sendTestWebhook(id: $id) { ",
    delivery!(),
    " } }"
));
static DELIVERIES: Op = Op::new(concat!(
    "query($id: ID!, $status: DeliveryStatus, $first: Int, $after: String) { \
     r: webhookDeliveries(endpointId: $id, status: $status, first: $first, after: $after) { \
     edges { node { ",
    delivery!(),
    " } } pageInfo { hasNextPage endCursor } } }"
));
static REDELIVER: Op = Op::new(concat!(
    "mutation($id: ID!) { r: redeliverWebhook(deliveryId: $id) { ",
    delivery!(),
    " } }"
));

/// `POST /webhook-endpoints`.
const CREATE_FIELDS: &[Field] = &[
    req("url", Ty::Str).with(Rule::Url),
    f("events", Ty::StrList).with(Rule::Members(EventType::NAMES)),
    null("description", Ty::Str),
];
/// `PATCH /webhook-endpoints/{id}`.
const UPDATE_FIELDS: &[Field] = &[
    f("url", Ty::Str).with(Rule::Url),
    f("events", Ty::StrList).with(Rule::Members(EventType::NAMES)),
    null("description", Ty::Str),
    f("enabled", Ty::Bool),
];
const DELIVERY_PARAMS: &[Param] = &[
    LIMIT,
    CURSOR,
    Param {
        name: "status",
        ty: Ty::Enum(DeliveryStatus::NAMES),
        doc: "Only deliveries in this state",
    },
];

/// The routes.
pub fn routes() -> Vec<Route> {
    let route = |method, path, id, summary, handler| {
        Route::new("webhooks", method, path, id, summary, handler)
            .access(Access::Check(check_manage))
    };
    vec![
        route(
            Method::GET,
            "/webhook-endpoints",
            "listWebhookEndpoints",
            "List webhook endpoints",
            |c| Box::pin(list(c)),
        )
        .reply(Reply::List, "WebhookEndpoint"),
        route(
            Method::POST,
            "/webhook-endpoints",
            "createWebhookEndpoint",
            "Register a webhook endpoint; its secret is returned once",
            |c| Box::pin(create(c)),
        )
        .body(CREATE_FIELDS)
        .reply(Reply::Created, "CreatedWebhookEndpoint"),
        route(
            Method::GET,
            "/webhook-endpoints/{id}",
            "getWebhookEndpoint",
            "Get a webhook endpoint",
            |c| Box::pin(get(c)),
        )
        .reply(Reply::Ok, "WebhookEndpoint"),
        route(
            Method::PATCH,
            "/webhook-endpoints/{id}",
            "updateWebhookEndpoint",
            "Change a webhook endpoint (enable, disable, events, URL)",
            |c| Box::pin(update(c)),
        )
        .body(UPDATE_FIELDS)
        .reply(Reply::Ok, "WebhookEndpoint"),
        route(
            Method::DELETE,
            "/webhook-endpoints/{id}",
            "deleteWebhookEndpoint",
            "Delete a webhook endpoint and its deliveries",
            |c| Box::pin(plain::delete(c, &DELETE)),
        )
        .reply(Reply::Deleted, "Deleted"),
        route(
            Method::POST,
            "/webhook-endpoints/{id}/rotate-secret",
            "rotateWebhookEndpointSecret",
            "Replace the signing secret; the old one also signs for 24 hours",
            |c| Box::pin(rotate(c)),
        )
        .reply(Reply::Ok, "CreatedWebhookEndpoint"),
        route(
            Method::POST,
            "/webhook-endpoints/{id}/test",
            "sendTestWebhook",
            "Queue a webhook.test message to the endpoint",
            |c| Box::pin(test(c)),
        )
        .reply(Reply::Created, "WebhookDelivery"),
        route(
            Method::GET,
            "/webhook-endpoints/{id}/deliveries",
            "listWebhookDeliveries",
            "An endpoint's deliveries with every attempt, newest first",
            |c| Box::pin(deliveries(c)),
        )
        .query(DELIVERY_PARAMS)
        .reply(Reply::List, "WebhookDelivery"),
        route(
            Method::POST,
            "/webhook-deliveries/{id}/redeliver",
            "redeliverWebhook",
            "Send a delivery again now, with the same webhook-id",
            |c| Box::pin(plain::by_id(c, &REDELIVER)),
        )
        .reply(Reply::Ok, "WebhookDelivery"),
    ]
}

/// An endpoint in REST's spelling (event types as `lead.created`).
fn endpoint(mut e: Value) -> Value {
    if let Value::Array(types) = &e["events"] {
        e["events"] = Value::Array(types.iter().map(rest_name).collect());
    }
    e
}

/// The body as the GraphQL input: `events` named as REST names them become enum values.
fn input(mut body: Map<String, Value>) -> Result<Map<String, Value>, AppError> {
    if let Some(Value::Array(names)) = body.get("events") {
        let mut errors = Errors::new();
        let mut out = Vec::new();
        for name in names {
            match name.as_str().and_then(EventType::parse) {
                Some(t) => out.push(Value::String(graphql_name(t))),
                None => errors.add(
                    "events",
                    format!("must list event types: {}", EventType::NAMES.join(", ")),
                ),
            }
        }
        errors.finish()?;
        body.insert("events".into(), Value::Array(out));
    }
    Ok(body)
}

async fn list(c: Call) -> Result<Response, AppError> {
    let data = c.run(&LIST, Default::default()).await?;
    let items = data.as_array().cloned().unwrap_or_default();
    Ok(envelope::all(Value::Array(
        items.into_iter().map(endpoint).collect(),
    )))
}

async fn create(mut c: Call) -> Result<Response, AppError> {
    let body = input(c.input().await?)?;
    let data = c
        .run(&CREATE, vars([("input", Value::Object(body))]))
        .await?;
    Ok(envelope::created(with_secret(data)))
}

/// `{endpoint, secret}` as the endpoint with its secret beside it.
fn with_secret(data: Value) -> Value {
    let mut e = endpoint(data["endpoint"].clone());
    e["secret"] = data["secret"].clone();
    e
}

async fn get(c: Call) -> Result<Response, AppError> {
    let data = c.run(&GET, vars([("id", c.id())])).await?;
    Ok(envelope::object(endpoint(data)))
}

async fn update(mut c: Call) -> Result<Response, AppError> {
    let body = input(c.input().await?)?;
    let vars = vars([("id", c.id()), ("input", Value::Object(body))]);
    Ok(envelope::object(endpoint(c.run(&UPDATE, vars).await?)))
}

async fn rotate(c: Call) -> Result<Response, AppError> {
    let data = c.run(&ROTATE, vars([("id", c.id())])).await?;
    Ok(envelope::object(with_secret(data)))
}

async fn test(c: Call) -> Result<Response, AppError> {
    Ok(envelope::created(
        c.run(&TEST, vars([("id", c.id())])).await?,
    ))
}

async fn deliveries(c: Call) -> Result<Response, AppError> {
    let p = &c.params;
    let limit = p.get("limit").cloned().unwrap_or(Value::from(20));
    let mut vars = vars([("id", c.id()), ("first", limit.clone())]);
    if let Some(cursor) = p.get("cursor") {
        vars.insert("after".into(), cursor.clone());
    }
    if let Some(status) = p.get("status").and_then(Value::as_str) {
        vars.insert("status".into(), Value::String(status.to_uppercase()));
    }
    let mut data = c.run(&DELIVERIES, vars).await?;
    Ok(envelope::list(
        envelope::nodes(&mut data),
        envelope::next_cursor(&data),
        limit,
    ))
}
