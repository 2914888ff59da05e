//! Database connection (SQLite pragmas or PostgreSQL pool), migrations and write transactions.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, QuerySelect, Select, SqliteTransactionMode, TransactionOptions, TransactionTrait,
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

/// The advisory lock (PostgreSQL) under which one starting instance migrates at a time.
const MIGRATION_LOCK: i64 = 0x6c65_6164_6772_6170; // "leadgrap"

/// The setting naming the version that last migrated the database.
const MIGRATED_BY: &str = "migrated_by";

/// Applies pending migrations. On PostgreSQL, instances starting at once migrate one after
/// the other under an advisory lock (the later ones find nothing left to do). A database that
/// a newer leadgraph migrated (it holds migrations this build does not know) is refused, naming
/// both versions, before anything is changed.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    // Held by a transaction of its own for as long as the migrations run on other connections.
    let lock = if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        let tx = db.begin().await?;
        tx.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
        Some(tx)
    } else {
        None
    };
    Migrator::install(db).await?;
    let known: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let applied: Vec<String> = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations ORDER BY version",
        ))
        .await?
        .iter()
        .filter_map(|row| row.try_get::<String>("", "version").ok())
        .collect();
    if let Some(unknown) = applied.iter().find(|v| !known.contains(v)) {
        let by = match entity::setting::Entity::find_by_id(MIGRATED_BY.to_owned())
            .one(db)
            .await
        {
            Ok(Some(row)) => format!("leadgraph {}", row.value),
            _ => "a newer leadgraph".to_owned(),
        };
        return Err(DbErr::Migration(format!(
            "the database was migrated by {by}, which added migration {unknown}; this is \
             leadgraph {}, which does not know it. Run {by} (or newer) on this database",
            env!("CARGO_PKG_VERSION")
        )));
    }
    Migrator::up(db, None).await?;
    let version = entity::setting::ActiveModel {
        key: sea_orm::ActiveValue::Set(MIGRATED_BY.to_owned()),
        value: sea_orm::ActiveValue::Set(env!("CARGO_PKG_VERSION").to_owned()),
    };
    entity::setting::Entity::insert(version)
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(entity::setting::Column::Key)
                .update_column(entity::setting::Column::Value)
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    if let Some(tx) = lock {
        tx.commit().await?;
    }
    Ok(())
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

/// Ends the pool at shutdown. On SQLite the WAL is first checkpointed into the database file
/// and truncated, so the `.db` file alone holds every committed write (a copy of it is whole).
pub async fn close(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() == sea_orm::DbBackend::Sqlite {
        db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await?;
    }
    db.clone().close().await
}

/// `leadgraph backup --to FILE`: a consistent copy of a live SQLite database (`VACUUM INTO`,
/// which readers and writers may use meanwhile). PostgreSQL is backed up with `pg_dump`.
pub async fn backup(db: &DatabaseConnection, to: &std::path::Path) -> Result<(), DbErr> {
    if db.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return Err(DbErr::Custom(
            "backup copies SQLite databases; for PostgreSQL use pg_dump (pg_dump -Fc DBNAME > FILE, \
             restored with pg_restore)"
                .into(),
        ));
    }
    if to.exists() {
        return Err(DbErr::Custom(format!(
            "{} exists; backup writes a new file",
            to.display()
        )));
    }
    let path = to.to_string_lossy().replace('\'', "''");
    db.execute_unprepared(&format!("VACUUM INTO '{path}'"))
        .await?;
    Ok(())
}

/// Listens on PostgreSQL channel `channel` for as long as the process lives, on a connection
/// of its own (not one of the pool's: it is held all along), reconnecting a second after it
/// fails. `connected` runs at every (re)connect, so a caller can make up for notifications
/// sent while it was away; `note` gets each notification's payload. `what` names the listener
/// in the logs.
pub async fn listen<F: Future<Output = ()>>(
    url: String,
    channel: &'static str,
    what: &'static str,
    mut connected: impl FnMut(),
    mut note: impl FnMut(String) -> F,
) {
    use sea_orm::sqlx::postgres::PgListener;
    let retry = Duration::from_secs(1);
    loop {
        let mut listener = match PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, listener = what, "cannot connect; retrying");
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(channel).await {
            tracing::warn!(error = %e, listener = what, "cannot listen; retrying");
            tokio::time::sleep(retry).await;
            continue;
        }
        connected();
        loop {
            match listener.recv().await {
                Ok(n) => note(n.payload().to_owned()).await,
                Err(e) => {
                    tracing::warn!(error = %e, listener = what, "lost its connection");
                    break;
                }
            }
        }
    }
}
