//! Headers every request and response pass through: a client's `X-Request-Id` is kept only
//! when it is short and plain (it is logged and stored in the audit log), one is made for a
//! request without, and every response carries the security headers (docs/reliability.md).

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::request_id::MakeRequestId;

/// The longest client-chosen request ID kept; a longer or stranger one is replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The request-ID header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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

/// Makes the IDs of requests that come without one: UUID v4.
#[derive(Clone, Copy)]
pub struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(
        &mut self,
        _: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let id = uuid::Uuid::new_v4();
        let mut buf = uuid::Uuid::encode_buffer();
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

/// Whether a client's request ID may be kept as it is.
fn plain_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_REQUEST_ID_LEN
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:/+=".contains(c))
}

/// The middleware: runs outside everything else.
pub async fn middleware(mut req: Request, next: Next) -> Response {
    if req
        .headers()
        .get(REQUEST_ID)
        .is_some_and(|v| !plain_request_id(v))
    {
        req.headers_mut().remove(REQUEST_ID);
    }
    // Responses to a credential, and to writes (login and refresh answer with tokens), are
    // never kept by a cache.
    let private =
        req.method() != Method::GET || super::credentials::carries_credential(req.headers());
    let mut resp = next.run(req).await;
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if private {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_kept() {
        let ok = |s: &str| plain_request_id(&HeaderValue::from_str(s).expect("header"));
        assert!(ok("3f2a-req_1.trace:9/x+y="));
        assert!(!ok(&"a".repeat(MAX_REQUEST_ID_LEN + 1)));
        assert!(ok(&"a".repeat(MAX_REQUEST_ID_LEN)));
        assert!(!ok("has space"));
        assert!(!ok("<script>"));
    }
}
