//! What every REST route shares: its declaration (read by the router and the OpenAPI
//! document), the checks that run before its own code (credential, access, query
//! parameters), and [`Call`], through which its code reads the body and runs its GraphQL
//! operation.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use async_graphql::parser::types::ExecutableDocument;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::{Map, Value};

use super::fields::{self, Field, Ty};
use crate::auth::principal::Principal;
use crate::context::RequestCtx;
use crate::error::AppError;
use crate::graphql::loaders::LazyLoaders;
use crate::layers::authenticate::Authenticated;
use crate::layers::client_ip::ClientIp;
use crate::layers::hygiene::RequestId;
use crate::service::validate::Errors;
use crate::web::AppState;

/// A route's own code: reads what it needs from the call and answers.
pub type Handler = fn(Call) -> Pin<Box<dyn Future<Output = Result<Response, AppError>> + Send>>;

/// Who may call a route, checked before its input is read (so a read key's invalid create
/// is `403`, not `422`); the operation's guards check again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    unpredictable_function_pointer_comparisons,
    reason = "compared with Public only"
)]
pub enum Access {
    /// No credential (login and friends).
    Public,
    /// Any credential.
    Read,
    /// A credential that may write: a session or a full-scope key of a paying plan.
    Write,
    /// A user session; API keys are refused.
    Session,
    /// The resource's own rule (the service checks it again).
    Check(fn(&Principal) -> Result<(), AppError>),
}

/// How a route answers on success, as the OpenAPI document states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `200` with the object.
    Ok,
    /// `201` with the object.
    Created,
    /// `201` with an array of objects (a batch).
    CreatedMany,
    /// `200` with a file (CSV or NDJSON), not an envelope.
    File,
    /// `202` with the object (work that goes on in the background).
    Accepted,
    /// `200` with `{id, deleted: true}`.
    Deleted,
    /// `200` with an array and `meta.nextCursor`.
    List,
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

/// One REST route.
#[derive(Debug)]
pub struct Route {
    /// Method.
    pub method: Method,
    /// Path below `/v1` or `/api`, axum syntax.
    pub path: &'static str,
    /// The OpenAPI operation ID (after the `v1_`/`api_` prefix).
    pub id: &'static str,
    /// OpenAPI summary.
    pub summary: &'static str,
    /// OpenAPI tag: the resource.
    pub tag: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Body fields, for routes with a body.
    pub body: Option<&'static [Field]>,
    /// Accepted query parameters.
    pub query: &'static [Param],
    /// The success reply.
    pub reply: Reply,
    /// The response's data schema (an OpenAPI component), when any.
    pub schema: Option<&'static str>,
    /// Whether it may be refused with `409` (a delete while leads still use the row).
    pub conflicts: bool,
    /// Whether its body is a file (CSV or NDJSON) rather than JSON fields.
    pub upload: bool,
    /// Its code.
    pub handler: Handler,
}

impl Route {
    /// A route of `tag` answering `200` with nothing else declared yet.
    pub fn new(
        tag: &'static str,
        method: Method,
        path: &'static str,
        id: &'static str,
        summary: &'static str,
        handler: Handler,
    ) -> Route {
        Route {
            method,
            path,
            id,
            summary,
            tag,
            access: Access::Read,
            body: None,
            query: &[],
            reply: Reply::Ok,
            schema: None,
            conflicts: false,
            upload: false,
            handler,
        }
    }

    /// Who may call it.
    pub fn access(self, access: Access) -> Route {
        Route { access, ..self }
    }

    /// Its body's fields.
    pub fn body(self, fields: &'static [Field]) -> Route {
        Route {
            body: Some(fields),
            ..self
        }
    }

    /// Its query parameters.
    pub fn query(self, query: &'static [Param]) -> Route {
        Route { query, ..self }
    }

    /// Its success reply and the OpenAPI component of its data.
    pub fn reply(self, reply: Reply, schema: &'static str) -> Route {
        Route {
            reply,
            schema: Some(schema),
            ..self
        }
    }

    /// Takes a file as its body.
    pub fn upload(self) -> Route {
        Route {
            upload: true,
            ..self
        }
    }

    /// May be refused with `409`.
    pub fn conflicts(self) -> Route {
        Route {
            conflicts: true,
            ..self
        }
    }

    fn check_access(&self, p: &Principal) -> Result<(), AppError> {
        match self.access {
            Access::Public | Access::Read => Ok(()),
            Access::Write => p.check_write(),
            Access::Session => p.check_session(),
            Access::Check(check) => check(p),
        }
    }
}

