//! Interpreter kernels for the quant op family (`carve_ir::ops::quant`): quantize / dequantize
//! (per-tensor, per-axis, per-block; integer, sub-byte and small-float types), dynamic quantization and
//! the com.microsoft elementwise `qlinear_add` / `qlinear_mul` here; integer and quantized matrix
//! products in [`matmul`], integer and quantized convolutions in [`conv`]. Small-float (f8/f4) outputs use
//! the same encoder as `cast` (`elementwise::floats`).
//!
//! Rounding is round-half-to-even throughout (ONNX's `rint`); results saturate to the output type.

mod conv;
mod matmul;
pub(crate) mod typed;

use carve_ir::DType;
use carve_ir::ops::elementwise::RoundMode;
use carve_ir::ops::quant::{DequantizeLinear, QuantOp, QuantizeLinear};
use half::{bf16, f16};

use super::elementwise::floats::{is_small_float, small_float_of};
use super::util::{self, broadcast_index, broadcast_shape, from_f64, from_i64, to_f64, to_i64};
use super::{EvalCtx, RunError, Value, tensor_err};
use crate::tensor::{Data, Tensor};

/// Evaluates one quant op.
pub fn eval(op: &QuantOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    match op {
        QuantOp::QuantizeLinear(o) => quantize_linear(o, cx),
        QuantOp::DequantizeLinear(o) => dequantize_linear(o, cx),
        QuantOp::DynamicQuantizeLinear(_) => dynamic_quantize_linear(cx),
        QuantOp::MatMulInteger(_) => matmul::matmul_integer(cx),
        QuantOp::ConvInteger(o) => conv::conv_integer(o, cx),
        QuantOp::QLinearMatMul(_) => matmul::qlinear_matmul(cx),
        QuantOp::QLinearConv(o) => conv::qlinear_conv(o, cx),
        QuantOp::QLinearAdd(_) => qlinear_binary(cx, false),
        QuantOp::QLinearMul(_) => qlinear_binary(cx, true),
        QuantOp::MatMulNBits(o) => matmul::matmul_nbits(o, cx),
    }
}

/// The element type of output `k` (always known in the IR).
pub(crate) fn out_dtype(cx: &EvalCtx, k: usize) -> Result<DType, RunError> {
    cx.output_type(k)
        .and_then(|t| t.as_tensor())
        .map(|t| t.dtype)
        .ok_or_else(|| cx.err(format!("output {k} is not a tensor")))
}

/// `v` rounded to the precision of float type `d` (other types: unchanged).
pub(crate) fn round_to(d: DType, v: f64) -> f64 {
    match d {
        DType::F32 => f64::from(v as f32),
        DType::F16 => f16::from_f64(v).to_f64(),
        DType::BF16 => bf16::from_f64(v).to_f64(),
        _ => v,
    }
}

/// A float tensor of `dtype` from f64 values, including the 8-/4-bit floats (rounded to nearest even,
/// overflow as a plain conversion: infinity or NaN where the format has them).
pub(crate) fn float_tensor(dtype: DType, shape: Vec<usize>, v: &[f64]) -> Result<Tensor, String> {
    if is_small_float(dtype) {
        let bits = v
            .iter()
            .map(|&x| small_float_of(dtype, f64::from(x as f32), false, RoundMode::Up).unwrap_or(0))
            .collect();
        return Tensor::new(shape, Data::Small(dtype, bits)).map_err(|e| e.0);
    }
    from_f64(dtype, shape, v).map_err(|e| e.0)
}

/// The `[min, max]` range of integer type `d`.
pub(crate) fn int_range(d: DType) -> (i64, i64) {
    let b = d.bits().clamp(1, 64);
    match (d.is_signed_int(), b) {
        (_, 64) if d.is_signed_int() => (i64::MIN, i64::MAX),
        (_, 64) => (0, i64::MAX),
        (true, b) => (-(1i64 << (b - 1)), (1i64 << (b - 1)) - 1),
        (false, b) => (0, (1i64 << b) - 1),
    }
}

/// Rounds half to even, adds `zp` and saturates to `[lo, hi]` (NaN → `lo`, as ONNX's reference does).
pub(crate) fn requantize(q: f64, zp: i64, (lo, hi): (i64, i64)) -> i64 {
    if q.is_nan() {
        return lo;
    }
    (q.round_ties_even() + zp as f64).clamp(lo as f64, hi as f64) as i64
}

