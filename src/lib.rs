//! leadgraph: a self-hostable, multi-tenant lead-management API server.

/// Application state and router.
pub mod app;
/// Authentication: keys, tokens, passwords, principals.
pub mod auth;
/// A size-bounded shared map for caches.
pub mod bounded;
/// Client IP resolution (trusted proxies).
pub mod client_ip;
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
/// Request-ID hygiene and security headers.
pub mod hygiene;
/// Opaque IDs.
pub mod ids;
/// Prometheus metrics.
pub mod metrics;
/// Rate limits.
pub mod rate_limit;
/// The REST compatibility layer.
pub mod rest;
/// The demo data generator.
pub mod seed;
/// Process start-up: logging, serving, shutdown.
pub mod server;
/// Services: the only code that queries the database.
pub mod service;
/// Serving HTTP connections with transport limits.
pub mod transport;
