//! Decomposition of two-operand `einsum`: it becomes `reduce` (sum) / `transpose` / `unsqueeze` on each operand, one batched `matmul`, and
//! `squeeze` / `transpose` on the result.
//!
//! The rewrite needs no concrete dims (symbolic dims stay symbolic): it only permutes axes and inserts
//! or removes size-1 axes, never reshapes, so axes are never merged. For an equation `A,B->O` the labels
//! fall into classes:
//!
//! - a label in one operand only and not in the output is summed out of that operand first
//!   (`reduce {kind=sum, keepdims=false}`);
//! - the contracted label `k` is in both operands and not in the output (at most one; an equation with
//!   several is left alone, merging them would need a reshape);
//! - the row label `l` is the last label of A (in A's order) that is in the output and not in B; the
//!   column label `r` is the last such label of B;
//! - every other output label is a batch label: in both operands, or in one only (the other operand gets
//!   a size-1 axis there and `matmul` broadcasts it). Batch axes keep the output's order.
//!
//! A is brought to `[batch..., l, k]` and B to `[batch..., k, r]` (a `transpose` unless it is the
//! identity, then an `unsqueeze` for the axes the operand lacks, including a missing `l`, `k` or `r`);
//! `matmul` gives `[batch..., l, r]`, a `squeeze` drops a missing `l`/`r`, and a final `transpose` puts
//! the axes in the output's order. `btgi,gih->btgh` becomes `transpose(A) {perm=[0,2,1,3]}`
//! (`[b,g,t,i]`), `unsqueeze(B, [0])` (`[1,g,i,h]`), `matmul` (`[b,g,t,h]`) and
//! `transpose {perm=[0,2,1,3]}`.
//!
//! Left as `einsum`: other than two operands, no explicit `->`, an ellipsis, a label repeated within one
//! operand (a diagonal), more than one contracted label, a contracted label whose two dims are not
//! known to be equal (einsum broadcasts a size-1 dim there, `matmul` does not), operands that are not
//! plain (unquantized) floating-point tensors of the equation's rank, and einsums inside subgraphs
//! (only the top-level graph is rewritten).
//!
//! The new nodes take the einsum's place in the schedule, the last one defines the einsum's output
//! value (consumers and graph outputs are untouched), and the names of new nodes and values derive
//! from the einsum's node name (`<name>/einsum_a_perm`, ...), like every decomposition (see the
//! parent module).

use carve_ir::ops::linalg::{LinalgOp, MatMul, Sub, parse_equation};
use carve_ir::ops::movement::{Squeeze, Transpose, Unsqueeze};
use carve_ir::ops::reduce::{Reduce, ReduceKind};
use carve_ir::{Dim, Graph, Node, Op};

use super::{Builder, DecomposeStats, rewrite};
use crate::PassError;

/// Replaces every two-operand `einsum` of the top-level graph `g` that the module doc describes by
/// the equivalent `transpose`/`unsqueeze`/`matmul`/`squeeze` chain, then re-infers shapes.
pub fn decompose_einsum(g: &mut Graph) -> Result<DecomposeStats, PassError> {
    rewrite(
        g,
        "einsum",
        |op| matches!(op, Op::Linalg(LinalgOp::Einsum(_))),
        |g, i| {
            let Op::Linalg(LinalgOp::Einsum(e)) = &g.nodes[i].op else {
                return Err("not an einsum".into());
            };
            let plan = Plan::new(g, &e.equation, &g.nodes[i])
                .ok_or_else(|| "unsupported equation or operand types".to_string())?;
            emit(g, i, &plan)
        },
    )
}

/// The rewrite of one einsum: each operand's term after summing out private labels, and the layout
/// of the matmul operands. A slot is a label, or `None` for a size-1 axis the operand lacks.
struct Plan {
    /// Per operand: its term (labels in its axis order).
    terms: [Vec<u8>; 2],
    /// Per operand: the axes summed out before anything else.
    summed: [Vec<i64>; 2],
    /// The output term.
    output: Vec<u8>,
    /// Batch labels in output order.
    batch: Vec<u8>,
    /// Row, contracted and column labels.
    l: Option<u8>,
    k: Option<u8>,
    r: Option<u8>,
}

