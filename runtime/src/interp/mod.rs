//! The reference interpreter: the executable definition of every IR op. It runs a verified graph node by
//! node in schedule order, freeing each value after its last use. Kernels live in one file per op family,
//! mirroring `carve_ir::ops`; each exposes `eval(op, cx)`. Results never depend on thread count (the
//! interpreter is single-threaded).

pub mod activation;
pub mod control;
pub mod conv;
pub mod elementwise;
pub mod fused;
pub mod linalg;
pub mod misc;
pub mod movement;
pub mod norm;
pub mod quant;
pub mod reduce;
pub mod rnn;
pub mod signal;
pub mod util;

use std::sync::Arc;

use carve_ir::{Graph, Op, Type};

use crate::tensor::{Tensor, TensorError};

/// A runtime value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A tensor.
    Tensor(Tensor),
    /// A sequence of values.
    Sequence(Vec<Value>),
    /// An optional value.
    Optional(Option<Box<Value>>),
}

impl Value {
    /// The tensor, if this is one.
    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self {
            Value::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// A short description for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Tensor(_) => "tensor",
            Value::Sequence(_) => "sequence",
            Value::Optional(_) => "optional",
        }
    }
}

impl From<Tensor> for Value {
    fn from(t: Tensor) -> Value {
        Value::Tensor(t)
    }
}

/// A failure while running a graph, naming the node and op.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("node '{node}' ({op}): {msg}")]
pub struct RunError {
    /// Node name.
    pub node: String,
    /// Op name.
    pub op: String,
    /// What went wrong.
    pub msg: String,
}

/// What a kernel sees: its node's input values, output types and a way to run subgraphs.
pub struct EvalCtx<'a> {
    node: &'a str,
    op: &'static str,
    inputs: Vec<Option<&'a Value>>,
    /// The IR types of the input slots (`None` for empty slots; quantization lives in them).
    input_types: Vec<Option<&'a Type>>,
    outputs: Vec<&'a Type>,
    env: &'a [Option<Arc<Value>>],
    depth: usize,
}

/// Subgraph nesting deeper than this at run time is refused (Loop bodies calling Loops, ...).
const MAX_DEPTH: usize = 64;

impl<'a> EvalCtx<'a> {
    /// An error for this node.
    pub fn err(&self, msg: impl Into<String>) -> RunError {
        RunError {
            node: self.node.to_string(),
            op: self.op.to_string(),
            msg: msg.into(),
        }
    }

    /// Number of input slots.
    pub fn num_inputs(&self) -> usize {
        self.inputs.len()
    }

    /// Number of outputs the node has.
    pub fn num_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// The IR type of output `k`.
    pub fn output_type(&self, k: usize) -> Option<&'a Type> {
        self.outputs.get(k).copied()
    }

    /// The IR type of input `i`, if the slot is filled (quantized operands carry their scale and zero
    /// point here).
    pub fn input_type(&self, i: usize) -> Option<&'a Type> {
        self.input_types.get(i).copied().flatten()
    }

    /// Input `i`, if present.
    pub fn value(&self, i: usize) -> Option<&'a Value> {
        self.inputs.get(i).copied().flatten()
    }

    /// True if input `i` is present.
    pub fn has(&self, i: usize) -> bool {
        self.value(i).is_some()
    }

    /// Required tensor input `i`.
    pub fn tensor(&self, i: usize) -> Result<&'a Tensor, RunError> {
        match self.value(i) {
            Some(Value::Tensor(t)) => Ok(t),
            Some(v) => Err(self.err(format!("input {i} must be a tensor, got a {}", v.kind()))),
            None => Err(self.err(format!("input {i} is required"))),
        }
    }

    /// Optional tensor input `i`.
    pub fn opt_tensor(&self, i: usize) -> Result<Option<&'a Tensor>, RunError> {
        if self.has(i) {
            self.tensor(i).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Integer values of tensor input `i` (any integer dtype).
    pub fn i64s(&self, i: usize) -> Result<Vec<i64>, RunError> {
        util::to_i64(self.tensor(i)?).map_err(|e| self.err(format!("input {i}: {e}")))
    }

    /// Runs subgraph `g` (a body or branch of this node) on `inputs`; its captures are read from the
    /// enclosing graph's values.
    pub fn run_subgraph(&self, g: &Graph, inputs: Vec<Value>) -> Result<Vec<Value>, RunError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.err("subgraphs nest too deep at run time"));
        }
        let mut captured = Vec::with_capacity(g.captures.len());
        for c in &g.captures {
            let v = self
                .env
                .get(c.outer.index())
                .and_then(|v| v.clone())
                .ok_or_else(|| {
                    self.err(format!("captured value #{} is not available", c.outer.0))
                })?;
            captured.push(v);
        }
        run_graph(
            g,
            inputs.into_iter().map(Arc::new).collect(),
            captured,
            self.depth + 1,
        )
    }
}

/// The error a family returns for an op it has no kernel for yet (the conformance harness reports these
/// separately from wrong answers).
pub fn no_kernel(cx: &EvalCtx) -> RunError {
    cx.err(NO_KERNEL)
}

/// Message of [`no_kernel`] errors.
pub const NO_KERNEL: &str = "the interpreter has no kernel for this op yet";

/// Converts a tensor error into a node error.
pub fn tensor_err(cx: &EvalCtx, e: TensorError) -> RunError {
    cx.err(e.0)
}

