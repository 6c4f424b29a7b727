//! `conv_transpose`.

use carve_ir::ops::conv::ConvTranspose;

use super::fallback;
use crate::CodegenError;
use crate::lower::{Lowering, NodeInfo, Weights};

/// Select phase for `conv_transpose`.
pub(super) fn lower(
    _info: &NodeInfo,
    _c: &ConvTranspose,
    _w: &mut Weights,
) -> Result<Lowering, CodegenError> {
    fallback("conv_transpose: not native yet")
}
