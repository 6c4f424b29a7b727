//! The executable wrapper for native code: owns the code handle, the weights blob and the memory plan's
//! I/O description, validates inputs, drives the generated entry function, supplies the thread pool
//! (`parallel_for`) and runs fallback steps through the reference interpreter.
//!
//! The code itself comes from a compiler (carve-codegen) as a [`Code`] object; this module never
//! generates code.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use carve_ir::{DType, Graph, ValueId};
use rayon::prelude::*;

use crate::abi::{self, EntryFn, Host, KernelCtx, KernelFn};
use crate::interp::{RunError, Value, eval_node};
use crate::{Data, Tensor};

/// Where a tensor lives while a compiled model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Loc {
    /// Byte offset into the scratch arena.
    Arena(usize),
    /// Byte offset into the weights blob.
    Weights(usize),
    /// Index into the I/O pointer table (inputs first, then outputs), plus a byte offset.
    Io(usize, usize),
}

/// A tensor's location, element type and shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slot {
    /// Where its bytes are.
    pub loc: Loc,
    /// Element type.
    pub dtype: DType,
    /// Concrete shape.
    pub shape: Vec<usize>,
}

impl Slot {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Number of bytes (sub-byte types packed).
    pub fn bytes(&self) -> usize {
        self.dtype.storage_bytes(self.numel() as u64).unwrap_or(0) as usize
    }
}

/// A step the compiler had no native kernel for: node `node` of the program's graph, run by the
/// interpreter on the tensors in its slots.
#[derive(Debug, Clone)]
pub struct FallbackStep {
    /// Index of the node in [`Program::graph`]'s node list.
    pub node: usize,
    /// One slot per input (None for absent optional inputs).
    pub inputs: Vec<Option<Slot>>,
    /// One slot per output.
    pub outputs: Vec<Slot>,
    /// Values captured by the node's subgraphs, and where they are.
    pub captures: Vec<(ValueId, Slot)>,
}

/// Generated code: keeps the code memory alive and hands out the entry function.
pub trait Code: Send + Sync {
    /// The entry function.
    fn entry(&self) -> EntryFn;
}

/// Bytes aligned to [`abi::ALIGN`].
#[derive(Clone, Default)]
pub struct AlignedBytes {
    blocks: Vec<Block>,
    len: usize,
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Block([u8; abi::ALIGN]);

impl AlignedBytes {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> AlignedBytes {
        AlignedBytes {
            blocks: vec![Block([0; abi::ALIGN]); len.div_ceil(abi::ALIGN)],
            len,
        }
    }

    /// Empty, with room for `bytes` bytes before it reallocates.
    pub fn with_capacity(bytes: usize) -> AlignedBytes {
        AlignedBytes {
            blocks: Vec::with_capacity(bytes.div_ceil(abi::ALIGN)),
            len: 0,
        }
    }

    /// Appends `n` bytes at the next multiple of [`abi::ALIGN`] (the gap is zero), lets `fill` write
    /// them (they start zeroed), and returns their offset. Growth is amortized like a `Vec`'s, and the
    /// buffer stays aligned, so a weights blob built this way is used in place by the JIT.
    pub fn append_aligned(&mut self, n: usize, fill: impl FnOnce(&mut [u8])) -> usize {
        let offset = self.len.next_multiple_of(abi::ALIGN);
        let len = offset + n;
        self.blocks
            .resize(len.div_ceil(abi::ALIGN), Block([0; abi::ALIGN]));
        self.len = len;
        fill(&mut self.as_mut_slice()[offset..]);
        offset
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `blocks` is a contiguous array of plain bytes at least `len` long.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<u8>(), self.len) }
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and we hold the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<u8>(), self.len) }
    }

    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.blocks.as_mut_ptr().cast::<u8>()
    }
}

impl std::fmt::Debug for AlignedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBytes({} bytes)", self.len)
    }
}

