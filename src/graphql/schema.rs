//! Builds the schema: merged roots, limits, and the exported SDL.

use async_graphql::{EmptySubscription, MergedObject, SDLExportOptions, Schema, ValidationMode};

use super::api_key::{ApiKeyMutation, ApiKeyQuery};
use super::audit::AuditQuery;
use super::lead::{LeadMutation, LeadQuery};
use super::node::NodeQuery;
use super::pipeline::{PipelineMutation, PipelineQuery};
use super::session::SessionMutation;
use super::source::{SourceMutation, SourceQuery};
use super::stats::StatsQuery;
use super::user::{UserMutation, UserQuery};
use super::viewer::ViewerQuery;
use crate::config::Config;

// async-graphql tries the parts of a merged root from the last to the first, one nested
// future each, so the parts with the fields called most (`me`, `leads`, `node`) come last.
/// The query root.
#[derive(MergedObject, Default)]
pub struct Query(
    ApiKeyQuery,
    UserQuery,
    AuditQuery,
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
    SessionMutation,
    ApiKeyMutation,
    UserMutation,
    PipelineMutation,
    SourceMutation,
    LeadMutation,
);

/// The executable schema.
pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema twice: with every validation rule, and with async-graphql's fast mode (fragment
/// cycles and uploads only), for documents already known to be valid.
pub struct Schemas {
    /// Full validation; for documents not yet validated or that declare variables.
    pub strict: AppSchema,
    /// For documents that passed `strict` and declare no variables (see `documents.rs`).
    pub fast: AppSchema,
}

/// Builds the schemas with the configured limits.
pub fn build(config: &Config) -> Schemas {
    Schemas {
        strict: build_with(config, ValidationMode::Strict),
        fast: build_with(config, ValidationMode::Fast),
    }
}

fn build_with(config: &Config, mode: ValidationMode) -> AppSchema {
    // Depth, cost, alias and root-field limits are checked before execution in `limits.rs`
    // (for /graphql only: the REST routes run fixed operations).
    let mut builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .validation_mode(mode)
        .limit_recursive_depth(64)
        .limit_directives(10);
    if !config.graphql_introspection {
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.finish()
}

/// The SDL as `leadgraph schema` prints it and `schema.graphql` holds it: sorted, stable.
pub fn sdl() -> String {
    let schema = Schema::build(Query::default(), Mutation::default(), EmptySubscription).finish();
    schema.sdl_with_options(
        SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items(),
    )
}
