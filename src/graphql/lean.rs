//! [`Lean`]: an object type whose selections of one field skip async-graphql's concurrent
//! resolution.

use std::borrow::Cow;

use async_graphql::parser::types::{Field, Selection};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::{ContainerType, resolve_container_serial};
use async_graphql::{ContextSelectionSet, OutputType, Positioned, ServerResult, Value};

/// An object type `T` as the schema sees it, resolved the same way, except that a selection
/// of a single field resolves that field directly. async-graphql resolves an object's fields
/// concurrently, through a set of futures it allocates and wakes per object; for one field
/// there is nothing to run concurrently with (`{ me { id } }`, the request integrators send to
/// check a credential, spends about 700 instructions on it).
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
        // A fragment may hold several fields: only a lone field takes the direct path.
        if let [one] = &ctx.item.node.items[..]
            && matches!(one.node, Selection::Field(_))
        {
            resolve_container_serial(ctx, &self.0).await
        } else {
            self.0.resolve(ctx, field).await
        }
    }
}
