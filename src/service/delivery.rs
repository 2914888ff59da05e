//! Sending outbound webhooks (docs/events.md): deliveries are queued in the transaction of
//! their event, claimed by workers (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
//! instances share the queue), signed as Standard Webhooks, sent without following redirects
//! to public addresses only, and retried on a schedule. Every attempt is logged.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration as StdDuration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{Duration, Utc};
use entity::enums::DeliveryStatus;
use entity::{webhook_attempt, webhook_delivery, webhook_endpoint};
use futures::StreamExt;
use hmac::{Hmac, Mac};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use sha2::Sha256;

use crate::db::begin_write;
use crate::state::App;

/// Waits before each retry, in order; after the last the delivery has failed.
pub const RETRY_SCHEDULE: [StdDuration; 7] = [
    StdDuration::from_secs(5),
    StdDuration::from_secs(5 * 60),
    StdDuration::from_secs(30 * 60),
    StdDuration::from_secs(2 * 3600),
    StdDuration::from_secs(5 * 3600),
    StdDuration::from_secs(10 * 3600),
    StdDuration::from_secs(10 * 3600),
];
/// Deliveries one worker claims at a time.
const BATCH: u64 = 64;
/// Deliveries sent at once by one worker: the whole batch, so a batch takes at most one
/// send timeout and its claim (see [`lease`]) cannot run out while it is being sent.
const CONCURRENCY: usize = BATCH as usize;
/// How long a claim holds: a worker that dies mid-send releases its deliveries after it. It
/// outlasts any attempt (the send timeout) with room to record it.
fn lease(config: &crate::config::Config) -> Duration {
    Duration::milliseconds(i64::try_from(config.webhook_timeout_ms).unwrap_or(i64::MAX / 4) * 2)
        + Duration::seconds(5)
}
/// Bytes of a response body kept in the attempt log.
const KEEP_BODY: usize = 1024;

/// The `webhook-signature` value: `v1,<base64 HMAC-SHA256>` for each secret, space-separated.
pub fn signature(secrets: &[&str], message_id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .filter_map(|s| {
            let key = STANDARD
                .decode(s.strip_prefix("whsec_").unwrap_or(s))
                .ok()?;
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
            mac.update(format!("{message_id}.{timestamp}.{body}").as_bytes());
            Some(format!(
                "v1,{}",
                STANDARD.encode(mac.finalize().into_bytes())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `ip` may receive webhooks when private targets are not allowed: not loopback,
/// private, link-local, shared, multicast, broadcast, documentation or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x64 && s[1] == 0xff9b))
        }
    }
}

/// Resolves webhook hosts at send time and hands the connection only addresses that passed
/// the check, so a name that resolves to a private address (or changes between a check and
/// the connection) cannot reach one.
struct CheckedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!("refused: {host} resolves to no public address").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client of webhook deliveries.
pub fn client(app_config: &crate::config::Config) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(StdDuration::from_millis(app_config.webhook_timeout_ms))
        .user_agent(concat!("leadgraph/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(CheckedResolver {
            allow_private: app_config.webhook_allow_private_targets,
        }))
        .no_proxy()
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Claims up to [`BATCH`] due deliveries, leasing them for `lease`.
async fn claim(
    db: &DatabaseConnection,
    lease: Duration,
) -> Result<Vec<webhook_delivery::Model>, DbErr> {
    let tx = begin_write(db).await?;
    let now = Utc::now();
    let due = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
        .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
        .order_by_asc(webhook_delivery::Column::NextAttemptAt)
        .limit(BATCH)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(&tx)
        .await?;
    if !due.is_empty() {
        webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::value(now + lease),
            )
            .filter(webhook_delivery::Column::Id.is_in(due.iter().map(|d| d.id)))
            .exec(&tx)
            .await?;
    }
    tx.commit().await?;
    Ok(due)
}

