//! Reductions and their relatives: `reduce` (every ONNX `Reduce*` op), `arg_reduce` (ArgMax/ArgMin),
//! `softmax` (Softmax/LogSoftmax/Hardmax), `cumulative` (CumSum/CumProd), `top_k` and `lp_norm`
//! (LpNormalization), with their type inference.
//!
//! Variants that differ only in the combining function are one op with a keyword `kind`
//! (`reduce {kind=l2}`, `arg_reduce {kind=min}`, `softmax {kind=hardmax}`, `cumulative {kind=prod}`):
//! they share shape rules and a kernel skeleton. Reduction axes, the cumulative axis and `k` are inputs,
//! as in the newest ONNX opsets; inference reads them when they are known.
//!
//! `softmax {coerce_2d=true}` carries the ONNX opset < 13 semantics: the input is viewed as a matrix
//! `[prod(dims[..axis]), prod(dims[axis..])]` and each row is normalized, i.e. all axes from `axis` to the
//! last are normalized jointly. The importer sets it only when `axis` is not already the last axis.

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError, SymInt, normalize_axis};
use crate::ops::props::norm_axis;
use crate::ops::{ChannelMap, NodeTypes, Work};
use crate::{DType, Dim, Shape, TensorType, Type};

crate::attr_enum! {
    /// What `reduce` combines the elements of each reduced slice with.
    pub enum ReduceKind {
        /// Σx (ONNX ReduceSum).
        Sum = "sum",
        /// Σx / n (ReduceMean).
        Mean = "mean",
        /// max x (ReduceMax).
        Max = "max",
        /// min x (ReduceMin).
        Min = "min",
        /// Πx (ReduceProd).
        Prod = "prod",
        /// Σ|x| (ReduceL1).
        L1 = "l1",
        /// √Σx² (ReduceL2).
        L2 = "l2",
        /// log Σx (ReduceLogSum).
        LogSum = "log_sum",
        /// log Σeˣ (ReduceLogSumExp).
        LogSumExp = "log_sum_exp",
        /// Σx² (ReduceSumSquare).
        SumSquare = "sum_square",
    }
}

crate::attr_enum! {
    /// Which extremum `arg_reduce` locates.
    pub enum ArgKind {
        /// Index of the largest element (ONNX ArgMax).
        Max = "max",
        /// Index of the smallest element (ONNX ArgMin).
        Min = "min",
    }
}

crate::attr_enum! {
    /// The normalization `softmax` applies along its axis.
    pub enum SoftmaxKind {
        /// eˣ / Σeˣ (ONNX Softmax).
        Softmax = "softmax",
        /// x − log Σeˣ (LogSoftmax).
        LogSoftmax = "log_softmax",
        /// 1 at the first maximum, 0 elsewhere (Hardmax).
        Hardmax = "hardmax",
    }
}

crate::attr_enum! {
    /// The running combination `cumulative` computes.
    pub enum CumKind {
        /// Running sum (ONNX CumSum).
        Sum = "sum",
        /// Running product (CumProd).
        Prod = "prod",
    }
}

