//! Kernels of the fused ops (`fused_conv`, `fused_matmul`): the plain conv / matmul kernel, then the bias
//! and activation epilogue (the activation as [`super::activation::apply`] defines it, in f64, rounded
//! once to f32).

use carve_ir::ops::conv::ConvOp;
use carve_ir::ops::fused::{Activation, FusedOp};
use carve_ir::ops::linalg::{LinalgOp, MatMul};

use super::{EvalCtx, RunError, Value};
use crate::tensor::Data;

/// Evaluates a fused op.
pub fn eval(op: &FusedOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    match op {
        FusedOp::FusedConv(o) => {
            let out = super::conv::eval(&ConvOp::Conv(o.conv()), cx)?;
            epilogue(out, None, o.activation(), cx)
        }
        FusedOp::FusedMatMul(o) => {
            let out = super::linalg::eval(&LinalgOp::MatMul(MatMul {}), cx)?;
            let bias = cx.opt_tensor(2)?;
            let bias = match bias {
                Some(b) => match &b.data {
                    Data::F32(v) => Some(v.as_slice()),
                    _ => return Err(cx.err("bias must be f32 (other float types: no kernel yet)")),
                },
                None => None,
            };
            epilogue(out, bias, o.activation(), cx)
        }
    }
}

/// Adds `bias` along the last dim and applies `act` to the first output in place.
fn epilogue(
    mut out: Vec<Value>,
    bias: Option<&[f32]>,
    act: Activation,
    cx: &EvalCtx,
) -> Result<Vec<Value>, RunError> {
    let Some(Value::Tensor(t)) = out.first_mut() else {
        return Err(cx.err("the kernel produced no tensor"));
    };
    let last = t.shape.last().copied().unwrap_or(1);
    let Data::F32(v) = &mut t.data else {
        if bias.is_none() && act == Activation::NONE {
            return Ok(out);
        }
        return Err(cx.err("fused epilogues are defined for f32 results only"));
    };
    if let Some(b) = bias {
        if b.len() != last {
            return Err(cx.err(format!(
                "bias has {} elements, the product's last dim is {last}",
                b.len()
            )));
        }
        if last > 0 {
            for row in v.chunks_exact_mut(last) {
                for (x, &bb) in row.iter_mut().zip(b) {
                    *x += bb;
                }
            }
        }
    }
    if act != Activation::NONE {
        for x in v.iter_mut() {
            *x = super::activation::apply(&act, f64::from(*x)) as f32;
        }
    }
    Ok(out)
}
