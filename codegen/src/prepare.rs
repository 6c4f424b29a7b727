//! Compile-time specialization of a graph before lowering: every node whose inputs are all constants
//! (and `shape`/`size` of values whose shape is static) is evaluated now with the reference interpreter
//! and replaced by constants; types are re-inferred until nothing changes. What is left must have
//! concrete shapes everywhere, or the graph cannot be compiled natively.
//!
//! The folding loop and dead-code removal are [`carve_ir::fold`], the same ones carve-passes'
//! canonicalization uses (codegen may not depend on carve-passes, so the shared mechanism lives in the
//! IR). The driver canonicalizes before codegen, so on its path this mostly confirms a fixed point; it
//! still folds for callers that hand codegen an unoptimized graph (tests, benches, the optimizer's
//! fallback). What stays here is codegen's policy: evaluation through carve-runtime's interpreter and
//! a byte bound on folded results.

use std::sync::Arc;

use carve_ir::fold::{fold_round, fold_shape_op};
use carve_ir::{Constant, Graph, Node, Op, Type, ValueId};
use carve_runtime::Tensor;
use carve_runtime::interp::{Value, eval_node};

use crate::CodegenError;

pub use carve_ir::fold::remove_dead;

/// Results larger than this many bytes are not folded at compile time (they stay runtime nodes).
pub const MAX_FOLD_BYTES: u64 = 64 << 20;

/// Ops that must never be folded (their result is not a function of their inputs alone).
fn is_nondeterministic(op: &Op) -> bool {
    op.is_random()
}

/// The concrete shape of `v`, if it is a tensor with all dims known.
pub fn concrete_shape(g: &Graph, v: ValueId) -> Option<Vec<usize>> {
    let t = g.ty(v).as_tensor()?;
    let dims = t.shape.as_ref()?.as_known()?;
    dims.into_iter().map(|d| usize::try_from(d).ok()).collect()
}

fn fold_node(g: &Graph, known: &[Option<Constant>], n: &Node) -> Option<Vec<Constant>> {
    if is_nondeterministic(&n.op) || !n.op.subgraphs().is_empty() {
        return None;
    }
    // `shape` and `size` of a static-shape value are constants whatever the value is.
    if let Some(c) = fold_shape_op(&n.op, n.inputs.first().copied().flatten().map(|v| g.ty(v))) {
        return Some(vec![c]);
    }
    // Every present input must be a constant before anything is converted (weights can be large).
    if n.inputs
        .iter()
        .flatten()
        .any(|v| known[v.index()].is_none())
    {
        return None;
    }
    let mut vals = Vec::with_capacity(n.inputs.len());
    for v in &n.inputs {
        match v {
            Some(v) => {
                let c = known[v.index()].as_ref()?;
                vals.push(Some(Value::Tensor(Tensor::from_constant(c).ok()?)));
            }
            None => vals.push(None),
        }
    }
    if n.inputs.is_empty() {
        // Nothing to fold for source ops (constants are already known; random ops are handled above).
        return None;
    }
    // Skip folds whose results would be huge (they stay runtime computations).
    for &o in &n.outputs {
        let t = g.ty(o).as_tensor()?;
        if let Some(count) = t.shape.as_ref().and_then(|s| s.num_elements())
            && t.dtype
                .storage_bytes(count)
                .is_none_or(|b| b > MAX_FOLD_BYTES)
        {
            return None;
        }
    }
    let outs = eval_node(g, n, vals.iter().map(|v| v.as_ref()).collect(), &[]).ok()?;
    let mut consts = Vec::with_capacity(outs.len());
    for v in outs.into_iter().take(n.outputs.len()) {
        let Value::Tensor(t) = v else { return None };
        let bytes = t.dtype().storage_bytes(t.len() as u64)?;
        if bytes > MAX_FOLD_BYTES {
            return None;
        }
        consts.push(t.to_constant());
    }
    Some(consts)
}

/// Folds constants and re-infers types until a fixed point. Returns the number of nodes folded.
pub fn fold_constants(g: &mut Graph) -> Result<usize, CodegenError> {
    let mut total = 0;
    for _round in 0..16 {
        let folded = fold_round(g, |g, n, known| fold_node(g, known, n));
        g.reinfer().map_err(|e| CodegenError::Graph {
            msg: format!("re-inferring types after constant folding: {e}"),
        })?;
        total += folded;
        if folded == 0 {
            break;
        }
    }
    remove_dead(g);
    Ok(total)
}

/// [`specialize`] without the fold count.
pub fn prepare(g: &Graph) -> Result<Arc<Graph>, CodegenError> {
    specialize(g).map(|(g, _)| g)
}

/// Specializes `g` for compilation: folds constants, removes dead nodes and checks that every value
/// is a tensor with a concrete shape (naming the first one that is not). Returns the graph and the
/// number of nodes folded.
pub fn specialize(g: &Graph) -> Result<(Arc<Graph>, usize), CodegenError> {
    specialize_noted(g).map(|(g, folded, _)| (g, folded))
}

/// [`specialize`], also returning one line per control-flow or `dft` node compiled as ordinary nodes
/// (see [`crate::lower::control`] and [`crate::lower::dft`]).
pub fn specialize_noted(g: &Graph) -> Result<(Arc<Graph>, usize, Vec<String>), CodegenError> {
    let mut g = g.clone();
    let mut folded = fold_constants(&mut g)?;
    // Control flow with compile-time trip counts becomes ordinary nodes (see `lower::control`).
    let (expanded, more) = crate::lower::control::expand_all(&mut g)?;
    folded += more;
    let mut notes: Vec<String> = expanded.iter().map(ToString::to_string).collect();
    let dfts = crate::lower::dft::expand_all(&mut g);
    if dfts > 0 {
        notes.push(format!(
            "{dfts} dft node(s) compiled as a matmul with constant twiddles"
        ));
    }
    for n in &g.nodes {
        for &o in &n.outputs {
            check_static(&g, o, Some(n))?;
        }
    }
    for &v in g.inputs.iter().chain(&g.outputs) {
        check_static(&g, v, None)?;
    }
    Ok((Arc::new(g), folded, notes))
}

fn check_static(g: &Graph, v: ValueId, n: Option<&Node>) -> Result<(), CodegenError> {
    let val = g.value(v);
    let at = match n {
        Some(n) => format!(
            "output '{}' of node '{}' ({})",
            val.name,
            n.name,
            n.op.name()
        ),
        None => format!("graph input/output '{}'", val.name),
    };
    match &val.ty {
        Type::Tensor(t) => {
            if t.dtype.storage_bytes(1).is_none() {
                return Err(CodegenError::Unsupported {
                    msg: format!(
                        "{at} has element type {} (no fixed-width encoding)",
                        t.dtype
                    ),
                });
            }
            if concrete_shape(g, v).is_none() {
                return Err(CodegenError::Unsupported {
                    msg: format!("{at} has a shape that is not static after binding inputs: {t}"),
                });
            }
            Ok(())
        }
        other => Err(CodegenError::Unsupported {
            msg: format!(
                "{at} is a {} (only tensors live in native memory)",
                other.kind()
            ),
        }),
    }
}
