//! GraphQL over HTTP: `POST /graphql` (JSON, batches capped), `GET /graphql` (queries only),
//! and GraphiQL for browsers. Authentication runs first; its failures are `401` with a
//! GraphQL error body.

use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{BatchRequest, BatchResponse};
use async_graphql_axum::GraphQLProtocol;
use axum::body::Body;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::FutureExt;

use crate::context::RequestCtx;
use crate::error::AppError;
use crate::graphql::documents::Unparsed;
use crate::graphql::limits::{Limits, analyze, operation};
use crate::graphql::loaders::LazyLoaders;
use crate::graphql::nesting;
use crate::graphql::response::{
    Media, app_error_response, bad_request, is_request_error, json_response, negotiate, wants_html,
};
use crate::graphql::schema::execute_detached;
use crate::layers::authenticate::Authenticated;
use crate::layers::client_ip::ClientIp;
use crate::layers::hygiene::RequestId;
use crate::layers::limit::ReportedBudget;
use crate::rate_limit::Budget;
use crate::web::AppState;

/// `GET /graphql`: a WebSocket upgrade (subscriptions), GraphiQL for browsers, otherwise a
/// query from the query string.
#[expect(clippy::too_many_arguments, reason = "axum extractors")]
pub async fn get(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    auth: Authenticated,
    budget: ReportedBudget,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    protocol: Result<GraphQLProtocol, StatusCode>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Ok(ws) = upgrade {
        return match protocol {
            Ok(protocol) => crate::graphql::ws::upgrade(state, protocol, ws),
            Err(status) => (
                status,
                "Sec-WebSocket-Protocol must be graphql-transport-ws",
            )
                .into_response(),
        };
    }
    let query = uri.query().unwrap_or_default();
    if wants_html(&headers) && !query.contains("query=") {
        return crate::graphql::graphiql::response(state.config.graphiql_cdn);
    }
    let Some(media) = negotiate(&headers) else {
        return StatusCode::NOT_ACCEPTABLE.into_response();
    };
    let request = match parse_get(query) {
        Ok(r) => r,
        Err(GetError::TooDeep(depth)) => return app_error_response(&too_deep(depth), media),
        Err(GetError::Invalid(e)) => {
            return bad_request(media, format!("Invalid GraphQL request: {e}"));
        }
    };
    if is_mutation(&state, &request) {
        let mut resp = app_error_response(
            &AppError::BadRequest("Mutations are only accepted over POST".into()),
            media,
        );
        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let call = Call {
        state,
        auth,
        budget: budget.0,
        ip,
        request_id,
    };
    execute(call, BatchRequest::Single(request), media).await
}

/// A GET request's parameters as GraphQL over HTTP names them. async-graphql's own
/// `parse_query_string` (7.2.1) looks for `operation_name`, so `operationName` went unread and a
/// document of several operations could not be run over GET; the old spelling is still taken.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    #[serde(default)]
    query: String,
    #[serde(alias = "operation_name")]
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// Why a GET's query string holds no request.
enum GetError {
    /// Variables or extensions nested too deep.
    TooDeep(usize),
    /// Not a GraphQL request.
    Invalid(String),
}

/// The GraphQL request of a GET's query string; variables and extensions are JSON texts.
fn parse_get(query: &str) -> Result<async_graphql::Request, GetError> {
    let p: GetParams =
        serde_urlencoded::from_str(query).map_err(|e| GetError::Invalid(e.to_string()))?;
    for text in [&p.variables, &p.extensions].into_iter().flatten() {
        let depth = nesting::json(text.as_bytes(), nesting::MAX_NESTING);
        if depth > nesting::MAX_NESTING {
            return Err(GetError::TooDeep(depth));
        }
    }
    let mut request = async_graphql::Request::new(p.query);
    request.operation_name = p.operation_name;
    if let Some(text) = p.variables {
        request.variables = serde_json::from_str(&text)
            .map_err(|e| GetError::Invalid(format!("invalid variables: {e}")))?;
    }
    if let Some(text) = p.extensions {
        request.extensions = serde_json::from_str(&text)
            .map_err(|e| GetError::Invalid(format!("invalid extensions: {e}")))?;
    }
    Ok(request)
}

/// Whether the operation a request would run is a mutation (unparsable documents are left
/// to the executor to report).
fn is_mutation(state: &AppState, request: &async_graphql::Request) -> bool {
    let mutation = |doc: &ExecutableDocument| {
        operation(doc, request.operation_name.as_deref())
            .is_some_and(|(_, op)| op.node.ty == OperationType::Mutation)
    };
    state
        .documents
        .inspect(&request.query, mutation)
        .unwrap_or(false)
}

/// Whether a `POST /graphql` body holds a mutation (for idempotency keys; a body that is no
/// GraphQL request holds none).
pub fn has_mutation(state: &AppState, body: &[u8]) -> bool {
    match serde_json::from_slice::<BatchRequest>(body) {
        Ok(BatchRequest::Single(r)) => is_mutation(state, &r),
        Ok(BatchRequest::Batch(list)) => list.iter().any(|r| is_mutation(state, r)),
        Err(_) => false,
    }
}

/// `POST /graphql` with an `application/json` body: one request or a batch (JSON array).
pub async fn post(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    auth: Authenticated,
    budget: ReportedBudget,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(media) = negotiate(&headers) else {
        return StatusCode::NOT_ACCEPTABLE.into_response();
    };
    let batch = match crate::http::media_type(&headers).as_str() {
        "application/json" => match json_batch(&state, body).await {
            Ok(b) => b,
            Err(resp) => return resp(media),
        },
        "multipart/form-data" => match multipart_batch(&state, &headers, body).await {
            Ok(b) => b,
            Err(message) => return bad_request(media, message),
        },
        _ => {
            let mut resp = bad_request(
                media,
                "Content-Type must be application/json (or multipart/form-data for uploads)",
            );
            *resp.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
            return resp;
        }
    };
    if let BatchRequest::Batch(list) = &batch {
        let max = state.config.graphql_max_batch;
        if list.is_empty() || list.len() > max {
            return bad_request(media, format!("A batch must hold 1 to {max} operations"));
        }
    }
    let call = Call {
        state,
        auth,
        budget: budget.0,
        ip,
        request_id,
    };
    execute(call, batch, media).await
}

/// Why a body holds no request: the response to send, once the media type is known.
type Refusal = Box<dyn FnOnce(Media) -> Response + Send>;

/// A JSON body's request or batch, its nesting bounded before it is parsed.
async fn json_batch(state: &AppState, body: Body) -> Result<BatchRequest, Refusal> {
    let bytes = match crate::http::read_body(body, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return Err(Box::new(move |media| app_error_response(&e, media))),
    };
    // The body's JSON nests the request, its variables and any batch around the values.
    let depth = nesting::json(&bytes, nesting::MAX_NESTING + 3);
    if depth > nesting::MAX_NESTING + 3 {
        return Err(Box::new(move |media| {
            app_error_response(&too_deep(depth), media)
        }));
    }
    serde_json::from_slice(&bytes).map_err(|e| -> Refusal {
        let message = format!("Invalid GraphQL request body: {e}");
        Box::new(move |media| bad_request(media, message))
    })
}

/// A GraphQL multipart request (uploads): its files are spooled to temporary files as they
/// arrive, at most one, of at most `--max-import-bytes`.
async fn multipart_batch(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<BatchRequest, String> {
    use futures::TryStreamExt;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let reader = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .into_async_read();
    let opts = async_graphql::http::MultipartOptions::default()
        .max_file_size(state.config.max_import_bytes)
        .max_num_files(1);
    async_graphql::http::receive_batch_body(content_type, reader, opts)
        .await
        .map_err(|e| format!("Invalid GraphQL multipart request: {e}"))
}

/// What the handlers hand to [`execute`].
struct Call {
    state: AppState,
    auth: Authenticated,
    budget: Option<Budget>,
    ip: Option<std::net::IpAddr>,
    request_id: String,
}

async fn execute(call: Call, batch: BatchRequest, media: Media) -> Response {
    let Call {
        state,
        auth,
        budget,
        ip,
        request_id,
    } = call;
    let principal = match auth.0 {
        Ok(p) => p,
        Err(e) => return app_error_response(&e, media),
    };
    let limits = Limits::from_config(&state.config);
    let rc = RequestCtx {
        principal,
        ip,
        request_id,
        credential_checks: Default::default(),
    };
    // One set of loaders for the whole batch, as async-graphql's own batch execution shares it.
    let loaders = LazyLoaders::default();
    let run_one = |c: Checked| {
        let request = c
            .request
            .data(rc.clone())
            .data(state.app.clone())
            .data(loaders.clone());
        execute_detached(&state.tasks, &state.schema, request)
            .map(move |r| with_feedback(r, c.cost, limits.max_complexity, budget))
    };
    let (response, operation) = match batch {
        BatchRequest::Single(r) => match check_limits(&state, r, &limits) {
            Ok(mut c) => {
                let name = std::mem::take(&mut c.name);
                (BatchResponse::Single(run_one(c).await), name)
            }
            Err(e) => return app_error_response(&e, media),
        },
        BatchRequest::Batch(list) => {
            let mut checked = Vec::with_capacity(list.len());
            for r in list {
                match check_limits(&state, r, &limits) {
                    Ok(c) => checked.push(c),
                    Err(e) => return app_error_response(&e, media),
                }
            }
            let responses = futures::future::join_all(checked.into_iter().map(run_one)).await;
            (BatchResponse::Batch(responses), "batch".to_owned())
        }
    };
    let status = match &response {
        BatchResponse::Single(r) => status_of(r, media),
        BatchResponse::Batch(_) => StatusCode::OK,
    };
    let first_code = match &response {
        BatchResponse::Single(r) => first_code(r),
        BatchResponse::Batch(list) => list.iter().find_map(first_code),
    };
    let mut resp = json_response(status, media, &response);
    resp.extensions_mut()
        .insert(crate::metrics::OperationName(operation));
    if let Some(code) = first_code {
        resp.extensions_mut()
            .insert(crate::metrics::ErrorCode(code.to_owned()));
    }
    resp
}

/// Cost feedback, as large GraphQL APIs give it: the document's cost and the budget left.
fn with_feedback(
    r: async_graphql::Response,
    cost: usize,
    maximum: usize,
    budget: Option<Budget>,
) -> async_graphql::Response {
    let object = |pairs: &[(&str, u64)]| {
        async_graphql::Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (async_graphql::Name::new(k), async_graphql::Value::from(*v)))
                .collect(),
        )
    };
    let r = r.extension(
        "cost",
        object(&[("requested", cost as u64), ("maximum", maximum as u64)]),
    );
    match budget {
        Some(b) => r.extension(
            "rateLimit",
            object(&[
                ("limit", u64::from(b.limit)),
                ("remaining", u64::from(b.remaining)),
                ("resetSeconds", b.reset),
            ]),
        ),
        None => r,
    }
}

