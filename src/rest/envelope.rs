//! The REST envelope of docs/rest.md and the mapping of GraphQL results into it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{AppError, meta};

/// A successful envelope.
pub fn ok(status: StatusCode, data: Value, extra_meta: Option<Value>) -> Response {
    let message = if status == StatusCode::CREATED {
        "Resource created successfully"
    } else {
        "Success"
    };
    let mut m = meta();
    if let (Some(Value::Object(extra)), Value::Object(obj)) = (extra_meta, &mut m) {
        obj.extend(extra);
    }
    let body = json!({"success": true, "status": status.as_u16(), "message": message, "data": data, "meta": m});
    (status, Json(body)).into_response()
}

/// `200` with a GraphQL object in REST's spelling.
pub fn object(data: Value) -> Response {
    ok(StatusCode::OK, restify(data), None)
}

/// `201` with the created GraphQL object in REST's spelling.
pub fn created(data: Value) -> Response {
    ok(StatusCode::CREATED, restify(data), None)
}

/// `200` with `{id, deleted: true}`.
pub fn deleted(id: Value) -> Response {
    ok(StatusCode::OK, json!({"id": id, "deleted": true}), None)
}

/// `200` with a list of GraphQL objects; `meta` tells the next page's cursor and the limit.
pub fn list(items: Vec<Value>, next_cursor: Value, limit: Value) -> Response {
    ok(
        StatusCode::OK,
        restify(Value::Array(items)),
        Some(json!({"nextCursor": next_cursor, "limit": limit})),
    )
}

/// `200` with a page of the change feed: `meta.nextCursor` is where to resume, also at the end.
pub fn feed(items: Vec<Value>, next_cursor: Value, limit: Value, has_more: Value) -> Response {
    ok(
        StatusCode::OK,
        restify(Value::Array(items)),
        Some(json!({"nextCursor": next_cursor, "limit": limit, "hasMore": has_more})),
    )
}

/// The nodes of a GraphQL connection (`edges { node }`), taken out of it.
pub fn nodes(connection: &mut Value) -> Vec<Value> {
    match connection.get_mut("edges") {
        Some(Value::Array(edges)) => edges
            .iter_mut()
            .map(|e| e.get_mut("node").map(Value::take).unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    }
}

/// The cursor of a connection's next page, `null` on the last page.
pub fn next_cursor(connection: &Value) -> Value {
    let info = &connection["pageInfo"];
    if info["hasNextPage"] == true {
        info["endCursor"].clone()
    } else {
        Value::Null
    }
}

/// `200` with a whole (unpaged) list.
pub fn all(data: Value) -> Response {
    let items = match data {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    let n = items.len();
    list(items, Value::Null, Value::from(n))
}

/// The [`AppError`] of the first error of a GraphQL response: the resolver's own, carried as
/// the error's source. An error without one comes from GraphQL's validation of the variables a
/// route built from its input: a bad request.
pub fn error_from_graphql(errors: &[async_graphql::ServerError]) -> AppError {
    let Some(first) = errors.first() else {
        return AppError::internal("GraphQL error without detail");
    };
    match AppError::of_graphql(first) {
        Some(e) => e.clone(),
        None => AppError::BadRequest(first.message.clone()),
    }
}

/// Keys whose string values are enum values, lower-case in REST.
const ENUM_KEYS: &[&str] = &[
    "source",
    "channel",
    "status",
    "scope",
    "environment",
    "role",
    "plan",
    "authMethod",
];

/// GraphQL output to REST: enum values lower-cased, timestamps as `2026-02-08T14:30:00.000Z`.
pub fn restify(mut v: Value) -> Value {
    respell(&mut v);
    v
}

/// [`restify`] in place: the answer's maps and strings are kept, not rebuilt.
fn respell(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v {
                    Value::String(s) if ENUM_KEYS.contains(&k.as_str()) => *s = s.to_lowercase(),
                    Value::String(s) if k.ends_with("At") => {
                        if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
                            *s = d
                                .with_timezone(&chrono::Utc)
                                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                        }
                    }
                    // customFields are the client's own data: returned untouched.
                    _ if k == "customFields" => {}
                    other => respell(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(respell),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restify_lowercases_enums_and_formats_times_but_not_custom_fields() {
        let v = json!({"status": "NEW", "source": "WEB", "createdAt": "2026-02-08T14:30:00.123456+00:00",
                       "customFields": {"status": "KEEP", "updatedAt": "x"}, "tags": ["HOT"],
                       "user": {"role": "OWNER"}});
        assert_eq!(
            restify(v),
            json!({"status": "new", "source": "web", "createdAt": "2026-02-08T14:30:00.123Z",
                   "customFields": {"status": "KEEP", "updatedAt": "x"}, "tags": ["HOT"], "user": {"role": "owner"}})
        );
    }
}
