//! Cache invalidation across instances (docs/deployment.md). A change that must end what a
//! cached credential allows (a key revoked, changed or deleted; a user deactivated or
//! re-roled; a plan changed) announces it in its transaction on PostgreSQL's
//! `leadgraph_invalidate` channel, delivered on commit; every instance's listener evicts the
//! entries at once. While the listener is disconnected the cache's TTL stays the bound, and on
//! reconnecting it clears the cache, as it may have missed announcements meanwhile.

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DbErr};

use crate::auth::key_cache::KeyCache;

/// The notification channel.
pub const CHANNEL: &str = "leadgraph_invalidate";

/// What to evict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One API key.
    Key(i64),
    /// Every key of a tenant (its users or plan changed).
    Tenant(i64),
}

impl Target {
    fn payload(self) -> String {
        match self {
            Target::Key(id) => format!("key:{id}"),
            Target::Tenant(id) => format!("tenant:{id}"),
        }
    }

    fn parse(payload: &str) -> Option<Target> {
        let (kind, id) = payload.split_once(':')?;
        let id = id.parse().ok()?;
        match kind {
            "key" => Some(Target::Key(id)),
            "tenant" => Some(Target::Tenant(id)),
            _ => None,
        }
    }
}

/// Announces `target` to every instance when `db`'s transaction commits (at once outside
/// one). SQLite serves one instance, which evicts its own cache.
pub async fn announce<C: ConnectionTrait>(db: &C, target: Target) -> Result<(), DbErr> {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Ok(());
    }
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), target.payload().into()],
    ))
    .await?;
    Ok(())
}

/// Evicts what `target` names from `cache`.
pub fn evict(cache: &KeyCache, target: Target) {
    match target {
        Target::Key(id) => cache.evict_key(id),
        Target::Tenant(id) => cache.evict_tenant(id),
    }
}

/// Listens for every instance's announcements and evicts them from this one's cache;
/// reconnects by itself.
pub async fn listen(url: String, app: Arc<crate::state::App>) {
    // Announcements made while it was away are lost: every (re)connect starts from an empty
    // cache.
    let connected = || app.key_cache.clear();
    let evict_noted = |payload: String| {
        if let Some(target) = Target::parse(&payload) {
            evict(&app.key_cache, target);
        }
        std::future::ready(())
    };
    crate::db::listen(url, CHANNEL, "invalidation", connected, evict_noted).await;
}