/// For every element of a tensor of shape `x`, the index of its scale (and zero point) entry: one entry
/// (per tensor), a 1-D scale along `axis` (per axis), or a scale of `x`'s rank with `ceil(d / block_size)`
/// entries along `axis` (per block).
pub(crate) fn param_map(
    x: &[usize],
    scale: &[usize],
    axis: i64,
    block_size: i64,
) -> Result<Vec<usize>, String> {
    let n: usize = x.iter().product();
    let ns: usize = scale.iter().product();
    if block_size < 0 {
        return Err(format!("block_size must be >= 0, got {block_size}"));
    }
    if ns == 1 && (block_size == 0 || scale.len() <= 1 || scale.len() == x.len()) {
        return Ok(vec![0; n]);
    }
    let a = util::axis(axis, x.len()).map_err(|e| e.0)?;
    if a >= x.len() {
        return Err(format!(
            "a scalar input takes a single scale, got shape {scale:?}"
        ));
    }
    let outer: usize = x[..a].iter().product();
    let inner: usize = x[a + 1..].iter().product();
    let d = x[a];
    let mut map = Vec::with_capacity(n);
    if block_size == 0 {
        if scale.len() != 1 || scale[0] != d {
            return Err(format!(
                "a per-axis scale must be 1-D with {d} entries (dim {a} of input shape {x:?}), got shape {scale:?}"
            ));
        }
        for _ in 0..outer {
            for j in 0..d {
                map.extend(std::iter::repeat_n(j, inner));
            }
        }
        return Ok(map);
    }
    let bs = block_size as usize;
    let blocks = d.div_ceil(bs);
    let fits = scale.len() == x.len()
        && scale
            .iter()
            .zip(x)
            .enumerate()
            .all(|(i, (&s, &xd))| if i == a { s == blocks } else { s == xd });
    if !fits {
        return Err(format!(
            "scale shape {scale:?} does not fit input shape {x:?} with block_size {block_size} on axis {a}"
        ));
    }
    for o in 0..outer {
        for j in 0..d {
            let base = (o * blocks + j / bs) * inner;
            map.extend(base..base + inner);
        }
    }
    Ok(map)
}

/// Checks that a zero point has as many entries as its scale.
fn check_zp(cx: &EvalCtx, zp: Option<&Tensor>, scale: &Tensor) -> Result<(), RunError> {
    match zp {
        Some(z) if z.len() != scale.len() => Err(cx.err(format!(
            "the zero point has shape {:?}, the scale {:?}: they must match",
            z.shape, scale.shape
        ))),
        _ => Ok(()),
    }
}

/// The type `x / scale` is computed in (numpy promotion of the two operand types).
fn division_type(x: DType, s: DType) -> DType {
    match (x, s) {
        (a, b) if a == b && a.is_float() => a,
        (DType::F64, _) | (_, DType::F64) => DType::F64,
        (a, _) | (_, a) if !a.is_float() => DType::F64,
        _ => DType::F32,
    }
}

fn quantize_linear(op: &QuantizeLinear, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    if typed::is_quantized(cx, 0) {
        return typed::requantize_linear(cx);
    }
    let x = cx.tensor(0)?;
    let s = cx.tensor(1)?;
    let zp = cx.opt_tensor(2)?;
    let out = out_dtype(cx, 0)?;
    check_zp(cx, zp, s)?;
    let map = param_map(&x.shape, &s.shape, op.axis, op.block_size).map_err(|m| cx.err(m))?;
    let xs = to_f64(x).map_err(|e| tensor_err(cx, e))?;
    let ss = to_f64(s).map_err(|e| tensor_err(cx, e))?;
    let dt = op
        .precision
        .unwrap_or_else(|| division_type(x.dtype(), s.dtype()));
    let q = xs
        .iter()
        .zip(&map)
        .map(|(&v, &p)| round_to(dt, round_to(dt, v) / round_to(dt, ss[p])));
    let shape = x.shape.clone();
    let t = if out.is_int() {
        let zs = match zp {
            Some(z) => to_i64(z).map_err(|e| tensor_err(cx, e))?,
            None => vec![0; ss.len()],
        };
        let range = int_range(out);
        let v: Vec<i64> = q
            .zip(&map)
            .map(|(q, &p)| requantize(q, zs[p], range))
            .collect();
        from_i64(out, shape, &v).map_err(|e| tensor_err(cx, e))?
    } else if is_small_float(out) {
        let zs = match zp {
            Some(z) => to_f64(z).map_err(|e| tensor_err(cx, e))?,
            None => vec![0.0; ss.len()],
        };
        let bits = q
            .zip(&map)
            .map(|(q, &p)| {
                let z = zs[p] as f32;
                let v = if z == 0.0 { q as f32 } else { q as f32 + z };
                small_float_of(out, f64::from(v), op.saturate, RoundMode::Up).unwrap_or(0)
            })
            .collect();
        Tensor::new(shape, Data::Small(out, bits)).map_err(|e| tensor_err(cx, e))?
    } else {
        return Err(cx.err(format!("cannot quantize to {out}")));
    };
    Ok(vec![t.into()])
}

