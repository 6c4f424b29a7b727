//! Interpreter kernels for the reduce op family (`carve_ir::ops::reduce`): `reduce` of every kind,
//! `arg_reduce`, the softmax family, `cumulative`, `top_k` and `lp_norm`.
//!
//! Number handling, shared by every kernel here:
//! - floating-point inputs are computed in f64 and rounded once to the output element type;
//! - integer inputs stay integers: they are widened to i128 ([`ints`]) and combined with wrapping
//!   arithmetic, so a sum or product equals, modulo 2^bits, what a native-width loop (ONNX Runtime,
//!   numpy) computes, and is then wrapped back to the element type ([`util::from_i128`]);
//! - NaN propagates through `reduce {kind=max|min}` (numpy's `maximum.reduce`; ONNX Runtime's CPU kernel
//!   skips NaNs instead), wins `arg_reduce` of either kind and `hardmax` (numpy's `argmax`/`argmin`
//!   return the first NaN) and ranks above every number in `top_k` (numpy's `lexsort`).
//!
//! Reductions over an empty set give the identity of the combining function, as the ONNX reference does:
//! 0 for sums, 1 for products, the lowest (highest) value of the element type for max (min) (−∞/+∞ for
//! floats, false/true for bools), −∞ for `log_sum`/`log_sum_exp`, NaN (float) or 0 (integer) for `mean`.
//! With `noop_with_empty_axes` and no axes every element is "reduced" alone: the element-wise pre- and
//! post-functions still apply (`sum_square` squares, `l1` takes absolute values), as the ONNX spec and
//! ONNX Runtime now specify.

use carve_ir::DType;
use carve_ir::ops::reduce::{
    ArgKind, ArgReduce, CumKind, Cumulative, LpNorm, Reduce, ReduceKind, ReduceOp, Softmax,
    SoftmaxKind, TopK,
};

use super::util::{self, from_i128};
use super::{EvalCtx, RunError, Value, tensor_err};
use crate::tensor::{Data, Tensor, TensorError};

/// Evaluates one reduce-family op.
pub fn eval(op: &ReduceOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    match op {
        ReduceOp::Reduce(o) => reduce(o, cx),
        ReduceOp::ArgReduce(o) => arg_reduce(o, cx),
        ReduceOp::Softmax(o) => softmax(o, cx),
        ReduceOp::Cumulative(o) => cumulative(o, cx),
        ReduceOp::TopK(o) => top_k(o, cx),
        ReduceOp::LpNorm(o) => lp_norm(o, cx),
    }
}

// ---------------------------------------------------------------------------------------------------
// Shared helpers (also used by the normalization kernels in `norm.rs`).
// ---------------------------------------------------------------------------------------------------

/// The element type of output `k` as the IR typed it, or `default` when the type is not a tensor.
pub(crate) fn out_dtype(cx: &EvalCtx, k: usize, default: DType) -> DType {
    cx.output_type(k)
        .and_then(|t| t.as_tensor())
        .map_or(default, |t| t.dtype)
}

/// Elements of `t` as f64, with errors attributed to the node.
pub(crate) fn f64s(cx: &EvalCtx, t: &Tensor) -> Result<Vec<f64>, RunError> {
    util::to_f64(t).map_err(|e| tensor_err(cx, e))
}

/// A tensor of `dtype` from f64 values (floats round to nearest), with errors attributed to the node.
pub(crate) fn build_f64(
    cx: &EvalCtx,
    dtype: DType,
    shape: Vec<usize>,
    v: &[f64],
) -> Result<Tensor, RunError> {
    util::from_f64(dtype, shape, v).map_err(|e| tensor_err(cx, e))
}

/// Normalizes a possibly negative `axis` against `rank` (which must be at least 1).
pub(crate) fn norm_axis(cx: &EvalCtx, axis: i64, rank: usize) -> Result<usize, RunError> {
    let r = i64::try_from(rank).map_err(|_| cx.err("rank too large"))?;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(cx.err(format!("axis {axis} is out of range for rank {rank}")));
    }
    Ok(a as usize)
}

/// A mask of the axes listed in `axes` (negative = from the end) for a rank-`rank` tensor; repeated or
/// out-of-range axes are errors.
pub(crate) fn axes_mask(cx: &EvalCtx, axes: &[i64], rank: usize) -> Result<Vec<bool>, RunError> {
    let mut mask = vec![false; rank];
    for &a in axes {
        let n = norm_axis(cx, a, rank)?;
        if mask[n] {
            return Err(cx.err(format!("axis {a} is listed twice in {axes:?}")));
        }
        mask[n] = true;
    }
    Ok(mask)
}

/// For each element of a tensor of shape `shape`, in row-major order, the flat index of the slot it is
/// reduced into when the axes marked in `mask` are reduced (the reduced shape keeps those axes as size 1,
/// which does not change flat indices). A streaming iterator: no index table is materialized.
pub(crate) struct ReducedIndex {
    dims: Vec<usize>,
    /// Output stride per input axis, 0 for reduced axes.
    strides: Vec<usize>,
    counter: Vec<usize>,
    cur: usize,
    left: usize,
}

