//! Decomposition of ops without a native kernel into ops that have one: two-operand `einsum`
//! ([`einsum`]), `attention` ([`attention`]) and the losses `nll_loss` / `softmax_cross_entropy_loss`
//! ([`loss`]).
//!
//! Every decomposition follows the same conventions (this module holds the shared machinery):
//!
//! - only the top-level graph is rewritten (ops inside subgraphs are left alone);
//! - the new nodes take the original node's place in the schedule, and the nodes that compute the
//!   original node's results define its output values (consumers and graph outputs are untouched);
//! - the names of new nodes and values derive from the node's name (`<name>/<op>_<step>`, or the
//!   first output's name when the node has none);
//! - a node whose form cannot be decomposed is left as it is and counted with the reason
//!   ([`DecomposeStats::reasons`]); a chain that fails to type-check is undone the same way.

mod attention;
mod einsum;
mod loss;

use std::collections::BTreeMap;
use std::ops::Range;

use carve_ir::infer::{InferCtx, compatible};
use carve_ir::{Buffer, Constant, DType, Graph, Node, Op, TensorType, ValueId};

use crate::PassError;

pub use attention::decompose_attention;
pub use einsum::decompose_einsum;
pub use loss::decompose_losses;

/// What one decomposition pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecomposeStats {
    /// Nodes replaced by a chain of ops with native kernels.
    pub decomposed: usize,
    /// Nodes left as they are.
    pub kept: usize,
    /// Why nodes were kept: reason → how many (sorted by reason, so reports are deterministic).
    pub reasons: BTreeMap<String, usize>,
}

impl DecomposeStats {
    /// Counts a kept node with its reason.
    fn keep(&mut self, reason: String) {
        self.kept += 1;
        *self.reasons.entry(reason).or_default() += 1;
    }

    /// A one-line summary for reports: `"N <what> decomposed into <into>, M kept (reason: k, ...)"`, or
    /// `None` when the pass saw no such node.
    pub fn summary(&self, what: &str, into: &str) -> Option<String> {
        if self.decomposed + self.kept == 0 {
            return None;
        }
        let mut s = format!(
            "{} {what} decomposed into {into}, {} kept",
            self.decomposed, self.kept
        );
        if !self.reasons.is_empty() {
            let r: Vec<String> = self
                .reasons
                .iter()
                .map(|(r, n)| format!("{r}: {n}"))
                .collect();
            s.push_str(&format!(" ({})", r.join("; ")));
        }
        Some(s)
    }
}

/// Rewrites every top-level node `i` whose op `select` accepts with the chain `emit(g, i)` appends
/// (`Err(reason)`: keep the node; whatever `emit` appended is undone), splices the chains into the
/// schedule in place of their nodes and re-infers shapes. `what` names the op in errors.
fn rewrite(
    g: &mut Graph,
    what: &str,
    select: impl Fn(&Op) -> bool,
    mut emit: impl FnMut(&mut Graph, usize) -> Result<(), String>,
) -> Result<DecomposeStats, PassError> {
    let mut stats = DecomposeStats::default();
    let original = g.nodes.len();
    // For each decomposed node: its index and the range of appended nodes that replace it.
    let mut replaced: Vec<(usize, Range<usize>)> = Vec::new();
    for i in 0..original {
        if !select(&g.nodes[i].op) {
            continue;
        }
        let start = g.nodes.len();
        let n_values = g.values.len();
        match emit(g, i) {
            Ok(()) => {
                replaced.push((i, start..g.nodes.len()));
                stats.decomposed += 1;
            }
            Err(reason) => {
                g.nodes.truncate(start);
                g.values.truncate(n_values);
                // A node of the undone chain may have claimed one of the original outputs.
                g.rebuild_producers();
                stats.keep(reason);
            }
        }
    }
    if replaced.is_empty() {
        return Ok(stats);
    }
    let mut appended: Vec<Option<Node>> = g.nodes.drain(original..).map(Some).collect();
    let old: Vec<Node> = std::mem::take(&mut g.nodes);
    let mut next = replaced.iter().peekable();
    for (i, n) in old.into_iter().enumerate() {
        match next.peek() {
            Some((at, range)) if *at == i => {
                for k in range.clone() {
                    if let Some(n) = appended[k - original].take() {
                        g.nodes.push(n);
                    }
                }
                next.next();
            }
            _ => g.nodes.push(n),
        }
    }
    g.rebuild_producers();
    g.reinfer()
        .map_err(|e| PassError::Decompose(format!("{what}: {e}")))?;
    Ok(stats)
}

/// The base of the names of everything a decomposition of node `at` creates: `<name>/<kind>`.
fn base_name(g: &Graph, at: usize, kind: &str) -> String {
    let node = &g.nodes[at];
    let base = match node.outputs.first() {
        Some(&o) if node.name.is_empty() => g.value(o).name.clone(),
        _ => node.name.clone(),
    };
    format!("{base}/{kind}")
}

