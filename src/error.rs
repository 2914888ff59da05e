//! One error type for the whole server. It renders as the REST envelope of docs/rest.md
//! and as a GraphQL error with `extensions.code` (and `extensions.fields` for validation).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The input field's name as the client spelled it (`email`, `customFields.plan`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every way a request can fail.
#[derive(Debug, Clone)]
pub enum AppError {
    /// `401 MISSING_TOKEN`: no credential was sent.
    MissingToken,
    /// `401 INVALID_TOKEN`: unknown, malformed, bad checksum or bad signature.
    InvalidToken,
    /// `401 REVOKED_TOKEN`: an inactive or deleted key, a revoked refresh token.
    RevokedToken,
    /// `401 EXPIRED_TOKEN`.
    ExpiredToken,
    /// `401 INVALID_CREDENTIALS`: wrong email or password (never says which).
    InvalidCredentials,
    /// `403 SESSION_REQUIRED`: API keys cannot manage keys.
    SessionRequired,
    /// `403 INSUFFICIENT_SCOPE`: a read key attempted a write.
    InsufficientScope,
    /// `403 INSUFFICIENT_PLAN`: keys of free and starter tenants are read-only.
    InsufficientPlan,
    /// `403 FORBIDDEN`: the caller's role or impersonation does not allow this.
    Forbidden(&'static str),
    /// `404 NOT_FOUND`: no such resource in the caller's tenant and environment.
    NotFound,
    /// `409 CONFLICT`: the change contradicts the current state.
    Conflict(String),
    /// `422 VALIDATION_FAILED` with every failing field.
    Validation(Vec<FieldError>),
    /// `400 BAD_REQUEST`: malformed JSON, parameters or content type.
    BadRequest(String),
    /// `400 BAD_REQUEST` listing each bad query parameter.
    BadQuery(Vec<FieldError>),
    /// `400 QUERY_TOO_COMPLEX`: a GraphQL document over a limit (depth, complexity, aliases, root fields).
    QueryTooComplex {
        /// Which limit.
        limit: &'static str,
        /// The document's value.
        value: usize,
        /// The limit's value.
        max: usize,
    },
    /// `400 INTROSPECTION_DISABLED`: `__schema`/`__type` on a server that hides its schema.
    IntrospectionDisabled,
    /// `405 METHOD_NOT_ALLOWED`.
    MethodNotAllowed,
    /// `413 PAYLOAD_TOO_LARGE`.
    PayloadTooLarge(usize),
    /// `429 RATE_LIMITED`.
    RateLimited {
        /// Seconds until a request will be accepted again.
        retry_after: u64,
    },
    /// `410 CURSOR_EXPIRED`: the change feed no longer holds the events after this cursor.
    CursorExpired,
    /// `422 IDEMPOTENCY_KEY_REUSED`: the `Idempotency-Key` was first sent with another request.
    IdempotencyKeyReused,
    /// `409 IDEMPOTENCY_IN_PROGRESS`: the first request with this `Idempotency-Key` still runs.
    IdempotencyInProgress,
    /// `409 AMBIGUOUS_MATCH`: more than one lead matches; the candidates' IDs.
    AmbiguousMatch(Vec<String>),
    /// `503 SERVICE_UNAVAILABLE`: the database or the server is saturated or down.
    Unavailable,
    /// `500 INTERNAL_ERROR`: logged with the request ID, never shown.
    Internal(String),
}

impl AppError {
    /// A validation error for one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Validation(vec![FieldError::new(field, message)])
    }

