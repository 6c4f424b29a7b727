//! Interpreter kernels for the conv op family (`carve_ir::ops::conv`): convolutions (im2col/col2im around
//! the shared GEMM), pooling, and the ROI ops. Window geometry comes from `carve_ir::ops::conv`
//! ([`window_output`], [`transposed_output`]) so that execution agrees with shape inference.
//!
//! Float kernels run in f32 for f32/f16/bf16 inputs (rounded once to the output dtype at the end) and in
//! f64 for f64 inputs; the [`Real`] trait abstracts over the two precisions.

mod convolution;
mod pool;
mod roi;

/// The grouped convolution core, shared with the integer convolutions of `interp::quant`.
pub(crate) use convolution::conv_core;

use std::borrow::Cow;

use carve_ir::DType;
/// Window attributes from an op's lists (shared with inference and codegen).
pub(crate) use carve_ir::ops::conv::window_attrs as attrs;
use carve_ir::ops::conv::{ConvOp, WindowAttrs, window_output};
use half::{bf16, f16};

use super::util::{self, checked_numel};
use super::{EvalCtx, RunError, Value};
use crate::tensor::{Data, Tensor};

/// Evaluates one conv op.
pub fn eval(op: &ConvOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    match op {
        ConvOp::Conv(o) if super::quant::typed::is_quantized(cx, 0) => {
            super::quant::typed::conv(o, cx)
        }
        ConvOp::Conv(o) => convolution::conv(o, cx),
        ConvOp::ConvTranspose(o) => convolution::conv_transpose(o, cx),
        ConvOp::DeformConv(o) => convolution::deform_conv(o, cx),
        ConvOp::CausalConv(o) => convolution::causal_conv(o, cx),
        ConvOp::Pool(o) => pool::pool(o, cx),
        ConvOp::GlobalPool(o) => pool::global_pool(o, cx),
        ConvOp::MaxUnpool(o) => pool::max_unpool(o, cx),
        ConvOp::MaxRoiPool(o) => roi::max_roi_pool(o, cx),
        ConvOp::RoiAlign(o) => roi::roi_align(o, cx),
    }
}

// ---------------------------------------------------------------------------------------------------
// Precision abstraction
// ---------------------------------------------------------------------------------------------------

/// A float type kernels compute in (f32 or f64): arithmetic, the matching GEMM, and conversion from and
/// to tensor storage. (A candidate for `util.rs`: the rnn kernels use it too.)
pub(crate) trait Real:
    Copy
    + Default
    + PartialOrd
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::ops::MulAssign
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// From f64 (rounded).
    fn of(x: f64) -> Self;
    /// To f64 (exact).
    fn f64(self) -> f64;
    /// Row-major GEMM as [`util::sgemm`].
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        lda: usize,
        b: &[Self],
        ldb: usize,
        c: &mut [Self],
        ldc: usize,
        accumulate: bool,
    );
    /// The elements of `d` when it already stores this type.
    fn borrow(d: &Data) -> Option<&[Self]>;
    /// Storage of `dtype` (a float type) holding `v` rounded once.
    fn into_data(v: Vec<Self>, dtype: DType) -> Option<Data>;
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    fn of(x: f64) -> f32 {
        x as f32
    }
    fn f64(self) -> f64 {
        f64::from(self)
    }
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) {
        util::sgemm(m, k, n, a, lda, b, ldb, c, ldc, accumulate);
    }
    fn borrow(d: &Data) -> Option<&[f32]> {
        match d {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }
    fn into_data(v: Vec<f32>, dtype: DType) -> Option<Data> {
        Some(match dtype {
            DType::F32 => Data::F32(v),
            DType::F16 => Data::F16(v.iter().map(|&x| f16::from_f32(x)).collect()),
            DType::BF16 => Data::BF16(v.iter().map(|&x| bf16::from_f32(x)).collect()),
            DType::F64 => Data::F64(v.iter().map(|&x| f64::from(x)).collect()),
            _ => return None,
        })
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    fn of(x: f64) -> f64 {
        x
    }
    fn f64(self) -> f64 {
        self
    }
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[f64],
        lda: usize,
        b: &[f64],
        ldb: usize,
        c: &mut [f64],
        ldc: usize,
        accumulate: bool,
    ) {
        util::dgemm(m, k, n, a, lda, b, ldb, c, ldc, accumulate);
    }
    fn borrow(d: &Data) -> Option<&[f64]> {
        match d {
            Data::F64(v) => Some(v),
            _ => None,
        }
    }
    fn into_data(v: Vec<f64>, dtype: DType) -> Option<Data> {
        Some(match dtype {
            DType::F64 => Data::F64(v),
            DType::F32 => Data::F32(v.iter().map(|&x| x as f32).collect()),
            DType::F16 => Data::F16(v.iter().map(|&x| f16::from_f64(x)).collect()),
            DType::BF16 => Data::BF16(v.iter().map(|&x| bf16::from_f64(x)).collect()),
            _ => return None,
        })
    }
}

