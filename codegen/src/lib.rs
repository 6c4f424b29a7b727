//! carve's code generator: compiles a graph with static shapes into native kernels specialized to its
//! shapes, constants and the target's ISA features, with a static memory plan, and runs it in-process
//! (JIT) or emits an object file (AOT).
//!
//! Pipeline: [`prepare::prepare`] (fold constants, check static shapes) → [`schedule::Schedule::build`]
//! (kernel choice per node via [`lower::select`], fusion, arena plan, thread split — target-neutral
//! data with a text form) → an emitter: [`cranelift::emit::emit`] (kernels and the entry function),
//! wrapped by [`compile::compile_into`], [`jit::compile_jit`] and [`aot::compile_object`].

pub mod compile;
pub mod cranelift;
mod error;
pub mod lower;
pub mod node;
pub mod prepare;
pub mod schedule;
pub mod target;
pub mod testing;
pub mod weights;
pub mod x86;

pub use compile::{FallbackNode, Report};
pub use cranelift::{aot, jit};
pub use error::CodegenError;
pub use schedule::{Schedule, ScheduleOptions};
pub use target::Target;

/// The kernel-building layer under its historical path (`crate::emit::{Emitter, Kb}`), which the
/// lowerings import.
pub use cranelift::kernel as emit;
