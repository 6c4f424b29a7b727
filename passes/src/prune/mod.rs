//! Channel pruning (DESIGN.md "Compression"): [`groups`] finds which channels must be removed
//! together from each op's channel map, [`policy`] decides which to remove (norm criteria, bias
//! compensation from calibration statistics) and [`remove`] removes them physically, leaving a
//! smaller dense graph with the same inputs and outputs.
//!
//! ```
//! use carve_passes::prune::{Role, analyze};
//! let g = carve_ir::text::parse(
//!     "graph @mlp(%x: f32[1,4]) -> (f32[1,2]) {\n  %w = const f32[4,8] #0000000000000001\n  %h = matmul(%x, %w) : f32[1,8]\n  %r = relu(%h) : f32[1,8]\n  %v = const f32[8,2] #0000000000000002\n  %y = matmul(%r, %v) : f32[1,2]\n  return %y\n}\n",
//! )?;
//! let groups = analyze(&g);
//! // The 8 hidden units are one group: a column of `w` goes with a row of `v`.
//! let hidden = groups.groups.iter().find(|gr| gr.channels.len() == 8).unwrap();
//! assert_eq!(hidden.prunable().count(), 8);
//! assert_eq!(hidden.with_role(Role::Consumer).count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod groups;
pub mod policy;
pub mod remove;

pub use groups::{Channel, ConstSite, Group, Groups, Role, Site, analyze};
pub use policy::{
    Compensation, Criterion, choose, compensate, compensation_inputs, kept_count, scores,
};
pub use remove::{PruneError, Selection, remove_channels, zero_channels};
