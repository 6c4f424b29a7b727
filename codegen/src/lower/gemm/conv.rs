//! Non-depthwise convolution lowered to GEMM (weights are the packed A operand).

use carve_ir::ops::conv::Conv;

use crate::CodegenError;
use crate::lower::{Lowering, NodeInfo, Weights};

/// Select phase for `conv`.
pub fn lower(_op: &Conv, _info: &NodeInfo, _w: &mut Weights) -> Result<Lowering, CodegenError> {
    Ok(Lowering::Fallback("conv: not yet".into()))
}
