//! Compute estimates per node (multiply-accumulates and floating-point operations) from static shapes,
//! used by `carve inspect`. Matrix products and convolutions count 2 FLOPs per MAC; other ops count one
//! operation per output element. Nodes whose shapes are not static are counted as unknown.

use carve_ir::ops::conv::ConvOp;
use carve_ir::ops::linalg::LinalgOp;
use carve_ir::ops::rnn::RnnOp;
use carve_ir::{Graph, Node, Op, Type, ValueId};

/// The estimate for a graph.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GraphCost {
    /// Multiply-accumulates in matrix products and convolutions.
    pub macs: u64,
    /// Floating-point (or integer) operations in all nodes.
    pub flops: u64,
    /// Nodes left out because their shapes are not static.
    pub unknown_nodes: usize,
}

fn numel(t: &Type) -> Option<u64> {
    t.as_tensor()?.shape.as_ref()?.num_elements()
}

fn dims(g: &Graph, v: Option<ValueId>) -> Option<Vec<u64>> {
    g.ty(v?).as_tensor()?.shape.as_ref()?.as_known()
}

/// Multiply-accumulates of a matrix-product or convolution node; `Some(0)` for other ops, `None` when
/// the shapes needed are not static.
fn node_macs(g: &Graph, n: &Node) -> Option<u64> {
    let input = |i: usize| n.inputs.get(i).copied().flatten();
    let out0 = || numel(g.ty(*n.outputs.first()?));
    let tail = |d: &[u64]| d.iter().skip(1).try_fold(1u64, |a, &x| a.checked_mul(x));
    match &n.op {
        // out[N,M,O..] each sums C/group × kernel products: w is [M, C/group, K..].
        Op::Conv(ConvOp::Conv(_)) => out0()?.checked_mul(tail(&dims(g, input(1))?)?),
        // Every input element scatters into M/group × kernel outputs: w is [C, M/group, K..].
        Op::Conv(ConvOp::ConvTranspose(_)) => {
            numel(g.ty(input(0)?))?.checked_mul(tail(&dims(g, input(1))?)?)
        }
        Op::Linalg(LinalgOp::MatMul(_)) => {
            let a = dims(g, input(0))?;
            out0()?.checked_mul(*a.last()?)
        }
        Op::Linalg(LinalgOp::Gemm(op)) => {
            let a = dims(g, input(0))?;
            let k = if op.trans_a { *a.first()? } else { *a.get(1)? };
            out0()?.checked_mul(k)
        }
        // Every time step of every sequence multiplies the input and hidden state by W and R.
        Op::Rnn(RnnOp::Lstm(_) | RnnOp::Gru(_) | RnnOp::Rnn(_)) => {
            let x = dims(g, input(0))?;
            let steps = numel(g.ty(input(0)?))? / (*x.last()?).max(1);
            let w = numel(g.ty(input(1)?))?;
            let r = numel(g.ty(input(2)?))?;
            steps.checked_mul(w.checked_add(r)?)
        }
        _ => Some(0),
    }
}

/// (MACs, FLOPs) of one node, or `None` if its shapes are not static.
fn node_cost(g: &Graph, n: &Node) -> Option<(u64, u64)> {
    if matches!(n.op, Op::Constant(_)) {
        return Some((0, 0));
    }
    let macs = node_macs(g, n)?;
    if macs > 0 {
        return Some((macs, macs.saturating_mul(2)));
    }
    let out: u64 = n
        .outputs
        .iter()
        .map(|&o| numel(g.ty(o)))
        .sum::<Option<u64>>()?;
    Some((0, out))
}

/// Estimates the compute of `g` (subgraph bodies counted once).
pub fn estimate_graph(g: &Graph) -> GraphCost {
    let mut c = GraphCost::default();
    for n in &g.nodes {
        match node_cost(g, n) {
            Some((m, f)) => {
                c.macs = c.macs.saturating_add(m);
                c.flops = c.flops.saturating_add(f);
            }
            None => c.unknown_nodes += 1,
        }
        for sg in n.op.subgraphs() {
            let s = estimate_graph(sg);
            c.macs = c.macs.saturating_add(s.macs);
            c.flops = c.flops.saturating_add(s.flops);
            c.unknown_nodes += s.unknown_nodes;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use carve_ir::ops::conv::Conv;
    use carve_ir::ops::linalg::MatMul;
    use carve_ir::{Constant, DType, TensorType};

    #[test]
    fn conv_and_matmul_count_multiply_accumulates() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", TensorType::known(DType::F32, &[1, 3, 8, 8]).into());
        let w = g.add_const("w", Constant::from_f32s(&[4, 3, 3, 3], &[0.0; 108]));
        let c = g.add_node(
            "c",
            Conv {
                pads: vec![1, 1, 1, 1],
                ..Conv::default()
            }
            .into(),
            vec![Some(x), Some(w)],
            vec!["y".into()],
        );
        let y = c.unwrap()[0];
        let m = g.add_input("m", TensorType::known(DType::F32, &[2, 5]).into());
        let k = g.add_const("k", Constant::from_f32s(&[5, 7], &[0.0; 35]));
        g.add_node(
            "mm",
            MatMul {}.into(),
            vec![Some(m), Some(k)],
            vec!["z".into()],
        )
        .unwrap();
        g.outputs = vec![y];
        let cost = estimate_graph(&g);
        assert_eq!(cost.macs, 4 * 8 * 8 * 27 + 2 * 7 * 5);
        assert_eq!(cost.flops, 2 * cost.macs);
        assert_eq!(cost.unknown_nodes, 0);
    }
}
