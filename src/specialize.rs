//! Value specialization: native code for nodes that need an input's *value* at compile time.
//!
//! Some lowerings need an operand as a compile-time constant — reduction axes, resize scales or sizes,
//! slice starts/ends, pads, a depthwise or transposed convolution's weight, a recurrent cell's weights.
//! Models normally carry these as initializers; when one is a **graph input** instead (as in the ONNX
//! node tests, or a model that takes its axes or a weight from the caller), the node falls back to the
//! interpreter. The JIT then specializes on the value: when an instance has fallback nodes (or a
//! segment boundary) that read such an input directly, [`candidates`] names the inputs, and the
//! compiled model builds one more instance per distinct value of them ([`bind_values`]: the input is
//! still fed but no node reads it; a constant with its value takes its place), keeps it only if it
//! runs more nodes natively, and caches it (at most [`crate::compiler::SHAPE_CACHE`] values per shape
//! binding; after that, and whenever specializing does not help, the generic instance runs).
//!
//! What qualifies: a static tensor input of at most [`MAX_ELEMENTS`] elements, not captured by a
//! subgraph, read by a node that does not run natively **and that also reads a run-time value that is
//! not itself specialized** — so the node still computes at run time on live data; specializing never
//! turns a node's whole computation into a compile-time constant.

use std::collections::BTreeSet;

use carve_ir::{Constant, Graph, Node, Op, Type, ValueId};

/// Largest input (in elements) that is specialized by value.
pub const MAX_ELEMENTS: u64 = 4096;

/// Positions of the graph inputs worth specializing by value. `wants` lists the nodes (by name) that
/// do not run natively with the inputs (by index) whose values they need: a fallback's
/// [`carve_codegen::FallbackNode::needs_constant`], or a segment boundary's integer operands.
/// Empty when none qualifies.
pub fn candidates(g: &Graph, wants: &[(String, Vec<usize>)]) -> Vec<usize> {
    let small: BTreeSet<ValueId> = g
        .inputs
        .iter()
        .copied()
        .filter(|&v| is_small_static(g, v) && !captured(g, v))
        .collect();
    let mut wanted = BTreeSet::new();
    for (name, idx) in wants {
        for n in g.nodes.iter().filter(|n| &n.name == name) {
            let want: BTreeSet<ValueId> = idx
                .iter()
                .filter_map(|&i| n.inputs.get(i).copied().flatten())
                .filter(|v| small.contains(v))
                .collect();
            let live = n
                .inputs
                .iter()
                .flatten()
                .any(|v| !want.contains(v) && g.constant_of(*v).is_none());
            if live {
                wanted.extend(want);
            }
        }
    }
    g.inputs
        .iter()
        .enumerate()
        .filter(|(_, v)| wanted.contains(v))
        .map(|(i, _)| i)
        .collect()
}

/// The integer operands of node `name` (what a data-dependent shape at a segment boundary can depend
/// on: axes, shapes, sizes, counts).
pub fn integer_operands(g: &Graph, name: &str) -> Vec<usize> {
    let Some(n) = g.nodes.iter().find(|n| n.name == name) else {
        return Vec::new();
    };
    n.inputs
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            v.and_then(|v| g.ty(v).as_tensor())
                .is_some_and(|t| t.dtype.is_int())
        })
        .map(|(i, _)| i)
        .collect()
}

/// True if `v` is a tensor of known dims with at most [`MAX_ELEMENTS`] elements.
fn is_small_static(g: &Graph, v: ValueId) -> bool {
    match g.ty(v) {
        Type::Tensor(t) => t
            .shape
            .as_ref()
            .and_then(|s| s.num_elements())
            .is_some_and(|n| n <= MAX_ELEMENTS),
        _ => false,
    }
}

