//! The Cranelift emitter: realizes a [`crate::schedule::Schedule`] as native code for every triple
//! Cranelift supports — in-process ([`jit`]) or as a relocatable object with a C header ([`aot`]).
//!
//! [`kernel`] is the kernel-building layer the lowerings write their code with (it depends on no
//! planning module); [`emit`] walks the schedule and writes the kernels and the entry function.

pub mod aot;
pub mod emit;
pub mod jit;
pub mod kernel;
