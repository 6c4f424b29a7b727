//! Fused ops from the e-graph optimizer (`fused_conv`, `fused_matmul`): lowered as the underlying
//! convolution / matmul kernels (by their families) followed by one epilogue kernel that adds the bias
//! and applies the activation in place, in a single pass over the output.

use carve_ir::ops::conv::ConvOp;
use carve_ir::ops::fused::{ActKind, Activation, FusedOp};
use carve_ir::ops::linalg::{LinalgOp, MatMul};
use carve_ir::{DType, Node, Op};
use cranelift_codegen::ir::{InstBuilder, Value, types};

use crate::CodegenError;
use crate::emit::{Emitter, Kb};
use crate::lower::elementwise::{act_un, un};
use crate::lower::math::Fx;
use crate::lower::{Lowering, NodeInfo, Weights, gemm, is_depthwise, spatial};

/// Elements per epilogue tile (keeps tiles coarse enough to be worth a thread hand-off).
const TILE_ELEMS: usize = 1 << 15;

/// True if the epilogue can apply `act` natively (every activation of the vocabulary).
pub fn act_supported(act: &Activation) -> bool {
    matches!(
        act.kind,
        ActKind::None | ActKind::Clip | ActKind::Affine | ActKind::ScaledTanh
    ) || act_un(act).is_some()
}

fn splat_const(kb: &mut Kb, ty: types::Type, v: f32) -> Value {
    if ty.is_vector() {
        kb.f32x4const(v)
    } else {
        kb.f32const(v)
    }
}

/// Emits `act(x)` for an f32 or f32x4 value: the elementwise family's lowering of the function
/// ([`act_un`]), or the composition for `clip`, `affine` and `scaled_tanh`.
pub fn emit_act(kb: &mut Kb, x: Value, act: &Activation) -> Value {
    let ty = kb.b.func.dfg.value_type(x);
    let f = fx(kb, ty);
    if let Some(op) = act_un(act) {
        return un(kb.b, f, op, x);
    }
    match act.kind {
        ActKind::Clip => {
            let lo = splat_const(kb, ty, act.alpha);
            let hi = splat_const(kb, ty, act.beta);
            let t = f.clamp_lo(kb.b, x, lo);
            f.clamp_hi(kb.b, t, hi)
        }
        ActKind::Affine => {
            let a = splat_const(kb, ty, act.alpha);
            f.maddk(kb.b, x, a, act.beta)
        }
        ActKind::ScaledTanh => {
            let t = f.mulk(kb.b, x, act.beta);
            let t = f.tanh(kb.b, t);
            f.mulk(kb.b, t, act.alpha)
        }
        // `none`; the others went through `act_un`.
        _ => x,
    }
}

fn fx(kb: &Kb, ty: types::Type) -> Fx {
    Fx {
        ty,
        fma: kb.target.has_fma(),
    }
}

