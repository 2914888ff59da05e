//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of the REST routes, generated with
//! utoipa from the route table (paths, parameters, bodies) and from the `ToSchema` types
//! below (responses), so it follows the code.

use axum::Json;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ComponentsBuilder, KnownFormat, ObjectBuilder, Schema,
    SchemaFormat, Type,
};
use utoipa::openapi::security::{
    ApiKey as ApiKeyScheme, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr, Required,
};

use super::ROUTES;
use super::fields::{Field, Rule, Ty};
use super::route::{Access, Reply, Route};
use crate::service::lead::{
    MAX_CUSTOM_FIELD_KEY_LEN, MAX_CUSTOM_FIELD_VALUE_LEN, MAX_CUSTOM_FIELDS, MAX_SCORE,
    MAX_TAG_LEN, MAX_TAGS,
};
use crate::service::validate::{EMAIL_MAX, NAME_MAX};

/// A string-enum component whose values are the entity enum's names, so the document
/// cannot drift from what the database stores.
macro_rules! enum_schema {
    ($name:ident, $entity:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(Serialize)]
        struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                obj(Type::String)
                    .description(Some($doc))
                    .enum_values(Some(<$entity>::NAMES.iter().copied()))
                    .build()
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

enum_schema!(Channel, entity::enums::Channel, "A lead's channel.");
enum_schema!(LeadStatus, entity::enums::LeadStatus, "A lead's status.");
enum_schema!(EventType, entity::enums::EventType, "What happened.");

/// A lead.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Lead {
    id: String,
    tenant_id: String,
    email: String,
    first_name: String,
    last_name: String,
    phone: Option<String>,
    source: Option<Channel>,
    source_id: Option<String>,
    pipeline_id: Option<String>,
    stage_id: Option<String>,
    status: LeadStatus,
    score: i32,
    assigned_to: Option<String>,
    #[schema(value_type = Object)]
    custom_fields: serde_json::Value,
    tags: Vec<String>,
    duplicate_of: Option<String>,
    /// The import job that created it.
    import_id: Option<String>,
    created_at: String,
    updated_at: String,
}

/// Who made a change; all null for the server's own (duplicate detection).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EventActor {
    user_id: Option<String>,
    on_behalf_of_user_id: Option<String>,
    api_key_id: Option<String>,
}

/// A committed change, from the change feed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Event {
    id: String,
    #[serde(rename = "type")]
    event_type: EventType,
    occurred_at: String,
    resource_type: String,
    resource_id: Option<String>,
    actor: EventActor,
    /// The resource after the change (its last state for a delete).
    #[schema(value_type = Object)]
    data: serde_json::Value,
    /// `{field: {from, to}}` for updates.
    #[schema(value_type = Option<Object>)]
    changes: Option<serde_json::Value>,
}

/// An outbound webhook endpoint (never its secret, but on creation and rotation).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct WebhookEndpoint {
    id: String,
    url: String,
    description: Option<String>,
    /// Event types it receives; empty for all.
    events: Vec<EventType>,
    enabled: bool,
    disabled_reason: Option<String>,
    previous_secret_expires_at: Option<String>,
    created_at: String,
    updated_at: String,
}

/// An endpoint with its signing secret, shown this once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CreatedWebhookEndpoint {
    #[serde(flatten)]
    endpoint: WebhookEndpoint,
    /// `whsec_` and base64 of 32 bytes.
    secret: String,
}

/// One attempt to send a delivery.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct WebhookAttempt {
    attempted_at: String,
    status_code: Option<i32>,
    latency_ms: i64,
    error: Option<String>,
    response_body: Option<String>,
}

/// One message to one endpoint.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct WebhookDelivery {
    id: String,
    /// The `webhook-id` header, the same on every attempt.
    message_id: String,
    event_type: String,
    #[schema(pattern = "^(pending|succeeded|failed)$")]
    status: String,
    attempts: i32,
    next_attempt_at: Option<String>,
    last_status_code: Option<i32>,
    /// The body sent.
    payload: String,
    created_at: String,
    attempt_log: Vec<WebhookAttempt>,
}