/// The elements of float tensor `t` in precision `T` (borrowed when already stored so).
pub(crate) fn reals<'t, T: Real>(cx: &EvalCtx, t: &'t Tensor) -> Result<Cow<'t, [T]>, RunError> {
    if let Some(v) = T::borrow(&t.data) {
        return Ok(Cow::Borrowed(v));
    }
    match t.data {
        Data::F32(_) | Data::F64(_) | Data::F16(_) | Data::BF16(_) => {}
        _ => {
            return Err(cx.err(format!(
                "expects a floating-point tensor, got {}",
                t.dtype()
            )));
        }
    }
    let v = util::to_f64(t).map_err(|e| cx.err(e.0))?;
    Ok(Cow::Owned(v.into_iter().map(T::of).collect()))
}

/// A tensor of float `dtype` from values computed in `T`.
pub(crate) fn real_tensor<T: Real>(
    cx: &EvalCtx,
    dtype: DType,
    shape: Vec<usize>,
    v: Vec<T>,
) -> Result<Tensor, RunError> {
    let data =
        T::into_data(v, dtype).ok_or_else(|| cx.err(format!("cannot produce a {dtype} result")))?;
    Tensor::new(shape, data).map_err(|e| cx.err(e.0))
}

/// The dtype of output `k` (from the node's IR type), falling back to `fallback`.
pub(crate) fn out_dtype(cx: &EvalCtx, k: usize, fallback: DType) -> DType {
    match cx.output_type(k) {
        Some(carve_ir::Type::Tensor(t)) => t.dtype,
        _ => fallback,
    }
}

/// True when computations on `dtype` run in f64 rather than f32.
pub(crate) fn wide(dtype: DType) -> bool {
    dtype == DType::F64
}

// ---------------------------------------------------------------------------------------------------
// Window geometry
// ---------------------------------------------------------------------------------------------------

/// The resolved sliding-window geometry of one conv/pool node for concrete input sizes.
#[derive(Debug, Clone)]
pub(crate) struct Geometry {
    /// Input spatial dims.
    pub input: Vec<usize>,
    /// Kernel spatial dims.
    pub kernel: Vec<usize>,
    /// Strides.
    pub stride: Vec<usize>,
    /// Dilations.
    pub dilation: Vec<usize>,
    /// Applied padding before each axis (may be negative for transposed convs).
    pub pad_begin: Vec<i64>,
    /// Applied padding after each axis.
    pub pad_end: Vec<i64>,
    /// Output spatial dims.
    pub output: Vec<usize>,
}

/// Converts a (non-negative, validated) u64 size to usize, refusing sizes beyond the address space.
pub(crate) fn to_usize(cx: &EvalCtx, v: u64) -> Result<usize, RunError> {
    usize::try_from(v).map_err(|_| cx.err(format!("size {v} does not fit in memory")))
}

