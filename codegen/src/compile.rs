//! Whole-model compilation into a Cranelift module: select a lowering per node, plan memory, emit the
//! kernels and the entry function that calls them in schedule order. Shared by the JIT and AOT paths
//! (the module is a `cranelift_jit::JITModule` or a `cranelift_object::ObjectModule`).

use std::fmt;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    AbiParam, BlockArg, InstBuilder, MemFlagsData, Signature, StackSlotData, StackSlotKind, types,
};
use cranelift_module::{FuncId, Linkage, Module};

use carve_ir::{Graph, Op};
use carve_runtime::abi::{self, ctx_offsets, host_offsets};
use carve_runtime::exec::{FallbackStep, Loc, Slot};

use crate::CodegenError;
use crate::emit::{Emitter, KernelCall, ModuleCx, define_kernel, op_offset};
use crate::lower::{self, Lowering, NodeInfo, Weights};
use crate::plan::{self, Plan, StepMem};
use crate::prepare::concrete_shape;
use crate::target::Target;

/// One node that runs through the interpreter, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct FallbackNode {
    /// Node name.
    pub node: String,
    /// Op name.
    pub op: String,
    /// Why there is no native kernel.
    pub reason: String,
}

/// What compilation did: counts, sizes and fallbacks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// The target.
    pub target: String,
    /// Nodes in the prepared graph (after constant folding), constants excluded.
    pub nodes: usize,
    /// Nodes folded to constants at compile time.
    pub folded: usize,
    /// Nodes lowered to native kernels.
    pub native: usize,
    /// Nodes that are views of their input (no code).
    pub aliases: usize,
    /// Elementwise nodes computed inside another node's kernel (fused chains; counted in `native`).
    pub fused: usize,
    /// Kernel calls generated.
    pub kernels: usize,
    /// Distinct kernel functions compiled (calls of the same geometry share one; see `emit`).
    pub functions: usize,
    /// Nodes running through the interpreter.
    pub fallbacks: Vec<FallbackNode>,
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// Arena bytes without buffer sharing (what liveness planning saved).
    pub unshared_bytes: usize,
    /// Weights blob size in bytes.
    pub weights_bytes: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "target: {}", self.target)?;
        writeln!(
            f,
            "nodes: {} ({} native of which {} fused, {} views, {} fallback), {} folded at compile time, {} kernels ({} distinct functions)",
            self.nodes,
            self.native,
            self.fused,
            self.aliases,
            self.fallbacks.len(),
            self.folded,
            self.kernels,
            self.functions
        )?;
        writeln!(
            f,
            "arena: {} bytes (unshared {}), weights: {} bytes",
            self.arena_bytes, self.unshared_bytes, self.weights_bytes
        )?;
        for fb in &self.fallbacks {
            writeln!(f, "fallback: node '{}' ({}): {}", fb.node, fb.op, fb.reason)?;
        }
        Ok(())
    }
}

/// What the entry function does per step.
enum Step {
    Kernels(Vec<KernelCall>),
    Fallback(u32),
}

/// The result of compiling into a module.
pub struct Compiled {
    /// The entry function.
    pub entry: FuncId,
    /// The weights blob the code was compiled against (64-byte aligned).
    pub weights: carve_runtime::exec::AlignedBytes,
    /// The plan.
    pub plan: Plan,
    /// Input slots (name, slot) in order.
    pub inputs: Vec<(String, Slot)>,
    /// Output slots in order.
    pub outputs: Vec<(String, Slot)>,
    /// Fallback steps (indexed by the number the entry passes to the host).
    pub fallbacks: Vec<FallbackStep>,
    /// Kernel calls with more than one tile (split over threads by the host's `parallel_for`).
    pub parallel_kernels: usize,
    /// Counts and sizes.
    pub report: Report,
}

fn slot(g: &Graph, plan: &Plan, v: carve_ir::ValueId) -> Result<Slot, CodegenError> {
    let t = g
        .ty(v)
        .as_tensor()
        .ok_or_else(|| CodegenError::Unsupported {
            msg: format!("value '{}' is not a tensor", g.value(v).name),
        })?;
    let shape = concrete_shape(g, v).ok_or_else(|| CodegenError::Unsupported {
        msg: format!("value '{}' has no static shape", g.value(v).name),
    })?;
    let loc = plan.loc[v.index()].ok_or_else(|| CodegenError::Graph {
        msg: format!("value '{}' has no planned location", g.value(v).name),
    })?;
    Ok(Slot {
        loc,
        dtype: t.dtype,
        shape,
    })
}

