//! Kernel emission: the [`Emitter`] a lowering's emit closure receives (one per node, with the planned
//! locations of the node's operands) and the [`Kb`] kernel builder — a thin layer over
//! `cranelift_frontend::FunctionBuilder` with loops, typed loads/stores and operand addresses.
//!
//! This module knows nothing of the lowering table or the schedule (it depends only on
//! [`crate::node`] and [`crate::weights`]), so the lowerings can build on it without an import circle.
//! A [`ModuleCx::planning`] context has no module: emit closures run against it while the schedule is
//! built, and [`Emitter::kernel`] then only records each kernel's thread split without generating it.
//!
//! Every kernel has the signature `fn(ctx: *const carve_ctx, begin: u64, end: u64)` (see
//! `carve_runtime::abi`): it computes its tiles `begin..end`.
//!
//! Kernels never embed operand addresses: every address a kernel uses (inputs, outputs, packed weights)
//! is an entry of the call's **operand table** (`ctx->ops[i]`, filled by the entry function before the
//! call), so two nodes of the same geometry get identical Cranelift IR. [`ModuleCx`] keys kernels by their
//! IR and compiles each distinct kernel once (ResNet-style models repeat conv geometries often).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::cursor::{Cursor, FuncCursor};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    AbiParam, Block, BlockArg, Function, InstBuilder, MemFlagsData, Signature, UserFuncName, Value,
    types,
};
use cranelift_codegen::isa::{CallConv, TargetIsa};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module, ModuleReloc};
use rayon::prelude::*;

use carve_runtime::abi::ctx_offsets;
use carve_runtime::exec::Loc;

use crate::CodegenError;
use crate::node::NodeInfo;
use crate::target::Target;
use crate::weights::WeightRef;

/// One generated kernel call: the function, its tile count and its operand table.
#[derive(Debug, Clone)]
pub struct KernelCall {
    /// The function (possibly shared with other calls of the same geometry); `None` when planning
    /// (see [`ModuleCx::planning`]).
    pub func: Option<FuncId>,
    /// Number of tiles (the entry calls it over `0..n_tiles`, in parallel when > 1).
    pub n_tiles: u64,
    /// The operand table: the entry stores the address of `ops[i]` in `ctx->ops[i]` before the call.
    pub ops: Vec<Loc>,
}

/// Byte offset of `ctx->ops[i]`: the operand table follows the three base pointers of
/// `carve_runtime::abi::KernelCtx` in the entry function's context slot.
pub fn op_offset(i: usize) -> i32 {
    ctx_offsets::SIZE as i32 + 8 * i as i32
}

/// The kernel signature.
pub fn kernel_signature(module: &dyn Module) -> Signature {
    let ptr = module.target_config().pointer_type();
    let mut sig = Signature::new(module.target_config().default_call_conv);
    sig.params.push(AbiParam::new(ptr));
    sig.params.push(AbiParam::new(types::I64));
    sig.params.push(AbiParam::new(types::I64));
    sig
}

/// A function built but not yet compiled to machine code.
struct Pending {
    id: FuncId,
    name: String,
    func: Function,
}

/// Machine code of one compiled function, ready for `Module::define_function_bytes`.
struct Machine {
    alignment: u64,
    bytes: Vec<u8>,
    relocs: Vec<ModuleReloc>,
}

/// Functions kernels call: machine-code functions defined from bytes (the x86 tiles of
/// [`crate::x86`]), deduplicated by a key that describes everything their code depends on, and
/// Cranelift helper functions (see [`Kb::call_helper`]), deduplicated by their IR. They are
/// declared when a kernel first calls them and defined, in declaration order, by [`ModuleCx::finish`].
#[derive(Default)]
pub struct RawFns {
    /// Declared functions by key (looked up only; never iterated).
    ids: HashMap<String, FuncId>,
    /// Definitions in declaration order.
    defs: Vec<RawDef>,
    /// Declared helpers by IR hash: indices into `helpers` (looked up only; never iterated).
    helper_ids: HashMap<u64, Vec<usize>>,
    /// Helpers to compile, in declaration order.
    helpers: Vec<Pending>,
}

/// One raw function: its id, symbol name and machine code.
struct RawDef {
    id: FuncId,
    name: String,
    bytes: Vec<u8>,
}

