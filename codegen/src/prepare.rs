//! Compile-time specialization of a graph before lowering: every node whose inputs are all constants
//! (and `shape`/`size` of values whose shape is static) is evaluated now with the reference interpreter
//! and replaced by constants; types are re-inferred until nothing changes. What is left must have
//! concrete shapes everywhere, or the graph cannot be compiled natively.

use std::sync::Arc;

use carve_ir::{Constant, Graph, Node, Op, Type, ValueId};
use carve_runtime::Tensor;
use carve_runtime::interp::{Value, eval_node};

use crate::CodegenError;

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
    if matches!(n.op.name(), "shape" | "size") {
        let x = (*n.inputs.first()?)?;
        if known[x.index()].is_none() {
            let shape = concrete_shape(g, x)?;
            let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            return match n.op.name() {
                "size" => Some(vec![Constant::from_i64s(&[], &[dims.iter().product()])]),
                _ => {
                    let Op::Movement(carve_ir::ops::movement::MovementOp::ShapeOf(s)) = &n.op
                    else {
                        return None;
                    };
                    let r = dims.len() as i64;
                    let clamp = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
                    let lo = clamp(s.start) as usize;
                    let hi = clamp(s.end.unwrap_or(r)) as usize;
                    let sel = if lo < hi { &dims[lo..hi] } else { &[][..] };
                    Some(vec![Constant::from_i64s(&[sel.len() as u64], sel)])
                }
            };
        }
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
    if n.inputs.is_empty() && !matches!(n.op.name(), "constant_of_shape" | "range" | "eye_like") {
        // Nothing to fold for source ops other than these (e.g. random ops, handled above).
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
        let mut folded = 0;
        let mut known: Vec<Option<Constant>> = vec![None; g.values.len()];
        let old = std::mem::take(&mut g.nodes);
        let mut nodes = Vec::with_capacity(old.len());
        for n in old {
            if let Op::Constant(c) = &n.op {
                if let Some(&o) = n.outputs.first() {
                    known[o.index()] = Some(c.clone());
                }
                nodes.push(n);
                continue;
            }
            match fold_node(g, &known, &n) {
                Some(cs) if cs.len() == n.outputs.len() => {
                    folded += 1;
                    for (c, &o) in cs.into_iter().zip(&n.outputs) {
                        g.values[o.index()].ty = Type::Tensor(c.ty.clone());
                        known[o.index()] = Some(c.clone());
                        nodes.push(Node {
                            name: n.name.clone(),
                            op: Op::Constant(c),
                            inputs: Vec::new(),
                            outputs: vec![o],
                        });
                    }
                }
                _ => nodes.push(n),
            }
        }
        g.nodes = nodes;
        g.rebuild_producers();
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

/// Drops nodes none of whose outputs are used (by nodes, subgraph captures or graph outputs).
pub fn remove_dead(g: &mut Graph) {
    let mut used = vec![false; g.values.len()];
    for &o in &g.outputs {
        used[o.index()] = true;
    }
    let mut keep = vec![false; g.nodes.len()];
    for i in (0..g.nodes.len()).rev() {
        let n = &g.nodes[i];
        if n.outputs.iter().any(|o| used[o.index()]) {
            keep[i] = true;
            for v in n.inputs.iter().flatten() {
                used[v.index()] = true;
            }
            for sg in n.op.subgraphs() {
                for c in &sg.captures {
                    if let Some(u) = used.get_mut(c.outer.index()) {
                        *u = true;
                    }
                }
            }
        }
    }
    let mut k = 0;
    g.nodes.retain(|_| {
        k += 1;
        keep[k - 1]
    });
    g.rebuild_producers();
}

/// [`specialize`] without the fold count.
pub fn prepare(g: &Graph) -> Result<Arc<Graph>, CodegenError> {
    specialize(g).map(|(g, _)| g)
}

/// Specializes `g` for compilation: folds constants, removes dead nodes and checks that every value
/// is a tensor with a concrete shape (naming the first one that is not). Returns the graph and the
/// number of nodes folded.
pub fn specialize(g: &Graph) -> Result<(Arc<Graph>, usize), CodegenError> {
    let mut g = g.clone();
    let folded = fold_constants(&mut g)?;
    for n in &g.nodes {
        for &o in &n.outputs {
            check_static(&g, o, Some(n))?;
        }
    }
    for &v in g.inputs.iter().chain(&g.outputs) {
        check_static(&g, v, None)?;
    }
    Ok((Arc::new(g), folded))
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
