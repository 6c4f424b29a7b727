//! Rewrite rules, one family per module, and the saturation loop that applies them.
//!
//! A rule is a pair of functions: `search` looks at one e-node of one e-class (read-only) and returns a
//! [`Match`] — the classes and interned ops it needs — and `apply` builds the equivalent term and
//! returns its class, which the loop unions with the matched class. Rules are Rust functions rather
//! than egg patterns because carve's conditions are on attributes, types and constant summaries
//! (`add(x, c)` with `c` all zeros and the sum not broadcasting beyond `x`).
//!
//! Families: [`algebra`] (identities), [`layout`] (transpose/reshape chains and sinking), [`batchnorm`]
//! (batch-norm folding), [`fusion`] (bias/activation fusion, matmul+add → fused_matmul, gemm),
//! [`patterns`] (layer-norm and GELU recognition). Constant folding lives in the e-class analysis
//! ([`crate::egraph::analysis`]); common subexpressions are shared by hash-consing and dead code is
//! dropped by extraction.

pub mod algebra;
pub mod batchnorm;
pub mod fusion;
pub mod layout;
pub mod patterns;
pub mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use egg::Id;

use crate::egraph::analysis::EG;
use crate::egraph::lang::ENode;

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

/// Every rule of every family.
pub fn all_rules() -> Vec<Rule> {
    let mut v = Vec::new();
    v.extend(algebra::rules());
    v.extend(layout::rules());
    v.extend(batchnorm::rules());
    v.extend(fusion::rules());
    v.extend(patterns::rules());
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

/// Applies `rules` to `eg` until saturation or a budget runs out.
pub fn saturate(eg: &mut EG, rules: &[Rule], limits: &Limits) -> RunReport {
    let start = Instant::now();
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
        let mut matches: Vec<(usize, Match)> = Vec::new();
        let mut counts = vec![0usize; rules.len()];
        for &id in &ids {
            for n in &eg[id].nodes {
                for (r, rule) in rules.iter().enumerate() {
                    if counts[r] >= limits.match_limit {
                        continue;
                    }
                    if let Some(mut m) = (rule.search)(eg, id, n) {
                        m.class = id;
                        counts[r] += 1;
                        matches.push((r, m));
                    }
                }
            }
        }
        let before = eg.total_number_of_nodes();
        let mut changed = false;
        let mut hit_limit = None;
        for (r, m) in &matches {
            if eg.total_number_of_nodes() > limits.node_limit {
                hit_limit = Some(StopReason::NodeLimit);
                break;
            }
            if start.elapsed() > limits.time_limit {
                hit_limit = Some(StopReason::TimeLimit);
                break;
            }
            let key = match_key(eg, *r, m);
            if done.contains(&key) {
                continue;
            }
            let Some(new) = (rules[*r].apply)(eg, m) else {
                continue;
            };
            done.insert(key);
            if !eg[new].data.known {
                continue; // an ill-typed rewrite is dropped rather than merged
            }
            if eg.union(m.class, new) {
                changed = true;
                *applied.entry(rules[*r].name).or_default() += 1;
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
    RunReport {
        iterations,
        stop,
        applied,
    }
}
