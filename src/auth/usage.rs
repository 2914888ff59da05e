//! `lastUsedAt`/`usageCount` of API keys, accumulated in memory and written in batches so that
//! authenticating costs no database write.

use std::collections::HashMap;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

/// Uses of one key not yet written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Requests made.
    pub count: i64,
    last_used: SystemTime,
}

impl Pending {
    /// The latest of them.
    pub fn last_used_at(&self) -> DateTime<Utc> {
        DateTime::from(self.last_used)
    }

    /// Both together: counts added, the later time kept.
    fn plus(self, other: Pending) -> Pending {
        Pending {
            count: self.count + other.count,
            last_used: self.last_used.max(other.last_used),
        }
    }
}

type Batch = HashMap<i64, Pending>;

fn add(pending: &mut Batch, id: i64, uses: Pending) {
    pending
        .entry(id)
        .and_modify(|p| *p = p.plus(uses))
        .or_insert(uses);
}

/// The accumulator, as crates.io counts downloads: one map behind a mutex, taken whole by the
/// periodic flush.
#[derive(Debug, Default)]
pub struct UsageTracker {
    pending: std::sync::Mutex<Batch>,
}

impl UsageTracker {
    /// Counts one use of key `id`.
    pub fn record(&self, id: i64) {
        let one = Pending {
            count: 1,
            last_used: SystemTime::now(),
        };
        add(&mut self.lock(), id, one);
    }

    /// The pending map; a poisoned lock is taken as it is (it guards counts).
    fn lock(&self) -> std::sync::MutexGuard<'_, Batch> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Uses of key `id` not yet written, to add to what the database says.
    pub fn pending(&self, id: i64) -> Option<Pending> {
        self.lock().get(&id).copied()
    }

    fn merge_back(&self, batch: Batch) {
        let mut pending = self.lock();
        for (id, uses) in batch {
            add(&mut pending, id, uses);
        }
    }

    /// Writes everything accumulated; on failure it is kept for the next flush.
    pub async fn flush(&self, db: &DatabaseConnection) -> Result<usize, DbErr> {
        let batch = std::mem::take(&mut *self.lock());
        let n = batch.len();
        let mut left = batch.clone();
        for (id, p) in batch {
            use entity::api_key::{Column, Entity};
            let res = Entity::update_many()
                .col_expr(
                    Column::UsageCount,
                    sea_orm::sea_query::ExprTrait::add(Expr::col(Column::UsageCount), p.count),
                )
                .col_expr(Column::LastUsedAt, Expr::value(p.last_used_at()))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn counts_uses_and_keeps_the_latest_time() {
        let t = UsageTracker::default();
        let before = Utc::now();
        t.record(7);
        t.record(7);
        t.record(8);
        let p = t.pending(7).expect("key 7 was used");
        assert_eq!(p.count, 2);
        assert!(p.last_used_at() >= before && p.last_used_at() <= Utc::now());
        assert_eq!(t.pending(8).map(|p| p.count), Some(1));
        assert_eq!(t.pending(9), None);

        // Uses counted on other threads add up.
        std::thread::scope(|s| {
            s.spawn(|| t.record(8));
            s.spawn(|| {
                t.record(8);
                t.record(9);
            });
        });
        assert_eq!(t.pending(8).map(|p| p.count), Some(3));
        assert_eq!(t.pending(9).map(|p| p.count), Some(1));

        // A failed flush hands its batch back: counts add up, the later time stays.
        let earlier = SystemTime::now() - Duration::from_secs(3600);
        t.merge_back(Batch::from_iter([(
            7,
            Pending {
                count: 5,
                last_used: earlier,
            },
        )]));
        let merged = t.pending(7).expect("key 7 is still pending");
        assert_eq!(merged.count, 7);
        assert_eq!(merged.last_used_at(), p.last_used_at());
    }
}
