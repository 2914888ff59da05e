//! The REST compatibility layer (SPEC.md section 7), mounted under `/v1` and `/api`. Each
//! route runs a GraphQL operation of the same schema, so guards, validation, audit and
//! loaders are shared; this module is a table of route → operation → response.

pub mod envelope;
pub mod fields;
pub mod openapi;
pub mod operations;
pub mod webhook;

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use serde_json::{Map, Value, json};

use self::fields::{Field, Ty};
use crate::auth::principal::Principal;
use crate::context::RequestCtx;
use crate::error::AppError;
use crate::graphql::loaders::LazyLoaders;
use crate::layers::authenticate::Authenticated;
use crate::layers::client_ip::ClientIp;
use crate::layers::hygiene::RequestId;
use crate::service::validate::Errors;
use crate::web::AppState;

/// How a route answers on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `200` with the object.
    Ok,
    /// `201` with the object.
    Created,
    /// `200` with `{id, deleted: true}`.
    Deleted,
    /// `200` with an array (`edges.node` of a connection, or a plain list).
    List,
}

/// One REST route.
#[derive(Debug)]
pub struct Route {
    /// Method.
    pub method: Method,
    /// Path below `/v1` or `/api`, axum syntax.
    pub path: &'static str,
    /// The GraphQL operation it runs.
    pub op: &'static str,
    /// Body fields, for routes with a body.
    pub body: Option<&'static [Field]>,
    /// Accepted query parameters.
    pub query: &'static [Param],
    /// Whether it needs a credential.
    pub auth: bool,
    /// The success reply.
    pub reply: Reply,
    /// OpenAPI summary.
    pub summary: &'static str,
    /// OpenAPI tag.
    pub tag: &'static str,
    /// The response's data schema (an OpenAPI component), when any.
    pub schema: Option<&'static str>,
}

/// A query parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub ty: Ty,
    /// What it does.
    pub doc: &'static str,
}

const LIST_LEADS: &[Param] = &[
    Param {
        name: "limit",
        ty: Ty::Int,
        doc: "Page size, 1 to 100 (default 20)",
    },
    Param {
        name: "cursor",
        ty: Ty::Str,
        doc: "`meta.nextCursor` of the previous page",
    },
    Param {
        name: "status",
        ty: Ty::Enum(fields::STATUSES),
        doc: "Only this status (comma-separate several)",
    },
    Param {
        name: "source",
        ty: Ty::Enum(fields::CHANNELS),
        doc: "Only this channel (comma-separate several)",
    },
    Param {
        name: "sourceId",
        ty: Ty::Id,
        doc: "Only leads of this source",
    },
    Param {
        name: "pipelineId",
        ty: Ty::Id,
        doc: "Only leads in this pipeline",
    },
    Param {
        name: "stageId",
        ty: Ty::Id,
        doc: "Only leads in this stage",
    },
    Param {
        name: "tag",
        ty: Ty::Str,
        doc: "Only leads with this tag",
    },
    Param {
        name: "assignedTo",
        ty: Ty::Id,
        doc: "Only leads assigned to this user",
    },
    Param {
        name: "q",
        ty: Ty::Str,
        doc: "Free text over name, email and phone",
    },
    Param {
        name: "scoreMin",
        ty: Ty::Int,
        doc: "Lowest score",
    },
    Param {
        name: "scoreMax",
        ty: Ty::Int,
        doc: "Highest score",
    },
    Param {
        name: "createdAfter",
        ty: Ty::DateTime,
        doc: "Created at or after",
    },
    Param {
        name: "createdBefore",
        ty: Ty::DateTime,
        doc: "Created before",
    },
    Param {
        name: "sort",
        ty: Ty::Enum(SORTS),
        doc: "createdAt, updatedAt, score or lastName; prefix `-` for descending (default -createdAt)",
    },
];
const SORTS: &[&str] = &[
    "createdAt",
    "-createdAt",
    "updatedAt",
    "-updatedAt",
    "score",
    "-score",
    "lastName",
    "-lastName",
];
const STATS: &[Param] = &[
    Param {
        name: "createdAfter",
        ty: Ty::DateTime,
        doc: "Created at or after (default: 30 days ago)",
    },
    Param {
        name: "createdBefore",
        ty: Ty::DateTime,
        doc: "Created before (default: now)",
    },
];

