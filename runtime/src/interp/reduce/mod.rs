//! Interpreter kernels for the reduce op family (`carve_ir::ops::reduce`): `reduce` of every kind,
//! `arg_reduce`, the softmax family, `cumulative`, `top_k` and `lp_norm`, one file per family
//! ([`aggregate`], [`arg`], [`softmax`], [`scan`], [`top_k`], [`lp_norm`]); shared helpers here.
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

mod aggregate;
mod arg;
mod lp_norm;
mod scan;
mod softmax;
#[cfg(test)]
mod tests;
mod top_k;

use aggregate::reduce;
use arg::arg_reduce;
use lp_norm::lp_norm;
use scan::cumulative;
use softmax::softmax;
use top_k::top_k;

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
