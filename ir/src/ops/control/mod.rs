//! Control flow, sequences and optionals: `if`, `loop`, `scan` and `sequence_map` (with subgraph bodies
//! that capture outer values explicitly), the sequence ops and the optional ops.
//!
//! Subgraph bodies drive inference: an op's result types come from its bodies' result types. Where a
//! value may come from more than one place (the two branches of `if`, the initial and the updated value
//! of a loop-carried dependency) the types are merged with [`merge_types`]: dims that differ become
//! unknown, ranks that differ become an unknown rank.
//!
//! Op-set choices: ONNX `Scan` is the opset-9+ form only (the opset-8 batched form with `sequence_lens`
//! is refused by the frontend); `Optional` without an input records its element type as `dtype` plus a
//! `sequence` flag (element shapes of an empty optional are not kept).
//!
//! The table of ops and the inference of `if`, `loop`, `scan` and the optional ops are here; the sequence
//! ops are in `sequence` (as in the interpreter's `runtime/src/interp/control/`).

mod sequence;
#[cfg(test)]
mod tests;

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError, SymInt, normalize_axis};
use crate::ops::movement::MovementOp;
use crate::{DType, Dim, Graph, Op, Shape, TensorType, Type, ValueId};

define_ops! {
    /// Control flow, sequence and optional ops.
    pub enum ControlOp {
        /// Runs `then_branch` when the bool scalar input 0 is true, else `else_branch`; the results are the
        /// branch's results. The branches take no inputs (they capture outer values).
        If = "if" { then_branch: Graph = Graph::default(), else_branch: Graph = Graph::default() },
        /// `for i in 0..M while cond`: inputs `(M?, cond?, v_initial...)`; the body maps
        /// `(i: i64[], cond: bool[], v...)` to `(cond, v..., scan...)`; results are the final `v...` then
        /// each per-iteration `scan` value stacked along a new leading dim.
        Loop = "loop" { body: Graph = Graph::default() },
        /// Inputs are `N` states then `num_scan_inputs` scanned tensors, sliced along
        /// `scan_input_axes` (default 0), iterated in `scan_input_directions` (0 forward, 1 reverse).
        /// The body maps `(state..., slice...)` to `(state..., out...)`; results are the final states then
        /// the `out` values stacked along `scan_output_axes` in `scan_output_directions`.
        Scan = "scan" {
            body: Graph = Graph::default(),
            num_scan_inputs: i64 = 1,
            scan_input_axes: Vec<i64> = Vec::new(),
            scan_input_directions: Vec<i64> = Vec::new(),
            scan_output_axes: Vec<i64> = Vec::new(),
            scan_output_directions: Vec<i64> = Vec::new(),
        },
        /// An empty sequence of `dtype` tensors.
        SequenceEmpty = "sequence_empty" { dtype: DType = DType::F32 },
        /// A sequence of the input tensors, in order.
        SequenceConstruct = "sequence_construct" {},
        /// Input 0 with tensor input 1 inserted at position input 2 (default: at the end).
        SequenceInsert = "sequence_insert" {},
        /// Element input 1 (negative = from the end) of sequence input 0.
        SequenceAt = "sequence_at" {},
        /// Input 0 without element input 2 (default: the last).
        SequenceErase = "sequence_erase" {},
        /// Number of elements of sequence input 0, as an i64 scalar.
        SequenceLength = "sequence_length" {},
        /// Splits input 0 along `axis` into a sequence: chunks of 1 (dropping the axis unless `keepdims`)
        /// when input 1 is absent, chunks of size input 1 when it is a scalar, else of the listed sizes.
        SplitToSequence = "split_to_sequence" { axis: i64 = 0, keepdims: bool = true },
        /// Concatenates the tensors of sequence input 0 along `axis` (stacking along a new axis when
        /// `new_axis`).
        ConcatFromSequence = "concat_from_sequence" { axis: i64 = 0, new_axis: bool = false },
        /// Applies `body` to each element of sequence input 0 (and of the other sequence inputs; tensor
        /// inputs are passed whole); each result is a sequence of the body's results.
        SequenceMap = "sequence_map" { body: Graph = Graph::default() },
        /// An optional holding input 0, or, with no input, an empty optional of `dtype` tensors (of
        /// sequences of them when `sequence`).
        Optional = "optional" { dtype: Option<DType> = None, sequence: bool = false },
        /// Whether optional input 0 holds a value (false when the input is omitted; true for a tensor or
        /// sequence input).
        OptionalHasElement = "optional_has_element" {},
        /// The value held by optional input 0 (a tensor or sequence input is returned as is).
        OptionalGetElement = "optional_get_element" {},
    }
}

