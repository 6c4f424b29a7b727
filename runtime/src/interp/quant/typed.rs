//! Kernels of the ordinary ops over quantized types (`carve_ir::ops::quant::typing`): `conv` and
//! `matmul` of quantized 8-bit operands, their zero points read from the input types, accumulated
//! exactly in i32; and the requantizing `quantize_linear` of a quantized integer value. They share the
//! integer cores of the ONNX forms ([`super::conv`], [`super::matmul`]) and the same multiplier
//! arithmetic, so a QLinearConv imported either way gives bit-identical results.

use carve_ir::ops::conv::Conv;
use carve_ir::{DType, Quant, QuantAxis, Type};

use super::super::util::{from_i64, to_i64};
use super::super::{EvalCtx, RunError, Value, tensor_err};
use super::{int_range, out_dtype, requantize, round_to, scalar_params};
use crate::tensor::{Data, Tensor};

/// True if input `i`'s IR type carries quantization parameters.
pub(crate) fn is_quantized(cx: &EvalCtx, i: usize) -> bool {
    cx.input_type(i)
        .and_then(Type::as_tensor)
        .is_some_and(|t| t.quant.is_some())
}

/// The quantization parameters of input `i`.
fn quant_of<'a>(cx: &EvalCtx<'a>, i: usize) -> Result<&'a Quant, RunError> {
    cx.input_type(i)
        .and_then(Type::as_tensor)
        .and_then(|t| t.quant.as_deref())
        .ok_or_else(|| cx.err(format!("input {i} is not quantized")))
}

/// The zero points of input `i` as a tensor: a scalar (per tensor) or 1-D (per axis).
fn zero_points(cx: &EvalCtx, i: usize) -> Result<Tensor, RunError> {
    let q = quant_of(cx, i)?;
    let shape = match q.axis {
        QuantAxis::PerTensor if q.zero_point.len() == 1 => Vec::new(),
        QuantAxis::PerAxis { .. } => vec![q.zero_point.len()],
        _ => return Err(cx.err(format!("input {i}: unsupported quantization {q}"))),
    };
    Tensor::new(shape, Data::I64(q.zero_point.clone())).map_err(|e| tensor_err(cx, e))
}

/// `conv` of quantized operands: `conv(x − zx, w − zw) + b` in i32 (wrapping as ONNX's int32
/// accumulation does), shaped by float conv's geometry.
pub(crate) fn conv(op: &Conv, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let w = cx.tensor(1)?;
    let (zx, zw) = (zero_points(cx, 0)?, zero_points(cx, 1)?);
    let (mut y, shape, osize) = super::conv::integer_conv(cx, x, w, Some(&zx), Some(&zw), op)?;
    let out_channels = shape[1];
    if let Some(b) = cx.opt_tensor(2)? {
        let bv = to_i64(b).map_err(|e| tensor_err(cx, e))?;
        if bv.len() != out_channels {
            return Err(cx.err(format!(
                "bias must have {} elements, got shape {:?}",
                out_channels, b.shape
            )));
        }
        for (i, v) in y.iter_mut().enumerate() {
            *v += bv[(i / osize.max(1)) % out_channels] as f64;
        }
    }
    let v: Vec<i32> = y.iter().map(|&v| v as i64 as i32).collect();
    let t = Tensor::new(shape, Data::I32(v)).map_err(|e| tensor_err(cx, e))?;
    Ok(vec![t.into()])
}

/// `matmul` of quantized operands: `(a − za) @ (b − zb)` in i32, numpy batching; `a`'s zero points
/// per tensor or per row, `b`'s per tensor or per column.
pub(crate) fn matmul(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    use super::matmul::{centered, integer_product, plan};
    let a = cx.tensor(0)?;
    let b = cx.tensor(1)?;
    let p = plan(&a.shape, &b.shape).map_err(|m| cx.err(m))?;
    let (za, zb) = (zero_points(cx, 0)?, zero_points(cx, 1)?);
    let av = centered(cx, a, Some(&za), true)?;
    let bv = centered(cx, b, Some(&zb), false)?;
    let c = integer_product(&p, &av, &bv);
    let v: Vec<i32> = c.iter().map(|&x| x as i64 as i32).collect();
    let t = Tensor::new(p.out_shape, Data::I32(v)).map_err(|e| tensor_err(cx, e))?;
    Ok(vec![t.into()])
}

/// `quantize_linear(x, y_scale, y_zp)` of a quantized integer `x` (scale `s` per tensor or per axis,
/// zero point `zx`): `saturate(round((x − zx) · round_f32(s / y_scale)) + y_zp)`, the multiplier
/// formed in f32 as ONNX's reference forms QLinearConv's and QLinearMatMul's for f32 scales.
pub(crate) fn requantize_linear(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let q = quant_of(cx, 0)?;
    let (sy, zy) = scalar_params(cx, 1, 2)?;
    let xs = to_i64(x).map_err(|e| tensor_err(cx, e))?;
    let out = out_dtype(cx, 0)?;
    let range = int_range(out);
    let mult: Vec<f64> = q
        .scale
        .iter()
        .map(|&s| round_to(DType::F32, f64::from(s) / sy))
        .collect();
    // For every element, its entry in the scale list.
    let (inner, len) = match q.axis {
        QuantAxis::PerTensor => (1, 1),
        QuantAxis::PerAxis { axis } if axis < x.shape.len() && x.shape[axis] == q.scale.len() => {
            (x.shape[axis + 1..].iter().product::<usize>(), q.scale.len())
        }
        _ => {
            return Err(cx.err(format!(
                "cannot requantize a tensor of shape {:?} quantized as {q}",
                x.shape
            )));
        }
    };
    let v: Vec<i64> = xs
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner.max(1)) % len;
            let centered = v - q.zero_point[c];
            requantize(centered as f64 * mult[c], zy, range)
        })
        .collect();
    let t = from_i64(out, x.shape.clone(), &v).map_err(|e| tensor_err(cx, e))?;
    Ok(vec![t.into()])
}
