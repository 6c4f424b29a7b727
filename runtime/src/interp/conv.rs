//! Interpreter kernels for the conv op family (`carve_ir::ops::conv`).

use carve_ir::ops::conv::ConvOp;

use super::{EvalCtx, RunError, Value, no_kernel};

/// Evaluates one conv op.
pub fn eval(op: &ConvOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let _ = op;
    Err(no_kernel(cx))
}
