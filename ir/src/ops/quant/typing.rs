//! Ordinary ops over quantized types: the rules that let `conv` and `matmul` take quantized 8-bit
//! operands, and `quantize_linear` requantize a quantized integer value. ONNX QLinearConv, ConvInteger,
//! QLinearMatMul and MatMulInteger import as these when their scales and zero points are constants.
//!
//! - `conv(x, w, b?)` with `x: u8|i8 q(per tensor)` and `w: u8|i8 q(per tensor, or per output channel
//!   = axis 0)` and an optional `b: i32[M]` (in accumulator units) is the exact integer convolution of
//!   `x − zx` with `w − zw` plus `b`, typed `i32 q(scale = sx·sw, zp = 0)`: per tensor, or per output
//!   channel (axis 1). Its geometry is float `conv`'s (it is the same op).
//! - `matmul(a, b)` likewise: `a` per tensor or per row (axis rank−2), `b` per tensor or per column
//!   (axis rank−1), at most one of them per axis; the `i32` product is per tensor or per axis along the
//!   output's row or column dim.
//! - `quantize_linear(acc, y_scale, y_zp)` on such an integer value quantizes the real number it
//!   stands for: `saturate(round(acc · round_f32(s_acc / y_scale)) + y_zp)` (see the interpreter).
//!
//! The integer-only forms (ConvInteger, MatMulInteger) have no scale: their operands carry scale 1 and
//! the zero point, so the `i32` result has scale 1 and zero point 0 (its integers are the real values).
//! Products of scales are formed in f32, as ONNX's reference forms them for f32 scales.
//!
//! Movement ops that only rearrange elements pass a quantized type through ([`movement_output`]).

use crate::infer::{InferCtx, InferError};
use crate::ops::movement::MovementOp;
use crate::{DType, Quant, QuantAxis, TensorType, Type};

fn is_8bit(d: DType) -> bool {
    matches!(d, DType::U8 | DType::I8)
}

/// The quantization of input `i` if it is a quantized 8-bit integer; `Ok(None)` if it is not quantized.
fn operand<'a>(
    cx: &InferCtx<'a>,
    i: usize,
) -> Result<Option<(&'a TensorType, &'a Quant)>, InferError> {
    let t = cx.tensor(i)?;
    let Some(q) = t.quant.as_deref() else {
        return Ok(None);
    };
    if !is_8bit(t.dtype) {
        return Err(cx.err(format!(
            "input {i} is a quantized {}, expected quantized u8 or i8",
            t.dtype
        )));
    }
    if q.scale.is_empty() || q.scale.len() != q.zero_point.len() {
        return Err(cx.err(format!("input {i} has malformed quantization {q}")));
    }
    Ok(Some((t, q)))
}

/// Scales of `q` as one entry per tensor or per index of the axis it is quantized along.
fn per_axis_product(x: &Quant, w: &Quant) -> Vec<f32> {
    if x.scale.len() == 1 {
        w.scale.iter().map(|&s| x.scale[0] * s).collect()
    } else {
        x.scale.iter().map(|&s| s * w.scale[0]).collect()
    }
}

fn accumulator(axis: QuantAxis, scale: Vec<f32>) -> Box<Quant> {
    let n = scale.len();
    Box::new(Quant {
        axis,
        scale,
        zero_point: vec![0; n],
    })
}

/// The `i32` accumulator quantization of `conv(x, w, b?)` when `x` is quantized (`Ok(None)` for an
/// ordinary float conv), checking `w` and `b` as the module doc describes.
pub fn conv_accumulator(cx: &InferCtx) -> Result<Option<Box<Quant>>, InferError> {
    let Some((_, qx)) = operand(cx, 0)? else {
        if cx.tensor(1)?.quant.is_some() {
            return Err(cx.err("the weight is quantized but the input is not"));
        }
        return Ok(None);
    };
    let Some((wt, qw)) = operand(cx, 1)? else {
        return Err(cx.err("the input is quantized but the weight (input 1) is not"));
    };
    if qx.axis != QuantAxis::PerTensor || qx.scale.len() != 1 {
        return Err(cx.err(format!(
            "a quantized conv input must be quantized per tensor, got {qx}"
        )));
    }
    let axis = match qw.axis {
        QuantAxis::PerTensor if qw.scale.len() == 1 => QuantAxis::PerTensor,
        QuantAxis::PerAxis { axis: 0 } => {
            if let Some(m) = wt.dims().and_then(|d| d.first()).and_then(|d| d.known())
                && m != qw.scale.len() as u64
            {
                return Err(cx.err(format!(
                    "the weight has {m} output channels but {} scales",
                    qw.scale.len()
                )));
            }
            QuantAxis::PerAxis { axis: 1 }
        }
        _ => {
            return Err(cx.err(format!(
                "a quantized conv weight must be quantized per tensor or per output channel (axis 0), got {qw}"
            )));
        }
    };
    if let Some(b) = cx.opt_tensor(2)?
        && (b.dtype != DType::I32 || b.quant.is_some())
    {
        return Err(cx.err(format!(
            "the bias of a quantized conv must be a plain i32 tensor (accumulator units), got {b}"
        )));
    }
    Ok(Some(accumulator(axis, per_axis_product(qx, qw))))
}

