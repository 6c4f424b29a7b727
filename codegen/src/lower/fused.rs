//! Fused ops from the e-graph optimizer (`fused_conv`, `fused_matmul`) and their epilogue lists: the
//! one lowering of each [`EpiStep`].
//!
//! Where each step runs ([`split`]): a leading `bias` is the product kernel's own addend (conv's bias,
//! or a `[N]` row added in the GEMM tile); a `residual` right after it and the pointwise steps after
//! those (activations, clamps; up to [`Post::MAX`]) run in the GEMM/conv tile's registers before the
//! store ([`emit_step`], called by [`crate::lower::gemm::micro`], which loads the residual at the
//! tile's own output positions); a depthwise conv's window kernel applies the pointwise steps after
//! its bias to each result before the store (a residual there stays in the pass). What remains —
//! per-channel `scale`, a later `residual`, a bias after another step, pointwise steps after those —
//! runs as one more in-place pass over the output. `requant` has no native lowering
//! yet: such a node is reported as a fallback (and refused ahead of time).
//!
//! An integer `fused_matmul` (8-bit operands, leading `rescale`) is lowered by
//! [`crate::lower::int_fused::fused_matmul`] with the same split: the rescale, then a bias, a residual
//! and pointwise steps in the product kernel (the int8 tile's registers, or the Cranelift kernel's
//! per-element epilogue), the rest in the pass ([`emit_pass`]).

use carve_ir::ops::conv::ConvOp;
use carve_ir::ops::fused::{ActKind, Activation, EpiStep, FusedOp};
use carve_ir::ops::linalg::{LinalgOp, MatMul};
use carve_ir::{DType, Node, Op};
use cranelift_codegen::ir::{InstBuilder, Value, types};

use crate::CodegenError;
use crate::emit::{Emitter, Kb};
use crate::lower::elementwise::{act_un, un};
use crate::lower::gemm::Post;
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
        ActKind::Clip => emit_clamp(kb, x, act.alpha, act.beta),
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

/// `min(max(x, lo), hi)` for an f32 or f32x4 value (NaN stays NaN).
fn emit_clamp(kb: &mut Kb, x: Value, lo: f32, hi: f32) -> Value {
    let ty = kb.b.func.dfg.value_type(x);
    let f = fx(kb, ty);
    let lo = splat_const(kb, ty, lo);
    let hi = splat_const(kb, ty, hi);
    let t = f.clamp_lo(kb.b, x, lo);
    f.clamp_hi(kb.b, t, hi)
}

/// Emits a pointwise epilogue step (activation or clamp) on an f32 or f32x4 value; steps that read
/// an operand are applied by the caller, which has it ([`emit_pass`]), and leave `x` unchanged here.
pub fn emit_step(kb: &mut Kb, x: Value, step: &EpiStep) -> Value {
    match step {
        EpiStep::Act(a) => emit_act(kb, x, a),
        EpiStep::Clamp { lo, hi } => emit_clamp(kb, x, *lo, *hi),
        _ => x,
    }
}

/// Where the steps of a fused op's epilogue run.
#[derive(Debug, Clone)]
pub struct Split {
    /// First input of a leading `rescale` (an integer product's), applied by the product kernel.
    pub rescale: Option<usize>,
    /// Input of a leading bias, added by the product kernel itself.
    pub bias: Option<usize>,
    /// Input of a residual right after the bias (or first), added in the tile.
    pub residual: Option<usize>,
    /// Pointwise steps applied in the tile's registers.
    pub post: Post,
    /// The steps in the tile (for the schedule text).
    pub tile: Vec<(EpiStep, Option<usize>)>,
    /// Steps applied by a pass over the output, each with its operand input.
    pub pass: Vec<(EpiStep, Option<usize>)>,
}

