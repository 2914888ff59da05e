//! `/leads`: list, create, get, update, delete and tag leads.

use axum::http::Method;
use axum::response::Response;
use entity::enums::{Channel, LeadStatus};
use serde_json::{Map, Value, json};

use super::envelope;
use super::fields::{Field, Rule, Ty, f, null, req};
use super::route::{Access, CURSOR, Call, LIMIT, Op, Param, Reply, Route, plain, vars};
use crate::error::AppError;
use crate::service::validate::Errors;

/// The lead fields of every answer, aliased to REST's names (`source` is the channel,
/// `assignedTo` the user's ID).
macro_rules! lead {
    () => {
        "id tenantId email firstName lastName phone source: channel sourceId pipelineId stageId \
         status score assignedTo: assignedToId customFields tags duplicateOf: duplicateOfId \
         importId createdAt updatedAt"
    };
}

static LIST: Op = Op::new(concat!(
    "query($first: Int, $after: String, $filter: LeadFilter, $order: LeadOrder) { \
     r: leads(first: $first, after: $after, filter: $filter, orderBy: $order) { \
     edges { node { ",
    lead!(),
    " } } pageInfo { hasNextPage endCursor } } }"
));
/// Creates a lead; the webhook route runs it too.
pub(super) static CREATE: Op = Op::new(concat!(
    "mutation($input: CreateLeadInput!) { r: createLead(input: $input) { ",
    lead!(),
    " } }"
));
static GET: Op = Op::new(concat!(
    "query($id: ID!) { r: lead(id: $id) { ",
    lead!(),
    " } }"
));
static UPDATE: Op = Op::new(concat!(
    "mutation($id: ID!, $input: UpdateLeadInput!) { r: updateLead(id: $id, input: $input) { ",
    lead!(),
    " } }"
));
static DELETE: Op = Op::new("mutation($id: ID!) { r: deleteLead(id: $id) }");
static BATCH: Op = Op::new(concat!(
    "mutation($inputs: [CreateLeadInput!]!) { r: createLeads(inputs: $inputs) { ",
    lead!(),
    " } }"
));
static UPSERT: Op = Op::new(concat!(
    "mutation($input: UpsertLeadInput!) { r: upsertLead(input: $input) { outcome lead { ",
    lead!(),
    " } } }"
));
static MERGE: Op = Op::new(concat!(
    "mutation($id: ID!, $ids: [ID!]!, $dryRun: Boolean!) { \
     r: mergeLeads(primaryId: $id, duplicateIds: $ids, dryRun: $dryRun) { merged dryRun lead { ",
    lead!(),
    " } } }"
));
static ADD_TAGS: Op = Op::new(concat!(
    "mutation($id: ID!, $tags: [String!]!) { r: addLeadTags(id: $id, tags: $tags) { ",
    lead!(),
    " } }"
));
static REMOVE_TAGS: Op = Op::new(concat!(
    "mutation($id: ID!, $tags: [String!]!) { r: removeLeadTags(id: $id, tags: $tags) { ",
    lead!(),
    " } }"
));

