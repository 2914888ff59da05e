//! [`Lean`]: an object type whose selections of one field skip async-graphql's container
//! machinery.

use std::borrow::Cow;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::ContainerType;
use async_graphql::{ContextSelectionSet, OutputType, Positioned, ServerResult, Value};

/// An object type `T` as the schema sees it, resolved the same way, except that a selection
/// of a single plain field resolves that field directly. For any selection, async-graphql
/// boxes a future per field, collects them in a set, awaits them and merges the results into
/// a new map; for one field there is nothing to collect or merge (`{ me { id } }`, the request
/// integrators send to check a credential, spent about 1 800 instructions on it).
pub struct Lean<T>(pub T);

impl<T: ContainerType + OutputType> OutputType for Lean<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        // What `resolve_container` does for one field, in line: `__typename` and fields with
        // directives (custom ones wrap the resolver) take the general path, as does a fragment,
        // which may hold several fields. The schema has no extensions (`schema.rs`), whose
        // resolve hook the general path would call around the field.
        if let [one] = &ctx.item.node.items[..]
            && let Selection::Field(lone) = &one.node
            && lone.node.name.node != "__typename"
            && lone.node.directives.is_empty()
        {
            let ctx_field = ctx.with_field(lone);
            let name = lone.node.response_key().node.clone();
            return Ok(match self.0.resolve_field(&ctx_field).await {
                Ok(value) => {
                    Value::Object(IndexMap::from_iter([(name, value.unwrap_or_default())]))
                }
                // As async-graphql does: the error is recorded and the object has no fields.
                Err(error) => {
                    ctx.add_error(error);
                    Value::Null
                }
            });
        }
        self.0.resolve(ctx, field).await
    }
}