macro_rules! route {
    ($method:ident $path:literal => $op:literal, body: $body:expr, query: $query:expr, auth: $auth:expr,
     reply: $reply:ident, schema: $schema:expr, tag: $tag:literal, $summary:literal) => {
        Route {
            method: Method::$method,
            path: $path,
            op: $op,
            body: $body,
            query: $query,
            auth: $auth,
            reply: Reply::$reply,
            summary: $summary,
            tag: $tag,
            schema: $schema,
        }
    };
}

/// Every REST route (webhooks and the OpenAPI document are served separately).
pub static ROUTES: std::sync::LazyLock<Vec<Route>> = std::sync::LazyLock::new(|| {
    vec![
        route!(POST "/auth/login" => "login", body: Some(fields::LOGIN), query: &[], auth: false, reply: Ok, schema: Some("Session"), tag: "auth", "Log in with email and password"),
        route!(POST "/auth/refresh" => "refresh", body: Some(fields::REFRESH), query: &[], auth: false, reply: Ok, schema: Some("Session"), tag: "auth", "Rotate a refresh token"),
        route!(POST "/auth/logout" => "logout", body: Some(fields::REFRESH), query: &[], auth: false, reply: Ok, schema: Some("LoggedOut"), tag: "auth", "Revoke a session"),
        route!(GET "/me" => "me", body: None, query: &[], auth: true, reply: Ok, schema: Some("Me"), tag: "auth", "The caller"),
        route!(GET "/leads" => "listLeads", body: None, query: LIST_LEADS, auth: true, reply: List, schema: Some("Lead"), tag: "leads", "List leads"),
        route!(POST "/leads" => "createLead", body: Some(fields::LEAD_CREATE), query: &[], auth: true, reply: Created, schema: Some("Lead"), tag: "leads", "Create a lead"),
        route!(GET "/leads/{id}" => "getLead", body: None, query: &[], auth: true, reply: Ok, schema: Some("Lead"), tag: "leads", "Get a lead"),
        route!(PATCH "/leads/{id}" => "updateLead", body: Some(fields::LEAD_UPDATE), query: &[], auth: true, reply: Ok, schema: Some("Lead"), tag: "leads", "Update a lead"),
        route!(DELETE "/leads/{id}" => "deleteLead", body: None, query: &[], auth: true, reply: Deleted, schema: Some("Deleted"), tag: "leads", "Delete a lead"),
        route!(POST "/leads/{id}/tags" => "addTags", body: Some(fields::TAGS), query: &[], auth: true, reply: Ok, schema: Some("Lead"), tag: "leads", "Add tags to a lead"),
        route!(DELETE "/leads/{id}/tags" => "removeTags", body: Some(fields::TAGS), query: &[], auth: true, reply: Ok, schema: Some("Lead"), tag: "leads", "Remove tags from a lead"),
        route!(GET "/sources" => "listSources", body: None, query: &[], auth: true, reply: List, schema: Some("Source"), tag: "sources", "List sources"),
        route!(POST "/sources" => "createSource", body: Some(fields::SOURCE_CREATE), query: &[], auth: true, reply: Created, schema: Some("Source"), tag: "sources", "Create a source"),
        route!(GET "/sources/{id}" => "getSource", body: None, query: &[], auth: true, reply: Ok, schema: Some("Source"), tag: "sources", "Get a source"),
        route!(PATCH "/sources/{id}" => "updateSource", body: Some(fields::SOURCE_UPDATE), query: &[], auth: true, reply: Ok, schema: Some("Source"), tag: "sources", "Update a source"),
        route!(DELETE "/sources/{id}" => "deleteSource", body: None, query: &[], auth: true, reply: Deleted, schema: Some("Deleted"), tag: "sources", "Delete a source (refused while leads use it)"),
        route!(GET "/pipelines" => "listPipelines", body: None, query: &[], auth: true, reply: List, schema: Some("Pipeline"), tag: "pipelines", "List pipelines"),
        route!(POST "/pipelines" => "createPipeline", body: Some(fields::PIPELINE_CREATE), query: &[], auth: true, reply: Created, schema: Some("Pipeline"), tag: "pipelines", "Create a pipeline with its stages"),
        route!(GET "/pipelines/{id}" => "getPipeline", body: None, query: &[], auth: true, reply: Ok, schema: Some("Pipeline"), tag: "pipelines", "Get a pipeline"),
        route!(PATCH "/pipelines/{id}" => "updatePipeline", body: Some(fields::PIPELINE_UPDATE), query: &[], auth: true, reply: Ok, schema: Some("Pipeline"), tag: "pipelines", "Rename a pipeline"),
        route!(DELETE "/pipelines/{id}" => "deletePipeline", body: None, query: &[], auth: true, reply: Deleted, schema: Some("Deleted"), tag: "pipelines", "Delete a pipeline (refused while leads are in it)"),
        route!(GET "/stats" => "stats", body: None, query: STATS, auth: true, reply: Ok, schema: Some("Stats"), tag: "stats", "Lead counts"),
        route!(GET "/stats/counts" => "stats", body: None, query: STATS, auth: true, reply: Ok, schema: Some("Stats"), tag: "stats", "Lead counts (alias)"),
        route!(GET "/api-keys" => "listKeys", body: None, query: &[], auth: true, reply: List, schema: Some("ApiKey"), tag: "api-keys", "List API keys (sessions only)"),
        route!(POST "/api-keys" => "createKey", body: Some(fields::KEY_CREATE), query: &[], auth: true, reply: Created, schema: Some("CreatedApiKey"), tag: "api-keys", "Create an API key; the key is returned once (sessions only)"),
        route!(PATCH "/api-keys/{id}" => "updateKey", body: Some(fields::KEY_UPDATE), query: &[], auth: true, reply: Ok, schema: Some("ApiKey"), tag: "api-keys", "Update an API key (sessions only)"),
        route!(DELETE "/api-keys/{id}" => "deleteKey", body: None, query: &[], auth: true, reply: Deleted, schema: Some("Deleted"), tag: "api-keys", "Revoke an API key at once (sessions only)"),
    ]
});