/// A lead source.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Source {
    id: String,
    name: String,
    channel: Channel,
    description: Option<String>,
    has_webhook: bool,
    lead_count: i64,
    created_at: String,
    updated_at: String,
}

/// A pipeline stage.
#[derive(Serialize, ToSchema)]
struct Stage {
    id: String,
    name: String,
    position: i32,
}

/// A pipeline with its stages in order.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Pipeline {
    id: String,
    name: String,
    stages: Vec<Stage>,
    created_at: String,
    updated_at: String,
}

/// An API key's metadata (never the key).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ApiKey {
    id: String,
    label: String,
    name: String,
    prefix: String,
    #[schema(pattern = "^(read|full)$")]
    scope: String,
    #[schema(pattern = "^(live|sandbox)$")]
    environment: String,
    #[schema(pattern = "^(active|inactive|expired)$")]
    status: String,
    active: bool,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    usage_count: i64,
}

/// A new API key: its metadata and the key, shown this once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CreatedApiKey {
    id: String,
    label: String,
    name: String,
    prefix: String,
    scope: String,
    environment: String,
    status: String,
    active: bool,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    usage_count: i64,
    key: String,
}

/// The logged-in user.
#[derive(Serialize, ToSchema)]
struct SessionUser {
    id: String,
    name: String,
    email: String,
    role: String,
}

/// A session.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Session {
    token: String,
    refresh_token: String,
    expires_at: String,
    user: SessionUser,
}

/// The result of a logout.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LoggedOut {
    logged_out: bool,
}

/// The caller's user.
#[derive(Serialize, ToSchema)]
struct MeUser {
    email: String,
    name: String,
}

/// The caller's tenant.
#[derive(Serialize, ToSchema)]
struct MeTenant {
    id: String,
    name: String,
    slug: String,
    plan: String,
}

/// The caller.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Me {
    id: String,
    role: String,
    environment: String,
    scope: Option<String>,
    auth_method: String,
    user: MeUser,
    tenant: MeTenant,
}

/// A problem with one row of an import.
#[derive(Serialize, ToSchema)]
struct ImportRowError {
    /// 1 for the first row after the header.
    row: i64,
    /// The field, or empty for the row as a whole.
    field: String,
    /// `VALIDATION_FAILED`, `AMBIGUOUS_MATCH`.
    code: String,
    message: String,
}

/// An import job.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ImportJob {
    id: String,
    /// queued, running, completed, failed or cancelled.
    status: String,
    /// csv or ndjson.
    format: String,
    /// skip, update or create.
    on_duplicate: String,
    source_id: Option<String>,
    dry_run: bool,
    total: i64,
    processed: i64,
    created: i64,
    updated: i64,
    skipped: i64,
    failed: i64,
    /// The first 1000.
    errors: Vec<ImportRowError>,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
}

/// The result of a merge.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MergedLeads {
    /// The primary lead as merged (as it would be, for a dry run).
    lead: Lead,
    /// The duplicates merged into it (deleted, unless a dry run).
    merged: Vec<String>,
    /// Whether nothing was written.
    dry_run: bool,
}

/// A deleted resource.
#[derive(Serialize, ToSchema)]
struct Deleted {
    id: String,
    deleted: bool,
}

/// Leads with one status.
#[derive(Serialize, ToSchema)]
struct StatusCount {
    status: String,
    count: i64,
}

/// Leads of one channel.
#[derive(Serialize, ToSchema)]
struct ChannelCount {
    channel: Option<String>,
    count: i64,
}

/// A source's name.
#[derive(Serialize, ToSchema)]
struct SourceName {
    name: String,
}

/// Leads of one source.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SourceCount {
    source_id: Option<String>,
    source: Option<SourceName>,
    count: i64,
}

/// A stage's name and pipeline.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct StageName {
    name: String,
    pipeline_id: String,
}

/// Leads in one stage.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct StageCount {
    stage_id: Option<String>,
    stage: Option<StageName>,
    count: i64,
}

/// Leads created on one day.
#[derive(Serialize, ToSchema)]
struct DayCount {
    date: String,
    count: i64,
}