/// Splits the epilogue of fused op `f` into what the product kernel (depthwise: `depthwise`) applies
/// and what a pass over the output applies; `Err` for steps with no native lowering.
pub fn split(f: &FusedOp, depthwise: bool) -> Result<Split, String> {
    let epi = f.epilogue();
    if epi.requant().is_some() {
        return Err("requantize epilogue steps have no native lowering yet".into());
    }
    for s in epi.steps() {
        if let EpiStep::Act(a) = s
            && !act_supported(a)
        {
            return Err(format!(
                "activation {:?} has no native epilogue yet",
                a.kind
            ));
        }
    }
    let steps = epi.with_inputs();
    let (rescale, rest) = match steps.first() {
        Some((EpiStep::Rescale, Some(k))) => (Some(*k), &steps[1..]),
        _ => (None, &steps[..]),
    };
    let (bias, rest) = match rest.first() {
        Some((EpiStep::Bias, Some(k))) => (Some(*k), &rest[1..]),
        _ => (None, rest),
    };
    let (residual, rest) = match rest.first() {
        Some((EpiStep::Residual, Some(k))) if !depthwise => (Some(*k), &rest[1..]),
        _ => (None, rest),
    };
    let n_post = rest
        .iter()
        .take(Post::MAX)
        .take_while(|(s, _)| matches!(s, EpiStep::Act(_) | EpiStep::Clamp { .. }))
        .count();
    let post_steps: Vec<EpiStep> = rest[..n_post].iter().map(|p| p.0).collect();
    let mut post = Post::new(&post_steps).unwrap_or(Post::NONE);
    if residual.is_some() {
        // The product kernel's inputs are (a, b, bias or absent, residual).
        post = post.with_residual(3);
    }
    Ok(Split {
        rescale,
        bias,
        residual,
        post,
        tile: steps[..steps.len() - rest.len() + n_post].to_vec(),
        pass: rest[n_post..].to_vec(),
    })
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
    if let FusedOp::FusedMatMul(mm) = f
        && mm.epilogue.is_integer()
    {
        return super::int_fused::fused_matmul(info, w, f);
    }
    if info.out_dtype(0)? != DType::F32 {
        return Ok(Lowering::Fallback(
            "fused epilogues are native for f32 only".into(),
        ));
    }
    let inner_op = match f {
        FusedOp::FusedConv(fc) => Op::Conv(ConvOp::Conv(fc.conv())),
        FusedOp::FusedMatMul(_) => Op::Linalg(LinalgOp::MatMul(MatMul::default())),
    };
    let n_inner = FusedOp::PRODUCT_INPUTS;
    let probe = Node {
        name: info.node.name.clone(),
        op: inner_op.clone(),
        inputs: info.node.inputs[..n_inner.min(info.node.inputs.len())].to_vec(),
        outputs: info.node.outputs.clone(),
    };
    let depthwise = matches!(probe.op, Op::Conv(_))
        && is_depthwise(&NodeInfo {
            graph: info.graph,
            node: &probe,
            target: info.target,
        });
    let sp = match split(f, depthwise) {
        Ok(s) => s,
        Err(r) => return Ok(Lowering::Fallback(r)),
    };
    // The product's inputs: its two operands, the leading bias (as input 2) and the residual the
    // tile adds (as input 3, the bias slot then absent if there is none).
    let mut inputs: Vec<Option<usize>> = (0..n_inner).map(Some).collect();
    if sp.bias.is_some() || sp.residual.is_some() {
        inputs.push(sp.bias);
    }
    if sp.residual.is_some() {
        inputs.push(sp.residual);
    }
    let inner_node = Node {
        name: info.node.name.clone(),
        op: inner_op,
        inputs: inputs
            .iter()
            .map(|i| i.and_then(|i| info.node.inputs.get(i).copied().flatten()))
            .collect(),
        outputs: info.node.outputs.clone(),
    };
    let inner_info = NodeInfo {
        graph: info.graph,
        node: &inner_node,
        target: info.target,
    };
    let inner = if depthwise {
        spatial::lower_depthwise_with(&inner_info, w, sp.post)?
    } else {
        gemm::lower_with(&inner_info, w, sp.post)?
    };
    let out_shape = info.out_shape(0)?;
    let total: usize = out_shape.iter().product();
    let conv = matches!(f, FusedOp::FusedConv(_));
    // The pass views the output as rows: conv rows are one channel's plane (per-channel operands
    // are one value per row), matmul rows are the last dim (per-channel operands are a row vector).
    let (row_len, chans) = if conv {
        let c = out_shape.get(1).copied().unwrap_or(1).max(1);
        (out_shape.iter().skip(2).product::<usize>().max(1), c)
    } else {
        let n = out_shape.last().copied().unwrap_or(1).max(1);
        (n, n)
    };
    if let Some(r) = check_operands(info, &sp.pass, total, chans)? {
        return Ok(Lowering::Fallback(r));
    }
    let pass = Pass {
        total,
        row_len,
        chans,
        per_row: conv,
        steps: sp.pass,
    };
    wrap(inner, inner_node, inputs, pass)
}

/// The lowering of a fused op from `inner`, the lowering of its product kernel as node `inner_node`
/// (whose inputs are the fused node's inputs `inputs`), followed by `pass` when it has steps.
pub(crate) fn wrap(
    inner: Lowering,
    inner_node: Node,
    inputs: Vec<Option<usize>>,
    pass: Pass,
) -> Result<Lowering, CodegenError> {
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
                        in_locs: inputs
                            .iter()
                            .map(|i| i.and_then(|i| e.in_locs.get(i).copied().flatten()))
                            .collect(),
                        out_locs: e.out_locs.clone(),
                        calls: Vec::new(),
                    };
                    emit(&mut ie)?;
                    let calls = ie.calls;
                    e.calls.extend(calls);
                }
                if pass.steps.is_empty() {
                    return Ok(());
                }
                emit_pass(e, pass.clone())
            }),
        }),
        Lowering::Fallback(r) | Lowering::NeedsConstants { reason: r, .. } => {
            Ok(Lowering::Fallback(format!(
                "the fused op's {} falls back: {r}",
                inner_node.op.name()
            )))
        }
        Lowering::Alias => Err(CodegenError::Node {
            node: inner_node.name.clone(),
            op: inner_node.op.name().to_string(),
            msg: "a fused op cannot be a view".into(),
        }),
    }
}

