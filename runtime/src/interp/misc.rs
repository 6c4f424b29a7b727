//! Interpreter kernels for the misc op family (`carve_ir::ops::misc`).

use carve_ir::ops::misc::MiscOp;

use super::{EvalCtx, RunError, Value, no_kernel};

/// Evaluates one misc op.
pub fn eval(op: &MiscOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let _ = op;
    Err(no_kernel(cx))
}
