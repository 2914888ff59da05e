//! leadgraph: a self-hostable, multi-tenant lead-management API server.

/// Authentication: keys, tokens, passwords, principals.
pub mod auth;
/// A size-bounded shared map for caches.
pub mod bounded;
/// The operator commands.
pub mod cli;
/// Configuration and CLI.
pub mod config;
/// Per-request context.
pub mod context;
/// Database connection and migrations.
pub mod db;
/// The error type.
pub mod error;
/// The GraphQL API.
pub mod graphql;
/// HTTP helpers shared by handlers.
pub mod http;
/// Opaque IDs.
pub mod ids;
/// The HTTP layers: hygiene, client IP, limits, authentication.
pub mod layers;
/// Prometheus metrics.
pub mod metrics;
/// Where committed changes are announced: the webhook worker and subscribers.
pub mod outbox;
/// Rate limits.
pub mod rate_limit;
/// The REST compatibility layer.
pub mod rest;
/// The router.
pub mod router;
/// The demo data generator.
pub mod seed;
/// Process start-up: logging, serving, shutdown.
pub mod server;
/// Services: the only code that queries the database.
pub mod service;
/// Deployment settings kept in the database.
pub mod settings;
pub mod shared_limit;
/// The services' state.
pub mod state;
/// Serving HTTP connections with transport limits.
pub mod transport;
/// The HTTP side's state.
pub mod web;