    /// An internal error; its detail is logged, not returned.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let detail = detail.to_string();
        tracing::error!(error = %detail, "internal error");
        AppError::Internal(detail)
    }

    /// The human-readable message sent to the client (never internal details).
    pub fn message(&self) -> String {
        use AppError::*;
        match self {
            MissingToken => {
                "Authentication required: send an API key or an access token".to_owned()
            }
            InvalidToken => "The provided credential is invalid or does not exist".to_owned(),
            RevokedToken => "The provided credential has been revoked".to_owned(),
            ExpiredToken => "The provided credential has expired".to_owned(),
            InvalidCredentials => "Invalid email or password".to_owned(),
            SessionRequired => {
                "This operation requires a user session; API keys cannot manage API keys".to_owned()
            }
            InsufficientScope => {
                "This API key has the read scope and cannot make changes".to_owned()
            }
            InsufficientPlan => {
                "Writing through an API key requires the pro plan or higher".to_owned()
            }
            Forbidden(m) => m.to_string(),
            NotFound => "Resource not found".to_owned(),
            Conflict(m) => m.to_string(),
            Validation(_) => "Validation failed".to_owned(),
            BadRequest(m) => m.to_string(),
            BadQuery(_) => "Invalid query parameters".to_owned(),
            MethodNotAllowed => "Method not allowed on this route".to_owned(),
            IntrospectionDisabled => "GraphQL introspection is disabled on this server".to_owned(),
            QueryTooComplex { limit, value, max } => {
                format!("The document's {limit} is {value}, over the limit of {max}")
            }
            PayloadTooLarge(n) => format!("Request body is larger than the limit of {n} bytes"),
            RateLimited { retry_after } => {
                format!("Rate limit exceeded; retry after {retry_after} seconds")
            }
            CursorExpired => {
                "The cursor is older than the change feed's retention; start again without `after`"
                    .to_owned()
            }
            IdempotencyKeyReused => {
                "This Idempotency-Key was already used with a different request".to_owned()
            }
            IdempotencyInProgress => {
                "A request with this Idempotency-Key is still running; retry shortly".to_owned()
            }
            AmbiguousMatch(ids) => format!(
                "{} leads match; name one of them by ID ({})",
                ids.len(),
                ids.join(", ")
            ),
            Unavailable => "The service is temporarily unavailable; retry shortly".to_owned(),
            Internal(_) => "Internal server error".to_owned(),
        }
    }

    /// The HTTP status: its code's ([`AppError::status_for_code`]).
    pub fn status(&self) -> StatusCode {
        Self::status_for_code(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The machine-readable code, the same in REST and GraphQL.
    pub fn code(&self) -> &'static str {
        use AppError::*;
        match self {
            MissingToken => "MISSING_TOKEN",
            InvalidToken => "INVALID_TOKEN",
            RevokedToken => "REVOKED_TOKEN",
            ExpiredToken => "EXPIRED_TOKEN",
            InvalidCredentials => "INVALID_CREDENTIALS",
            SessionRequired => "SESSION_REQUIRED",
            InsufficientScope => "INSUFFICIENT_SCOPE",
            InsufficientPlan => "INSUFFICIENT_PLAN",
            Forbidden(_) => "FORBIDDEN",
            NotFound => "NOT_FOUND",
            Conflict(_) => "CONFLICT",
            Validation(_) => "VALIDATION_FAILED",
            BadRequest(_) | BadQuery(_) => "BAD_REQUEST",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            QueryTooComplex { .. } => "QUERY_TOO_COMPLEX",
            IntrospectionDisabled => "INTROSPECTION_DISABLED",
            PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            RateLimited { .. } => "RATE_LIMITED",
            CursorExpired => "CURSOR_EXPIRED",
            IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            IdempotencyInProgress => "IDEMPOTENCY_IN_PROGRESS",
            AmbiguousMatch(_) => "AMBIGUOUS_MATCH",
            Unavailable => "SERVICE_UNAVAILABLE",
            Internal(_) => "INTERNAL_ERROR",
        }
    }

    /// The HTTP status of an error code, for REST errors and for GraphQL responses that fail
    /// with one; `None` for codes that are not ours.
    pub fn status_for_code(code: &str) -> Option<StatusCode> {
        Some(match code {
            "MISSING_TOKEN"
            | "INVALID_TOKEN"
            | "REVOKED_TOKEN"
            | "EXPIRED_TOKEN"
            | "INVALID_CREDENTIALS" => StatusCode::UNAUTHORIZED,
            "SESSION_REQUIRED" | "INSUFFICIENT_SCOPE" | "INSUFFICIENT_PLAN" | "FORBIDDEN" => {
                StatusCode::FORBIDDEN
            }
            "NOT_FOUND" => StatusCode::NOT_FOUND,
            "CONFLICT" | "IDEMPOTENCY_IN_PROGRESS" | "AMBIGUOUS_MATCH" => StatusCode::CONFLICT,
            "VALIDATION_FAILED" | "IDEMPOTENCY_KEY_REUSED" => StatusCode::UNPROCESSABLE_ENTITY,
            "RATE_LIMITED" => StatusCode::TOO_MANY_REQUESTS,
            "QUERY_TOO_COMPLEX" | "BAD_REQUEST" | "INTROSPECTION_DISABLED" => {
                StatusCode::BAD_REQUEST
            }
            "METHOD_NOT_ALLOWED" => StatusCode::METHOD_NOT_ALLOWED,
            "PAYLOAD_TOO_LARGE" => StatusCode::PAYLOAD_TOO_LARGE,
            "CURSOR_EXPIRED" => StatusCode::GONE,
            "SERVICE_UNAVAILABLE" => StatusCode::SERVICE_UNAVAILABLE,
            "INTERNAL_ERROR" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => return None,
        })
    }

    /// The field errors, for validation failures.
    pub fn fields(&self) -> &[FieldError] {
        match self {
            AppError::Validation(fields) | AppError::BadQuery(fields) => fields,
            _ => &[],
        }
    }

    /// The REST envelope body.
    pub fn envelope(&self) -> serde_json::Value {
        let status = self.status().as_u16();
        let mut body = json!({
            "success": false,
            "status": status,
            "error": self.code(),
            "message": self.message(),
            "meta": meta(),
        });
        if let AppError::Validation(fields) | AppError::BadQuery(fields) = self {
            body["errors"] = json!(fields);
        }
        if let AppError::AmbiguousMatch(ids) = self {
            body["candidates"] = json!(ids);
        }
        body
    }

    /// A GraphQL error carrying this error's code (and fields).
    pub fn to_graphql(&self) -> async_graphql::Error {
        // The error itself travels as the GraphQL error's source: REST reads it back whole
        // (`AppError::of_graphql`).
        let mut err = async_graphql::Error::new_with_source(Source(self.clone()));
        let code = self.code();
        let fields = self.fields().to_vec();
        let retry_after = self.retry_after();
        let candidates = match self {
            AppError::AmbiguousMatch(ids) => ids.clone(),
            _ => Vec::new(),
        };
        let limit = match self {
            AppError::QueryTooComplex { limit, value, max } => Some((*limit, *value, *max)),
            _ => None,
        };
        err = async_graphql::ErrorExtensions::extend_with(err, |_, e| {
            e.set("code", code);
            if !fields.is_empty() {
                let list: Vec<async_graphql::Value> = fields
                    .iter()
                    .map(|f| {
                        let mut obj = async_graphql::indexmap::IndexMap::new();
                        obj.insert(async_graphql::Name::new("field"), f.field.clone().into());
                        obj.insert(
                            async_graphql::Name::new("message"),
                            f.message.clone().into(),
                        );
                        async_graphql::Value::Object(obj)
                    })
                    .collect();
                e.set("fields", async_graphql::Value::List(list));
            }
            if let Some(secs) = retry_after {
                e.set("retryAfter", secs);
            }
            if !candidates.is_empty() {
                let ids: Vec<async_graphql::Value> =
                    candidates.iter().map(|id| id.clone().into()).collect();
                e.set("candidates", async_graphql::Value::List(ids));
            }
            if let Some((limit, value, max)) = limit {
                e.set("limit", limit);
                e.set("value", value as u64);
                e.set("max", max as u64);
            }
        });
        err
    }
}