/// Lead statistics.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Stats {
    total: i64,
    by_status: Vec<StatusCount>,
    by_channel: Vec<ChannelCount>,
    by_source: Vec<SourceCount>,
    by_stage: Vec<StageCount>,
    created_per_day: Vec<DayCount>,
}

/// A failing field.
#[derive(Serialize, ToSchema)]
struct FieldError {
    field: String,
    message: String,
}

/// Every error: `error` is the machine-readable code.
#[derive(Serialize, ToSchema)]
struct ErrorEnvelope {
    success: bool,
    status: u16,
    error: String,
    message: String,
    errors: Option<Vec<FieldError>>,
    #[schema(value_type = Object)]
    meta: serde_json::Value,
}

fn obj(ty: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(ty)
}

/// At least one character that is neither white space nor NUL, and no NUL: a name the
/// services accept once trimmed.
const NAME_PATTERN: &str = r"^[^\u0000]*[^\s\u0000][^\u0000]*$";
/// `service::lead::normalize_phone`: `+` and 2 to 15 digits, the first not 0, with spaces,
/// dots, dashes and brackets anywhere.
const PHONE_PATTERN: &str = r"^[ .()-]*\+[ .()-]*[1-9](?:[ .()-]*[0-9]){1,14}[ .()-]*$";
/// An opaque ID's spelling (`Ids::is_shaped`): 16 or 17 letters and digits.
const ID_PATTERN: &str = "^[0-9A-Za-z]{16,17}$";

/// An opaque ID's schema.
fn id_schema() -> ObjectBuilder {
    obj(Type::String)
        .min_length(Some(crate::ids::MIN_LEN))
        .max_length(Some(crate::ids::MAX_LEN))
        .pattern(Some(ID_PATTERN))
}

/// No NUL (PostgreSQL's jsonb cannot hold it).
const NO_NUL_PATTERN: &str = r"^[^\u0000]*$";

/// States a field's rule (see `fields::Rule`) in its schema.
fn with_rule(b: ObjectBuilder, rule: Rule) -> ObjectBuilder {
    match rule {
        Rule::Name => b
            .min_length(Some(1))
            .max_length(Some(NAME_MAX))
            .pattern(Some(NAME_PATTERN)),
        Rule::Email => b
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(EMAIL_MAX)),
        Rule::Phone => b.pattern(Some(PHONE_PATTERN)),
        Rule::Url => b
            .pattern(Some(crate::service::webhook::URL_PATTERN))
            .max_length(Some(crate::service::webhook::MAX_URL_LEN)),
        Rule::Score => b.minimum(Some(0)).maximum(Some(MAX_SCORE)),
        Rule::Between(min, max) => b.minimum(Some(min)).maximum(Some(max)),
        Rule::CustomFields => {
            let scalar = ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::Array(vec![
                    Type::String,
                    Type::Number,
                    Type::Boolean,
                    Type::Null,
                ]))
                .pattern(Some(NO_NUL_PATTERN))
                .max_length(Some(MAX_CUSTOM_FIELD_VALUE_LEN));
            let key = obj(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_CUSTOM_FIELD_KEY_LEN))
                .pattern(Some(NO_NUL_PATTERN));
            b.max_properties(Some(MAX_CUSTOM_FIELDS))
                .property_names(Some(key))
                .additional_properties(Some(scalar))
        }
        // Lists constrain an array and its items: stated where `field_schema` builds the array.
        Rule::Tags | Rule::Members(_) | Rule::Ids | Rule::None => b,
    }
}

