//! `resize`.

use carve_ir::ops::movement::Resize;

use super::fallback;
use crate::CodegenError;
use crate::lower::{Lowering, NodeInfo, Weights};

/// Select phase for `resize`.
pub(super) fn lower(
    _info: &NodeInfo,
    _r: &Resize,
    _w: &mut Weights,
) -> Result<Lowering, CodegenError> {
    fallback("resize: not native yet")
}
