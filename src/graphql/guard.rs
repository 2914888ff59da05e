//! Field guards: every protected field states what it needs, so GraphQL and REST share the checks.

use async_graphql::{Context, Guard, Result};

use crate::context::RequestCtx;

/// What a field requires of the caller.
#[derive(Debug, Clone, Copy)]
pub enum Need {
    /// Any credential.
    Auth,
    /// A credential that may change leads, sources, pipelines and tags.
    Write,
    /// A user session (not an API key).
    Session,
    /// A caller acting as an admin or owner.
    Admin,
    /// A user session of an admin or owner.
    AdminSession,
}

impl Guard for Need {
    async fn check(&self, ctx: &Context<'_>) -> Result<()> {
        let p = ctx.data::<RequestCtx>()?.principal()?;
        match self {
            Need::Auth => Ok(()),
            Need::Write => Ok(p.check_write()?),
            Need::Session => Ok(p.check_session()?),
            Need::Admin => Ok(p.check_admin()?),
            Need::AdminSession => {
                p.check_session()?;
                Ok(p.check_admin()?)
            }
        }
    }
}