fn dequantize_linear(op: &DequantizeLinear, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let s = cx.tensor(1)?;
    let zp = cx.opt_tensor(2)?;
    let out = out_dtype(cx, 0)?;
    check_zp(cx, zp, s)?;
    let map = param_map(&x.shape, &s.shape, op.axis, op.block_size).map_err(|m| cx.err(m))?;
    let ss = to_f64(s).map_err(|e| tensor_err(cx, e))?;
    // x − zero point: exact in i64 for integers; in f32 for small floats (their zero point must be 0).
    let diff: Vec<f64> = if x.dtype().is_int() {
        let xs = to_i64(x).map_err(|e| tensor_err(cx, e))?;
        let zs = match zp {
            Some(z) => to_i64(z).map_err(|e| tensor_err(cx, e))?,
            None => vec![0; ss.len()],
        };
        xs.iter()
            .zip(&map)
            .map(|(&v, &p)| v.saturating_sub(zs[p]) as f64)
            .collect()
    } else {
        let xs = to_f64(x).map_err(|e| tensor_err(cx, e))?;
        let zs = match zp {
            Some(z) => to_f64(z).map_err(|e| tensor_err(cx, e))?,
            None => vec![0.0; ss.len()],
        };
        xs.iter()
            .zip(&map)
            .map(|(&v, &p)| f64::from(v as f32 - zs[p] as f32))
            .collect()
    };
    // Scaled in f32 (what ONNX Runtime and the reference do) unless f64 is involved.
    let wide = s.dtype() == DType::F64 || out == DType::F64;
    let y: Vec<f64> = diff
        .iter()
        .zip(&map)
        .map(|(&d, &p)| {
            if wide {
                d * ss[p]
            } else {
                f64::from(d as f32 * ss[p] as f32)
            }
        })
        .collect();
    let t = float_tensor(out, x.shape.clone(), &y).map_err(|m| cx.err(m))?;
    Ok(vec![t.into()])
}

/// ONNX DynamicQuantizeLinear, in f32 exactly as specified: `scale = (max(0, x_max) − min(0, x_min)) /
/// 255`, `zero_point = saturate(round(−min(0, x_min) / scale))`, `y = saturate(round(x / scale) +
/// zero_point)`. An all-zero input gets scale 1 as in ONNX Runtime (the Python reference gives 1/255;
/// `y` and the zero point are 0 either way). NaN elements are left out of the range and quantize to 0.
fn dynamic_quantize_linear(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let xs = to_f64(x).map_err(|e| tensor_err(cx, e))?;
    let (mut hi, mut lo) = (0f32, 0f32);
    for &v in &xs {
        // (f32::max / min ignore NaN)
        hi = hi.max(v as f32);
        lo = lo.min(v as f32);
    }
    let scale = if hi == lo { 1.0 } else { (hi - lo) / 255f32 };
    let zp = (0f32 - lo / scale).clamp(0.0, 255.0).round_ties_even();
    let y: Vec<u8> = xs
        .iter()
        .map(|&v| {
            let q = (v as f32 / scale).round_ties_even() + zp;
            if q.is_nan() {
                0
            } else {
                q.clamp(0.0, 255.0) as u8
            }
        })
        .collect();
    let y = Tensor::new(x.shape.clone(), Data::U8(y)).map_err(|e| tensor_err(cx, e))?;
    let st = out_dtype(cx, 1).unwrap_or(DType::F32);
    let s = float_tensor(st, Vec::new(), &[f64::from(scale)]).map_err(|m| cx.err(m))?;
    let z = Tensor::new(Vec::new(), Data::U8(vec![zp as u8])).map_err(|e| tensor_err(cx, e))?;
    Ok(vec![y.into(), s.into(), z.into()])
}

