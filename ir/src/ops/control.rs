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

/// The element type of sequence input `i`.
fn seq_elem<'a>(cx: &InferCtx<'a>, i: usize) -> Result<&'a Type, InferError> {
    match cx.required(i)? {
        Type::Sequence(e) => Ok(e),
        t => Err(cx.err(format!("input {i} must be a sequence, got {}", t.kind()))),
    }
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

impl Infer for SequenceEmpty {
    fn infer(&self, _cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        Ok(vec![Type::Sequence(Box::new(Type::Tensor(
            TensorType::unranked(self.dtype),
        )))])
    }
}

impl Infer for SequenceConstruct {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let mut elem: Option<Type> = None;
        for i in 0..cx.num_inputs() {
            let t = Type::Tensor(cx.tensor(i)?.clone());
            elem = Some(match elem {
                None => t,
                Some(e) => merge_types(&e, &t).ok_or_else(|| {
                    cx.err(format!(
                        "all inputs must share one element type, got {e} and {t}"
                    ))
                })?,
            });
        }
        let elem = elem.ok_or_else(|| cx.err("needs at least one input"))?;
        Ok(vec![Type::Sequence(Box::new(elem))])
    }
}

impl Infer for SequenceInsert {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let elem = seq_elem(cx, 0)?;
        let t = Type::Tensor(cx.tensor(1)?.clone());
        check_int_scalar(cx, 2, "the position (input 2)")?;
        let out = if input_is_empty_sequence(cx, 0) {
            match elem {
                Type::Tensor(e) if e.dtype != cx.dtype(1)? => None,
                _ => Some(t.clone()),
            }
        } else {
            merge_types(elem, &t)
        };
        let out = out.ok_or_else(|| {
            cx.err(format!(
                "cannot insert a {t} into a sequence of {elem}: element types differ"
            ))
        })?;
        Ok(vec![Type::Sequence(Box::new(out))])
    }
}

impl Infer for SequenceAt {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let elem = seq_elem(cx, 0)?;
        cx.required(1)?;
        check_int_scalar(cx, 1, "the position (input 1)")?;
        Ok(vec![elem.clone()])
    }
}

impl Infer for SequenceErase {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        seq_elem(cx, 0)?;
        check_int_scalar(cx, 1, "the position (input 1)")?;
        Ok(vec![cx.required(0)?.clone()])
    }
}

impl Infer for SequenceLength {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        seq_elem(cx, 0)?;
        Ok(vec![Type::Tensor(TensorType::scalar(DType::I64))])
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let v = skip_identities(cx.graph(), cx.input_id(0)?);
        let node = cx.graph().producer(v)?;
        match &node.op {
            Op::Control(ControlOp::SequenceEmpty(_)) => Some(vec![SymInt::Int(0)]),
            Op::Control(ControlOp::SequenceConstruct(_)) => {
                Some(vec![SymInt::Int(i64::try_from(node.inputs.len()).ok()?)])
            }
            _ => None,
        }
    }
}

