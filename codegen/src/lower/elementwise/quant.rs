//! QuantizeLinear and DequantizeLinear as map kernels over mixed element types (per tensor and per
//! axis; blocked scales fall back), computed exactly as the interpreter computes them
//! (`carve_runtime::interp::quant`):
//! - dequantize: `y = f32(x − zero_point) · scale`, the difference exact in i64, the product in f32;
//! - quantize: `q = x / scale` in f32, rounded half to even, plus the zero point, saturated to the
//!   output type (NaN gives the type's minimum, as ONNX's reference does).
//!
//! The scale and zero point are ordinary operands (constants or computed values): a per-axis scale is
//! a leaf of shape `[C, 1, …, 1]`, which the loop nest broadcasts along the quantized axis.

use carve_ir::ops::quant::QuantOp;

use super::*;

/// Select phase for `quantize_linear` / `dequantize_linear`.
pub(crate) fn lower(info: &NodeInfo, op: &QuantOp) -> Result<Lowering, CodegenError> {
    let (axis, block_size, dequantize) = match op {
        QuantOp::QuantizeLinear(q) => {
            if q.precision.is_some_and(|p| p != DType::F32) {
                return Ok(fallback("quantize_linear with a precision other than f32"));
            }
            (q.axis, q.block_size, false)
        }
        QuantOp::DequantizeLinear(d) => (d.axis, d.block_size, true),
        _ => return Ok(fallback("no native kernel for this op yet")),
    };
    let x_shape = info.in_shape(0)?;
    let x_dtype = info.in_dtype(0)?;
    let out_dtype = info.out_dtype(0)?;
    if info.in_dtype(1)? != DType::F32 {
        return Ok(fallback("the scale is not f32"));
    }
    let q_dtype = if dequantize { x_dtype } else { out_dtype };
    let int_ok = matches!(q_dtype, DType::U8 | DType::I8 | DType::U16 | DType::I16)
        || dequantize && q_dtype == DType::I32;
    let float_ok = if dequantize {
        out_dtype == DType::F32
    } else {
        x_dtype == DType::F32
    };
    // (A quantize over a quantized integer — the requantize form — fails `float_ok`.)
    if !int_ok || !float_ok {
        return Ok(fallback(format!(
            "{x_dtype} to {out_dtype}: native kernels cover f32 and 8-/16-bit integers (i32 dequantized)"
        )));
    }
    let zp = info.has_input(2);
    if zp && info.in_dtype(2)? != q_dtype {
        return Ok(fallback(
            "the zero point's type differs from the quantized type",
        ));
    }
    let Some(param_shape) = param_leaf_shape(&x_shape, &info.in_shape(1)?, axis, block_size) else {
        return Ok(fallback(
            "blocked (or malformed) scales: no native kernel yet",
        ));
    };
    if zp && info.in_shape(2)?.iter().product::<usize>() != param_shape.iter().product::<usize>() {
        return Ok(fallback("the zero point's shape differs from the scale's"));
    }
    let mut leaves = vec![
        LeafSpec {
            src: 0,
            dtype: x_dtype,
            shape: x_shape.clone(),
        },
        LeafSpec {
            src: 1,
            dtype: DType::F32,
            shape: param_shape.clone(),
        },
    ];
    if zp {
        leaves.push(LeafSpec {
            src: 2,
            dtype: q_dtype,
            shape: param_shape,
        });
    }
    let in_place = (x_dtype == out_dtype).then_some(0);
    Ok(Lowering::Native {
        in_place,
        emit: Box::new(move |e: &mut Emitter| {
            let body = |b: &mut FunctionBuilder, _fx: Fx, v: &[Value]| {
                let zp = v.get(2).copied();
                if dequantize {
                    dequantize_one(b, q_dtype, v[0], v[1], zp)
                } else {
                    quantize_one(b, q_dtype, v[0], v[1], zp)
                }
            };
            emit_map(e, &x_shape, out_dtype, &leaves, false, &body)
        }),
    })
}

fn fallback(reason: impl Into<String>) -> Lowering {
    Lowering::Fallback(reason.into())
}

/// The shape the scale (and zero point) is read with, broadcast against `x`: `[]` per tensor,
/// `[C, 1, …, 1]` per axis; `None` for blocked or malformed scales.
fn param_leaf_shape(
    x: &[usize],
    scale: &[usize],
    axis: i64,
    block_size: i64,
) -> Option<Vec<usize>> {
    let n: usize = scale.iter().product();
    if n == 1 && (block_size == 0 || scale.len() <= 1 || scale.len() == x.len()) {
        return Some(Vec::new());
    }
    if block_size != 0 || scale.len() != 1 {
        return None;
    }
    let r = x.len() as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if !(0..r).contains(&a) || x[a as usize] != scale[0] {
        return None;
    }
    let mut shape = vec![1; x.len() - a as usize];
    shape[0] = scale[0];
    Some(shape)
}

/// The zero point (or 0) as i64.
fn zero_point(b: &mut FunctionBuilder, q: DType, zp: Option<Value>) -> Value {
    match zp {
        Some(z) => widen(b, q, z),
        None => b.ins().iconst(types::I64, 0),
    }
}

/// `f32(x − zp) · scale`.
fn dequantize_one(
    b: &mut FunctionBuilder,
    q: DType,
    x: Value,
    scale: Value,
    zp: Option<Value>,
) -> Value {
    let xi = widen(b, q, x);
    let zi = zero_point(b, q, zp);
    let d = b.ins().isub(xi, zi);
    let f = b.ins().fcvt_from_sint(types::F32, d);
    b.ins().fmul(f, scale)
}

