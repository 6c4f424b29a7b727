//! Interpreter kernels for the reduce op family (`carve_ir::ops::reduce`).

use carve_ir::ops::reduce::ReduceOp;

use super::{EvalCtx, RunError, Value, no_kernel};

/// Evaluates one reduce op.
pub fn eval(op: &ReduceOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let _ = op;
    Err(no_kernel(cx))
}
