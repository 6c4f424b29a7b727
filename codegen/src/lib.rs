//! carve's code generator: compiles a graph with static shapes into native kernels specialized to its
//! shapes, constants and the target's ISA features, with a static memory plan, and runs it in-process
//! (JIT) or emits an object file (AOT).
//!
//! Pipeline: [`prepare::prepare`] (fold constants, check static shapes) → [`lower::select`] per node →
//! [`plan::plan`] (arena offsets from liveness) → kernel emission ([`emit`]) → entry function
//! ([`compile`]) → [`jit::compile_jit`] (or an object module).

pub mod aot;
pub mod compile;
pub mod emit;
mod error;
pub mod jit;
pub mod lower;
pub mod plan;
pub mod prepare;
pub mod target;
pub mod testing;

pub use compile::{FallbackNode, Report};
pub use error::CodegenError;
pub use target::Target;
