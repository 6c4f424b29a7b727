//! The one constant-folding mechanism both compile-time folders use: [`fold_round`] replaces every node
//! a caller-supplied evaluator can compute by constant nodes, [`fold_shape_op`] computes `shape`/`size`
//! of a statically shaped value, and [`remove_dead`] drops nodes nothing uses.
//!
//! It lives in the IR because both folders need it and neither may depend on the other: carve-passes'
//! `fold::canonicalize` evaluates through the driver's interpreter-backed `ConstEval` (passes never run
//! a model), and carve-codegen's `prepare::specialize` evaluates with carve-runtime's interpreter
//! (codegen does not depend on passes). The *policy* — which ops are opaque, how large a result may get —
//! stays with each caller; the IR itself evaluates nothing.

use crate::ops::movement::MovementOp;
use crate::{Constant, Graph, Node, Op, Type};

/// The constant value of `shape`/`size` of a statically shaped input.
pub fn fold_shape_op(op: &Op, input: Option<&Type>) -> Option<Constant> {
    let Op::Movement(m) = op else { return None };
    let d = input?.as_tensor()?.shape.as_ref()?.as_known()?;
    match m {
        MovementOp::ShapeOf(s) => {
            let r = d.len() as i64;
            let clamp = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
            let start = clamp(s.start) as usize;
            let end = (clamp(s.end.unwrap_or(r)) as usize).max(start);
            let v: Vec<i64> = d.get(start..end)?.iter().map(|&x| x as i64).collect();
            Some(Constant::from_i64s(&[v.len() as u64], &v))
        }
        MovementOp::Size(_) => Some(Constant::from_i64s(
            &[],
            &[d.iter().product::<u64>() as i64],
        )),
        _ => None,
    }
}

/// One pass over the top-level nodes of `g` in order: each node for which `eval(g, node, known)` gives
/// one constant per result is replaced by constant nodes (result types set to the constants' types,
/// keeping the quantization the result's type had).
/// `known[v]` is the constant value `v` has so far (constant nodes, and nodes folded earlier in this
/// pass). Returns the number of nodes folded; the caller re-infers types and repeats as it sees fit.
pub fn fold_round(
    g: &mut Graph,
    mut eval: impl FnMut(&Graph, &Node, &[Option<Constant>]) -> Option<Vec<Constant>>,
) -> usize {
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
        match eval(g, &n, &known) {
            Some(cs) if cs.len() == n.outputs.len() => {
                folded += 1;
                for (&o, mut c) in n.outputs.iter().zip(cs) {
                    // A folded value keeps the quantization its type had (a transposed quantized
                    // weight stays quantized): the evaluator computes integers, not their types.
                    if c.ty.quant.is_none()
                        && let Some(t) = g.values[o.index()].ty.as_tensor()
                        && t.dtype == c.ty.dtype
                    {
                        c.ty.quant = t.quant.clone();
                    }
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
    folded
}

/// Removes top-level nodes none of whose results is used (by nodes, subgraph captures or graph
/// outputs); returns how many.
pub fn remove_dead(g: &mut Graph) -> usize {
    let mut live = vec![false; g.values.len()];
    for &o in &g.outputs {
        live[o.index()] = true;
    }
    let mut keep = vec![false; g.nodes.len()];
    for (i, n) in g.nodes.iter().enumerate().rev() {
        if !n.outputs.iter().any(|o| live[o.index()]) {
            continue;
        }
        keep[i] = true;
        for v in n.inputs.iter().flatten() {
            live[v.index()] = true;
        }
        for sg in n.op.subgraphs() {
            for c in &sg.captures {
                if let Some(l) = live.get_mut(c.outer.index()) {
                    *l = true;
                }
            }
        }
    }
    let before = g.nodes.len();
    let mut k = keep.into_iter();
    g.nodes.retain(|_| k.next().unwrap_or(true));
    g.rebuild_producers();
    before - g.nodes.len()
}
