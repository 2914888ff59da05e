//! Which columns a selection reads: each object type that a page reads partially names, for
//! every field, the columns that field shows, so a page reads only what the document selects.

use async_graphql::Lookahead;

/// A type's fields, each with the columns it shows (empty: it needs only the row's id).
pub type Fields<C> = &'static [(&'static str, &'static [C])];

/// The columns the fields selected in `sel` show, by `fields`.
pub fn selected<C: Copy>(sel: &Lookahead<'_>, fields: Fields<C>) -> Vec<C> {
    fields
        .iter()
        .filter(|(name, _)| sel.field(name).exists())
        .flat_map(|(_, cols)| cols.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

    /// Every field of `ty` in the schema, sorted.
    fn fields_of(ty: &str) -> Vec<String> {
        let doc = async_graphql::parser::parse_schema(super::super::schema::sdl())
            .expect("the schema parses");
        let mut out: Vec<String> = doc
            .definitions
            .iter()
            .filter_map(|d| match d {
                TypeSystemDefinition::Type(t) if t.node.name.node == ty => Some(&t.node.kind),
                _ => None,
            })
            .flat_map(|kind| match kind {
                TypeKind::Object(o) => o
                    .fields
                    .iter()
                    .map(|f| f.node.name.node.to_string())
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        out.sort();
        out
    }

    fn named<C>(fields: super::Fields<C>) -> Vec<String> {
        let mut out: Vec<String> = fields.iter().map(|(n, _)| n.to_string()).collect();
        out.sort();
        out
    }

    /// A field missing from a table would show a placeholder: each table names every field.
    #[test]
    fn every_field_names_its_columns() {
        use crate::graphql::{lead, pipeline, source, user};
        assert_eq!(named(lead::COLUMNS), fields_of("Lead"));
        assert_eq!(named(source::COLUMNS), fields_of("Source"));
        assert_eq!(named(pipeline::PIPELINE_COLUMNS), fields_of("Pipeline"));
        assert_eq!(named(pipeline::STAGE_COLUMNS), fields_of("Stage"));
        assert_eq!(named(user::COLUMNS), fields_of("User"));
    }
}
