//! Document limits checked before execution: depth, cost, aliases and root fields.
//!
//! Cost model (documented in docs/limits.md): a field with a selection (an object) costs 1
//! plus its children, multiplied by its page size (`first`/`last`, 20 by default on
//! connections, the maximum length on unpaginated lists); scalar fields cost nothing.
//! Introspection (`__schema`, `__type`) counts toward depth and cost too, with its lists at
//! size 1 (their sizes are the schema's, not the request's) and `ofType` adding no depth; its
//! schema-walking lists (`fields`, `interfaces`, `possibleTypes`, `inputFields`) may nest
//! [`MAX_SCHEMA_LISTS`] deep, which GraphiQL's own introspection query stays within.

use std::collections::{HashMap, HashSet};

use async_graphql::Variables;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Value};

use crate::error::AppError;

/// Configured maxima.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest selection.
    pub max_depth: usize,
    /// Highest cost.
    pub max_complexity: usize,
    /// Most aliases in the document.
    pub max_aliases: usize,
    /// Most root fields in the operation.
    pub max_root_fields: usize,
    /// Most fields once fragments are expanded.
    pub max_selections: usize,
    /// Whether `__schema` and `__type` are served.
    pub introspection: bool,
}

/// What a document would cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Deepest selection.
    pub depth: usize,
    /// Cost.
    pub complexity: usize,
    /// Aliases.
    pub aliases: usize,
    /// Root fields.
    pub root_fields: usize,
    /// Fields once fragments are expanded.
    pub selections: usize,
    /// Whether it asks for `__schema` or `__type`.
    pub introspection: bool,
    /// How deeply introspection's schema-walking lists nest.
    pub schema_lists: usize,
}

/// Page sizes of lists that take no `first`/`last`.
fn list_size(field: &str) -> Option<usize> {
    Some(match field {
        "sources" | "pipelines" | "users" | "apiKeys" => 100,
        "stages" => 50,
        "createdPerDay" => 367,
        "leads" | "auditLog" => 20,
        _ => return None,
    })
}

/// Introspection fields whose lists walk the schema's graph; nested in one another they
/// multiply the response by the schema's size at every level (graphql-js bounds them the same
/// way in its `MaxIntrospectionDepthRule`).
const SCHEMA_LISTS: [&str; 4] = ["fields", "interfaces", "possibleTypes", "inputFields"];

/// How deeply [`SCHEMA_LISTS`] may nest: GraphiQL's own introspection query nests them once.
pub const MAX_SCHEMA_LISTS: usize = 2;

/// What a selection set adds up to, fragments expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    depth: usize,
    cost: usize,
    /// Fields once fragments are expanded.
    selections: usize,
    aliases: usize,
    introspection: bool,
    /// Deepest nesting of [`SCHEMA_LISTS`] inside introspection.
    schema_lists: usize,
}

impl Summary {
    fn add(&mut self, other: Summary) {
        self.depth = self.depth.max(other.depth);
        self.cost = self.cost.saturating_add(other.cost);
        self.selections = self.selections.saturating_add(other.selections);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.introspection |= other.introspection;
        self.schema_lists = self.schema_lists.max(other.schema_lists);
    }
}

/// Walks selection sets once per fragment: a fragment's summary is kept, so a document that
/// spreads each fragment twice into the next costs time linear in its length, however large
/// its expansion (which is counted, and refused, as `selections`).
struct Walker<'a> {
    doc: &'a ExecutableDocument,
    vars: &'a Variables,
    memo: HashMap<Name, Summary>,
    visiting: HashSet<Name>,
}

