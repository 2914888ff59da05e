//! Parsed GraphQL documents, cached by their text: clients send the same few documents over
//! and over, and parsing (a PEG parser) is a large share of a small request's cost.
//!
//! A cached document also remembers whether it has passed full validation. For a document
//! that declares no variables, validation depends on nothing but the document and the schema,
//! so once it has passed, later runs may use the schema that skips the rules
//! ([`crate::graphql::schema::Schemas::fast`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use async_graphql::parser::types::ExecutableDocument;
use foldhash::fast::RandomState;
use thread_local::ThreadLocal;

use crate::bounded::{BoundedMap, PaddedMutex};
use crate::graphql::limits::Analysis;
use crate::graphql::nesting;

/// Documents whose verdict is kept at most; when full the map starts over, so clients sending
/// ever-new documents cost memory up to this bound and no more.
const CAPACITY: usize = 512;
/// Parsed documents each thread keeps at most; when either bound is reached it starts over.
const LOCAL_CAPACITY: usize = 256;
/// The most text, in bytes, of the documents one thread keeps parsed.
const LOCAL_BYTES: usize = 512 * 1024;
/// Longer documents are parsed every time rather than kept.
const MAX_CACHED_LEN: usize = 16 * 1024;

/// What every thread learns about a document: whether it has passed full validation.
#[derive(Debug)]
struct Verdict {
    /// No operation declares a variable, so validation cannot depend on the request.
    variable_free: bool,
    validated: AtomicBool,
}

/// One cached document, in one thread's map.
#[derive(Debug)]
pub struct Entry {
    doc: ExecutableDocument,
    verdict: Arc<Verdict>,
    /// The limit analysis of a validated document, with the operation name it was asked for.
    analysis: OnceLock<(Option<Box<str>>, Analysis)>,
}

impl Entry {
    /// Whether this document is known to pass full validation whatever the request.
    pub fn is_validated(&self) -> bool {
        self.verdict.validated.load(Ordering::Relaxed)
    }

    /// Records that the document passed full validation; ignored for documents with
    /// variables, whose validation depends on the values sent.
    pub fn mark_validated(&self) {
        if self.verdict.variable_free {
            self.verdict.validated.store(true, Ordering::Relaxed);
        }
    }

