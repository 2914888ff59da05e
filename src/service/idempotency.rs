//! Idempotency keys (docs/rest.md): the first completed response of each key is kept
//! for a day, so a retried write is answered with it instead of being run again. Keys belong
//! to a tenant, an environment and a credential; the request they were first sent with is
//! remembered by a fingerprint, and another request under the same key is refused.

use chrono::{DateTime, Duration, Utc};
use entity::enums::Environment;
use entity::idempotency_key::{self, Column as C};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::principal::{Principal, Via};
use crate::error::{AppError, AppResult};

/// How long a kept response answers retries.
pub const KEPT_FOR: Duration = Duration::hours(24);

/// Whose key: the tenant, environment and credential a key is unique within.
#[derive(Debug, Clone)]
pub struct Owner {
    tenant_id: i64,
    environment: Environment,
    credential: String,
}

impl Owner {
    /// The owner of keys sent by `p`; inbound webhooks have none.
    pub fn of(p: &Principal) -> Option<Owner> {
        let credential = match p.via {
            Via::ApiKey(k) => format!("key:{}", k.id),
            Via::Session => format!("user:{}", p.actor_user_id),
            Via::Webhook => return None,
        };
        Some(Owner {
            tenant_id: p.tenant_id,
            environment: p.environment,
            credential,
        })
    }
}

/// A response as kept.
#[derive(Debug, Clone)]
pub struct Kept {
    /// Its status.
    pub status: u16,
    /// Its meaningful headers (`content-type`, `location`).
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: String,
}

/// What to do with a request that carries a key.
#[derive(Debug)]
pub enum Begin {
    /// Run it: the key is claimed (this row), to [`finish`] or [`abandon`] afterwards.
    Run(i64),
    /// Answer with the response kept for it.
    Replay(Kept),
    /// A file's key whose response is kept: answer with it if the file's fingerprint is
    /// this one, else refuse with `IDEMPOTENCY_KEY_REUSED`.
    Compare(String, Kept),
}

/// The fingerprint of a key claimed for a file still arriving: its own is known at the end.
const PENDING: &str = "pending";

/// Checks a key as sent: 1 to 255 printable ASCII characters.
pub fn check_key(key: &[u8]) -> AppResult<&str> {
    let ok = (1..=255).contains(&key.len()) && key.iter().all(|b| (0x20..=0x7e).contains(b));
    match std::str::from_utf8(key) {
        Ok(k) if ok => Ok(k),
        _ => Err(AppError::BadRequest(
            "Idempotency-Key must be 1 to 255 printable ASCII characters".into(),
        )),
    }
}

/// A request's fingerprint as it is computed: SHA-256 of its method, target and body.
pub struct Fingerprint(Sha256);

impl Fingerprint {
    /// Starts with the method and target (path and query, plus the media type of a file).
    pub fn new(method: &str, target: &str) -> Fingerprint {
        let mut h = Sha256::new();
        h.update(method.as_bytes());
        h.update(b" ");
        h.update(target.as_bytes());
        h.update(b"\n");
        Fingerprint(h)
    }

    /// Adds body bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The fingerprint, as kept.
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// The fingerprint of a request with a body in memory (JSON bodies canonically: object keys
/// sorted, insignificant whitespace dropped).
pub fn fingerprint(method: &str, path_and_query: &str, body: &[u8]) -> String {
    let mut h = Fingerprint::new(method, path_and_query);
    // serde_json refuses nesting deeper than 128, which bounds `canonical`'s recursion;
    // anything else that is not JSON is hashed as sent.
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let mut out = String::with_capacity(body.len());
            canonical(&v, &mut out);
            h.update(out.as_bytes());
        }
        _ => h.update(body),
    }
    h.finish()
}

/// `v` with sorted object keys and no whitespace (`v` nests at most 128 deep, as parsed).
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn scoped(owner: &Owner, key: &str) -> Condition {
    Condition::all()
        .add(C::TenantId.eq(owner.tenant_id))
        .add(C::Environment.eq(owner.environment))
        .add(C::Credential.eq(owner.credential.as_str()))
        .add(C::Key.eq(key))
}

