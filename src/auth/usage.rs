//! `lastUsedAt`/`usageCount` of API keys, accumulated in memory and written in batches so that
//! authenticating costs no database write.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

/// Uses of one key not yet written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Requests made.
    pub count: i64,
    /// The latest of them.
    pub last_used_at: DateTime<Utc>,
}

/// The accumulator.
#[derive(Debug, Default)]
pub struct UsageTracker {
    pending: Mutex<HashMap<i64, Pending>>,
}

impl UsageTracker {
    /// Counts one use of key `id`.
    pub fn record(&self, id: i64) {
        let now = Utc::now();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pending.entry(id).or_insert(Pending {
            count: 0,
            last_used_at: now,
        });
        entry.count += 1;
        entry.last_used_at = entry.last_used_at.max(now);
    }

    /// Uses of key `id` not yet written, to add to what the database says.
    pub fn pending(&self, id: i64) -> Option<Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
    }

    fn merge_back(&self, batch: HashMap<i64, Pending>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (id, p) in batch {
            let entry = pending.entry(id).or_insert(Pending {
                count: 0,
                last_used_at: p.last_used_at,
            });
            entry.count += p.count;
            entry.last_used_at = entry.last_used_at.max(p.last_used_at);
        }
    }

    /// Writes everything accumulated; on failure it is kept for the next flush.
    pub async fn flush(&self, db: &DatabaseConnection) -> Result<usize, DbErr> {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let n = batch.len();
        let mut left = batch.clone();
        for (id, p) in batch {
            use entity::api_key::{Column, Entity};
            let res = Entity::update_many()
                .col_expr(
                    Column::UsageCount,
                    sea_orm::sea_query::ExprTrait::add(Expr::col(Column::UsageCount), p.count),
                )
                .col_expr(Column::LastUsedAt, Expr::value(p.last_used_at))
                .filter(Column::Id.eq(id))
                .exec(db)
                .await;
            if let Err(e) = res {
                self.merge_back(left);
                return Err(e);
            }
            left.remove(&id);
        }
        Ok(n)
    }
}