/// Select phase for fused ops.
pub fn lower(info: &NodeInfo, w: &mut Weights) -> Result<Lowering, CodegenError> {
    let Op::Fused(f) = info.op() else {
        return Ok(Lowering::Fallback("not a fused op".into()));
    };
    if info.out_dtype(0)? != DType::F32 {
        return Ok(Lowering::Fallback(
            "fused epilogues are native for f32 only".into(),
        ));
    }
    let (inner_op, act, bias): (Op, Activation, Option<usize>) = match f {
        FusedOp::FusedConv(fc) => (Op::Conv(ConvOp::Conv(fc.conv())), fc.activation(), None),
        FusedOp::FusedMatMul(fm) => (
            Op::Linalg(LinalgOp::MatMul(MatMul::default())),
            fm.activation(),
            info.has_input(2).then_some(2),
        ),
    };
    if !act_supported(&act) {
        return Ok(Lowering::Fallback(format!(
            "activation {:?} has no native epilogue yet",
            act.kind
        )));
    }
    let n_inner_inputs = if bias.is_some() { 2 } else { info.num_inputs() };
    let inner_node = Node {
        name: info.node.name.clone(),
        op: inner_op,
        inputs: info.node.inputs[..n_inner_inputs.min(info.node.inputs.len())].to_vec(),
        outputs: info.node.outputs.clone(),
    };
    let inner_info = NodeInfo {
        graph: info.graph,
        node: &inner_node,
        target: info.target,
    };
    let inner = if matches!(inner_node.op, Op::Conv(_)) && is_depthwise(&inner_info) {
        spatial::lower(&inner_info, w)?
    } else {
        gemm::lower(&inner_info, w)?
    };
    let out_shape = info.out_shape(0)?;
    let last = out_shape.last().copied().unwrap_or(1).max(1);
    let total: usize = out_shape.iter().product();
    if let Some(b) = bias {
        let bs = info.in_shape(b)?;
        if bs.iter().product::<usize>() != last || info.in_dtype(b)? != DType::F32 {
            return Ok(Lowering::Fallback(format!(
                "fused_matmul bias of shape {bs:?} is not a vector along the last dim ({last})"
            )));
        }
    }
    match inner {
        Lowering::Native { in_place, emit } => Ok(Lowering::Native {
            in_place,
            emit: Box::new(move |e: &mut Emitter| {
                {
                    let mut ie = Emitter {
                        mcx: &mut *e.mcx,
                        info: NodeInfo {
                            graph: e.info.graph,
                            node: &inner_node,
                            target: e.info.target,
                        },
                        in_locs: e.in_locs[..n_inner_inputs.min(e.in_locs.len())].to_vec(),
                        out_locs: e.out_locs.clone(),
                        calls: Vec::new(),
                    };
                    emit(&mut ie)?;
                    let calls = ie.calls;
                    e.calls.extend(calls);
                }
                if act.kind == ActKind::None && bias.is_none() {
                    return Ok(());
                }
                emit_epilogue(e, total, last, bias, act)
            }),
        }),
        Lowering::Fallback(r) => Ok(Lowering::Fallback(format!(
            "the fused op's {} falls back: {r}",
            inner_node.op.name()
        ))),
        Lowering::Alias => Err(info.err("a fused op cannot be a view")),
    }
}

/// `out[i] = act(out[i] + bias[i % last])` over the whole output, in place.
fn emit_epilogue(
    e: &mut Emitter,
    total: usize,
    last: usize,
    bias: Option<usize>,
    act: Activation,
) -> Result<(), CodegenError> {
    let rows = total / last;
    let rows_per_tile = (TILE_ELEMS / last).max(1);
    let n_tiles = rows.div_ceil(rows_per_tile) as u64;
    e.kernel(n_tiles, move |kb| {
        let out = kb.output(0)?;
        let bias_base = match bias {
            Some(b) => Some(kb.input(b)?),
            None => None,
        };
        let vec = kb.target.f32_lanes() == 4;
        kb.for_tiles(|kb, t| {
            let r0 = kb.b.ins().imul_imm_s(t, rows_per_tile as i64);
            let r1 = kb.b.ins().iadd_imm_s(r0, rows_per_tile as i64);
            let rows_v = kb.iconst(rows as i64);
            let r1 = kb.b.ins().smin(r1, rows_v);
            kb.for_range(r0, r1, 1, |kb, r| {
                let row = kb.offset(out, r, (last * 4) as i64);
                let vend = if vec { last / 4 * 4 } else { 0 };
                if vend > 0 {
                    kb.for_n(0, vend as i64, 4, |kb, j| {
                        let p = kb.offset(row, j, 4);
                        let mut x = kb.load(types::F32X4, p, 0);
                        if let Some(bb) = bias_base {
                            let q = kb.offset(bb, j, 4);
                            let bv = kb.load(types::F32X4, q, 0);
                            x = kb.b.ins().fadd(x, bv);
                        }
                        let y = emit_act(kb, x, &act);
                        kb.store(y, p, 0);
                        Ok(())
                    })?;
                }
                if vend < last {
                    kb.for_n(vend as i64, last as i64, 1, |kb, j| {
                        let p = kb.offset(row, j, 4);
                        let mut x = kb.load(types::F32, p, 0);
                        if let Some(bb) = bias_base {
                            let q = kb.offset(bb, j, 4);
                            let bv = kb.load(types::F32, q, 0);
                            x = kb.b.ins().fadd(x, bv);
                        }
                        let y = emit_act(kb, x, &act);
                        kb.store(y, p, 0);
                        Ok(())
                    })?;
                }
                Ok(())
            })
        })
    })
}
