//! Canonicalization without the e-graph: constant folding (through a driver-supplied [`ConstEval`], since
//! passes never run a model themselves), folding of `shape`/`size` of statically shaped values, and
//! dead-code removal, repeated with shape re-inference until nothing changes. The folding loop itself is
//! [`carve_ir::fold`], shared with codegen's specialization; this module holds canonicalization's policy
//! (opaque ops, the size bound, elided constants).
//!
//! Assumes a verified graph; guarantees a verified graph computing the same outputs, in which no node
//! (other than opaque ones: random ops, ops with subgraphs) has only constant inputs unless its result
//! exceeds the size bound, and every node contributes to an output.

use carve_ir::ops::quant::QuantOp;
use carve_ir::{Constant, Graph, Node, Op};

pub use carve_ir::fold::{fold_shape_op, remove_dead};

use crate::PassError;
use crate::egraph::lang::is_opaque;

/// Evaluates one op on constant inputs. The driver implements it with the reference interpreter.
pub trait ConstEval {
    /// The `n_outputs` results of `op` on `inputs` (`None` = omitted optional input), or `None` when the
    /// op cannot be evaluated (no kernel, unsupported type, error).
    fn eval(
        &self,
        op: &Op,
        inputs: &[Option<&Constant>],
        n_outputs: usize,
    ) -> Option<Vec<Constant>>;
}

/// Default bound on the number of elements of a folded result (larger results are folded only when they
/// are smaller than the inputs together).
pub const DEFAULT_FOLD_LIMIT: u64 = 1 << 20;

/// What [`canonicalize`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CanonStats {
    /// Nodes replaced by constants.
    pub folded: usize,
    /// Nodes removed as dead.
    pub removed: usize,
    /// Rounds run.
    pub rounds: usize,
}

fn is_executable(c: &Constant) -> bool {
    !matches!(c.data, carve_ir::ConstData::Elided { .. })
}

/// Folds constants and removes dead nodes in the top-level graph `g` (subgraphs are left alone), then
/// re-infers shapes and verifies.
pub fn canonicalize(
    g: &mut Graph,
    eval: Option<&dyn ConstEval>,
    fold_limit: u64,
) -> Result<CanonStats, PassError> {
    canonicalize_with(g, eval, fold_limit, false)
}

/// [`canonicalize`] before the e-graph: `dequantize_linear` of constants is kept, so the e-graph's
/// rules see quantized weights (QDQ products → integer ops, [`crate::rules::quant`]); its constant
/// analysis folds them too, so float extraction still gets the folded weight.
pub fn canonicalize_before_egraph(
    g: &mut Graph,
    eval: Option<&dyn ConstEval>,
    fold_limit: u64,
) -> Result<CanonStats, PassError> {
    canonicalize_with(g, eval, fold_limit, true)
}

fn canonicalize_with(
    g: &mut Graph,
    eval: Option<&dyn ConstEval>,
    fold_limit: u64,
    keep_dequantize: bool,
) -> Result<CanonStats, PassError> {
    let mut stats = CanonStats::default();
    for _ in 0..8 {
        stats.rounds += 1;
        let folded = fold_round(g, eval, fold_limit, keep_dequantize);
        stats.folded += folded;
        g.reinfer().map_err(|e| PassError::Infer(e.to_string()))?;
        if folded == 0 {
            break;
        }
    }
    stats.removed = remove_dead(g);
    g.reinfer().map_err(|e| PassError::Infer(e.to_string()))?;
    carve_ir::verify::verify(g).map_err(|e| PassError::Verify(e.to_string()))?;
    Ok(stats)
}

fn fold_round(
    g: &mut Graph,
    eval: Option<&dyn ConstEval>,
    fold_limit: u64,
    keep_dequantize: bool,
) -> usize {
    carve_ir::fold::fold_round(g, |g, n, consts| {
        let dq = matches!(n.op, Op::Quant(QuantOp::DequantizeLinear(_)));
        if is_opaque(&n.op) || (keep_dequantize && dq) {
            None
        } else if let Some(c) =
            fold_shape_op(&n.op, n.inputs.first().copied().flatten().map(|v| g.ty(v)))
        {
            Some(vec![c])
        } else {
            try_eval(g, n, consts, eval, fold_limit)
        }
    })
}

fn try_eval(
    g: &Graph,
    n: &Node,
    consts: &[Option<Constant>],
    eval: Option<&dyn ConstEval>,
    fold_limit: u64,
) -> Option<Vec<Constant>> {
    let eval = eval?;
    let mut ins = Vec::with_capacity(n.inputs.len());
    let mut in_elems = 0u64;
    for v in &n.inputs {
        match v {
            None => ins.push(None),
            Some(v) => {
                let c = consts.get(v.index())?.as_ref()?;
                if !is_executable(c) {
                    return None;
                }
                in_elems += c.num_elements();
                ins.push(Some(c));
            }
        }
    }
    let mut out_elems = 0u64;
    for &o in &n.outputs {
        out_elems += g.ty(o).as_tensor()?.shape.as_ref()?.num_elements()?;
    }
    if out_elems > fold_limit && out_elems > in_elems {
        return None;
    }
    eval.eval(&n.op, &ins, n.outputs.len())
}
