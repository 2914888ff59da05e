//! Prometheus metrics at `GET /metrics`: requests by route, GraphQL operation and status,
//! latency histograms, rate-limit refusals, authentication failures and database pool use.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram, Label};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use sea_orm::{DatabaseConnection, DbBackend};

use crate::bounded::BoundedMap;

/// Latency buckets in seconds: sub-millisecond cache hits up to the request timeout.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Distinct GraphQL operation names kept as label values; later names count as `other`,
/// so a client inventing names cannot grow the registry without bound.
const MAX_OPERATION_NAMES: usize = 200;

/// Error codes counted as authentication failures.
const AUTH_CODES: [&str; 6] = [
    "MISSING_TOKEN",
    "INVALID_TOKEN",
    "REVOKED_TOKEN",
    "EXPIRED_TOKEN",
    "INVALID_CREDENTIALS",
    "SESSION_REQUIRED",
];

/// Set on a response by the GraphQL handler: the operation it ran.
#[derive(Debug, Clone)]
pub struct OperationName(pub String);

/// Set on a response built from an error: its code (the first error's, for GraphQL).
#[derive(Debug, Clone)]
pub struct ErrorCode(pub String);

/// Set on a `429` response: the limit that refused (`ip` or `tenant`).
#[derive(Debug, Clone, Copy)]
pub struct RateLimitScope(pub &'static str);

/// Handles of request series kept at most; when full the map starts over (the series stay
/// registered, only the short cut is dropped).
const MAX_SERIES_HANDLES: usize = 4096;

/// What the webhook delivery worker has done: counted by the service, shown by `/metrics`.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Attempts that succeeded.
    pub succeeded: std::sync::atomic::AtomicU64,
    /// Attempts that failed and will be retried.
    pub retrying: std::sync::atomic::AtomicU64,
    /// Attempts that failed for the last time.
    pub failed: std::sync::atomic::AtomicU64,
    /// Pending deliveries when last counted.
    pub queue_depth: std::sync::atomic::AtomicU64,
    /// Sum of attempt latencies, in microseconds.
    pub latency_micros: std::sync::atomic::AtomicU64,
}

/// This process's metrics registry (one per server state, so tests don't share one).
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    operations: Mutex<HashSet<String>>,
    /// By method, route, operation and status: the `leadgraph_http_requests_total` counter and
    /// the `leadgraph_http_request_duration_seconds` histogram (by method and route) a request
    /// updates, so it does not build labels for a registry look-up.
    series: BoundedMap<(String, String, String, u16), (Counter, Histogram)>,
}

impl Default for Metrics {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        Metrics {
            recorder,
            handle,
            operations: Mutex::new(HashSet::new()),
            series: BoundedMap::new(MAX_SERIES_HANDLES),
        }
    }
}

impl Metrics {
    /// Counts one finished request.
    fn record(&self, route: String, method: String, resp: &Response, seconds: f64) {
        let operation = resp
            .extensions()
            .get::<OperationName>()
            .map(|o| self.operation_label(&o.0))
            .unwrap_or_default();
        let status = resp.status().as_u16();
        let code = resp
            .extensions()
            .get::<ErrorCode>()
            .and_then(|c| AUTH_CODES.iter().find(|a| **a == c.0));
        let scope = resp.extensions().get::<RateLimitScope>().map(|s| s.0);
        let (requests, durations) =
            self.series
                .get_or_insert_with((method, route, operation, status), |key| {
                    let (method, route, operation, status) = key.clone();
                    metrics::with_local_recorder(&self.recorder, || {
                        let durations = metrics::histogram!(
                            "leadgraph_http_request_duration_seconds",
                            vec![
                                Label::new("method", method.clone()),
                                Label::new("route", route.clone()),
                            ]
                        );
                        let requests = metrics::counter!(
                            "leadgraph_http_requests_total",
                            vec![
                                Label::new("method", method),
                                Label::new("route", route),
                                Label::new("operation", operation),
                                Label::new("status", status.to_string()),
                            ]
                        );
                        (requests, durations)
                    })
                });
        requests.increment(1);
        durations.record(seconds);
        if scope.is_none() && code.is_none() {
            return;
        }
        metrics::with_local_recorder(&self.recorder, || {
            if let Some(scope) = scope {
                metrics::counter!("leadgraph_rate_limit_refusals_total", "scope" => scope)
                    .increment(1);
            }
            if let Some(code) = code {
                metrics::counter!("leadgraph_auth_failures_total", "code" => *code).increment(1);
            }
        });
    }