/// Resolves the geometry of a forward window op (conv, pool) over `input` spatial dims with `kernel`.
pub(crate) fn forward_geometry(
    cx: &EvalCtx,
    input: &[usize],
    kernel: &[usize],
    attrs: &WindowAttrs,
) -> Result<Geometry, RunError> {
    let n = input.len();
    attrs.check(n).map_err(|e| cx.err(e))?;
    if kernel.len() != n {
        return Err(cx.err(format!(
            "the kernel has {} spatial dims, the input {n}",
            kernel.len()
        )));
    }
    let mut g = Geometry {
        input: input.to_vec(),
        kernel: kernel.to_vec(),
        stride: Vec::with_capacity(n),
        dilation: Vec::with_capacity(n),
        pad_begin: Vec::with_capacity(n),
        pad_end: Vec::with_capacity(n),
        output: Vec::with_capacity(n),
    };
    for i in 0..n {
        let w = attrs.window(i, kernel[i] as u64);
        let (out, pb, pe) = window_output(input[i] as u64, &w, attrs.auto_pad, attrs.ceil_mode)
            .map_err(|e| cx.err(format!("spatial axis {i}: {e}")))?;
        g.stride.push(to_usize(cx, w.stride)?);
        g.dilation.push(to_usize(cx, w.dilation)?);
        g.pad_begin
            .push(i64::try_from(pb).map_err(|_| cx.err("padding overflows"))?);
        g.pad_end
            .push(i64::try_from(pe).map_err(|_| cx.err("padding overflows"))?);
        g.output.push(to_usize(cx, out)?);
    }
    Ok(g)
}

/// Kernel spatial dims from the `kernel_shape` attribute (when given) and the weight's dims `2..`,
/// which must agree.
pub(crate) fn kernel_of(cx: &EvalCtx, attr: &[i64], w: &[usize]) -> Result<Vec<usize>, RunError> {
    let from_w = w.get(2..).unwrap_or(&[]).to_vec();
    if attr.is_empty() {
        return Ok(from_w);
    }
    let k: Vec<usize> = attr
        .iter()
        .map(|&v| {
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| cx.err(format!("kernel_shape values must be positive, got {v}")))
        })
        .collect::<Result<_, _>>()?;
    if k != from_w {
        return Err(cx.err(format!(
            "kernel_shape {k:?} disagrees with the weight's spatial dims {from_w:?}"
        )));
    }
    Ok(k)
}

/// For one kernel offset along one axis: the input index each output index reads (`-1` = padding).
/// `o·stride - pad_begin + k·dilation`.
pub(crate) fn axis_table(
    out: usize,
    input: usize,
    stride: usize,
    dilation: usize,
    pad_begin: i64,
    k: usize,
) -> Vec<isize> {
    let base = (k as i64).saturating_mul(dilation as i64) - pad_begin;
    (0..out)
        .map(|o| {
            let i = (o as i64)
                .saturating_mul(stride as i64)
                .saturating_add(base);
            if i >= 0 && i < input as i64 {
                i as isize
            } else {
                -1
            }
        })
        .collect()
}

/// Unravels flat index `p` over `dims` (row-major) into `idx`.
pub(crate) fn unravel(mut p: usize, dims: &[usize], idx: &mut [usize]) {
    for a in (0..dims.len()).rev() {
        let d = dims[a].max(1);
        idx[a] = p % d;
        p /= d;
    }
}

/// Advances a row-major multi-index over `dims`; returns false after the last index.
pub(crate) fn next_index(idx: &mut [usize], dims: &[usize]) -> bool {
    for a in (0..dims.len()).rev() {
        idx[a] += 1;
        if idx[a] < dims[a] {
            return true;
        }
        idx[a] = 0;
    }
    false
}

/// Row-major strides of `dims`.
pub(crate) fn strides_of(dims: &[usize]) -> Vec<usize> {
    crate::tensor::strides(dims)
}

/// Element count of `shape`, refused when too large.
pub(crate) fn numel(cx: &EvalCtx, shape: &[usize]) -> Result<usize, RunError> {
    checked_numel(shape).map_err(|e| cx.err(e.0))
}