/// An [`AppError`] as the source of a GraphQL error. A wrapper, because `AppError` itself
/// implementing `Display` would turn every `?` in a resolver into async-graphql's blanket
/// conversion, which carries no code.
struct Source(AppError);

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message())
    }
}

impl AppError {
    /// The error a GraphQL error was made from by [`AppError::to_graphql`], if it was.
    pub fn of_graphql(e: &async_graphql::ServerError) -> Option<&AppError> {
        e.source::<Source>().map(|s| &s.0)
    }
}

/// The `meta` object of REST envelopes.
pub fn meta() -> serde_json::Value {
    json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "version": "v1",
    })
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        if db_unavailable(&err) {
            tracing::warn!(error = %err, "database unavailable");
            AppError::Unavailable
        } else {
            AppError::internal(err)
        }
    }
}

/// Whether a database error means "not reachable right now" (retrying later can succeed):
/// no connection to be had, a connection that broke, a server shutting down or starting up,
/// or SQLite still locked after its busy timeout.
fn db_unavailable(err: &sea_orm::DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::{DbErr, RuntimeErr};
    let sqlx = match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Query(RuntimeErr::SqlxError(e)) | DbErr::Exec(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx.as_ref() {
        Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed => true,
        Sqlx::Database(db) => db.code().is_some_and(|code| {
            // PostgreSQL: class 08 connection exceptions; 57P01-57P03 shutdown and start-up.
            // SQLite: BUSY, LOCKED and their extended codes.
            code.starts_with("08")
                || matches!(
                    &*code,
                    "57P01" | "57P02" | "57P03" | "5" | "6" | "261" | "517"
                )
        }),
        _ => false,
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        err.to_graphql()
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), axum::Json(self.envelope())).into_response();
        response
            .extensions_mut()
            .insert(crate::metrics::ErrorCode(self.code().to_owned()));
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl AppError {
    /// Seconds after which retrying can succeed, for the errors that say so.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::RateLimited { retry_after } => Some(*retry_after),
            AppError::IdempotencyInProgress => Some(1),
            _ => None,
        }
    }
}

