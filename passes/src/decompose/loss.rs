//! Decomposition of the losses.
use super::*;
/// Placeholder.
pub fn decompose_losses(g: &mut Graph) -> Result<DecomposeStats, PassError> { rewrite(g, "loss", |_| false, |_, _| Ok(())) }