/// `saturate(round_half_even(x / scale) + zp)` into `q` (NaN → the minimum).
pub(super) fn quantize_one(
    b: &mut FunctionBuilder,
    q: DType,
    x: Value,
    scale: Value,
    zp: Option<Value>,
) -> Value {
    let (lo, hi) = match q {
        DType::U8 => (0i64, 255i64),
        DType::I8 => (-128, 127),
        DType::U16 => (0, 65535),
        _ => (-32768, 32767),
    };
    let ratio = b.ins().fdiv(x, scale);
    let r = b.ins().nearest(ratio);
    let zi = zero_point(b, q, zp);
    let zf = b.ins().fcvt_from_sint(types::F32, zi);
    let t = b.ins().fadd(r, zf);
    let lo_f = b.ins().f32const(lo as f32);
    let hi_f = b.ins().f32const(hi as f32);
    let t = b.ins().fmax(t, lo_f);
    let t = b.ins().fmin(t, hi_f);
    let i = b.ins().fcvt_to_sint_sat(types::I32, t);
    let nan = b.ins().fcmp(FloatCC::Unordered, ratio, ratio);
    let lo_i = b.ins().iconst(types::I32, lo);
    let i = b.ins().select(nan, lo_i, i);
    let ty = clif_type(q).unwrap_or(types::I8);
    b.ins().ireduce(ty, i)
}

#[cfg(test)]
mod tests {
    use carve_ir::ops::quant::{DequantizeLinear, QuantizeLinear};
    use carve_runtime::Data;

    use crate::testing::{Operand, check_node, random_f32, run_both, single_node_graph};

    use super::super::test_util::{ints, tensor};
    use super::*;

    fn dequantize(axis: i64) -> Op {
        DequantizeLinear {
            axis,
            block_size: 0,
            output_dtype: None,
        }
        .into()
    }

    fn quantize(axis: i64, out: DType) -> Op {
        QuantizeLinear {
            axis,
            block_size: 0,
            saturate: true,
            output_dtype: Some(out),
            precision: None,
        }
        .into()
    }

    /// Floats that hit every rounding case: exact ties of the scale (half to even), values beyond
    /// every integer range, ±∞, NaN, ±0.
    fn floats(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut v = random_f32(n, seed, -300.0 * scale, 300.0 * scale);
        let edges = [
            0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 127.5, 128.5, -128.5, 254.5, 255.5, 1e6, -1e6,
        ];
        for (i, x) in v.iter_mut().enumerate() {
            match i % 11 {
                3 => *x = edges[(i / 11) % edges.len()] * scale,
                7 => {
                    *x = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0][(i / 11) % 5];
                }
                _ => {}
            }
        }
        v
    }

    #[test]
    fn dequantize_matches_the_interpreter_per_tensor_and_per_axis() {
        for dtype in [DType::U8, DType::I8, DType::U16, DType::I16, DType::I32] {
            let x = ints(dtype, &[2, 3, 5, 7], 1);
            // Per tensor, no zero point, runtime scale.
            let s = tensor(&[], Data::F32(vec![0.037]));
            check_node(
                dequantize(1),
                &[Operand::Input(x.clone()), Operand::Input(s)],
                1,
                0.0,
                0.0,
            )
            .unwrap_or_else(|e| panic!("{dtype} per tensor: {e}"));
            // Per axis (1 and −1 = 3), constant scale and zero point.
            for (axis, c) in [(1i64, 3usize), (-1, 7)] {
                let s = tensor(&[c], Data::F32(random_f32(c, 5, 0.001, 0.1)));
                let zp = ints(dtype, &[c], 9);
                check_node(
                    dequantize(axis),
                    &[
                        Operand::Input(x.clone()),
                        Operand::Const(s),
                        Operand::Const(zp),
                    ],
                    1,
                    0.0,
                    0.0,
                )
                .unwrap_or_else(|e| panic!("{dtype} axis {axis}: {e}"));
            }
        }
    }

    #[test]
    fn quantize_rounds_half_to_even_and_saturates_like_the_interpreter() {
        for out in [DType::U8, DType::I8, DType::U16, DType::I16] {
            let shape = [2, 4, 33];
            let n: usize = shape.iter().product();
            let x = tensor(&shape, Data::F32(floats(n, 3, 0.25)));
            // Per tensor with a runtime scale and zero point.
            let s = tensor(&[1], Data::F32(vec![0.25]));
            let zp = ints(out, &[1], 4);
            check_node(
                quantize(1, out),
                &[
                    Operand::Input(x.clone()),
                    Operand::Input(s),
                    Operand::Input(zp),
                ],
                1,
                0.0,
                0.0,
            )
            .unwrap_or_else(|e| panic!("{out} per tensor: {e}"));
            // Per axis 1, constant scale, no zero point.
            let s = tensor(&[4], Data::F32(vec![0.25, 0.5, 0.125, 3.0]));
            check_node(
                quantize(1, out),
                &[Operand::Input(x.clone()), Operand::Const(s)],
                1,
                0.0,
                0.0,
            )
            .unwrap_or_else(|e| panic!("{out} axis 1: {e}"));
        }
    }

    #[test]
    fn blocked_scales_fall_back_with_the_reason() {
        let op: Op = DequantizeLinear {
            axis: 1,
            block_size: 2,
            output_dtype: None,
        }
        .into();
        let x = ints(DType::I8, &[3, 4], 2);
        let s = tensor(&[3, 2], Data::F32(random_f32(6, 2, 0.01, 0.1)));
        let g = single_node_graph(op, &[Operand::Input(x.clone()), Operand::Const(s)], 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let (a, e, report) = run_both(&g, &[x]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a, e, "the fallback runs the interpreter's kernel");
        assert_eq!(report.fallbacks.len(), 1);
        assert!(
            report.fallbacks[0].reason.contains("blocked"),
            "{}",
            report.fallbacks[0].reason
        );
    }
}
