//! Interpreter kernels for the quant op family (`carve_ir::ops::quant`).

use carve_ir::ops::quant::QuantOp;

use super::{EvalCtx, RunError, Value, no_kernel};

/// Evaluates one quant op.
pub fn eval(op: &QuantOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let _ = op;
    Err(no_kernel(cx))
}