impl Walker<'_> {
    fn page(&self, field: &async_graphql::parser::types::Field) -> usize {
        for arg in ["first", "last"] {
            if let Some(v) = field.get_argument(arg) {
                let n = match &v.node {
                    async_graphql_value::Value::Number(n) => n.as_i64(),
                    async_graphql_value::Value::Variable(name) => match self.vars.get(name) {
                        Some(Value::Number(n)) => n.as_i64(),
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(n) = n {
                    return n.clamp(0, 100) as usize;
                }
            }
        }
        list_size(field.name.node.as_str()).unwrap_or(1)
    }

    /// Sums a selection set; `meta` is true inside `__schema`/`__type`, where list sizes are
    /// the schema's (so no page multiplies) and `ofType` walks a type's few wrappers (so it
    /// adds no depth).
    fn walk(&mut self, set: &SelectionSet, meta: bool) -> Summary {
        let mut sum = Summary::default();
        for sel in &set.items {
            let s = match &sel.node {
                Selection::Field(f) => self.field(&f.node, meta),
                Selection::InlineFragment(frag) => {
                    let meta = match &frag.node.type_condition {
                        Some(tc) => tc.node.on.node.starts_with("__"),
                        None => meta,
                    };
                    self.walk(&frag.node.selection_set.node, meta)
                }
                Selection::FragmentSpread(spread) => self.fragment(&spread.node.fragment_name.node),
            };
            sum.add(s);
        }
        sum
    }

    fn field(&mut self, f: &async_graphql::parser::types::Field, meta: bool) -> Summary {
        let name = f.name.node.as_str();
        let alias = usize::from(f.alias.is_some());
        if name == "__typename" {
            return Summary {
                selections: 1,
                aliases: alias,
                ..Summary::default()
            };
        }
        let entering = name == "__schema" || name == "__type";
        let meta = meta || entering;
        if f.selection_set.node.items.is_empty() {
            return Summary {
                depth: 1,
                selections: 1,
                aliases: alias,
                introspection: entering,
                ..Summary::default()
            };
        }
        let inner = self.walk(&f.selection_set.node, meta);
        let page = if meta { 1 } else { self.page(f) };
        let list = usize::from(meta && SCHEMA_LISTS.contains(&name));
        Summary {
            depth: inner.depth + usize::from(!(meta && name == "ofType")),
            cost: page.saturating_mul(inner.cost.saturating_add(1)),
            selections: inner.selections.saturating_add(1),
            aliases: inner.aliases.saturating_add(alias),
            introspection: entering || inner.introspection,
            schema_lists: inner.schema_lists + list,
        }
    }

    fn fragment(&mut self, name: &Name) -> Summary {
        if let Some(s) = self.memo.get(name) {
            return *s;
        }
        let Some(def) = self.doc.fragments.get(name) else {
            return Summary::default();
        };
        // A fragment cycle is reported by validation; count it once.
        if !self.visiting.insert(name.clone()) {
            return Summary::default();
        }
        let meta = def.node.type_condition.node.on.node.starts_with("__");
        let s = self.walk(&def.node.selection_set.node, meta);
        self.visiting.remove(name);
        self.memo.insert(name.clone(), s);
        s
    }
}

fn root_fields(op: &OperationDefinition) -> usize {
    op.selection_set.node.items.len()
}

/// Aliases as written in a selection set, without following spreads.
fn written_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|sel| match &sel.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + written_aliases(&f.node.selection_set.node)
            }
            Selection::InlineFragment(frag) => written_aliases(&frag.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// The operation a request runs, with its name, chosen as async-graphql's executor chooses it:
/// the named one when the request names one (an anonymous document has none), else the only
/// one. `None` when the executor would refuse the request for want of an operation.
pub fn operation<'a>(
    doc: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<(Option<&'a Name>, &'a Positioned<OperationDefinition>)> {
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), None) => Some((None, op)),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(ops), Some(name)) => {
            ops.get_key_value(name).map(|(n, op)| (Some(n), op))
        }
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.iter().next().map(|(n, op)| (Some(n), op))
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// Analyses the operation a request would run, with its name when it has one (nothing to
/// analyse when there is none: the executor refuses it).
pub fn analyze<'a>(
    doc: &'a ExecutableDocument,
    operation_name: Option<&str>,
    vars: &Variables,
) -> (Option<&'a Name>, Analysis) {
    match operation(doc, operation_name) {
        Some((name, op)) => (name, analyze_operation(doc, op, vars)),
        None => (None, Analysis::default()),
    }
}

