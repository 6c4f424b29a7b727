//! Channel pruning (DESIGN.md "Compression"): [`groups`] finds which channels must be removed
//! together from each op's channel map, [`policy`] decides which to remove (norm criteria, bias
//! compensation from calibration statistics) and [`remove`] removes them physically, leaving a
//! smaller dense graph with the same inputs and outputs.
//!
//! ```
//! use carve_passes::prune::{analyze, choose, remove_channels, Criterion};
//! let g = carve_ir::text::parse(
//!     "graph @g(%x: f32[1,4]) -> (f32[1,2]) {\n  %w = const f32[4,8] #0\n  %v = const f32[8,2] #0\n  %0 = matmul(%x, %w) : f32[1,8]\n  %1 = relu(%0) : f32[1,8]\n  %2 = matmul(%1, %v) : f32[1,2]\n  return %2\n}\n",
//! );
//! # let _ = (g, analyze, choose, remove_channels, Criterion::L1);
//! ```

pub mod groups;
pub mod policy;
pub mod remove;

pub use groups::{Channel, ConstSite, Group, Groups, Role, Site, analyze};
pub use policy::{
    Compensation, Criterion, choose, compensate, compensation_inputs, kept_count, scores,
};
pub use remove::{PruneError, Selection, remove_channels, zero_channels};