/// Alignment of raw functions (a cache line: the hot loops start near the entry).
const RAW_ALIGN: u64 = 64;

/// Shared state for emitting kernels into one module.
///
/// [`ModuleCx::define`] only builds Cranelift IR; [`ModuleCx::finish`] compiles every function on the
/// rayon pool (Cranelift compiles functions independently) and then defines them in declaration order,
/// so the module's contents — and AOT objects — do not depend on the thread count.
pub struct ModuleCx<'m> {
    /// The module (JIT or object); `None` while planning.
    module: Option<&'m mut dyn Module>,
    /// The target.
    pub target: &'m Target,
    fctx: FunctionBuilderContext,
    next: u32,
    pending: Vec<Pending>,
    /// Kernels defined so far by IR hash (see [`ir_hash`]): indices into `pending`.
    shared: HashMap<u64, Vec<usize>>,
    /// Distinct kernels defined so far.
    kernels: usize,
    /// Raw machine-code functions the kernels call.
    raw: RawFns,
}

impl<'m> ModuleCx<'m> {
    /// Emission into `module` for `target`.
    pub fn new(module: &'m mut dyn Module, target: &'m Target) -> ModuleCx<'m> {
        ModuleCx {
            module: Some(module),
            target,
            fctx: FunctionBuilderContext::new(),
            next: 0,
            pending: Vec::new(),
            shared: HashMap::new(),
            kernels: 0,
            raw: RawFns::default(),
        }
    }

    /// A context without a module, for running emit closures while the schedule is planned: kernels
    /// are recorded with their tile counts but not generated.
    pub fn planning(target: &'m Target) -> ModuleCx<'m> {
        ModuleCx {
            module: None,
            target,
            fctx: FunctionBuilderContext::new(),
            next: 0,
            pending: Vec::new(),
            shared: HashMap::new(),
            kernels: 0,
            raw: RawFns::default(),
        }
    }

    /// True for a context made by [`ModuleCx::planning`].
    pub fn is_planning(&self) -> bool {
        self.module.is_none()
    }

    /// The module.
    pub fn module(&mut self) -> Result<&mut dyn Module, CodegenError> {
        match self.module.as_deref_mut() {
            Some(m) => Ok(m),
            None => Err(CodegenError::Graph {
                msg: "a planning context has no module to emit into".into(),
            }),
        }
    }

    /// Distinct kernel functions built so far (each is compiled once).
    pub fn kernel_functions(&self) -> usize {
        self.kernels
    }

    /// Compiles every function built so far (in parallel) and defines them in the module. Must be
    /// called before the module is finalized.
    pub fn finish(self) -> Result<(), CodegenError> {
        let Some(module) = self.module else {
            return Ok(());
        };
        let isa = module.isa();
        let mut pending = self.pending;
        pending.extend(self.raw.helpers);
        let timed: Vec<(Result<Machine, CodegenError>, std::time::Duration)> = pending
            .par_iter()
            .map(|p| {
                let t = std::time::Instant::now();
                (compile_one(isa, p), t.elapsed())
            })
            .collect();
        if std::env::var_os("CARVE_TIMINGS").is_some() {
            let mut v: Vec<(std::time::Duration, &str, usize)> = timed
                .iter()
                .zip(&pending)
                .map(|((m, d), p)| (*d, p.name.as_str(), m.as_ref().map_or(0, |m| m.bytes.len())))
                .collect();
            let total: std::time::Duration = v.iter().map(|x| x.0).sum();
            v.sort_by_key(|x| std::cmp::Reverse(x.0));
            eprintln!(
                "codegen: {} functions, {total:?} of Cranelift time; slowest:",
                v.len()
            );
            for (d, n, b) in v.iter().take(8) {
                eprintln!("  {d:>10.2?} {b:>8} bytes  {n}");
            }
        }
        let compiled: Vec<Result<Machine, CodegenError>> = timed.into_iter().map(|x| x.0).collect();
        for (p, m) in pending.iter().zip(compiled) {
            let m = m?;
            module
                .define_function_bytes(p.id, m.alignment, &m.bytes, &m.relocs)
                .map_err(|e| CodegenError::Cranelift {
                    msg: format!("defining {}: {e}", p.name),
                })?;
        }
        for r in &self.raw.defs {
            module
                .define_function_bytes(r.id, RAW_ALIGN, &r.bytes, &[])
                .map_err(|e| CodegenError::Cranelift {
                    msg: format!("defining {}: {e}", r.name),
                })?;
        }
        Ok(())
    }

    /// Declares and defines a function named `name` with signature `sig`; `body` fills it.
    pub fn define(
        &mut self,
        name: &str,
        linkage: Linkage,
        sig: Signature,
        body: impl FnOnce(&mut FunctionBuilder, &mut dyn Module) -> Result<(), CodegenError>,
    ) -> Result<FuncId, CodegenError> {
        let func = self.build(sig, |b, m, _| body(b, m))?;
        self.declare(name, linkage, func)
    }

    /// Like [`ModuleCx::define`] for a local function, but when a function with identical IR was
    /// defined before, returns that one instead of compiling a copy.
    /// The body may also call raw machine-code functions through the [`RawFns`] it gets.
    pub fn define_shared(
        &mut self,
        name: &str,
        sig: Signature,
        body: impl FnOnce(
            &mut FunctionBuilder,
            &mut dyn Module,
            &mut RawFns,
        ) -> Result<(), CodegenError>,
    ) -> Result<FuncId, CodegenError> {
        let func = self.build(sig, body)?;
        let key = ir_hash(&func);
        let same = self.shared.get(&key).and_then(|ix| {
            ix.iter()
                .map(|&i| &self.pending[i])
                .find(|p| same_ir(&p.func, &func))
        });
        if let Some(p) = same {
            return Ok(p.id);
        }
        let id = self.declare(name, Linkage::Local, func)?;
        self.shared
            .entry(key)
            .or_default()
            .push(self.pending.len() - 1);
        self.kernels += 1;
        Ok(id)
    }

    /// Builds a function's IR under a placeholder name (see [`ModuleCx::declare`]).
    fn build(
        &mut self,
        sig: Signature,
        body: impl FnOnce(
            &mut FunctionBuilder,
            &mut dyn Module,
            &mut RawFns,
        ) -> Result<(), CodegenError>,
    ) -> Result<Function, CodegenError> {
        let raw = &mut self.raw;
        let Some(module) = self.module.as_deref_mut() else {
            return Err(CodegenError::Graph {
                msg: "a planning context cannot build functions".into(),
            });
        };
        let cfg = module.target_config();
        let mut func = Function::with_name_signature(UserFuncName::user(0, u32::MAX), sig);
        {
            let mut b = FunctionBuilder::new(&mut func, &mut self.fctx);
            body(&mut b, module, raw)?;
            b.seal_all_blocks();
            b.finalize(cfg);
        }
        Ok(func)
    }

    /// Declares `func` in the module as `name` and queues it for compilation.
    fn declare(
        &mut self,
        name: &str,
        linkage: Linkage,
        mut func: Function,
    ) -> Result<FuncId, CodegenError> {
        let id = self
            .module()?
            .declare_function(name, linkage, &func.signature)
            .map_err(|e| CodegenError::Cranelift {
                msg: format!("declaring {name}: {e}"),
            })?;
        func.name = UserFuncName::user(0, id.as_u32());
        self.pending.push(Pending {
            id,
            name: name.to_string(),
            func,
        });
        Ok(id)
    }

    /// A fresh deterministic function name with `stem`.
    pub fn fresh_name(&mut self, stem: &str) -> String {
        self.next += 1;
        format!("carve_k{}_{}", self.next, stem)
    }
}

