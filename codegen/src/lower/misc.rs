//! Miscellaneous ops: array_feature_extractor, dropout (inference), and other small ops.

use crate::CodegenError;
use crate::lower::{Lowering, NodeInfo, Weights};

/// Select phase for this family (see [`crate::lower`]).
pub fn lower(_info: &NodeInfo, _w: &mut Weights) -> Result<Lowering, CodegenError> {
    Ok(Lowering::Fallback(
        "no native kernel for this op yet".into(),
    ))
}