/// The lowest finite value of float `dtype` (what max reductions start from, as ONNX Runtime does), as
/// f64; integer dtypes give their minimum.
pub(crate) fn lowest(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => f16::MIN.to_f64(),
        DType::BF16 => bf16::MIN.to_f64(),
        DType::F32 => f64::from(f32::MIN),
        DType::I8 => f64::from(i8::MIN),
        DType::U8 => 0.0,
        _ => f64::MIN,
    }
}

/// Runs one op on concrete tensors through the interpreter (for this family's and the rnn family's
/// tests).
#[cfg(test)]
pub(crate) mod testutil {
    use carve_ir::{Graph, Op, Type};

    use crate::interp::{RunError, Value, run};
    use crate::tensor::{Data, Tensor};

    /// Runs `op` with `inputs` (absent ones as `None`) and `nout` outputs.
    pub fn run_op(
        op: impl Into<Op>,
        inputs: Vec<Option<Tensor>>,
        nout: usize,
    ) -> Result<Vec<Tensor>, RunError> {
        let mut g = Graph::new("t");
        let mut ids = Vec::new();
        let mut vals = Vec::new();
        for (i, t) in inputs.into_iter().enumerate() {
            ids.push(
                t.as_ref()
                    .map(|t| g.add_input(format!("x{i}"), Type::from(t.ty()))),
            );
            if let Some(t) = t {
                vals.push(Value::Tensor(t));
            }
        }
        let names = (0..nout).map(|i| format!("y{i}")).collect();
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
            .filter_map(|v| match v {
                Value::Tensor(t) => Some(t),
                _ => None,
            })
            .collect())
    }

    /// An f32 tensor.
    pub fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::new(shape.to_vec(), Data::F32(v.to_vec())).expect("shape matches data")
    }

    /// The f32 elements of `t`.
    pub fn values(t: &Tensor) -> Vec<f32> {
        match &t.data {
            Data::F32(v) => v.clone(),
            d => panic!("expected f32 data, got {:?}", d.dtype()),
        }
    }
}

#[cfg(test)]
mod tests {
    use carve_ir::ops::conv::{ConvTranspose, MaxUnpool, Pool, PoolKind, StorageOrder};

    use super::testutil::{f32s, run_op, values};
    use super::unravel;
    use crate::tensor::{Data, Tensor};

