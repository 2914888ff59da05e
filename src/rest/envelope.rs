//! The REST envelope of SPEC.md section 7 and the mapping of GraphQL results into it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{AppError, FieldError, meta};

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

/// Rebuilds an [`AppError`] from the first error of a GraphQL response.
pub fn error_from_graphql(errors: &[async_graphql::ServerError]) -> AppError {
    let Some(first) = errors.first() else {
        return AppError::internal("GraphQL error without detail");
    };
    let ext = first.extensions.as_ref();
    let code = match ext.and_then(|e| e.get("code")) {
        Some(async_graphql::Value::String(c)) => c.clone(),
        // Errors without our code come from GraphQL validation of the variables we built.
        _ => return AppError::BadRequest(first.message.clone()),
    };
    let fields = match ext.and_then(|e| e.get("fields")) {
        Some(async_graphql::Value::List(list)) => list
            .iter()
            .filter_map(|f| match f {
                async_graphql::Value::Object(o) => Some(FieldError::new(
                    string(o.get("field")),
                    string(o.get("message")),
                )),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let retry_after = match ext.and_then(|e| e.get("retryAfter")) {
        Some(async_graphql::Value::Number(n)) => n.as_u64().unwrap_or(1),
        _ => 1,
    };
    match code.as_str() {
        "MISSING_TOKEN" => AppError::MissingToken,
        "INVALID_TOKEN" => AppError::InvalidToken,
        "REVOKED_TOKEN" => AppError::RevokedToken,
        "EXPIRED_TOKEN" => AppError::ExpiredToken,
        "INVALID_CREDENTIALS" => AppError::InvalidCredentials,
        "SESSION_REQUIRED" => AppError::SessionRequired,
        "INSUFFICIENT_SCOPE" => AppError::InsufficientScope,
        "INSUFFICIENT_PLAN" => AppError::InsufficientPlan,
        "FORBIDDEN" => AppError::Forbidden(forbidden_message(&first.message)),
        "NOT_FOUND" => AppError::NotFound,
        "CONFLICT" => AppError::Conflict(first.message.clone()),
        "VALIDATION_FAILED" => AppError::Validation(fields),
        "BAD_REQUEST" => AppError::BadRequest(first.message.clone()),
        "RATE_LIMITED" => AppError::RateLimited { retry_after },
        "SERVICE_UNAVAILABLE" => AppError::Unavailable,
        _ => AppError::Internal(first.message.clone()),
    }
}

fn string(v: Option<&async_graphql::Value>) -> String {
    match v {
        Some(async_graphql::Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// `Forbidden` carries a static message; keep the GraphQL one when it is one we know.
fn forbidden_message(m: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "This operation requires the admin or owner role",
        "Only owners can create owners",
        "Only owners can change owners or grant the owner role",
        "X-Environment does not match the API key's environment",
        "X-On-Behalf-Of is only accepted with an API key",
        "X-On-Behalf-Of needs a key created by an admin and an active user of the same tenant",
    ];
    KNOWN
        .iter()
        .find(|k| **k == m)
        .copied()
        .unwrap_or("Forbidden")
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
pub fn restify(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) if ENUM_KEYS.contains(&k.as_str()) => {
                            Value::String(s.to_lowercase())
                        }
                        Value::String(s) if k.ends_with("At") => Value::String(
                            chrono::DateTime::parse_from_rfc3339(&s)
                                .map(|d| {
                                    d.with_timezone(&chrono::Utc)
                                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                                })
                                .unwrap_or(s),
                        ),
                        // customFields are the client's own data: returned untouched.
                        other if k == "customFields" => other,
                        other => restify(other),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(restify).collect()),
        other => other,
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
