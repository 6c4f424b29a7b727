//! Rules written as egg patterns: `rewrite!("neg-neg"; "(neg (neg ?x))" => "?x")`.
//!
//! A [`PatternRule`] is text: a left-hand pattern, a right-hand side (a pattern, or a Rust function
//! for results that need computed constants or attributes) and an optional condition on the match
//! (types, constant values). The text names IR ops by their text-format name with default attributes
//! (`neg`, `identity`, `add`, `sqrt`, …) and binds operands to `?vars`.
//!
//! **The adapter.** carve's [`ENode`] heads are indices into the e-graph's op table (an op with its
//! attributes is interned once per e-graph), so e-node text cannot be parsed without that table — egg's
//! `FromOp` has no context. A pattern is therefore parsed as an `egg::Pattern<SymbolLang>` and lowered
//! per e-graph ([`PatternRule::compile`]): every op symbol is built with [`Op::from_attrs`] (defaults)
//! and interned into the table, which gives exactly the head an imported node of that op has. The result
//! is an ordinary `egg::Rewrite<ENode, CarveAnalysis>`: searcher an `egg::Pattern<ENode>` (egg's
//! e-matching), applier an `egg::ConditionalApplier` around carve's [`Build`] when the rule has a
//! condition. Ops that are never shared (random ops, ops with subgraphs) get a fresh table entry, so a
//! pattern naming one never matches; ops with non-default attributes (a `transpose` with a given `perm`,
//! `cast{to=…}`) are not expressible here and stay Rust rules.

use egg::{Applier, Condition, ENodeOrVar, Id, Language, PatternAst, Subst, SymbolLang, Var};

use carve_ir::Op;
use carve_ir::ops::AttrMap;

use crate::egraph::analysis::{CarveAnalysis, EG};
use crate::egraph::lang::{ENode, Head};

/// A condition on a match: the e-graph, the matched class and the bindings of the left-hand side.
pub type CondFn = fn(&EG, Id, &Subst) -> bool;
/// A Rust right-hand side: builds the equivalent term for a match (or `None` to skip it).
pub type BuildFn = fn(&mut EG, Id, &Subst) -> Option<Id>;

/// The right-hand side of a [`PatternRule`].
#[derive(Debug, Clone, Copy)]
pub enum Rhs {
    /// A pattern over the left-hand side's variables.
    Pattern(&'static str),
    /// A Rust function (computed constants or attributes).
    Rust(BuildFn),
}

/// A rewrite written as patterns; see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct PatternRule {
    /// Name, reported in statistics.
    pub name: &'static str,
    /// The left-hand side: a pattern whose root is an op.
    pub lhs: &'static str,
    /// The right-hand side.
    pub rhs: Rhs,
    /// A condition the match must meet, if any.
    pub when: Option<CondFn>,
}

/// Writes a [`PatternRule`] like egg's `rewrite!`:
/// `rewrite!("neg-neg"; "(neg (neg ?x))" => "?x")`, with a condition
/// `rewrite!("add-zero"; "(add ?x ?c)" => "?x" if is_zero)`, or with a Rust right-hand side
/// `rewrite!("gelu"; "(mul ?x ?g)" => {build_gelu} if is_gelu_gate)`.
#[macro_export]
macro_rules! rewrite {
    ($name:literal; $lhs:literal => $rhs:literal) => {
        $crate::rules::pattern::PatternRule {
            name: $name,
            lhs: $lhs,
            rhs: $crate::rules::pattern::Rhs::Pattern($rhs),
            when: None,
        }
    };
    ($name:literal; $lhs:literal => $rhs:literal if $cond:expr) => {
        $crate::rules::pattern::PatternRule {
            name: $name,
            lhs: $lhs,
            rhs: $crate::rules::pattern::Rhs::Pattern($rhs),
            when: Some($cond),
        }
    };
    ($name:literal; $lhs:literal => {$build:expr}) => {
        $crate::rules::pattern::PatternRule {
            name: $name,
            lhs: $lhs,
            rhs: $crate::rules::pattern::Rhs::Rust($build),
            when: None,
        }
    };
    ($name:literal; $lhs:literal => {$build:expr} if $cond:expr) => {
        $crate::rules::pattern::PatternRule {
            name: $name,
            lhs: $lhs,
            rhs: $crate::rules::pattern::Rhs::Rust($build),
            when: Some($cond),
        }
    };
}

/// A [`PatternRule`] lowered for one e-graph.
pub struct Compiled<'a> {
    /// The egg rewrite.
    pub rewrite: egg::Rewrite<ENode, CarveAnalysis<'a>>,
    /// The root e-node of the left-hand side (its head and arity; children are meaningless).
    pub root: ENode,
    /// The left-hand side's variables, in order of first appearance (a match's identity).
    pub vars: Vec<Var>,
}

impl PatternRule {
    /// Lowers the rule's patterns for `eg`, interning the ops they name into its op table.
    pub fn compile<'a>(&self, eg: &mut EG<'a>) -> Result<Compiled<'a>, String> {
        let at = |e: String| format!("rule '{}': {e}", self.name);
        let lhs = egg::Pattern::new(lower(eg, self.lhs).map_err(at)?);
        let root = match lhs.ast.as_ref().last() {
            Some(ENodeOrVar::ENode(n)) => n.clone(),
            _ => return Err(at("the left-hand side must be an op".into())),
        };
        let vars = lhs.vars();
        let build = Build(match self.rhs {
            Rhs::Pattern(p) => BuildKind::Pattern(lower(eg, p).map_err(at)?),
            Rhs::Rust(f) => BuildKind::Rust(f),
        });
        // `Rewrite::new` checks that the right-hand side only uses variables the left-hand side binds.
        let rewrite = match self.when {
            Some(f) => egg::Rewrite::new(
                self.name,
                lhs,
                egg::ConditionalApplier {
                    condition: When(f),
                    applier: build,
                },
            ),
            None => egg::Rewrite::new(self.name, lhs, build),
        }
        .map_err(at)?;
        Ok(Compiled {
            rewrite,
            root,
            vars,
        })
    }
}