/// A hash of everything a function compiles from (its IR and the external functions it names,
/// not its own name), far cheaper than its IR text: kernels are deduplicated by it (then compared
/// with [`same_ir`]). `DefaultHasher::new()` has fixed keys; the hash only finds candidates, it
/// orders nothing.
fn ir_hash(f: &Function) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    f.stencil.hash(&mut h);
    f.params.user_named_funcs().hash(&mut h);
    h.finish()
}

/// Whether two functions compile to the same code (names aside): equal IR naming the same external
/// functions.
fn same_ir(a: &Function, b: &Function) -> bool {
    a.stencil == b.stencil && a.params.user_named_funcs() == b.params.user_named_funcs()
}

/// Compiles one function to machine code with its relocations (what `Module::define_function` does,
/// minus the definition, which needs `&mut Module`).
fn compile_one(isa: &dyn TargetIsa, p: &Pending) -> Result<Machine, CodegenError> {
    let mut ctx = Context::for_function(p.func.clone());
    let err = |e: String| CodegenError::Cranelift {
        msg: format!("compiling {}: {e}", p.name),
    };
    let code = ctx
        .compile(isa, &mut ControlPlane::default())
        .map_err(|e| err(format!("{:?}", e.inner)))?;
    let alignment = u64::from(code.buffer.alignment);
    let bytes = code.buffer.data().to_vec();
    let relocs = code
        .buffer
        .relocs()
        .iter()
        .map(|r| ModuleReloc::from_mach_reloc(r, &p.func, p.id))
        .collect();
    Ok(Machine {
        alignment,
        bytes,
        relocs,
    })
}

