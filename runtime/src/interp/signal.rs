//! Interpreter kernels for the signal op family (`carve_ir::ops::signal`).

use carve_ir::ops::signal::SignalOp;

use super::{EvalCtx, RunError, Value, no_kernel};

/// Evaluates one signal op.
pub fn eval(op: &SignalOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let _ = op;
    Err(no_kernel(cx))
}
