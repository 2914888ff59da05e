//! `POST /v1/webhooks/{token}`: creates a lead for the token's source with no other
//! credential (sending one is refused). Accepts JSON or `application/x-www-form-urlencoded`
//! (as web forms post); fields that are not lead fields become custom fields in both. Each
//! request counts against the source's tenant's rate limit.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use entity::enums::{LeadStatus, Role};
use serde_json::{Map, Value};

use super::envelope;
use super::fields::{self, Field, Rule, Ty, f, req};
use super::leads::{self, lead_checks};
use super::route::{read_json, run, vars};
use crate::auth::principal::{Principal, Via};
use crate::error::AppError;
use crate::ids::Kind;
use crate::layers::client_ip::ClientIp;
use crate::layers::hygiene::RequestId;
use crate::layers::limit::{ReportedBudget, charge_tenant, refuse, set_headers};
use crate::rate_limit::Budget;
use crate::service;
use crate::service::validate::Errors;
use crate::web::AppState;

/// The body: a lead for the token's source.
pub const FIELDS: &[Field] = &[
    req("email", Ty::Str).with(Rule::Email),
    req("firstName", Ty::Str).with(Rule::Name),
    req("lastName", Ty::Str).with(Rule::Name),
    f("phone", Ty::Str).with(Rule::Phone),
    f("status", Ty::Enum(LeadStatus::NAMES)),
    f("score", Ty::Int).with(Rule::Score),
    f("customFields", Ty::Object).with(Rule::CustomFields),
    f("tags", Ty::StrList).with(Rule::Tags),
];

/// Receives a webhook.
pub async fn receive(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    ReportedBudget(ip_budget): ReportedBudget,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if crate::layers::credentials::carries_credential(&headers) {
        return AppError::InvalidToken.into_response();
    }
    match accept(&state, &token, ip, ip_budget, request_id, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn accept(
    state: &AppState,
    token: &str,
    ip: Option<std::net::IpAddr>,
    ip_budget: Option<Budget>,
    request_id: String,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let source = service::source::by_webhook_token(&state.db, token)
        .await?
        .ok_or(AppError::NotFound)?;
    let tenant = service::tenant::get(&state.db, source.tenant_id).await?;
    // A webhook acts for no user: the audit entry has no actor.
    let principal = Principal {
        tenant_id: source.tenant_id,
        plan: tenant.plan,
        environment: source.environment,
        user_id: 0,
        role: Role::Member,
        actor_user_id: 0,
        via: Via::Webhook,
    };
    // Charged to the source's tenant, like any of its requests; the headers describe the
    // budget with less left.
    let budget = match charge_tenant(&state.limits, &principal, ip_budget).await {
        Ok(charged) => charged.or(ip_budget),
        Err((b, retry)) => return Ok(refuse(false, "tenant", b, retry)),
    };
    let mime = crate::http::media_type(headers);
    let body = if mime == "application/x-www-form-urlencoded" {
        form_to_lead(&crate::http::read_body(body, state.config.max_body_bytes).await?)?
    } else {
        json_to_lead(read_json(state, headers, body).await?)
    };
    let mut errors = Errors::new();
    let mut input = fields::check(FIELDS, &body, &mut errors);
    if !errors.is_empty() {
        lead_checks(&input, &mut errors);
    }
    errors.finish()?;
    input.insert(
        "sourceId".into(),
        Value::String(state.ids.encode(Kind::Source, source.id)),
    );
    let vars = vars([("input", Value::Object(input))]);
    let data = run(state, &leads::CREATE, vars, Some(principal), ip, request_id).await;
    let mut resp = match data {
        Ok(data) => envelope::ok(StatusCode::CREATED, envelope::restify(data), None),
        Err(e) => e.into_response(),
    };
    if let Some(b) = budget {
        set_headers(resp.headers_mut(), b);
    }
    Ok(resp)
}

/// Whether `name` is a field of a lead: those a webhook does not take (`sourceId` …) are
/// refused rather than kept as custom fields.
fn is_lead_field(name: &str) -> bool {
    leads::CREATE_FIELDS.iter().any(|f| f.name == name)
}

/// A JSON body as a lead body: top-level fields that are not lead fields join `customFields`,
/// as a form's do (a key in both keeps the `customFields` value).
fn json_to_lead(mut body: Map<String, Value>) -> Map<String, Value> {
    let mut custom = match body.remove("customFields") {
        Some(Value::Object(map)) => map,
        Some(other) => {
            // Not an object: left for the field check to refuse.
            body.insert("customFields".into(), other);
            return body;
        }
        None => Map::new(),
    };
    let extra: Vec<String> = body.keys().filter(|k| !is_lead_field(k)).cloned().collect();
    for key in extra {
        if let Some(v) = body.remove(&key) {
            custom.entry(key).or_insert(v);
        }
    }
    if !custom.is_empty() {
        body.insert("customFields".into(), Value::Object(custom));
    }
    body
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
            _ if is_lead_field(&key) => Value::String(value),
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
