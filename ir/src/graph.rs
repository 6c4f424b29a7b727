//! The graph: SSA values with types, nodes in schedule (topological) order, and nested subgraphs that
//! capture values of their parent explicitly.

use crate::infer::{InferCtx, InferError};
use crate::{Constant, Op, Type};

/// Index of a value in its graph's value table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// Index of a node in its graph's node list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl ValueId {
    /// As a `usize` index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl NodeId {
    /// As a `usize` index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An SSA value.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The source name (ONNX value name), kept for error messages and export. Not necessarily unique.
    pub name: String,
    /// Its type.
    pub ty: Type,
    /// The node and output index that defines it; `None` for graph inputs and captures.
    pub producer: Option<(NodeId, u32)>,
}

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The source node name (may be empty).
    pub name: String,
    /// The operation with its typed attributes.
    pub op: Op,
    /// Operands; `None` is an omitted optional input.
    pub inputs: Vec<Option<ValueId>>,
    /// Results.
    pub outputs: Vec<ValueId>,
}

/// A value of the parent graph made visible inside a subgraph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capture {
    /// The value inside this graph.
    pub inner: ValueId,
    /// The value in the immediately enclosing graph.
    pub outer: ValueId,
}

/// A graph of operations over SSA values. Nodes are kept in a valid schedule order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    /// Graph name.
    pub name: String,
    /// Runtime inputs, in order.
    pub inputs: Vec<ValueId>,
    /// Results, in order.
    pub outputs: Vec<ValueId>,
    /// Values of the parent graph used inside this one (empty for a top-level graph).
    pub captures: Vec<Capture>,
    /// Value table.
    pub values: Vec<Value>,
    /// Nodes in schedule order.
    pub nodes: Vec<Node>,
}

impl Graph {
    /// An empty graph.
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Graph::default()
        }
    }

    /// The value `v`.
    pub fn value(&self, v: ValueId) -> &Value {
        &self.values[v.index()]
    }

    /// The type of `v`.
    pub fn ty(&self, v: ValueId) -> &Type {
        &self.values[v.index()].ty
    }

    /// Adds a value with no producer (an input or capture; or an output slot filled by [`Graph::push_node`]).
    pub fn add_value(&mut self, name: impl Into<String>, ty: Type) -> ValueId {
        let id = ValueId(self.values.len() as u32);
        self.values.push(Value {
            name: name.into(),
            ty,
            producer: None,
        });
        id
    }

    /// Adds a graph input.
    pub fn add_input(&mut self, name: impl Into<String>, ty: Type) -> ValueId {
        let id = self.add_value(name, ty);
        self.inputs.push(id);
        id
    }

    /// Appends `node`, whose output values already exist in the value table, and records their producer.
    pub fn push_node(&mut self, node: Node) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        for (k, &o) in node.outputs.iter().enumerate() {
            self.values[o.index()].producer = Some((id, k as u32));
        }
        self.nodes.push(node);
        id
    }

    /// Runs type inference for `op` on `inputs` and appends the node, creating one output value per name.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: Vec<Option<ValueId>>,
        output_names: Vec<String>,
    ) -> Result<Vec<ValueId>, InferError> {
        let name = name.into();
        let types = {
            let cx = InferCtx::new(self, &name, &op, &inputs, output_names.len());
            op.infer(&cx)?
        };
        if types.len() != output_names.len() {
            return Err(InferError::new(
                &name,
                op.name(),
                format!(
                    "inference produced {} outputs, the node has {}",
                    types.len(),
                    output_names.len()
                ),
            ));
        }
        let outputs: Vec<ValueId> = output_names
            .into_iter()
            .zip(types)
            .map(|(n, t)| self.add_value(n, t))
            .collect();
        self.push_node(Node {
            name,
            op,
            inputs,
            outputs: outputs.clone(),
        });
        Ok(outputs)
    }

    /// Adds a constant node and returns its value.
    pub fn add_const(&mut self, name: impl Into<String>, c: Constant) -> ValueId {
        let name = name.into();
        let v = self.add_value(name.clone(), Type::Tensor(c.ty.clone()));
        self.push_node(Node {
            name,
            op: Op::Constant(c),
            inputs: Vec::new(),
            outputs: vec![v],
        });
        v
    }

    /// The constant that defines `v`, if `v` is the output of a constant node.
    pub fn constant_of(&self, v: ValueId) -> Option<&Constant> {
        let (n, _) = self.values.get(v.index())?.producer?;
        match &self.nodes.get(n.index())?.op {
            Op::Constant(c) => Some(c),
            _ => None,
        }
    }

    /// The node that defines `v`, if any.
    pub fn producer(&self, v: ValueId) -> Option<&Node> {
        let (n, _) = self.values.get(v.index())?.producer?;
        self.nodes.get(n.index())
    }

    /// Recomputes every producer link from the node list (after a pass rewrote `nodes`).
    pub fn rebuild_producers(&mut self) {
        for v in &mut self.values {
            v.producer = None;
        }
        for (i, n) in self.nodes.iter().enumerate() {
            for (k, &o) in n.outputs.iter().enumerate() {
                self.values[o.index()].producer = Some((NodeId(i as u32), k as u32));
            }
        }
    }

    /// Re-runs type inference over every node in order, replacing each output type with the inferred one
    /// refined by what was stored (stored concrete dims are kept where inference only knows less).
    /// Used after binding input shapes.
    pub fn reinfer(&mut self) -> Result<(), InferError> {
        for i in 0..self.nodes.len() {
            let types = {
                let n = &self.nodes[i];
                let cx = InferCtx::new(self, &n.name, &n.op, &n.inputs, n.outputs.len());
                n.op.infer(&cx)?
            };
            let outs = self.nodes[i].outputs.clone();
            for (o, t) in outs.into_iter().zip(types) {
                let old = &self.values[o.index()].ty;
                let t = if crate::infer::compatible(&t, old) {
                    crate::infer::refine(&t, old)
                } else {
                    t
                };
                self.values[o.index()].ty = t;
            }
        }
        Ok(())
    }

    /// Number of nodes, including those of nested subgraphs.
    pub fn node_count_recursive(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| {
                1 + n
                    .op
                    .subgraphs()
                    .iter()
                    .map(|g| g.node_count_recursive())
                    .sum::<usize>()
            })
            .sum()
    }
}
