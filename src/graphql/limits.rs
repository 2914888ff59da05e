//! Document limits checked before execution: depth, cost, aliases and root fields.
//!
//! Cost model (documented in docs/limits.md): a field with a selection (an object) costs 1
//! plus its children, multiplied by its page size (`first`/`last`, 20 by default on
//! connections, the maximum length on unpaginated lists); scalar fields cost nothing.
//! Introspection (`__schema`, `__type`) is not counted, so GraphiQL keeps working.

use std::collections::HashSet;

use async_graphql::Variables;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationDefinition, Selection,
    SelectionSet,
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
    /// Whether it asks for `__schema` or `__type`.
    pub introspection: bool,
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

struct Walker<'a> {
    doc: &'a ExecutableDocument,
    vars: &'a Variables,
    aliases: usize,
    introspection: bool,
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

    /// Returns (depth, cost) of a selection set.
    fn walk(&mut self, set: &SelectionSet) -> (usize, usize) {
        let mut depth = 0;
        let mut cost = 0usize;
        for sel in &set.items {
            let (d, c) = match &sel.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    if f.alias.is_some() {
                        self.aliases += 1;
                    }
                    if f.name.node.starts_with("__") {
                        if f.name.node != "__typename" {
                            self.introspection = true;
                        }
                        (0, 0)
                    } else if f.selection_set.node.items.is_empty() {
                        (1, 0)
                    } else {
                        let (d, c) = self.walk(&f.selection_set.node);
                        (d + 1, self.page(f).saturating_mul(c.saturating_add(1)))
                    }
                }
                Selection::InlineFragment(frag) => self.walk(&frag.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.clone();
                    match self.doc.fragments.get(&name) {
                        // A fragment cycle is reported by validation; count it once.
                        Some(def) if self.visiting.insert(name.clone()) => {
                            let r = self.walk_fragment(def);
                            self.visiting.remove(&name);
                            r
                        }
                        _ => (0, 0),
                    }
                }
            };
            depth = depth.max(d);
            cost = cost.saturating_add(c);
        }
        (depth, cost)
    }

    fn walk_fragment(&mut self, def: &Positioned<FragmentDefinition>) -> (usize, usize) {
        self.walk(&def.node.selection_set.node)
    }
}

fn root_fields(op: &OperationDefinition) -> usize {
    op.selection_set.node.items.len()
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
        aliases: 0,
        introspection: false,
        visiting: HashSet::new(),
    };
    let (depth, complexity) = w.walk(&op.node.selection_set.node);
    // Aliases anywhere in the document count, used or not.
    let mut all = Walker {
        doc,
        vars,
        aliases: 0,
        introspection: false,
        visiting: HashSet::new(),
    };
    for (_, def) in doc.operations.iter() {
        all.walk(&def.node.selection_set.node);
    }
    for def in doc.fragments.values() {
        all.walk(&def.node.selection_set.node);
    }
    Analysis {
        depth,
        complexity,
        aliases: all.aliases.max(w.aliases),
        root_fields: root_fields(&op.node),
        introspection: w.introspection,
    }
}

impl Limits {
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
                aliases: 0,
                root_fields: 1,
                introspection: false,
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
        assert_eq!(
            (deep.depth, deep.complexity, deep.introspection),
            (0, 0, true)
        );
        // Recursive fragments do not loop.
        let cyc = analyze_str("{ me { ...A } } fragment A on Viewer { user { ...A } }");
        assert!(cyc.depth >= 2);
    }

    #[test]
    fn limits_refuse_with_the_limit_named() {
        let limits = Limits {
            max_depth: 3,
            max_complexity: 100,
            max_aliases: 1,
            max_root_fields: 2,
            introspection: true,
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
