//! Matrix products: matmul (batched, broadcast), gemm; weights pre-packed into panels; register-blocked FMA micro-tile; fused bias/activation epilogue. Also convolutions lowered to GEMM (1x1, im2col, grouped).

use crate::CodegenError;
use crate::lower::{Lowering, NodeInfo, Weights};

/// Select phase for this family (see [`crate::lower`]).
pub fn lower(_info: &NodeInfo, _w: &mut Weights) -> Result<Lowering, CodegenError> {
    Ok(Lowering::Fallback(
        "no native kernel for this op yet".into(),
    ))
}
