//! Kernels of the fused ops (`fused_conv`, `fused_matmul`): the plain conv / matmul kernel on the
//! product's two operands, then the epilogue steps ([`carve_ir::ops::fused::EpiStep`]) in order, per
//! element in f64, rounded once to the output element type (activations as
//! [`super::activation::apply`] defines them). This is the one meaning of an epilogue.
//!
//! An integer `fused_matmul` (8-bit operands, epilogue starting with `rescale`) computes its product
//! as `matmul_integer(a, b, a_zp, b_zp)` (the rescale step's second and third operands) in i32, and
//! `rescale` turns each accumulator into `f64(acc) · scale[c]` (one scale, or one per column).

use carve_ir::DType;
use carve_ir::ops::conv::ConvOp;
use carve_ir::ops::fused::{EpiStep, Epilogue, FusedOp};
use carve_ir::ops::linalg::{LinalgOp, MatMul};
use carve_ir::ops::quant::{MatMulInteger, QuantOp};

use super::{EvalCtx, RunError, Value};
use crate::tensor::{Data, Tensor};

/// Evaluates a fused op.
pub fn eval(op: &FusedOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let epi = op.epilogue();
    epi.check(cx.num_inputs()).map_err(|e| cx.err(e))?;
    let steps = epi.with_inputs();
    let (product, rest, channel_axis_one) = match op {
        FusedOp::FusedConv(o) => {
            // A leading bias is conv's own bias (conv adds it by definition): pass it through.
            let n = if matches!(steps.first(), Some((EpiStep::Bias, _))) {
                3
            } else {
                2
            };
            let sub = sub_ctx(cx, n);
            let out = super::conv::eval(&ConvOp::Conv(o.conv()), &sub)?;
            (out, &steps[n - 2..], true)
        }
        FusedOp::FusedMatMul(_) if epi.is_integer() => {
            // matmul_integer(a, b, a_zp, b_zp): the zero points are rescale's 2nd and 3rd operands.
            let k = FusedOp::PRODUCT_INPUTS;
            let mut sub = sub_ctx(cx, k);
            for i in [k + 1, k + 2] {
                sub.inputs.push(cx.inputs.get(i).copied().flatten());
                sub.input_types
                    .push(cx.input_types.get(i).copied().flatten());
            }
            let out = super::quant::eval(&QuantOp::MatMulInteger(MatMulInteger {}), &sub)?;
            (out, &steps[..], false)
        }
        FusedOp::FusedMatMul(_) => {
            let sub = sub_ctx(cx, FusedOp::PRODUCT_INPUTS);
            let out = super::linalg::eval(&LinalgOp::MatMul(MatMul {}), &sub)?;
            (out, &steps[..], false)
        }
    };
    apply(product, rest, channel_axis_one, epi, cx)
}

/// The context of the product alone: its first `n` inputs, and (the output type aside) the same node.
fn sub_ctx<'a>(cx: &EvalCtx<'a>, n: usize) -> EvalCtx<'a> {
    EvalCtx {
        node: cx.node,
        op: cx.op,
        inputs: cx.inputs[..n.min(cx.inputs.len())].to_vec(),
        input_types: cx.input_types[..n.min(cx.input_types.len())].to_vec(),
        outputs: Vec::new(),
        env: cx.env,
        depth: cx.depth,
    }
}

