//! The e-graph optimizer: import a graph into an egg e-graph, saturate it with carve's rewrite rules
//! under budgets, extract the cheapest DAG under a target's cost model, and rebuild a verified graph.
//!
//! Assumes a verified top-level graph (ideally canonicalized first with [`crate::fold::canonicalize`]).
//! Guarantees a verified graph with the same outputs (names, order, compatible types) whose estimated
//! cost is no higher than the input's: if extraction would be worse, fail, or disagree on types, the
//! input is returned unchanged and [`Stats::fallback`] says why.

pub mod analysis;
pub mod convert;
pub mod extract;
pub mod lang;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use carve_ir::{Graph, Type};

use crate::PassError;
use crate::cost::{TargetParams, cycles};
use crate::fold::{ConstEval, DEFAULT_FOLD_LIMIT};
use crate::rules::{Limits, Rules, StopReason, all_rules, saturate};
use analysis::CarveAnalysis;

/// Options of one optimizer run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Budgets.
    pub limits: Limits,
    /// The cost model's target.
    pub target: TargetParams,
    /// Folded constants larger than this (elements) are not materialized unless they shrink.
    pub fold_limit: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            limits: Limits::default(),
            target: TargetParams::host_default(),
            fold_limit: DEFAULT_FOLD_LIMIT,
        }
    }
}

/// What the optimizer did.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Nodes of the input graph.
    pub nodes_before: usize,
    /// Nodes of the result.
    pub nodes_after: usize,
    /// E-nodes when saturation stopped.
    pub enodes: usize,
    /// E-classes when saturation stopped.
    pub eclasses: usize,
    /// Saturation iterations.
    pub iterations: usize,
    /// Why saturation stopped.
    pub stop: StopReason,
    /// Wall time of the whole e-graph phase (import to verified graph).
    pub time: Duration,
    /// Estimated cycles of the input graph.
    pub cost_before: f64,
    /// Estimated cycles of the result.
    pub cost_after: f64,
    /// Constants folded inside the e-graph.
    pub folds: usize,
    /// Successful rewrites per rule.
    pub applied: BTreeMap<&'static str, usize>,
    /// Why the input was returned unchanged, if it was.
    pub fallback: Option<String>,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "e-graph: {} e-nodes, {} e-classes, {} iterations, stopped: {}",
            self.enodes, self.eclasses, self.iterations, self.stop
        )?;
        writeln!(f, "time:    {:.1} ms", self.time.as_secs_f64() * 1e3)?;
        writeln!(f, "nodes:   {} -> {}", self.nodes_before, self.nodes_after)?;
        let pct = if self.cost_before > 0.0 {
            100.0 * (1.0 - self.cost_after / self.cost_before)
        } else {
            0.0
        };
        writeln!(
            f,
            "cost:    {:.4e} -> {:.4e} cycles ({pct:.1}% lower)",
            self.cost_before, self.cost_after
        )?;
        writeln!(f, "folded:  {} constants", self.folds)?;
        let rules: Vec<String> = self
            .applied
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(
            f,
            "rules:   {}",
            if rules.is_empty() {
                "none".to_string()
            } else {
                rules.join(", ")
            }
        )?;
        if let Some(r) = &self.fallback {
            writeln!(f, "fallback: {r}")?;
        }
        Ok(())
    }
}

/// Estimated cycles of a graph's top-level nodes under `t`.
pub fn graph_cost(g: &Graph, t: &TargetParams) -> f64 {
    g.nodes
        .iter()
        .map(|n| {
            let ins: Vec<Option<&Type>> = n.inputs.iter().map(|v| v.map(|v| g.ty(v))).collect();
            let outs: Vec<Type> = n.outputs.iter().map(|&o| g.ty(o).clone()).collect();
            cycles(t, &n.op, &ins, &outs)
        })
        .sum()
}

/// Optimizes `g` with every rule family.
pub fn optimize(
    g: &Graph,
    opts: &Options,
    eval: Option<&dyn ConstEval>,
) -> Result<(Graph, Stats), PassError> {
    optimize_with(g, opts, eval, &all_rules())
}

/// Optimizes `g` with the given rules (tests use one family at a time).
pub fn optimize_with(
    g: &Graph,
    opts: &Options,
    eval: Option<&dyn ConstEval>,
    rules: &Rules,
) -> Result<(Graph, Stats), PassError> {
    // egg times each `rebuild` (for its debug log) with `quanta`, whose first reading of the clock
    // calibrates the TSC in a busy loop of 10+ ms — more than the whole e-graph phase of most models.
    // A mock clock for this thread skips that; carve's own timing uses `std::time::Instant`.
    let (clock, _) = quanta::Clock::mock();
    quanta::with_clock(&clock, || run(g, opts, eval, rules))
}

fn run(
    g: &Graph,
    opts: &Options,
    eval: Option<&dyn ConstEval>,
    rules: &Rules,
) -> Result<(Graph, Stats), PassError> {
    let start = Instant::now();
    let inputs: Vec<Type> = g.inputs.iter().map(|&v| g.ty(v).clone()).collect();
    let mut eg = analysis::EG::new(CarveAnalysis::new(inputs, eval, opts.fold_limit));
    let imported = convert::to_egraph(g, &mut eg)?;
    eg.rebuild();
    let report = saturate(&mut eg, rules, &opts.limits)?;
    let ex = extract::extract(&eg, &imported.roots, &opts.target);
    let cost_before = graph_cost(g, &opts.target);
    let mut stats = Stats {
        nodes_before: g.nodes.len(),
        nodes_after: g.nodes.len(),
        enodes: eg.total_number_of_nodes(),
        eclasses: eg.number_of_classes(),
        iterations: report.iterations,
        stop: report.stop,
        time: Duration::ZERO,
        cost_before,
        cost_after: cost_before,
        folds: eg.analysis.folds,
        applied: report.applied,
        fallback: None,
    };
    let result = if let Some(c) = eg.analysis.conflicts.first() {
        Err(format!("type conflict: {c}"))
    } else {
        convert::to_graph(&eg, &ex.choice, &imported.roots, g, &imported.names)
            .map_err(|e| e.to_string())
            .and_then(|mut out| {
                out.reinfer()
                    .map_err(|e| format!("re-inference failed: {e}"))?;
                carve_ir::verify::verify(&out).map_err(|e| format!("verifier: {e}"))?;
                Ok(out)
            })
    };
    let out = match result {
        Ok(out) => {
            let after = graph_cost(&out, &opts.target);
            if after > cost_before * (1.0 + 1e-9) {
                stats.fallback = Some(format!(
                    "extracted graph is estimated slower ({after:.4e} > {cost_before:.4e} cycles)"
                ));
                g.clone()
            } else {
                stats.cost_after = after;
                out
            }
        }
        Err(e) => {
            stats.fallback = Some(e);
            g.clone()
        }
    };
    stats.nodes_after = out.nodes.len();
    stats.time = start.elapsed();
    Ok((out, stats))
}