/// Everything a compiler hands to the runtime for one concrete-shape compilation.
pub struct Program {
    /// The code.
    pub code: Box<dyn Code>,
    /// Weights blob (pre-packed constants).
    pub weights: AlignedBytes,
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// Graph inputs (names, dtypes, shapes) in order; their slots are `Loc::Io(k, 0)`.
    pub inputs: Vec<(String, Slot)>,
    /// Graph outputs in order; slots `Loc::Io(num_inputs + k, 0)`.
    pub outputs: Vec<(String, Slot)>,
    /// The graph fallback steps refer to.
    pub graph: Arc<Graph>,
    /// Fallback steps, indexed by the step number the entry function passes.
    pub fallbacks: Vec<FallbackStep>,
    /// Kernel calls with more than one tile (the ones `parallel_for` splits over threads).
    pub parallel_kernels: usize,
}

/// A failure while running native code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExecError {
    /// Wrong number of inputs.
    #[error("the model takes {expected} inputs, got {got}")]
    InputCount {
        /// Expected.
        expected: usize,
        /// Given.
        got: usize,
    },
    /// An input's dtype or shape differs from what the code was compiled for.
    #[error("input '{name}': expected {expected}, got {got}")]
    Input {
        /// Input name.
        name: String,
        /// What the code was compiled for.
        expected: String,
        /// What was given.
        got: String,
    },
    /// A fallback step failed.
    #[error(transparent)]
    Fallback(#[from] RunError),
    /// Generated code returned an error code.
    #[error("generated code returned error code {0}")]
    Code(i32),
}

/// A runnable compiled model.
pub struct Executable {
    program: Program,
    threads: usize,
    pool: Option<rayon::ThreadPool>,
    arenas: Mutex<Vec<AlignedBytes>>,
}

struct RunState<'a> {
    program: &'a Program,
    pool: Option<&'a rayon::ThreadPool>,
    threads: usize,
    error: Mutex<Option<RunError>>,
}

#[derive(Clone, Copy)]
struct SendCtx(*const KernelCtx);
// SAFETY: the context only holds base pointers into memory that outlives the parallel loop; kernels
// write disjoint tiles.
unsafe impl Send for SendCtx {}
// SAFETY: as above.
unsafe impl Sync for SendCtx {}

/// One call of a compiled model's entry function, movable to a pool thread.
#[derive(Clone, Copy)]
struct EntryCall {
    entry: EntryFn,
    weights: *const u8,
    arena: *mut u8,
    io: *const *mut u8,
    host: *const Host,
}

// SAFETY: the pointers stay valid until `Executable::run` returns, and it waits for the call (the pool's
// `install` blocks); nothing else uses the arena, the I/O buffers or the host state meanwhile.
unsafe impl Send for EntryCall {}

impl EntryCall {
    fn run(self) -> i32 {
        // SAFETY: the entry function was generated for exactly this plan: `weights` is the blob it was
        // compiled against, the arena has `arena_bytes` bytes, `io` holds one buffer per input/output
        // of the planned size, and `host` with the state it points to outlives the call.
        unsafe { (self.entry)(self.weights, self.arena, self.io, self.host) }
    }
}

unsafe extern "C" fn parallel_for(user: *mut c_void, k: KernelFn, ctx: *const KernelCtx, n: u64) {
    // SAFETY: `user` is the `RunState` that `Executable::run` passed in and keeps alive during the call.
    let state = unsafe { &*(user as *const RunState) };
    let ctx = SendCtx(ctx);
    let run_all = move |lo: u64, hi: u64| {
        let c = ctx;
        // SAFETY: generated kernels accept any sub-range of their tiles; memory is valid (see above).
        unsafe { k(c.0, lo, hi) }
    };
    match state.pool {
        Some(pool) if n > 1 => {
            let chunks = n.min(state.threads as u64 * 4);
            pool.install(|| {
                (0..chunks).into_par_iter().for_each(|c| {
                    let lo = n * c / chunks;
                    let hi = n * (c + 1) / chunks;
                    if hi > lo {
                        run_all(lo, hi);
                    }
                })
            });
        }
        _ => run_all(0, n),
    }
}