/// What one attempt came to.
struct Outcome {
    status: Option<u16>,
    latency: StdDuration,
    error: Option<String>,
    body: Option<String>,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Checks a literal IP host (the resolver sees only names).
fn literal_refused(url: &reqwest::Url, allow_private: bool) -> Option<String> {
    let host = url.host_str()?;
    let ip: IpAddr = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    (!allow_private && !is_public(ip)).then(|| format!("refused: {ip} is not a public address"))
}

async fn send(
    app: &App,
    client: &reqwest::Client,
    endpoint: &webhook_endpoint::Model,
    d: &webhook_delivery::Model,
) -> Outcome {
    let started = Instant::now();
    let fail = |error: String| Outcome {
        status: None,
        latency: started.elapsed(),
        error: Some(error),
        body: None,
    };
    let url = match reqwest::Url::parse(&endpoint.url) {
        Ok(u) => u,
        Err(e) => return fail(format!("invalid URL: {e}")),
    };
    if let Some(refused) = literal_refused(&url, app.config.webhook_allow_private_targets) {
        return fail(refused);
    }
    let timestamp = Utc::now().timestamp();
    let mut secrets = vec![endpoint.secret.as_str()];
    if let Some(prev) = &endpoint.previous_secret
        && endpoint
            .previous_secret_until
            .is_some_and(|until| until > Utc::now())
    {
        secrets.push(prev);
    }
    let sig = signature(&secrets, &d.message_id, timestamp, &d.payload);
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sig)
        .body(d.payload.clone())
        .send()
        .await;
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            // reqwest's error chain carries the resolver's refusal.
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg = format!("{msg}: {s}");
                source = s.source();
            }
            return fail(msg);
        }
    };
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    while body.len() < KEEP_BODY {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(KEEP_BODY);
    Outcome {
        status: Some(status),
        latency: started.elapsed(),
        error: None,
        body: Some(String::from_utf8_lossy(&body).into_owned()),
    }
}

/// The wait before retry number `attempts` (1-based), scaled; `None` when retries are spent.
fn retry_after(attempts: i32, scale: f64) -> Option<Duration> {
    let wait = RETRY_SCHEDULE.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
    Duration::from_std(wait.mul_f64(scale.max(0.0))).ok()
}

/// One attempt made, to record.
struct Attempt {
    endpoint: i64,
    delivery: webhook_delivery::Model,
    outcome: Outcome,
}

/// Records a batch of attempts and their consequences in one transaction (one commit for the
/// batch, not one per attempt): the attempt log, each delivery's state, and each endpoint's
/// run of failures (cleared by a success; past `--webhook-disable-after-secs` it disables the
/// endpoint with a reason).
async fn record(app: &App, attempts: &[Attempt]) -> Result<(), DbErr> {
    if attempts.is_empty() {
        return Ok(());
    }
    let tx = begin_write(&app.db).await?;
    let now = Utc::now();
    webhook_attempt::Entity::insert_many(attempts.iter().map(|a| {
        let o = &a.outcome;
        webhook_attempt::ActiveModel {
            delivery_id: Set(a.delivery.id),
            attempted_at: Set(now),
            status_code: Set(o.status.map(i32::from)),
            latency_ms: Set(i64::try_from(o.latency.as_millis()).unwrap_or(i64::MAX)),
            error: Set(o.error.clone()),
            response_body: Set(o.body.clone()),
            ..Default::default()
        }
    }))
    .exec_without_returning(&tx)
    .await?;
    let stats = &app.delivery_stats;
    for a in attempts {
        let (d, o) = (&a.delivery, &a.outcome);
        let tries = d.attempts + 1;
        let (status, next) = if o.ok() {
            (DeliveryStatus::Succeeded, None)
        } else {
            match retry_after(tries, app.config.webhook_retry_scale) {
                Some(wait) => (DeliveryStatus::Pending, Some(now + wait)),
                None => (DeliveryStatus::Failed, None),
            }
        };
        webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::Status, Expr::value(status))
            .col_expr(webhook_delivery::Column::Attempts, Expr::value(tries))
            .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(next))
            .col_expr(
                webhook_delivery::Column::LastStatusCode,
                Expr::value(o.status.map(i32::from)),
            )
            .col_expr(webhook_delivery::Column::UpdatedAt, Expr::value(now))
            .filter(webhook_delivery::Column::Id.eq(d.id))
            .exec(&tx)
            .await?;
        let counter = match status {
            DeliveryStatus::Succeeded => &stats.succeeded,
            DeliveryStatus::Pending => &stats.retrying,
            DeliveryStatus::Failed => &stats.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(o.latency.as_micros()).unwrap_or(u64::MAX);
        stats.latency_micros.fetch_add(micros, Ordering::Relaxed);
    }
    let mut endpoints: Vec<i64> = attempts.iter().map(|a| a.endpoint).collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    let limit = Duration::seconds(
        i64::try_from(app.config.webhook_disable_after_secs).unwrap_or(i64::MAX / 2),
    );
    // Streams are locked after every endpoint (as endpoint writes do), so no two orders meet.
    let mut disabled = Vec::new();
    for id in endpoints {
        let Some(current) =
            crate::db::one_locked(&tx, webhook_endpoint::Entity::find_by_id(id)).await?
        else {
            continue;
        };
        let mine = attempts.iter().filter(|a| a.endpoint == id);
        let mut row: webhook_endpoint::ActiveModel = current.clone().into();
        match mine.clone().rfind(|a| !a.outcome.ok()) {
            // It answers: the run of failures is over.
            _ if mine.clone().any(|a| a.outcome.ok()) => {
                if current.failing_since.is_none() {
                    continue;
                }
                row.failing_since = Set(None);
            }
            Some(failure) => {
                let since = current.failing_since.unwrap_or(now);
                if current.enabled && now - since >= limit {
                    let o = &failure.outcome;
                    let why = o.error.clone().unwrap_or_else(|| {
                        format!(
                            "last status {}",
                            o.status.map_or("none".into(), |s| s.to_string())
                        )
                    });
                    row.enabled = Set(false);
                    disabled.push((current.tenant_id, current.environment));
                    row.disabled_reason = Set(Some(format!(
                        "every delivery failed since {} ({why})",
                        crate::service::clock::ts(since),
                    )));
                } else if current.failing_since.is_some() {
                    continue;
                }
                row.failing_since = Set(Some(since));
            }
            None => continue,
        }
        row.updated_at = Set(now);
        row.update(&tx).await?;
    }
    disabled.sort_by_key(|(t, e)| (*t, e.as_str()));
    disabled.dedup();
    for (tenant_id, environment) in disabled {
        crate::service::webhook::count_endpoints(&tx, tenant_id, environment).await?;
    }
    tx.commit().await
}

