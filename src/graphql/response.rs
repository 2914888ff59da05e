//! GraphQL responses over HTTP: media-type negotiation, error bodies with their status, and
//! request errors without a `data` entry (GraphQL over HTTP). Used by the GraphQL handlers and
//! by the layers that refuse a request before it reaches them.

use async_graphql::{BatchResponse, ServerError};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// Which media type the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// `application/json`.
    Json,
    /// `application/graphql-response+json`.
    GraphqlResponse,
}

/// The media type to answer in; `None` when the client accepts neither JSON type.
pub fn negotiate(headers: &HeaderMap) -> Option<Media> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Media::Json);
    };
    let mut best = None;
    for part in accept.split(',') {
        let mime = part
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            GRAPHQL_RESPONSE => return Some(Media::GraphqlResponse),
            "application/json" | "application/*" | "*/*" => best = best.or(Some(Media::Json)),
            _ => {}
        }
    }
    best
}

/// Whether a browser asks for a page.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// A response made of GraphQL errors only.
pub fn errors_response(status: StatusCode, media: Media, errors: Vec<ServerError>) -> Response {
    let body = async_graphql::Response::from_errors(errors);
    json_response(status, media, &BatchResponse::Single(body))
}

/// A response carrying `err` as a GraphQL error, with its status and code.
pub fn app_error_response(err: &AppError, media: Media) -> Response {
    let server = err
        .to_graphql()
        .into_server_error(async_graphql::Pos::default());
    let mut resp = errors_response(err.status(), media, vec![strip_pos(server)]);
    resp.extensions_mut()
        .insert(crate::metrics::ErrorCode(err.code().to_owned()));
    if let Some(secs) = err.retry_after() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// A GraphQL error body (`application/json`) carrying `err`'s code and status.
pub fn error_response(err: &AppError) -> Response {
    app_error_response(err, Media::Json)
}

/// The error without source positions (it is not about the document).
pub fn strip_pos(mut e: ServerError) -> ServerError {
    e.locations.clear();
    e
}

/// `400` with `message`.
pub fn bad_request(media: Media, message: impl Into<String>) -> Response {
    app_error_response(&AppError::BadRequest(message.into()), media)
}

/// A request error (the document could not run at all) carries no `data` entry, as the
/// GraphQL specification and GraphQL over HTTP ask; async-graphql would write `"data": null`.
pub fn is_request_error(r: &async_graphql::Response) -> bool {
    r.data == async_graphql::Value::Null
        && !r.errors.is_empty()
        && r.errors.iter().all(|e| e.path.is_empty())
}

/// A response as JSON, without `data` for request errors.
pub fn to_json(r: &async_graphql::Response) -> serde_json::Result<serde_json::Value> {
    let mut v = serde_json::to_value(r)?;
    if is_request_error(r)
        && let Some(obj) = v.as_object_mut()
    {
        obj.remove("data");
    }
    Ok(v)
}

/// Serialises a (batch) response with the status and media type given.
pub fn json_response(status: StatusCode, media: Media, body: &BatchResponse) -> Response {
    let encoded = match body {
        BatchResponse::Single(r) if !is_request_error(r) => serde_json::to_vec(r),
        BatchResponse::Single(r) => to_json(r).and_then(|v| serde_json::to_vec(&v)),
        BatchResponse::Batch(list) => list
            .iter()
            .map(to_json)
            .collect::<serde_json::Result<Vec<_>>>()
            .and_then(|v| serde_json::to_vec(&v)),
    };
    let bytes = match encoded {
        Ok(b) => b,
        Err(e) => return AppError::internal(e).into_response(),
    };
    let ct = match media {
        Media::Json => "application/json; charset=utf-8",
        Media::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
    };
    (status, [(header::CONTENT_TYPE, ct)], bytes).into_response()
}
