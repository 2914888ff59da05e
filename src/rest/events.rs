//! `/events`: the change feed.

use axum::http::Method;
use axum::response::Response;
use entity::enums::EventType;
use serde_json::{Map, Value};

use super::envelope;
use super::fields::Ty;
use super::route::{Call, LIMIT, Op, Param, Reply, Route};
use crate::error::AppError;

static LIST: Op = Op::new(
    "query($first: Int, $after: String, $types: [EventType!], $resourceId: ID) { \
     r: events(first: $first, after: $after, types: $types, resourceId: $resourceId) { \
     edges { node { id type occurredAt resourceType resourceId \
     actor { userId onBehalfOfUserId apiKeyId } data changes } } \
     pageInfo { hasNextPage endCursor } } }",
);

const PARAMS: &[Param] = &[
    LIMIT,
    Param {
        name: "after",
        ty: Ty::Str,
        doc: "`meta.nextCursor` of the previous page: where to resume",
    },
    Param {
        name: "type",
        ty: Ty::Enum(EventType::NAMES),
        doc: "Only events of this type (comma-separate several)",
    },
    Param {
        name: "resourceId",
        ty: Ty::Id,
        doc: "Only events of this lead",
    },
];

/// The routes.
pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            "events",
            Method::GET,
            "/events",
            "listEvents",
            "The change feed, oldest first; resume with `after` = `meta.nextCursor`",
            |c| Box::pin(list(c)),
        )
        .query(PARAMS)
        .reply(Reply::List, "Event"),
    ]
}

/// GraphQL's spelling of an event type (`LEAD_CREATED`).
pub(super) fn graphql_name(t: EventType) -> String {
    t.as_str().replace('.', "_").to_uppercase()
}

/// REST's spelling (`lead.created`) of a GraphQL event type.
pub(super) fn rest_name(graphql: &Value) -> Value {
    EventType::ALL
        .iter()
        .find(|t| *graphql == graphql_name(**t).as_str())
        .map_or(graphql.clone(), |t| Value::String(t.as_str().to_owned()))
}

async fn list(c: Call) -> Result<Response, AppError> {
    let p = &c.params;
    let limit = p.get("limit").cloned().unwrap_or(Value::from(20));
    let mut vars = Map::new();
    vars.insert("first".into(), limit.clone());
    if let Some(after) = p.get("after") {
        vars.insert("after".into(), after.clone());
    }
    if let Some(types) = p.get("type").and_then(Value::as_str) {
        let names = types
            .split(',')
            .filter_map(|t| EventType::parse(t.trim()))
            .map(|t| Value::String(graphql_name(t)));
        vars.insert("types".into(), Value::Array(names.collect()));
    }
    if let Some(id) = p.get("resourceId") {
        vars.insert("resourceId".into(), id.clone());
    }
    let mut data = c.run(&LIST, vars).await?;
    let mut items = envelope::nodes(&mut data);
    for node in &mut items {
        // REST spells types as the spec does: `lead.created`.
        node["type"] = rest_name(&node["type"]);
    }
    // The feed's cursor is where to resume, also at the end: a reader polls with it.
    let next = data["pageInfo"]["endCursor"].clone();
    let more = data["pageInfo"]["hasNextPage"].clone();
    Ok(envelope::feed(items, next, limit, more))
}
