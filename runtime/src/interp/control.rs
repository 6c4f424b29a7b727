//! Interpreter kernels for the control op family (`carve_ir::ops::control`).

use carve_ir::ops::control::ControlOp;

use super::{EvalCtx, RunError, Value, no_kernel};

/// Evaluates one control op.
pub fn eval(op: &ControlOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let _ = op;
    Err(no_kernel(cx))
}