/// The routes, to nest under `/v1` and `/api`.
pub fn router() -> Router<AppState> {
    let mut by_path: Vec<(&'static str, Vec<&'static Route>)> = Vec::new();
    for route in ROUTES.iter() {
        match by_path.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, list)) => list.push(route),
            None => by_path.push((route.path, vec![route])),
        }
    }
    let mut router = Router::new();
    for (path, routes) in by_path {
        let mut method_router = axum::routing::MethodRouter::new();
        for route in routes {
            let filter = MethodFilter::try_from(route.method.clone()).unwrap_or(MethodFilter::GET);
            method_router = method_router.merge(on(
                filter,
                move |state: State<AppState>,
                      path: Path<HashMap<String, String>>,
                      ip: ClientIp,
                      id: RequestId,
                      auth: Authenticated,
                      query: RawQuery,
                      headers: HeaderMap,
                      body: Body| async move {
                    match handle(route, state, path, ip, id, auth, query, headers, body).await {
                        Ok(resp) => resp,
                        Err(e) => e.into_response(),
                    }
                },
            ));
        }
        router = router.route(path, method_router.fallback(method_not_allowed));
    }
    router
        .route(
            "/webhooks/{token}",
            axum::routing::post(webhook::receive).fallback(method_not_allowed),
        )
        .route(
            "/openapi.json",
            axum::routing::get(openapi::serve).fallback(method_not_allowed),
        )
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