/// What a lowering's emit closure gets: the node, its operand locations and a way to add kernels.
pub struct Emitter<'e, 'm> {
    /// The module being emitted into.
    pub mcx: &'e mut ModuleCx<'m>,
    /// The node.
    pub info: NodeInfo<'e>,
    /// Locations of the node's inputs.
    pub in_locs: Vec<Option<Loc>>,
    /// Locations of the node's outputs.
    pub out_locs: Vec<Loc>,
    /// Kernels generated so far for this node, in call order.
    pub calls: Vec<KernelCall>,
}

impl Emitter<'_, '_> {
    /// The node being lowered.
    pub fn info(&self) -> &NodeInfo<'_> {
        &self.info
    }

    /// The target.
    pub fn target(&self) -> &Target {
        self.mcx.target
    }

    /// Generates one kernel over `n_tiles` tiles; `body` emits the code for tiles `kb.begin..kb.end`.
    /// While planning, only records the kernel and its tile count.
    pub fn kernel(
        &mut self,
        n_tiles: u64,
        body: impl FnOnce(&mut Kb) -> Result<(), CodegenError>,
    ) -> Result<(), CodegenError> {
        if self.mcx.is_planning() {
            self.calls.push(KernelCall {
                func: None,
                n_tiles,
                ops: Vec::new(),
            });
            return Ok(());
        }
        let stem: String = self
            .info
            .node
            .op
            .name()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name = self.mcx.fresh_name(&stem);
        let (func, ops) = define_kernel(self.mcx, &name, &self.in_locs, &self.out_locs, body)?;
        self.calls.push(KernelCall {
            func: Some(func),
            n_tiles,
            ops,
        });
        Ok(())
    }
}

/// Defines a kernel function `name` whose operands live at `in_locs`/`out_locs`; `body` emits code for
/// tiles `kb.begin..kb.end`. Returns the function (shared with an earlier kernel of identical IR) and the
/// operand table the caller must fill (see [`KernelCall::ops`]).
pub fn define_kernel(
    mcx: &mut ModuleCx,
    name: &str,
    in_locs: &[Option<Loc>],
    out_locs: &[Loc],
    body: impl FnOnce(&mut Kb) -> Result<(), CodegenError>,
) -> Result<(FuncId, Vec<Loc>), CodegenError> {
    let sig = kernel_signature(mcx.module()?);
    let target = mcx.target.clone();
    let mut ops = Vec::new();
    let func = mcx.define_shared(name, sig, |b, module, raw| {
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        // `loc_addr` inserts loads at the top of this block, which must be in the layout for that.
        b.ensure_inserted_block();
        let p = b.block_params(entry).to_vec();
        let mut kb = Kb {
            b,
            target: &target,
            begin: p[1],
            end: p[2],
            ctx: p[0],
            entry,
            ops: Vec::new(),
            in_locs,
            out_locs,
            module,
            raw,
        };
        body(&mut kb)?;
        kb.b.ins().return_(&[]);
        ops = std::mem::take(&mut kb.ops)
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        Ok(())
    })?;
    Ok((func, ops))
}