crate::ops::props::default_family_props!(ControlOp, "subgraphs and sequences are not looked into");

/// The least precise type both `a` and `b` fit in: dims that differ become unknown, ranks that differ
/// become an unknown rank, quantization is kept only when equal. `None` when the kinds, element types or
/// map key types differ.
pub fn merge_types(a: &Type, b: &Type) -> Option<Type> {
    match (a, b) {
        (Type::Tensor(x), Type::Tensor(y)) => merge_tensors(x, y).map(Type::Tensor),
        (Type::Sequence(x), Type::Sequence(y)) => {
            merge_types(x, y).map(|t| Type::Sequence(Box::new(t)))
        }
        (Type::Optional(x), Type::Optional(y)) => {
            merge_types(x, y).map(|t| Type::Optional(Box::new(t)))
        }
        (Type::Map(kx, x), Type::Map(ky, y)) if kx == ky => {
            merge_types(x, y).map(|t| Type::Map(*kx, Box::new(t)))
        }
        _ => None,
    }
}

fn merge_tensors(x: &TensorType, y: &TensorType) -> Option<TensorType> {
    if x.dtype != y.dtype {
        return None;
    }
    let shape = match (&x.shape, &y.shape) {
        (Some(sx), Some(sy)) if sx.rank() == sy.rank() => Some(Shape(
            sx.0.iter()
                .zip(&sy.0)
                .map(|(p, q)| if p == q { p.clone() } else { Dim::Unknown })
                .collect(),
        )),
        _ => None,
    };
    Some(TensorType {
        dtype: x.dtype,
        shape,
        quant: if x.quant == y.quant {
            x.quant.clone()
        } else {
            None
        },
    })
}

/// Merge of two types that may also differ by one level of optional (ONNX lets a value that is an
/// `Optional(T)` on one path be a plain `T` on another): the result is then `Optional(merge)`.
pub fn merge_maybe_optional(a: &Type, b: &Type) -> Option<Type> {
    match (a, b) {
        (Type::Optional(x), y) | (y, Type::Optional(x)) if !matches!(y, Type::Optional(_)) => {
            merge_types(x, y).map(|t| Type::Optional(Box::new(t)))
        }
        _ => merge_types(a, b),
    }
}

/// The final type of a loop-carried value from its initial type and the body's result type. The result
/// type wins when the initial value is an `Optional(T)` and the body yields a plain `T` (ONNX allows this;
/// the loop's result is then a `T`).
pub fn merge_carried(initial: &Type, body_out: &Type) -> Option<Type> {
    match (initial, body_out) {
        (Type::Optional(x), y) if !matches!(y, Type::Optional(_)) => merge_types(x, y),
        _ => merge_types(initial, body_out),
    }
}

/// `t` with every shape forgotten (ranks unknown), keeping kinds and element types.
pub fn erase_shapes(t: &Type) -> Type {
    match t {
        Type::Tensor(x) => Type::Tensor(TensorType::unranked(x.dtype)),
        Type::Sequence(x) => Type::Sequence(Box::new(erase_shapes(x))),
        Type::Optional(x) => Type::Optional(Box::new(erase_shapes(x))),
        Type::Map(k, x) => Type::Map(*k, Box::new(erase_shapes(x))),
    }
}

/// The type of one slice of a scanned tensor of type `t` along `axis` (the axis removed).
pub fn scan_slice_type(t: &TensorType, axis: i64) -> Result<TensorType, String> {
    match &t.shape {
        None => Ok(TensorType::unranked(t.dtype)),
        Some(s) => {
            let a = normalize_axis(axis, s.rank())?;
            if s.rank() == 0 {
                return Err("a scanned input must have rank >= 1".into());
            }
            let mut dims = s.0.clone();
            dims.remove(a);
            Ok(TensorType::new(t.dtype, Shape(dims)))
        }
    }
}