/// Sends the claimed deliveries, [`CONCURRENCY`] at a time, and records their attempts.
async fn deliver(app: &App, client: &reqwest::Client, batch: Vec<webhook_delivery::Model>) {
    let mut ids: Vec<i64> = batch.iter().map(|d| d.endpoint_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let endpoints = match webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Id.is_in(ids))
        .all(&app.db)
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            // The lease runs out and they are claimed again.
            tracing::warn!(error = %e, "could not load webhook endpoints");
            return;
        }
    };
    let endpoint = |id: i64| endpoints.iter().find(|e| e.id == id);
    // A disabled endpoint keeps its queue; it resumes when enabled again. Test sends go anyway.
    let (waiting, sendable): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .partition(|d| endpoint(d.endpoint_id).is_some_and(|e| !e.enabled && d.event_id.is_some()));
    if !waiting.is_empty() {
        let later = Utc::now() + lease(&app.config);
        let _ = webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::NextAttemptAt, Expr::value(later))
            .filter(webhook_delivery::Column::Id.is_in(waiting.iter().map(|d| d.id)))
            .exec(&app.db)
            .await;
    }
    let attempts: Vec<Attempt> = futures::stream::iter(sendable)
        .map(|d| async move {
            let e = endpoint(d.endpoint_id)?;
            let outcome = send(app, client, e, &d).await;
            Some(Attempt {
                endpoint: e.id,
                delivery: d,
                outcome,
            })
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|a| async move { a })
        .collect()
        .await;
    if let Err(e) = record(app, &attempts).await {
        // The lease runs out and they are sent again: at least once.
        tracing::warn!(error = %e, "could not record webhook attempts");
    }
}

/// Pending deliveries, for the queue-depth gauge.
async fn queue_depth(db: &DatabaseConnection) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending))
        .count(db)
        .await
}

/// The delivery worker: claims due deliveries and sends them until `stop` is cancelled.
/// Woken by new deliveries of this process, and polls for the rest (retries, other
/// instances' events).
pub async fn run(app: Arc<App>, stop: tokio_util::sync::CancellationToken) {
    let client = client(&app.config);
    let poll = StdDuration::from_millis(app.config.webhook_poll_ms.max(10));
    loop {
        match claim(&app.db, lease(&app.config)).await {
            Ok(batch) if !batch.is_empty() => {
                let full = batch.len() as u64 == BATCH;
                deliver(&app, &client, batch).await;
                if full {
                    continue;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not claim webhook deliveries"),
        }
        if let Ok(n) = queue_depth(&app.db).await {
            app.delivery_stats.queue_depth.store(n, Ordering::Relaxed);
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = app.outbox.deliveries_due.notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}