/// The kernel builder: code for one kernel function.
pub struct Kb<'a, 'f> {
    /// The underlying Cranelift function builder.
    pub b: &'a mut FunctionBuilder<'f>,
    /// The target.
    pub target: &'a Target,
    /// First tile to compute (i64).
    pub begin: Value,
    /// One past the last tile (i64).
    pub end: Value,
    ctx: Value,
    entry: Block,
    /// The operand table so far: each location and its address, loaded once at the top of the kernel.
    ops: Vec<(Loc, Value)>,
    in_locs: &'a [Option<Loc>],
    out_locs: &'a [Loc],
    module: &'a mut dyn Module,
    raw: &'a mut RawFns,
}

/// Flags for loads/stores of tensor data: never traps, alignment not assumed.
pub fn data_flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

impl Kb<'_, '_> {
    /// Address of a planned location: an entry of the operand table, loaded at the top of the kernel
    /// (so it dominates every use) the first time the location is asked for.
    pub fn loc_addr(&mut self, loc: Loc) -> Value {
        if let Some(&(_, v)) = self.ops.iter().find(|(l, _)| *l == loc) {
            return v;
        }
        let off = op_offset(self.ops.len());
        let flags = MemFlagsData::trusted().with_readonly().with_can_move();
        let ctx = self.ctx;
        let mut pos = FuncCursor::new(self.b.func).at_first_insertion_point(self.entry);
        let v = pos.ins().load(types::I64, flags, ctx, off);
        self.ops.push((loc, v));
        v
    }

