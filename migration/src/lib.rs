//! Schema migrations for leadgraph, shared by SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_init;
mod m20261205_000001_session_epoch;
mod m20261205_000002_events;
mod m20261205_000003_webhooks;
mod m20261205_000004_stream_endpoints;
mod m20261205_000005_idempotency;
mod m20261205_000006_imports;

/// Applies leadgraph's migrations in order.
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_init::Migration),
            Box::new(m20261205_000001_session_epoch::Migration),
            Box::new(m20261205_000002_events::Migration),
            Box::new(m20261205_000003_webhooks::Migration),
            Box::new(m20261205_000004_stream_endpoints::Migration),
            Box::new(m20261205_000005_idempotency::Migration),
            Box::new(m20261205_000006_imports::Migration),
        ]
    }
}
