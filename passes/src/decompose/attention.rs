//! Decomposition of `attention`.
use super::*;
/// Placeholder.
pub fn decompose_attention(g: &mut Graph) -> Result<DecomposeStats, PassError> { rewrite(g, "attention", |_| false, |_, _| Ok(())) }