impl ReducedIndex {
    /// The index map for reducing the axes marked in `mask` (same length as `shape`) of `shape`.
    pub(crate) fn new(shape: &[usize], mask: &[bool]) -> ReducedIndex {
        let mut strides = vec![0usize; shape.len()];
        let mut s = 1usize;
        for i in (0..shape.len()).rev() {
            if !mask[i] {
                strides[i] = s;
                s = s.saturating_mul(shape[i]);
            }
        }
        ReducedIndex {
            dims: shape.to_vec(),
            strides,
            counter: vec![0; shape.len()],
            cur: 0,
            left: shape.iter().product(),
        }
    }
}

impl Iterator for ReducedIndex {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let out = self.cur;
        for ax in (0..self.dims.len()).rev() {
            self.counter[ax] += 1;
            self.cur += self.strides[ax];
            if self.counter[ax] < self.dims[ax] {
                break;
            }
            self.cur -= self.strides[ax] * self.counter[ax];
            self.counter[ax] = 0;
        }
        Some(out)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

/// `shape` with the axes marked in `mask` removed, or kept as size 1 when `keepdims`.
pub(crate) fn reduced_shape(shape: &[usize], mask: &[bool], keepdims: bool) -> Vec<usize> {
    shape
        .iter()
        .zip(mask)
        .filter_map(|(&d, &m)| match (m, keepdims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

/// Splits `shape` around `axis` into `(outer, n, inner)`: the products of the dims before it, the axis
/// itself and the dims after it. With `joint`, the axis and every later axis form `n` (`inner = 1`).
pub(crate) fn split_at_axis(shape: &[usize], axis: usize, joint: bool) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    if joint {
        (outer, shape[axis..].iter().product(), 1)
    } else {
        (outer, shape[axis], shape[axis + 1..].iter().product())
    }
}

/// Elements of an integer (or bool) tensor as i128 (exact for every integer type, u64 included).
pub(crate) fn ints(t: &Tensor) -> Option<Vec<i128>> {
    Some(match &t.data {
        Data::I64(v) => v.iter().map(|&x| i128::from(x)).collect(),
        Data::I32(v) => v.iter().map(|&x| i128::from(x)).collect(),
        Data::I16(v) => v.iter().map(|&x| i128::from(x)).collect(),
        Data::I8(v) => v.iter().map(|&x| i128::from(x)).collect(),
        Data::U64(v) => v.iter().map(|&x| i128::from(x)).collect(),
        Data::U32(v) => v.iter().map(|&x| i128::from(x)).collect(),
        Data::U16(v) => v.iter().map(|&x| i128::from(x)).collect(),
        Data::U8(v) => v.iter().map(|&x| i128::from(x)).collect(),
        Data::Bool(v) => v.iter().map(|&x| i128::from(x)).collect(),
        Data::Small(d, v) if d.is_signed_int() => v.iter().map(|&x| i128::from(x as i8)).collect(),
        Data::Small(d, v) if d.is_unsigned_int() => v.iter().map(|&x| i128::from(x)).collect(),
        _ => return None,
    })
}

/// The smallest and largest values of integer type `d`.
pub(crate) fn int_range(d: DType) -> (i128, i128) {
    let bits = d.bits().clamp(1, 64);
    if d.is_signed_int() {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    }
}

/// Comparison keys of a real tensor: exact integers for integer types, f64 otherwise.
pub(crate) enum Keys {
    /// Integer (or bool) elements.
    Int(Vec<i128>),
    /// Floating-point elements.
    Float(Vec<f64>),
}

impl Keys {
    /// The keys of `t` (strings and complex numbers are refused).
    pub(crate) fn of(cx: &EvalCtx, t: &Tensor) -> Result<Keys, RunError> {
        match ints(t) {
            Some(v) => Ok(Keys::Int(v)),
            None => Ok(Keys::Float(f64s(cx, t)?)),
        }
    }

    /// Orders elements `i` and `j`, NaN above everything (two NaNs are equal).
    fn cmp(&self, i: usize, j: usize) -> std::cmp::Ordering {
        match self {
            Keys::Int(v) => v[i].cmp(&v[j]),
            Keys::Float(v) => cmp_nan_max(v[i], v[j]),
        }
    }
}

/// Total order on f64 with NaN above every number; -0 and +0 compare equal.
pub(crate) fn cmp_nan_max(a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// The elements of `data` at `idx`, in that order (any element type).
pub(crate) fn gather(data: &Data, idx: &[usize]) -> Data {
    macro_rules! pick {
        ($v:expr) => {
            idx.iter().map(|&i| $v[i].clone()).collect()
        };
    }
    match data {
        Data::F32(v) => Data::F32(pick!(v)),
        Data::F64(v) => Data::F64(pick!(v)),
        Data::F16(v) => Data::F16(pick!(v)),
        Data::BF16(v) => Data::BF16(pick!(v)),
        Data::I64(v) => Data::I64(pick!(v)),
        Data::I32(v) => Data::I32(pick!(v)),
        Data::I16(v) => Data::I16(pick!(v)),
        Data::I8(v) => Data::I8(pick!(v)),
        Data::U64(v) => Data::U64(pick!(v)),
        Data::U32(v) => Data::U32(pick!(v)),
        Data::U16(v) => Data::U16(pick!(v)),
        Data::U8(v) => Data::U8(pick!(v)),
        Data::Bool(v) => Data::Bool(pick!(v)),
        Data::Str(v) => Data::Str(pick!(v)),
        Data::Small(d, v) => Data::Small(*d, pick!(v)),
        Data::C64(v) => Data::C64(pick!(v)),
        Data::C128(v) => Data::C128(pick!(v)),
    }
}

fn tensor_out(cx: &EvalCtx, r: Result<Tensor, TensorError>) -> Result<Vec<Value>, RunError> {
    r.map(|t| vec![Value::Tensor(t)])
        .map_err(|e| tensor_err(cx, e))
}

// ---------------------------------------------------------------------------------------------------
// reduce
// ---------------------------------------------------------------------------------------------------

fn reduce(op: &Reduce, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let rank = x.rank();
    let axes = if cx.has(1) { cx.i64s(1)? } else { Vec::new() };
    let mask = if axes.is_empty() {
        vec![!op.noop_with_empty_axes; rank]
    } else if rank == 0 {
        // A scalar has nothing to reduce; axis 0 / -1 is accepted for it.
        for &a in &axes {
            if a != 0 && a != -1 {
                return Err(cx.err(format!("axis {a} is out of range for a scalar")));
            }
        }
        Vec::new()
    } else {
        axes_mask(cx, &axes, rank)?
    };
    let shape = reduced_shape(&x.shape, &mask, op.keepdims);
    let n_out: usize = shape.iter().product();
    let count: usize = x
        .shape
        .iter()
        .zip(&mask)
        .filter(|(_, m)| **m)
        .map(|(d, _)| *d)
        .product();
    let dtype = x.dtype();
    let out = out_dtype(cx, 0, dtype);
    let idx = || ReducedIndex::new(&x.shape, &mask);
    if let Data::Bool(v) = &x.data {
        let (init, any) = match op.kind {
            ReduceKind::Max => (false, true),
            ReduceKind::Min => (true, false),
            k => {
                return Err(cx.err(format!(
                    "reduce {{kind={}}} is not defined on bool tensors",
                    k.keyword()
                )));
            }
        };
        let mut acc = vec![init; n_out];
        for (&b, o) in v.iter().zip(idx()) {
            if b == any {
                acc[o] = any;
            }
        }
        return tensor_out(cx, Tensor::new(shape, Data::Bool(acc)));
    }
    let float_kind = matches!(op.kind, ReduceKind::LogSum | ReduceKind::LogSumExp);
    if let (Some(v), false) = (ints(x).filter(|_| dtype.is_int()), float_kind) {
        let acc = reduce_ints(op.kind, dtype, &v, idx(), n_out, count);
        return tensor_out(cx, from_i128(out, shape, &acc));
    }
    if x.data.dtype() == DType::String || dtype.is_complex() {
        return Err(cx.err(format!("reduce is not defined on {dtype} tensors")));
    }
    let v = f64s(cx, x)?;
    let acc = reduce_floats(op.kind, &v, idx, n_out, count);
    if out.is_int() {
        // log_sum / log_sum_exp of integers: computed in f64 and truncated like a Cast.
        tensor_out(cx, util::from_f64(out, shape, &acc))
    } else {
        Ok(vec![Value::Tensor(build_f64(cx, out, shape, &acc)?)])
    }
}

/// Integer reduction with wrapping arithmetic in i128 (exact modulo 2^bits of any integer type).
fn reduce_ints(
    kind: ReduceKind,
    dtype: DType,
    v: &[i128],
    idx: ReducedIndex,
    n_out: usize,
    count: usize,
) -> Vec<i128> {
    let (lo, hi) = int_range(dtype);
    let init = match kind {
        ReduceKind::Max => lo,
        ReduceKind::Min => hi,
        ReduceKind::Prod => 1,
        _ => 0,
    };
    let mut acc = vec![init; n_out];
    for (&x, o) in v.iter().zip(idx) {
        let a = &mut acc[o];
        *a = match kind {
            ReduceKind::Max => (*a).max(x),
            ReduceKind::Min => (*a).min(x),
            ReduceKind::Prod => a.wrapping_mul(x),
            ReduceKind::L1 => a.wrapping_add(x.wrapping_abs()),
            ReduceKind::L2 | ReduceKind::SumSquare => a.wrapping_add(x.wrapping_mul(x)),
            _ => a.wrapping_add(x),
        };
    }
    match kind {
        ReduceKind::Mean => {
            let n = i128::try_from(count).unwrap_or(i128::MAX);
            for a in &mut acc {
                *a = if n == 0 { 0 } else { *a / n };
            }
        }
        ReduceKind::L2 => {
            for a in &mut acc {
                *a = (*a as f64).sqrt() as i128;
            }
        }
        _ => {}
    }
    acc
}

/// Floating-point reduction in f64.
fn reduce_floats(
    kind: ReduceKind,
    v: &[f64],
    idx: impl Fn() -> ReducedIndex,
    n_out: usize,
    count: usize,
) -> Vec<f64> {
    let init = match kind {
        ReduceKind::Max => f64::NEG_INFINITY,
        ReduceKind::Min => f64::INFINITY,
        ReduceKind::Prod => 1.0,
        _ => 0.0,
    };
    let mut acc = vec![init; n_out];
    match kind {
        ReduceKind::Max | ReduceKind::Min => {
            let max = kind == ReduceKind::Max;
            for (&x, o) in v.iter().zip(idx()) {
                let a = &mut acc[o];
                if !a.is_nan() && (x.is_nan() || (max && x > *a) || (!max && x < *a)) {
                    *a = x;
                }
            }
        }
        ReduceKind::LogSumExp => {
            // Shift each slice by its largest finite element so that exp cannot overflow.
            let mut shift = vec![f64::NEG_INFINITY; n_out];
            for (&x, o) in v.iter().zip(idx()) {
                if x.is_finite() && x > shift[o] {
                    shift[o] = x;
                }
            }
            for s in &mut shift {
                if !s.is_finite() {
                    *s = 0.0;
                }
            }
            for (&x, o) in v.iter().zip(idx()) {
                acc[o] += (x - shift[o]).exp();
            }
            for (a, s) in acc.iter_mut().zip(&shift) {
                *a = a.ln() + s;
            }
        }
        _ => {
            for (&x, o) in v.iter().zip(idx()) {
                let a = &mut acc[o];
                match kind {
                    ReduceKind::Prod => *a *= x,
                    ReduceKind::L1 => *a += x.abs(),
                    ReduceKind::L2 | ReduceKind::SumSquare => *a += x * x,
                    _ => *a += x,
                }
            }
            match kind {
                ReduceKind::Mean => acc.iter_mut().for_each(|a| *a /= count as f64),
                ReduceKind::L2 => acc.iter_mut().for_each(|a| *a = a.sqrt()),
                ReduceKind::LogSum => acc.iter_mut().for_each(|a| *a = a.ln()),
                _ => {}
            }
        }
    }
    acc
}

// ---------------------------------------------------------------------------------------------------
// arg_reduce
// ---------------------------------------------------------------------------------------------------

/// Index within `0..n` of the extremum of the lane `base + j*stride`: the largest (`max`) or smallest
/// element; ties go to the first index, or the last with `last`. A NaN wins either way (numpy's
/// `argmax` and `argmin` both return the first NaN).
fn extremum(keys: &Keys, base: usize, n: usize, stride: usize, max: bool, last: bool) -> usize {
    use std::cmp::Ordering;
    let mut best = 0usize;
    for j in 1..n {
        let (p, q) = (base + j * stride, base + best * stride);
        let better = match (keys.is_nan(p), keys.is_nan(q)) {
            (true, true) => last,
            (true, false) => true,
            (false, true) => false,
            (false, false) => match keys.cmp(p, q) {
                Ordering::Greater => max,
                Ordering::Less => !max,
                Ordering::Equal => last,
            },
        };
        if better {
            best = j;
        }
    }
    best
}

impl Keys {
    fn is_nan(&self, i: usize) -> bool {
        match self {
            Keys::Int(_) => false,
            Keys::Float(v) => v[i].is_nan(),
        }
    }
}

fn arg_reduce(op: &ArgReduce, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let rank = x.rank();
    let (shape, outer, n, inner) = if rank == 0 {
        if op.axis != 0 && op.axis != -1 {
            return Err(cx.err(format!("axis {} is out of range for a scalar", op.axis)));
        }
        (Vec::new(), 1, 1, 1)
    } else {
        let a = norm_axis(cx, op.axis, rank)?;
        let mut mask = vec![false; rank];
        mask[a] = true;
        let (outer, n, inner) = split_at_axis(&x.shape, a, false);
        (reduced_shape(&x.shape, &mask, op.keepdims), outer, n, inner)
    };
    let total = outer * inner;
    if n == 0 && total > 0 {
        return Err(cx.err("arg_reduce over an empty axis has no answer"));
    }
    let keys = Keys::of(cx, x)?;
    let max = op.kind == ArgKind::Max;
    let mut out = Vec::with_capacity(total);
    for o in 0..outer {
        for i in 0..inner {
            let j = extremum(
                &keys,
                o * n * inner + i,
                n,
                inner,
                max,
                op.select_last_index,
            );
            out.push(j as i64);
        }
    }
    tensor_out(cx, Tensor::new(shape, Data::I64(out)))
}

// ---------------------------------------------------------------------------------------------------
// softmax / log_softmax / hardmax
// ---------------------------------------------------------------------------------------------------

fn softmax(op: &Softmax, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let dtype = out_dtype(cx, 0, x.dtype());
    if x.is_empty() {
        return Ok(vec![Value::Tensor(x.clone())]);
    }
    let (outer, n, inner) = if x.rank() == 0 {
        (1, 1, 1)
    } else {
        let a = norm_axis(cx, op.axis, x.rank())?;
        split_at_axis(&x.shape, a, op.coerce_2d)
    };
    let v = f64s(cx, x)?;
    let mut y = vec![0.0f64; v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let base = o * n * inner + i;
            let at = |j: usize| base + j * inner;
            match op.kind {
                SoftmaxKind::Hardmax => {
                    let mut best = 0usize;
                    for j in 1..n {
                        if cmp_nan_max(v[at(j)], v[at(best)]) == std::cmp::Ordering::Greater {
                            best = j;
                        }
                    }
                    y[at(best)] = 1.0;
                }
                SoftmaxKind::Softmax | SoftmaxKind::LogSoftmax => {
                    // numpy's max: NaN propagates (and then every output of the lane is NaN).
                    let mut m = f64::NEG_INFINITY;
                    for j in 0..n {
                        let e = v[at(j)];
                        if e.is_nan() || e > m {
                            m = e;
                            if e.is_nan() {
                                break;
                            }
                        }
                    }
                    let mut s = 0.0f64;
                    for j in 0..n {
                        let e = (v[at(j)] - m).exp();
                        y[at(j)] = e;
                        s += e;
                    }
                    if op.kind == SoftmaxKind::Softmax {
                        for j in 0..n {
                            y[at(j)] /= s;
                        }
                    } else {
                        let ls = s.ln();
                        for j in 0..n {
                            y[at(j)] = v[at(j)] - m - ls;
                        }
                    }
                }
            }
        }
    }
    Ok(vec![Value::Tensor(build_f64(
        cx,
        dtype,
        x.shape.clone(),
        &y,
    )?)])
}

// ---------------------------------------------------------------------------------------------------
// cumulative
// ---------------------------------------------------------------------------------------------------

fn cumulative(op: &Cumulative, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let axis = match cx.i64s(1)?.as_slice() {
        [a] => *a,
        a => {
            return Err(cx.err(format!(
                "axis (input 1) must hold one value, got {}",
                a.len()
            )));
        }
    };
    if x.rank() == 0 {
        return Err(cx.err("input 0 must have rank ≥ 1"));
    }
    let a = norm_axis(cx, axis, x.rank())?;
    let (outer, n, inner) = split_at_axis(&x.shape, a, false);
    let dtype = out_dtype(cx, 0, x.dtype());
    let prod = op.kind == CumKind::Prod;
    // Visits each lane in order (forward or reversed), handing out (position, element index).
    let lanes = |f: &mut dyn FnMut(usize, usize)| {
        for o in 0..outer {
            for i in 0..inner {
                let base = o * n * inner + i;
                for step in 0..n {
                    let j = if op.reverse { n - 1 - step } else { step };
                    f(step, base + j * inner);
                }
            }
        }
    };
    if let (Some(v), true) = (ints(x), x.dtype().is_int()) {
        let mut y = vec![0i128; v.len()];
        let mut acc = 0i128;
        lanes(&mut |step, k| {
            if step == 0 {
                acc = i128::from(prod);
            }
            let before = acc;
            acc = if prod {
                acc.wrapping_mul(v[k])
            } else {
                acc.wrapping_add(v[k])
            };
            y[k] = if op.exclusive { before } else { acc };
        });
        return tensor_out(cx, from_i128(dtype, x.shape.clone(), &y));
    }
    let v = f64s(cx, x)?;
    let mut y = vec![0f64; v.len()];
    let mut acc = 0f64;
    lanes(&mut |step, k| {
        if step == 0 {
            acc = if prod { 1.0 } else { 0.0 };
        }
        let before = acc;
        if prod {
            acc *= v[k];
        } else {
            acc += v[k];
        }
        y[k] = if op.exclusive { before } else { acc };
    });
    Ok(vec![Value::Tensor(build_f64(
        cx,
        dtype,
        x.shape.clone(),
        &y,
    )?)])
}

// ---------------------------------------------------------------------------------------------------
// top_k
// ---------------------------------------------------------------------------------------------------

fn top_k(op: &TopK, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let k = match cx.i64s(1)?.as_slice() {
        [k] => *k,
        k => {
            return Err(cx.err(format!("k (input 1) must hold one value, got {}", k.len())));
        }
    };
    if x.rank() == 0 {
        return Err(cx.err("input 0 must have rank ≥ 1"));
    }
    let a = norm_axis(cx, op.axis, x.rank())?;
    let (outer, n, inner) = split_at_axis(&x.shape, a, false);
    let k = usize::try_from(k).map_err(|_| cx.err(format!("k must be non-negative, got {k}")))?;
    if k > n {
        return Err(cx.err(format!("k = {k} exceeds the size {n} of axis {}", op.axis)));
    }
    let keys = Keys::of(cx, x)?;
    let mut shape = x.shape.clone();
    shape[a] = k;
    let total = outer * k * inner;
    let mut src = vec![0usize; total];
    let mut pos = vec![0i64; total];
    let mut lane: Vec<usize> = Vec::with_capacity(n);
    for o in 0..outer {
        for i in 0..inner {
            let base = o * n * inner + i;
            lane.clear();
            lane.extend(0..n);
            // Best first: by value (largest or smallest, NaN above every number), then lower index.
            let order = |p: &usize, q: &usize| {
                let c = keys.cmp(base + p * inner, base + q * inner);
                let c = if op.largest { c.reverse() } else { c };
                c.then(p.cmp(q))
            };
            if k > 0 && k < n {
                lane.select_nth_unstable_by(k - 1, order);
            }
            lane.truncate(k);
            lane.sort_unstable_by(order);
            for (r, &j) in lane.iter().enumerate() {
                let slot = (o * k + r) * inner + i;
                src[slot] = base + j * inner;
                pos[slot] = j as i64;
            }
        }
    }
    let values =
        Tensor::new(shape.clone(), gather(&x.data, &src)).map_err(|e| tensor_err(cx, e))?;
    let indices = Tensor::new(shape, Data::I64(pos)).map_err(|e| tensor_err(cx, e))?;
    Ok(vec![Value::Tensor(values), Value::Tensor(indices)])
}

// ---------------------------------------------------------------------------------------------------
// lp_norm
// ---------------------------------------------------------------------------------------------------

fn lp_norm(op: &LpNorm, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    if !matches!(op.p, 1 | 2) {
        return Err(cx.err(format!("p must be 1 or 2, got {}", op.p)));
    }
    let dtype = out_dtype(cx, 0, x.dtype());
    let (outer, n, inner) = if x.rank() == 0 {
        (1, 1, 1)
    } else {
        let a = norm_axis(cx, op.axis, x.rank())?;
        split_at_axis(&x.shape, a, false)
    };
    let v = f64s(cx, x)?;
    let mut y = vec![0f64; v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let base = o * n * inner + i;
            let norm = if op.p == 1 {
                (0..n).map(|j| v[base + j * inner].abs()).sum::<f64>()
            } else {
                (0..n)
                    .map(|j| v[base + j * inner].powi(2))
                    .sum::<f64>()
                    .sqrt()
            };
            for j in 0..n {
                let e = base + j * inner;
                // A zero norm gives 0 rather than 0/0 (the ONNX reference's choice).
                y[e] = if norm == 0.0 { 0.0 } else { v[e] / norm };
            }
        }
    }
    Ok(vec![Value::Tensor(build_f64(
        cx,
        dtype,
        x.shape.clone(),
        &y,
    )?)])
}

/// Test support shared with `norm.rs`: runs one op on concrete tensors through a one-node graph.
#[cfg(test)]
pub(crate) mod testing {
    use carve_ir::{Graph, Op, Type};

    use super::super::{RunError, Value, run};
    use crate::tensor::Tensor;

    /// Runs `op` on `inputs` (absent ones as `None`) with `n_out` outputs.
    pub(crate) fn run_op(
        op: impl Into<Op>,
        inputs: Vec<Option<Tensor>>,
        n_out: usize,
    ) -> Result<Vec<Tensor>, RunError> {
        let mut g = Graph::new("t");
        let mut ids = Vec::new();
        let mut vals = Vec::new();
        for (i, t) in inputs.into_iter().enumerate() {
            ids.push(t.map(|t| {
                let v = g.add_input(format!("i{i}"), Type::Tensor(t.ty()));
                vals.push(Value::Tensor(t));
                v
            }));
        }
        let names = (0..n_out).map(|k| format!("o{k}")).collect();
        let outs = g
            .add_node("n", op.into(), ids, names)
            .map_err(|e| RunError {
                node: "n".into(),
                op: "infer".into(),
                msg: e.to_string(),
            })?;
        g.outputs = outs;
        Ok(run(&g, vals)?
            .into_iter()
            .filter_map(|v| v.as_tensor().cloned())
            .collect())
    }

    /// An f32 tensor.
    pub(crate) fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::new(shape.to_vec(), crate::tensor::Data::F32(v.to_vec())).unwrap()
    }

    /// An i64 tensor.
    pub(crate) fn i64s(shape: &[usize], v: &[i64]) -> Tensor {
        Tensor::new(shape.to_vec(), crate::tensor::Data::I64(v.to_vec())).unwrap()
    }

    /// The f32 elements of `t` (panics on other types).
    pub(crate) fn as_f32(t: &Tensor) -> Vec<f32> {
        match &t.data {
            crate::tensor::Data::F32(v) => v.clone(),
            d => panic!("expected f32, got {:?}", d.dtype()),
        }
    }

    /// Asserts that `got` and `want` agree to 1e-5 relative (NaNs in the same places).
    pub(crate) fn close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            let ok =
                (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= 1e-5 * w.abs().max(1.0);
            assert!(ok, "{got:?} vs {want:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{as_f32, close, f32s, i64s, run_op};
    use super::*;

    fn red(kind: ReduceKind, keepdims: bool) -> Reduce {
        Reduce {
            kind,
            keepdims,
            noop_with_empty_axes: false,
        }
    }

    /// A scalar reference for one reduction kind.
    type Formula = fn(&[f32]) -> f32;

    #[test]
    fn every_float_kind_matches_scalar_formulas() {
        let x = [1.0f32, -2.0, 3.0, 0.5, 0.25, 4.0];
        let rows = [&x[..3], &x[3..]];
        let cases: [(ReduceKind, Formula); 10] = [
            (ReduceKind::Sum, |r| r.iter().sum()),
            (ReduceKind::Mean, |r| r.iter().sum::<f32>() / r.len() as f32),
            (ReduceKind::Max, |r| {
                r.iter().copied().fold(f32::MIN, f32::max)
            }),
            (ReduceKind::Min, |r| {
                r.iter().copied().fold(f32::MAX, f32::min)
            }),
            (ReduceKind::Prod, |r| r.iter().product()),
            (ReduceKind::L1, |r| r.iter().map(|x| x.abs()).sum()),
            (ReduceKind::L2, |r| {
                r.iter().map(|x| x * x).sum::<f32>().sqrt()
            }),
            (ReduceKind::LogSum, |r| {
                r.iter().map(|x| x.abs()).sum::<f32>().ln()
            }),
            (ReduceKind::LogSumExp, |r| {
                r.iter().map(|x| x.exp()).sum::<f32>().ln()
            }),
            (ReduceKind::SumSquare, |r| r.iter().map(|x| x * x).sum()),
        ];
        for (kind, f) in cases {
            let input: Vec<f32> = if kind == ReduceKind::LogSum {
                x.iter().map(|v| v.abs()).collect()
            } else {
                x.to_vec()
            };
            let out = run_op(
                red(kind, false),
                vec![Some(f32s(&[2, 3], &input)), Some(i64s(&[1], &[-1]))],
                1,
            )
            .unwrap();
            assert_eq!(out[0].shape, vec![2], "{kind:?}");
            close(&as_f32(&out[0]), &[f(rows[0]), f(rows[1])]);
        }
    }

    #[test]
    fn empty_reductions_give_the_identity() {
        let x = f32s(&[2, 0], &[]);
        let axes = || Some(i64s(&[1], &[1]));
        let want = [
            (ReduceKind::Sum, 0.0),
            (ReduceKind::Prod, 1.0),
            (ReduceKind::Max, f32::NEG_INFINITY),
            (ReduceKind::Min, f32::INFINITY),
            (ReduceKind::LogSum, f32::NEG_INFINITY),
            (ReduceKind::LogSumExp, f32::NEG_INFINITY),
            (ReduceKind::Mean, f32::NAN),
        ];
        for (kind, w) in want {
            let out = run_op(red(kind, true), vec![Some(x.clone()), axes()], 1).unwrap();
            assert_eq!(out[0].shape, vec![2, 1]);
            close(&as_f32(&out[0]), &[w, w]);
        }
        let xi = Tensor::new(vec![2, 0], Data::I32(vec![])).unwrap();
        let out = run_op(red(ReduceKind::Max, false), vec![Some(xi), axes()], 1).unwrap();
        assert_eq!(out[0].data, Data::I32(vec![i32::MIN; 2]));
        let xb = Tensor::new(vec![0], Data::Bool(vec![])).unwrap();
        let out = run_op(red(ReduceKind::Min, false), vec![Some(xb)], 1).unwrap();
        assert_eq!(out[0].data, Data::Bool(vec![true]));
    }

    #[test]
    fn noop_with_empty_axes_still_applies_elementwise_functions() {
        let x = f32s(&[3], &[-1.0, 2.0, -3.0]);
        let noop = |kind| Reduce {
            kind,
            keepdims: false,
            noop_with_empty_axes: true,
        };
        let empty = || Some(i64s(&[0], &[]));
        let out = run_op(noop(ReduceKind::Sum), vec![Some(x.clone()), empty()], 1).unwrap();
        assert_eq!(out[0], x);
        let out = run_op(noop(ReduceKind::SumSquare), vec![Some(x.clone()), None], 1).unwrap();
        close(&as_f32(&out[0]), &[1.0, 4.0, 9.0]);
        let out = run_op(noop(ReduceKind::L1), vec![Some(x), empty()], 1).unwrap();
        close(&as_f32(&out[0]), &[1.0, 2.0, 3.0]);
    }

    #[test]
    fn integer_reductions_are_exact_and_wrap_like_the_element_type() {
        let x = Tensor::new(vec![2], Data::I32(vec![i32::MAX, 1])).unwrap();
        let out = run_op(red(ReduceKind::Sum, false), vec![Some(x)], 1).unwrap();
        assert_eq!(out[0].data, Data::I32(vec![i32::MIN]));
        let x = Tensor::new(vec![3], Data::U64(vec![u64::MAX, 1, 1 << 63])).unwrap();
        let out = run_op(red(ReduceKind::Max, false), vec![Some(x.clone())], 1).unwrap();
        assert_eq!(out[0].data, Data::U64(vec![u64::MAX]));
        let out = run_op(red(ReduceKind::Min, false), vec![Some(x)], 1).unwrap();
        assert_eq!(out[0].data, Data::U64(vec![1]));
        let big = i64s(&[3], &[(1 << 62) + 1, -(1 << 62), (1 << 53) + 1]);
        let out = run_op(red(ReduceKind::Sum, false), vec![Some(big)], 1).unwrap();
        assert_eq!(out[0].data, Data::I64(vec![(1 << 53) + 2]));
        let x = i64s(&[4], &[-7, 2, 2, 0]);
        let out = run_op(red(ReduceKind::Mean, false), vec![Some(x)], 1).unwrap();
        assert_eq!(out[0].data, Data::I64(vec![-0])); // -3/4 truncates toward zero
    }

    #[test]
    fn max_propagates_nan_and_log_sum_exp_is_stable() {
        let x = f32s(&[3], &[1.0, f32::NAN, 2.0]);
        let out = run_op(red(ReduceKind::Max, false), vec![Some(x)], 1).unwrap();
        assert!(as_f32(&out[0])[0].is_nan());
        let x = f32s(
            &[2, 2],
            &[1000.0, 1000.0, f32::NEG_INFINITY, f32::NEG_INFINITY],
        );
        let out = run_op(
            red(ReduceKind::LogSumExp, false),
            vec![Some(x), Some(i64s(&[1], &[1]))],
            1,
        )
        .unwrap();
        close(
            &as_f32(&out[0]),
            &[1000.0 + std::f32::consts::LN_2, f32::NEG_INFINITY],
        );
    }

    #[test]
    fn arg_reduce_breaks_ties_by_first_or_last_index() {
        let x = f32s(&[2, 4], &[1.0, 5.0, 5.0, 2.0, 3.0, f32::NAN, 1.0, f32::NAN]);
        let arg = |kind, last| ArgReduce {
            kind,
            axis: 1,
            keepdims: false,
            select_last_index: last,
        };
        let got = |op| {
            run_op(op, vec![Some(x.clone())], 1).unwrap()[0]
                .data
                .clone()
        };
        assert_eq!(got(arg(ArgKind::Max, false)), Data::I64(vec![1, 1]));
        assert_eq!(got(arg(ArgKind::Max, true)), Data::I64(vec![2, 3]));
        assert_eq!(got(arg(ArgKind::Min, false)), Data::I64(vec![0, 1]));
        let keep = ArgReduce {
            axis: 0,
            ..ArgReduce::default()
        };
        let out = run_op(keep, vec![Some(x.clone())], 1).unwrap();
        assert_eq!(out[0].shape, vec![1, 4]);
        assert_eq!(out[0].data, Data::I64(vec![1, 1, 0, 1])); // NaN wins
    }

    #[test]
    fn softmax_is_stable_and_coerce_2d_normalizes_trailing_axes_jointly() {
        let sm = |kind, axis, coerce_2d| Softmax {
            kind,
            axis,
            coerce_2d,
        };
        let x = f32s(&[2], &[1000.0, 0.0]);
        let out = run_op(
            sm(SoftmaxKind::Softmax, -1, false),
            vec![Some(x.clone())],
            1,
        )
        .unwrap();
        close(&as_f32(&out[0]), &[1.0, 0.0]);
        let out = run_op(sm(SoftmaxKind::LogSoftmax, -1, false), vec![Some(x)], 1).unwrap();
        close(&as_f32(&out[0]), &[0.0, -1000.0]);
        let x = f32s(&[1, 2, 2], &[0.0, 0.0, 0.0, 0.0]);
        let out = run_op(sm(SoftmaxKind::Softmax, 1, true), vec![Some(x.clone())], 1).unwrap();
        close(&as_f32(&out[0]), &[0.25; 4]);
        let out = run_op(sm(SoftmaxKind::Softmax, 1, false), vec![Some(x)], 1).unwrap();
        close(&as_f32(&out[0]), &[0.5; 4]);
        let x = f32s(&[2, 3], &[1.0, 3.0, 3.0, f32::NAN, 0.0, f32::NAN]);
        let out = run_op(sm(SoftmaxKind::Hardmax, 1, false), vec![Some(x)], 1).unwrap();
        close(&as_f32(&out[0]), &[0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn cumulative_exclusive_reverse_and_integers() {
        let x = i64s(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let cum = |kind, exclusive, reverse| Cumulative {
            kind,
            exclusive,
            reverse,
        };
        let axis = || Some(i64s(&[], &[1]));
        let got = |op| {
            run_op(op, vec![Some(x.clone()), axis()], 1).unwrap()[0]
                .data
                .clone()
        };
        assert_eq!(
            got(cum(CumKind::Sum, false, false)),
            Data::I64(vec![1, 3, 6, 4, 9, 15])
        );
        assert_eq!(
            got(cum(CumKind::Sum, true, true)),
            Data::I64(vec![5, 3, 0, 11, 6, 0])
        );
        assert_eq!(
            got(cum(CumKind::Prod, true, false)),
            Data::I64(vec![1, 1, 2, 1, 4, 20])
        );
        let f = f32s(&[3], &[1.0, 2.0, 3.0]);
        let out = run_op(
            cum(CumKind::Prod, false, true),
            vec![Some(f), Some(i64s(&[1], &[0]))],
            1,
        )
        .unwrap();
        close(&as_f32(&out[0]), &[6.0, 6.0, 3.0]);
    }

    #[test]
    fn top_k_orders_ties_by_lower_index_and_nan_as_largest() {
        let x = f32s(&[7], &[3.0, 1.0, 3.0, 2.0, f32::NAN, 1.0, 3.0]);
        let tk = |largest| TopK {
            axis: -1,
            largest,
            sorted: true,
        };
        let out = run_op(tk(true), vec![Some(x.clone()), Some(i64s(&[1], &[3]))], 2).unwrap();
        assert_eq!(out[1].data, Data::I64(vec![4, 0, 2]));
        let v = as_f32(&out[0]);
        assert!(v[0].is_nan() && v[1] == 3.0 && v[2] == 3.0);
        let out = run_op(tk(false), vec![Some(x), Some(i64s(&[1], &[4]))], 2).unwrap();
        assert_eq!(out[1].data, Data::I64(vec![1, 5, 3, 0]));
        close(&as_f32(&out[0]), &[1.0, 1.0, 2.0, 3.0]);
        let x = i64s(&[3, 2], &[5, 1, 5, 9, 7, 9]);
        let op = TopK {
            axis: 0,
            ..TopK::default()
        };
        let out = run_op(op, vec![Some(x), Some(i64s(&[1], &[2]))], 2).unwrap();
        assert_eq!(out[0].data, Data::I64(vec![7, 9, 5, 9]));
        assert_eq!(out[1].data, Data::I64(vec![2, 1, 0, 2]));
    }

    #[test]
    fn lp_norm_divides_by_the_norm_and_maps_zero_rows_to_zero() {
        let x = f32s(&[2, 2], &[3.0, -4.0, 0.0, 0.0]);
        let out = run_op(LpNorm { axis: 1, p: 2 }, vec![Some(x.clone())], 1).unwrap();
        close(&as_f32(&out[0]), &[0.6, -0.8, 0.0, 0.0]);
        let out = run_op(LpNorm { axis: 1, p: 1 }, vec![Some(x)], 1).unwrap();
        close(&as_f32(&out[0]), &[3.0 / 7.0, -4.0 / 7.0, 0.0, 0.0]);
    }

    #[test]
    fn reduced_index_maps_elements_to_their_slot() {
        let idx: Vec<usize> = ReducedIndex::new(&[2, 3, 2], &[false, true, false]).collect();
        assert_eq!(idx, vec![0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3]);
        let idx: Vec<usize> = ReducedIndex::new(&[2, 2], &[true, false]).collect();
        assert_eq!(idx, vec![0, 1, 0, 1]);
    }
}