    /// The label for a client-chosen operation name, bounded in count and form.
    fn operation_label(&self, name: &str) -> String {
        if name.is_empty() {
            return "anonymous".into();
        }
        let plain = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain {
            return "other".into();
        }
        let Ok(mut seen) = self.operations.lock() else {
            return "other".into();
        };
        if seen.contains(name) {
            return name.to_owned();
        }
        if seen.len() < MAX_OPERATION_NAMES {
            seen.insert(name.to_owned());
            return name.to_owned();
        }
        "other".into()
    }

    /// The text exposition, with the pool's current state and the caches' sizes.
    pub fn render(
        &self,
        db: &DatabaseConnection,
        caches: &[(&'static str, usize)],
        webhooks: &DeliveryStats,
        limit_fallbacks: u64,
    ) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let (size, idle, max) = pool_state(db);
        metrics::with_local_recorder(&self.recorder, || {
            let attempts = [
                ("succeeded", webhooks.succeeded.load(Relaxed)),
                ("retrying", webhooks.retrying.load(Relaxed)),
                ("failed", webhooks.failed.load(Relaxed)),
            ];
            for (outcome, n) in attempts {
                metrics::counter!("leadgraph_webhook_attempts_total", "outcome" => outcome)
                    .absolute(n);
            }
            let count: u64 = attempts.iter().map(|(_, n)| n).sum();
            metrics::counter!("leadgraph_webhook_attempt_seconds_count").absolute(count);
            metrics::gauge!("leadgraph_webhook_attempt_seconds_sum")
                .set(webhooks.latency_micros.load(Relaxed) as f64 / 1e6);
            metrics::gauge!("leadgraph_webhook_queue_depth")
                .set(webhooks.queue_depth.load(Relaxed) as f64);
            metrics::counter!("leadgraph_rate_limit_fallbacks_total").absolute(limit_fallbacks);
            metrics::gauge!("leadgraph_db_pool_connections", "state" => "in_use")
                .set(size.saturating_sub(idle) as f64);
            metrics::gauge!("leadgraph_db_pool_connections", "state" => "idle").set(idle as f64);
            metrics::gauge!("leadgraph_db_pool_max_connections").set(max as f64);
            for &(cache, entries) in caches {
                metrics::gauge!("leadgraph_cache_entries", "cache" => cache).set(entries as f64);
            }
        });
        self.handle.render()
    }

    /// Bounds the registry's memory; called by the housekeeping loop.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

fn pool_state(db: &DatabaseConnection) -> (u32, u32, u32) {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let p = db.get_postgres_connection_pool();
            (
                p.size(),
                p.num_idle() as u32,
                p.options().get_max_connections(),
            )
        }
        DbBackend::Sqlite => {
            let p = db.get_sqlite_connection_pool();
            (
                p.size(),
                p.num_idle() as u32,
                p.options().get_max_connections(),
            )
        }
        _ => (0, 0, 0),
    }
}

/// Middleware timing and counting every request.
pub async fn track(
    State(metrics): State<std::sync::Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    let route = resp
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    metrics.record(route, method, &resp, started.elapsed().as_secs_f64());
    resp
}

/// Copies the route template axum matched onto the response, for [`track`], which runs
/// outside routing.
pub async fn keep_matched_path(req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(m) = matched {
        resp.extensions_mut().insert(m);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_bounded() {
        let m = Metrics::default();
        assert_eq!(m.operation_label(""), "anonymous");
        assert_eq!(m.operation_label("drop\"} 1\nevil"), "other");
        for i in 0..MAX_OPERATION_NAMES {
            assert_eq!(m.operation_label(&format!("Op{i}")), format!("Op{i}"));
        }
        assert_eq!(m.operation_label("OneTooMany"), "other");
        assert_eq!(m.operation_label("Op7"), "Op7");
    }
}
