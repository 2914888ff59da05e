//! The REST compatibility layer (docs/rest.md), mounted under `/v1` and `/api`. One
//! module per resource declares its routes and holds their code; each route runs a GraphQL
//! operation of the same schema, so guards, validation, audit and loaders are shared.

pub mod api_keys;
pub mod auth;
pub mod envelope;
pub mod events;
pub mod fields;
pub mod imports;
pub mod leads;
pub mod openapi;
pub mod pipelines;
pub mod route;
pub mod sources;
pub mod stats;
pub mod webhook;
pub mod webhook_endpoints;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter, on};

use self::route::Route;
use crate::error::AppError;
use crate::web::AppState;

/// Every REST route, by resource (webhooks and the OpenAPI document are served separately).
pub static ROUTES: std::sync::LazyLock<Vec<Route>> = std::sync::LazyLock::new(|| {
    [
        auth::routes(),
        leads::routes(),
        sources::routes(),
        pipelines::routes(),
        stats::routes(),
        api_keys::routes(),
        events::routes(),
        webhook_endpoints::routes(),
        imports::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
});

/// The routes, to nest under `/v1` and `/api`.
pub fn router() -> Router<AppState> {
    let mut by_path: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for route in ROUTES.iter() {
        let filter = MethodFilter::try_from(route.method.clone()).unwrap_or(MethodFilter::GET);
        let method = on(
            filter,
            move |state, path, ip, id, auth, query, headers, body| async move {
                route::serve(route, state, path, ip, id, auth, query, headers, body)
                    .await
                    .unwrap_or_else(IntoResponse::into_response)
            },
        );
        match by_path.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, methods)) => *methods = std::mem::take(methods).merge(method),
            None => by_path.push((route.path, method)),
        }
    }
    let router = by_path
        .into_iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, methods.fallback(method_not_allowed))
        });
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
