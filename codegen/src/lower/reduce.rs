//! Reductions over axes, softmax/log_softmax, arg_reduce.

use crate::CodegenError;
use crate::lower::{Lowering, NodeInfo, Weights};

/// Select phase for this family (see [`crate::lower`]).
pub fn lower(_info: &NodeInfo, _w: &mut Weights) -> Result<Lowering, CodegenError> {
    Ok(Lowering::Fallback(
        "no native kernel for this op yet".into(),
    ))
}