/// Shorthand for results that fail with [`AppError`].
pub type AppResult<T> = Result<T, AppError>;

/// Turns `NOT_FOUND` into `None`, keeping every other error.
pub trait OptionalExt<T> {
    /// `Ok(None)` for `NOT_FOUND`.
    fn optional(self) -> AppResult<Option<T>>;
}

impl<T> OptionalExt<T> for AppResult<T> {
    fn optional(self) -> AppResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(AppError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_documented_status() {
        let cases = [
            (AppError::MissingToken, 401),
            (AppError::InvalidToken, 401),
            (AppError::RevokedToken, 401),
            (AppError::ExpiredToken, 401),
            (AppError::InvalidCredentials, 401),
            (AppError::SessionRequired, 403),
            (AppError::InsufficientScope, 403),
            (AppError::InsufficientPlan, 403),
            (AppError::Forbidden("no"), 403),
            (AppError::NotFound, 404),
            (AppError::Conflict("taken".into()), 409),
            (AppError::IdempotencyInProgress, 409),
            (AppError::AmbiguousMatch(vec!["a".into()]), 409),
            (AppError::IdempotencyKeyReused, 422),
            (AppError::Validation(Vec::new()), 422),
            (AppError::BadRequest("bad".into()), 400),
            (AppError::BadQuery(Vec::new()), 400),
            (AppError::MethodNotAllowed, 405),
            (
                AppError::QueryTooComplex {
                    limit: "depth",
                    value: 11,
                    max: 10,
                },
                400,
            ),
            (AppError::IntrospectionDisabled, 400),
            (AppError::PayloadTooLarge(1), 413),
            (AppError::RateLimited { retry_after: 1 }, 429),
            (AppError::CursorExpired, 410),
            (AppError::Unavailable, 503),
            (AppError::Internal("x".into()), 500),
        ];
        for (e, status) in cases {
            assert_eq!(e.status().as_u16(), status, "{}", e.code());
        }
        assert_eq!(AppError::status_for_code("NOT_OURS"), None);
    }
}
