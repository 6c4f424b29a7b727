//! Rewrite rules, one family per module, and the saturation loop that applies them.
//!
//! Two kinds of rule, both listed in a family's [`Rules`]:
//! - **pattern rules** ([`pattern::PatternRule`], written with [`rewrite!`]) read as rules:
//!   `rewrite!("neg-neg"; "(neg (neg ?x))" => "?x")`, optionally with a condition on the match
//!   (`"(add ?x ?c)" => "?x" if zero_keeps_x`) or a Rust right-hand side when the result needs computed
//!   constants or attributes. Each compiles, per e-graph, to an `egg::Rewrite` (egg's e-matching
//!   searcher, egg's `ConditionalApplier`);
//! - **Rust rules** ([`Rule`]): a `search` function that looks at one e-node of one e-class and returns
//!   a [`Match`], and an `apply` function that builds the equivalent term. They remain for what a
//!   pattern cannot say: conditions on attributes (`cast{to}` of a value already of that type), computed
//!   attributes (transpose∘transpose composes its permutations), matches over families of ops (a
//!   transpose sinks below *any* unary elementwise op) or over any association of a product (GELU).
//!
//! **Why carve's loop and not egg's `Runner`.** [`saturate`] runs both kinds side by side in one loop:
//! classes in sorted id order, every rule searched before any is applied (egg's schedule), then the
//! matches applied in that order. egg's `Runner` would give node/iteration/time limits and stop reasons
//! too, but not three things carve relies on: (1) matches already applied are skipped in later
//! iterations (the `Runner` re-applies every match each iteration — for batch-norm folding that means
//! recomputing whole weight tensors; a scheduler can only ban a rule, not a match); (2) Rust rules that
//! carry interned ops and numbers in their match, which egg's `Subst` (variable → class) cannot hold;
//! (3) a rewrite whose result fails type inference is dropped instead of merged. Extraction is carve's
//! own DAG-aware extractor ([`crate::egraph::extract`]) either way.
//!
//! Families: [`algebra`] (identities), [`layout`] (transpose/reshape chains and sinking), [`batchnorm`]
//! (batch-norm folding), [`fusion`] (bias/activation fusion, matmul+add → fused_matmul, gemm),
//! [`patterns`] (layer-norm and GELU recognition), [`quant`] (QDQ products → integer ops). Constant folding lives in the e-class analysis
//! ([`crate::egraph::analysis`]); common subexpressions are shared by hash-consing and dead code is
//! dropped by extraction.

pub mod algebra;
pub mod batchnorm;
pub mod fusion;
pub mod layout;
pub mod pattern;
pub mod patterns;
pub mod quant;
pub mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use egg::{Id, Language, Subst};

use crate::PassError;
use crate::egraph::analysis::EG;
use crate::egraph::lang::ENode;
use pattern::{Compiled, PatternRule};

/// What a rule's search found: the matched class (filled in by the loop), operand classes and ops.
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// The class the rewrite is equal to.
    pub class: Id,
    /// Classes the rewrite is built from.
    pub ids: Vec<Id>,
    /// Interned ops (indices into the op table) the rewrite reads attributes from.
    pub ops: Vec<u32>,
    /// Small numbers (constants folded into attributes).
    pub nums: Vec<f64>,
}

/// Search function of a rule.
pub type SearchFn = fn(&EG, Id, &ENode) -> Option<Match>;
/// Apply function of a rule: the class of the equivalent term, or `None` to skip.
pub type ApplyFn = fn(&mut EG, &Match) -> Option<Id>;

/// One rewrite rule.
#[derive(Clone, Copy)]
pub struct Rule {
    /// Name, reported in statistics.
    pub name: &'static str,
    /// Finds a match at one e-node.
    pub search: SearchFn,
    /// Builds the rewrite.
    pub apply: ApplyFn,
}

/// One rule of either kind.
#[derive(Clone, Copy)]
pub enum AnyRule {
    /// A Rust search/apply pair.
    Rust(Rule),
    /// A rule written as egg patterns.
    Pattern(PatternRule),
}

impl AnyRule {
    /// The rule's name.
    pub fn name(&self) -> &'static str {
        match self {
            AnyRule::Rust(r) => r.name,
            AnyRule::Pattern(p) => p.name,
        }
    }
}

/// An ordered list of rules (a family's, or all of them); [`saturate`] searches them in this order.
#[derive(Clone, Default)]
pub struct Rules(pub Vec<AnyRule>);

impl Rules {
    /// Appends a pattern rule.
    pub fn pattern(mut self, r: PatternRule) -> Rules {
        self.0.push(AnyRule::Pattern(r));
        self
    }

