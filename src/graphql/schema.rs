//! Builds the schema: merged roots, limits, and the exported SDL.

use async_graphql::{MergedObject, SDLExportOptions, Schema};

use super::api_key::{ApiKeyMutation, ApiKeyQuery};
use super::audit::AuditQuery;
use super::event::EventQuery;
use super::import::{ImportMutation, ImportQuery};
use super::lead::{LeadMutation, LeadQuery};
use super::node::NodeQuery;
use super::pipeline::{PipelineMutation, PipelineQuery};
use super::session::SessionMutation;
use super::source::{SourceMutation, SourceQuery};
use super::stats::StatsQuery;
use super::subscription::Subscription;
use super::user::{UserMutation, UserQuery};
use super::viewer::ViewerQuery;
use super::webhook::{WebhookMutation, WebhookQuery};
use crate::config::Config;

// async-graphql tries the parts of a merged root from the last to the first, one nested
// future each, so the parts with the fields called most (`me`, `leads`, `node`) come last.
/// The query root.
#[derive(MergedObject, Default)]
pub struct Query(
    ImportQuery,
    WebhookQuery,
    ApiKeyQuery,
    UserQuery,
    AuditQuery,
    EventQuery,
    StatsQuery,
    PipelineQuery,
    SourceQuery,
    NodeQuery,
    LeadQuery,
    ViewerQuery,
);

// Tried from the last part too: lead mutations come last.
/// The mutation root.
#[derive(MergedObject, Default)]
pub struct Mutation(
    ImportMutation,
    WebhookMutation,
    SessionMutation,
    ApiKeyMutation,
    UserMutation,
    PipelineMutation,
    SourceMutation,
    LeadMutation,
);

/// The executable schema.
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Executes `request` on a task of its own (tracked, so shutdown waits for it) and waits for
/// the response. When the caller's future is dropped (the client went away, the request timed
/// out), the execution still runs to its end: a transaction it began is committed or rolled
/// back before its connection goes back to the pool, never left open there.
pub async fn execute_detached(
    tasks: &tokio_util::task::TaskTracker,
    schema: &AppSchema,
    request: async_graphql::Request,
) -> async_graphql::Response {
    let schema = schema.clone();
    match tasks
        .spawn(async move { schema.execute(request).await })
        .await
    {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "GraphQL execution failed");
            let err = crate::error::AppError::internal(e)
                .to_graphql()
                .into_server_error(async_graphql::Pos::default());
            async_graphql::Response::from_errors(vec![err])
        }
    }
}

/// Builds the schema with the configured limits. Depth, cost, alias and root-field limits are
/// checked before execution in `limits.rs` (for `/graphql` only: the REST routes run fixed
/// operations).
pub fn build(config: &Config) -> AppSchema {
    let mut builder = Schema::build(Query::default(), Mutation::default(), Subscription)
        .limit_recursive_depth(64)
        .limit_directives(10);
    if !config.graphql_introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The SDL as `leadgraph schema` prints it and `schema.graphql` holds it: sorted, stable.
pub fn sdl() -> String {
    let schema = Schema::build(Query::default(), Mutation::default(), Subscription).finish();
    schema.sdl_with_options(
        SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items(),
    )
}
