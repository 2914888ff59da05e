//! The HTTP layers every request passes through, outermost first: request-ID and header
//! hygiene, the client's address, the per-IP limit, authentication, the tenant's limit,
//! idempotency keys. Each
//! reads what the one before it left in the request's extensions.

pub mod authenticate;
pub mod client_ip;
pub mod credentials;
pub mod hygiene;
pub mod idempotency;
pub mod limit;

/// Routes that neither authenticate nor count against a limit.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics") || path.starts_with("/graphiql/")
}

/// Inbound webhooks: their credential is their URL, checked by the handler.
fn is_webhook(path: &str) -> bool {
    path.starts_with("/v1/webhooks/") || path.starts_with("/api/webhooks/")
}
