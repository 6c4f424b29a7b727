//! The driver side of the optimizer: the interpreter-backed constant evaluator the passes fold with,
//! and [`optimize`], the pipeline step `run`/`bench`/`compile` call between import and codegen.
//!
//! `optimize` = canonicalize (fold constants and shape computations, remove dead code) → e-graph
//! (unless disabled) → canonicalize again. Every step leaves a verified graph.

use std::time::{Duration, Instant};

use carve_ir::{Constant, Graph, Op};
use carve_passes::egraph;
use carve_passes::fold::{
    CanonStats, ConstEval, DEFAULT_FOLD_LIMIT, canonicalize, canonicalize_before_egraph,
};
use carve_runtime::interp::{self, Value};

pub use carve_passes::PassError;
pub use carve_passes::cost::TargetParams;
pub use carve_passes::egraph::Stats as EgraphStats;
pub use carve_passes::rules::Limits;

/// Evaluates ops on constants with the reference interpreter.
#[derive(Debug, Default, Clone, Copy)]
pub struct InterpEval;

impl ConstEval for InterpEval {
    fn eval(
        &self,
        op: &Op,
        inputs: &[Option<&Constant>],
        n_outputs: usize,
    ) -> Option<Vec<Constant>> {
        let mut g = Graph::new("fold");
        let ins: Vec<_> = inputs
            .iter()
            .map(|c| c.map(|c| g.add_const("", c.clone())))
            .collect();
        let names = (0..n_outputs).map(|k| format!("out{k}")).collect();
        let outs = g.add_node("fold", op.clone(), ins, names).ok()?;
        g.outputs = outs;
        let vals = interp::run(&g, Vec::new()).ok()?;
        vals.into_iter()
            .map(|v| match v {
                Value::Tensor(t) => Some(t.to_constant()),
                _ => None,
            })
            .collect()
    }
}

/// Options of [`optimize`].
#[derive(Debug, Clone)]
pub struct OptimizeOptions {
    /// Run the e-graph optimizer (false: only canonicalize, as `--no-egraph`).
    pub egraph: bool,
    /// E-graph options: budgets, the target's cost parameters, fold size bound.
    pub egraph_options: egraph::Options,
}

impl Default for OptimizeOptions {
    fn default() -> OptimizeOptions {
        OptimizeOptions {
            egraph: true,
            egraph_options: egraph::Options::default(),
        }
    }
}

/// What [`optimize`] did.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Nodes of the input graph.
    pub nodes_in: usize,
    /// Canonicalization before the e-graph.
    pub canon: CanonStats,
    /// The e-graph run, when enabled.
    pub egraph: Option<EgraphStats>,
    /// Nodes of the result.
    pub nodes_out: usize,
    /// Time spent canonicalizing (both rounds).
    pub canon_time: Duration,
    /// Total time.
    pub time: Duration,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "canonicalize: {} nodes folded, {} dead removed ({:.1} ms)",
            self.canon.folded,
            self.canon.removed,
            self.canon_time.as_secs_f64() * 1e3
        )?;
        if let Some(e) = &self.egraph {
            write!(f, "{e}")?;
        }
        writeln!(
            f,
            "total:   {} -> {} nodes in {:.1} ms",
            self.nodes_in,
            self.nodes_out,
            self.time.as_secs_f64() * 1e3
        )
    }
}

/// Optimizes a verified top-level graph: canonicalize, e-graph (if enabled), canonicalize.
pub fn optimize(graph: &Graph, opts: &OptimizeOptions) -> Result<(Graph, Stats), PassError> {
    let start = Instant::now();
    let eval = InterpEval;
    let mut g = graph.clone();
    let fold_limit = opts.egraph_options.fold_limit;
    let canon = if opts.egraph {
        canonicalize_before_egraph(&mut g, Some(&eval), fold_limit)?
    } else {
        canonicalize(&mut g, Some(&eval), fold_limit)?
    };
    let mut canon_time = start.elapsed();
    let mut estats = None;
    if opts.egraph {
        let (out, s) = egraph::optimize(&g, &opts.egraph_options, Some(&eval))?;
        g = out;
        estats = Some(s);
        let t = Instant::now();
        canonicalize(&mut g, Some(&eval), fold_limit)?;
        canon_time += t.elapsed();
    }
    let stats = Stats {
        nodes_in: graph.nodes.len(),
        canon,
        egraph: estats,
        nodes_out: g.nodes.len(),
        canon_time,
        time: start.elapsed(),
    };
    Ok((g, stats))
}

/// Canonicalization only (constant and shape folding, dead-code removal), for `--no-egraph`.
pub fn canonicalize_only(graph: &Graph) -> Result<Graph, PassError> {
    let mut g = graph.clone();
    canonicalize(&mut g, Some(&InterpEval), DEFAULT_FOLD_LIMIT)?;
    Ok(g)
}
