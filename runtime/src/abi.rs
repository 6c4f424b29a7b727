//! The native-code ABI shared by JIT executables and AOT objects (the C header generated for AOT
//! objects spells out the same layout).
//!
//! A compiled model is one entry function plus kernel functions:
//!
//! ```c
//! typedef struct { const uint8_t *weights; uint8_t *arena; void *const *io; void *ops[]; } carve_ctx;
//! typedef void (*carve_kernel)(const carve_ctx *ctx, uint64_t begin, uint64_t end);
//! typedef struct {
//!     void (*parallel_for)(void *user, carve_kernel k, const carve_ctx *ctx, uint64_t n_tiles);
//!     int32_t (*fallback)(void *user, uint32_t step, const carve_ctx *ctx);
//!     void *user;
//! } carve_host;
//! int32_t entry(const uint8_t *weights, uint8_t *arena, void *const *io, const carve_host *host);
//! ```
//!
//! `io` points to one pointer per graph input then one per graph output. `ops` is the operand table of
//! the kernel being called: the entry function stores the address of every operand the kernel reads or
//! writes there before each call, so kernels embed no addresses and nodes of one geometry share one
//! kernel function. Hosts treat the context as opaque. A kernel computes tiles
//! `begin..end` of its output; tiles are independent and fixed at compile time, so results are identical
//! for any split of the tile range over threads. `parallel_for` (optional, may be NULL) must call `k` on
//! every tile exactly once before returning. `fallback` runs a step the compiler had no native kernel for
//! (JIT only; an AOT object never has fallback steps).

use std::ffi::c_void;

/// Base pointers a kernel reads its operands from. In generated code the struct is followed by the
/// call's operand table (see the module docs); the runtime only reads these three fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct KernelCtx {
    /// Start of the weights blob (read-only).
    pub weights: *const u8,
    /// Start of the scratch arena.
    pub arena: *mut u8,
    /// Table of input pointers followed by output pointers.
    pub io: *const *mut u8,
}

/// Byte offsets of [`KernelCtx`]'s fields (what generated code loads).
pub mod ctx_offsets {
    /// Offset of `weights`.
    pub const WEIGHTS: i32 = 0;
    /// Offset of `arena`.
    pub const ARENA: i32 = 8;
    /// Offset of `io`.
    pub const IO: i32 = 16;
    /// Size of the struct.
    pub const SIZE: u32 = 24;
}

/// Byte offsets of [`Host`]'s fields.
pub mod host_offsets {
    /// Offset of `parallel_for`.
    pub const PARALLEL_FOR: i32 = 0;
    /// Offset of `fallback`.
    pub const FALLBACK: i32 = 8;
    /// Offset of `user`.
    pub const USER: i32 = 16;
}

/// A generated kernel: computes tiles `begin..end`.
pub type KernelFn = unsafe extern "C" fn(ctx: *const KernelCtx, begin: u64, end: u64);

/// Host-supplied parallel loop over `n_tiles` tiles of kernel `k`.
pub type ParallelForFn =
    unsafe extern "C" fn(user: *mut c_void, k: KernelFn, ctx: *const KernelCtx, n_tiles: u64);

/// Host-supplied runner for a step without native kernel; returns 0 on success.
pub type FallbackFn =
    unsafe extern "C" fn(user: *mut c_void, step: u32, ctx: *const KernelCtx) -> i32;

/// Callbacks the host gives the entry function.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// Parallel loop, or `None` to run every kernel on the calling thread.
    pub parallel_for: Option<ParallelForFn>,
    /// Fallback runner, or `None` (then a fallback step returns [`ERR_NO_FALLBACK`]).
    pub fallback: Option<FallbackFn>,
    /// Passed back to both callbacks.
    pub user: *mut c_void,
}

/// The entry function of a compiled model.
pub type EntryFn = unsafe extern "C" fn(
    weights: *const u8,
    arena: *mut u8,
    io: *const *mut u8,
    host: *const Host,
) -> i32;

/// Return code: success.
pub const OK: i32 = 0;
/// Return code: a fallback step was reached but the host supplied no fallback runner.
pub const ERR_NO_FALLBACK: i32 = 1;
/// Return code: the fallback runner failed.
pub const ERR_FALLBACK_FAILED: i32 = 2;

/// Alignment of the arena, the weights blob and every planned buffer inside them.
pub const ALIGN: usize = 64;