/// The `i32` quantization of `matmul(a, b)` when an operand is quantized (`Ok(None)` when neither is),
/// checking the granularities as the module doc describes.
pub fn matmul_accumulator(cx: &InferCtx) -> Result<Option<Box<Quant>>, InferError> {
    let (qa, qb) = match (operand(cx, 0)?, operand(cx, 1)?) {
        (None, None) => return Ok(None),
        (Some(a), Some(b)) => (a, b),
        _ => return Err(cx.err("either both matmul operands are quantized or neither is")),
    };
    let rank = |t: &TensorType, what: &str| {
        t.rank().filter(|&r| r >= 2).ok_or_else(|| {
            cx.err(format!(
                "a per-axis quantized {what} needs rank >= 2, got {t}"
            ))
        })
    };
    let a_axis = match qa.1.axis {
        QuantAxis::PerTensor if qa.1.scale.len() == 1 => None,
        QuantAxis::PerAxis { axis } if axis + 2 == rank(qa.0, "a")? => Some(()),
        _ => {
            return Err(cx.err(format!(
                "matmul operand a must be quantized per tensor or per row (axis rank-2), got {}",
                qa.1
            )));
        }
    };
    let b_axis = match qb.1.axis {
        QuantAxis::PerTensor if qb.1.scale.len() == 1 => None,
        QuantAxis::PerAxis { axis } if axis + 1 == rank(qb.0, "b")? => Some(()),
        _ => {
            return Err(cx.err(format!(
                "matmul operand b must be quantized per tensor or per column (axis rank-1), got {}",
                qb.1
            )));
        }
    };
    let out_rank = || -> Result<usize, InferError> { Ok(rank(qa.0, "a")?.max(rank(qb.0, "b")?)) };
    let axis = match (a_axis, b_axis) {
        (None, None) => QuantAxis::PerTensor,
        (Some(()), None) => QuantAxis::PerAxis {
            axis: out_rank()? - 2,
        },
        (None, Some(())) => QuantAxis::PerAxis {
            axis: out_rank()? - 1,
        },
        (Some(()), Some(())) => {
            return Err(cx.err(
                "matmul operands quantized per row and per column would need a scale per output element",
            ));
        }
    };
    Ok(Some(accumulator(axis, per_axis_product(qa.1, qb.1))))
}

/// Checks the input of a requantizing `quantize_linear`: a quantized `i32` (an accumulator) or 8-bit
/// value. Returns whether input 0 is quantized at all.
pub fn requantizes(cx: &InferCtx) -> Result<bool, InferError> {
    let x = cx.tensor(0)?;
    let Some(q) = x.quant.as_deref() else {
        return Ok(false);
    };
    if !(x.dtype == DType::I32 || is_8bit(x.dtype)) {
        return Err(cx.err(format!(
            "quantize_linear of a quantized {} is not supported (expected i32, u8 or i8)",
            x.dtype
        )));
    }
    if q.scale.is_empty()
        || q.scale.len() != q.zero_point.len()
        || matches!(q.axis, QuantAxis::PerBlock { .. })
    {
        return Err(cx.err(format!(
            "cannot requantize from {q}: expected per-tensor or per-axis parameters"
        )));
    }
    if cx
        .tensor(1)?
        .shape
        .as_ref()
        .and_then(crate::Shape::num_elements)
        .is_some_and(|n| n != 1)
    {
        return Err(cx.err("requantizing takes a per-tensor (single) output scale"));
    }
    Ok(true)
}

/// The output types of movement op `op` (`out`, as its own rule inferred them) with quantization
/// passed through: when input 0 is quantized, `op` only rearranges elements ([`crate::ops::Props::rearranges`]), and every other input
/// of that element type has the same quantization, each output of that element type gets it. Per
/// tensor for every such op; per axis through `transpose` (the axis follows the permutation). Other
/// cases leave the outputs unquantized.
pub fn movement_output(op: &MovementOp, cx: &InferCtx, mut out: Vec<Type>) -> Vec<Type> {
    let Ok(x) = cx.tensor(0) else {
        return out;
    };
    let Some(q) = x.quant.as_deref() else {
        return out;
    };
    let same_everywhere = (1..cx.num_inputs()).all(|i| match cx.opt_tensor(i) {
        Ok(Some(t)) => t.dtype != x.dtype || t.quant.as_deref() == Some(q),
        _ => true,
    });
    if !op.props().rearranges || !same_everywhere {
        return out;
    }
    let axis = match (&q.axis, op) {
        (QuantAxis::PerTensor, _) => QuantAxis::PerTensor,
        (QuantAxis::PerAxis { axis }, MovementOp::Transpose(t)) => {
            let Some(rank) = x.rank() else {
                return out;
            };
            let to = match &t.perm {
                None => Some(rank - 1 - axis),
                Some(p) => p.iter().position(|&d| d == *axis as i64),
            };
            match to {
                Some(a) => QuantAxis::PerAxis { axis: a },
                None => return out,
            }
        }
        _ => return out,
    };
    for t in &mut out {
        if let Type::Tensor(t) = t
            && t.dtype == x.dtype
        {
            t.quant = Some(Box::new(Quant {
                axis: axis.clone(),
                ..q.clone()
            }));
        }
    }
    out
}
