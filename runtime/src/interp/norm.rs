//! Interpreter kernels for the norm op family (`carve_ir::ops::norm`).

use carve_ir::ops::norm::NormOp;

use super::{EvalCtx, RunError, Value, no_kernel};

/// Evaluates one norm op.
pub fn eval(op: &NormOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let _ = op;
    Err(no_kernel(cx))
}