/// The routes.
pub fn routes() -> Vec<Route> {
    let route = |method, path, id, summary, handler| {
        Route::new("leads", method, path, id, summary, handler)
    };
    vec![
        route(Method::GET, "/leads", "listLeads", "List leads", |c| {
            Box::pin(list(c))
        })
        .query(LIST_PARAMS)
        .reply(Reply::List, "Lead"),
        route(Method::POST, "/leads", "createLead", "Create a lead", |c| {
            Box::pin(create(c))
        })
        .access(Access::Write)
        .body(CREATE_FIELDS)
        .reply(Reply::Created, "Lead"),
        route(
            Method::POST,
            "/leads/batch",
            "createLeads",
            "Create up to 100 leads, all or none",
            |c| Box::pin(batch(c)),
        )
        .access(Access::Write)
        .body(BATCH_FIELDS)
        .reply(Reply::CreatedMany, "Lead"),
        route(
            Method::PUT,
            "/leads/by-email/{email}",
            "upsertLead",
            "Update the lead with this email, or create it (201)",
            |c| Box::pin(upsert(c)),
        )
        .access(Access::Write)
        .body(UPSERT_FIELDS)
        .reply(Reply::Ok, "Lead"),
        route(
            Method::POST,
            "/leads/{id}/merge",
            "mergeLeads",
            "Merge duplicates into this lead",
            |c| Box::pin(merge(c)),
        )
        .access(Access::Write)
        .body(MERGE_FIELDS)
        .reply(Reply::Ok, "MergedLeads"),
        route(
            Method::GET,
            "/leads/export",
            "exportLeads",
            "Export leads as CSV or NDJSON, in the import's columns",
            |c| Box::pin(export(c)),
        )
        .query(EXPORT_PARAMS)
        .reply(Reply::File, "Lead"),
        route(Method::GET, "/leads/{id}", "getLead", "Get a lead", |c| {
            Box::pin(plain::by_id(c, &GET))
        })
        .reply(Reply::Ok, "Lead"),
        route(
            Method::PATCH,
            "/leads/{id}",
            "updateLead",
            "Update a lead",
            |c| Box::pin(update(c)),
        )
        .access(Access::Write)
        .body(UPDATE_FIELDS)
        .reply(Reply::Ok, "Lead"),
        route(
            Method::DELETE,
            "/leads/{id}",
            "deleteLead",
            "Delete a lead",
            |c| Box::pin(plain::delete(c, &DELETE)),
        )
        .access(Access::Write)
        .reply(Reply::Deleted, "Deleted"),
        route(
            Method::POST,
            "/leads/{id}/tags",
            "addTags",
            "Add tags to a lead",
            |c| Box::pin(tags(c, &ADD_TAGS)),
        )
        .access(Access::Write)
        .body(TAGS)
        .reply(Reply::Ok, "Lead"),
        route(
            Method::DELETE,
            "/leads/{id}/tags",
            "removeTags",
            "Remove tags from a lead",
            |c| Box::pin(tags(c, &REMOVE_TAGS)),
        )
        .access(Access::Write)
        .body(TAGS)
        .reply(Reply::Ok, "Lead"),
    ]
}

/// `POST /leads`. Optional fields may be `null`, meaning not given, so a client can send back
/// a lead object it read.
pub const CREATE_FIELDS: &[Field] = &[
    req("email", Ty::Str).with(Rule::Email),
    req("firstName", Ty::Str).with(Rule::Name),
    req("lastName", Ty::Str).with(Rule::Name),
    null("phone", Ty::Str).with(Rule::Phone),
    null("source", Ty::Enum(Channel::NAMES)),
    null("sourceId", Ty::Id),
    null("pipelineId", Ty::Id),
    null("stageId", Ty::Id),
    null("status", Ty::Enum(LeadStatus::NAMES)),
    null("score", Ty::Int).with(Rule::Score),
    null("assignedTo", Ty::Id),
    null("customFields", Ty::Object).with(Rule::CustomFields),
    null("tags", Ty::StrList).with(Rule::Tags),
];

/// `POST /leads/batch`.
const BATCH_FIELDS: &[Field] = &[req("leads", Ty::Objects(CREATE_FIELDS))];

/// `PUT /leads/by-email/{email}`: the create fields but the email (the path's). A PUT sends
/// the lead: the names are required whether it creates or updates, so whether a request is
/// valid does not depend on what the database holds.
pub const UPSERT_FIELDS: &[Field] = &[
    req("firstName", Ty::Str).with(Rule::Name),
    req("lastName", Ty::Str).with(Rule::Name),
    null("phone", Ty::Str).with(Rule::Phone),
    null("source", Ty::Enum(Channel::NAMES)),
    null("sourceId", Ty::Id),
    null("pipelineId", Ty::Id),
    null("stageId", Ty::Id),
    null("status", Ty::Enum(LeadStatus::NAMES)),
    null("score", Ty::Int).with(Rule::Score),
    null("assignedTo", Ty::Id),
    null("customFields", Ty::Object).with(Rule::CustomFields),
    null("tags", Ty::StrList).with(Rule::Tags),
];

/// `POST /leads/{id}/merge`.
const MERGE_FIELDS: &[Field] = &[
    req("duplicateIds", Ty::StrList).with(Rule::Ids),
    f("dryRun", Ty::Bool),
];