fn subgraph_output_types(cx: &InferCtx, g: &Graph, what: &str) -> Result<Vec<Type>, InferError> {
    g.outputs
        .iter()
        .map(|&v| {
            g.values
                .get(v.index())
                .map(|x| x.ty.clone())
                .ok_or_else(|| cx.err(format!("{what} names a result value that does not exist")))
        })
        .collect()
}

/// Checks that input `i` is a single-element bool tensor (a condition).
fn check_cond(cx: &InferCtx, i: usize, what: &str) -> Result<(), InferError> {
    let t = cx.tensor(i)?;
    if t.dtype != DType::Bool {
        return Err(cx.err(format!("{what} must be bool, got {}", t.dtype)));
    }
    if let Some(n) = t.shape.as_ref().and_then(Shape::num_elements)
        && n != 1
    {
        return Err(cx.err(format!("{what} must hold one element, got {}", t)));
    }
    Ok(())
}

/// Checks that input `i`, if present, is a single-element integer tensor (a count or position).
fn check_int_scalar(cx: &InferCtx, i: usize, what: &str) -> Result<(), InferError> {
    if let Some(t) = cx.opt_tensor(i)? {
        if !matches!(t.dtype, DType::I64 | DType::I32) {
            return Err(cx.err(format!("{what} must be i32 or i64, got {}", t.dtype)));
        }
        if let Some(n) = t.shape.as_ref().and_then(Shape::num_elements)
            && n != 1
        {
            return Err(cx.err(format!("{what} must be a scalar, got {t}")));
        }
    }
    Ok(())
}

impl Infer for If {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        check_cond(cx, 0, "the condition (input 0)")?;
        let then = subgraph_output_types(cx, &self.then_branch, "then_branch")?;
        let els = subgraph_output_types(cx, &self.else_branch, "else_branch")?;
        if then.len() != els.len() {
            return Err(cx.err(format!(
                "then_branch has {} results but else_branch has {}",
                then.len(),
                els.len()
            )));
        }
        if cx.num_outputs() != then.len() {
            return Err(cx.err(format!(
                "the node has {} outputs but the branches have {} results",
                cx.num_outputs(),
                then.len()
            )));
        }
        // A constant condition selects one branch; its types are exact.
        if let Some(c) = cx.const_i64s(0)
            && c.len() == 1
        {
            return Ok(if c[0] != 0 { then } else { els });
        }
        then.iter()
            .zip(&els)
            .enumerate()
            .map(|(i, (a, b))| {
                merge_maybe_optional(a, b).ok_or_else(|| {
                    cx.err(format!(
                        "result {i}: then_branch gives {a} but else_branch gives {b}"
                    ))
                })
            })
            .collect()
    }
}

/// Follows `identity` ops back from `v` inside `g` (a few hops).
fn skip_identities(g: &Graph, mut v: ValueId) -> ValueId {
    for _ in 0..8 {
        match g.producer(v) {
            Some(n) if matches!(n.op, Op::Movement(MovementOp::Identity(_))) => {
                match n.inputs.first() {
                    Some(Some(x)) => v = *x,
                    _ => break,
                }
            }
            _ => break,
        }
    }
    v
}

/// True when the body's condition result is always true given a true condition input: it is the
/// condition input passed through or a constant true.
fn body_keeps_going(body: &Graph) -> bool {
    let Some(&c) = body.outputs.first() else {
        return false;
    };
    let c = skip_identities(body, c);
    if body.inputs.get(1) == Some(&c) {
        return true;
    }
    body.constant_of(c)
        .and_then(|k| k.to_i64s())
        .is_some_and(|v| v.len() == 1 && v[0] != 0)
}

impl Loop {
    /// Number of iterations as far as known: `M` when no condition can stop the loop early.
    fn trip_count(&self, cx: &InferCtx) -> Dim {
        let m = if cx.has_input(0) {
            match cx.sym_value(0).as_deref() {
                Some([SymInt::Int(n)]) => Dim::Known((*n).max(0) as u64),
                Some([s]) => s.to_dim(),
                _ => Dim::Unknown,
            }
        } else {
            Dim::Unknown
        };
        if !cx.has_input(1) {
            return m;
        }
        match cx.const_i64s(1).as_deref() {
            Some([0]) => Dim::Known(0),
            Some([_]) if body_keeps_going(&self.body) => m,
            _ => Dim::Unknown,
        }
    }
}

