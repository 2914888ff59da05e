//! Database connection (SQLite pragmas or PostgreSQL pool), migrations and write transactions.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QuerySelect, Select, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::config::{Config, SqliteSync};

/// Whether a URL names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Connects to the configured database. SQLite gets WAL, foreign keys, a busy timeout and the
/// configured `synchronous`; the file is created when missing. Pooled connections are tested
/// when returned and, after a second idle, before being handed out.
pub async fn connect(config: &Config) -> Result<DatabaseConnection, DbErr> {
    let url = config.database_url();
    let mut opts = ConnectOptions::new(url.clone());
    opts.max_connections(config.pool_size())
        .min_connections(1)
        .acquire_timeout(Duration::from_millis(config.db_acquire_timeout_ms))
        .connect_timeout(Duration::from_secs(5))
        // sqlx pings a connection on every acquire by default and again on every release, and
        // SeaORM acquires once per statement: on PostgreSQL two extra round trips per
        // statement, on SQLite two extra trips to the connection's worker thread. The release
        // ping stays (sqlx always sends it, and drops a connection that fails it); on acquire
        // only a connection idle for a second or more is tested, so a connection that broke
        // while idle (a restarted server) is still replaced before a request gets it.
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        .sqlx_logging(false);
    if !is_postgres(&url) {
        let sync = match config.sqlite_synchronous {
            SqliteSync::Full => SqliteSynchronous::Full,
            SqliteSync::Normal => SqliteSynchronous::Normal,
        };
        opts.map_sqlx_sqlite_opts(move |o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .synchronous(sync)
        });
    }
    Database::connect(opts).await
}

/// Applies pending migrations.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Reads the row a write is about to change, locked until the transaction ends: `SELECT …
/// FOR UPDATE` on PostgreSQL, where READ COMMITTED would otherwise let two writers start from
/// the same copy and the later overwrite the earlier. SQLite has no row locks and needs none:
/// [`begin_write`] already holds its one write lock.
pub async fn one_locked<E: EntityTrait>(
    tx: &DatabaseTransaction,
    select: Select<E>,
) -> Result<Option<E::Model>, DbErr> {
    select.lock_exclusive().one(tx).await
}

/// Begins a transaction that will write. On SQLite it takes the write lock at once
/// (`BEGIN IMMEDIATE`), so two writers queue on the busy timeout instead of failing when
/// a read transaction upgrades; PostgreSQL ignores the option.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}