/// True if a subgraph of some node captures `v` (those reads cannot be rewired to a constant here).
fn captured(g: &Graph, v: ValueId) -> bool {
    g.nodes.iter().any(|n| {
        n.op.subgraphs()
            .iter()
            .any(|sg| sg.captures.iter().any(|c| c.outer == v))
    })
}

/// `g` with the inputs at the given positions replaced, for every node that reads them, by constants
/// holding `values` (placed first in the schedule). The inputs stay in the graph's signature, unread.
pub fn bind_values(g: &Graph, values: &[(usize, Constant)]) -> Graph {
    let mut g = g.clone();
    let mut consts = Vec::with_capacity(values.len());
    for (pos, c) in values {
        let Some(&v) = g.inputs.get(*pos) else {
            continue;
        };
        let name = format!("{}.value", g.value(v).name);
        let id = g.add_value(name.clone(), Type::Tensor(c.ty.clone()));
        consts.push(Node {
            name,
            op: Op::Constant(c.clone()),
            inputs: Vec::new(),
            outputs: vec![id],
        });
        for n in &mut g.nodes {
            for x in n.inputs.iter_mut().flatten() {
                if *x == v {
                    *x = id;
                }
            }
        }
    }
    g.nodes.splice(0..0, consts);
    g.rebuild_producers();
    g
}

#[cfg(test)]
mod tests {
    use carve_ir::ops::elementwise::Add;
    use carve_ir::ops::reduce::{Reduce, ReduceKind};
    use carve_ir::{DType, TensorType};

    use super::*;

    fn reduce_graph() -> Graph {
        let mut g = Graph::new("t");
        let x = g.add_input("x", Type::Tensor(TensorType::known(DType::F32, &[2, 3])));
        let axes = g.add_input("axes", Type::Tensor(TensorType::known(DType::I64, &[1])));
        let op = Reduce {
            kind: ReduceKind::Sum,
            ..Reduce::default()
        };
        let y = g
            .add_node("r", op.into(), vec![Some(x), Some(axes)], vec!["y".into()])
            .unwrap_or_else(|e| panic!("{e}"));
        g.outputs = y;
        g
    }

    #[test]
    fn only_inputs_a_non_native_node_needs_qualify_and_it_keeps_live_data() {
        let g = reduce_graph();
        let wants = |idx: Vec<usize>| vec![("r".to_string(), idx)];
        assert_eq!(candidates(&g, &wants(vec![1])), vec![1]);
        assert_eq!(integer_operands(&g, "r"), vec![1]);
        // Nothing is needed by a native graph; a node that would be left with no run-time data
        // (every operand specialized) specializes nothing.
        assert!(candidates(&g, &[]).is_empty());
        assert!(candidates(&g, &wants(vec![0, 1])).is_empty());
        // Too large to specialize.
        let mut big = g.clone();
        let axes = big.inputs[1];
        big.values[axes.index()].ty = Type::Tensor(TensorType::known(DType::I64, &[5000]));
        assert!(candidates(&big, &wants(vec![1])).is_empty());
    }

    #[test]
    fn bound_values_replace_every_read_and_keep_the_signature() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", Type::Tensor(TensorType::known(DType::F32, &[3])));
        let b = g.add_input("b", Type::Tensor(TensorType::known(DType::F32, &[3])));
        let y = g
            .add_node(
                "add",
                Add {}.into(),
                vec![Some(x), Some(b)],
                vec!["y".into()],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        g.outputs = y;
        let c = Constant::from_f32s(&[3], &[1.0, 2.0, 3.0]);
        let s = bind_values(&g, &[(1, c.clone())]);
        assert_eq!(s.inputs, g.inputs);
        assert!(matches!(&s.nodes[0].op, Op::Constant(k) if *k == c));
        assert_eq!(s.nodes[1].inputs[0], Some(x));
        assert_eq!(s.nodes[1].inputs[1], Some(s.nodes[0].outputs[0]));
        assert_eq!(s.constant_of(s.nodes[1].inputs[1].unwrap_or(x)), Some(&c));
    }
}
