//! Per-process cache of API key look-ups, so a key costs no database round trip per request.
//!
//! Entries live at most `ttl`. Changes made through this process evict the entry at once;
//! on PostgreSQL, changes made through another process are announced to this one
//! (`service::invalidate`), and the TTL is the bound only while that channel is down.

use std::time::{Duration, Instant};

use entity::enums::{Environment, Plan, Role, Scope};

use crate::bounded::BoundedMap;

/// What a key look-up needs to authorize a request.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// The key's row ID.
    pub id: i64,
    /// Its tenant.
    pub tenant_id: i64,
    /// The tenant's plan.
    pub plan: Plan,
    /// Its creator.
    pub user_id: i64,
    /// The creator's role.
    pub user_role: Role,
    /// Whether the creator is active.
    pub user_active: bool,
    /// The key's environment.
    pub environment: Environment,
    /// Its scope.
    pub scope: Scope,
    /// Whether it is active (and not deleted).
    pub active: bool,
    /// When it expires.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The cache, keyed by the key's SHA-256.
#[derive(Debug)]
pub struct KeyCache {
    ttl: Duration,
    entries: BoundedMap<[u8; 32], (Instant, KeyRecord)>,
}

/// Entries kept at most; beyond it the cache is cleared rather than grown.
const MAX_ENTRIES: usize = 100_000;

impl KeyCache {
    /// A cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        KeyCache {
            ttl,
            entries: BoundedMap::new(MAX_ENTRIES),
        }
    }

    /// A fresh entry for `hash`.
    pub fn get(&self, hash: &[u8; 32]) -> Option<KeyRecord> {
        self.entries
            .get(hash)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, record)| record)
    }

    /// Stores a look-up result.
    pub fn insert(&self, hash: [u8; 32], record: KeyRecord) {
        if self.ttl.is_zero() {
            return;
        }
        self.entries.insert(hash, (Instant::now(), record));
    }

    /// Entries held (expired ones included, until replaced or cleared).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Evicts the entry of key `id` (after it was changed or deleted).
    pub fn evict_key(&self, id: i64) {
        self.entries.retain(|_, (_, r)| r.id != id);
    }

    /// Evicts every entry.
    pub fn clear(&self) {
        self.entries.retain(|_, _| false);
    }

    /// Evicts every entry of a tenant (after a user or plan change).
    pub fn evict_tenant(&self, tenant_id: i64) {
        self.entries.retain(|_, (_, r)| r.tenant_id != tenant_id);
    }
}