    #[test]
    fn conv_transpose_matches_the_scatter_definition() {
        // x[1, 4, 3, 2], w[4, 3, 2, 3], group 2 → 6 output channels; strides (2, 1), dilations (1, 2),
        // pads (1, 0 | 0, 1), output_padding (1, 0).
        let (c, mg, group) = (4usize, 3usize, 2usize);
        let (ih, iw, kh, kw) = (3usize, 2usize, 2usize, 3usize);
        let (sh, sw, dh, dw) = (2usize, 1usize, 1usize, 2usize);
        let (pt, pl, pb, pr, oph) = (1i64, 0i64, 0i64, 1i64, 1i64);
        let x: Vec<f32> = (0..c * ih * iw).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..c * mg * kh * kw)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let op = ConvTranspose {
            group: group as i64,
            strides: vec![sh as i64, sw as i64],
            dilations: vec![dh as i64, dw as i64],
            pads: vec![pt, pl, pb, pr],
            output_padding: vec![oph, 0],
            ..ConvTranspose::default()
        };
        let y = run_op(
            op,
            vec![
                Some(f32s(&[1, c, ih, iw], &x)),
                Some(f32s(&[c, mg, kh, kw], &w)),
            ],
            1,
        )
        .unwrap();
        let oh = (sh * (ih - 1)) as i64 + oph + ((kh - 1) * dh + 1) as i64 - pt - pb;
        let ow = (sw * (iw - 1)) as i64 + ((kw - 1) * dw + 1) as i64 - pl - pr;
        let (oh, ow) = (oh as usize, ow as usize);
        assert_eq!(y[0].shape, [1, mg * group, oh, ow]);
        let mut want = vec![0.0f32; mg * group * oh * ow];
        let cg = c / group;
        for ci in 0..c {
            let gi = ci / cg;
            for m in 0..mg {
                for (p, &xv) in x[ci * ih * iw..(ci + 1) * ih * iw].iter().enumerate() {
                    let mut s = [0usize; 2];
                    unravel(p, &[ih, iw], &mut s);
                    for a in 0..kh {
                        for b in 0..kw {
                            let yy = (s[0] * sh + a * dh) as i64 - pt;
                            let xx = (s[1] * sw + b * dw) as i64 - pl;
                            if (0..oh as i64).contains(&yy) && (0..ow as i64).contains(&xx) {
                                let oc = gi * mg + m;
                                want[(oc * oh + yy as usize) * ow + xx as usize] +=
                                    xv * w[((ci * mg + m) * kh + a) * kw + b];
                            }
                        }
                    }
                }
            }
        }
        for (a, b) in values(&y[0]).iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn max_pool_indices_follow_storage_order() {
        // 2×3 input, 2×2 window, stride 1: maxima at (1,1) and (1,2).
        let x = f32s(&[1, 1, 2, 3], &[1.0, 2.0, 3.0, 4.0, 9.0, 10.0]);
        for (order, want) in [
            (StorageOrder::RowMajor, [4i64, 5]),
            (StorageOrder::ColMajor, [3i64, 5]),
        ] {
            let op = Pool {
                kind: PoolKind::Max,
                kernel_shape: vec![2, 2],
                storage_order: order,
                ..Pool::default()
            };
            let y = run_op(op, vec![Some(x.clone())], 2).unwrap();
            assert_eq!(values(&y[0]), [9.0, 10.0]);
            assert_eq!(y[1].data, Data::I64(want.to_vec()));
        }
    }

    #[test]
    fn avg_pool_counts_padding_but_not_the_ceil_overhang() {
        let x = f32s(&[1, 1, 5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        let avg = |k: i64, s: i64, pads: Vec<i64>, include: bool| {
            let op = Pool {
                kind: PoolKind::Avg,
                kernel_shape: vec![k],
                strides: vec![s],
                pads,
                ceil_mode: true,
                count_include_pad: include,
                ..Pool::default()
            };
            values(&run_op(op, vec![Some(x.clone())], 1).unwrap()[0])
        };
        // Windows at -1, 1, 3 over pads (1, 1).
        assert_eq!(avg(3, 2, vec![1, 1], true), [1.0, 3.0, 3.0]);
        assert_eq!(avg(3, 2, vec![1, 1], false), [1.5, 3.0, 4.5]);
        // The last window [4, 6) sticks out past the (zero) end padding: only one position counts.
        assert_eq!(avg(2, 2, vec![0, 0], true), [1.5, 3.5, 5.0]);
    }

    #[test]
    fn max_unpool_indices_address_the_output_tensor() {
        let x = f32s(&[1, 1, 1, 2], &[5.0, 6.0]);
        let idx = Tensor::new(vec![1, 1, 1, 2], Data::I64(vec![6, 12])).unwrap();
        let shape = Tensor::new(vec![4], Data::I64(vec![1, 1, 3, 5])).unwrap();
        let op = MaxUnpool {
            kernel_shape: vec![2, 2],
            strides: vec![2, 2],
            ..MaxUnpool::default()
        };
        let y = run_op(op.clone(), vec![Some(x.clone()), Some(idx), Some(shape)], 1).unwrap();
        assert_eq!(y[0].shape, [1, 1, 3, 5]);
        let mut want = vec![0.0; 15];
        want[6] = 5.0;
        want[12] = 6.0;
        assert_eq!(values(&y[0]), want);
        let bad = Tensor::new(vec![1, 1, 1, 2], Data::I64(vec![0, 8])).unwrap();
        assert!(run_op(op, vec![Some(x), Some(bad)], 1).is_err());
    }
}