impl Infer for SplitToSequence {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let split = cx.opt_tensor(1)?;
        if let Some(s) = split {
            if !matches!(s.dtype, DType::I64 | DType::I32) {
                return Err(cx.err(format!(
                    "split (input 1) must be i32 or i64, got {}",
                    s.dtype
                )));
            }
            if s.rank().is_some_and(|r| r > 1) {
                return Err(cx.err(format!("split (input 1) must be a scalar or 1-D, got {s}")));
            }
        }
        let Some(dims) = t.dims() else {
            return Ok(vec![Type::Sequence(Box::new(Type::Tensor(
                TensorType::unranked(t.dtype),
            )))]);
        };
        let a = normalize_axis(self.axis, dims.len()).map_err(|e| cx.err(e))?;
        if dims.is_empty() {
            return Err(cx.err("input 0 must have rank >= 1"));
        }
        let mut out = dims.to_vec();
        match split {
            None => {
                if self.keepdims {
                    out[a] = Dim::Known(1);
                } else {
                    out.remove(a);
                }
            }
            Some(s) => {
                let values = cx.known_i64s(1);
                out[a] = match (s.rank(), values) {
                    (Some(0), Some(v)) if v.len() == 1 => {
                        let c = v[0];
                        if c <= 0 {
                            return Err(cx.err(format!("split must be positive, got {c}")));
                        }
                        match dims[a].known() {
                            Some(d) if d % c as u64 == 0 => Dim::Known(c as u64),
                            Some(d) if d < c as u64 => Dim::Known(d),
                            _ => Dim::Unknown,
                        }
                    }
                    (_, Some(v)) if s.rank() == Some(1) => {
                        if let Some(bad) = v.iter().find(|&&x| x < 0) {
                            return Err(cx.err(format!("split sizes must be >= 0, got {bad}")));
                        }
                        let total = v.iter().try_fold(0u64, |acc, &x| acc.checked_add(x as u64));
                        if let (Some(d), Some(sum)) = (dims[a].known(), total)
                            && d != sum
                        {
                            return Err(cx.err(format!(
                                "split sizes {v:?} sum to {sum} but axis {a} has size {d}"
                            )));
                        }
                        match v.first() {
                            Some(&f) if v.iter().all(|&x| x == f) => Dim::Known(f as u64),
                            _ => Dim::Unknown,
                        }
                    }
                    _ => Dim::Unknown,
                };
            }
        }
        Ok(vec![Type::Sequence(Box::new(Type::Tensor(
            TensorType::new(t.dtype, Shape(out)),
        )))])
    }
}

impl Infer for ConcatFromSequence {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let elem = match seq_elem(cx, 0)? {
            Type::Tensor(t) => t,
            t => return Err(cx.err(format!("the sequence must hold tensors, got {t}"))),
        };
        let Some(dims) = elem.dims() else {
            return Ok(vec![Type::Tensor(TensorType::unranked(elem.dtype))]);
        };
        let out_rank = dims.len() + usize::from(self.new_axis);
        let a = normalize_axis(self.axis, out_rank).map_err(|e| cx.err(e))?;
        if out_rank == 0 {
            return Err(cx.err("cannot concatenate scalars without new_axis"));
        }
        let mut out = dims.to_vec();
        if self.new_axis {
            out.insert(a, Dim::Unknown);
        } else {
            out[a] = Dim::Unknown;
        }
        Ok(vec![Type::Tensor(TensorType::new(elem.dtype, Shape(out)))])
    }
}

