//! Interpreter kernels for the linalg op family (`carve_ir::ops::linalg`).

use carve_ir::ops::linalg::LinalgOp;

use super::{EvalCtx, RunError, Value, no_kernel};

/// Evaluates one linalg op.
pub fn eval(op: &LinalgOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let _ = op;
    Err(no_kernel(cx))
}