/// Claims `key` for a request with `fingerprint`, or says how to answer instead: the kept
/// response, `409 IDEMPOTENCY_IN_PROGRESS` while the first request runs, `422
/// IDEMPOTENCY_KEY_REUSED` for a different request. A key whose response has expired, or
/// whose first request was abandoned more than `lease` ago (the process died), is claimed
/// anew. A file's fingerprint is known only once it has arrived: `None` claims the key
/// without one ([`finish`] sets it) or answers [`Begin::Compare`].
pub async fn begin(
    db: &DatabaseConnection,
    owner: &Owner,
    key: &str,
    fingerprint: Option<&str>,
    lease: Duration,
) -> AppResult<Begin> {
    let now = crate::service::clock::now();
    let fingerprint = fingerprint.unwrap_or(PENDING);
    // The common case, a new key, in one statement; a conflict inserts nothing.
    let claimed = idempotency_key::Entity::insert(idempotency_key::ActiveModel {
        tenant_id: Set(owner.tenant_id),
        environment: Set(owner.environment),
        credential: Set(owner.credential.clone()),
        key: Set(key.to_owned()),
        fingerprint: Set(fingerprint.to_owned()),
        status_code: Set(None),
        response_headers: Set(None),
        response_body: Set(None),
        started_at: Set(now),
        expires_at: Set(now + KEPT_FOR),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([C::TenantId, C::Environment, C::Credential, C::Key])
            .do_nothing()
            .to_owned(),
    )
    .exec_with_returning_keys(db)
    .await?;
    if let Some(id) = claimed.into_iter().next() {
        return Ok(Begin::Run(id));
    }
    let Some(row) = idempotency_key::Entity::find()
        .filter(scoped(owner, key))
        .one(db)
        .await?
    else {
        // Pruned between the two statements: it was stale, and the retry claims it.
        return Err(AppError::IdempotencyInProgress);
    };
    let stale =
        row.expires_at <= now || (row.status_code.is_none() && row.started_at + lease <= now);
    if stale {
        return take_over(db, row.id, fingerprint, now, lease).await;
    }
    let kept = match (row.status_code, row.response_body) {
        (Some(status), Some(body)) => Kept {
            status: u16::try_from(status).unwrap_or(500),
            headers: headers_of(row.response_headers.as_ref()),
            body,
        },
        // A file still arriving has no fingerprint to differ from yet.
        _ if row.fingerprint == PENDING || fingerprint == PENDING => {
            return Err(AppError::IdempotencyInProgress);
        }
        _ if row.fingerprint != fingerprint => return Err(AppError::IdempotencyKeyReused),
        _ => return Err(AppError::IdempotencyInProgress),
    };
    if fingerprint == PENDING {
        Ok(Begin::Compare(row.fingerprint, kept))
    } else if row.fingerprint == fingerprint {
        Ok(Begin::Replay(kept))
    } else {
        Err(AppError::IdempotencyKeyReused)
    }
}

/// Claims stale row `id`, unless another request claimed it first.
async fn take_over(
    db: &DatabaseConnection,
    id: i64,
    fingerprint: &str,
    now: DateTime<Utc>,
    lease: Duration,
) -> AppResult<Begin> {
    let taken = idempotency_key::Entity::update_many()
        .col_expr(C::Fingerprint, Expr::value(fingerprint))
        .col_expr(C::StatusCode, Expr::value(Option::<i32>::None))
        .col_expr(C::ResponseHeaders, Expr::value(Option::<Value>::None))
        .col_expr(C::ResponseBody, Expr::value(Option::<String>::None))
        .col_expr(C::StartedAt, Expr::value(now))
        .col_expr(C::ExpiresAt, Expr::value(now + KEPT_FOR))
        .filter(C::Id.eq(id))
        // Still stale: a concurrent retry that claimed it first made it fresh.
        .filter(
            Condition::any().add(C::ExpiresAt.lte(now)).add(
                Condition::all()
                    .add(C::StatusCode.is_null())
                    .add(C::StartedAt.lte(now - lease)),
            ),
        )
        .exec(db)
        .await?;
    if taken.rows_affected == 1 {
        Ok(Begin::Run(id))
    } else {
        Err(AppError::IdempotencyInProgress)
    }
}

fn headers_of(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a response is kept: not 5xx, 401, 403 or 429, which a retry may well change.
pub fn keeps(status: u16) -> bool {
    !(status >= 500 || matches!(status, 401 | 403 | 429))
}

/// Keeps the response of claimed row `id`, and the fingerprint of a file claimed without one.
pub async fn finish(
    db: &DatabaseConnection,
    id: i64,
    kept: Kept,
    fingerprint: Option<String>,
) -> Result<(), DbErr> {
    let headers: serde_json::Map<String, Value> = kept
        .headers
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let mut update = idempotency_key::Entity::update_many();
    if let Some(fingerprint) = fingerprint {
        update = update.col_expr(C::Fingerprint, Expr::value(fingerprint));
    }
    update
        .col_expr(C::StatusCode, Expr::value(i32::from(kept.status)))
        .col_expr(C::ResponseHeaders, Expr::value(Value::Object(headers)))
        .col_expr(C::ResponseBody, Expr::value(kept.body))
        .filter(C::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Releases claimed row `id` without a response, so a retry runs the request.
pub async fn abandon(db: &DatabaseConnection, id: i64) -> Result<(), DbErr> {
    idempotency_key::Entity::delete_many()
        .filter(C::Id.eq(id))
        .filter(C::StatusCode.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes expired keys; returns how many.
pub async fn prune(db: &DatabaseConnection) -> Result<u64, DbErr> {
    Ok(idempotency_key::Entity::delete_many()
        .filter(C::ExpiresAt.lte(Utc::now()))
        .exec(db)
        .await?
        .rows_affected)
}
