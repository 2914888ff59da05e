//! Small HTTP helpers shared by the GraphQL and REST handlers.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};

use crate::error::AppError;

/// The request's media type, lower-cased, without parameters (`""` when absent).
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Reads a body of at most `limit` bytes; larger is `413 PAYLOAD_TOO_LARGE`.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, AppError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| AppError::PayloadTooLarge(limit))
}

/// Whether a request sends a file: a REST import or a GraphQL multipart request. Files are
/// streamed, so they are bounded by the time between their frames rather than as a whole.
pub fn is_upload(method: &axum::http::Method, path: &str, media: &str) -> bool {
    *method == axum::http::Method::POST
        && (matches!(path, "/v1/imports" | "/api/imports")
            || (path == "/graphql" && media == "multipart/form-data"))
}