fn field_schema(f: &Field) -> Schema {
    let base = match f.ty {
        Ty::Str => obj(Type::String),
        Ty::Id => id_schema(),
        Ty::Int => obj(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
        Ty::Bool => obj(Type::Boolean),
        Ty::Enum(values) => obj(Type::String).enum_values(Some(values.iter().copied())),
        Ty::Object => obj(Type::Object),
        Ty::DateTime => {
            obj(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        }
        Ty::Objects(fields) => {
            let array = ArrayBuilder::new()
                .items(RefOr::T(body_schema(fields)))
                .min_items(Some(1))
                .max_items(Some(crate::rest::fields::MAX_ITEMS));
            return Schema::Array(array.build());
        }
        Ty::StrList => {
            let array = if f.rule == Rule::Tags {
                let tag = obj(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(MAX_TAG_LEN))
                    .pattern(Some(NAME_PATTERN));
                ArrayBuilder::new().items(tag).max_items(Some(MAX_TAGS))
            } else if let Rule::Members(values) = f.rule {
                ArrayBuilder::new()
                    .items(obj(Type::String).enum_values(Some(values.iter().copied())))
            } else if f.rule == Rule::Ids {
                ArrayBuilder::new()
                    .items(id_schema())
                    .min_items(Some(1))
                    .max_items(Some(crate::rest::fields::MAX_ITEMS))
                    .unique_items(true)
            } else if f.rule == Rule::Name {
                ArrayBuilder::new()
                    .items(with_rule(obj(Type::String), Rule::Name))
                    .max_items(Some(crate::service::pipeline::MAX_STAGES))
            } else {
                ArrayBuilder::new().items(obj(Type::String))
            };
            let array = if f.nullable {
                array.schema_type(utoipa::openapi::schema::SchemaType::Array(vec![
                    Type::Array,
                    Type::Null,
                ]))
            } else {
                array
            };
            return Schema::Array(array.build());
        }
    };
    let base = with_rule(base, f.rule);
    let base = if f.nullable {
        let mut o = base.build();
        o.schema_type =
            utoipa::openapi::schema::SchemaType::Array(vec![first_type(f.ty), Type::Null]);
        if let Some(values) = o.enum_values.as_mut() {
            values.push(serde_json::Value::Null);
        }
        return Schema::Object(o);
    } else {
        base
    };
    Schema::Object(base.build())
}

fn first_type(ty: Ty) -> Type {
    match ty {
        Ty::Int => Type::Integer,
        Ty::Bool => Type::Boolean,
        Ty::Object => Type::Object,
        Ty::StrList | Ty::Objects(_) => Type::Array,
        _ => Type::String,
    }
}

fn body_schema(spec: &[Field]) -> Schema {
    let mut o =
        obj(Type::Object).additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for f in spec {
        o = o.property(f.name, field_schema(f));
        // A required field with an alternative: `exclusive` states "one of the two".
        if f.required && f.alternative.is_none() {
            o = o.required(f.name);
        }
    }
    Schema::Object(o.build())
}

fn envelope(data: RefOr<Schema>, list: bool) -> Schema {
    let data: RefOr<Schema> = if list {
        ArrayBuilder::new().items(data).build().into()
    } else {
        data
    };
    let mut meta = obj(Type::Object)
        .property("timestamp", obj(Type::String))
        .property("version", obj(Type::String));
    if list {
        meta = meta
            .property(
                "nextCursor",
                ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::Array(vec![
                    Type::String,
                    Type::Null,
                ])),
            )
            .property("limit", obj(Type::Integer))
            .required("nextCursor")
            .required("limit");
    }
    Schema::Object(
        obj(Type::Object)
            .property("success", obj(Type::Boolean))
            .property("status", obj(Type::Integer))
            .property("message", obj(Type::String))
            .property("data", data)
            .property("meta", meta)
            .required("success")
            .required("status")
            .required("data")
            .build(),
    )
}

fn json_content(schema: impl Into<RefOr<Schema>>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            json_content(Ref::from_schema_name("ErrorEnvelope")),
        )
        .build()
}