/// Options of [`compile_into`].
#[derive(Debug, Clone)]
pub struct ModuleOptions {
    /// Symbol name of the entry function (exported).
    pub entry_name: String,
    /// Whether nodes without native kernel may run through the host's fallback (JIT only). When
    /// false, such a node is an error naming it.
    pub allow_fallback: bool,
    /// Nodes folded at compile time before (for the report).
    pub folded: usize,
}

/// Compiles a prepared graph (see [`crate::prepare::prepare`]) into `module`.
pub fn compile_into(
    module: &mut dyn Module,
    g: &Graph,
    target: &Target,
    opts: &ModuleOptions,
) -> Result<Compiled, CodegenError> {
    let allow_fallback = opts.allow_fallback;
    let folded = opts.folded;
    let mut weights = Weights::for_graph(g);
    let mut report = Report {
        target: target.to_string(),
        folded,
        ..Report::default()
    };
    // Fusion of elementwise chains (see `lower::fuse`): absorbed nodes get no step and no memory, a
    // group's root is lowered with the whole chain's expression over the group's leaves.
    let fusion = lower::fuse::fuse(g, target);
    // Select.
    let mut mem = Vec::with_capacity(g.nodes.len());
    let mut lowerings: Vec<Option<Lowering>> = Vec::with_capacity(g.nodes.len());
    for (i, n) in g.nodes.iter().enumerate() {
        if matches!(n.op, Op::Constant(_)) {
            mem.push(StepMem::Const);
            lowerings.push(None);
            continue;
        }
        report.nodes += 1;
        let empty = n
            .outputs
            .iter()
            .all(|&o| concrete_shape(g, o).is_some_and(|s| s.iter().product::<usize>() == 0));
        if empty {
            mem.push(StepMem::Skip);
            lowerings.push(None);
            report.native += 1;
            continue;
        }
        if fusion.is_absorbed(i) {
            report.native += 1;
            report.fused += 1;
            mem.push(StepMem::Skip);
            lowerings.push(None);
            continue;
        }
        let info = NodeInfo {
            graph: g,
            node: n,
            target,
        };
        let l = match fusion.group_at(i) {
            Some(gr) => lower::elementwise::lower_group(&info, &gr.leaves, &gr.expr)?,
            None => lower::select(&info, &mut weights)?,
        };
        match &l {
            Lowering::Native { in_place, .. } => {
                report.native += 1;
                mem.push(StepMem::Writes {
                    in_place: *in_place,
                });
            }
            Lowering::Alias => {
                report.aliases += 1;
                mem.push(StepMem::Alias);
            }
            Lowering::Fallback(reason) => {
                if !allow_fallback {
                    return Err(CodegenError::Node {
                        node: n.name.clone(),
                        op: n.op.name().to_string(),
                        msg: format!(
                            "no native kernel ({reason}); ahead-of-time code cannot fall back to the interpreter"
                        ),
                    });
                }
                report.fallbacks.push(super::compile::FallbackNode {
                    node: n.name.clone(),
                    op: n.op.name().to_string(),
                    reason: reason.clone(),
                });
                mem.push(StepMem::Writes { in_place: None });
            }
        }
        lowerings.push(Some(l));
    }
    // Plan (fused roots read their groups' leaves; absorbed nodes read nothing).
    let plan = if fusion.groups.is_empty() {
        plan::plan(g, &mem, &mut weights)?
    } else {
        plan::plan(&fusion.plan_graph(g), &mem, &mut weights)?
    };
    report.arena_bytes = plan.arena_bytes;
    report.unshared_bytes = plan.unshared_bytes;
    // Emit.
    let mut mcx = ModuleCx::new(module, target);
    let mut steps = Vec::new();
    let mut fallbacks = Vec::new();
    for (i, (n, l)) in g.nodes.iter().zip(lowerings).enumerate() {
        let Some(l) = l else { continue };
        let in_locs: Vec<Option<Loc>> = match fusion.group_at(i) {
            Some(gr) => gr.leaves.iter().map(|v| plan.loc[v.index()]).collect(),
            None => n
                .inputs
                .iter()
                .map(|v| v.and_then(|v| plan.loc[v.index()]))
                .collect(),
        };
        let out_locs: Vec<Loc> = n
            .outputs
            .iter()
            .map(|o| plan.loc[o.index()].unwrap_or(Loc::Arena(0)))
            .collect();
        match l {
            Lowering::Native { emit, .. } => {
                let mut e = Emitter {
                    mcx: &mut mcx,
                    info: NodeInfo {
                        graph: g,
                        node: n,
                        target,
                    },
                    in_locs,
                    out_locs,
                    calls: Vec::new(),
                };
                emit(&mut e)?;
                report.kernels += e.calls.len();
                steps.push(Step::Kernels(e.calls));
            }
            Lowering::Alias => {}
            Lowering::Fallback(_) => {
                let mut inputs = Vec::with_capacity(n.inputs.len());
                for v in &n.inputs {
                    inputs.push(match v {
                        Some(v) => Some(slot(g, &plan, *v)?),
                        None => None,
                    });
                }
                let mut outputs = Vec::with_capacity(n.outputs.len());
                for &o in &n.outputs {
                    outputs.push(slot(g, &plan, o)?);
                }
                let mut captures = Vec::new();
                for sg in n.op.subgraphs() {
                    for c in &sg.captures {
                        if !captures.iter().any(|(v, _)| *v == c.outer) {
                            captures.push((c.outer, slot(g, &plan, c.outer)?));
                        }
                    }
                }
                steps.push(Step::Fallback(fallbacks.len() as u32));
                fallbacks.push(FallbackStep {
                    node: i,
                    inputs,
                    outputs,
                    captures,
                });
            }
        }
    }
    // Copies of outputs that could not be computed in place.
    let mut copy_calls = Vec::new();
    for &(v, io) in &plan.copies {
        let src = plan.loc[v.index()].ok_or_else(|| CodegenError::Graph {
            msg: format!("output '{}' has no location", g.value(v).name),
        })?;
        let bytes = slot(g, &plan, v)?.bytes() as i64;
        let name = mcx.fresh_name("copy_output");
        let (func, ops) = define_kernel(&mut mcx, &name, &[Some(src)], &[Loc::Io(io, 0)], |kb| {
            let s = kb.input(0)?;
            let d = kb.output(0)?;
            kb.copy_bytes(d, s, bytes)
        })?;
        copy_calls.push(KernelCall {
            func,
            n_tiles: 1,
            ops,
        });
        report.kernels += 1;
    }
    steps.push(Step::Kernels(copy_calls));
    let parallel_kernels = steps
        .iter()
        .map(|s| match s {
            Step::Kernels(calls) => calls.iter().filter(|c| c.n_tiles > 1).count(),
            Step::Fallback(_) => 0,
        })
        .sum();
    let entry = define_entry(&mut mcx, &steps, &opts.entry_name)?;
    report.functions = mcx.kernel_functions();
    mcx.finish()?;
    let mut inputs = Vec::new();
    for &v in &g.inputs {
        inputs.push((g.value(v).name.clone(), slot(g, &plan, v)?));
    }
    let mut outputs = Vec::new();
    for (k, &v) in g.outputs.iter().enumerate() {
        let mut s = slot(g, &plan, v)?;
        s.loc = Loc::Io(g.inputs.len() + k, 0);
        outputs.push((g.value(v).name.clone(), s));
    }
    report.weights_bytes = weights.blob.len();
    Ok(Compiled {
        entry,
        weights: weights.blob,
        plan,
        inputs,
        outputs,
        fallbacks,
        parallel_kernels,
        report,
    })
}

