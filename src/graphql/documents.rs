//! Parsed GraphQL documents, cached by their text: clients send the same few documents over
//! and over, and parsing (a PEG parser) is a large share of a small request's cost.
//!
//! A cached document also remembers whether it has passed full validation. For a document
//! that declares no variables, validation depends on nothing but the document and the schema,
//! so once it has passed, later runs may use the schema that skips the rules
//! ([`crate::graphql::schema::Schemas::fast`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::parser::types::ExecutableDocument;

use crate::bounded::BoundedMap;

/// Documents kept at most; when full the cache starts over, so clients sending ever-new
/// documents cost memory up to this bound and no more.
const CAPACITY: usize = 512;
/// Longer documents are parsed every time rather than kept.
const MAX_CACHED_LEN: usize = 16 * 1024;

/// One cached document.
#[derive(Debug)]
pub struct Entry {
    doc: ExecutableDocument,
    /// No operation declares a variable, so validation cannot depend on the request.
    variable_free: bool,
    validated: AtomicBool,
}

impl Entry {
    /// Whether this document is known to pass full validation whatever the request.
    pub fn is_validated(&self) -> bool {
        self.validated.load(Ordering::Relaxed)
    }

    /// Records that the document passed full validation; ignored for documents with
    /// variables, whose validation depends on the values sent.
    pub fn mark_validated(&self) {
        if self.variable_free {
            self.validated.store(true, Ordering::Relaxed);
        }
    }
}

/// A parsed document and, when it came from or went into the cache, its entry.
pub struct Parsed {
    /// The document, the executor's own copy.
    pub doc: ExecutableDocument,
    /// The cache entry, absent for documents too long to keep.
    pub entry: Option<Arc<Entry>>,
}

/// The cache; one per process.
pub struct Documents(BoundedMap<Box<str>, Arc<Entry>>);

impl Default for Documents {
    fn default() -> Self {
        Documents(BoundedMap::new(CAPACITY))
    }
}

impl Documents {
    /// The parsed document for `query`, from the cache or the parser.
    pub fn parse(&self, query: &str) -> async_graphql::parser::Result<Parsed> {
        if let Some(entry) = self.0.get(query) {
            return Ok(Parsed {
                doc: entry.doc.clone(),
                entry: Some(entry),
            });
        }
        let doc = async_graphql::parser::parse_query(query)?;
        if query.len() > MAX_CACHED_LEN {
            return Ok(Parsed { doc, entry: None });
        }
        let entry = Arc::new(Entry {
            variable_free: doc
                .operations
                .iter()
                .all(|(_, op)| op.node.variable_definitions.is_empty()),
            doc: doc.clone(),
            validated: AtomicBool::new(false),
        });
        self.0.insert(query.into(), entry.clone());
        Ok(Parsed {
            doc,
            entry: Some(entry),
        })
    }

    /// Applies `f` to the parsed document for `query` without copying it out of the cache.
    pub fn inspect<R>(
        &self,
        query: &str,
        f: impl FnOnce(&ExecutableDocument) -> R,
    ) -> async_graphql::parser::Result<R> {
        match self.0.get(query) {
            Some(entry) => Ok(f(&entry.doc)),
            None => self.parse(query).map(|parsed| f(&parsed.doc)),
        }
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
        assert_eq!(format!("{:?}", first.doc), format!("{:?}", again.doc));
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
        let parsed = docs.parse(&long).expect("parses");
        assert!(parsed.entry.is_none());
        assert_eq!(docs.len(), before, "long documents are not kept");
    }

    #[test]
    fn only_documents_without_variables_are_remembered_as_validated() {
        let docs = Documents::default();
        let plain = docs.parse("{ me { id } }").expect("parses");
        let entry = plain.entry.expect("cached");
        assert!(!entry.is_validated());
        entry.mark_validated();
        let again = docs.parse("{ me { id } }").expect("parses");
        assert!(again.entry.expect("cached").is_validated());

        let text = "query A { me { id } } query B($n: Int) { leads(first: $n) { totalCount } }";
        let with_vars = docs.parse(text).expect("parses");
        let entry = with_vars.entry.expect("cached");
        entry.mark_validated();
        assert!(
            !entry.is_validated(),
            "a variable's value can fail validation"
        );
    }
}