impl Infer for SequenceMap {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        seq_elem(cx, 0)?;
        if self.body.inputs.len() != cx.num_inputs() {
            return Err(cx.err(format!(
                "the body takes {} inputs but the node has {}",
                self.body.inputs.len(),
                cx.num_inputs()
            )));
        }
        for i in 1..cx.num_inputs() {
            if !matches!(cx.required(i)?, Type::Sequence(_) | Type::Tensor(_)) {
                return Err(cx.err(format!("input {i} must be a sequence or a tensor")));
            }
        }
        let outs = subgraph_output_types(cx, &self.body, "the body")?;
        if cx.num_outputs() != outs.len() {
            return Err(cx.err(format!(
                "the node has {} outputs but the body has {} results",
                cx.num_outputs(),
                outs.len()
            )));
        }
        Ok(outs
            .into_iter()
            .map(|t| Type::Sequence(Box::new(t)))
            .collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::elementwise::{Add, Relu};
    use crate::ops::movement::Identity;
    use crate::{Capture, Constant};

    fn f32t(dims: &[Dim]) -> Type {
        Type::Tensor(TensorType::new(DType::F32, Shape(dims.to_vec())))
    }
    fn k(n: u64) -> Dim {
        Dim::Known(n)
    }
    fn sym(s: &str) -> Dim {
        Dim::Sym(s.into())
    }
    fn scalar(d: DType) -> Type {
        Type::Tensor(TensorType::scalar(d))
    }
    fn node(g: &mut Graph, op: impl Into<Op>, inputs: &[ValueId]) -> ValueId {
        g.add_node(
            "n",
            op.into(),
            inputs.iter().map(|&v| Some(v)).collect(),
            vec!["o".into()],
        )
        .unwrap()[0]
    }
    /// Makes `outer` visible inside `g` as a capture.
    fn capture(g: &mut Graph, outer_graph: &Graph, outer: ValueId) -> ValueId {
        let inner = g.add_value("cap", outer_graph.ty(outer).clone());
        g.captures.push(Capture { inner, outer });
        inner
    }
    fn types(g: &Graph, vs: &[ValueId]) -> Vec<String> {
        vs.iter().map(|&v| g.ty(v).to_string()).collect()
    }

    #[test]
    fn if_merges_branch_types_and_reads_captures() {
        let mut g = Graph::new("main");
        let c = g.add_input("c", scalar(DType::Bool));
        let a = g.add_input("a", f32t(&[sym("N"), k(3)]));
        let b = g.add_input("b", f32t(&[sym("N"), k(4)]));
        let mut then_branch = Graph::new("then");
        let ca = capture(&mut then_branch, &g, a);
        let t = node(&mut then_branch, Relu {}, &[ca]);
        then_branch.outputs = vec![t];
        let mut else_branch = Graph::new("else");
        let cb = capture(&mut else_branch, &g, b);
        let e = node(&mut else_branch, Relu {}, &[cb]);
        else_branch.outputs = vec![e];
        let op = If {
            then_branch: then_branch.clone(),
            else_branch,
        };
        let r = g
            .add_node("if", op.into(), vec![Some(c)], vec!["r".into()])
            .unwrap();
        assert_eq!(types(&g, &r), ["f32[N,?]"]);

        // A constant condition selects one branch exactly.
        let yes = g.add_const("yes", bool_const(true));
        let mut else2 = Graph::new("else");
        let cb = capture(&mut else2, &g, b);
        let e = node(&mut else2, Relu {}, &[cb]);
        else2.outputs = vec![e];
        let op = If {
            then_branch,
            else_branch: else2,
        };
        let r = g
            .add_node("if2", op.into(), vec![Some(yes)], vec!["r".into()])
            .unwrap();
        assert_eq!(types(&g, &r), ["f32[N,3]"]);
    }

    fn bool_const(v: bool) -> Constant {
        Constant::dense(
            TensorType::scalar(DType::Bool),
            crate::Buffer::from_vec(vec![u8::from(v)]),
        )
        .unwrap()
    }

    #[test]
    fn if_rejects_branches_of_different_element_types() {
        let mut g = Graph::new("main");
        let c = g.add_input("c", scalar(DType::Bool));
        let mut t = Graph::new("then");
        let x = t.add_const("x", Constant::from_f32s(&[1], &[1.0]));
        t.outputs = vec![x];
        let mut e = Graph::new("else");
        let y = e.add_const("y", Constant::from_i64s(&[1], &[1]));
        e.outputs = vec![y];
        let op = If {
            then_branch: t,
            else_branch: e,
        };
        let err = g
            .add_node("if", op.into(), vec![Some(c)], vec!["r".into()])
            .unwrap_err();
        assert!(err.msg.contains("then_branch gives f32[1]"), "{err}");
    }

    /// Loop body `(i, cond, y) -> (cond, y + x, y + x)` where `x` is captured from `outer`.
    fn accumulate_body(outer: &Graph, x: ValueId, carried: Type) -> Graph {
        let mut body = Graph::new("body");
        body.add_input("i", scalar(DType::I64));
        let c = body.add_input("cond", scalar(DType::Bool));
        let y = body.add_input("y", carried);
        let cx = capture(&mut body, outer, x);
        let s = node(&mut body, Add {}, &[y, cx]);
        let c_out = node(&mut body, Identity {}, &[c]);
        let scan = node(&mut body, Identity {}, &[s]);
        body.outputs = vec![c_out, s, scan];
        body
    }

    #[test]
    fn loop_with_constant_trip_count_stacks_scan_outputs() {
        let mut g = Graph::new("main");
        let x = g.add_input("x", f32t(&[sym("N"), k(2)]));
        let y0 = g.add_input("y0", f32t(&[sym("N"), k(2)]));
        let m = g.add_const("m", Constant::from_i64s(&[], &[5]));
        let body = accumulate_body(&g, x, f32t(&[sym("N"), k(2)]));
        let r = g
            .add_node(
                "loop",
                Loop { body }.into(),
                vec![Some(m), None, Some(y0)],
                vec!["y".into(), "s".into()],
            )
            .unwrap();
        assert_eq!(types(&g, &r), ["f32[N,2]", "f32[5,N,2]"]);
    }

    #[test]
    fn loop_trip_count_follows_condition() {
        let mut g = Graph::new("main");
        let x = g.add_input("x", f32t(&[k(2)]));
        let y0 = g.add_input("y0", f32t(&[k(2)]));
        let m = g.add_const("m", Constant::from_i64s(&[], &[7]));
        let yes = g.add_const("yes", bool_const(true));
        let no = g.add_const("no", bool_const(false));
        let runtime = g.add_input("c", scalar(DType::Bool));
        let n_in = g.add_input("n", scalar(DType::I64));
        let run = |g: &mut Graph, m: Option<ValueId>, c: Option<ValueId>| {
            let body = accumulate_body(g, x, f32t(&[k(2)]));
            let r = g
                .add_node(
                    "loop",
                    Loop { body }.into(),
                    vec![m, c, Some(y0)],
                    vec!["y".into(), "s".into()],
                )
                .unwrap();
            g.ty(r[1]).to_string()
        };
        // The body passes its condition through, so a constant-true start runs all M iterations.
        assert_eq!(run(&mut g, Some(m), Some(yes)), "f32[7,2]");
        assert_eq!(run(&mut g, Some(m), Some(no)), "f32[0,2]");
        assert_eq!(run(&mut g, Some(m), Some(runtime)), "f32[?,2]");
        assert_eq!(run(&mut g, None, Some(yes)), "f32[?,2]");
        assert_eq!(run(&mut g, Some(n_in), None), "f32[?,2]");
    }

    #[test]
    fn loop_carried_value_that_changes_shape_is_merged() {
        let mut g = Graph::new("main");
        let y0 = g.add_input("y0", f32t(&[k(2), k(3)]));
        let m = g.add_input("m", scalar(DType::I64));
        // Body: y -> concat([y, y], axis 0) (shape changes every iteration).
        let mut body = Graph::new("body");
        body.add_input("i", scalar(DType::I64));
        let c = body.add_input("cond", scalar(DType::Bool));
        let y = body.add_input("y", f32t(&[Dim::Unknown, k(3)]));
        let sq = node(&mut body, SequenceConstruct {}, &[y, y]);
        let cat = node(
            &mut body,
            ConcatFromSequence {
                axis: 0,
                new_axis: false,
            },
            &[sq],
        );
        body.outputs = vec![c, cat];
        let r = g
            .add_node(
                "loop",
                Loop { body }.into(),
                vec![Some(m), None, Some(y0)],
                vec!["y".into()],
            )
            .unwrap();
        assert_eq!(types(&g, &r), ["f32[?,3]"]);
    }

    #[test]
    fn loop_growing_an_empty_sequence_takes_the_body_type() {
        let mut g = Graph::new("main");
        let x = g.add_input("x", f32t(&[k(3)]));
        let m = g.add_input("m", scalar(DType::I64));
        let e = node(&mut g, SequenceEmpty { dtype: DType::F32 }, &[]);
        let mut body = Graph::new("body");
        body.add_input("i", scalar(DType::I64));
        let c = body.add_input("cond", scalar(DType::Bool));
        let q = body.add_input("q", Type::Sequence(Box::new(f32t(&[k(3)]))));
        let cx = capture(&mut body, &g, x);
        let q2 = body
            .add_node(
                "ins",
                SequenceInsert {}.into(),
                vec![Some(q), Some(cx)],
                vec!["q2".into()],
            )
            .unwrap()[0];
        body.outputs = vec![c, q2];
        let r = g
            .add_node(
                "loop",
                Loop { body }.into(),
                vec![Some(m), None, Some(e)],
                vec!["q".into()],
            )
            .unwrap();
        assert_eq!(types(&g, &r), ["seq<f32[3]>"]);
    }

    #[test]
    fn loop_body_arity_is_checked() {
        let mut g = Graph::new("main");
        let x = g.add_input("x", f32t(&[k(2)]));
        let y0 = g.add_input("y0", f32t(&[k(2)]));
        let body = accumulate_body(&g, x, f32t(&[k(2)]));
        let err = g
            .add_node(
                "loop",
                Loop { body }.into(),
                vec![None, None, Some(y0), Some(y0)],
                vec!["a".into(), "b".into()],
            )
            .unwrap_err();
        assert!(err.msg.contains("the body takes 3 inputs"), "{err}");
    }

    #[test]
    fn scan_slices_inputs_and_stacks_outputs_along_the_given_axes() {
        let mut g = Graph::new("main");
        let s0 = g.add_input("s0", f32t(&[sym("B"), k(4)]));
        let xs = g.add_input("xs", f32t(&[sym("B"), sym("T"), k(4)]));
        let w = g.add_input("w", f32t(&[k(4)]));
        let mut body = Graph::new("body");
        let s = body.add_input("s", f32t(&[sym("B"), k(4)]));
        let x = body.add_input("x", f32t(&[sym("B"), k(4)]));
        let cw = capture(&mut body, &g, w);
        let s2 = node(&mut body, Add {}, &[s, x]);
        let o = node(&mut body, Add {}, &[x, cw]);
        body.outputs = vec![s2, o];
        let op = Scan {
            body,
            num_scan_inputs: 1,
            scan_input_axes: vec![1],
            scan_output_axes: vec![-1],
            ..Scan::default()
        };
        let r = g
            .add_node(
                "scan",
                op.into(),
                vec![Some(s0), Some(xs)],
                vec!["s".into(), "y".into()],
            )
            .unwrap();
        assert_eq!(types(&g, &r), ["f32[B,4]", "f32[B,4,T]"]);
    }

    #[test]
    fn scan_inputs_must_agree_on_length() {
        let mut g = Graph::new("main");
        let a = g.add_input("a", f32t(&[k(3), k(2)]));
        let b = g.add_input("b", f32t(&[k(4), k(2)]));
        let mut body = Graph::new("body");
        let x = body.add_input("x", f32t(&[k(2)]));
        body.add_input("y", f32t(&[k(2)]));
        body.outputs = vec![x];
        let op = Scan {
            body,
            num_scan_inputs: 2,
            ..Scan::default()
        };
        let err = g
            .add_node("scan", op.into(), vec![Some(a), Some(b)], vec!["o".into()])
            .unwrap_err();
        assert!(err.msg.contains("disagree"), "{err}");
    }

    #[test]
    fn sequences_track_element_types() {
        let mut g = Graph::new("main");
        let a = g.add_input("a", f32t(&[k(2), k(3)]));
        let b = g.add_input("b", f32t(&[k(4), k(3)]));
        let s = node(&mut g, SequenceConstruct {}, &[a, b]);
        assert_eq!(g.ty(s).to_string(), "seq<f32[?,3]>");
        let e = node(&mut g, SequenceEmpty { dtype: DType::F32 }, &[]);
        let e1 = node(&mut g, SequenceInsert {}, &[e, a]);
        assert_eq!(g.ty(e1).to_string(), "seq<f32[2,3]>");
        let len = node(&mut g, SequenceLength {}, &[s]);
        assert_eq!(g.ty(len).to_string(), "i64[]");
        let split = node(
            &mut g,
            SplitToSequence {
                axis: 1,
                keepdims: false,
            },
            &[a],
        );
        assert_eq!(g.ty(split).to_string(), "seq<f32[2]>");
        let cat = node(
            &mut g,
            ConcatFromSequence {
                axis: 0,
                new_axis: true,
            },
            &[split],
        );
        assert_eq!(g.ty(cat).to_string(), "f32[?,2]");
        let i = g.add_input("i", scalar(DType::I32));
        let x = node(&mut g, SequenceAt {}, &[s, i]);
        assert_eq!(g.ty(x).to_string(), "f32[?,3]");
    }

    #[test]
    fn sequence_length_of_a_constructed_sequence_is_known() {
        let mut g = Graph::new("main");
        let a = g.add_input("a", f32t(&[k(2)]));
        let s = node(&mut g, SequenceConstruct {}, &[a, a, a]);
        let len = node(&mut g, SequenceLength {}, &[s]);
        assert_eq!(
            crate::infer::sym_value_of(&g, len, 0),
            Some(vec![SymInt::Int(3)])
        );
    }

    #[test]
    fn split_to_sequence_with_sizes() {
        let mut g = Graph::new("main");
        let a = g.add_input("a", f32t(&[k(3), k(6)]));
        let even = g.add_const("even", Constant::from_i64s(&[], &[2]));
        let uneven = g.add_const("uneven", Constant::from_i64s(&[2], &[2, 4]));
        let bad = g.add_const("bad", Constant::from_i64s(&[2], &[2, 5]));
        let op = || SplitToSequence {
            axis: 1,
            keepdims: true,
        };
        let s = node(&mut g, op(), &[a, even]);
        assert_eq!(g.ty(s).to_string(), "seq<f32[3,2]>");
        let s = node(&mut g, op(), &[a, uneven]);
        assert_eq!(g.ty(s).to_string(), "seq<f32[3,?]>");
        let err = g
            .add_node("s", op().into(), vec![Some(a), Some(bad)], vec!["o".into()])
            .unwrap_err();
        assert!(err.msg.contains("sum to 7"), "{err}");
    }

    #[test]
    fn sequence_map_runs_the_body_on_elements() {
        let mut g = Graph::new("main");
        let q = g.add_input("q", Type::Sequence(Box::new(f32t(&[sym("N")]))));
        let t = g.add_input("t", f32t(&[k(1)]));
        let mut body = Graph::new("body");
        let x = body.add_input("x", f32t(&[sym("N")]));
        let y = body.add_input("y", f32t(&[k(1)]));
        let s = node(&mut body, Add {}, &[x, y]);
        body.outputs = vec![s];
        let r = g
            .add_node(
                "map",
                SequenceMap { body }.into(),
                vec![Some(q), Some(t)],
                vec!["r".into()],
            )
            .unwrap();
        assert_eq!(types(&g, &r), ["seq<f32[N]>"]);
    }

    #[test]
    fn optionals_wrap_and_unwrap() {
        let mut g = Graph::new("main");
        let a = g.add_input("a", f32t(&[k(4)]));
        let o = node(&mut g, Optional::default(), &[a]);
        assert_eq!(g.ty(o).to_string(), "opt<f32[4]>");
        let v = node(&mut g, OptionalGetElement {}, &[o]);
        assert_eq!(g.ty(v).to_string(), "f32[4]");
        let h = node(&mut g, OptionalHasElement {}, &[o]);
        assert_eq!(g.ty(h).to_string(), "bool[]");
        let empty = node(
            &mut g,
            Optional {
                dtype: Some(DType::I32),
                sequence: true,
            },
            &[],
        );
        assert_eq!(g.ty(empty).to_string(), "opt<seq<i32[*]>>");
        let err = g
            .add_node(
                "o",
                Optional::default().into(),
                vec![None],
                vec!["o".into()],
            )
            .unwrap_err();
        assert!(err.msg.contains("element type"), "{err}");
    }

    #[test]
    fn merging_types() {
        let a = f32t(&[k(2), sym("N")]);
        let b = f32t(&[k(3), sym("N")]);
        assert_eq!(merge_types(&a, &b).unwrap().to_string(), "f32[?,N]");
        assert_eq!(
            merge_types(&a, &f32t(&[k(2)])).unwrap().to_string(),
            "f32[*]"
        );
        assert!(merge_types(&a, &scalar(DType::I64)).is_none());
        let opt = Type::Optional(Box::new(a.clone()));
        assert_eq!(
            merge_maybe_optional(&opt, &b).unwrap().to_string(),
            "opt<f32[?,N]>"
        );
        assert_eq!(merge_carried(&opt, &b).unwrap().to_string(), "f32[?,N]");
    }
}
