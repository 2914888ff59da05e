//! The router: GraphQL, REST, GraphiQL, health checks and metrics, behind the layers.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sea_orm::ConnectionTrait;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::AppError;
use crate::layers::hygiene::{NewRequestId, REQUEST_ID};
use crate::layers::{authenticate, client_ip, hygiene, idempotency, limit};
use crate::web::AppState;

/// Builds the router.
///
/// The layers wrap the router once instead of being layered onto each route: axum clones a
/// route's whole service stack for every request.
pub fn build_router(state: AppState) -> Router {
    let mut routes = Router::new();
    if state.config.metrics_bind.is_none() {
        routes = routes.route("/metrics", get(metrics));
    }
    let routes = routes
        .route(
            "/graphql",
            get(crate::graphql::http::get).post(crate::graphql::http::post),
        )
        .route(
            "/graphiql/{file}",
            get(crate::graphql::http::graphiql_asset),
        )
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest("/v1", crate::rest::router())
        .nest("/api", crate::rest::router())
        .fallback(not_found)
        // Inside routing, so a refusal is counted under its route; the last added runs first.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::per_tenant,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::per_ip,
        ))
        // The metrics run outside routing; the matched route template reaches them this way.
        .layer(axum::middleware::from_fn(crate::metrics::keep_matched_path))
        .with_state(state.clone());
    let inner = tower::ServiceBuilder::new()
        .layer(CatchPanicLayer::custom(|_| {
            AppError::internal("handler panicked").into_response()
        }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            client_ip::resolve,
        ))
        .service(routes);
    // A router of its own so the optional compression layer leaves the type the same.
    let mut inner = Router::new().fallback_service(inner);
    if state.config.compression {
        inner = inner.layer(tower_http::compression::CompressionLayer::new());
    }
    let outer = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(hygiene::middleware))
        .layer(SetRequestIdLayer::new(REQUEST_ID, NewRequestId))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .layer(axum::error_handling::HandleErrorLayer::new(transport_error))
        .load_shed()
        .concurrency_limit(state.config.max_concurrent_requests)
        .layer(axum::middleware::from_fn_with_state(
            state.config.request_timeout(),
            deadline,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .service(inner);
    Router::new().fallback_service(outer)
}

/// `GET /`: where things are, as a small page for browsers and JSON for everything else.
async fn root(headers: axum::http::HeaderMap) -> Response {
    let links = [
        ("GraphQL endpoint and GraphiQL", "/graphql"),
        ("REST API (OpenAPI 3.1 document)", "/v1/openapi.json"),
        ("Health", "/healthz"),
        ("Readiness", "/readyz"),
    ];
    if crate::graphql::response::wants_html(&headers) {
        let items: String = links
            .iter()
            .map(|(what, path)| {
                format!("<li><a href=\"{path}\">{what}</a>: <code>{path}</code></li>")
            })
            .collect();
        let page = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>leadgraph</title></head>\
             <body><h1>leadgraph {}</h1><p>A lead-management API.</p><ul>{items}</ul>\
             <p>Documentation: the repository's <code>docs/</code> (start with <code>docs/graphql.md</code> \
             and <code>docs/rest.md</code>).</p></body></html>",
            env!("CARGO_PKG_VERSION")
        );
        return (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            page,
        )
            .into_response();
    }
    Json(serde_json::json!({
        "name": "leadgraph",
        "version": env!("CARGO_PKG_VERSION"),
        "graphql": "/graphql",
        "openapi": "/v1/openapi.json",
        "rest": ["/v1", "/api"],
        "health": "/healthz",
        "ready": "/readyz",
        "docs": "docs/ in the repository: graphql.md, rest.md, authentication.md, events.md",
    }))
    .into_response()
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let ping = tokio::time::timeout(
        Duration::from_secs(2),
        state.db.execute_unprepared("SELECT 1"),
    )
    .await;
    match ping {
        Ok(Ok(_)) => Json(serde_json::json!({"status": "ready"})).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable", "error": "SERVICE_UNAVAILABLE"})),
        )
            .into_response(),
    }
}

/// `GET /metrics`, with the pool's and the caches' current state.
async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(
        &state.db,
        &[
            ("encoded_ids", state.ids.cached()),
            ("api_keys", state.key_cache.len()),
            ("documents", state.documents.len()),
        ],
        &state.delivery_stats,
        state.limits.shared.as_ref().map_or(0, |s| {
            s.fallbacks.load(std::sync::atomic::Ordering::Relaxed)
        }),
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// The router of `--metrics-bind`: `/metrics` only.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Load shedding becomes `503 SERVICE_UNAVAILABLE` with the envelope.
async fn transport_error(err: tower::BoxError) -> Response {
    if err.is::<tower::load_shed::error::Overloaded>() {
        tracing::warn!("request shed: too many requests in flight");
        return AppError::Unavailable.into_response();
    }
    AppError::internal(err).into_response()
}

/// `--request-timeout-ms` bounds a request as a whole (`503 SERVICE_UNAVAILABLE` after it);
/// an upload, which may rightly take longer, is bounded by the time between its body's
/// frames, and then by the timeout once its body has arrived.
async fn deadline(
    State(limit): State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let timed_out = || {
        tracing::warn!("request timed out");
        AppError::Unavailable.into_response()
    };
    let media = crate::http::media_type(req.headers());
    if !crate::http::is_upload(req.method(), req.uri().path(), &media) {
        return tokio::time::timeout(limit, next.run(req))
            .await
            .unwrap_or_else(|_| timed_out());
    }
    let arrived = std::sync::Arc::new(tokio::sync::Notify::new());
    let (parts, body) = req.into_parts();
    let body = axum::body::Body::from_stream(idle_bounded(body, limit, arrived.clone()));
    let run = next.run(axum::extract::Request::from_parts(parts, body));
    tokio::pin!(run);
    tokio::select! {
        resp = &mut run => return resp,
        () = arrived.notified() => {}
    }
    tokio::time::timeout(limit, run)
        .await
        .unwrap_or_else(|_| timed_out())
}

/// `body`, failing when no frame arrives for `limit`; `arrived` is told when it has ended.
fn idle_bounded(
    body: axum::body::Body,
    limit: Duration,
    arrived: std::sync::Arc<tokio::sync::Notify>,
) -> impl futures::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Send + 'static {
    use futures::StreamExt;
    futures::stream::unfold(Some(body.into_data_stream()), move |frames| {
        let arrived = arrived.clone();
        async move {
            let mut frames = frames?;
            match tokio::time::timeout(limit, frames.next()).await {
                Ok(Some(frame)) => Some((frame, Some(frames))),
                Ok(None) => {
                    arrived.notify_one();
                    None
                }
                Err(_) => {
                    let why = format!("no data for {} ms", limit.as_millis());
                    Some((Err(axum::Error::new(why)), None))
                }
            }
        }
    })
}

async fn not_found() -> AppError {
    AppError::NotFound
}