    /// The limit analysis of the operation `operation_name` picks, from `analyse`. A validated
    /// document refers to no variable, so its analysis cannot change: it is kept, for the
    /// first operation name it was asked for. Others are analysed every time.
    pub fn analysis(
        &self,
        operation_name: Option<&str>,
        analyse: impl FnOnce() -> Analysis,
    ) -> Analysis {
        if !self.is_validated() {
            return analyse();
        }
        match self.analysis.get() {
            Some((name, kept)) if name.as_deref() == operation_name => *kept,
            Some(_) => analyse(),
            None => {
                let fresh = analyse();
                // A request on another thread may have set it meanwhile, for the same document.
                let _ = self.analysis.set((operation_name.map(Into::into), fresh));
                fresh
            }
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

/// One thread's parsed documents and their texts' total length.
#[derive(Default)]
struct Local {
    entries: HashMap<Box<str>, Arc<Entry>, RandomState>,
    bytes: usize,
}

/// The cache; one per process.
///
/// Each thread parses and keeps its own copy of a document. A copy handed to the executor
/// shares the cached one's names (`Arc<str>`), whose counts every field's execution changes:
/// with one copy for all threads, two cores took turns writing the same counts on every
/// request. What threads must share, whether a document passed validation, is kept apart.
pub struct Documents {
    verdicts: BoundedMap<Box<str>, Arc<Verdict>>,
    local: ThreadLocal<PaddedMutex<Local>>,
}

impl Default for Documents {
    fn default() -> Self {
        Documents {
            verdicts: BoundedMap::new(CAPACITY),
            local: ThreadLocal::new(),
        }
    }
}

/// Why a document did not parse.
#[derive(Debug)]
pub enum Unparsed {
    /// Brackets nested deeper than [`nesting::MAX_NESTING`]: refused before the parser runs.
    TooDeep(usize),
    /// A syntax error, for the executor to report as GraphQL errors.
    Syntax(async_graphql::parser::Error),
}

impl Documents {
    /// The parsed document for `query`, from this thread's cache or the parser. Nesting is
    /// bounded before the parser, which recurses once per level, sees the text.
    pub fn parse(&self, query: &str) -> Result<Parsed, Unparsed> {
        let local = self.local.get_or_default();
        if let Some(entry) = local.lock().entries.get(query) {
            return Ok(Parsed {
                doc: entry.doc.clone(),
                entry: Some(entry.clone()),
            });
        }
        let depth = nesting::graphql(query, nesting::MAX_NESTING);
        if depth > nesting::MAX_NESTING {
            return Err(Unparsed::TooDeep(depth));
        }
        let doc = async_graphql::parser::parse_query(query).map_err(Unparsed::Syntax)?;
        if query.len() > MAX_CACHED_LEN {
            return Ok(Parsed { doc, entry: None });
        }
        let verdict = self.verdicts.get_or_insert_with(query.into(), |_| {
            Arc::new(Verdict {
                variable_free: doc
                    .operations
                    .iter()
                    .all(|(_, op)| op.node.variable_definitions.is_empty()),
                validated: AtomicBool::new(false),
            })
        });
        let entry = Arc::new(Entry {
            doc: doc.clone(),
            verdict,
            analysis: OnceLock::new(),
        });
        let mut local = local.lock();
        if local.entries.len() >= LOCAL_CAPACITY || local.bytes + query.len() > LOCAL_BYTES {
            *local = Local::default();
        }
        local.bytes += query.len();
        local.entries.insert(query.into(), entry.clone());
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
    ) -> Result<R, Unparsed> {
        if let Some(entry) = self.local.get_or_default().lock().entries.get(query) {
            return Ok(f(&entry.doc));
        }
        self.parse(query).map(|parsed| f(&parsed.doc))
    }

    /// Documents whose verdict is held.
    pub fn len(&self) -> usize {
        self.verdicts.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.verdicts.is_empty()
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
        assert!(docs.local.get_or_default().lock().entries.len() <= LOCAL_CAPACITY);
        // Long documents, few of them, reach the per-thread bound on text first.
        let near_max = |i: usize| format!("{{ a{i}: __typename {} }}", " ".repeat(15 * 1024));
        for i in 0..LOCAL_BYTES / (15 * 1024) + 5 {
            docs.parse(&near_max(i)).expect("parses");
        }
        let local = docs.local.get_or_default().lock();
        assert!(local.bytes <= LOCAL_BYTES, "{} bytes kept", local.bytes);
        assert!(local.entries.len() < LOCAL_CAPACITY);
        drop(local);
        let long = format!("{{ {} }}", "__typename ".repeat(MAX_CACHED_LEN / 10));
        let before = docs.len();
        let parsed = docs.parse(&long).expect("parses");
        assert!(parsed.entry.is_none());
        assert_eq!(docs.len(), before, "long documents are not kept");
    }

    #[test]
    fn threads_keep_their_own_copies_and_share_the_verdict() {
        let docs = Documents::default();
        // The address of the document's first field name, an `Arc<str>` in the parser's types.
        let name_at = |p: &Parsed| {
            let (_, op) = p.doc.operations.iter().next().expect("one operation");
            match &op.node.selection_set.node.items[0].node {
                async_graphql::parser::types::Selection::Field(f) => {
                    f.node.name.node.as_str().as_ptr() as usize
                }
                _ => unreachable!("a field"),
            }
        };
        let here = docs.parse("{ me { id } }").expect("parses");
        assert_eq!(
            name_at(&here),
            name_at(&docs.parse("{ me { id } }").expect("parses"))
        );
        here.entry.as_ref().expect("cached").mark_validated();
        let (there, validated) = std::thread::scope(|s| {
            s.spawn(|| {
                let p = docs.parse("{ me { id } }").expect("parses");
                let validated = p.entry.as_ref().expect("cached").is_validated();
                (name_at(&p), validated)
            })
            .join()
            .expect("thread")
        });
        assert_ne!(there, name_at(&here), "another thread parses its own copy");
        assert!(validated, "the verdict reached by one thread holds for all");
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn the_analysis_of_a_validated_document_is_kept_for_one_operation_name() {
        use std::cell::Cell;
        let docs = Documents::default();
        let text = "query A { me { id } } query B { stats { total } }";
        let entry = docs.parse(text).expect("parses").entry.expect("cached");
        let runs = Cell::new(0);
        let analyse = |depth| {
            runs.set(runs.get() + 1);
            Analysis {
                depth,
                ..Analysis::default()
            }
        };
        assert_eq!(entry.analysis(Some("A"), || analyse(1)).depth, 1);
        assert_eq!(entry.analysis(Some("A"), || analyse(2)).depth, 2);
        assert_eq!(runs.get(), 2, "not validated: analysed every time");
        entry.mark_validated();
        assert_eq!(entry.analysis(Some("A"), || analyse(3)).depth, 3);
        assert_eq!(entry.analysis(Some("A"), || analyse(4)).depth, 3, "kept");
        assert_eq!(entry.analysis(Some("B"), || analyse(5)).depth, 5);
        assert_eq!(entry.analysis(None, || analyse(6)).depth, 6);
        assert_eq!(runs.get(), 5, "other names are analysed every time");
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
