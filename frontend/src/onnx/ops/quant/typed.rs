//! QLinearConv, ConvInteger, QLinearMatMul and MatMulInteger as the ordinary ops over quantized types
//! (`carve_ir::ops::quant::typing`): the operands' scales and zero points go into their types, the
//! op is plain `conv` / `matmul` giving an exact `i32` accumulator, and the QLinear forms requantize it
//! with `quantize_linear` to the output's type:
//!
//! ```text
//! %acc = conv(%x, %w, %b) : i32[1,8,5,5] q(axis=1, scale=[..], zp=[0,..])   // x: u8 q(..), w: i8 q(axis=0, ..)
//! %y   = quantize_linear(%acc, %y_scale, %y_zp) : u8[1,8,5,5] q(scale=[0.05], zp=[128])
//! ```
//!
//! This applies when every scale and zero point is a constant (f32 scales, as the multiplier's
//! rounding is f32's) and each operand either already has exactly that quantization in its type (it
//! comes from a `quantize_linear` or another quantized op) or is a constant (retyped here). Otherwise
//! — run-time scales or zero points, as the ONNX node tests and dynamically quantized models have —
//! the functions return `None` and the caller keeps the ONNX form's own op (`qlinear_conv`, ...),
//! whose kernel shares the integer core and gives identical results.

use carve_ir::ops::conv::Conv;
use carve_ir::ops::linalg::MatMul;
use carve_ir::ops::quant::QuantizeLinear;
use carve_ir::{Constant, DType, Quant, QuantAxis, ValueId};

use crate::ImportError;
use crate::onnx::ctx::NodeCtx;

type Res = Result<Option<Vec<ValueId>>, ImportError>;

/// Which granularity a per-axis parameter list of an operand may have.
#[derive(Clone, Copy)]
enum PerAxis {
    /// Dim 0 (conv weights: output channels).
    First,
    /// Dim rank−2 (matmul `a`: rows).
    Row,
    /// Dim rank−1 (matmul `b`: columns).
    Column,
    /// Only per tensor.
    Never,
}

/// Constant f32 scales at input `i`.
fn const_scales(cx: &NodeCtx, i: usize) -> Option<Vec<f32>> {
    let c = cx.const_of(cx.input(i)?)?;
    if c.ty.dtype != DType::F32 || c.ty.rank()? > 1 {
        return None;
    }
    Some(c.to_f64s()?.into_iter().map(|v| v as f32).collect())
}

/// Constant zero points at input `i` of an operand of `dtype` (absent: 0).
fn const_zps(cx: &NodeCtx, i: usize, dtype: DType) -> Option<Vec<i64>> {
    let Some(v) = cx.input(i) else {
        return Some(vec![0]);
    };
    let c = cx.const_of(v)?;
    if c.ty.dtype != dtype || c.ty.rank()? > 1 {
        return None;
    }
    c.to_i64s()
}

/// The quantization of operand input `x` from scales `s` and zero points `z` (one entry, or one per
/// index along the dim `per_axis` names), if it is representable.
fn quant_of(cx: &NodeCtx, x: usize, s: Vec<f32>, z: Vec<i64>, per_axis: PerAxis) -> Option<Quant> {
    let n = s.len().max(z.len());
    let (scale, zero_point) = (widen(s, n)?, widen(z, n)?);
    if n == 0 {
        return None;
    }
    let axis = if n == 1 {
        QuantAxis::PerTensor
    } else {
        let t = cx.tensor_ty(x).ok()?;
        let rank = t.rank()?;
        let axis = match per_axis {
            PerAxis::First => 0,
            PerAxis::Row if rank >= 2 => rank - 2,
            PerAxis::Column if rank >= 2 => rank - 1,
            _ => return None,
        };
        if t.dims()?[axis].known()? != n as u64 {
            return None;
        }
        QuantAxis::PerAxis { axis }
    };
    Some(Quant {
        axis,
        scale,
        zero_point,
    })
}

/// `v` with `n` entries: repeated if it has one, as is if it has `n`.
fn widen<T: Copy>(v: Vec<T>, n: usize) -> Option<Vec<T>> {
    match v.len() {
        1 => Some(vec![v[0]; n]),
        l if l == n => Some(v),
        _ => None,
    }
}

/// Operand input `x` typed with `q`: the value itself when its type already says exactly `q`, a
/// retyped copy when it is a constant; `None` otherwise.
fn typed_operand(cx: &mut NodeCtx, x: usize, q: Quant) -> Option<ValueId> {
    let v = cx.input(x)?;
    let t = cx.ty(v).as_tensor()?;
    if !matches!(t.dtype, DType::U8 | DType::I8) {
        return None;
    }
    if let Some(have) = &t.quant {
        return (**have == q).then_some(v);
    }
    let c = cx.const_of(v)?;
    let mut ty = c.ty.clone();
    ty.quant = Some(Box::new(q));
    let retyped = Constant { ty, ..c.clone() };
    Some(cx.constant(retyped))
}