/// Parses a query string into pairs; `None` when it is not valid form encoding.
fn pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or(""))
        .map_err(|_| AppError::BadRequest("The query string is malformed".into()))
}

/// Checks query parameters: unknown, repeated or ill-typed ones are `400` with every problem.
fn check_query(params: &[Param], raw: Option<&str>) -> Result<Map<String, Value>, AppError> {
    let mut errors = Errors::new();
    let mut out = Map::new();
    for (key, value) in pairs(raw)? {
        let Some(param) = params.iter().find(|p| p.name == key) else {
            errors.add(key, "is not a known query parameter");
            continue;
        };
        if out.contains_key(&key) {
            errors.add(key, "is given more than once");
            continue;
        }
        let parsed = match param.ty {
            Ty::Int if param.name == "limit" => value
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .map(Value::from),
            Ty::Int => value.parse::<i64>().ok().map(Value::from),
            Ty::DateTime => chrono::DateTime::parse_from_rfc3339(&value)
                .ok()
                .map(|_| Value::String(value.clone())),
            Ty::Enum(values) => {
                let items: Vec<&str> = value.split(',').map(str::trim).collect();
                items
                    .iter()
                    .all(|i| values.contains(i))
                    .then(|| Value::String(value.clone()))
            }
            _ => Some(Value::String(value.clone())),
        };
        match parsed {
            Some(v) => {
                out.insert(key, v);
            }
            None => errors.add(param.name, format!("has an invalid value {value:?}")),
        }
    }
    match errors.finish() {
        Ok(()) => Ok(out),
        Err(AppError::Validation(fields)) => Err(AppError::BadQuery(fields)),
        Err(e) => Err(e),
    }
}

/// Reads a JSON object body, honouring the size limit.
pub async fn read_json(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Map<String, Value>, AppError> {
    let bytes = crate::http::read_body(body, state.config.max_body_bytes).await?;
    let mime = crate::http::media_type(headers);
    if bytes.is_empty() && mime.is_empty() {
        return Ok(Map::new());
    }
    if mime != "application/json" {
        return Err(AppError::BadRequest(
            "Content-Type must be application/json".into(),
        ));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AppError::BadRequest(
            "The body must be a JSON object".into(),
        )),
        Err(e) => Err(AppError::BadRequest(format!("Malformed JSON: {e}"))),
    }
}

#[expect(clippy::too_many_arguments, reason = "axum extractors")]
async fn handle(
    route: &'static Route,
    State(state): State<AppState>,
    Path(path): Path<HashMap<String, String>>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    Authenticated(auth): Authenticated,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    // Authentication, then scope and plan, then the input: a read key's invalid create is 403.
    let principal = if route.auth {
        let p = auth?.ok_or(AppError::MissingToken)?;
        route.guard(&p)?;
        Some(p)
    } else {
        None
    };
    let params = check_query(route.query, query.as_deref())?;
    let mut vars = Map::new();
    if let Some(id) = path.get("id") {
        vars.insert("id".into(), Value::String(id.clone()));
    }
    if let Some(spec) = route.body {
        let body = read_json(&state, &headers, body).await?;
        let mut errors = Errors::new();
        let input = fields::check(spec, &body, &mut errors);
        if !errors.is_empty() && matches!(route.op, "createLead" | "updateLead") {
            lead_checks(&input, &mut errors);
        }
        errors.finish()?;
        shape_variables(route, input, &mut vars)?;
    }
    if route.op == "listLeads" {
        list_variables(&params, &mut vars);
    } else if route.op == "stats" && !params.is_empty() {
        vars.insert("filter".into(), Value::Object(params.clone()));
    }
    let data = execute(&state, route.op, vars, principal, ip, request_id)
        .await
        .map_err(|e| name_query_errors(route, e))?;
    reply(route, data, &params)
}

