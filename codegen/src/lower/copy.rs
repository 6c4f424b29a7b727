//! Data movement that needs no arithmetic: reshape-like ops as views (aliases) of their input.

use carve_ir::Op;
use carve_ir::ops::movement::MovementOp;

use crate::CodegenError;
use crate::lower::{Lowering, NodeInfo, Weights};

/// True for ops whose output is their input's bytes under a new shape (the op's own property).
pub fn is_view(m: &MovementOp) -> bool {
    m.props().view
}

/// Reshape, flatten, squeeze, unsqueeze and identity are views: same bytes, new shape.
pub fn lower(info: &NodeInfo, _w: &mut Weights) -> Result<Lowering, CodegenError> {
    let Op::Movement(m) = info.op() else {
        return Ok(Lowering::Fallback("not a movement op".into()));
    };
    if is_view(m) && info.has_input(0) && info.in_dtype(0)? == info.out_dtype(0)? {
        return Ok(Lowering::Alias);
    }
    Ok(Lowering::Fallback(
        "no native kernel for this op yet".into(),
    ))
}