define_ops! {
    /// Reductions, arg-reductions, softmax family, cumulative ops, top-k.
    pub enum ReduceOp {
        /// Reduces input 0 over the axes given by optional input 1 (i64 vector; negative = from the end).
        /// Absent or empty axes reduce every axis, or nothing when `noop_with_empty_axes`. Reduced axes are
        /// kept with size 1 when `keepdims`.
        Reduce = "reduce" {
            /// The combining function.
            kind: ReduceKind = ReduceKind::Sum,
            /// Keep reduced axes as size-1 dims.
            keepdims: bool = true,
            /// With empty axes, return the input unchanged instead of reducing everything.
            noop_with_empty_axes: bool = false,
        },
        /// Index (i64) of the extremum along `axis`; ties resolve to the first index, or the last when
        /// `select_last_index`.
        ArgReduce = "arg_reduce" {
            /// Maximum or minimum.
            kind: ArgKind = ArgKind::Max,
            /// The reduced axis (negative = from the end).
            axis: i64 = 0,
            /// Keep the reduced axis with size 1.
            keepdims: bool = true,
            /// Resolve ties to the last index.
            select_last_index: bool = false,
        },
        /// Softmax, log-softmax or hardmax along `axis` (see the module doc for `coerce_2d`).
        Softmax = "softmax" {
            /// Which normalization.
            kind: SoftmaxKind = SoftmaxKind::Softmax,
            /// The normalized axis (negative = from the end).
            axis: i64 = -1,
            /// Normalize all axes from `axis` to the last jointly (ONNX opset < 13).
            coerce_2d: bool = false,
        },
        /// Running sum or product of input 0 along the axis given by input 1 (an integer scalar or
        /// one-element vector).
        Cumulative = "cumulative" {
            /// Sum or product.
            kind: CumKind = CumKind::Sum,
            /// Element i combines elements before i only (the first is the identity).
            exclusive: bool = false,
            /// Run from the end of the axis towards its start.
            reverse: bool = false,
        },
        /// The `k` (input 1, a one-element i64 vector) largest or smallest elements along `axis` and their
        /// i64 indices: two outputs. Ties keep the lower index first.
        TopK = "top_k" {
            /// The axis searched (negative = from the end).
            axis: i64 = -1,
            /// Largest (true) or smallest elements.
            largest: bool = true,
            /// Return the elements in sorted order.
            sorted: bool = true,
        },
        /// `x / ‖x‖_p` along `axis` (p is 1 or 2).
        LpNorm = "lp_norm" {
            /// The normalized axis (negative = from the end).
            axis: i64 = -1,
            /// The norm's order: 1 or 2.
            p: i64 = 2,
        },
    }
}

impl ReduceOp {
    /// Properties (see [`crate::ops::Props`]): pure, not elementwise.
    pub fn props(&self) -> crate::ops::Props {
        crate::ops::Props::NONE
    }

    /// Arithmetic (see [`Work`]): two operations per input element plus one per output element.
    pub fn work(&self, t: &NodeTypes) -> Option<Work> {
        Some(Work::arith(2.0 * t.in_elems(0)? + t.out_elems()?))
    }

    /// Channel map (see [`ChannelMap`]): ops along one `axis` that keep the rank (`softmax`, `lp_norm`,
    /// `cumulative`'s is an input, so opaque) tie every other axis `c → c`; the rest are opaque.
    pub fn channels(&self, t: &NodeTypes) -> ChannelMap {
        let axis = match self {
            Self::Softmax(s) if !s.coerce_2d => s.axis,
            Self::LpNorm(l) => l.axis,
            _ => return ChannelMap::Opaque,
        };
        let Some(r) = t.input(0).and_then(TensorType::rank) else {
            return ChannelMap::Opaque;
        };
        let Some(axis) = norm_axis(axis, r) else {
            return ChannelMap::Opaque;
        };
        let from: Vec<Option<usize>> = (0..r).map(|a| (a != axis).then_some(a)).collect();
        ChannelMap::axes(&from)
    }
}

/// A tensor type of `dtype` with shape `shape` (`None` = unranked), not quantized.
fn tensor(dtype: DType, shape: Option<Shape>) -> Type {
    Type::Tensor(TensorType {
        dtype,
        shape,
        quant: None,
    })
}

fn axis_of(cx: &InferCtx, axis: i64, rank: usize) -> Result<usize, InferError> {
    normalize_axis(axis, rank).map_err(|m| cx.err(m))
}

fn numeric(cx: &InferCtx, i: usize) -> Result<DType, InferError> {
    let d = cx.dtype(i)?;
    if matches!(d, DType::String | DType::Bool) || d.is_complex() {
        return Err(cx.err(format!(
            "input {i} must be a numeric tensor, got element type {d}"
        )));
    }
    Ok(d)
}

