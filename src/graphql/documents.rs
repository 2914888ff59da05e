//! Parsed GraphQL documents, cached by their text: clients send the same few documents over
//! and over, and parsing (a PEG parser) is a large share of a small request's cost.

use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;

use crate::bounded::BoundedMap;

/// Documents kept at most; when full the cache starts over, so clients sending ever-new
/// documents cost memory up to this bound and no more.
const CAPACITY: usize = 512;
/// Longer documents are parsed every time rather than kept.
const MAX_CACHED_LEN: usize = 16 * 1024;

/// The cache; one per process.
pub struct Documents(BoundedMap<Box<str>, Arc<ExecutableDocument>>);

impl Default for Documents {
    fn default() -> Self {
        Documents(BoundedMap::new(CAPACITY))
    }
}

impl Documents {
    /// The parsed document for `query`, from the cache or the parser.
    pub fn parse(&self, query: &str) -> async_graphql::parser::Result<ExecutableDocument> {
        if let Some(doc) = self.0.get(query) {
            return Ok(ExecutableDocument::clone(&doc));
        }
        let doc = async_graphql::parser::parse_query(query)?;
        if query.len() <= MAX_CACHED_LEN {
            self.0.insert(query.into(), Arc::new(doc.clone()));
        }
        Ok(doc)
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_return_the_same_document_and_the_cache_is_bounded() {
        let docs = Documents::default();
        let first = docs.parse("{ me { id } }").expect("parses");
        let again = docs.parse("{ me { id } }").expect("parses");
        assert_eq!(format!("{first:?}"), format!("{again:?}"));
        assert_eq!(docs.len(), 1);
        assert!(docs.parse("{ me { ").is_err(), "errors are not cached");
        assert_eq!(docs.len(), 1);
        for i in 0..CAPACITY + 10 {
            docs.parse(&format!("{{ a{i}: __typename }}"))
                .expect("parses");
        }
        assert!(docs.len() <= CAPACITY);
        let long = format!("{{ {} }}", "__typename ".repeat(MAX_CACHED_LEN / 10));
        let before = docs.len();
        docs.parse(&long).expect("parses");
        assert_eq!(docs.len(), before, "long documents are not kept");
    }
}
