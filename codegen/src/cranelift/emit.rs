//! The Cranelift emitter: realizes a [`Schedule`] in a Cranelift module — every step's kernels
//! (through the step's emit closure, with operand locations from the schedule), the output copies and
//! the entry function that calls them in schedule order (filling each call's operand table, splitting
//! multi-tile kernels over the host's `parallel_for`, calling the host for fallbacks). The module is a
//! `cranelift_jit::JITModule` or a `cranelift_object::ObjectModule`.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    AbiParam, BlockArg, InstBuilder, MemFlagsData, Signature, StackSlotData, StackSlotKind, types,
};
use cranelift_module::{FuncId, Linkage, Module};

use carve_runtime::abi::{self, ctx_offsets, host_offsets};
use carve_runtime::exec::Loc;

use crate::CodegenError;
use crate::cranelift::kernel::{Emitter, KernelCall, ModuleCx, define_kernel, op_offset};
use crate::node::NodeInfo;
use crate::schedule::{Schedule, StepKind, out_locs};
use crate::target::Target;

/// What the entry function does per step.
enum Step {
    Kernels(Vec<KernelCall>),
    Fallback(u32),
}

/// What [`emit`] put in the module.
#[derive(Debug, Clone, Copy)]
pub struct Emitted {
    /// The entry function.
    pub entry: FuncId,
    /// Distinct kernel functions compiled (calls of the same geometry share one).
    pub functions: usize,
}

/// Emits `schedule` into `module` with an exported entry function `entry_name` (signature
/// `carve_runtime::abi::EntryFn`). The kernels each step generates must be the ones the schedule
/// lists (same count and tile counts); anything else is an error.
pub fn emit(
    module: &mut dyn Module,
    schedule: &Schedule,
    target: &Target,
    entry_name: &str,
) -> Result<Emitted, CodegenError> {
    let g = schedule.graph();
    let mut mcx = ModuleCx::new(module, target);
    let mut steps = Vec::new();
    for (st, lowering) in schedule.steps.iter().zip(&schedule.realize) {
        match (&st.kind, lowering) {
            (StepKind::Kernel(k), Some(lowering)) => {
                let node = g.nodes.get(st.node).ok_or_else(|| CodegenError::Graph {
                    msg: format!("schedule step for missing node {}", st.node),
                })?;
                let mut e = Emitter {
                    mcx: &mut mcx,
                    info: NodeInfo {
                        graph: g,
                        node,
                        target,
                    },
                    in_locs: st
                        .inputs
                        .iter()
                        .map(|o| o.as_ref().and_then(|o| o.loc))
                        .collect(),
                    out_locs: out_locs(&st.outputs),
                    calls: Vec::new(),
                };
                lowering(&mut e)?;
                let tiles: Vec<u64> = e.calls.iter().map(|c| c.n_tiles).collect();
                if tiles != k.tiles {
                    return Err(CodegenError::Node {
                        node: st.name.clone(),
                        op: st.op.clone(),
                        msg: format!(
                            "emitted kernels with tiles {tiles:?}, the schedule planned {:?}",
                            k.tiles
                        ),
                    });
                }
                steps.push(Step::Kernels(e.calls));
            }
            (StepKind::Fallback { index, .. }, _) => steps.push(Step::Fallback(*index)),
            (StepKind::Alias | StepKind::Empty, _) => {}
            (StepKind::Kernel(_), None) => {
                return Err(CodegenError::Node {
                    node: st.name.clone(),
                    op: st.op.clone(),
                    msg: "the schedule has no Cranelift realization for this kernel".into(),
                });
            }
        }
    }
    // Copies of outputs that could not be computed in place.
    let mut copy_calls = Vec::new();
    for c in &schedule.copies {
        let bytes = c.bytes as i64;
        let name = mcx.fresh_name("copy_output");
        let (func, ops) = define_kernel(
            &mut mcx,
            &name,
            &[Some(c.from)],
            &[Loc::Io(c.io, 0)],
            |kb| {
                let s = kb.input(0)?;
                let d = kb.output(0)?;
                kb.copy_bytes(d, s, bytes)
            },
        )?;
        copy_calls.push(KernelCall {
            func: Some(func),
            n_tiles: 1,
            ops,
        });
    }
    steps.push(Step::Kernels(copy_calls));
    let entry = define_entry(&mut mcx, &steps, entry_name)?;
    let functions = mcx.kernel_functions();
    mcx.finish()?;
    Ok(Emitted { entry, functions })
}

fn define_entry(mcx: &mut ModuleCx, steps: &[Step], name: &str) -> Result<FuncId, CodegenError> {
    let cfg = mcx.module()?.target_config();
    let ptr = cfg.pointer_type();
    let cc = cfg.default_call_conv;
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
                        let func = c.func.ok_or_else(|| CodegenError::Graph {
                            msg: "a planned kernel call reached the entry function".into(),
                        })?;
                        let fref = module.declare_func_in_func(func, b.func);
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
