//! Interpreter kernels for the elementwise op family (`carve_ir::ops::elementwise`).

use carve_ir::ops::elementwise::ElementwiseOp;

use super::{EvalCtx, RunError, Value, no_kernel};

/// Evaluates one elementwise op.
pub fn eval(op: &ElementwiseOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let _ = op;
    Err(no_kernel(cx))
}
