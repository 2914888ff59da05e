//! Parsed GraphQL documents, cached by their text: clients send the same few documents over
//! and over, and parsing is a large share of a small request's cost. Nesting is bounded before
//! the parser, which recurses once per level, sees any text.

use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;

use crate::bounded::BoundedMap;
use crate::graphql::nesting;

/// Documents kept at most; when full the cache starts over, so clients sending ever-new
/// documents cost memory up to this bound and no more.
const CAPACITY: usize = 256;
/// Longer documents are parsed every time rather than kept.
const MAX_CACHED_LEN: usize = 16 * 1024;

/// Why a document did not parse.
#[derive(Debug)]
pub enum Unparsed {
    /// Brackets nested deeper than [`nesting::MAX_NESTING`]: refused before the parser runs.
    TooDeep(usize),
    /// A syntax error, for the executor to report as GraphQL errors.
    Syntax(async_graphql::parser::Error),
}

/// The cache; one per process, shared by every request.
pub struct Documents {
    parsed: BoundedMap<Box<str>, Arc<ExecutableDocument>>,
}

impl Default for Documents {
    fn default() -> Self {
        Documents {
            parsed: BoundedMap::new(CAPACITY),
        }
    }
}

impl Documents {
    /// The parsed document for `query` (the executor's own copy), from the cache or the parser.
    pub fn parse(&self, query: &str) -> Result<ExecutableDocument, Unparsed> {
        if let Some(doc) = self.parsed.get(query) {
            return Ok((*doc).clone());
        }
        let doc = Self::parse_bounded(query)?;
        if query.len() <= MAX_CACHED_LEN {
            self.parsed.insert(query.into(), Arc::new(doc.clone()));
        }
        Ok(doc)
    }

    /// Applies `f` to the parsed document for `query` without copying it out of the cache.
    pub fn inspect<R>(
        &self,
        query: &str,
        f: impl FnOnce(&ExecutableDocument) -> R,
    ) -> Result<R, Unparsed> {
        match self.parsed.get(query) {
            Some(doc) => Ok(f(&doc)),
            None => self.parse(query).map(|doc| f(&doc)),
        }
    }

    fn parse_bounded(query: &str) -> Result<ExecutableDocument, Unparsed> {
        let depth = nesting::graphql(query, nesting::MAX_NESTING);
        if depth > nesting::MAX_NESTING {
            return Err(Unparsed::TooDeep(depth));
        }
        async_graphql::parser::parse_query(query).map_err(Unparsed::Syntax)
    }

    /// Documents held.
    pub fn len(&self) -> usize {
        self.parsed.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.parsed.is_empty()
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
        assert!(matches!(
            docs.parse(&format!(
                "{{ a(x: {}1{}) }}",
                "[".repeat(5000),
                "]".repeat(5000)
            )),
            Err(Unparsed::TooDeep(_))
        ));
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
        assert_eq!(
            docs.inspect("{ me { id } }", |d| d.operations.iter().count())
                .expect("parses"),
            1
        );
    }
}