impl Route {
    /// The scope, plan and session checks of the operation, run before its input is read
    /// (the operation's guards run them again).
    fn guard(&self, p: &Principal) -> Result<(), AppError> {
        if self.tag == "api-keys" {
            p.check_session()
        } else if self.method != Method::GET && self.tag != "auth" {
            p.check_write()
        } else {
            Ok(())
        }
    }
}

/// A list's refusals of its arguments, named after the query parameters they came from
/// (`cursor`, `sourceId` …) and answered `400` as bad parameters.
fn name_query_errors(route: &Route, e: AppError) -> AppError {
    match e {
        AppError::Validation(fields) if !route.query.is_empty() => AppError::BadQuery(
            fields
                .into_iter()
                .map(|mut f| {
                    f.field = match f.field.as_str() {
                        "after" | "before" => "cursor".to_owned(),
                        "first" => "limit".to_owned(),
                        other => other.strip_prefix("filter.").unwrap_or(other).to_owned(),
                    };
                    f
                })
                .collect(),
        ),
        other => other,
    }
}

/// Adds the lead checks that need no database to the shape errors, so one answer lists
/// every problem.
pub fn lead_checks(input: &Map<String, Value>, errors: &mut Errors) {
    use crate::service::lead::{Change, LeadInput};
    let s = |k: &str| input.get(k).and_then(Value::as_str).map(str::to_owned);
    let lead = LeadInput {
        email: s("email"),
        first_name: s("firstName"),
        last_name: s("lastName"),
        phone: s("phone").map_or(Change::Keep, Change::Set),
        score: input.get("score").and_then(Value::as_i64),
        custom_fields: input.get("customFields").cloned(),
        tags: input
            .get("tags")
            .and_then(|t| serde_json::from_value(t.clone()).ok()),
        ..Default::default()
    };
    let mut more = Errors::new();
    crate::service::lead::check_fields(&lead, false, &mut more);
    if let Err(AppError::Validation(found)) = more.finish() {
        let known: Vec<String> = errors.fields().iter().map(|f| f.field.clone()).collect();
        for f in found {
            if !known.contains(&f.field) {
                errors.add(f.field, f.message);
            }
        }
    }
}

/// Places the checked body where the operation expects it.
fn shape_variables(
    route: &Route,
    mut input: Map<String, Value>,
    vars: &mut Map<String, Value>,
) -> Result<(), AppError> {
    match route.op {
        "login" | "refresh" | "logout" => vars.extend(input),
        "addTags" | "removeTags" => {
            vars.insert(
                "tags".into(),
                input.remove("tags").unwrap_or(Value::Array(vec![])),
            );
        }
        "createKey" | "updateKey" => {
            // LeadHQL calls the label `name`; either is accepted, not two different ones.
            if let Some(name) = input.remove("name") {
                match input.get("label") {
                    Some(label) if *label != name => {
                        return Err(AppError::field(
                            "name",
                            "label and name differ; send one of them",
                        ));
                    }
                    _ => {
                        input.insert("label".into(), name);
                    }
                }
            }
            if route.op == "createKey" && !input.contains_key("label") {
                return Err(AppError::field("label", "is required"));
            }
            vars.insert("input".into(), Value::Object(input));
        }
        _ => {
            vars.insert("input".into(), Value::Object(input));
        }
    }
    Ok(())
}