fn define_entry(mcx: &mut ModuleCx, steps: &[Step], name: &str) -> Result<FuncId, CodegenError> {
    let ptr = mcx.module.target_config().pointer_type();
    let cc = mcx.module.target_config().default_call_conv;
    let mut sig = Signature::new(cc);
    for _ in 0..4 {
        sig.params.push(AbiParam::new(ptr));
    }
    sig.returns.push(AbiParam::new(types::I32));
    let mut pf_sig = Signature::new(cc);
    for t in [ptr, ptr, ptr, types::I64] {
        pf_sig.params.push(AbiParam::new(t));
    }
    let mut fb_sig = Signature::new(cc);
    for t in [ptr, types::I32, ptr] {
        fb_sig.params.push(AbiParam::new(t));
    }
    fb_sig.returns.push(AbiParam::new(types::I32));
    mcx.define(name, Linkage::Export, sig, |b, module| {
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let p = b.block_params(entry).to_vec();
        let (w, a, io, host) = (p[0], p[1], p[2], p[3]);
        // The context: three base pointers, then the operand table each kernel call fills.
        let max_ops = steps
            .iter()
            .flat_map(|s| match s {
                Step::Kernels(calls) => calls.iter().map(|c| c.ops.len()).max(),
                Step::Fallback(_) => None,
            })
            .max()
            .unwrap_or(0);
        let ss = b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            ctx_offsets::SIZE + 8 * max_ops as u32,
            3,
        ));
        b.ins().stack_store(ptr, w, ss, ctx_offsets::WEIGHTS);
        b.ins().stack_store(ptr, a, ss, ctx_offsets::ARENA);
        b.ins().stack_store(ptr, io, ss, ctx_offsets::IO);
        let ctxp = b.ins().stack_addr(ptr, ss, 0);
        // Host callbacks (host may be NULL: everything runs on this thread, fallbacks fail).
        let have_host = b.create_block();
        let go = b.create_block();
        for _ in 0..3 {
            b.append_block_param(go, ptr);
        }
        let zero = b.ins().iconst(ptr, 0);
        b.ins().brif(
            host,
            have_host,
            &[],
            go,
            &[
                BlockArg::Value(zero),
                BlockArg::Value(zero),
                BlockArg::Value(zero),
            ],
        );
        b.switch_to_block(have_host);
        let fl = MemFlagsData::trusted().with_readonly();
        let pf = b.ins().load(ptr, fl, host, host_offsets::PARALLEL_FOR);
        let fbp = b.ins().load(ptr, fl, host, host_offsets::FALLBACK);
        let user = b.ins().load(ptr, fl, host, host_offsets::USER);
        b.ins().jump(
            go,
            &[
                BlockArg::Value(pf),
                BlockArg::Value(fbp),
                BlockArg::Value(user),
            ],
        );
        b.switch_to_block(go);
        let gp = b.block_params(go).to_vec();
        let (pf, fbp, user) = (gp[0], gp[1], gp[2]);
        let pf_sigref = b.import_signature(pf_sig.clone());
        let fb_sigref = b.import_signature(fb_sig.clone());
        for step in steps {
            match step {
                Step::Kernels(calls) => {
                    for c in calls {
                        for (i, &loc) in c.ops.iter().enumerate() {
                            let addr = match loc {
                                Loc::Arena(off) => b.ins().iadd_imm_s(a, off as i64),
                                Loc::Weights(off) => b.ins().iadd_imm_s(w, off as i64),
                                Loc::Io(k, off) => {
                                    let p = b.ins().load(ptr, fl, io, (k * 8) as i32);
                                    b.ins().iadd_imm_s(p, off as i64)
                                }
                            };
                            b.ins().stack_store(ptr, addr, ss, op_offset(i));
                        }
                        let fref = module.declare_func_in_func(c.func, b.func);
                        if c.n_tiles > 1 {
                            let par = b.create_block();
                            let ser = b.create_block();
                            let next = b.create_block();
                            b.ins().brif(pf, par, &[], ser, &[]);
                            b.switch_to_block(par);
                            let kaddr = b.ins().func_addr(ptr, fref);
                            let n = b.ins().iconst(types::I64, c.n_tiles as i64);
                            b.ins()
                                .call_indirect(pf_sigref, pf, &[user, kaddr, ctxp, n]);
                            b.ins().jump(next, &[]);
                            b.switch_to_block(ser);
                            let lo = b.ins().iconst(types::I64, 0);
                            let hi = b.ins().iconst(types::I64, c.n_tiles as i64);
                            b.ins().call(fref, &[ctxp, lo, hi]);
                            b.ins().jump(next, &[]);
                            b.switch_to_block(next);
                        } else {
                            let lo = b.ins().iconst(types::I64, 0);
                            let hi = b.ins().iconst(types::I64, c.n_tiles as i64);
                            b.ins().call(fref, &[ctxp, lo, hi]);
                        }
                    }
                }
                Step::Fallback(k) => {
                    let call = b.create_block();
                    let missing = b.create_block();
                    let failed = b.create_block();
                    let next = b.create_block();
                    b.ins().brif(fbp, call, &[], missing, &[]);
                    b.switch_to_block(missing);
                    let e = b.ins().iconst(types::I32, abi::ERR_NO_FALLBACK as i64);
                    b.ins().return_(&[e]);
                    b.switch_to_block(call);
                    let kv = b.ins().iconst(types::I32, *k as i64);
                    let inst = b.ins().call_indirect(fb_sigref, fbp, &[user, kv, ctxp]);
                    let rc = b.inst_results(inst)[0];
                    let bad = b.ins().icmp_imm_s(IntCC::NotEqual, rc, 0);
                    b.ins().brif(bad, failed, &[], next, &[]);
                    b.switch_to_block(failed);
                    b.ins().return_(&[rc]);
                    b.switch_to_block(next);
                }
            }
        }
        let ok = b.ins().iconst(types::I32, abi::OK as i64);
        b.ins().return_(&[ok]);
        Ok(())
    })
}
