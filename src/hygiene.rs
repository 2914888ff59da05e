//! Headers every request and response pass through: a client's `X-Request-Id` is kept only
//! when it is short and plain (it is logged and stored in the audit log), and every response
//! carries the security headers of SPEC section 16.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;

/// The longest client-chosen request ID kept; a longer or stranger one is replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
    let private = req.method() != Method::GET
        || req.headers().contains_key(header::AUTHORIZATION)
        || req.headers().contains_key("x-api-key");
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