/// A per-tensor quantization parameter: the single value of `scale` input `s` and of zero point input
/// `z` (0 when absent).
pub(crate) fn scalar_params(cx: &EvalCtx, s: usize, z: usize) -> Result<(f64, i64), RunError> {
    let st = cx.tensor(s)?;
    let sv = to_f64(st).map_err(|e| tensor_err(cx, e))?;
    let [scale] = sv[..] else {
        return Err(cx.err(format!(
            "input {s} (a scale) must have one element, got shape {:?}",
            st.shape
        )));
    };
    let zp = match cx.opt_tensor(z)? {
        None => 0,
        Some(zt) => match to_i64(zt).map_err(|e| tensor_err(cx, e))?[..] {
            [v] => v,
            _ => {
                return Err(cx.err(format!(
                    "input {z} (a zero point) must have one element, got shape {:?}",
                    zt.shape
                )));
            }
        },
    };
    Ok((scale, zp))
}

/// com.microsoft QLinearAdd / QLinearMul with numpy broadcasting, in f32 as ONNX Runtime's x86 (AVX2)
/// MLAS kernels compute them, so that near-ties round the same way (half to even, saturating):
/// - add: `c = fma(p, rp, fma(q, rq, F))` with `F = zc − fma(rp, zp, rq·zq)`, `r = s/sc`, where `p`
///   is `a` and `q` is `b`, except where `a` is broadcast along the innermost dim (ONNX Runtime then
///   swaps the operands);
/// - mul: `c = (a − za)(b − zb)·(sa·sb/sc) + zc` (the zero point added in f32 before rounding).
fn qlinear_binary(cx: &EvalCtx, mul: bool) -> Result<Vec<Value>, RunError> {
    let a = cx.tensor(0)?;
    let b = cx.tensor(3)?;
    let (sa, za) = scalar_params(cx, 1, 2)?;
    let (sb, zb) = scalar_params(cx, 4, 5)?;
    let (sc, zc) = scalar_params(cx, 6, 7)?;
    let out = out_dtype(cx, 0)?;
    let shape = broadcast_shape(&a.shape, &b.shape).map_err(|e| tensor_err(cx, e))?;
    util::checked_numel(&shape).map_err(|e| tensor_err(cx, e))?;
    let av = to_i64(a).map_err(|e| tensor_err(cx, e))?;
    let bv = to_i64(b).map_err(|e| tensor_err(cx, e))?;
    let ia = broadcast_index(&shape, &a.shape);
    let ib = broadcast_index(&shape, &b.shape);
    let (sa, sb, sc) = (sa as f32, sb as f32, sc as f32);
    let (za, zb) = (za as f32, zb as f32);
    let range = int_range(out);
    let v: Vec<i64> = if mul {
        let ratio = sa * sb / sc;
        ia.iter()
            .zip(&ib)
            .map(|(&i, &j)| {
                let p = (av[i] as f32 - za) * (bv[j] as f32 - zb);
                requantize(f64::from(p * ratio + zc as f32), 0, range)
            })
            .collect()
    } else {
        let (rac, rbc) = (sa / sc, sb / sc);
        let inner = shape.last().copied().unwrap_or(1);
        let a_scalar = inner > 1 && a.shape.last().is_none_or(|&d| d == 1) || av.len() == 1;
        // (p, rp, zp) is the streamed operand, (q, rq, zq) the other.
        let (rp, zp, rq, zq) = if a_scalar {
            (rbc, zb, rac, za)
        } else {
            (rac, za, rbc, zb)
        };
        let fixed = zc as f32 - rp.mul_add(zp, rq * zq);
        ia.iter()
            .zip(&ib)
            .map(|(&i, &j)| {
                let (x, y) = (av[i] as f32, bv[j] as f32);
                let (p, q) = if a_scalar { (y, x) } else { (x, y) };
                let c = p.mul_add(rp, q.mul_add(rq, fixed));
                requantize(f64::from(c), 0, range)
            })
            .collect()
    };
    let t = from_i64(out, shape, &v).map_err(|e| tensor_err(cx, e))?;
    Ok(vec![t.into()])
}