impl Infer for Loop {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        check_int_scalar(cx, 0, "the trip count M (input 0)")?;
        if cx.has_input(0) && cx.dtype(0)? != DType::I64 {
            return Err(cx.err("the trip count M (input 0) must be i64"));
        }
        if cx.has_input(1) {
            check_cond(cx, 1, "the condition (input 1)")?;
        }
        let n = cx.num_inputs().saturating_sub(2);
        if self.body.inputs.len() != n + 2 {
            return Err(cx.err(format!(
                "the body takes {} inputs but the loop has {n} carried values (expected {})",
                self.body.inputs.len(),
                n + 2
            )));
        }
        let outs = subgraph_output_types(cx, &self.body, "the body")?;
        if outs.len() < n + 1 {
            return Err(cx.err(format!(
                "the body has {} results, expected at least {} (condition and {n} carried values)",
                outs.len(),
                n + 1
            )));
        }
        match &outs[0] {
            Type::Tensor(t) if t.dtype == DType::Bool => {}
            t => {
                return Err(cx.err(format!(
                    "the body's first result must be a bool condition, got {t}"
                )));
            }
        }
        let k = outs.len() - 1 - n;
        if cx.num_outputs() > n + k {
            return Err(cx.err(format!(
                "the node has {} outputs but the loop yields {n} carried values and {k} scan outputs",
                cx.num_outputs()
            )));
        }
        let mut types = Vec::with_capacity(n + k);
        for i in 0..n {
            let what = format!("carried value {i}");
            types.push(carried_result(cx, 2 + i, &outs[1 + i], &what)?);
        }
        let trip = self.trip_count(cx);
        for (j, t) in outs[1 + n..].iter().enumerate() {
            let Type::Tensor(t) = t else {
                return Err(cx.err(format!("scan output {j} must be a tensor, got {t}")));
            };
            let shape = t.shape.as_ref().map(|s| {
                let mut d = vec![trip.clone()];
                d.extend(s.0.iter().cloned());
                Shape(d)
            });
            types.push(Type::Tensor(TensorType {
                dtype: t.dtype,
                shape,
                quant: None,
            }));
        }
        types.truncate(cx.num_outputs());
        Ok(types)
    }
}

fn axes_or_zeros(cx: &InferCtx, v: &[i64], n: usize, what: &str) -> Result<Vec<i64>, InferError> {
    if v.is_empty() {
        Ok(vec![0; n])
    } else if v.len() == n {
        Ok(v.to_vec())
    } else {
        Err(cx.err(format!("{what} has {} entries, expected {n}", v.len())))
    }
}

fn check_directions(cx: &InferCtx, v: &[i64], n: usize, what: &str) -> Result<(), InferError> {
    axes_or_zeros(cx, v, n, what)?;
    if let Some(d) = v.iter().find(|&&d| d != 0 && d != 1) {
        return Err(cx.err(format!(
            "{what} must be 0 (forward) or 1 (reverse), got {d}"
        )));
    }
    Ok(())
}

impl Infer for Scan {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let total = cx.num_inputs();
        let m = usize::try_from(self.num_scan_inputs)
            .ok()
            .filter(|&m| m >= 1 && m <= total)
            .ok_or_else(|| {
                cx.err(format!(
                    "num_scan_inputs is {} but the node has {total} inputs",
                    self.num_scan_inputs
                ))
            })?;
        let n = total - m;
        if self.body.inputs.len() != total {
            return Err(cx.err(format!(
                "the body takes {} inputs, expected {total} ({n} states and {m} scan slices)",
                self.body.inputs.len()
            )));
        }
        let outs = subgraph_output_types(cx, &self.body, "the body")?;
        if outs.len() < n {
            return Err(cx.err(format!(
                "the body has {} results, expected at least {n} states",
                outs.len()
            )));
        }
        let k = outs.len() - n;
        let in_axes = axes_or_zeros(cx, &self.scan_input_axes, m, "scan_input_axes")?;
        check_directions(cx, &self.scan_input_directions, m, "scan_input_directions")?;
        let out_axes = axes_or_zeros(cx, &self.scan_output_axes, k, "scan_output_axes")?;
        check_directions(
            cx,
            &self.scan_output_directions,
            k,
            "scan_output_directions",
        )?;
        if cx.num_outputs() > n + k {
            return Err(cx.err(format!(
                "the node has {} outputs but the scan yields {n} states and {k} scan outputs",
                cx.num_outputs()
            )));
        }

