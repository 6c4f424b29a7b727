//! Compute estimates of a graph (multiply-accumulates, FLOPs and bytes moved) from static shapes, used
//! by `carve inspect`. The counts are the ops' own ([`carve_ir::Op::work`], the estimate the e-graph cost
//! model also uses): matrix products, convolutions and recurrent layers count multiply-accumulates (2
//! FLOPs each), other ops their arithmetic (a transcendental function counts as one FLOP). Nodes whose
//! shapes are not static are counted as unknown.

use carve_ir::ops::{NodeTypes, Sizes};
use carve_ir::{Graph, Node, Type};

/// The estimate for a graph.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GraphCost {
    /// Multiply-accumulates in matrix products, convolutions and recurrent layers.
    pub macs: u64,
    /// Floating-point (or integer) operations in all nodes: 2 per multiply-accumulate plus the rest.
    pub flops: u64,
    /// Bytes the nodes read and write (every input read once, every output written once; views none).
    pub bytes: u64,
    /// Nodes left out because their shapes are not static.
    pub unknown_nodes: usize,
}

/// (MACs, FLOPs, bytes) of one node, or `None` if its shapes are not static.
fn node_cost(g: &Graph, n: &Node) -> Option<(u64, u64, u64)> {
    let inputs: Vec<Option<&Type>> = n.inputs.iter().map(|v| v.map(|v| g.ty(v))).collect();
    let outputs: Vec<Type> = n.outputs.iter().map(|&o| g.ty(o).clone()).collect();
    let w = n.op.work(&NodeTypes {
        inputs: &inputs,
        outputs: &outputs,
        sizes: Sizes::EXACT,
    })?;
    // The counts are integers (f64 holds them exactly below 2⁵³); `as` saturates beyond u64.
    Some((w.macs as u64, w.total_flops() as u64, w.bytes() as u64))
}

/// Estimates the compute of `g` (subgraph bodies counted once).
pub fn estimate_graph(g: &Graph) -> GraphCost {
    let mut c = GraphCost::default();
    for n in &g.nodes {
        match node_cost(g, n) {
            Some((m, f, b)) => {
                c.macs = c.macs.saturating_add(m);
                c.flops = c.flops.saturating_add(f);
                c.bytes = c.bytes.saturating_add(b);
            }
            None => c.unknown_nodes += 1,
        }
        for sg in n.op.subgraphs() {
            let s = estimate_graph(sg);
            c.macs = c.macs.saturating_add(s.macs);
            c.flops = c.flops.saturating_add(s.flops);
            c.bytes = c.bytes.saturating_add(s.bytes);
            c.unknown_nodes += s.unknown_nodes;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use carve_ir::ops::conv::Conv;
    use carve_ir::ops::elementwise::Relu;
    use carve_ir::ops::linalg::MatMul;
    use carve_ir::ops::movement::Reshape;
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
        // 2 FLOPs per MAC plus one addition per output element (accumulator start / bias).
        assert_eq!(cost.flops, 2 * cost.macs + 4 * 8 * 8 + 2 * 7);
        // f32 operands: x, w, y of the conv; m, k, z of the matmul (constants produce no work).
        let conv_bytes = 4 * (3 * 8 * 8 + 108 + 4 * 8 * 8);
        let mm_bytes = 4 * (2 * 5 + 35 + 2 * 7);
        assert_eq!(cost.bytes, conv_bytes + mm_bytes);
        assert_eq!(cost.unknown_nodes, 0);
    }

    #[test]
    fn views_are_free_elementwise_counts_per_element_and_symbolic_shapes_are_unknown() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", TensorType::known(DType::F32, &[2, 6]).into());
        let r = g
            .add_node("r", Relu {}.into(), vec![Some(x)], vec!["r".into()])
            .unwrap()[0];
        let shape = g.add_const("s", Constant::from_i64s(&[1], &[12]));
        g.add_node(
            "v",
            Reshape::default().into(),
            vec![Some(r), Some(shape)],
            vec!["v".into()],
        )
        .unwrap();
        let cost = estimate_graph(&g);
        assert_eq!((cost.macs, cost.flops), (0, 12));
        assert_eq!(cost.bytes, 2 * 12 * 4);
        assert_eq!(cost.unknown_nodes, 0);

        let mut g = Graph::new("sym");
        let x = g.add_input(
            "x",
            TensorType::new(
                DType::F32,
                carve_ir::Shape(vec![
                    carve_ir::Dim::Sym("N".into()),
                    carve_ir::Dim::Known(4),
                ]),
            )
            .into(),
        );
        g.add_node("r", Relu {}.into(), vec![Some(x)], vec!["r".into()])
            .unwrap();
        let cost = estimate_graph(&g);
        assert_eq!(cost.unknown_nodes, 1);
        assert_eq!(cost.flops, 0);
    }
}