impl Plan {
    fn new(g: &Graph, equation: &str, n: &Node) -> Option<Plan> {
        let eq = parse_equation(equation).ok()?;
        let output = labels(eq.output.as_ref()?)?;
        let [a, b] = <[_; 2]>::try_from(eq.inputs).ok()?;
        let (a, b) = (labels(&a)?, labels(&b)?);
        let [Some(va), Some(vb)] = <[_; 2]>::try_from(n.inputs.as_slice()).ok()? else {
            return None;
        };
        if n.outputs.len() != 1 {
            return None;
        }
        let mut dims = Vec::new();
        for (v, term) in [(va, &a), (vb, &b)] {
            let t = g.ty(v).as_tensor()?;
            if !t.dtype.is_float() || t.quant.is_some() {
                return None;
            }
            let d = t.dims()?;
            if d.len() != term.len() {
                return None;
            }
            dims.push(d);
        }
        // Private labels not in the output are summed out.
        let private = |x: &[u8], y: &[u8]| -> Vec<i64> {
            (0..x.len())
                .filter(|&p| !y.contains(&x[p]) && !output.contains(&x[p]))
                .map(|p| p as i64)
                .collect()
        };
        let summed = [private(&a, &b), private(&b, &a)];
        let keep = |x: &[u8], s: &[i64]| -> Vec<u8> {
            (0..x.len())
                .filter(|p| !s.contains(&(*p as i64)))
                .map(|p| x[p])
                .collect()
        };
        let (ta, tb) = (keep(&a, &summed[0]), keep(&b, &summed[1]));
        let contracted: Vec<u8> = ta
            .iter()
            .copied()
            .filter(|c| tb.contains(c) && !output.contains(c))
            .collect();
        if contracted.len() > 1 {
            return None;
        }
        let k = contracted.first().copied();
        if let Some(k) = k {
            let pa = a.iter().position(|&c| c == k)?;
            let pb = b.iter().position(|&c| c == k)?;
            if dims[0][pa] != dims[1][pb] || dims[0][pa] == Dim::Unknown {
                return None;
            }
        }
        let l = ta
            .iter()
            .rev()
            .copied()
            .find(|c| output.contains(c) && !tb.contains(c));
        let r = tb
            .iter()
            .rev()
            .copied()
            .find(|c| output.contains(c) && !ta.contains(c));
        let batch: Vec<u8> = output
            .iter()
            .copied()
            .filter(|&c| Some(c) != l && Some(c) != r)
            .collect();
        Some(Plan {
            terms: [ta, tb],
            summed,
            output,
            batch,
            l,
            k,
            r,
        })
    }

    /// The slots of operand `i` before the matmul: `[batch..., l, k]` or `[batch..., k, r]`.
    fn target(&self, i: usize) -> Vec<Option<u8>> {
        let mut t: Vec<Option<u8>> = self.batch.iter().map(|&c| Some(c)).collect();
        if i == 0 {
            t.extend([self.l, self.k]);
        } else {
            t.extend([self.k, self.r]);
        }
        let term = &self.terms[i];
        t.into_iter()
            .map(|s| s.filter(|c| term.contains(c)))
            .collect()
    }
}

/// The labels of a term, `None` when it has an ellipsis or repeats a label.
fn labels(term: &[Sub]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(term.len());
    for s in term {
        match s {
            Sub::Label(c) if !out.contains(c) => out.push(*c),
            _ => return None,
        }
    }
    Some(out)
}

/// A permutation that is not the identity, as `transpose`'s `perm`.
fn non_identity(perm: Vec<i64>) -> Option<Vec<i64>> {
    perm.iter()
        .enumerate()
        .any(|(i, &p)| p != i as i64)
        .then_some(perm)
}

