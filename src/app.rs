//! Application state and the router; `main` and the tests both build the app here.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rand::{RngCore, TryRngCore};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::jwt::JwtKeys;
use crate::auth::key_cache::KeyCache;
use crate::auth::password;
use crate::auth::usage::UsageTracker;
use crate::client_ip;
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::graphql::schema::{self, AppSchema};
use crate::ids::Ids;
use crate::service::settings;

/// Everything a request handler may need. Built once per process.
pub struct App {
    /// The database pool.
    pub db: DatabaseConnection,
    /// Configuration in force.
    pub config: Config,
    /// Opaque ID codec.
    pub ids: Ids,
    /// Access token keys.
    pub jwt: JwtKeys,
    /// API key look-up cache.
    pub key_cache: KeyCache,
    /// Batched key usage.
    pub usage: UsageTracker,
    /// The GraphQL schema, with full and with request-only validation.
    pub schema: AppSchema,
    /// A password hash verified when a login names no user, so both cost the same.
    pub dummy_hash: String,
    /// Rate limiters.
    pub limits: crate::rate_limit::RateLimits,
    /// The REST routes' GraphQL operations, parsed once.
    pub rest_ops: crate::rest::operations::Operations,
    /// Background work started by requests (duplicate detection), awaited at shutdown.
    pub tasks: tokio_util::task::TaskTracker,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// Parsed GraphQL documents, by text.
    pub documents: crate::graphql::documents::Documents,
    /// GraphiQL's scripts, when served locally.
    pub graphiql_assets: Option<crate::graphql::graphiql::Assets>,
}

/// Cheap-to-clone handle on [`App`].
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl App {
    /// Builds the state on a migrated database, loading or creating the deployment secrets.
    pub async fn build(config: Config, db: DatabaseConnection) -> AppResult<AppState> {
        let jwt_secret = match &config.jwt_secret {
            Some(s) if s.len() >= 32 => s.clone(),
            Some(_) => {
                return Err(AppError::BadRequest(
                    "LEADGRAPH_JWT_SECRET must be at least 32 bytes".into(),
                ));
            }
            None => {
                settings::get_or_init(&db, "jwt_secret", || {
                    let mut bytes = [0u8; 64];
                    rand::rngs::OsRng.unwrap_err().fill_bytes(&mut bytes);
                    hex::encode(bytes)
                })
                .await?
            }
        };
        let alphabet = match &config.id_alphabet {
            Some(a) => a.clone(),
            None => settings::get_or_init(&db, "id_alphabet", Ids::generate_alphabet).await?,
        };
        let ids = Ids::new(&alphabet).map_err(AppError::BadRequest)?;
        let dummy_hash = password::hash_async(password::generate()).await?;
        let graphiql_assets = match &config.graphiql_assets {
            Some(dir) => {
                Some(crate::graphql::graphiql::Assets::load(dir).map_err(AppError::BadRequest)?)
            }
            None => None,
        };
        Ok(AppState(Arc::new(App {
            key_cache: KeyCache::new(Duration::from_secs(config.key_cache_ttl_secs)),
            usage: UsageTracker::default(),
            schema: schema::build(&config),
            jwt: JwtKeys::new(jwt_secret.as_bytes()),
            ids,
            dummy_hash,
            tasks: tokio_util::task::TaskTracker::new(),
            metrics: crate::metrics::Metrics::default(),
            documents: Default::default(),
            graphiql_assets,
            limits: crate::rate_limit::RateLimits::new(&config),
            rest_ops: crate::rest::operations::Operations::parse().map_err(AppError::internal)?,
            config,
            db,
        })))
    }
}

/// The request's ID, set from `X-Request-Id` or generated.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let id = parts
            .headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(RequestId(id))
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Makes the IDs of requests that come without one: UUID v4 from the thread's CSPRNG.
/// tower-http's `MakeRequestUuid` asks the kernel for the bytes, one `getrandom` system call
/// per request.
#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(
        &mut self,
        _: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut buf = uuid::Uuid::encode_buffer();
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

/// Builds the router: GraphQL, health checks and middleware.
///
/// The middleware wraps the router once instead of being layered onto it: axum clones a
/// route's whole service stack for every request, so with a dozen layers on each route that
/// cloning (about 40 boxed services) cost more than authenticating the request.
pub fn build_router(state: AppState) -> Router {
    let mut routes = Router::new();
    if state.config.metrics_bind.is_none() {
        routes = routes.route("/metrics", get(crate::metrics::handler));
    }
    let routes = routes
        .route(
            "/graphql",
            get(crate::graphql::http::get).post(crate::graphql::http::post),
        )
        .route("/graphiql/{file}", get(crate::graphql::graphiql::asset))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest("/v1", crate::rest::router())
        .nest("/api", crate::rest::router())
        .fallback(not_found)
        // Inside routing, so a refusal is counted under its route.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::rate_limit::middleware,
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
        .layer(axum::middleware::from_fn(crate::hygiene::middleware))
        .layer(SetRequestIdLayer::new(REQUEST_ID, NewRequestId))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(axum::error_handling::HandleErrorLayer::new(transport_error))
        .load_shed()
        .concurrency_limit(state.config.max_concurrent_requests)
        .timeout(state.config.request_timeout())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .service(inner);
    Router::new().fallback_service(outer)
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

/// The router of `--metrics-bind`: `/metrics` only.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(crate::metrics::handler))
        .with_state(state)
}

/// Timeouts and load shedding become `503 SERVICE_UNAVAILABLE` with the envelope.
async fn transport_error(err: tower::BoxError) -> Response {
    if err.is::<tower::timeout::error::Elapsed>() {
        tracing::warn!("request timed out");
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        tracing::warn!("request shed: too many requests in flight");
    } else {
        return AppError::internal(err).into_response();
    }
    AppError::Unavailable.into_response()
}

async fn not_found() -> AppError {
    AppError::NotFound
}