#[cfg(test)]
mod tests {
    use super::*;

    use carve_ir::ops::quant::{DynamicQuantizeLinear, QLinearAdd};
    use carve_ir::{Graph, Op, Type};

    /// Runs a one-node graph on tensor inputs (`None`: an omitted optional input).
    pub(crate) fn run_node(
        op: impl Into<Op>,
        inputs: Vec<Option<Tensor>>,
        n_out: usize,
    ) -> Result<Vec<Tensor>, String> {
        let mut g = Graph::new("t");
        let mut ids = Vec::new();
        let mut vals = Vec::new();
        for (i, t) in inputs.into_iter().enumerate() {
            ids.push(t.map(|t| {
                let id = g.add_input(format!("x{i}"), Type::Tensor(t.ty()));
                vals.push(Value::Tensor(t));
                id
            }));
        }
        let names = (0..n_out).map(|i| format!("y{i}")).collect();
        let outs = g
            .add_node("n", op.into(), ids, names)
            .map_err(|e| e.to_string())?;
        g.outputs = outs;
        let res = crate::interp::run(&g, vals).map_err(|e| e.to_string())?;
        Ok(res
            .into_iter()
            .filter_map(|v| v.as_tensor().cloned())
            .collect())
    }

    fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::new(shape.to_vec(), Data::F32(v.to_vec())).unwrap()
    }

    fn scalar<T>(d: impl FnOnce(Vec<T>) -> Data, v: T) -> Tensor {
        Tensor::new(Vec::new(), d(vec![v])).unwrap()
    }

    #[test]
    fn quantize_rounds_half_even_and_saturates_per_output_type() {
        let x = f32s(&[6], &[2.5, 3.5, -2.5, 1000.0, -1000.0, 0.49]);
        let s = scalar(Data::F32, 1.0f32);
        let q = run_node(
            QuantizeLinear::default(),
            vec![
                Some(x.clone()),
                Some(s.clone()),
                Some(scalar(Data::I8, 1i8)),
            ],
            1,
        )
        .unwrap();
        assert_eq!(q[0].data, Data::I8(vec![3, 5, -1, 127, -128, 1]));
        let op = QuantizeLinear {
            output_dtype: Some(DType::I4),
            ..Default::default()
        };
        let q = run_node(op, vec![Some(x.clone()), Some(s.clone())], 1).unwrap();
        assert_eq!(to_i64(&q[0]).unwrap(), vec![2, 4, -2, 7, -8, 0]);
        let op = QuantizeLinear {
            output_dtype: Some(DType::F8E4M3FN),
            ..Default::default()
        };
        let q = run_node(op, vec![Some(x), Some(s)], 1).unwrap();
        assert_eq!(
            to_f64(&q[0]).unwrap(),
            vec![2.5, 3.5, -2.5, 448.0, -448.0, 0.5]
        );
    }

    #[test]
    fn blocked_dequantize_uses_one_scale_per_block() {
        let x = Tensor::new(vec![2, 3], Data::U8(vec![10, 12, 14, 1, 2, 3])).unwrap();
        let s = f32s(&[2, 2], &[0.5, 2.0, 1.0, 10.0]);
        let z = Tensor::new(vec![2, 2], Data::U8(vec![10, 0, 1, 0])).unwrap();
        let op = DequantizeLinear {
            axis: 1,
            block_size: 2,
            ..Default::default()
        };
        let y = run_node(op, vec![Some(x), Some(s), Some(z)], 1).unwrap();
        assert_eq!(y[0].data, Data::F32(vec![0.0, 1.0, 28.0, 0.0, 1.0, 30.0]));
    }

    #[test]
    fn dynamic_quantize_follows_the_onnx_formula() {
        let x = f32s(&[4], &[-1.0, 0.0, 1.0, 3.0]);
        let y = run_node(DynamicQuantizeLinear {}, vec![Some(x)], 3).unwrap();
        // scale = (3 - (-1)) / 255; zero point = round(1 / scale) = round(63.75) = 64.
        let scale = 4.0f32 / 255.0;
        assert_eq!(y[1].data, Data::F32(vec![scale]));
        assert_eq!(y[2].data, Data::U8(vec![64]));
        let want: Vec<u8> = [-1.0f32, 0.0, 1.0, 3.0]
            .iter()
            .map(|v| ((v / scale).round_ties_even() + 64.0).clamp(0.0, 255.0) as u8)
            .collect();
        assert_eq!(y[0].data, Data::U8(want));
        // All zeros: scale 1 (ONNX Runtime), everything 0.
        let y = run_node(
            DynamicQuantizeLinear {},
            vec![Some(f32s(&[2], &[0.0, 0.0]))],
            3,
        )
        .unwrap();
        assert_eq!(y[1].data, Data::F32(vec![1.0]));
        assert_eq!(y[0].data, Data::U8(vec![0, 0]));
    }

    #[test]
    fn qlinear_add_matches_onnx_runtime_near_ties() {
        // From an ONNX Runtime run: the fused form rounds 23.5 up where the plain sum gives 23.499996.
        let a = Tensor::new(vec![2], Data::I8(vec![-111, -118])).unwrap();
        let b = Tensor::new(vec![2], Data::I8(vec![115, -125])).unwrap();
        let y = run_node(
            QLinearAdd {},
            vec![
                Some(a),
                Some(scalar(Data::F32, 0.05f32)),
                Some(scalar(Data::I8, -118i8)),
                Some(b),
                Some(scalar(Data::F32, 0.02f32)),
                Some(scalar(Data::I8, -125i8)),
                Some(scalar(Data::F32, 0.1f32)),
                Some(scalar(Data::I8, -28i8)),
            ],
            1,
        )
        .unwrap();
        assert_eq!(y[0].data, Data::I8(vec![24, -28]));
    }

    #[test]
    fn requantize_rounds_half_to_even_and_saturates() {
        let u8r = int_range(DType::U8);
        assert_eq!(requantize(2.5, 0, u8r), 2);
        assert_eq!(requantize(3.5, 0, u8r), 4);
        assert_eq!(requantize(-0.5, 0, u8r), 0);
        assert_eq!(requantize(300.0, 0, u8r), 255);
        assert_eq!(requantize(-3.0, 1, u8r), 0);
        assert_eq!(requantize(f64::INFINITY, 0, u8r), 255);
        assert_eq!(requantize(f64::NAN, 7, u8r), 0);
        assert_eq!(requantize(-9.5, 0, int_range(DType::I4)), -8);
        assert_eq!(requantize(1.5, 0, int_range(DType::I2)), 1);
        assert_eq!(requantize(-2.5, 0, int_range(DType::I2)), -2);
        assert_eq!(int_range(DType::U2), (0, 3));
        assert_eq!(int_range(DType::I16), (-32768, 32767));
    }

    #[test]
    fn param_maps_cover_tensor_axis_and_blocks() {
        assert_eq!(param_map(&[2, 3], &[], 1, 0).unwrap(), vec![0; 6]);
        assert_eq!(param_map(&[2, 3], &[1], 1, 0).unwrap(), vec![0; 6]);
        assert_eq!(
            param_map(&[2, 3], &[3], 1, 0).unwrap(),
            vec![0, 1, 2, 0, 1, 2]
        );
        assert_eq!(
            param_map(&[2, 3], &[2], 0, 0).unwrap(),
            vec![0, 0, 0, 1, 1, 1]
        );
        // Blocks of 2 along axis 1 of [2, 5]: scale [2, 3], the last block is short.
        assert_eq!(
            param_map(&[2, 5], &[2, 3], 1, 2).unwrap(),
            vec![0, 0, 1, 1, 2, 3, 3, 4, 4, 5]
        );
        // Blocks along axis 0 of [4, 2]: scale [2, 2].
        assert_eq!(
            param_map(&[4, 2], &[2, 2], 0, 2).unwrap(),
            vec![0, 1, 0, 1, 2, 3, 2, 3]
        );
        assert!(param_map(&[2, 3], &[2], 1, 0).is_err());
        assert!(param_map(&[2, 5], &[2, 2], 1, 2).is_err());
        assert!(param_map(&[], &[2], 0, 0).is_err());
    }

    #[test]
    fn division_follows_numpy_promotion() {
        assert_eq!(division_type(DType::F16, DType::F16), DType::F16);
        assert_eq!(division_type(DType::F16, DType::F32), DType::F32);
        assert_eq!(division_type(DType::I32, DType::F32), DType::F64);
        assert_eq!(division_type(DType::F32, DType::F64), DType::F64);
    }
}