    /// Address of input `i`'s first element.
    pub fn input(&mut self, i: usize) -> Result<Value, CodegenError> {
        let loc = self
            .in_locs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| CodegenError::Graph {
                msg: format!("kernel reads input {i}, which has no location"),
            })?;
        Ok(self.loc_addr(loc))
    }

    /// Address of output `k`'s first element.
    pub fn output(&mut self, k: usize) -> Result<Value, CodegenError> {
        let loc = self
            .out_locs
            .get(k)
            .copied()
            .ok_or_else(|| CodegenError::Graph {
                msg: format!("kernel writes output {k}, which has no location"),
            })?;
        Ok(self.loc_addr(loc))
    }

    /// Address of packed weights.
    pub fn weight(&mut self, w: WeightRef) -> Value {
        self.loc_addr(Loc::Weights(w.offset))
    }

    /// Calls the raw machine-code function identified by `key` (System V calling convention, `args`
    /// as i64 parameters, no results), declaring it on first use with the code `assemble` returns.
    /// Such functions must be leaf, trap-free and use caller-saved registers only (see [`crate::x86`]).
    pub fn call_raw(
        &mut self,
        key: &str,
        stem: &str,
        args: &[Value],
        assemble: impl FnOnce() -> Result<Vec<u8>, CodegenError>,
    ) -> Result<(), CodegenError> {
        let id = match self.raw.ids.get(key) {
            Some(&id) => id,
            None => {
                let mut sig = Signature::new(CallConv::SystemV);
                for _ in args {
                    sig.params.push(AbiParam::new(types::I64));
                }
                let name = format!("carve_tile{}_{stem}", self.raw.defs.len() + 1);
                let id = self
                    .module
                    .declare_function(&name, Linkage::Local, &sig)
                    .map_err(|e| CodegenError::Cranelift {
                        msg: format!("declaring {name}: {e}"),
                    })?;
                let bytes = assemble()?;
                self.raw.defs.push(RawDef { id, name, bytes });
                self.raw.ids.insert(key.to_string(), id);
                id
            }
        };
        let fref = self.module.declare_func_in_func(id, self.b.func);
        self.b.ins().call(fref, args);
        Ok(())
    }

    /// Calls a Cranelift helper function whose body `body` emits (it gets its own [`Kb`] and its
    /// parameters: one i64 per value of `args`, in order), compiling each distinct helper once: two
    /// calls whose bodies build identical IR call one function, whichever kernels they are in. A
    /// kernel that repeats a large piece of code (a conv's im2col packing per k block) calls it
    /// instead of inlining copies. Helper bodies see no operands (their [`Kb::input`],
    /// [`Kb::output`] and [`Kb::weight`] are errors): everything they address comes in `args`.
    pub fn call_helper(
        &mut self,
        stem: &str,
        args: &[Value],
        body: impl FnOnce(&mut Kb, &[Value]) -> Result<(), CodegenError>,
    ) -> Result<(), CodegenError> {
        let cfg = self.module.target_config();
        let mut sig = Signature::new(cfg.default_call_conv);
        for _ in args {
            sig.params.push(AbiParam::new(types::I64));
        }
        let mut func = Function::with_name_signature(UserFuncName::user(0, u32::MAX), sig);
        {
            let mut fctx = FunctionBuilderContext::new();
            let mut b = FunctionBuilder::new(&mut func, &mut fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            b.ensure_inserted_block();
            let params = b.block_params(entry).to_vec();
            let zero = b.ins().iconst(types::I64, 0);
            let mut kb = Kb {
                b: &mut b,
                target: self.target,
                begin: zero,
                end: zero,
                ctx: zero,
                entry,
                ops: Vec::new(),
                in_locs: &[],
                out_locs: &[],
                module: &mut *self.module,
                raw: &mut *self.raw,
            };
            body(&mut kb, &params)?;
            if !kb.ops.is_empty() {
                return Err(CodegenError::Graph {
                    msg: format!("helper {stem} addresses kernel operands"),
                });
            }
            kb.b.ins().return_(&[]);
            b.seal_all_blocks();
            b.finalize(cfg);
        }
        let key = ir_hash(&func);
        let same = self.raw.helper_ids.get(&key).and_then(|ix| {
            ix.iter()
                .map(|&i| &self.raw.helpers[i])
                .find(|p| same_ir(&p.func, &func))
        });
        let id = match same {
            Some(p) => p.id,
            None => {
                let name = format!("carve_h{}_{stem}", self.raw.helpers.len() + 1);
                let id = self
                    .module
                    .declare_function(&name, Linkage::Local, &func.signature)
                    .map_err(|e| CodegenError::Cranelift {
                        msg: format!("declaring {name}: {e}"),
                    })?;
                func.name = UserFuncName::user(0, id.as_u32());
                self.raw
                    .helper_ids
                    .entry(key)
                    .or_default()
                    .push(self.raw.helpers.len());
                self.raw.helpers.push(Pending { id, name, func });
                id
            }
        };
        let fref = self.module.declare_func_in_func(id, self.b.func);
        self.b.ins().call(fref, args);
        Ok(())
    }

    /// An i64 constant.
    pub fn iconst(&mut self, v: i64) -> Value {
        self.b.ins().iconst(types::I64, v)
    }

    /// An f32 constant.
    pub fn f32const(&mut self, v: f32) -> Value {
        self.b.ins().f32const(v)
    }

    /// An f32x4 vector with every lane `v`.
    pub fn f32x4const(&mut self, v: f32) -> Value {
        let s = self.b.ins().f32const(v);
        self.b.ins().splat(types::F32X4, s)
    }

    /// `base + index * scale` (all i64).
    pub fn offset(&mut self, base: Value, index: Value, scale: i64) -> Value {
        let o = if scale == 1 {
            index
        } else {
            self.b.ins().imul_imm_s(index, scale)
        };
        self.b.ins().iadd(base, o)
    }

    /// Loads a `ty` at `addr + off`.
    pub fn load(&mut self, ty: types::Type, addr: Value, off: i32) -> Value {
        self.b.ins().load(ty, data_flags(), addr, off)
    }

    /// Loads a `ty` from read-only memory (weights) at `addr + off`.
    pub fn load_ro(&mut self, ty: types::Type, addr: Value, off: i32) -> Value {
        self.b
            .ins()
            .load(ty, data_flags().with_readonly(), addr, off)
    }

    /// Stores `v` at `addr + off`.
    pub fn store(&mut self, v: Value, addr: Value, off: i32) {
        self.b.ins().store(data_flags(), v, addr, off);
    }

    /// Emits `for i in (lo..hi).step_by(step) { body(i) }` (signed i64 bounds, `step` > 0).
    pub fn for_range(
        &mut self,
        lo: Value,
        hi: Value,
        step: i64,
        mut body: impl FnMut(&mut Self, Value) -> Result<(), CodegenError>,
    ) -> Result<(), CodegenError> {
        let header = self.b.create_block();
        let body_blk = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(header, types::I64);
        self.b.ins().jump(header, &[BlockArg::Value(lo)]);
        self.b.switch_to_block(header);
        let i = self.b.block_params(header)[0];
        let c = self.b.ins().icmp(IntCC::SignedLessThan, i, hi);
        self.b.ins().brif(c, body_blk, &[], exit, &[]);
        self.b.switch_to_block(body_blk);
        body(self, i)?;
        let next = self.b.ins().iadd_imm_s(i, step);
        self.b.ins().jump(header, &[BlockArg::Value(next)]);
        self.b.switch_to_block(exit);
        Ok(())
    }

    /// `for k in 0..n { vals = body(k, vals) }` with `vals` (starting as `init`) carried as block
    /// parameters — accumulators that stay in registers across the loop; returns their final values.
    pub fn for_carried(
        &mut self,
        n: i64,
        init: &[Value],
        mut body: impl FnMut(&mut Self, Value, &[Value]) -> Result<Vec<Value>, CodegenError>,
    ) -> Result<Vec<Value>, CodegenError> {
        let header = self.b.create_block();
        let body_blk = self.b.create_block();
        let exit = self.b.create_block();
        self.b.append_block_param(header, types::I64);
        for &v in init {
            let ty = self.b.func.dfg.value_type(v);
            self.b.append_block_param(header, ty);
            self.b.append_block_param(exit, ty);
        }
        let zero = self.iconst(0);
        let mut args = vec![BlockArg::Value(zero)];
        args.extend(init.iter().map(|&v| BlockArg::Value(v)));
        self.b.ins().jump(header, &args);
        self.b.switch_to_block(header);
        let params = self.b.block_params(header).to_vec();
        let (k, cur) = (params[0], &params[1..]);
        let more = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, k, n);
        let exit_args: Vec<BlockArg> = cur.iter().map(|&v| BlockArg::Value(v)).collect();
        self.b.ins().brif(more, body_blk, &[], exit, &exit_args);
        self.b.switch_to_block(body_blk);
        let next_vals = body(self, k, cur)?;
        let mut next = vec![BlockArg::Value(self.b.ins().iadd_imm_s(k, 1))];
        next.extend(next_vals.into_iter().map(BlockArg::Value));
        self.b.ins().jump(header, &next);
        self.b.switch_to_block(exit);
        Ok(self.b.block_params(exit).to_vec())
    }

    /// `for_range` with constant bounds.
    pub fn for_n(
        &mut self,
        lo: i64,
        hi: i64,
        step: i64,
        body: impl FnMut(&mut Self, Value) -> Result<(), CodegenError>,
    ) -> Result<(), CodegenError> {
        let lo = self.iconst(lo);
        let hi = self.iconst(hi);
        self.for_range(lo, hi, step, body)
    }

    /// Loop over this kernel's tiles: `for t in begin..end { body(t) }`.
    pub fn for_tiles(
        &mut self,
        body: impl FnMut(&mut Self, Value) -> Result<(), CodegenError>,
    ) -> Result<(), CodegenError> {
        let (lo, hi) = (self.begin, self.end);
        self.for_range(lo, hi, 1, body)
    }

    /// Copies `bytes` bytes from `src` to `dst` (non-overlapping), 16 bytes at a time where possible.
    pub fn copy_bytes(&mut self, dst: Value, src: Value, bytes: i64) -> Result<(), CodegenError> {
        // 16-byte vectors only where the target lowers them (scalar riscv64 does not).
        let (wide, w) = if self.target.f32_lanes() >= 4 {
            (types::I8X16, 16)
        } else {
            (types::I64, 8)
        };
        let vec = bytes / w * w;
        if vec > 0 {
            self.for_n(0, vec, w, |kb, i| {
                let s = kb.b.ins().iadd(src, i);
                let d = kb.b.ins().iadd(dst, i);
                let v = kb.load(wide, s, 0);
                kb.store(v, d, 0);
                Ok(())
            })?;
        }
        let mut o = vec;
        while o < bytes {
            let (ty, n) = if bytes - o >= 8 {
                (types::I64, 8)
            } else if bytes - o >= 4 {
                (types::I32, 4)
            } else {
                (types::I8, 1)
            };
            let v = self.load(ty, src, o as i32);
            self.store(v, dst, o as i32);
            o += n;
        }
        Ok(())
    }
}

/// Calling convention of generated functions.
pub fn call_conv(module: &dyn Module) -> CallConv {
    module.target_config().default_call_conv
}