fn float(cx: &InferCtx, i: usize) -> Result<DType, InferError> {
    let d = cx.dtype(i)?;
    if !d.is_float() {
        return Err(cx.err(format!(
            "input {i} must be a floating-point tensor, got element type {d}"
        )));
    }
    Ok(d)
}

/// The axes a `reduce` node reduces, as far as they are known.
enum Axes {
    /// Every axis.
    All,
    /// None (`noop_with_empty_axes` with empty axes).
    Noop,
    /// These axes, normalized and sorted (input rank known).
    Known(Vec<usize>),
    /// Some axes; how many when known.
    Unknown(Option<usize>),
}

fn reduce_axes(cx: &InferCtx, op: &Reduce, rank: Option<usize>) -> Result<Axes, InferError> {
    let empty = if op.noop_with_empty_axes {
        Axes::Noop
    } else {
        Axes::All
    };
    if !cx.has_input(1) {
        return Ok(empty);
    }
    let a = cx.tensor(1)?;
    if !a.dtype.is_int() {
        return Err(cx.err(format!(
            "axes (input 1) must be an integer tensor, got {}",
            a.dtype
        )));
    }
    if a.rank().is_some_and(|r| r > 1) {
        return Err(cx.err(format!("axes (input 1) must be a 1-D tensor, got {a}")));
    }
    if let Some(v) = cx.known_i64s(1) {
        if v.is_empty() {
            return Ok(empty);
        }
        let Some(r) = rank else {
            return Ok(Axes::Unknown(Some(v.len())));
        };
        return Ok(Axes::Known(normalize_axes(cx, &v, r)?));
    }
    match a.dims() {
        Some([Dim::Known(0)]) => Ok(empty),
        Some([Dim::Known(n)]) => Ok(Axes::Unknown(usize::try_from(*n).ok())),
        _ => Ok(Axes::Unknown(None)),
    }
}

/// Normalizes `axes` against `rank`, rejecting out-of-range and repeated axes; sorted.
pub(crate) fn normalize_axes(
    cx: &InferCtx,
    axes: &[i64],
    rank: usize,
) -> Result<Vec<usize>, InferError> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = axis_of(cx, a, rank)?;
        if out.contains(&n) {
            return Err(cx.err(format!("axis {a} is listed twice in {axes:?}")));
        }
        out.push(n);
    }
    out.sort_unstable();
    Ok(out)
}

/// The shape left after reducing `axes` of `dims`.
fn reduced_dims(dims: &[Dim], axes: &[usize], keepdims: bool) -> Shape {
    let mut out = Vec::with_capacity(dims.len());
    for (i, d) in dims.iter().enumerate() {
        if !axes.contains(&i) {
            out.push(d.clone());
        } else if keepdims {
            out.push(Dim::Known(1));
        }
    }
    Shape(out)
}