/// Applies `steps` (each with the input it reads) to the product `out`.
fn apply(
    mut out: Vec<Value>,
    steps: &[(EpiStep, Option<usize>)],
    channel_axis_one: bool,
    epi: &Epilogue,
    cx: &EvalCtx,
) -> Result<Vec<Value>, RunError> {
    let Some(Value::Tensor(t)) = out.first_mut() else {
        return Err(cx.err("the kernel produced no tensor"));
    };
    if steps.is_empty() {
        return Ok(out);
    }
    // The product as f64: f32, or an integer product's i32 accumulators (which `rescale` reads).
    let v: Vec<f64> = match &t.data {
        Data::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        Data::I32(v) if epi.is_integer() => v.iter().map(|&x| f64::from(x)).collect(),
        d => {
            return Err(cx.err(format!(
                "fused epilogues are defined for f32 (or rescaled i32) products only, got {}",
                d.dtype()
            )));
        }
    };
    let shape = t.shape.clone();
    let (chans, inner) = if channel_axis_one {
        (
            shape.get(1).copied().unwrap_or(1),
            shape.iter().skip(2).product::<usize>(),
        )
    } else {
        (shape.last().copied().unwrap_or(1), 1)
    };
    // The operands, checked against the product's shape.
    let mut operands: Vec<Option<&[f32]>> = Vec::with_capacity(steps.len());
    for (step, input) in steps {
        let Some(k) = *input else {
            operands.push(None);
            continue;
        };
        let o = cx.tensor(k)?;
        let Data::F32(ov) = &o.data else {
            return Err(cx.err(format!("epilogue operand {k} ({step}) must be f32")));
        };
        let want = if *step == EpiStep::Rescale {
            if ov.len() == 1 { 1 } else { chans }
        } else if *step == EpiStep::Residual {
            if o.shape != shape {
                return Err(cx.err(format!(
                    "residual operand {k} has shape {:?}, the product {shape:?}",
                    o.shape
                )));
            }
            v.len()
        } else {
            chans
        };
        if ov.len() != want {
            return Err(cx.err(format!(
                "{step} operand {k} has {} elements, expected {want}",
                ov.len()
            )));
        }
        operands.push(Some(ov.as_slice()));
    }
    let inner = inner.max(1);
    let chans = chans.max(1);
    let ys = v.iter().enumerate().map(|(i, &x)| {
        let c = (i / inner) % chans;
        let mut y = x;
        for ((step, _), opnd) in steps.iter().zip(&operands) {
            y = match (step, opnd) {
                (EpiStep::Rescale, Some(s)) => y * f64::from(s[if s.len() == 1 { 0 } else { c }]),
                (EpiStep::Bias, Some(b)) => y + f64::from(b[c]),
                (EpiStep::Scale, Some(s)) => y * f64::from(s[c]),
                (EpiStep::Residual, Some(r)) => y + f64::from(r[i]),
                (EpiStep::Act(a), _) => super::activation::apply(a, y),
                (EpiStep::Clamp { lo, hi }, _) => clamp(y, f64::from(*lo), f64::from(*hi)),
                (
                    EpiStep::Requant {
                        dtype,
                        scale,
                        zero_point,
                    },
                    _,
                ) => requant(y, *dtype, *scale, *zero_point),
                _ => y,
            };
        }
        y
    });
    let data = match epi.requant() {
        None => Data::F32(ys.map(|y| y as f32).collect()),
        Some((DType::U8, ..)) => Data::U8(ys.map(|y| y as u8).collect()),
        Some((DType::I8, ..)) => Data::I8(ys.map(|y| y as i8).collect()),
        Some((d, ..)) => return Err(cx.err(format!("requant to {d} is not defined"))),
    };
    out[0] = Value::Tensor(Tensor { shape, data });
    Ok(out)
}

/// `min(max(y, lo), hi)`; NaN stays NaN.
fn clamp(y: f64, lo: f64, hi: f64) -> f64 {
    if y.is_nan() { y } else { y.max(lo).min(hi) }
}

/// `saturate(round_half_even(y / scale) + zero_point)` into the range of `dtype` (NaN gives the zero
/// point), as a value the final cast stores exactly.
fn requant(y: f64, dtype: DType, scale: f32, zero_point: i32) -> f64 {
    let (lo, hi) = if dtype == DType::U8 {
        (0.0, 255.0)
    } else {
        (-128.0, 127.0)
    };
    let q = (y / f64::from(scale)).round_ties_even();
    let q = if q.is_nan() { 0.0 } else { q };
    (q + f64::from(zero_point)).clamp(lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requant_rounds_half_to_even_and_saturates() {
        assert_eq!(requant(2.5, DType::U8, 1.0, 0), 2.0);
        assert_eq!(requant(3.5, DType::U8, 1.0, 0), 4.0);
        assert_eq!(requant(-1.0, DType::U8, 1.0, 0), 0.0);
        assert_eq!(requant(1000.0, DType::I8, 1.0, 0), 127.0);
        assert_eq!(requant(-0.5, DType::I8, 0.25, 10), 8.0);
        assert_eq!(requant(f64::NAN, DType::U8, 1.0, 128), 128.0);
    }

    #[test]
    fn clamp_keeps_nan() {
        assert!(clamp(f64::NAN, 0.0, 6.0).is_nan());
        assert_eq!(clamp(7.0, 0.0, 6.0), 6.0);
    }
}