fn analyze_operation(
    doc: &ExecutableDocument,
    op: &Positioned<OperationDefinition>,
    vars: &Variables,
) -> Analysis {
    let mut w = Walker {
        doc,
        vars,
        memo: HashMap::new(),
        visiting: HashSet::new(),
    };
    let s = w.walk(&op.node.selection_set.node, false);
    // Aliases anywhere in the document count, used or not.
    let written = doc
        .operations
        .iter()
        .map(|(_, def)| written_aliases(&def.node.selection_set.node))
        .chain(
            doc.fragments
                .values()
                .map(|def| written_aliases(&def.node.selection_set.node)),
        )
        .fold(0usize, usize::saturating_add);
    Analysis {
        depth: s.depth,
        complexity: s.cost,
        selections: s.selections,
        aliases: written.max(s.aliases),
        root_fields: root_fields(&op.node),
        introspection: s.introspection,
        schema_lists: s.schema_lists,
    }
}

impl Limits {
    /// The limits `config` sets.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Limits {
            max_depth: config.graphql_max_depth,
            max_complexity: config.graphql_max_complexity,
            max_aliases: config.graphql_max_aliases,
            max_root_fields: config.graphql_max_root_fields,
            max_selections: config.graphql_max_selections,
            introspection: config.graphql_introspection,
        }
    }

    /// Refuses a document over any limit with `400 QUERY_TOO_COMPLEX`.
    pub fn check(&self, a: &Analysis) -> Result<(), AppError> {
        if a.introspection && !self.introspection {
            return Err(AppError::IntrospectionDisabled);
        }
        let over = |what: &'static str, value: usize, max: usize| {
            (value > max).then_some(AppError::QueryTooComplex {
                limit: what,
                value,
                max,
            })
        };
        match over("depth", a.depth, self.max_depth)
            .or_else(|| over("complexity", a.complexity, self.max_complexity))
            .or_else(|| over("aliases", a.aliases, self.max_aliases))
            .or_else(|| over("rootFields", a.root_fields, self.max_root_fields))
            .or_else(|| over("selections", a.selections, self.max_selections))
            .or_else(|| over("introspectionDepth", a.schema_lists, MAX_SCHEMA_LISTS))
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyze_str(q: &str) -> Analysis {
        let doc = async_graphql::parser::parse_query(q).expect("parses");
        analyze(&doc, None, &Variables::default()).1
    }

    #[test]
    fn the_operation_is_the_one_the_executor_runs() {
        let pick = |q: &str, name: Option<&str>| {
            let doc = async_graphql::parser::parse_query(q).expect("parses");
            operation(&doc, name).map(|(n, op)| (n.map(|n| n.to_string()), op.node.ty))
        };
        use async_graphql::parser::types::OperationType::{Mutation, Query};
        assert_eq!(pick("{ me { id } }", None), Some((None, Query)));
        assert_eq!(
            pick("{ me { id } }", Some("A")),
            None,
            "anonymous: no name to match"
        );
        let two = "query A { me { id } } mutation B { logout }";
        assert_eq!(pick(two, Some("B")), Some((Some("B".into()), Mutation)));
        assert_eq!(pick(two, Some("C")), None);
        assert_eq!(
            pick(two, None),
            None,
            "two operations and no name: none runs"
        );
        assert_eq!(
            pick("mutation B { logout }", None),
            Some((Some("B".into()), Mutation)),
            "the only one, named"
        );
    }

    #[test]
    fn scalars_are_free_and_lists_multiply() {
        assert_eq!(
            analyze_str("{ me { id role } }"),
            Analysis {
                depth: 2,
                complexity: 1,
                selections: 3,
                aliases: 0,
                root_fields: 1,
                introspection: false,
                schema_lists: 0,
            }
        );
        let a = analyze_str("{ leads(first: 50) { edges { node { id source { name } } } } }");
        // leads: 50 × (1 + edges: 1 × (1 + node: 1 × (1 + source: 1)))
        assert_eq!(a.complexity, 50 * (1 + (1 + (1 + 1))));
        assert_eq!(a.depth, 5, "scalars are a level too");
        assert_eq!(
            analyze_str("{ leads { edges { cursor } } }").complexity,
            20 * 2
        );
    }

    #[test]
    fn variables_fragments_aliases_and_introspection() {
        let doc = async_graphql::parser::parse_query(
            "query($n: Int) { a: leads(first: $n) { ...F } b: leads(last: 2) { ...F } } fragment F on LeadConnection { edges { cursor } }",
        )
        .expect("parses");
        let vars = Variables::from_json(serde_json::json!({"n": 10}));
        let (_, a) = analyze(&doc, None, &vars);
        assert_eq!(
            (a.complexity, a.aliases, a.root_fields),
            (10 * 2 + 2 * 2, 2, 2)
        );
        let deep = analyze_str(
            "{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }",
        );
        // __schema, types, fields, type and name are levels; the ofType wrappers are not.
        assert_eq!(
            (deep.depth, deep.complexity, deep.introspection),
            (5, 7, true)
        );
        // Recursive fragments do not loop.
        let cyc = analyze_str("{ me { ...A } } fragment A on Viewer { user { ...A } }");
        assert!(cyc.depth >= 2);
    }

    /// The limits a server has with no flags.
    fn defaults() -> Limits {
        Limits::from_config(&crate::config::Config::defaults())
    }

    #[test]
    fn fragment_expansion_is_counted_without_being_walked() {
        // Each fragment spreads the next twice: 2^40 fields once expanded.
        let mut q = String::from("{ ...F0 }");
        for i in 0..40 {
            q.push_str(&format!(
                " fragment F{i} on Query {{ ...F{n} ...F{n} }}",
                n = i + 1
            ));
        }
        q.push_str(" fragment F40 on Query { __typename }");
        // Walked rather than summed, 2^40 fields would never finish.
        let a = analyze_str(&q);
        assert_eq!(a.selections, 1 << 40);
        assert!(matches!(
            defaults().check(&a),
            Err(AppError::QueryTooComplex {
                limit: "selections",
                ..
            })
        ));
    }

    #[test]
    fn graphiql_introspection_passes_and_schema_walks_do_not() {
        let limits = defaults();
        let graphiql = analyze_str(include_str!("../../tests/fixtures/introspection.graphql"));
        assert!(graphiql.introspection);
        assert!(
            graphiql.depth > 3 && graphiql.complexity > 10,
            "{graphiql:?}"
        );
        assert!(limits.check(&graphiql).is_ok(), "{graphiql:?}");
        let walk = analyze_str(
            r#"{ __type(name: "Node") { possibleTypes { interfaces { possibleTypes { name } } } } }"#,
        );
        assert!(matches!(
            limits.check(&walk),
            Err(AppError::QueryTooComplex {
                limit: "introspectionDepth",
                value: 3,
                ..
            })
        ));
        // Through fragments too.
        let walk = analyze_str(
            "{ __schema { types { ...A } } } fragment A on __Type { fields { type { ...B } } } fragment B on __Type { fields { type { fields { name } } } }",
        );
        assert_eq!(walk.schema_lists, 3);
        let deep = analyze_str(
            "{ __schema { types { fields { args { type { fields { args { type { fields { name } } } } } } } } } }",
        );
        assert!(limits.check(&deep).is_err());
    }

    #[test]
    fn limits_refuse_with_the_limit_named() {
        let limits = Limits {
            max_depth: 3,
            max_complexity: 100,
            max_aliases: 1,
            max_root_fields: 2,
            ..defaults()
        };
        let a = analyze_str("{ me { user { tenant { id } } } }");
        assert!(matches!(
            limits.check(&a),
            Err(AppError::QueryTooComplex { limit: "depth", .. })
        ));
        let a = analyze_str("{ leads(first: 100) { edges { cursor } } }");
        assert!(matches!(
            limits.check(&a),
            Err(AppError::QueryTooComplex {
                limit: "complexity",
                ..
            })
        ));
        let a = analyze_str("{ a: me { id } b: me { id } }");
        assert!(matches!(
            limits.check(&a),
            Err(AppError::QueryTooComplex {
                limit: "aliases",
                ..
            })
        ));
        let a = analyze_str("{ me { id } stats { total } node(id: \"x\") { id } }");
        assert!(matches!(
            limits.check(&a),
            Err(AppError::QueryTooComplex {
                limit: "rootFields",
                ..
            })
        ));
    }
}