impl Infer for Reduce {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = if matches!(self.kind, ReduceKind::Max | ReduceKind::Min) {
            // ReduceMax/ReduceMin also take bool.
            let d = cx.dtype(0)?;
            if d == DType::Bool { d } else { numeric(cx, 0)? }
        } else {
            numeric(cx, 0)?
        };
        let x = cx.tensor(0)?;
        let dims = x.dims();
        let shape = match (reduce_axes(cx, self, dims.map(<[Dim]>::len))?, dims) {
            (Axes::Noop, _) => x.shape.clone(),
            (Axes::All, Some(d)) => Some(reduced_dims(
                d,
                &(0..d.len()).collect::<Vec<_>>(),
                self.keepdims,
            )),
            (Axes::All, None) => (!self.keepdims).then(Shape::scalar),
            (Axes::Known(axes), Some(d)) => Some(reduced_dims(d, &axes, self.keepdims)),
            (Axes::Unknown(_), Some(d)) if self.keepdims => Some(Shape(
                d.iter()
                    .map(|d| match d {
                        Dim::Known(1) => Dim::Known(1),
                        _ => Dim::Unknown,
                    })
                    .collect(),
            )),
            (Axes::Unknown(Some(n)), Some(d)) => {
                let r = d.len().checked_sub(n).ok_or_else(|| {
                    cx.err(format!("{n} axes given for a rank-{} input", d.len()))
                })?;
                Some(Shape(vec![Dim::Unknown; r]))
            }
            _ => None,
        };
        Ok(vec![tensor(dtype, shape)])
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let vals = cx.sym_value(0)?;
        let axes = if cx.has_input(1) {
            cx.known_i64s(1)?
        } else {
            Vec::new()
        };
        if axes.is_empty() && self.noop_with_empty_axes {
            return Some(vals);
        }
        // A rank ≤ 1 input: any valid axes reduce everything to one element.
        let r = cx.tensor(0).ok()?.rank()?;
        if axes.iter().any(|&a| normalize_axis(a, r).is_err()) {
            return None;
        }
        let ints: Option<Vec<i64>> = vals.iter().map(SymInt::int).collect();
        let v = match self.kind {
            ReduceKind::Sum => sym_fold(&vals, 0, i64::checked_add),
            ReduceKind::Prod => sym_fold(&vals, 1, i64::checked_mul),
            ReduceKind::Max => ints?.into_iter().max().map_or(SymInt::Unknown, SymInt::Int),
            ReduceKind::Min => ints?.into_iter().min().map_or(SymInt::Unknown, SymInt::Int),
            _ => return None,
        };
        Some(vec![v])
    }
}

/// Folds integers with `f` from `identity`; a single symbol survives when the integers fold to the
/// identity (`N·1 = N`, `N+0 = N`).
fn sym_fold(vals: &[SymInt], identity: i64, f: fn(i64, i64) -> Option<i64>) -> SymInt {
    let mut acc = identity;
    let mut sym = None;
    for v in vals {
        match v {
            SymInt::Int(n) => match f(acc, *n) {
                Some(x) => acc = x,
                None => return SymInt::Unknown,
            },
            SymInt::Sym(s) if sym.is_none() => sym = Some(s.clone()),
            _ => return SymInt::Unknown,
        }
    }
    match sym {
        None => SymInt::Int(acc),
        Some(s) if acc == identity => SymInt::Sym(s),
        Some(_) => SymInt::Unknown,
    }
}

impl Infer for ArgReduce {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        numeric(cx, 0)?;
        let shape = match cx.tensor(0)?.dims() {
            Some(dims) => {
                let a = axis_of(cx, self.axis, dims.len())?;
                Some(reduced_dims(dims, &[a], self.keepdims))
            }
            None => None,
        };
        Ok(vec![tensor(DType::I64, shape)])
    }
}

impl Infer for Softmax {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        let x = cx.tensor(0)?;
        if let Some(r) = x.rank() {
            axis_of(cx, self.axis, r)?;
        }
        Ok(vec![tensor(dtype, x.shape.clone())])
    }
}

impl Infer for Cumulative {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = numeric(cx, 0)?;
        let x = cx.tensor(0)?;
        if x.rank() == Some(0) {
            return Err(cx.err("input 0 must have rank ≥ 1"));
        }
        let a = cx.tensor(1)?;
        if !matches!(a.dtype, DType::I32 | DType::I64) {
            return Err(cx.err(format!(
                "axis (input 1) must be an i32 or i64 tensor, got {}",
                a.dtype
            )));
        }
        if a.shape
            .as_ref()
            .and_then(Shape::num_elements)
            .is_some_and(|n| n != 1)
        {
            return Err(cx.err(format!("axis (input 1) must hold one value, got {a}")));
        }
        if let (Some(v), Some(r)) = (cx.known_i64s(1), x.rank())
            && let Some(&axis) = v.first()
        {
            axis_of(cx, axis, r)?;
        }
        Ok(vec![tensor(dtype, x.shape.clone())])
    }
}