/// Parses pattern text and interns the ops it names into `eg`'s op table.
fn lower(eg: &mut EG, text: &str) -> Result<PatternAst<ENode>, String> {
    let p: egg::Pattern<SymbolLang> = text
        .parse()
        .map_err(|e| format!("pattern '{text}' does not parse: {e}"))?;
    let mut out = PatternAst::default();
    for n in p.ast.as_ref() {
        out.add(match n {
            ENodeOrVar::Var(v) => ENodeOrVar::Var(*v),
            ENodeOrVar::ENode(s) => {
                let name = s.op.as_str();
                let op = match Op::from_attrs(name, AttrMap::default()) {
                    Some(Ok(op)) => op,
                    Some(Err(e)) => return Err(format!("op '{name}': {e}")),
                    None => return Err(format!("'{name}' is not an op name")),
                };
                let k = eg.analysis.ops.intern(op, 1, s.children.len());
                ENodeOrVar::ENode(ENode {
                    head: Head::Op(k),
                    children: s.children.clone(),
                })
            }
        });
    }
    Ok(out)
}

/// The class bound to `name` (`"?x"`) in a match.
pub fn var(s: &Subst, name: &str) -> Option<Id> {
    let v: Var = name.parse().ok()?;
    s.get(v).copied()
}

/// carve's condition adapter: a [`CondFn`] as an egg [`Condition`] (carve's conditions only read).
pub struct When(pub CondFn);

impl<'a> Condition<ENode, CarveAnalysis<'a>> for When {
    fn check(&self, eg: &mut EG<'a>, eclass: Id, subst: &Subst) -> bool {
        (self.0)(eg, eclass, subst)
    }
}

enum BuildKind {
    Pattern(PatternAst<ENode>),
    Rust(BuildFn),
}

/// carve's applier: builds the right-hand side and unions it with the matched class — unless the new
/// term failed type inference (a rule bug), which is dropped rather than merged.
pub struct Build(BuildKind);

impl Build {
    fn build(&self, eg: &mut EG, class: Id, subst: &Subst) -> Option<Id> {
        match &self.0 {
            BuildKind::Rust(f) => f(eg, class, subst),
            BuildKind::Pattern(ast) => {
                let mut ids: Vec<Id> = Vec::with_capacity(ast.as_ref().len());
                for n in ast.as_ref() {
                    let id = match n {
                        ENodeOrVar::Var(v) => *subst.get(*v)?,
                        ENodeOrVar::ENode(e) => {
                            let mut e = e.clone();
                            for c in e.children_mut() {
                                *c = *ids.get(usize::from(*c))?;
                            }
                            eg.add(e)
                        }
                    };
                    ids.push(id);
                }
                ids.last().copied()
            }
        }
    }
}

impl<'a> Applier<ENode, CarveAnalysis<'a>> for Build {
    fn apply_one(
        &self,
        eg: &mut EG<'a>,
        eclass: Id,
        subst: &Subst,
        _searcher_ast: Option<&PatternAst<ENode>>,
        _rule_name: egg::Symbol,
    ) -> Vec<Id> {
        match self.build(eg, eclass, subst) {
            Some(new) if eg[new].data.known && eg.union(eclass, new) => vec![eclass],
            _ => Vec::new(),
        }
    }

    fn vars(&self) -> Vec<Var> {
        match &self.0 {
            BuildKind::Pattern(ast) => ast
                .as_ref()
                .iter()
                .filter_map(|n| match n {
                    ENodeOrVar::Var(v) => Some(*v),
                    ENodeOrVar::ENode(_) => None,
                })
                .collect(),
            BuildKind::Rust(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::DEFAULT_FOLD_LIMIT;

    fn egraph() -> EG<'static> {
        EG::new(CarveAnalysis::new(Vec::new(), None, DEFAULT_FOLD_LIMIT))
    }

    #[test]
    fn every_pattern_rule_of_every_family_compiles() {
        let mut eg = egraph();
        for r in &crate::rules::all_rules().0 {
            if let crate::rules::AnyRule::Pattern(p) = r {
                let c = p.compile(&mut eg);
                assert!(c.is_ok(), "{}: {:?}", p.name, c.err());
            }
        }
    }

    #[test]
    fn a_pattern_naming_an_unknown_op_is_refused_with_the_rule_name() {
        let mut eg = egraph();
        let bad = crate::rewrite!("bad"; "(negate ?x)" => "?x");
        let e = bad.compile(&mut eg).err().unwrap_or_default();
        assert!(e.contains("rule 'bad'") && e.contains("negate"), "{e}");
        let unbound = crate::rewrite!("unbound"; "(neg ?x)" => "?y");
        assert!(unbound.compile(&mut eg).is_err());
    }

    #[test]
    fn pattern_ops_intern_to_the_heads_imported_nodes_have() {
        let mut eg = egraph();
        let neg = Op::from_attrs("neg", AttrMap::default())
            .and_then(Result::ok)
            .map(|op| eg.analysis.ops.intern(op, 1, 1));
        let c = crate::rewrite!("neg-neg"; "(neg (neg ?x))" => "?x")
            .compile(&mut eg)
            .ok();
        assert_eq!(c.map(|c| c.root.head), neg.map(Head::Op));
    }
}