        // The sequence length: the scanned axis of every scan input (they must agree).
        let mut len: Option<Dim> = None;
        for (j, &axis) in in_axes.iter().enumerate() {
            let t = cx.tensor(n + j)?;
            let Some(dims) = t.dims() else { continue };
            let a = normalize_axis(axis, dims.len())
                .map_err(|e| cx.err(format!("scan input {j}: {e}")))?;
            if dims.is_empty() {
                return Err(cx.err(format!("scan input {j} must have rank >= 1")));
            }
            let d = &dims[a];
            len = Some(match len {
                None => d.clone(),
                Some(l) if l.conflicts(d) => {
                    return Err(cx.err(format!(
                        "scan inputs disagree on the sequence length: {l} and {d}"
                    )));
                }
                Some(l) => l.refine(d),
            });
        }
        let len = len.unwrap_or(Dim::Unknown);

        let mut types = Vec::with_capacity(n + k);
        for (i, out) in outs[..n].iter().enumerate() {
            types.push(carried_result(cx, i, out, &format!("state {i}"))?);
        }
        for (j, (t, &axis)) in outs[n..].iter().zip(&out_axes).enumerate() {
            let Type::Tensor(t) = t else {
                return Err(cx.err(format!("scan output {j} must be a tensor, got {t}")));
            };
            let shape = match &t.shape {
                None => None,
                Some(s) => {
                    let a = normalize_axis(axis, s.rank() + 1)
                        .map_err(|e| cx.err(format!("scan_output_axes[{j}]: {e}")))?;
                    let mut d = s.0.clone();
                    d.insert(a, len.clone());
                    Some(Shape(d))
                }
            };
            types.push(Type::Tensor(TensorType {
                dtype: t.dtype,
                shape,
                quant: None,
            }));
        }
        types.truncate(cx.num_outputs());
        Ok(types)
    }
}

impl Infer for Optional {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        if let Some(t) = cx.input(0) {
            if let Type::Optional(_) = t {
                return Err(cx.err("input 0 is already an optional"));
            }
            return Ok(vec![Type::Optional(Box::new(t.clone()))]);
        }
        let dtype = self
            .dtype
            .ok_or_else(|| cx.err("an optional without input needs its element type (dtype)"))?;
        let mut elem = Type::Tensor(TensorType::unranked(dtype));
        if self.sequence {
            elem = Type::Sequence(Box::new(elem));
        }
        Ok(vec![Type::Optional(Box::new(elem))])
    }
}

impl Infer for OptionalHasElement {
    fn infer(&self, _cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        Ok(vec![Type::Tensor(TensorType::scalar(DType::Bool))])
    }
}

impl Infer for OptionalGetElement {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        match cx.required(0)? {
            Type::Optional(t) => Ok(vec![(**t).clone()]),
            t @ (Type::Tensor(_) | Type::Sequence(_)) => Ok(vec![t.clone()]),
            t => Err(cx.err(format!(
                "input 0 must be an optional, tensor or sequence, got {t}"
            ))),
        }
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        match cx.input(0)? {
            Type::Tensor(_) => cx.sym_value(0),
            _ => None,
        }
    }
}

/// The final type of carried input `i` (initial value) updated by the body to `out`.
fn carried_result(cx: &InferCtx, i: usize, out: &Type, what: &str) -> Result<Type, InferError> {
    let init = cx.required(i)?;
    let merged = merge_carried(init, out).ok_or_else(|| {
        cx.err(format!(
            "{what}: the body yields {out} but the initial value is {init}"
        ))
    })?;
    // An initially empty sequence only ever holds what the body put in.
    Ok(if input_is_empty_sequence(cx, i) {
        out.clone()
    } else {
        merged
    })
}

/// True when value `v` of `g` is certainly an empty sequence (made by `sequence_empty`). Its element
/// type says nothing about the elements later added to it.
pub fn is_empty_sequence(g: &Graph, v: ValueId) -> bool {
    let v = skip_identities(g, v);
    matches!(
        g.producer(v).map(|n| &n.op),
        Some(Op::Control(ControlOp::SequenceEmpty(_)))
    )
}

fn input_is_empty_sequence(cx: &InferCtx, i: usize) -> bool {
    cx.input_id(i)
        .is_some_and(|v| is_empty_sequence(cx.graph(), v))
}