/// Why the operands of `steps` do not fit a product of `total` elements and `chans` channels (a
/// residual has `total` f32 elements, a per-channel operand `chans`), or `None` if they do.
pub(crate) fn check_operands(
    info: &NodeInfo,
    steps: &[(EpiStep, Option<usize>)],
    total: usize,
    chans: usize,
) -> Result<Option<String>, CodegenError> {
    for (step, k) in steps {
        let Some(k) = *k else { continue };
        let want = if *step == EpiStep::Residual {
            total
        } else {
            chans
        };
        let s = info.in_shape(k)?;
        if s.iter().product::<usize>() != want || info.in_dtype(k)? != DType::F32 {
            return Ok(Some(format!(
                "epilogue operand {k} ({step}) of shape {s:?} does not have {want} f32 elements"
            )));
        }
    }
    Ok(None)
}

/// The epilogue steps left for a pass over the output.
#[derive(Debug, Clone)]
pub(crate) struct Pass {
    /// Output elements.
    pub total: usize,
    /// Elements per row.
    pub row_len: usize,
    /// Channels.
    pub chans: usize,
    /// Per-channel operands hold one value per row (channel = row mod `chans`; conv), else one per
    /// column (matmul).
    pub per_row: bool,
    /// The steps with their operand inputs.
    pub steps: Vec<(EpiStep, Option<usize>)>,
}

/// `out[i] = steps(out[i])` over the whole output, in place, 4 lanes at a time where the target has
/// vectors.
pub(crate) fn emit_pass(e: &mut Emitter, p: Pass) -> Result<(), CodegenError> {
    let rows = p.total / p.row_len;
    let rows_per_tile = (TILE_ELEMS / p.row_len).max(1);
    let n_tiles = rows.div_ceil(rows_per_tile) as u64;
    let row_len = p.row_len;
    e.kernel(n_tiles, move |kb| {
        let out = kb.output(0)?;
        let mut bases = Vec::with_capacity(p.steps.len());
        for (_, k) in &p.steps {
            bases.push(match k {
                Some(k) => Some(kb.input(*k)?),
                None => None,
            });
        }
        let vec = kb.target.f32_lanes() == 4;
        kb.for_tiles(|kb, t| {
            let r0 = kb.b.ins().imul_imm_s(t, rows_per_tile as i64);
            let r1 = kb.b.ins().iadd_imm_s(r0, rows_per_tile as i64);
            let rows_v = kb.iconst(rows as i64);
            let r1 = kb.b.ins().smin(r1, rows_v);
            kb.for_range(r0, r1, 1, |kb, r| {
                let row = kb.offset(out, r, (row_len * 4) as i64);
                // Per row: the row's channel value of per-channel operands (conv), the row of a
                // residual, the start of per-channel vectors (matmul).
                let mut row_ops: Vec<Option<Value>> = Vec::with_capacity(p.steps.len());
                for ((step, _), base) in p.steps.iter().zip(&bases) {
                    let Some(base) = *base else {
                        row_ops.push(None);
                        continue;
                    };
                    row_ops.push(Some(match step {
                        EpiStep::Residual => kb.offset(base, r, (row_len * 4) as i64),
                        _ if p.per_row => {
                            let c = kb.b.ins().urem_imm_u(r, p.chans as i64);
                            let q = kb.offset(base, c, 4);
                            kb.load(types::F32, q, 0)
                        }
                        _ => base,
                    }));
                }
                let body = |kb: &mut Kb, j: Value, ty: types::Type| -> Result<(), CodegenError> {
                    let ptr = kb.offset(row, j, 4);
                    let mut x = kb.load(ty, ptr, 0);
                    for ((step, _), op) in p.steps.iter().zip(&row_ops) {
                        let operand = match (step, op) {
                            (EpiStep::Residual, Some(rb)) => {
                                let q = kb.offset(*rb, j, 4);
                                Some(kb.load(ty, q, 0))
                            }
                            (_, Some(v)) if p.per_row => Some(if ty.is_vector() {
                                kb.b.ins().splat(ty, *v)
                            } else {
                                *v
                            }),
                            (_, Some(vb)) => {
                                let q = kb.offset(*vb, j, 4);
                                Some(kb.load(ty, q, 0))
                            }
                            _ => None,
                        };
                        x = match (step, operand) {
                            (EpiStep::Bias | EpiStep::Residual, Some(o)) => kb.b.ins().fadd(x, o),
                            (EpiStep::Scale, Some(o)) => kb.b.ins().fmul(x, o),
                            _ => emit_step(kb, x, step),
                        };
                    }
                    kb.store(x, ptr, 0);
                    Ok(())
                };
                let vend = if vec { row_len / 4 * 4 } else { 0 };
                if vend > 0 {
                    kb.for_n(0, vend as i64, 4, |kb, j| body(kb, j, types::F32X4))?;
                }
                if vend < row_len {
                    kb.for_n(vend as i64, row_len as i64, 1, |kb, j| {
                        body(kb, j, types::F32)
                    })?;
                }
                Ok(())
            })
        })
    })
}