/// Runs `graph` on `inputs` (one per graph input, in order) and returns its outputs.
pub fn run(graph: &Graph, inputs: Vec<Value>) -> Result<Vec<Value>, RunError> {
    run_graph(
        graph,
        inputs.into_iter().map(Arc::new).collect(),
        Vec::new(),
        0,
    )
}

/// Evaluates one node of `graph` on its input values (`inputs[k]` for input slot `k`, `None` where the
/// slot is empty). `env` maps value indices of `graph` to values; it must hold every value the node's
/// subgraphs capture (it may be empty for nodes without subgraphs). Used by code generators to run a
/// node they have no native kernel for, and to fold constants at compile time.
pub fn eval_node(
    graph: &Graph,
    node: &carve_ir::Node,
    inputs: Vec<Option<&Value>>,
    env: &[Option<Arc<Value>>],
) -> Result<Vec<Value>, RunError> {
    let cx = EvalCtx {
        node: &node.name,
        op: node.op.name(),
        inputs,
        input_types: node.inputs.iter().map(|v| v.map(|v| graph.ty(v))).collect(),
        outputs: node.outputs.iter().map(|&o| graph.ty(o)).collect(),
        env,
        depth: 0,
    };
    let out = eval(&node.op, &cx)?;
    if out.len() < node.outputs.len() {
        return Err(cx.err(format!(
            "kernel produced {} outputs, the node has {}",
            out.len(),
            node.outputs.len()
        )));
    }
    Ok(out)
}

fn graph_err(g: &Graph, msg: impl Into<String>) -> RunError {
    RunError {
        node: String::new(),
        op: format!("graph {}", g.name),
        msg: msg.into(),
    }
}

fn run_graph(
    g: &Graph,
    inputs: Vec<Arc<Value>>,
    captures: Vec<Arc<Value>>,
    depth: usize,
) -> Result<Vec<Value>, RunError> {
    if inputs.len() != g.inputs.len() {
        return Err(graph_err(
            g,
            format!("expects {} inputs, got {}", g.inputs.len(), inputs.len()),
        ));
    }
    // Last use of each value (node index), so values can be freed early; outputs live to the end.
    let mut last_use = vec![0usize; g.values.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        for v in n.inputs.iter().flatten() {
            last_use[v.index()] = i;
        }
        for sg in n.op.subgraphs() {
            for c in &sg.captures {
                if let Some(slot) = last_use.get_mut(c.outer.index()) {
                    *slot = (*slot).max(i);
                }
            }
        }
    }
    for &o in &g.outputs {
        last_use[o.index()] = usize::MAX;
    }
    let mut env: Vec<Option<Arc<Value>>> = vec![None; g.values.len()];
    for (&v, x) in g.inputs.iter().zip(inputs) {
        env[v.index()] = Some(x);
    }
    for (c, x) in g.captures.iter().zip(captures) {
        env[c.inner.index()] = Some(x);
    }
    for (i, n) in g.nodes.iter().enumerate() {
        let outputs: Vec<Value> = {
            let mut ins = Vec::with_capacity(n.inputs.len());
            for (k, v) in n.inputs.iter().enumerate() {
                ins.push(match v {
                    Some(v) => Some(env[v.index()].as_deref().ok_or_else(|| RunError {
                        node: n.name.clone(),
                        op: n.op.name().to_string(),
                        msg: format!("input {k} has no value (freed or never computed)"),
                    })?),
                    None => None,
                });
            }
            let cx = EvalCtx {
                node: &n.name,
                op: n.op.name(),
                inputs: ins,
                input_types: n.inputs.iter().map(|v| v.map(|v| g.ty(v))).collect(),
                outputs: n.outputs.iter().map(|&o| g.ty(o)).collect(),
                env: &env,
                depth,
            };
            let out = eval(&n.op, &cx)?;
            if out.len() < n.outputs.len() {
                return Err(cx.err(format!(
                    "kernel produced {} outputs, the node has {}",
                    out.len(),
                    n.outputs.len()
                )));
            }
            out
        };
        for (&o, v) in n.outputs.iter().zip(outputs) {
            env[o.index()] = Some(Arc::new(v));
        }
        for v in n.inputs.iter().flatten() {
            if last_use[v.index()] == i {
                env[v.index()] = None;
            }
        }
    }
    g.outputs
        .iter()
        .map(|o| {
            env[o.index()]
                .as_ref()
                .map(|v| (**v).clone())
                .ok_or_else(|| graph_err(g, format!("output value #{} was not computed", o.0)))
        })
        .collect()
}

fn eval(op: &Op, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    match op {
        Op::Constant(c) => Ok(vec![Value::Tensor(
            Tensor::from_constant(c).map_err(|e| tensor_err(cx, e))?,
        )]),
        Op::Elementwise(o) => elementwise::eval(o, cx),
        Op::Reduce(o) => reduce::eval(o, cx),
        Op::Norm(o) => norm::eval(o, cx),
        Op::Linalg(o) => linalg::eval(o, cx),
        Op::Conv(o) => conv::eval(o, cx),
        Op::Movement(o) => movement::eval(o, cx),
        Op::Quant(o) => quant::eval(o, cx),
        Op::Rnn(o) => rnn::eval(o, cx),
        Op::Control(o) => control::eval(o, cx),
        Op::Signal(o) => signal::eval(o, cx),
        Op::Misc(o) => misc::eval(o, cx),
        Op::Fused(o) => fused::eval(o, cx),
    }
}