impl Infer for TopK {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = numeric(cx, 0)?;
        let x = cx.tensor(0)?;
        let k = cx.tensor(1)?;
        if !k.dtype.is_int() {
            return Err(cx.err(format!("k (input 1) must be i64, got {}", k.dtype)));
        }
        if k.shape
            .as_ref()
            .and_then(Shape::num_elements)
            .is_some_and(|n| n != 1)
        {
            return Err(cx.err(format!("k (input 1) must hold one value, got {k}")));
        }
        let k_dim = match cx.sym_value(1).as_deref() {
            Some([SymInt::Int(n)]) if *n < 0 => {
                return Err(cx.err(format!("k must be non-negative, got {n}")));
            }
            Some([v]) => v.to_dim(),
            _ => Dim::Unknown,
        };
        let shape = match x.dims() {
            Some(dims) => {
                let a = axis_of(cx, self.axis, dims.len())?;
                if let (Dim::Known(k), Dim::Known(n)) = (&k_dim, &dims[a])
                    && k > n
                {
                    return Err(cx.err(format!(
                        "k = {k} exceeds the size {n} of axis {}",
                        self.axis
                    )));
                }
                let mut d = dims.to_vec();
                d[a] = k_dim;
                Some(Shape(d))
            }
            None => None,
        };
        let mut out = vec![tensor(dtype, shape.clone()), tensor(DType::I64, shape)];
        out.truncate(cx.num_outputs());
        Ok(out)
    }
}