unsafe extern "C" fn fallback(user: *mut c_void, step: u32, ctx: *const KernelCtx) -> i32 {
    // SAFETY: `user` is the `RunState` that `Executable::run` passed in and keeps alive during the call.
    let state = unsafe { &*(user as *const RunState) };
    // SAFETY: `ctx` is the entry function's context; its pointers cover every planned slot.
    let ctx = unsafe { *ctx };
    let r = catch_unwind(AssertUnwindSafe(|| {
        run_fallback(state.program, step as usize, &ctx)
    }));
    let err = match r {
        Ok(Ok(())) => return abi::OK,
        Ok(Err(e)) => e,
        Err(_) => RunError {
            node: String::new(),
            op: "fallback".into(),
            msg: "interpreter panicked".into(),
        },
    };
    if let Ok(mut slot) = state.error.lock() {
        *slot = Some(err);
    }
    abi::ERR_FALLBACK_FAILED
}

fn slot_ptr(ctx: &KernelCtx, loc: Loc) -> *mut u8 {
    match loc {
        // SAFETY (all arms): offsets were planned inside the regions the pointers cover.
        Loc::Arena(off) => unsafe { ctx.arena.add(off) },
        Loc::Weights(off) => unsafe { ctx.weights.add(off) as *mut u8 },
        Loc::Io(k, off) => unsafe { (*ctx.io.add(k)).add(off) },
    }
}

fn read_slot(ctx: &KernelCtx, s: &Slot) -> Result<Tensor, RunError> {
    let n = s.bytes();
    let p = slot_ptr(ctx, s.loc);
    // SAFETY: the slot's bytes lie inside a live region (planned by the compiler).
    let b = unsafe { std::slice::from_raw_parts(p as *const u8, n) };
    let data = Data::from_le_bytes(s.dtype, b, s.numel()).map_err(|e| RunError {
        node: String::new(),
        op: "fallback".into(),
        msg: e.0,
    })?;
    Tensor::new(s.shape.clone(), data).map_err(|e| RunError {
        node: String::new(),
        op: "fallback".into(),
        msg: e.0,
    })
}

