//! Interpreter kernels for the rnn op family (`carve_ir::ops::rnn`).

use carve_ir::ops::rnn::RnnOp;

use super::{EvalCtx, RunError, Value, no_kernel};

/// Evaluates one rnn op.
pub fn eval(op: &RnnOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let _ = op;
    Err(no_kernel(cx))
}