/// Both operands of a product typed from the ONNX inputs: `(x, x_scale?, x_zp)` and `(w, w_scale?,
/// w_zp)` (no scale input: scale 1, the integer-only forms).
fn operands(
    cx: &mut NodeCtx,
    x: (usize, Option<usize>, usize, PerAxis),
    w: (usize, Option<usize>, usize, PerAxis),
) -> Result<Option<(ValueId, ValueId)>, ImportError> {
    let mut quants = Vec::with_capacity(2);
    for (i, s, z, per_axis) in [x, w] {
        let dtype = cx.tensor_ty(i)?.dtype;
        let scales = match s {
            Some(s) => const_scales(cx, s),
            None => Some(vec![1.0]),
        };
        let q = scales.zip(const_zps(cx, z, dtype));
        let Some(q) = q.and_then(|(s, z)| quant_of(cx, i, s, z, per_axis)) else {
            return Ok(None);
        };
        quants.push((i, q));
    }
    let both_per_axis = quants.iter().all(|(_, q)| q.axis != QuantAxis::PerTensor);
    if both_per_axis {
        return Ok(None);
    }
    // Check both before emitting anything, so a fallback leaves no stray constants.
    for (i, q) in &quants {
        let v = cx.req(*i)?;
        let t = cx.ty(v).as_tensor();
        let ok = t.is_some_and(|t| match &t.quant {
            Some(have) => **have == *q,
            None => cx.const_of(v).is_some(),
        });
        if !ok {
            return Ok(None);
        }
    }
    let mut it = quants.into_iter();
    let (Some((i, qx)), Some((j, qw))) = (it.next(), it.next()) else {
        return Ok(None);
    };
    match (typed_operand(cx, i, qx), typed_operand(cx, j, qw)) {
        (Some(a), Some(b)) => Ok(Some((a, b))),
        _ => Ok(None),
    }
}

/// True if the requantizing output's `y_scale` (f32 scalar) and `y_zero_point` are constants.
fn const_output(cx: &NodeCtx, s: usize, z: usize) -> bool {
    let scale_ok = const_scales(cx, s).is_some_and(|v| v.len() == 1);
    let zp_ok = cx
        .input(z)
        .and_then(|v| cx.const_of(v))
        .is_some_and(|c| c.num_elements() == 1);
    scale_ok && zp_ok
}

/// `quantize_linear(acc, y_scale, y_zero_point)`: the per-tensor requantization of an accumulator.
fn requantize(cx: &mut NodeCtx, acc: ValueId, s: usize, z: usize) -> Result<ValueId, ImportError> {
    let ins = vec![Some(acc), cx.input(s), cx.input(z)];
    cx.emit1(QuantizeLinear::default(), ins)
}

/// QLinearConv `(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias?)` as `conv` + `quantize_linear`.
pub(super) fn qlinear_conv(cx: &mut NodeCtx, win: &Conv) -> Res {
    if !const_output(cx, 6, 7) {
        return Ok(None);
    }
    let x = (0, Some(1), 2, PerAxis::Never);
    let w = (3, Some(4), 5, PerAxis::First);
    let Some((x, w)) = operands(cx, x, w)? else {
        return Ok(None);
    };
    let acc = cx.emit1(win.clone(), vec![Some(x), Some(w), cx.input(8)])?;
    Ok(Some(vec![requantize(cx, acc, 6, 7)?]))
}

/// ConvInteger `(x, w, x_zp?, w_zp?)` as `conv` over operands of scale 1.
pub(super) fn conv_integer(cx: &mut NodeCtx, win: &Conv) -> Res {
    let x = (0, None, 2, PerAxis::Never);
    let w = (1, None, 3, PerAxis::First);
    let Some((x, w)) = operands(cx, x, w)? else {
        return Ok(None);
    };
    Ok(Some(vec![cx.emit1(win.clone(), vec![Some(x), Some(w)])?]))
}

/// QLinearMatMul `(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp)` as `matmul` + `quantize_linear`.
pub(super) fn qlinear_matmul(cx: &mut NodeCtx) -> Res {
    if !const_output(cx, 6, 7) {
        return Ok(None);
    }
    let a = (0, Some(1), 2, PerAxis::Row);
    let b = (3, Some(4), 5, PerAxis::Column);
    let Some((a, b)) = operands(cx, a, b)? else {
        return Ok(None);
    };
    let acc = cx.emit1(MatMul {}, vec![Some(a), Some(b)])?;
    Ok(Some(vec![requantize(cx, acc, 6, 7)?]))
}

/// The operands of com.microsoft QGemm `(a, a_scale, a_zp, b, b_scale, b_zp, ...)` typed with their
/// quantization, before QGemm's transposes: `a` per tensor; `b` per tensor or one scale per output
/// column — dim 1 of `b`, dim 0 when `trans_b` stores it as `[N, K]`. The caller multiplies the
/// (transposed) typed operands with the ordinary `matmul`.
pub(in crate::onnx::ops) fn qgemm_operands(
    cx: &mut NodeCtx,
    trans_b: bool,
) -> Result<Option<(ValueId, ValueId)>, ImportError> {
    let a = (0, Some(1), 2, PerAxis::Never);
    let per_column = if trans_b {
        PerAxis::First
    } else {
        PerAxis::Column
    };
    operands(cx, a, (3, Some(4), 5, per_column))
}

/// MatMulInteger `(a, b, a_zp?, b_zp?)` as `matmul` over operands of scale 1.
pub(super) fn matmul_integer(cx: &mut NodeCtx) -> Res {
    let a = (0, None, 2, PerAxis::Row);
    let b = (1, None, 3, PerAxis::Column);
    let Some((a, b)) = operands(cx, a, b)? else {
        return Ok(None);
    };
    Ok(Some(vec![cx.emit1(MatMul {}, vec![Some(a), Some(b)])?]))
}