/// Appends the chain replacing node `at` (the last node defines the einsum's output); an error when
/// a node does not type-check.
fn emit(g: &mut Graph, at: usize, plan: &Plan) -> Result<(), String> {
    let node = &g.nodes[at];
    let missing = || "an operand or the result is missing".to_string();
    let out = *node.outputs.first().ok_or_else(missing)?;
    let ins = [
        node.inputs.first().copied().flatten().ok_or_else(missing)?,
        node.inputs.get(1).copied().flatten().ok_or_else(missing)?,
    ];
    let mut b = Builder::new(g, at, "einsum");
    let mut operands = [ins[0], ins[1]];
    for (i, side) in ["a", "b"].into_iter().enumerate() {
        let mut v = operands[i];
        if !plan.summed[i].is_empty() {
            let axes = b.axes(&format!("{side}_sum_axes"), &plan.summed[i]);
            let op = Reduce {
                kind: ReduceKind::Sum,
                keepdims: false,
                noop_with_empty_axes: false,
            };
            v = b.node(&format!("{side}_sum"), op, &[v, axes])?;
        }
        let term = &plan.terms[i];
        let target = plan.target(i);
        // Present labels in target order, then the size-1 axes the operand lacks.
        let perm: Vec<i64> = target
            .iter()
            .flatten()
            .filter_map(|c| term.iter().position(|x| x == c).map(|p| p as i64))
            .collect();
        if let Some(perm) = non_identity(perm) {
            let op = Transpose { perm: Some(perm) };
            v = b.node(&format!("{side}_perm"), op, &[v])?;
        }
        let missing: Vec<i64> = (0..target.len())
            .filter(|&p| target[p].is_none())
            .map(|p| p as i64)
            .collect();
        if !missing.is_empty() {
            let axes = b.axes(&format!("{side}_unsqueeze_axes"), &missing);
            v = b.node(&format!("{side}_unsqueeze"), Unsqueeze {}, &[v, axes])?;
        }
        operands[i] = v;
    }
    // The matmul result's slots, and what is left to do to reach the output order.
    let nb = plan.batch.len();
    let mut slots: Vec<Option<u8>> = plan.batch.iter().map(|&c| Some(c)).collect();
    slots.extend([plan.l, plan.r]);
    let squeeze: Vec<i64> = [(nb, plan.l), (nb + 1, plan.r)]
        .into_iter()
        .filter(|(_, s)| s.is_none())
        .map(|(p, _)| p as i64)
        .collect();
    let present: Vec<u8> = slots.iter().flatten().copied().collect();
    let perm: Vec<i64> = plan
        .output
        .iter()
        .filter_map(|c| present.iter().position(|x| x == c).map(|p| p as i64))
        .collect();
    let perm = non_identity(perm);
    let mut steps: Vec<(&str, Op, Option<Vec<i64>>)> = vec![("matmul", MatMul {}.into(), None)];
    if !squeeze.is_empty() {
        steps.push(("squeeze", Squeeze {}.into(), Some(squeeze)));
    }
    if let Some(perm) = perm {
        steps.push(("out_perm", Transpose { perm: Some(perm) }.into(), None));
    }
    let last = steps.len() - 1;
    let mut v = None;
    for (k, (name, op, axes)) in steps.into_iter().enumerate() {
        let mut inputs = match v {
            None => vec![operands[0], operands[1]],
            Some(v) => vec![v],
        };
        if let Some(axes) = axes {
            inputs.push(b.axes(&format!("{name}_axes"), &axes));
        }
        if k == last {
            b.define(name, op, &inputs, out)?;
        } else {
            v = Some(b.node(name, op, &inputs)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use carve_ir::text;

    fn decompose(src: &str) -> (Graph, DecomposeStats) {
        let mut g = text::parse(src).expect("test graph parses");
        let stats = decompose_einsum(&mut g).expect("decomposes");
        carve_ir::verify::verify(&g).expect("verifies");
        (g, stats)
    }

    fn ops(g: &Graph) -> Vec<&'static str> {
        g.nodes
            .iter()
            .map(|n| n.op.name())
            .filter(|&n| n != "const")
            .collect()
    }

    #[test]
    fn dfn3_grouped_linear_becomes_transpose_matmul_transpose() {
        let (g, stats) = decompose(
            "graph @g(%x: f32[1,S,4,3], %w: f32[4,3,5]) -> (f32[1,S,4,5]) {
  %0 = einsum(%x, %w) {equation=\"btgi,gih->btgh\"} : f32[1,S,4,5]
  %1 = relu(%0) : f32[1,S,4,5]
  return %1
}
",
        );
        assert_eq!(stats.decomposed, 1);
        assert_eq!(
            ops(&g),
            ["transpose", "unsqueeze", "matmul", "transpose", "relu"]
        );
        let printed = text::print(&g);
        assert_eq!(printed.matches("perm=[0, 2, 1, 3]").count(), 2, "{printed}");
        assert!(printed.contains(": f32[1,4,S,3]"), "{printed}");
        assert!(printed.contains(": f32[1,4,S,5]"), "{printed}");
        assert!(printed.contains(": f32[1,S,4,5]"), "{printed}");
        // The relu still reads the value the einsum defined; node names derive from the einsum's.
        let last = &g.nodes[g.nodes.len() - 2];
        assert_eq!(last.op.name(), "transpose");
        assert_eq!(g.nodes[g.nodes.len() - 1].inputs[0], Some(last.outputs[0]));
    }

    #[test]
    fn plain_matmul_needs_nothing_else() {
        let (g, _) = decompose(
            "graph @g(%a: f32[2,3], %b: f32[3,4]) -> (f32[2,4]) {
  %0 = einsum(%a, %b) {equation=\"ij,jk->ik\"} : f32[2,4]
  return %0
}
",
        );
        assert_eq!(ops(&g), ["matmul"]);
        assert_eq!(g.outputs[0], g.nodes[0].outputs[0]);
    }

    #[test]
    fn dot_and_outer_products_get_size_one_axes() {
        let (g, _) = decompose(
            "graph @g(%a: f32[3], %b: f32[3]) -> (f32[]) {
  %0 = einsum(%a, %b) {equation=\"i,i->\"} : f32[]
  return %0
}
",
        );
        assert_eq!(ops(&g), ["unsqueeze", "unsqueeze", "matmul", "squeeze"]);
        let (g, _) = decompose(
            "graph @g(%a: f32[3], %b: f32[4]) -> (f32[3,4]) {
  %0 = einsum(%a, %b) {equation=\"i,j->ij\"} : f32[3,4]
  return %0
}
",
        );
        assert_eq!(ops(&g), ["unsqueeze", "unsqueeze", "matmul"]);
    }

    #[test]
    fn private_labels_are_summed_first() {
        let (g, _) = decompose(
            "graph @g(%a: f32[2,3,5], %b: f32[3,4]) -> (f32[2,4]) {
  %0 = einsum(%a, %b) {equation=\"ijx,jk->ik\"} : f32[2,4]
  return %0
}
",
        );
        assert_eq!(ops(&g), ["reduce", "matmul"]);
    }

    #[test]
    fn unsupported_equations_stay_einsum() {
        for (eq, a, b, o) in [
            ("ii,i->i", "f32[3,3]", "f32[3]", "f32[3]"),
            ("...ij,jk->...ik", "f32[2,3]", "f32[3,4]", "f32[2,4]"),
            ("ijk,jk->i", "f32[2,3,4]", "f32[3,4]", "f32[2]"),
            ("ij,jk", "f32[2,3]", "f32[3,4]", "f32[2,4]"),
            ("ij,jk->ik", "i32[2,3]", "i32[3,4]", "i32[2,4]"),
            // einsum broadcasts the size-1 contracted dim, matmul would not.
            ("ij,jk->ik", "f32[2,1]", "f32[3,4]", "f32[2,4]"),
        ] {
            let src = format!(
                "graph @g(%a: {a}, %b: {b}) -> ({o}) {{\n  %0 = einsum(%a, %b) {{equation=\"{eq}\"}} : {o}\n  return %0\n}}\n"
            );
            let (g, stats) = decompose(&src);
            assert_eq!(ops(&g), ["einsum"], "{eq}");
            assert_eq!(stats.kept, 1, "{eq}");
        }
    }

    #[test]
    fn nodes_stay_in_schedule_order_with_several_einsums() {
        let (g, stats) = decompose(
            "graph @g(%a: f32[2,3], %b: f32[3,4], %c: f32[5,4]) -> (f32[2,5]) {
  %0 = einsum(%a, %b) {equation=\"ij,jk->ik\"} : f32[2,4]
  %1 = relu(%0) : f32[2,4]
  %2 = einsum(%1, %c) {equation=\"ik,nk->in\"} : f32[2,5]
  return %2
}
",
        );
        assert_eq!(stats.decomposed, 2);
        assert_eq!(ops(&g), ["matmul", "relu", "transpose", "matmul"]);
    }
}