/// One request to a route, after the shared checks.
pub struct Call {
    /// The route.
    pub route: &'static Route,
    /// The state.
    pub state: AppState,
    /// The caller (`None` on public routes).
    pub principal: Option<Principal>,
    /// The checked query parameters.
    pub params: Map<String, Value>,
    path: HashMap<String, String>,
    ip: Option<std::net::IpAddr>,
    request_id: String,
    headers: HeaderMap,
    // In a mutex only to make `Call` `Sync`, so `&Call` may be held across an await.
    body: std::sync::Mutex<Option<Body>>,
}

impl Call {
    /// The `{id}` path segment, as a GraphQL variable value.
    pub fn id(&self) -> Value {
        self.path
            .get("id")
            .map_or(Value::Null, |id| Value::String(id.clone()))
    }

    /// The request's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The request's body, unread (for routes that stream it).
    pub fn take_body(&self) -> Body {
        match self.body.lock() {
            Ok(mut b) => b.take().unwrap_or_else(Body::empty),
            Err(_) => Body::empty(),
        }
    }

    /// The request as the services see it, for routes that call a service directly.
    pub fn request_ctx(&self) -> RequestCtx {
        RequestCtx {
            principal: self.principal.clone(),
            ip: self.ip,
            request_id: self.request_id.clone(),
            credential_checks: Default::default(),
        }
    }

    /// A path segment (`{email}`), as a GraphQL variable value.
    pub fn path_value(&self, name: &str) -> Value {
        self.path
            .get(name)
            .map_or(Value::Null, |v| Value::String(v.clone()))
    }

    /// Reads the body and checks it against the route's fields; every problem is reported
    /// at once.
    pub async fn input(&mut self) -> Result<Map<String, Value>, AppError> {
        self.input_checked(|_, _| {}).await
    }

    /// As [`Call::input`], with `more` adding the route's own checks when the shape already
    /// failed, so one answer lists every problem.
    pub async fn input_checked(
        &mut self,
        more: impl FnOnce(&Map<String, Value>, &mut Errors),
    ) -> Result<Map<String, Value>, AppError> {
        let spec = self.route.body.unwrap_or(&[]);
        let body = match self.body.get_mut() {
            Ok(body) => body.take().unwrap_or_default(),
            Err(_) => Body::empty(),
        };
        let body = read_json(&self.state, &self.headers, body).await?;
        let mut errors = Errors::new();
        let input = fields::check(spec, &body, &mut errors);
        if !errors.is_empty() {
            more(&input, &mut errors);
        }
        errors.finish()?;
        Ok(input)
    }

    /// Runs `op` as the caller; returns its `r` field. A list's refusals of its arguments
    /// are named after the query parameters they came from (`cursor`, `sourceId` …) and
    /// answered `400`.
    pub async fn run(&self, op: &Op, vars: Map<String, Value>) -> Result<Value, AppError> {
        let result = run(
            &self.state,
            op,
            vars,
            self.principal.clone(),
            self.ip,
            self.request_id.clone(),
        )
        .await;
        let query = self.route.query;
        let named = |name: &str| {
            let rest = match name {
                "after" | "before" if query.iter().any(|p| p.name == "cursor") => "cursor",
                "first" => "limit",
                "types" => "type",
                other => other.strip_prefix("filter.").unwrap_or(other),
            };
            rest.to_owned()
        };
        result.map_err(|e| match e {
            AppError::Validation(fields) if !query.is_empty() => AppError::BadQuery(
                fields
                    .into_iter()
                    .map(|mut f| {
                        f.field = named(&f.field);
                        f
                    })
                    .collect(),
            ),
            other => other,
        })
    }
}

/// A route's GraphQL operation, parsed on first use. Its one field is aliased `r`.
pub struct Op {
    text: &'static str,
    parsed: OnceLock<Result<ExecutableDocument, String>>,
}

impl Op {
    /// The operation of `text`.
    pub const fn new(text: &'static str) -> Op {
        Op {
            text,
            parsed: OnceLock::new(),
        }
    }

    /// A request for the operation (a copy of the parsed document, no parsing).
    fn request(&self) -> Result<async_graphql::Request, AppError> {
        let parsed = self.parsed.get_or_init(|| {
            async_graphql::parser::parse_query(self.text).map_err(|e| format!("{e}: {}", self.text))
        });
        let doc = parsed.as_ref().map_err(AppError::internal)?.clone();
        let mut req = async_graphql::Request::new(String::new());
        req.set_parsed_query(doc);
        Ok(req)
    }
}