/// The refusal of text nested deeper than the parsers may recurse.
fn too_deep(depth: usize) -> AppError {
    AppError::QueryTooComplex {
        limit: "nesting",
        value: depth,
        max: nesting::MAX_NESTING,
    }
}

/// A request that passed the limits, with what its execution needs to know.
pub(crate) struct Checked {
    /// The request, its document parsed.
    pub(crate) request: async_graphql::Request,
    /// The document's cost (0 when it did not parse).
    cost: usize,
    /// The operation's name, empty when anonymous; for metrics.
    name: String,
}

/// Parses a request once and refuses it when it is over a limit; unparsable documents are
/// left to the executor to report as GraphQL errors.
pub(crate) fn check_limits(
    state: &AppState,
    mut request: async_graphql::Request,
    limits: &Limits,
) -> Result<Checked, AppError> {
    let doc = match state.documents.parse(&request.query) {
        Ok(doc) => doc,
        Err(Unparsed::TooDeep(depth)) => return Err(too_deep(depth)),
        Err(Unparsed::Syntax(_)) => {
            return Ok(Checked {
                request,
                cost: 0,
                name: String::new(),
            });
        }
    };
    let (name, analysis) = analyze(&doc, request.operation_name.as_deref(), &request.variables);
    limits.check(&analysis)?;
    let name = name.map_or_else(String::new, |n| n.to_string());
    request.set_parsed_query(doc);
    Ok(Checked {
        request,
        cost: analysis.complexity,
        name,
    })
}

/// The code of a response's first error that has one.
fn first_code(r: &async_graphql::Response) -> Option<&str> {
    r.errors
        .iter()
        .find_map(|e| match e.extensions.as_ref()?.get("code")? {
            async_graphql::Value::String(code) => Some(code.as_str()),
            _ => None,
        })
}

/// `200` unless the response has no data: then the first error's code decides, and a request
/// error (unparsable or invalid document) is `400` for `application/graphql-response+json`.
fn status_of(r: &async_graphql::Response, media: Media) -> StatusCode {
    if r.errors.is_empty() || r.data != async_graphql::Value::Null {
        return StatusCode::OK;
    }
    if let Some(status) = first_code(r).and_then(AppError::status_for_code) {
        return status;
    }
    if is_request_error(r) && media == Media::GraphqlResponse {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

/// `GET /graphiql/{file}`: one of GraphiQL's files.
pub async fn graphiql_asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let Some((media_type, body)) = crate::graphql::graphiql::file(&file) else {
        return AppError::NotFound.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(media_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}