/// The element type of `v`, if it is a tensor.
fn dtype_of(g: &Graph, v: ValueId) -> Option<DType> {
    g.ty(v).as_tensor().map(|t| t.dtype)
}

/// A dense constant of `dtype` (f32, f64, i64, i32 or bool) and shape `dims` from `values` (bools: non-zero
/// is true); `None` for other element types.
fn constant(dtype: DType, dims: &[u64], values: &[f64]) -> Option<Constant> {
    let mut bytes = Vec::with_capacity(values.len() * 8);
    for &v in values {
        match dtype {
            DType::F32 => bytes.extend_from_slice(&(v as f32).to_le_bytes()),
            DType::F64 => bytes.extend_from_slice(&v.to_le_bytes()),
            DType::I64 => bytes.extend_from_slice(&(v as i64).to_le_bytes()),
            DType::I32 => bytes.extend_from_slice(&(v as i32).to_le_bytes()),
            DType::Bool => bytes.push(u8::from(v != 0.0)),
            _ => return None,
        }
    }
    Constant::dense(TensorType::known(dtype, dims), Buffer::from_vec(bytes)).ok()
}

/// Appends typed nodes whose names derive from the decomposed node's.
struct Builder<'g> {
    g: &'g mut Graph,
    base: String,
}

impl<'g> Builder<'g> {
    /// A builder for the decomposition of node `at` (names `<name>/<kind>_<suffix>`).
    fn new(g: &'g mut Graph, at: usize, kind: &str) -> Builder<'g> {
        let base = base_name(g, at, kind);
        Builder { g, base }
    }

    fn name(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.base)
    }

    /// A constant node.
    fn konst(&mut self, suffix: &str, c: Constant) -> ValueId {
        let name = self.name(suffix);
        self.g.add_const(name, c)
    }

    /// An i64 vector constant.
    fn axes(&mut self, suffix: &str, axes: &[i64]) -> ValueId {
        self.konst(suffix, Constant::from_i64s(&[axes.len() as u64], axes))
    }

    /// A constant of `dtype` and shape `dims` (see [`constant`]).
    fn values(
        &mut self,
        suffix: &str,
        dtype: DType,
        dims: &[u64],
        values: &[f64],
    ) -> Result<ValueId, String> {
        let c = constant(dtype, dims, values)
            .ok_or_else(|| format!("no {dtype} constants in this decomposition"))?;
        Ok(self.konst(suffix, c))
    }

    /// A rank-0 constant of `dtype`.
    fn scalar(&mut self, suffix: &str, dtype: DType, v: f64) -> Result<ValueId, String> {
        self.values(suffix, dtype, &[], &[v])
    }

    /// A node with one new output value.
    fn node(
        &mut self,
        suffix: &str,
        op: impl Into<Op>,
        inputs: &[ValueId],
    ) -> Result<ValueId, String> {
        self.node_opt(suffix, op, inputs.iter().copied().map(Some).collect())
    }

    /// A node with one new output value and optional inputs.
    fn node_opt(
        &mut self,
        suffix: &str,
        op: impl Into<Op>,
        inputs: Vec<Option<ValueId>>,
    ) -> Result<ValueId, String> {
        let name = self.name(suffix);
        let outs = self
            .g
            .add_node(name.clone(), op.into(), inputs, vec![name])
            .map_err(|e| format!("a replacement node does not type-check: {e}"))?;
        outs.first()
            .copied()
            .ok_or_else(|| "a replacement node has no output".to_string())
    }

    /// A node defining the existing value `out` (one of the decomposed node's results); an error
    /// when its inferred type does not match `out`'s. Returns `out`.
    fn define(
        &mut self,
        suffix: &str,
        op: impl Into<Op>,
        inputs: &[ValueId],
        out: ValueId,
    ) -> Result<ValueId, String> {
        let name = self.name(suffix);
        let op = op.into();
        let inputs: Vec<Option<ValueId>> = inputs.iter().copied().map(Some).collect();
        let ty = {
            let cx = InferCtx::new(self.g, &name, &op, &inputs, 1);
            op.infer(&cx)
                .map_err(|e| format!("a replacement node does not type-check: {e}"))?
                .into_iter()
                .next()
                .ok_or_else(|| "a replacement node has no output".to_string())?
        };
        if !compatible(&ty, self.g.ty(out)) {
            return Err(format!(
                "the replacement computes {ty}, the result is {}",
                self.g.ty(out)
            ));
        }
        self.g.push_node(Node {
            name,
            op,
            inputs,
            outputs: vec![out],
        });
        Ok(out)
    }
}