fn list_variables(params: &Map<String, Value>, vars: &mut Map<String, Value>) {
    vars.insert(
        "first".into(),
        params.get("limit").cloned().unwrap_or(Value::from(20)),
    );
    if let Some(c) = params.get("cursor") {
        vars.insert("after".into(), c.clone());
    }
    let mut filter = Map::new();
    let list = |v: &Value| -> Value {
        Value::Array(
            v.as_str()
                .unwrap_or("")
                .split(',')
                .map(|s| Value::String(s.trim().to_uppercase()))
                .collect(),
        )
    };
    for (param, key) in [("status", "status"), ("source", "channel")] {
        if let Some(v) = params.get(param) {
            filter.insert(key.into(), list(v));
        }
    }
    for (param, key) in [
        ("sourceId", "sourceId"),
        ("pipelineId", "pipelineId"),
        ("stageId", "stageId"),
        ("tag", "tag"),
        ("assignedTo", "assignedTo"),
        ("q", "search"),
        ("scoreMin", "scoreMin"),
        ("scoreMax", "scoreMax"),
        ("createdAfter", "createdAfter"),
        ("createdBefore", "createdBefore"),
    ] {
        if let Some(v) = params.get(param) {
            filter.insert(key.into(), v.clone());
        }
    }
    vars.insert("filter".into(), Value::Object(filter));
    let sort = params
        .get("sort")
        .and_then(Value::as_str)
        .unwrap_or("-createdAt");
    let (desc, field) = match sort.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, sort),
    };
    let field = match field {
        "updatedAt" => "UPDATED_AT",
        "score" => "SCORE",
        "lastName" => "LAST_NAME",
        _ => "CREATED_AT",
    };
    vars.insert(
        "order".into(),
        json!({"field": field, "direction": if desc { "DESC" } else { "ASC" }}),
    );
}

/// Runs a REST operation as `principal`; returns the `r` field of its data.
pub async fn execute(
    state: &AppState,
    op: &str,
    vars: Map<String, Value>,
    principal: Option<Principal>,
    ip: Option<std::net::IpAddr>,
    request_id: String,
) -> Result<Value, AppError> {
    let request = state
        .rest_ops
        .request(op)
        .ok_or_else(|| AppError::internal(format!("no REST operation {op}")))?;
    let request = request
        .variables(async_graphql::Variables::from_json(Value::Object(vars)))
        .data(RequestCtx {
            principal,
            ip,
            request_id,
            credential_checks: Default::default(),
        })
        .data(state.app.clone())
        .data(LazyLoaders::default());
    let response =
        crate::graphql::schema::execute_detached(&state.tasks, &state.schema, request).await;
    if !response.errors.is_empty() {
        return Err(envelope::error_from_graphql(&response.errors));
    }
    let data = response.data.into_json().map_err(AppError::internal)?;
    Ok(data.get("r").cloned().unwrap_or(Value::Null))
}

fn reply(route: &Route, data: Value, params: &Map<String, Value>) -> Result<Response, AppError> {
    Ok(match route.reply {
        Reply::Ok => envelope::ok(StatusCode::OK, shape_data(route, data), None),
        Reply::Created => envelope::ok(StatusCode::CREATED, shape_data(route, data), None),
        Reply::Deleted => envelope::ok(StatusCode::OK, json!({"id": data, "deleted": true}), None),
        Reply::List => {
            let (items, next, limit) = if route.op == "listLeads" {
                let items: Vec<Value> = data["edges"]
                    .as_array()
                    .map(|e| e.iter().map(|e| e["node"].clone()).collect())
                    .unwrap_or_default();
                let next = if data["pageInfo"]["hasNextPage"].as_bool().unwrap_or(false) {
                    data["pageInfo"]["endCursor"].clone()
                } else {
                    Value::Null
                };
                (
                    items,
                    next,
                    params.get("limit").cloned().unwrap_or(Value::from(20)),
                )
            } else {
                let items = data.as_array().cloned().unwrap_or_default();
                let n = items.len();
                (items, Value::Null, Value::from(n))
            };
            envelope::ok(
                StatusCode::OK,
                envelope::restify(Value::Array(items)),
                Some(json!({"nextCursor": next, "limit": limit})),
            )
        }
    })
}

/// Route-specific reshaping of the `r` field.
fn shape_data(route: &Route, data: Value) -> Value {
    match route.op {
        "createKey" => {
            let mut key = data["apiKey"].clone();
            key["key"] = data["key"].clone();
            envelope::restify(key)
        }
        "logout" => json!({"loggedOut": data}),
        _ => envelope::restify(data),
    }
}
