//! `Idempotency-Key` as a layer (docs/rest.md), after authentication and the limits:
//! a REST write or a GraphQL mutation request sent again with the same key is answered with
//! the first response (`Idempotent-Replayed: true`) and runs nothing; `service::idempotency`
//! decides.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::authenticate::Authenticated;
use crate::error::AppError;
use crate::service::idempotency::{self, Begin, Fingerprint, Kept, Owner};
use crate::web::AppState;
use futures::StreamExt;

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
    let media = crate::http::media_type(req.headers());
    // Files (imports, GraphQL uploads) are fingerprinted as they stream past, not read whole.
    let upload = crate::http::is_upload(req.method(), path, &media);
    let other = !media.is_empty() && media != "application/json";
    if !write || (other && !upload) || super::exempt(path) || super::is_webhook(path) {
        return next.run(req).await;
    }
    let graphql = path == "/graphql";
    let refuse = |e: AppError| refusal(graphql, &e);
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
    if upload {
        return run_upload(state, req, next, owner, key, graphql).await;
    }
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
    let id = match idempotency::begin(&state.db, &owner, &key, Some(&fingerprint), lease).await {
        Ok(Begin::Run(id)) => id,
        Ok(Begin::Replay(kept) | Begin::Compare(_, kept)) => return replay(kept),
        Err(e) => return refuse(e),
    };
    let req = Request::from_parts(parts, Body::from(bytes));
    let db = state.db.clone();
    // Runs to its end and keeps its response even when the client stops waiting.
    let run = state.tasks.spawn(async move {
        let resp = next.run(req).await;
        keep(&db, id, resp, None).await
    });
    match run.await {
        Ok(resp) => resp,
        Err(e) => refuse(AppError::internal(e)),
    }
}

/// How long a claimed upload's key waits for its first request before a retry may take it
/// over: an upload is bounded by the time between its frames, not as a whole.
const UPLOAD_LEASE: chrono::Duration = chrono::Duration::hours(1);

/// An upload under a key: the key is claimed before the file arrives, the file fingerprinted
/// as the handler reads it, and an accepted file's response kept with that fingerprint. A
/// retry after it sends its file again, which is read through and compared.
async fn run_upload(
    state: AppState,
    req: Request,
    next: Next,
    owner: Owner,
    key: String,
    graphql: bool,
) -> Response {
    let (parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |p| p.as_str());
    let media = crate::http::media_type(&parts.headers);
    let mut print = BodyPrint {
        print: Fingerprint::new(parts.method.as_str(), &format!("{target} {media}")),
        scrub: boundary(&parts.headers).map(|b| Scrub {
            needle: format!("--{b}").into_bytes(),
            carry: Vec::new(),
        }),
    };
    match idempotency::begin(&state.db, &owner, &key, None, UPLOAD_LEASE).await {
        Ok(Begin::Run(id)) => {
            let print = Arc::new(Mutex::new(Some(print)));
            let ended = Arc::new(AtomicBool::new(false));
            let body = Body::from_stream(fingerprinted(body, print.clone(), ended.clone()));
            let req = Request::from_parts(parts, body);
            let db = state.db.clone();
            let run = state.tasks.spawn(async move {
                let resp = next.run(req).await;
                let print = print.lock().unwrap_or_else(|p| p.into_inner()).take();
                match print.filter(|_| ended.load(Ordering::Acquire)) {
                    Some(print) if resp.status().is_success() => {
                        keep(&db, id, resp, Some(print.finish())).await
                    }
                    // A refused file may be refused before it has all arrived (a bad header,
                    // too large): it is not known whole, wrote nothing, and is not kept.
                    _ => {
                        if let Err(e) = idempotency::abandon(&db, id).await {
                            tracing::warn!(error = %e, "could not release an idempotency key");
                        }
                        resp
                    }
                }
            });
            match run.await {
                Ok(resp) => resp,
                Err(e) => refusal(graphql, &AppError::internal(e)),
            }
        }
        Ok(Begin::Compare(first, kept)) => {
            let limit = state.config.max_import_bytes + state.config.max_body_bytes;
            let mut stream = body.into_data_stream();
            let mut read = 0usize;
            while let Some(frame) = stream.next().await {
                let frame = match frame {
                    Ok(f) => f,
                    Err(e) => {
                        let e = AppError::BadRequest(format!("the upload broke off: {e}"));
                        return refusal(graphql, &e);
                    }
                };
                read += frame.len();
                if read > limit {
                    return refusal(graphql, &AppError::PayloadTooLarge(limit));
                }
                print.update(&frame);
            }
            if print.finish() == first {
                replay(kept)
            } else {
                refusal(graphql, &AppError::IdempotencyKeyReused)
            }
        }
        Ok(Begin::Replay(kept)) => replay(kept),
        Err(e) => refusal(graphql, &e),
    }
}

/// `body`, each frame added to `print` as it passes; `ended` once the last has.
fn fingerprinted(
    body: Body,
    print: Arc<Mutex<Option<BodyPrint>>>,
    ended: Arc<AtomicBool>,
) -> impl futures::Stream<Item = Result<Bytes, axum::Error>> + Send + 'static {
    let frames = body.into_data_stream().map(move |frame| {
        if let (Ok(bytes), Some(p)) = (
            &frame,
            print.lock().unwrap_or_else(|p| p.into_inner()).as_mut(),
        ) {
            p.update(bytes);
        }
        frame
    });
    let end = futures::stream::once(async move {
        ended.store(true, Ordering::Release);
    })
    .filter_map(|()| async { None });
    frames.chain(end)
}

/// The boundary of a multipart body, which each client draws anew for each request.
fn boundary(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let (kind, params) = value.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (name, v) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

/// A body's fingerprint, blind to a multipart boundary so a retry's new one still matches.
struct BodyPrint {
    print: Fingerprint,
    scrub: Option<Scrub>,
}

/// Drops every occurrence of `needle` from bytes that arrive in pieces.
struct Scrub {
    needle: Vec<u8>,
    /// The tail of what arrived that may begin an occurrence.
    carry: Vec<u8>,
}

impl BodyPrint {
    fn update(&mut self, bytes: &[u8]) {
        let Some(scrub) = &mut self.scrub else {
            self.print.update(bytes);
            return;
        };
        scrub.carry.extend_from_slice(bytes);
        let n = scrub.needle.len();
        let mut start = 0;
        for at in memchr::memmem::find_iter(&scrub.carry, &scrub.needle) {
            // Occurrences do not overlap: a boundary cannot contain itself shifted.
            if at >= start {
                self.print.update(&scrub.carry[start..at]);
                start = at + n;
            }
        }
        let keep_from = start.max(scrub.carry.len().saturating_sub(n - 1));
        self.print.update(&scrub.carry[start..keep_from]);
        scrub.carry.drain(..keep_from);
    }

    fn finish(mut self) -> String {
        if let Some(scrub) = self.scrub.take() {
            self.print.update(&scrub.carry);
        }
        self.print.finish()
    }
}

/// A refusal in the envelope of the endpoint.
fn refusal(graphql: bool, e: &AppError) -> Response {
    if graphql {
        crate::graphql::response::error_response(e)
    } else {
        e.clone().into_response()
    }
}

/// Keeps `resp` for claimed key `id` (with the fingerprint of a file claimed without one)
/// when a retry should see it, else releases the key.
async fn keep(
    db: &sea_orm::DatabaseConnection,
    id: i64,
    resp: Response,
    fingerprint: Option<String>,
) -> Response {
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
    if let Err(e) = idempotency::finish(db, id, kept, fingerprint).await {
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
