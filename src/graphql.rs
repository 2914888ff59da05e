//! The GraphQL API: schema, roots merged from one object per resource, guards and loaders.

pub mod api_key;
pub mod audit;
pub mod columns;
pub mod documents;
pub mod event;
pub mod graphiql;
pub mod guard;
pub mod http;
pub mod import;
pub mod lead;
pub mod limits;
pub mod loaders;
pub mod nesting;
pub mod node;
pub mod pipeline;
pub mod response;
pub mod schema;
pub mod session;
pub mod source;
pub mod stats;
pub mod subscription;
pub mod tenant;
pub mod time;
pub mod user;
pub mod viewer;
pub mod webhook;
pub mod ws;

use async_graphql::{Context, ID};

use crate::context::RequestCtx;
use crate::error::AppError;
use crate::ids::Kind;
use crate::state::App;

/// The services' state, from a resolver's context.
pub fn app<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a App> {
    ctx.data::<std::sync::Arc<App>>().map(|app| &**app)
}

/// The request context, from a resolver's context.
pub fn rc<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a RequestCtx> {
    ctx.data::<RequestCtx>()
}

/// The dataloaders of the root field the resolver runs under, created on first use (most
/// small requests need none).
pub fn loaders(ctx: &Context<'_>) -> async_graphql::Result<std::sync::Arc<loaders::Loaders>> {
    let lazy = ctx.data::<loaders::LazyLoaders>()?;
    let app = app(ctx)?;
    let p = rc(ctx)?.principal()?;
    Ok(lazy.get(root_field(ctx), &app.db, p))
}

/// The response key of the root field the resolver runs under.
fn root_field<'a>(ctx: &Context<'a>) -> &'a str {
    let mut node = ctx.path_node.as_ref();
    while let Some(n) = node {
        match (n.parent, n.segment) {
            (None, async_graphql::QueryPathSegment::Name(name)) => return name,
            (parent, _) => node = parent,
        }
    }
    ""
}

/// Encodes a row ID for output.
pub fn encode(ctx: &Context<'_>, kind: Kind, id: i64) -> async_graphql::Result<ID> {
    Ok(ID(app(ctx)?.ids.encode(kind, id)))
}

/// Decodes an ID argument that names the resource to act on: a bad one is `NOT_FOUND`.
pub fn decode_arg(ctx: &Context<'_>, kind: Kind, id: &ID) -> Result<i64, AppError> {
    let app = ctx
        .data::<std::sync::Arc<App>>()
        .map_err(|e| AppError::internal(e.message))?;
    app.ids.decode(kind, id.as_str()).ok_or(AppError::NotFound)
}

/// Decodes an ID inside an input object: a bad one is a `VALIDATION_FAILED` field error.
pub fn decode_field(
    ctx: &Context<'_>,
    kind: Kind,
    id: &ID,
    field: &str,
    errors: &mut crate::service::validate::Errors,
) -> Option<i64> {
    let decoded = app(ctx)
        .ok()
        .and_then(|app| app.ids.decode(kind, id.as_str()));
    if decoded.is_none() {
        errors.add(field, "is not a valid ID");
    }
    decoded
}