impl Infer for LpNorm {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        if !matches!(self.p, 1 | 2) {
            return Err(cx.err(format!("p must be 1 or 2, got {}", self.p)));
        }
        let dtype = float(cx, 0)?;
        let x = cx.tensor(0)?;
        if let Some(r) = x.rank() {
            axis_of(cx, self.axis, r)?;
        }
        Ok(vec![tensor(dtype, x.shape.clone())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Constant, Graph};

    use crate::ops::testutil::{input, k, run, sym};

    #[test]
    fn reduce_with_constant_axes_keeps_or_drops_dims() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[sym("N"), k(3), k(4)]);
        let axes = g.add_const("a", Constant::from_i64s(&[2], &[-1, 1]));
        let keep = Reduce::default();
        assert_eq!(
            run(&mut g, keep, &[Some(x), Some(axes)], 1).unwrap(),
            ["f32[N,1,1]"]
        );
        let drop = Reduce {
            kind: ReduceKind::L2,
            keepdims: false,
            ..Reduce::default()
        };
        assert_eq!(
            run(&mut g, drop, &[Some(x), Some(axes)], 1).unwrap(),
            ["f32[N]"]
        );
    }

    #[test]
    fn reduce_without_axes_reduces_all_or_nothing() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::I32, &[k(2), k(3)]);
        let all = Reduce {
            keepdims: false,
            ..Reduce::default()
        };
        assert_eq!(run(&mut g, all, &[Some(x)], 1).unwrap(), ["i32[]"]);
        let empty = g.add_const("e", Constant::from_i64s(&[0], &[]));
        let noop = Reduce {
            noop_with_empty_axes: true,
            ..Reduce::default()
        };
        assert_eq!(
            run(&mut g, noop, &[Some(x), Some(empty)], 1).unwrap(),
            ["i32[2,3]"]
        );
    }

    #[test]
    fn reduce_with_runtime_axes_gives_unknown_dims() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[k(2), k(1), k(5)]);
        let axes = input(&mut g, "a", DType::I64, &[k(1)]);
        assert_eq!(
            run(&mut g, Reduce::default(), &[Some(x), Some(axes)], 1).unwrap(),
            ["f32[?,1,?]"]
        );
        let drop = Reduce {
            keepdims: false,
            ..Reduce::default()
        };
        assert_eq!(
            run(&mut g, drop, &[Some(x), Some(axes)], 1).unwrap(),
            ["f32[?,?]"]
        );
    }

    #[test]
    fn reduce_rejects_out_of_range_and_repeated_axes() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[k(2), k(3)]);
        let bad = g.add_const("a", Constant::from_i64s(&[1], &[2]));
        assert!(run(&mut g, Reduce::default(), &[Some(x), Some(bad)], 1).is_err());
        let twice = g.add_const("b", Constant::from_i64s(&[2], &[1, -1]));
        assert!(run(&mut g, Reduce::default(), &[Some(x), Some(twice)], 1).is_err());
    }

    #[test]
    fn reduce_prod_of_a_shape_is_evaluated_symbolically() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[sym("N"), k(1), k(1)]);
        let s = g
            .add_node(
                "s",
                crate::ops::movement::ShapeOf::default().into(),
                vec![Some(x)],
                vec!["s".into()],
            )
            .unwrap()[0];
        let p = g
            .add_node(
                "p",
                Reduce {
                    kind: ReduceKind::Prod,
                    keepdims: false,
                    ..Reduce::default()
                }
                .into(),
                vec![Some(s)],
                vec!["p".into()],
            )
            .unwrap()[0];
        assert_eq!(
            crate::infer::sym_value_of(&g, p, 0),
            Some(vec![SymInt::Sym("N".into())])
        );
    }

    #[test]
    fn arg_reduce_gives_i64_indices() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F16, &[k(2), sym("S"), k(4)]);
        let op = ArgReduce {
            kind: ArgKind::Min,
            axis: -2,
            keepdims: false,
            ..ArgReduce::default()
        };
        assert_eq!(run(&mut g, op, &[Some(x)], 1).unwrap(), ["i64[2,4]"]);
        let bad = ArgReduce {
            axis: 3,
            ..ArgReduce::default()
        };
        assert!(run(&mut g, bad, &[Some(x)], 1).is_err());
    }

    #[test]
    fn softmax_needs_floats_and_a_valid_axis() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[sym("N"), k(10)]);
        assert_eq!(
            run(&mut g, Softmax::default(), &[Some(x)], 1).unwrap(),
            ["f32[N,10]"]
        );
        let bad = Softmax {
            axis: 2,
            ..Softmax::default()
        };
        assert!(run(&mut g, bad, &[Some(x)], 1).is_err());
        let i = input(&mut g, "i", DType::I32, &[k(3)]);
        assert!(run(&mut g, Softmax::default(), &[Some(i)], 1).is_err());
    }

    #[test]
    fn cumulative_checks_its_axis_input() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::I32, &[k(5)]);
        let axis = g.add_const("a", Constant::from_i64s(&[], &[0]));
        assert_eq!(
            run(&mut g, Cumulative::default(), &[Some(x), Some(axis)], 1).unwrap(),
            ["i32[5]"]
        );
        let bad = g.add_const("b", Constant::from_i64s(&[], &[1]));
        assert!(run(&mut g, Cumulative::default(), &[Some(x), Some(bad)], 1).is_err());
    }

    #[test]
    fn top_k_has_values_and_indices() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[k(3), k(4)]);
        let kk = g.add_const("k", Constant::from_i64s(&[1], &[3]));
        assert_eq!(
            run(&mut g, TopK::default(), &[Some(x), Some(kk)], 2).unwrap(),
            ["f32[3,3]", "i64[3,3]"]
        );
        let dynamic = input(&mut g, "kd", DType::I64, &[k(1)]);
        assert_eq!(
            run(&mut g, TopK::default(), &[Some(x), Some(dynamic)], 2).unwrap(),
            ["f32[3,?]", "i64[3,?]"]
        );
        let big = g.add_const("big", Constant::from_i64s(&[1], &[5]));
        assert!(run(&mut g, TopK::default(), &[Some(x), Some(big)], 2).is_err());
    }

    #[test]
    fn lp_norm_accepts_only_p_1_or_2() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[k(3), k(4)]);
        assert_eq!(
            run(&mut g, LpNorm::default(), &[Some(x)], 1).unwrap(),
            ["f32[3,4]"]
        );
        let bad = LpNorm {
            p: 3,
            ..LpNorm::default()
        };
        assert!(run(&mut g, bad, &[Some(x)], 1).is_err());
    }
}
