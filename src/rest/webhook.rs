//! `POST /v1/webhooks/{token}`: creates a lead for the token's source with no other
//! credential. Accepts JSON or `application/x-www-form-urlencoded` (as web forms post);
//! form fields that are not lead fields become custom fields.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use entity::enums::Role;
use serde_json::{Map, Value};

use super::{envelope, fields};
use crate::app::{AppState, RequestId};
use crate::auth::principal::Principal;
use crate::client_ip::ClientIp;
use crate::error::AppError;
use crate::ids::Kind;
use crate::service;
use crate::service::validate::Errors;

/// Receives a webhook.
pub async fn receive(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match run(&state, &token, ip, request_id, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn run(
    state: &AppState,
    token: &str,
    ip: Option<std::net::IpAddr>,
    request_id: String,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let source = service::source::by_webhook_token(&state.db, token)
        .await?
        .ok_or(AppError::NotFound)?;
    let mime = crate::http::media_type(headers);
    let body = if mime == "application/x-www-form-urlencoded" {
        form_to_lead(&crate::http::read_body(body, state.config.max_body_bytes).await?)?
    } else {
        super::read_json(state, headers, body).await?
    };
    let mut errors = Errors::new();
    let mut input = fields::check(fields::WEBHOOK, &body, &mut errors);
    if !errors.is_empty() {
        super::lead_checks(&input, &mut errors);
    }
    errors.finish()?;
    input.insert(
        "sourceId".into(),
        Value::String(state.ids.encode(Kind::Source, source.id)),
    );
    let tenant = service::tenant::get(&state.db, source.tenant_id).await?;
    // A webhook acts for no user: the audit entry has no actor.
    let principal = Principal {
        tenant_id: source.tenant_id,
        plan: tenant.plan,
        environment: source.environment,
        user_id: 0,
        role: Role::Member,
        actor_user_id: 0,
        key: None,
    };
    let mut vars = Map::new();
    vars.insert("input".into(), Value::Object(input));
    let data = super::execute(state, "createLead", vars, Some(principal), ip, request_id).await?;
    Ok(envelope::ok(
        StatusCode::CREATED,
        envelope::restify(data),
        None,
    ))
}

/// A form post as a lead body: lead fields by name (`score` as a number, `tags` comma-separated),
/// everything else into `customFields`.
fn form_to_lead(bytes: &[u8]) -> Result<Map<String, Value>, AppError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|_| AppError::BadRequest("The form body is malformed".into()))?;
    let mut out = Map::new();
    let mut custom = Map::new();
    for (key, value) in pairs {
        let v = match key.as_str() {
            "score" => value
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or(Value::String(value)),
            "tags" => Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| Value::String(t.into()))
                    .collect(),
            ),
            "email" | "firstName" | "lastName" | "phone" | "status" => Value::String(value),
            _ => {
                custom.insert(key, Value::String(value));
                continue;
            }
        };
        out.insert(key, v);
    }
    if !custom.is_empty() {
        out.insert("customFields".into(), Value::Object(custom));
    }
    Ok(out)
}
