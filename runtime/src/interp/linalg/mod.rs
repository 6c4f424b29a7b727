//! Interpreter kernels for the linalg op family (`carve_ir::ops::linalg`): matrix products
//! ([`matmul`]: `matmul`, `gemm`, `det`), [`einsum`], the attention ops ([`attention`]: `attention`,
//! `flex_attention`) and the transformer-layer pieces ([`layers`]: `rotary_embedding`, `swiglu`,
//! `linear_attention`).
//!
//! Products of f32 (and f16/bf16, computed in f32) run on `util::sgemm`, f64 on `util::dgemm`, integers
//! natively with wrapping arithmetic. Where the ONNX reference rounds to the input type in the middle
//! of an op (scaled Q/K, scores, probabilities in attention), the kernels round there too, so that
//! f16/bf16 results match it to the last bit as far as possible.

mod attention;
mod einsum;
mod layers;
mod matmul;
mod num;

use carve_ir::ops::linalg::LinalgOp;
use carve_ir::{DType, Type};

use super::{EvalCtx, RunError, Value};

/// Evaluates one linalg op.
pub fn eval(op: &LinalgOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    match op {
        LinalgOp::MatMul(_) => matmul::matmul(cx),
        LinalgOp::Gemm(o) => matmul::gemm(o, cx),
        LinalgOp::Einsum(o) => einsum::einsum(o, cx),
        LinalgOp::Det(_) => matmul::det(cx),
        LinalgOp::Attention(o) => attention::attention(o, cx),
        LinalgOp::RotaryEmbedding(o) => layers::rotary_embedding(o, cx),
        LinalgOp::SwiGlu(o) => layers::swiglu(o, cx),
        LinalgOp::LinearAttention(o) => layers::linear_attention(o, cx),
        LinalgOp::FlexAttention(o) => attention::flex_attention(o, cx),
    }
}

/// The element type of output `k` (from the node's IR type), or `fallback`.
fn out_dtype(cx: &EvalCtx, k: usize, fallback: DType) -> DType {
    match cx.output_type(k) {
        Some(Type::Tensor(t)) => t.dtype,
        _ => fallback,
    }
}

/// Refuses a non-float input `i`.
fn want_float(cx: &EvalCtx, i: usize, d: DType) -> Result<(), RunError> {
    if matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16) {
        Ok(())
    } else {
        Err(cx.err(format!("input {i} must be f32, f64, f16 or bf16, got {d}")))
    }
}
