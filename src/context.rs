//! Per-request context shared by GraphQL resolvers and REST handlers: who is calling, from where.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use crate::auth::principal::Principal;
use crate::error::AppError;

/// What every resolver and service may need to know about the current request.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// The authenticated caller, if any credential was sent.
    pub principal: Option<Principal>,
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// The request's ID (`X-Request-Id`).
    pub request_id: String,
    /// Credential checks (passwords, refresh tokens) made so far, shared by a batch's
    /// operations: each beyond the first counts against the IP's rate limit.
    pub credential_checks: Arc<AtomicU32>,
}

impl RequestCtx {
    /// An operator command at the server's machine: no caller yet, request ID `cli`.
    pub fn operator() -> Self {
        RequestCtx {
            principal: None,
            ip: None,
            request_id: "cli".into(),
            credential_checks: Default::default(),
        }
    }

    /// The caller, or `MISSING_TOKEN`.
    pub fn principal(&self) -> Result<&Principal, AppError> {
        // A match rather than `ok_or`, which would build and drop the error on every call.
        match &self.principal {
            Some(p) => Ok(p),
            None => Err(AppError::MissingToken),
        }
    }
}