    /// Appends a Rust rule.
    pub fn rust(mut self, r: Rule) -> Rules {
        self.0.push(AnyRule::Rust(r));
        self
    }

    /// Appends every rule of `other`.
    pub fn extend(&mut self, other: impl Into<Rules>) {
        self.0.extend(other.into().0);
    }

    /// The rules' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(AnyRule::name).collect()
    }
}

impl From<Vec<Rule>> for Rules {
    fn from(v: Vec<Rule>) -> Rules {
        Rules(v.into_iter().map(AnyRule::Rust).collect())
    }
}

impl From<&Vec<Rule>> for Rules {
    fn from(v: &Vec<Rule>) -> Rules {
        Rules(v.iter().copied().map(AnyRule::Rust).collect())
    }
}

impl From<&Rules> for Rules {
    fn from(r: &Rules) -> Rules {
        r.clone()
    }
}

/// Every rule of every family.
pub fn all_rules() -> Rules {
    let mut v = Rules::default();
    v.extend(algebra::rules());
    v.extend(layout::rules());
    v.extend(batchnorm::rules());
    v.extend(fusion::rules());
    v.extend(patterns::rules());
    v.extend(quant::rules());
    v
}

/// Budgets of one saturation run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Stop once the e-graph has more e-nodes than this (checked after every application, so the
    /// overshoot is at most one rewrite's nodes).
    pub node_limit: usize,
    /// Maximum number of search/apply iterations.
    pub iter_limit: usize,
    /// Wall-clock budget (checked between rules and iterations). A safety net against pathological
    /// graphs only: when it stops a run, the result depends on machine speed and load, so the default is
    /// far above any real model's saturation time and the deterministic node/iteration/match limits are
    /// what normally bound a run (same model + options ⇒ same graph, same AOT object).
    pub time_limit: Duration,
    /// Maximum matches of one rule applied per iteration.
    pub match_limit: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            node_limit: 50_000,
            iter_limit: 12,
            time_limit: Duration::from_secs(5),
            match_limit: 5_000,
        }
    }
}

/// Why saturation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// No rule changed the e-graph.
    Saturated,
    /// The iteration limit was reached.
    IterationLimit,
    /// The node limit was reached.
    NodeLimit,
    /// The time budget ran out.
    TimeLimit,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::Saturated => "saturated",
            StopReason::IterationLimit => "iteration limit",
            StopReason::NodeLimit => "node limit",
            StopReason::TimeLimit => "time limit",
        })
    }
}

/// What a saturation run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Iterations run.
    pub iterations: usize,
    /// Why it stopped.
    pub stop: StopReason,
    /// Successful applications per rule name.
    pub applied: BTreeMap<&'static str, usize>,
}

/// Identity of an applied match: rule index, canonical class ids (the match's class first), op indices
/// and number bits.
type MatchKey = (usize, Vec<usize>, Vec<u32>, Vec<u64>);

fn match_key(eg: &EG, r: usize, m: &Match) -> MatchKey {
    let mut ids = Vec::with_capacity(m.ids.len() + 1);
    ids.push(usize::from(eg.find(m.class)));
    ids.extend(m.ids.iter().map(|&i| usize::from(eg.find(i))));
    (
        r,
        ids,
        m.ops.clone(),
        m.nums.iter().map(|x| x.to_bits()).collect(),
    )
}

/// A rule lowered for one e-graph.
enum Ready<'a> {
    Rust(Rule),
    Pattern(Box<Compiled<'a>>),
}

/// A match waiting to be applied.
enum Pending {
    Rust(Match),
    Pattern(Id, Subst),
}

/// Identity of an applied pattern match: rule index, the canonical matched class and bound classes.
fn pattern_key(eg: &EG, r: usize, c: &Compiled, class: Id, s: &Subst) -> MatchKey {
    let mut ids = Vec::with_capacity(c.vars.len() + 1);
    ids.push(usize::from(eg.find(class)));
    for v in &c.vars {
        ids.extend(s.get(*v).map(|&i| usize::from(eg.find(i))));
    }
    (r, ids, Vec::new(), Vec::new())
}

