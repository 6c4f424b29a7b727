//! Interpreter kernels for the movement op family (`carve_ir::ops::movement`).

use carve_ir::ops::movement::MovementOp;

use super::{EvalCtx, RunError, Value, no_kernel};

/// Evaluates one movement op.
pub fn eval(op: &MovementOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let _ = op;
    Err(no_kernel(cx))
}
