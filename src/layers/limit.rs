//! The rate limits as layers: the client IP's before authentication (so failed credentials
//! count), the tenant's after it. Every response carries `X-RateLimit-Limit` (requests per
//! minute), `X-RateLimit-Remaining` (requests that may be sent at once now) and
//! `X-RateLimit-Reset` (seconds until the budget is full again), for whichever budget has less
//! left.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::authenticate::Authenticated;
use super::client_ip::ClientIp;
use crate::auth::principal::Principal;
use crate::error::AppError;
use crate::rate_limit::{Budget, Decision, RateLimits};
use crate::web::AppState;

/// The budget reported on the response, also given to GraphQL for its `extensions`.
#[derive(Debug, Clone, Copy)]
pub struct ReportedBudget(pub Option<Budget>);

impl<S: Send + Sync> FromRequestParts<S> for ReportedBudget {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ReportedBudget>()
            .copied()
            .unwrap_or(ReportedBudget(None)))
    }
}

// Parsed once rather than per response, as `insert` with a `&str` would.
const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Sets the `X-RateLimit-*` headers from `b`.
pub fn set_headers(headers: &mut HeaderMap, b: Budget) {
    headers.insert(LIMIT, HeaderValue::from(b.limit));
    headers.insert(REMAINING, HeaderValue::from(b.remaining));
    headers.insert(RESET, HeaderValue::from(b.reset));
}

/// Of the budget reported so far and `b`, the one that binds first: the one with less left.
fn tighter(reported: Option<Budget>, b: Budget) -> Budget {
    match reported {
        Some(r) if r.remaining < b.remaining => r,
        _ => b,
    }
}

/// The `429` of a refusal by the limit `scope`.
pub fn refuse(graphql: bool, scope: &'static str, budget: Budget, retry_after: u64) -> Response {
    let err = AppError::RateLimited { retry_after };
    let mut resp = if graphql {
        crate::graphql::response::error_response(&err)
    } else {
        err.into_response()
    };
    set_headers(resp.headers_mut(), budget);
    resp.extensions_mut()
        .insert(crate::metrics::RateLimitScope(scope));
    resp.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        HeaderValue::from(retry_after),
    );
    resp
}

/// The client IP's limit, before authentication.
pub async fn per_ip(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if super::exempt(path) {
        return next.run(req).await;
    }
    let graphql = path == "/graphql";
    let ip = req.extensions().get::<ClientIp>().and_then(|c| c.0);
    let decision = match ip {
        Some(ip) => state.limits.count_ip(ip).await,
        None => None,
    };
    let budget = match decision {
        Some(Decision::Refused(b, retry)) => return refuse(graphql, "ip", b, retry),
        Some(Decision::Allowed(b)) => Some(b),
        None => None,
    };
    req.extensions_mut().insert(ReportedBudget(budget));
    let mut resp = next.run(req).await;
    // An inner layer or handler that charged a tenant has set the headers already.
    if let Some(b) = budget
        && !resp.headers().contains_key(REMAINING)
    {
        set_headers(resp.headers_mut(), b);
    }
    resp
}

/// Counts a request of `p` against its tenant's limit. `Ok(Some(b))`: go ahead, reporting `b`,
/// the tighter of the tenant's budget and `reported`; `Ok(None)`: tenant limits are off;
/// `Err`: refused, with the budget and the seconds to wait, for [`refuse`].
pub async fn charge_tenant(
    limits: &RateLimits,
    p: &Principal,
    reported: Option<Budget>,
) -> Result<Option<Budget>, (Budget, u64)> {
    match limits.count_tenant(p).await {
        Some(Decision::Refused(b, retry)) => Err((b, retry)),
        Some(Decision::Allowed(b)) => Ok(Some(tighter(reported, b))),
        None => Ok(None),
    }
}

/// The tenant's limit, after authentication.
pub async fn per_tenant(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let graphql = req.uri().path() == "/graphql";
    let reported = req.extensions().get::<ReportedBudget>().and_then(|b| b.0);
    let charged = match req.extensions().get::<Authenticated>() {
        Some(Authenticated(Ok(Some(p)))) => charge_tenant(&state.limits, p, reported).await,
        _ => Ok(None),
    };
    let budget = match charged {
        Ok(Some(b)) => Some(b),
        Ok(None) => return next.run(req).await,
        Err((b, retry)) => return refuse(graphql, "tenant", b, retry),
    };
    req.extensions_mut().insert(ReportedBudget(budget));
    let mut resp = next.run(req).await;
    if let Some(b) = budget {
        set_headers(resp.headers_mut(), b);
    }
    resp
}
