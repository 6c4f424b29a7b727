//! carve-passes: graph-to-graph passes over carve's IR — constant folding and canonicalization,
//! decomposition of ops without native kernels (`einsum`, `attention`, the losses), and the e-graph optimizer (egg language and analysis, rewrite rule families, per-target cost model,
//! DAG-aware extraction).
//!
//! ```
//! use carve_passes::egraph::{Options, optimize};
//! let g = carve_ir::text::parse(
//!     "graph @g(%x: f32[2,3]) -> (f32[2,3]) {\n  %0 = neg(%x) : f32[2,3]\n  %1 = neg(%0) : f32[2,3]\n  %2 = relu(%1) : f32[2,3]\n  return %2\n}\n",
//! )?;
//! let (g, stats) = optimize(&g, &Options::default(), None)?;
//! assert_eq!(g.nodes.len(), 1); // relu(x)
//! assert!(stats.cost_after < stats.cost_before);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Passes never run a model: folding evaluates ops through a [`fold::ConstEval`] the driver provides
//! (carve implements it with the reference interpreter).

pub mod cost;
pub mod decompose;
pub mod egraph;
pub mod fold;
pub mod prune;
pub mod quantize;
pub mod rules;
pub mod sparsify;

/// A pass failed; the message names the pass step and the cause.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PassError {
    /// Shape re-inference failed after a rewrite.
    #[error("shape inference after folding: {0}")]
    Infer(String),
    /// Shape re-inference failed after decomposing nodes (the message starts with the op).
    #[error("shape inference after decomposition of {0}")]
    Decompose(String),
    /// The verifier rejected a rewritten graph.
    #[error("verifier rejected the rewritten graph: {0}")]
    Verify(String),
    /// Converting between the IR and the e-graph failed.
    #[error("e-graph conversion: {0}")]
    Convert(String),
    /// A rewrite rule is malformed (a pattern that does not parse or names an unknown op).
    #[error("rewrite rule: {0}")]
    Rule(String),
}