/// `limit`: the page size of a paged list.
pub const LIMIT: Param = Param {
    name: "limit",
    ty: Ty::Int,
    doc: "Page size, 1 to 100 (default 20)",
};

/// `cursor`: where a paged list continues.
pub const CURSOR: Param = Param {
    name: "cursor",
    ty: Ty::Str,
    doc: "`meta.nextCursor` of the previous page",
};

/// The handlers of routes whose whole work is their operation: `op`'s `r` field answers, the
/// body (when the route has one) is its `input`, the `{id}` segment its `id`.
pub mod plain {
    use axum::response::Response;
    use serde_json::{Map, Value};

    use super::{Call, Op, vars};
    use crate::error::AppError;
    use crate::rest::envelope;

    /// `200` with the whole list.
    pub async fn list(c: Call, op: &'static Op) -> Result<Response, AppError> {
        Ok(envelope::all(c.run(op, Map::new()).await?))
    }

    /// `201` with what the body created.
    pub async fn create(mut c: Call, op: &'static Op) -> Result<Response, AppError> {
        let input = c.input().await?;
        let data = c.run(op, vars([("input", Value::Object(input))])).await?;
        Ok(envelope::created(data))
    }

    /// `200` with what the operation on `{id}` returns.
    pub async fn by_id(c: Call, op: &'static Op) -> Result<Response, AppError> {
        Ok(envelope::object(c.run(op, vars([("id", c.id())])).await?))
    }

    /// `200` with the object `{id}` after the body's changes.
    pub async fn update(mut c: Call, op: &'static Op) -> Result<Response, AppError> {
        let input = c.input().await?;
        let vars = vars([("id", c.id()), ("input", Value::Object(input))]);
        Ok(envelope::object(c.run(op, vars).await?))
    }

    /// `200` with `{id, deleted: true}`.
    pub async fn delete(c: Call, op: &'static Op) -> Result<Response, AppError> {
        Ok(envelope::deleted(c.run(op, vars([("id", c.id())])).await?))
    }
}

/// GraphQL variables from pairs.
pub fn vars<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Runs `op` as `principal`; returns the `r` field of its data.
pub async fn run(
    state: &AppState,
    op: &Op,
    vars: Map<String, Value>,
    principal: Option<Principal>,
    ip: Option<std::net::IpAddr>,
    request_id: String,
) -> Result<Value, AppError> {
    let request = op
        .request()?
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
        return Err(super::envelope::error_from_graphql(&response.errors));
    }
    let data = response.data.into_json().map_err(AppError::internal)?;
    // Taken, not copied: a page of leads is the whole answer.
    Ok(match data {
        Value::Object(mut fields) => fields.remove("r").unwrap_or(Value::Null),
        _ => Value::Null,
    })
}

/// The axum handler of `route`: the shared checks, then the route's own code.
#[expect(clippy::too_many_arguments, reason = "axum extractors")]
pub async fn serve(
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
    // Authentication, then access, then the input.
    let principal = if route.access == Access::Public {
        None
    } else {
        let p = auth?.ok_or(AppError::MissingToken)?;
        route.check_access(&p)?;
        Some(p)
    };
    let params = check_query(route.query, query.as_deref())?;
    let call = Call {
        route,
        state,
        principal,
        params,
        path,
        ip,
        request_id,
        headers,
        body: std::sync::Mutex::new(Some(body)),
    };
    (route.handler)(call).await
}

/// Checks query parameters: unknown, repeated or ill-typed ones are `400` with every problem.
fn check_query(params: &[Param], raw: Option<&str>) -> Result<Map<String, Value>, AppError> {
    let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(raw.unwrap_or(""))
        .map_err(|_| AppError::BadRequest("The query string is malformed".into()))?;
    let mut errors = Errors::new();
    let mut out = Map::new();
    for (key, value) in pairs {
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
            Ty::Id => crate::ids::Ids::is_shaped(&value).then(|| Value::String(value.clone())),
            Ty::Enum(values) => value
                .split(',')
                .map(str::trim)
                .all(|i| values.contains(&i))
                .then(|| Value::String(value.clone())),
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

/// Reads a JSON object body, honouring the size limit; no body and no type is `{}`.
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
