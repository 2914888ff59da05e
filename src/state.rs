//! What services need, built once per process: the database, the configuration, the ID codec,
//! token keys, the key cache, usage counting, the limiters and background tasks. It holds no
//! GraphQL or HTTP types, so services depend on it and on nothing above them.

use std::time::Duration;

use rand::{RngCore, TryRngCore};
use sea_orm::DatabaseConnection;

use crate::auth::jwt::JwtKeys;
use crate::auth::key_cache::KeyCache;
use crate::auth::password;
use crate::auth::usage::UsageTracker;
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::ids::Ids;
use crate::rate_limit::RateLimits;
use crate::settings;

/// The services' dependencies.
pub struct App {
    /// The database pool.
    pub db: DatabaseConnection,
    /// Configuration in force.
    pub config: Config,
    /// Opaque ID codec.
    pub ids: Ids,
    /// Access token keys.
    pub jwt: JwtKeys,
    /// API key look-up cache.
    pub key_cache: KeyCache,
    /// Batched key usage.
    pub usage: UsageTracker,
    /// A password hash verified when a login names no user, so both cost the same.
    pub dummy_hash: String,
    /// Rate limiters (services count credential checks and failed logins against them).
    pub limits: RateLimits,
    /// What the webhook worker has done, for `/metrics`.
    pub delivery_stats: crate::metrics::DeliveryStats,
    /// Where changes append their events (and queue their webhook deliveries).
    pub outbox: crate::outbox::Outbox,
    /// Work started by requests that must finish even when the request does not wait
    /// (operations, duplicate detection); awaited at shutdown.
    pub tasks: tokio_util::task::TaskTracker,
    /// Woken when an import file has been received, so a worker need not wait for its poll.
    pub imports_due: std::sync::Arc<tokio::sync::Notify>,
    /// Just-created leads waiting for duplicate detection.
    pub duplicates: std::sync::Arc<crate::service::lead::duplicates::Pending>,
}

impl App {
    /// Builds the services' state on a migrated database, loading or creating the
    /// deployment's secrets.
    pub async fn build(config: Config, db: DatabaseConnection) -> AppResult<App> {
        let jwt_secret = match &config.jwt_secret {
            Some(s) if s.len() >= 32 => s.clone(),
            Some(_) => {
                return Err(AppError::BadRequest(
                    "LEADGRAPH_JWT_SECRET must be at least 32 bytes".into(),
                ));
            }
            None => {
                settings::get_or_init(&db, "jwt_secret", || {
                    let mut bytes = [0u8; 64];
                    rand::rngs::OsRng.unwrap_err().fill_bytes(&mut bytes);
                    hex::encode(bytes)
                })
                .await?
            }
        };
        let alphabet = match &config.id_alphabet {
            Some(a) => a.clone(),
            None => settings::get_or_init(&db, "id_alphabet", Ids::generate_alphabet).await?,
        };
        let ids = Ids::new(&alphabet).map_err(AppError::BadRequest)?;
        let outbox = crate::outbox::Outbox::new(ids.clone());
        Ok(App {
            key_cache: KeyCache::new(Duration::from_secs(config.key_cache_ttl_secs)),
            usage: UsageTracker::default(),
            jwt: JwtKeys::new(jwt_secret.as_bytes()),
            ids,
            dummy_hash: password::hash_async(password::generate()).await?,
            tasks: tokio_util::task::TaskTracker::new(),
            duplicates: Default::default(),
            imports_due: Default::default(),
            delivery_stats: Default::default(),
            outbox,
            limits: RateLimits::new(&config)
                .with_redis(&config)
                .map_err(AppError::BadRequest)?,
            config,
            db,
        })
    }
}
