//! `Idempotency-Key` as a layer (SPEC.md section 13), after authentication and the limits:
//! a REST write or a GraphQL mutation request sent again with the same key is answered with
//! the first response (`Idempotent-Replayed: true`) and runs nothing; `service::idempotency`
//! decides.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::authenticate::Authenticated;
use crate::error::AppError;
use crate::service::idempotency::{self, Begin, Kept, Owner};
use crate::web::AppState;

/// The request header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The header of a replayed response.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The layer.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(sent) = req.headers().get(IDEMPOTENCY_KEY) else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    let write = matches!(
        *req.method(),
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    );
    // Files (imports, GraphQL uploads) are not read whole to be fingerprinted.
    let media = crate::http::media_type(req.headers());
    let file = !media.is_empty() && media != "application/json";
    if !write || file || super::exempt(path) || super::is_webhook(path) {
        return next.run(req).await;
    }
    let graphql = path == "/graphql";
    let refuse = |e: AppError| {
        if graphql {
            crate::graphql::response::error_response(&e)
        } else {
            e.into_response()
        }
    };
    let key = match idempotency::check_key(sent.as_bytes()) {
        Ok(k) => k.to_owned(),
        Err(e) => return refuse(e),
    };
    let owner = match req.extensions().get::<Authenticated>() {
        Some(Authenticated(Ok(Some(p)))) => Owner::of(p),
        _ => None,
    };
    // No caller: the handler refuses the request, and nothing is kept.
    let Some(owner) = owner else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = match crate::http::read_body(body, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return refuse(e),
    };
    if graphql && !crate::graphql::http::has_mutation(&state, &bytes) {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let fingerprint = idempotency::fingerprint(parts.method.as_str(), target, &bytes);
    let lease = chrono::Duration::from_std(state.config.request_timeout())
        .unwrap_or(chrono::Duration::MAX)
        + chrono::Duration::minutes(1);
    let id = match idempotency::begin(&state.db, &owner, &key, &fingerprint, lease).await {
        Ok(Begin::Run(id)) => id,
        Ok(Begin::Replay(kept)) => return replay(kept),
        Err(e) => return refuse(e),
    };
    let req = Request::from_parts(parts, Body::from(bytes));
    let db = state.db.clone();
    // Runs to its end and keeps its response even when the client stops waiting.
    let run = state.tasks.spawn(async move {
        let resp = next.run(req).await;
        keep(&db, id, resp).await
    });
    match run.await {
        Ok(resp) => resp,
        Err(e) => refuse(AppError::internal(e)),
    }
}

/// Keeps `resp` for claimed key `id` when a retry should see it, else releases the key.
async fn keep(db: &sea_orm::DatabaseConnection, id: i64, resp: Response) -> Response {
    let status = resp.status().as_u16();
    if !idempotency::keeps(status) {
        if let Err(e) = idempotency::abandon(db, id).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // Our responses are JSON built in memory; reading them back costs no more than that.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            let _ = idempotency::abandon(db, id).await;
            return AppError::internal(e).into_response();
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        let _ = idempotency::abandon(db, id).await;
        return Response::from_parts(parts, Body::from(bytes));
    };
    let headers = [header::CONTENT_TYPE, header::LOCATION]
        .iter()
        .filter_map(|h| {
            let v = parts.headers.get(h)?.to_str().ok()?;
            Some((h.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let kept = Kept {
        status,
        headers,
        body: text.to_owned(),
    };
    if let Err(e) = idempotency::finish(db, id, kept).await {
        // The key stays claimed until its lease ends; a retry then runs the request again.
        tracing::warn!(error = %e, "could not keep an idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The kept response, marked as a replay.
fn replay(kept: Kept) -> Response {
    let mut resp = Response::new(Body::from(kept.body));
    *resp.status_mut() = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
    for (name, value) in kept.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp.headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    resp
}