fn operation(route: &Route, prefix: &str) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new()
        .summary(Some(route.summary))
        .tag(route.tag)
        .operation_id(Some(format!(
            "{}_{}",
            prefix.trim_start_matches('/'),
            route.id
        )));
    if route.path.contains("{id}") {
        op = op.parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(id_schema())),
        );
    }
    if route.path.contains("{email}") {
        op = op.parameter(
            ParameterBuilder::new()
                .name("email")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(
                    obj(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Email))),
                )),
        );
    }
    for p in route.query {
        let schema = match p.ty {
            Ty::Int if p.name == "limit" => obj(Type::Integer).minimum(Some(1)).maximum(Some(100)),
            Ty::Int => obj(Type::Integer)
                .minimum(Some(i64::MIN))
                .maximum(Some(i64::MAX)),
            Ty::DateTime => {
                obj(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            }
            Ty::Enum(values) => obj(Type::String).enum_values(Some(values.iter().copied())),
            Ty::Id => id_schema(),
            _ => obj(Type::String),
        };
        op = op.parameter(
            ParameterBuilder::new()
                .name(p.name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(p.doc))
                .schema(Some(schema)),
        );
    }
    if route.upload {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content("text/csv", json_content(obj(Type::String)))
                .content("application/x-ndjson", json_content(obj(Type::String)))
                .required(Some(Required::True))
                .build(),
        ));
    }
    if let Some(spec) = route.body {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json_content(body_schema(spec)))
                .required(Some(Required::True))
                .build(),
        ));
    }
    let data: RefOr<Schema> = match route.schema {
        Some(name) => Ref::from_schema_name(name).into(),
        None => obj(Type::Object).build().into(),
    };
    let (code, description) = match route.reply {
        Reply::Created | Reply::CreatedMany => ("201", "Resource created successfully"),
        Reply::Accepted => ("202", "Accepted: the work goes on in the background"),
        _ => ("200", "Success"),
    };
    let success = if route.reply == Reply::File {
        ResponseBuilder::new()
            .description("The file, streamed")
            .content("text/csv", json_content(obj(Type::String)))
            .content("application/x-ndjson", json_content(obj(Type::String)))
    } else {
        ResponseBuilder::new().description(description).content(
            "application/json",
            json_content(match route.reply {
                Reply::List => envelope(data, true),
                Reply::CreatedMany => {
                    envelope(ArrayBuilder::new().items(data).build().into(), false)
                }
                _ => envelope(data, false),
            }),
        )
    };
    op = op.response(code, success);
    if route.path.ends_with("/by-email/{email}") {
        op = op.response(
            "201",
            ResponseBuilder::new()
                .description("No lead had the email: created")
                .content(
                    "application/json",
                    json_content(envelope(Ref::from_schema_name("Lead").into(), false)),
                ),
        );
    }
    op = op.response(
        "400",
        error_response("Malformed JSON, parameters or content type"),
    );
    if route.access != Access::Public {
        op = op
            .response(
                "401",
                error_response("MISSING_TOKEN, INVALID_TOKEN, REVOKED_TOKEN or EXPIRED_TOKEN"),
            )
            .response(
                "403",
                error_response(
                    "INSUFFICIENT_SCOPE, INSUFFICIENT_PLAN, SESSION_REQUIRED or FORBIDDEN",
                ),
            )
            .security(SecurityRequirement::new("apiKey", Vec::<String>::new()))
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    } else {
        op = op.response(
            "401",
            error_response("INVALID_CREDENTIALS, INVALID_TOKEN, REVOKED_TOKEN or EXPIRED_TOKEN"),
        );
    }
    if route.path.contains("{id}") {
        op = op.response(
            "404",
            error_response("NOT_FOUND: no such resource for the caller"),
        );
    }
    let write = route.method != axum::http::Method::GET;
    if write {
        op = op.parameter(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "1 to 255 printable ASCII characters: a retry with the same key and request \
                     gets the first response (Idempotent-Replayed: true) for 24 hours",
                ))
                .schema(Some(
                    obj(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(255))
                        .pattern(Some("^[\\x20-\\x7E]+$")),
                )),
        );
    }
    let mut conflicts = Vec::new();
    if route.conflicts {
        conflicts.push("CONFLICT: leads still use it");
    }
    if route.path.contains("{email}") {
        conflicts.push("AMBIGUOUS_MATCH: several leads have the email (candidates listed)");
    }
    if write {
        conflicts.push("IDEMPOTENCY_IN_PROGRESS: the key's first request still runs");
    }
    if !conflicts.is_empty() {
        op = op.response("409", error_response(&conflicts.join("; ")));
    }
    if route.body.is_some() || route.upload {
        op = op.response("413", error_response("PAYLOAD_TOO_LARGE"));
    }
    if route.body.is_some() || !route.query.is_empty() || write {
        op = op.response(
            "422",
            error_response(if write {
                "VALIDATION_FAILED with every failing field, or IDEMPOTENCY_KEY_REUSED"
            } else {
                "VALIDATION_FAILED with every failing field"
            }),
        );
    }
    op.response("429", error_response("RATE_LIMITED"))
        .response("500", error_response("INTERNAL_ERROR"))
        .response("503", error_response("SERVICE_UNAVAILABLE"))
        .build()
}