fn run_fallback(p: &Program, step: usize, ctx: &KernelCtx) -> Result<(), RunError> {
    let fb = p.fallbacks.get(step).ok_or_else(|| RunError {
        node: String::new(),
        op: "fallback".into(),
        msg: format!("no fallback step {step}"),
    })?;
    let node = &p.graph.nodes[fb.node];
    let err = |msg: String| RunError {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        msg,
    };
    let mut ins = Vec::with_capacity(fb.inputs.len());
    for s in &fb.inputs {
        ins.push(match s {
            Some(s) => Some(Value::Tensor(read_slot(ctx, s)?)),
            None => None,
        });
    }
    let mut env: Vec<Option<Arc<Value>>> = Vec::new();
    if !fb.captures.is_empty() {
        env = vec![None; p.graph.values.len()];
        for (v, s) in &fb.captures {
            env[v.index()] = Some(Arc::new(Value::Tensor(read_slot(ctx, s)?)));
        }
    }
    let outs = eval_node(
        &p.graph,
        node,
        ins.iter().map(|v| v.as_ref()).collect(),
        &env,
    )?;
    for (k, (s, v)) in fb.outputs.iter().zip(outs).enumerate() {
        let t = match v {
            Value::Tensor(t) => t,
            other => {
                return Err(err(format!(
                    "output {k} is a {}, not a tensor",
                    other.kind()
                )));
            }
        };
        if t.shape != s.shape || t.dtype() != s.dtype {
            return Err(err(format!(
                "output {k}: kernel produced {} {:?}, the plan expects {} {:?}",
                t.dtype(),
                t.shape,
                s.dtype,
                s.shape
            )));
        }
        let bytes = t
            .data
            .to_le_bytes()
            .ok_or_else(|| err(format!("output {k} has no byte encoding")))?;
        let p = slot_ptr(ctx, s.loc);
        // SAFETY: the slot has exactly `bytes.len()` bytes planned for it, disjoint from the inputs'.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    }
    Ok(())
}

fn describe(dtype: DType, shape: &[usize]) -> String {
    format!("{dtype}{shape:?}")
}

impl Executable {
    /// Wraps a program; `threads` = 1 runs every kernel on the calling thread.
    pub fn new(program: Program, threads: usize) -> Executable {
        let threads = threads.max(1);
        let pool = if threads > 1 {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("carve-worker-{i}"))
                .build()
                .ok()
        } else {
            None
        };
        Executable {
            program,
            threads,
            pool,
            arenas: Mutex::new(Vec::new()),
        }
    }

    /// The program (plan, I/O description, fallbacks).
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Number of threads kernels are split over.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs the model on `inputs` (one per graph input, in order, with the compiled dtypes and shapes).
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ExecError> {
        let p = &self.program;
        if inputs.len() != p.inputs.len() {
            return Err(ExecError::InputCount {
                expected: p.inputs.len(),
                got: inputs.len(),
            });
        }
        let mut in_bufs = Vec::with_capacity(inputs.len());
        for ((name, slot), t) in p.inputs.iter().zip(inputs) {
            if t.dtype() != slot.dtype || t.shape != slot.shape {
                return Err(ExecError::Input {
                    name: name.clone(),
                    expected: describe(slot.dtype, &slot.shape),
                    got: describe(t.dtype(), &t.shape),
                });
            }
            let mut buf = AlignedBytes::zeroed(slot.bytes());
            if !t.data.write_le_bytes(buf.as_mut_slice()) {
                return Err(ExecError::Input {
                    name: name.clone(),
                    expected: describe(slot.dtype, &slot.shape),
                    got: format!("{} (no byte encoding)", t.dtype()),
                });
            }
            in_bufs.push(buf);
        }
        let mut out_bufs: Vec<AlignedBytes> = p
            .outputs
            .iter()
            .map(|(_, s)| AlignedBytes::zeroed(s.bytes()))
            .collect();
        let mut io: Vec<*mut u8> = Vec::with_capacity(in_bufs.len() + out_bufs.len());
        for b in in_bufs.iter_mut().chain(out_bufs.iter_mut()) {
            io.push(b.as_mut_ptr());
        }
        let mut arena = self
            .arenas
            .lock()
            .ok()
            .and_then(|mut a| a.pop())
            .unwrap_or_else(|| AlignedBytes::zeroed(p.arena_bytes));
        let state = RunState {
            program: p,
            pool: self.pool.as_ref(),
            threads: self.threads,
            error: Mutex::new(None),
        };
        let host = Host {
            parallel_for: if self.pool.is_some() {
                Some(parallel_for)
            } else {
                None
            },
            fallback: Some(fallback),
            user: &state as *const RunState as *mut c_void,
        };
        let call = EntryCall {
            entry: p.code.entry(),
            weights: p.weights.as_slice().as_ptr(),
            arena: arena.as_mut_ptr(),
            io: io.as_ptr(),
            host: &host,
        };
        // With a pool the whole entry runs on one of its threads: each kernel's `parallel_for` is then
        // a split inside the pool (the thread running the entry takes part) instead of a hand-off from
        // outside that wakes the pool and blocks this thread once per kernel.
        let rc = match self.pool.as_ref() {
            Some(pool) if p.parallel_kernels > 0 => pool.install(move || call.run()),
            _ => call.run(),
        };
        if let Ok(mut a) = self.arenas.lock() {
            a.push(arena);
        }
        if rc != abi::OK {
            if let Some(e) = state.error.lock().ok().and_then(|mut e| e.take()) {
                return Err(ExecError::Fallback(e));
            }
            return Err(ExecError::Code(rc));
        }
        let mut outs = Vec::with_capacity(out_bufs.len());
        for ((name, s), b) in p.outputs.iter().zip(&out_bufs) {
            let data = Data::from_le_bytes(s.dtype, b.as_slice(), s.numel()).map_err(|e| {
                ExecError::Fallback(RunError {
                    node: String::new(),
                    op: format!("output {name}"),
                    msg: e.0,
                })
            })?;
            outs.push(Tensor::new(s.shape.clone(), data).map_err(|e| {
                ExecError::Fallback(RunError {
                    node: String::new(),
                    op: format!("output {name}"),
                    msg: e.0,
                })
            })?);
        }
        Ok(outs)
    }
}