/// `PATCH /leads/{id}`.
pub const UPDATE_FIELDS: &[Field] = &[
    f("email", Ty::Str).with(Rule::Email),
    f("firstName", Ty::Str).with(Rule::Name),
    f("lastName", Ty::Str).with(Rule::Name),
    null("phone", Ty::Str).with(Rule::Phone),
    null("source", Ty::Enum(Channel::NAMES)),
    null("sourceId", Ty::Id),
    null("pipelineId", Ty::Id),
    null("stageId", Ty::Id),
    f("status", Ty::Enum(LeadStatus::NAMES)),
    f("score", Ty::Int).with(Rule::Score),
    null("assignedTo", Ty::Id),
    f("customFields", Ty::Object).with(Rule::CustomFields),
    f("tags", Ty::StrList).with(Rule::Tags),
];

/// `POST|DELETE /leads/{id}/tags`.
const TAGS: &[Field] = &[req("tags", Ty::StrList).with(Rule::Tags)];

const LIST_PARAMS: &[Param] = &[
    LIMIT,
    CURSOR,
    Param {
        name: "status",
        ty: Ty::Enum(LeadStatus::NAMES),
        doc: "Only this status (comma-separate several)",
    },
    Param {
        name: "source",
        ty: Ty::Enum(Channel::NAMES),
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
        name: "importId",
        ty: Ty::Id,
        doc: "Only leads created by this import job",
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

/// `GET /leads/export`: the list's filters and the format.
const EXPORT_PARAMS: &[Param] = &[
    Param {
        name: "format",
        ty: Ty::Enum(&["csv", "ndjson"]),
        doc: "csv (default) or ndjson",
    },
    LIST_PARAMS[2],
    LIST_PARAMS[3],
    LIST_PARAMS[4],
    LIST_PARAMS[5],
    LIST_PARAMS[6],
    LIST_PARAMS[7],
    LIST_PARAMS[8],
    LIST_PARAMS[9],
    LIST_PARAMS[10],
    LIST_PARAMS[11],
    LIST_PARAMS[12],
    LIST_PARAMS[13],
    LIST_PARAMS[14],
];

async fn export(c: Call) -> Result<Response, AppError> {
    use crate::service::lead::export::{self, Format};
    let filter = filter_of(&c.params);
    let filter: crate::service::lead::LeadFilter = async_graphql::InputType::parse(Some(
        async_graphql::Value::from_json(Value::Object(filter)).map_err(AppError::internal)?,
    ))
    .map_err(|e| AppError::BadRequest(e.into_server_error(Default::default()).message))?;
    let (format, media, name) = match c.params.get("format").and_then(Value::as_str) {
        Some("ndjson") => (Format::Ndjson, "application/x-ndjson", "leads.ndjson"),
        Some("csv") | None => (Format::Csv, "text/csv; charset=utf-8", "leads.csv"),
        Some(_) => {
            return Err(AppError::BadQuery(vec![crate::error::FieldError::new(
                "format",
                "must be one of csv, ndjson",
            )]));
        }
    };
    let rc = c.request_ctx();
    let chunks = export::export(&c.state.app, &rc, &filter, format)
        .await
        .map_err(|e| match e {
            AppError::Validation(fields) => AppError::BadQuery(
                fields
                    .into_iter()
                    .map(|mut f| {
                        f.field = f.field.trim_start_matches("filter.").to_owned();
                        f
                    })
                    .collect(),
            ),
            other => other,
        })?;
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(chunks));
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(media),
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// `sort` values and the `LeadOrderField` each names.
const SORT_FIELDS: &[(&str, &str)] = &[
    ("createdAt", "CREATED_AT"),
    ("updatedAt", "UPDATED_AT"),
    ("score", "SCORE"),
    ("lastName", "LAST_NAME"),
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

/// Query parameters copied into `LeadFilter` as they are, by filter field.
const FILTER_PARAMS: &[(&str, &str)] = &[
    ("sourceId", "sourceId"),
    ("pipelineId", "pipelineId"),
    ("stageId", "stageId"),
    ("tag", "tag"),
    ("assignedTo", "assignedTo"),
    ("importId", "importId"),
    ("q", "search"),
    ("scoreMin", "scoreMin"),
    ("scoreMax", "scoreMax"),
    ("createdAfter", "createdAfter"),
    ("createdBefore", "createdBefore"),
];

/// The `LeadFilter` (GraphQL's shape) of a list's query parameters.
fn filter_of(p: &Map<String, Value>) -> Map<String, Value> {
    let mut filter = Map::new();
    // Comma-separated enum values become a list of GraphQL enum values.
    for (param, key) in [("status", "status"), ("source", "channel")] {
        if let Some(v) = p.get(param).and_then(Value::as_str) {
            let values = v.split(',').map(|s| Value::String(s.trim().to_uppercase()));
            filter.insert(key.into(), Value::Array(values.collect()));
        }
    }
    for (param, key) in FILTER_PARAMS {
        if let Some(v) = p.get(*param) {
            filter.insert((*key).into(), v.clone());
        }
    }
    filter
}

async fn list(c: Call) -> Result<Response, AppError> {
    let p = &c.params;
    let limit = p.get("limit").cloned().unwrap_or(Value::from(20));
    let filter = filter_of(p);
    let sort = p
        .get("sort")
        .and_then(Value::as_str)
        .unwrap_or("-createdAt");
    let (direction, name) = match sort.strip_prefix('-') {
        Some(name) => ("DESC", name),
        None => ("ASC", sort),
    };
    let field = SORT_FIELDS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("CREATED_AT", |(_, f)| f);
    let mut vars = Map::new();
    vars.insert("first".into(), limit.clone());
    if let Some(cursor) = p.get("cursor") {
        vars.insert("after".into(), cursor.clone());
    }
    vars.insert("filter".into(), Value::Object(filter));
    vars.insert(
        "order".into(),
        json!({"field": field, "direction": direction}),
    );
    let mut data = c.run(&LIST, vars).await?;
    Ok(envelope::list(
        envelope::nodes(&mut data),
        envelope::next_cursor(&data),
        limit,
    ))
}

async fn create(mut c: Call) -> Result<Response, AppError> {
    let input = c.input_checked(lead_checks).await?;
    let data = c
        .run(&CREATE, vars([("input", Value::Object(input))]))
        .await?;
    Ok(envelope::created(data))
}

async fn batch(mut c: Call) -> Result<Response, AppError> {
    let mut input = c.input().await?;
    let leads = input.remove("leads").unwrap_or(Value::Array(vec![]));
    // GraphQL names the items `inputs[i]`; the body calls them `leads[i]`.
    let data = c
        .run(&BATCH, vars([("inputs", leads)]))
        .await
        .map_err(|e| match e {
            AppError::Validation(fields) => AppError::Validation(
                fields
                    .into_iter()
                    .map(|mut f| {
                        if let Some(rest) = f.field.strip_prefix("inputs") {
                            f.field = format!("leads{rest}");
                        }
                        f
                    })
                    .collect(),
            ),
            other => other,
        })?;
    Ok(envelope::created(data))
}

async fn upsert(mut c: Call) -> Result<Response, AppError> {
    let mut input = c.input_checked(lead_checks).await?;
    input.insert("email".into(), c.path_value("email"));
    let data = c
        .run(&UPSERT, vars([("input", Value::Object(input))]))
        .await?;
    let lead = data.get("lead").cloned().unwrap_or(Value::Null);
    Ok(if data["outcome"] == "CREATED" {
        envelope::created(lead)
    } else {
        envelope::object(lead)
    })
}

async fn merge(mut c: Call) -> Result<Response, AppError> {
    let mut input = c.input().await?;
    let ids = input.remove("duplicateIds").unwrap_or(Value::Array(vec![]));
    let dry_run = input.remove("dryRun").unwrap_or(Value::Bool(false));
    let vars = vars([("id", c.id()), ("ids", ids), ("dryRun", dry_run)]);
    Ok(envelope::object(c.run(&MERGE, vars).await?))
}

async fn update(mut c: Call) -> Result<Response, AppError> {
    let input = c.input_checked(lead_checks).await?;
    let vars = vars([("id", c.id()), ("input", Value::Object(input))]);
    let data = c.run(&UPDATE, vars).await?;
    Ok(envelope::object(data))
}

async fn tags(mut c: Call, op: &'static Op) -> Result<Response, AppError> {
    let mut input = c.input().await?;
    let tags = input.remove("tags").unwrap_or(Value::Array(vec![]));
    let data = c.run(op, vars([("id", c.id()), ("tags", tags)])).await?;
    Ok(envelope::object(data))
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
