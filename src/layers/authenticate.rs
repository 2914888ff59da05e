//! Authentication as a layer: turns the request's credential into the caller once, for the
//! tenant's limit and the handlers to read.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::credentials::authenticate;
use crate::auth::principal::Principal;
use crate::error::AppError;
use crate::web::AppState;

/// The authentication outcome: the caller, none (no credential), or why the credential failed.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Result<Option<Principal>, AppError>);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Authenticated>() {
            Some(a) => Ok(a.clone()),
            None => Ok(Authenticated(authenticate(state, &parts.headers).await)),
        }
    }
}

/// The layer. Webhooks authenticate by their URL in the handler: a key sent along is refused
/// there, never authenticated or charged here.
pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !super::exempt(path) {
        let outcome = if super::is_webhook(path) {
            Ok(None)
        } else {
            authenticate(&state, req.headers()).await
        };
        req.extensions_mut().insert(Authenticated(outcome));
    }
    next.run(req).await
}