/// Applies `rules` to `eg` until saturation or a budget runs out. Fails only when a pattern rule does
/// not compile (a bug in the rule's text).
pub fn saturate<'a>(
    eg: &mut EG<'a>,
    rules: &Rules,
    limits: &Limits,
) -> Result<RunReport, PassError> {
    let start = Instant::now();
    let mut ready: Vec<Ready<'a>> = Vec::with_capacity(rules.0.len());
    for r in &rules.0 {
        ready.push(match r {
            AnyRule::Rust(r) => Ready::Rust(*r),
            AnyRule::Pattern(p) => {
                Ready::Pattern(Box::new(p.compile(eg).map_err(PassError::Rule)?))
            }
        });
    }
    let names = rules.names();
    let mut applied: BTreeMap<&'static str, usize> = BTreeMap::new();
    // Matches already applied successfully (rule, canonical classes, ops, numbers): saturation finds
    // them again every iteration, and re-applying one only rebuilds an equal term — which for weight
    // rewrites (batch-norm folding) means recomputing whole weight tensors each iteration.
    let mut done: BTreeSet<MatchKey> = BTreeSet::new();
    let mut iterations = 0;
    let stop = loop {
        if iterations >= limits.iter_limit {
            break StopReason::IterationLimit;
        }
        if start.elapsed() > limits.time_limit {
            break StopReason::TimeLimit;
        }
        iterations += 1;
        let mut ids: Vec<Id> = eg.classes().map(|c| c.id).collect();
        ids.sort();
        let mut matches: Vec<(usize, Pending)> = Vec::new();
        let mut counts = vec![0usize; ready.len()];
        let mut searched = vec![false; ready.len()];
        for &id in &ids {
            searched.fill(false);
            for n in &eg[id].nodes {
                for (r, rule) in ready.iter().enumerate() {
                    if counts[r] >= limits.match_limit {
                        continue;
                    }
                    match rule {
                        Ready::Rust(rule) => {
                            if let Some(mut m) = (rule.search)(eg, id, n) {
                                m.class = id;
                                counts[r] += 1;
                                matches.push((r, Pending::Rust(m)));
                            }
                        }
                        // A pattern searches the whole class, once, at its first e-node with the
                        // pattern's root op (where the equivalent Rust rule would have matched).
                        Ready::Pattern(c) => {
                            if searched[r] || !n.matches(&c.root) {
                                continue;
                            }
                            searched[r] = true;
                            let left = limits.match_limit - counts[r];
                            if let Some(found) =
                                c.rewrite.searcher.search_eclass_with_limit(eg, id, left)
                            {
                                for s in found.substs {
                                    counts[r] += 1;
                                    matches.push((r, Pending::Pattern(id, s)));
                                }
                            }
                        }
                    }
                }
            }
        }
        let before = eg.total_number_of_nodes();
        // Between rebuilds the e-graph's node count only grows, by one for every e-node added (a
        // union concatenates two classes' nodes; only `rebuild` deduplicates), so the count is
        // `before` plus the growth of egg's list of added nodes — O(1) per match, where
        // `total_number_of_nodes` walks every class (quadratic over a large iteration's matches).
        let added_before = eg.nodes().len();
        let mut changed = false;
        let mut hit_limit = None;
        for (r, m) in &matches {
            if before + (eg.nodes().len() - added_before) > limits.node_limit {
                hit_limit = Some(StopReason::NodeLimit);
                break;
            }
            if start.elapsed() > limits.time_limit {
                hit_limit = Some(StopReason::TimeLimit);
                break;
            }
            let merged = match (&ready[*r], m) {
                (Ready::Rust(rule), Pending::Rust(m)) => {
                    let key = match_key(eg, *r, m);
                    if done.contains(&key) {
                        continue;
                    }
                    let Some(new) = (rule.apply)(eg, m) else {
                        continue;
                    };
                    done.insert(key);
                    if !eg[new].data.known {
                        continue; // an ill-typed rewrite is dropped rather than merged
                    }
                    eg.union(m.class, new)
                }
                (Ready::Pattern(c), Pending::Pattern(class, s)) => {
                    let key = pattern_key(eg, *r, c, *class, s);
                    if done.contains(&key) {
                        continue;
                    }
                    // egg's applier checks the condition, builds and unions (see `pattern::Build`).
                    let hit = !c
                        .rewrite
                        .applier
                        .apply_one(eg, *class, s, None, c.rewrite.name)
                        .is_empty();
                    if hit {
                        done.insert(key);
                    }
                    hit
                }
                _ => false,
            };
            if merged {
                changed = true;
                *applied.entry(names[*r]).or_default() += 1;
            }
        }
        eg.rebuild();
        changed |= eg.total_number_of_nodes() != before;
        if let Some(s) = hit_limit {
            break s;
        }
        if !changed {
            break StopReason::Saturated;
        }
    };
    Ok(RunReport {
        iterations,
        stop,
        applied,
    })
}