fn method(m: &axum::http::Method) -> HttpMethod {
    match *m {
        axum::http::Method::POST => HttpMethod::Post,
        axum::http::Method::PATCH => HttpMethod::Patch,
        axum::http::Method::PUT => HttpMethod::Put,
        axum::http::Method::DELETE => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

/// The OpenAPI document, as served.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(build()).unwrap_or_default();
    for prefix in ["/v1", "/api"] {
        for route in ROUTES.iter() {
            let Some(fields) = route.body else { continue };
            let method = route.method.as_str().to_ascii_lowercase();
            let path = format!("{prefix}{}", route.path);
            if let Some(schema) = doc
                .pointer_mut(&format!(
                    "/paths/{}/{method}/requestBody/content/application~1json/schema",
                    path.replace('~', "~0").replace('/', "~1")
                ))
                .and_then(serde_json::Value::as_object_mut)
            {
                exclusive(schema, fields);
            }
        }
    }
    doc
}

/// States the fields sent one or the other (`Field::alternative`), which utoipa's schema
/// types cannot: never both (`not`), and at least one when the first is required (`anyOf`).
fn exclusive(schema: &mut serde_json::Map<String, serde_json::Value>, fields: &[Field]) {
    use serde_json::json;
    let mut all = Vec::new();
    for f in fields {
        let Some(other) = f.alternative else { continue };
        all.push(json!({"not": {"required": [f.name, other]}}));
        if f.required {
            all.push(json!({"anyOf": [{"required": [f.name]}, {"required": [other]}]}));
        }
    }
    if !all.is_empty() {
        schema.insert("allOf".into(), serde_json::Value::Array(all));
    }
}

/// The document as utoipa builds it.
fn build() -> OpenApi {
    let mut paths = Paths::new();
    for prefix in ["/v1", "/api"] {
        for route in ROUTES.iter() {
            paths.add_path_operation(
                format!("{prefix}{}", route.path),
                vec![method(&route.method)],
                operation(route, prefix),
            );
        }
        let webhook = OperationBuilder::new()
            .summary(Some(
                "Create a lead for the token's source (JSON or form); no other credential",
            ))
            .tag("webhooks")
            .operation_id(Some(format!("{}_webhook", prefix.trim_start_matches('/'))))
            .parameter(
                ParameterBuilder::new()
                    .name("token")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(obj(Type::String))),
            )
            .request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        json_content(body_schema(super::webhook::FIELDS)),
                    )
                    .required(Some(Required::True))
                    .build(),
            ))
            .response(
                "201",
                ResponseBuilder::new()
                    .description("Resource created successfully")
                    .content(
                        "application/json",
                        json_content(envelope(Ref::from_schema_name("Lead").into(), false)),
                    ),
            )
            .response("400", error_response("Malformed body"))
            .response(
                "401",
                error_response("INVALID_TOKEN: another credential was sent with the webhook"),
            )
            .response("404", error_response("NOT_FOUND: unknown token"))
            .response("413", error_response("PAYLOAD_TOO_LARGE"))
            .response("422", error_response("VALIDATION_FAILED"))
            .response("429", error_response("RATE_LIMITED"))
            .response("500", error_response("INTERNAL_ERROR"))
            .response("503", error_response("SERVICE_UNAVAILABLE"))
            .build();
        paths.add_path_operation(
            format!("{prefix}/webhooks/{{token}}"),
            vec![HttpMethod::Post],
            webhook,
        );
        let spec = OperationBuilder::new()
            .summary(Some("This document"))
            .tag("meta")
            .operation_id(Some(format!("{}_openapi", prefix.trim_start_matches('/'))))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The OpenAPI 3.1 document")
                    .content("application/json", json_content(obj(Type::Object))),
            )
            .build();
        paths.add_path_operation(
            format!("{prefix}/openapi.json"),
            vec![HttpMethod::Get],
            spec,
        );
    }
    let components = ComponentsBuilder::new()
        .schema_from::<Channel>()
        .schema_from::<LeadStatus>()
        .schema_from::<Lead>()
        .schema_from::<EventType>()
        .schema_from::<EventActor>()
        .schema_from::<Event>()
        .schema_from::<WebhookEndpoint>()
        .schema_from::<CreatedWebhookEndpoint>()
        .schema_from::<WebhookAttempt>()
        .schema_from::<WebhookDelivery>()
        .schema_from::<Source>()
        .schema_from::<Stage>()
        .schema_from::<Pipeline>()
        .schema_from::<ApiKey>()
        .schema_from::<CreatedApiKey>()
        .schema_from::<SessionUser>()
        .schema_from::<Session>()
        .schema_from::<LoggedOut>()
        .schema_from::<MeUser>()
        .schema_from::<MeTenant>()
        .schema_from::<Me>()
        .schema_from::<Deleted>()
        .schema_from::<MergedLeads>()
        .schema_from::<ImportRowError>()
        .schema_from::<ImportJob>()
        .schema_from::<StatusCount>()
        .schema_from::<ChannelCount>()
        .schema_from::<SourceName>()
        .schema_from::<SourceCount>()
        .schema_from::<StageName>()
        .schema_from::<StageCount>()
        .schema_from::<DayCount>()
        .schema_from::<Stats>()
        .schema_from::<FieldError>()
        .schema_from::<ErrorEnvelope>()
        .security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKeyScheme::Header(ApiKeyValue::new("X-API-Key"))),
        )
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("leadgraph REST API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("The REST routes of leadgraph, under /v1 (Leadron style) and /api (500 Leads style). Every response uses the envelope {success, status, message, data, meta}.")),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

/// `GET /openapi.json`.
pub async fn serve() -> impl IntoResponse {
    Json(document())
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;
    use crate::service::lead::normalize_phone;
    use crate::service::validate::Errors;

    /// The document's patterns must say what the services decide, or generated clients and
    /// schemathesis send what is refused (or refuse what is accepted).
    #[test]
    fn patterns_agree_with_the_services() {
        let phone = Regex::new(PHONE_PATTERN).expect("valid pattern");
        for p in [
            "+1 555 0199",
            "+15550199",
            "(+44) 20-7946.0958",
            "+12",
            "+123456789012345",
            "+1234567890123456",
            "+1",
            "+0123",
            "15550199",
            "+1 555 0199 x12",
            "+1\t555",
            "",
        ] {
            assert_eq!(
                phone.is_match(p),
                normalize_phone(p).is_some(),
                "phone {p:?}"
            );
        }
        let name = Regex::new(NAME_PATTERN).expect("valid pattern");
        for n in ["a", " a ", "Zoë", " ", "\t\n", "a\0b", "\0", ""] {
            let mut errors = Errors::new();
            errors.name("name", n);
            assert_eq!(name.is_match(n), errors.is_empty(), "name {n:?}");
        }
    }

    #[test]
    fn lead_bodies_state_their_rules() {
        let doc = serde_json::to_value(document()).expect("serialises");
        let body = &doc["paths"]["/v1/leads"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["properties"];
        assert_eq!(body["email"]["format"], "email");
        assert_eq!(body["firstName"]["maxLength"], 100);
        assert_eq!(body["score"]["maximum"], 100);
        assert_eq!(body["phone"]["pattern"], PHONE_PATTERN);
        assert_eq!(body["tags"]["maxItems"], MAX_TAGS);
        assert_eq!(body["tags"]["type"], serde_json::json!(["array", "null"]));
        assert_eq!(body["customFields"]["maxProperties"], MAX_CUSTOM_FIELDS);
    }
}
