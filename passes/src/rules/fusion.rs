//! Fusion into the fused kernels of [`carve_ir::ops::fused`], building their epilogue lists: `conv`
//! becomes `fused_conv` (its bias the epilogue's `bias` step), a per-channel constant added to its
//! result joins that bias, and a following activation (or `clip`, as a `clamp` step) is appended to
//! the epilogue; `matmul` becomes `fused_matmul`, a `[N]` vector added along the last dim becomes its
//! `bias` step (matmul + add → gemm), a following activation is appended; `gemm` with
//! `alpha = beta = 1`, no transposed A or B and a `[N]` (or `[1, N]`) C maps to `fused_matmul`; a
//! tensor of the product's own shape added to a fused result becomes a `residual` step (ResNet's skip
//! connection, a transformer's residual stream; a following activation is appended after it). An
//! integer product rescaled to f32, `dequantize_linear(matmul_integer(a, b, za, zb), s)` (what
//! [`super::quant`] makes of a QDQ matmul; zero point 0, one scale or one per column along the last
//! axis), becomes the integer `fused_matmul(a, b, s, za, zb) {epilogue=["rescale"]}`, which takes a
//! bias, activation and residual the same way, after the rescale. The cost model decides whether a fused form is used: when an intermediate has other users, fusing would
//! recompute it.

use carve_ir::ops::conv::ConvOp;
use carve_ir::ops::elementwise::{ElementwiseOp as E, GeluApprox};
use carve_ir::ops::fused::{
    ActKind, Activation, EpiStep, Epilogue, FusedConv, FusedMatMul, FusedOp,
};
use carve_ir::ops::linalg::LinalgOp;
use carve_ir::ops::quant::QuantOp;
use carve_ir::{Constant, DType, Op};
use egg::Id;

use super::quant::{const_len, is_8bit};
use super::util::{
    absent, add_const, add_op, dims, f32s, find, is_absent, konst, op, per_channel_f32, splat,
    tensor,
};
use super::{Match, Rule};
use crate::egraph::analysis::EG;
use crate::egraph::lang::ENode;

/// The rules of this family.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "conv-to-fused",
            search: conv_to_fused,
            apply: apply_conv_to_fused,
        },
        Rule {
            name: "conv-bias-add",
            search: conv_bias_add,
            apply: apply_conv_bias_add,
        },
        Rule {
            name: "conv-activation",
            search: conv_activation,
            apply: apply_conv_activation,
        },
        Rule {
            name: "matmul-to-fused",
            search: matmul_to_fused,
            apply: apply_matmul_to_fused,
        },
        Rule {
            name: "matmul-bias-add",
            search: matmul_bias_add,
            apply: apply_matmul_bias_add,
        },
        Rule {
            name: "matmul-activation",
            search: matmul_activation,
            apply: apply_matmul_activation,
        },
        Rule {
            name: "residual-add",
            search: residual_add,
            apply: apply_residual_add,
        },
        Rule {
            name: "gemm-to-fused",
            search: gemm_to_fused,
            apply: apply_gemm_to_fused,
        },
        Rule {
            name: "rescale-to-fused",
            search: rescale_to_fused,
            apply: apply_rescale_to_fused,
        },
    ]
}

fn is_f32(eg: &EG, id: Id) -> bool {
    tensor(eg, id).is_some_and(|t| t.dtype == DType::F32 && t.quant.is_none())
}

fn conv_to_fused(eg: &EG, class: Id, n: &ENode) -> Option<Match> {
    let Op::Conv(ConvOp::Conv(_)) = op(eg, n)? else {
        return None;
    };
    is_f32(eg, class).then_some(())?;
    Some(Match {
        ids: n.children.clone(),
        ops: vec![super::util::op_index(n)?],
        ..Match::default()
    })
}

fn apply_conv_to_fused(eg: &mut EG, m: &Match) -> Option<Id> {
    let Op::Conv(ConvOp::Conv(c)) = &eg.analysis.ops.get(*m.ops.first()?).op else {
        return None;
    };
    let mut ids = m.ids.clone();
    ids.truncate(3);
    let epi = match ids.get(2) {
        Some(&b) if !is_absent(eg, b) => Epilogue(vec![EpiStep::Bias]),
        _ => {
            ids.truncate(2);
            Epilogue::default()
        }
    };
    Some(add_op(eg, FusedConv::new(c, epi), ids))
}

/// True if an epilogue is at most a bias (nothing applied after the sum yet).
fn bias_only(e: &Epilogue) -> bool {
    e.steps().iter().all(|s| *s == EpiStep::Bias)
}

/// True if an activation can still be appended to `e`: no activation, clamp or requantize in it.
fn unactivated(e: &Epilogue) -> bool {
    !e.steps().iter().any(|s| {
        matches!(
            s,
            EpiStep::Act(_) | EpiStep::Clamp { .. } | EpiStep::Requant { .. }
        )
    })
}

/// A `fused_conv` whose epilogue is at most a bias in class `id`: its op and children.
fn plain_fused_conv(eg: &EG, id: Id) -> Option<(FusedConv, Vec<Id>)> {
    find(eg, id, |m, o| match o {
        Op::Fused(FusedOp::FusedConv(f)) if bias_only(&f.epilogue) => {
            Some((f.clone(), m.children.clone()))
        }
        _ => None,
    })
}

/// A `fused_conv` an activation can be appended to, in class `id`: its op and children.
fn unactivated_fused_conv(eg: &EG, id: Id) -> Option<(FusedConv, Vec<Id>)> {
    find(eg, id, |m, o| match o {
        Op::Fused(FusedOp::FusedConv(f)) if unactivated(&f.epilogue) => {
            Some((f.clone(), m.children.clone()))
        }
        _ => None,
    })
}

fn conv_bias_add(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    let Op::Elementwise(E::Add(_)) = op(eg, n)? else {
        return None;
    };
    let [a, b] = n.children[..] else { return None };
    for (y, c) in [(a, b), (b, a)] {
        let Some(k) = konst(eg, c) else { continue };
        let Some(t) = tensor(eg, y) else { continue };
        let (Some(rank), Some(mch)) = (t.rank(), t.dims().and_then(|d| d.get(1)?.known())) else {
            continue;
        };
        let Some(v) = per_channel_f32(k, rank, 1) else {
            continue;
        };
        if !(v.len() == mch as usize || v.len() == 1) || !super::util::fits_within(&dims(k)?, t) {
            continue;
        }
        if let Some((_, ch)) = plain_fused_conv(eg, y) {
            let mut ids = ch;
            ids.truncate(3);
            return Some(Match {
                ids: vec![y, c, ids[0], ids[1], ids.get(2).copied().unwrap_or(ids[0])],
                nums: vec![mch as f64, ids.len() as f64],
                ..Match::default()
            });
        }
    }
    None
}

fn apply_conv_bias_add(eg: &mut EG, m: &Match) -> Option<Id> {
    let (y, c, x, w, b) = (m.ids[0], m.ids[1], m.ids[2], m.ids[3], m.ids[4]);
    let mch = m.nums[0] as usize;
    let has_bias = m.nums[1] as usize == 3 && !is_absent(eg, b);
    let (f, _) = plain_fused_conv(eg, y)?;
    let rank = tensor(eg, y)?.rank()?;
    let add = per_channel_f32(konst(eg, c)?, rank, 1)?;
    let add: Vec<f32> = if add.len() == 1 {
        vec![add[0]; mch]
    } else {
        add
    };
    let old: Vec<f32> = if has_bias {
        f32s(konst(eg, b)?)?
    } else {
        vec![0.0; mch]
    };
    if old.len() != mch {
        return None;
    }
    let nb: Vec<f32> = old.iter().zip(&add).map(|(p, q)| p + q).collect();
    let bc = add_const(eg, Constant::from_f32s(&[mch as u64], &nb));
    let f = f.with_epilogue(Epilogue(vec![EpiStep::Bias]));
    Some(add_op(eg, f, vec![x, w, bc]))
}

/// The epilogue step an elementwise e-node computes on its first operand, if fusable: an activation,
/// or `clamp` for `clip` with constant bounds.
pub fn activation_of(eg: &EG, n: &ENode, o: &Op) -> Option<EpiStep> {
    let Op::Elementwise(e) = o else { return None };
    let a = match e {
        E::Relu(_) => Activation::plain(ActKind::Relu),
        E::LeakyRelu(l) => Activation {
            kind: ActKind::LeakyRelu,
            alpha: l.alpha,
            beta: 0.0,
        },
        E::HardSigmoid(h) => Activation {
            kind: ActKind::HardSigmoid,
            alpha: h.alpha,
            beta: h.beta,
        },
        E::HardSwish(_) => Activation::plain(ActKind::HardSwish),
        E::Sigmoid(_) => Activation::plain(ActKind::Sigmoid),
        E::Tanh(_) => Activation::plain(ActKind::Tanh),
        E::Gelu(g) => Activation::plain(match g.approximate {
            GeluApprox::Erf => ActKind::GeluErf,
            GeluApprox::Tanh => ActKind::GeluTanh,
        }),
        E::Clip(_) => {
            let bound = |i: usize, dflt: f32| -> Option<f32> {
                match n.children.get(i) {
                    None => Some(dflt),
                    Some(&c) if is_absent(eg, c) => Some(dflt),
                    Some(&c) => splat(eg, c).map(|v| v as f32),
                }
            };
            return Some(EpiStep::Clamp {
                lo: bound(1, f32::NEG_INFINITY)?,
                hi: bound(2, f32::INFINITY)?,
            });
        }
        _ => return None,
    };
    Some(EpiStep::Act(a))
}

fn act_match(eg: &EG, n: &ENode, target: impl Fn(Id) -> Option<Vec<Id>>) -> Option<Match> {
    let o = op(eg, n)?;
    let step = activation_of(eg, n, o)?;
    let x = *n.children.first()?;
    let ids = target(x)?;
    Some(Match {
        ids: std::iter::once(x).chain(ids).collect(),
        nums: step_code(step),
        ..Match::default()
    })
}

/// A pointwise step (activation or clamp) as match numbers: `[code, alpha, beta]`, code 0 a clamp,
/// `1 + i` the activation with keyword `ActKind::KEYWORDS[i]`.
fn step_code(s: EpiStep) -> Vec<f64> {
    let (code, a, b) = match s {
        EpiStep::Clamp { lo, hi } => (0, lo, hi),
        EpiStep::Act(a) => (
            1 + ActKind::KEYWORDS
                .iter()
                .position(|&w| w == a.kind.keyword())
                .unwrap_or(0),
            a.alpha,
            a.beta,
        ),
        _ => (0, f32::NEG_INFINITY, f32::INFINITY),
    };
    vec![code as f64, f64::from(a), f64::from(b)]
}

fn step_from(nums: &[f64]) -> Option<EpiStep> {
    let (a, b) = (*nums.get(1)? as f32, *nums.get(2)? as f32);
    match *nums.first()? as usize {
        0 => Some(EpiStep::Clamp { lo: a, hi: b }),
        i => {
            let kind = ActKind::from_keyword(ActKind::KEYWORDS.get(i - 1)?)?;
            Some(EpiStep::Act(Activation::new(kind, a, b)))
        }
    }
}

fn conv_activation(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    act_match(eg, n, |x| unactivated_fused_conv(eg, x).map(|(_, ch)| ch))
}

fn apply_conv_activation(eg: &mut EG, m: &Match) -> Option<Id> {
    let s = step_from(&m.nums)?;
    let (f, _) = unactivated_fused_conv(eg, m.ids[0])?;
    let f = f.with_epilogue(f.epilogue.then(s));
    Some(add_op(eg, f, m.ids[1..].to_vec()))
}

fn matmul_to_fused(eg: &EG, class: Id, n: &ENode) -> Option<Match> {
    let Op::Linalg(LinalgOp::MatMul(_)) = op(eg, n)? else {
        return None;
    };
    (is_f32(eg, class) && n.children.iter().all(|&c| is_f32(eg, c))).then_some(())?;
    Some(Match {
        ids: n.children.clone(),
        ..Match::default()
    })
}

fn apply_matmul_to_fused(eg: &mut EG, m: &Match) -> Option<Id> {
    let (a, b) = (*m.ids.first()?, *m.ids.get(1)?);
    Some(add_op(
        eg,
        FusedMatMul::new(Epilogue::default()),
        vec![a, b],
    ))
}

/// One alternative of a class a step can be appended to: the fused op, its children and its interned
/// op index.
type Alt<T> = (T, Vec<Id>, u32);

/// Every `fused_matmul` in class `id` whose epilogue `ok` accepts (a class can hold several: the
/// float product and the integer one of a QDQ matmul), in the class's order.
fn fused_matmuls(eg: &EG, id: Id, ok: impl Fn(&Epilogue) -> bool) -> Vec<Alt<Epilogue>> {
    eg[id]
        .nodes
        .iter()
        .filter_map(|n| match op(eg, n)? {
            Op::Fused(FusedOp::FusedMatMul(f)) if ok(&f.epilogue) => Some((
                f.epilogue.clone(),
                n.children.clone(),
                super::util::op_index(n)?,
            )),
            _ => None,
        })
        .collect()
}

/// The `fused_matmul`s in class `id` with nothing applied to their product yet (an empty epilogue,
/// or an integer product's `rescale` alone).
fn plain_fused_matmuls(eg: &EG, id: Id) -> Vec<Alt<Epilogue>> {
    fused_matmuls(eg, id, |e| matches!(e.steps(), [] | [EpiStep::Rescale]))
}

/// The `fused_matmul`s an activation can be appended to, in class `id`.
fn unactivated_fused_matmuls(eg: &EG, id: Id) -> Vec<Alt<Epilogue>> {
    fused_matmuls(eg, id, unactivated)
}

/// A match over the alternatives `alts` of class `ids[0]`: their op indices (so that an alternative
/// appearing later makes a new match).
fn alts_match<T>(ids: Vec<Id>, alts: &[Alt<T>], nums: Vec<f64>) -> Option<Match> {
    (!alts.is_empty()).then(|| Match {
        ids,
        ops: alts.iter().map(|a| a.2).collect(),
        nums,
        ..Match::default()
    })
}

/// Adds every op of `ops` (with its children), unions them, and gives their class.
fn add_all(eg: &mut EG, ops: Vec<(FusedOp, Vec<Id>)>) -> Option<Id> {
    let mut class: Option<Id> = None;
    for (o, children) in ops {
        let id = add_op(eg, o, children);
        class = Some(match class {
            None => id,
            Some(c) => {
                eg.union(c, id);
                c
            }
        });
    }
    class
}

/// The `[N]` bias a value `c` added to a product of type `y` amounts to: `c` itself when it is a 1-D
/// f32 vector of the product's last dim, or a constant `[1, .., 1, N]` reshaped.
fn matmul_bias(eg: &EG, y: Id, c: Id) -> Option<Option<Vec<f32>>> {
    let t = tensor(eg, y)?;
    let n = t.dims()?.last()?.known()?;
    let ct = tensor(eg, c)?;
    if ct.dtype != DType::F32 || ct.quant.is_some() {
        return None;
    }
    let cd = ct.shape.as_ref()?.as_known()?;
    if cd.last() != Some(&n) || cd.len() > t.rank()? || cd[..cd.len() - 1].iter().any(|&d| d != 1) {
        return None;
    }
    if cd.len() == 1 {
        return Some(None);
    }
    Some(Some(f32s(konst(eg, c)?)?))
}

fn matmul_bias_add(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    let Op::Elementwise(E::Add(_)) = op(eg, n)? else {
        return None;
    };
    let [p, q] = n.children[..] else { return None };
    for (y, c) in [(p, q), (q, p)] {
        if matmul_bias(eg, y, c).is_some()
            && let Some(m) = alts_match(vec![y, c], &plain_fused_matmuls(eg, y), Vec::new())
        {
            return Some(m);
        }
    }
    None
}

fn apply_matmul_bias_add(eg: &mut EG, m: &Match) -> Option<Id> {
    let (y, c) = (*m.ids.first()?, *m.ids.get(1)?);
    let alts = plain_fused_matmuls(eg, y);
    let bias = match matmul_bias(eg, y, c)? {
        None => c,
        Some(v) => add_const(eg, Constant::from_f32s(&[v.len() as u64], &v)),
    };
    let ops = alts
        .into_iter()
        .map(|(epi, mut children, _)| {
            children.push(bias);
            let f = FusedMatMul::new(epi.then(EpiStep::Bias));
            (FusedOp::FusedMatMul(f), children)
        })
        .collect();
    add_all(eg, ops)
}

fn matmul_activation(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    let step = activation_of(eg, n, op(eg, n)?)?;
    let x = *n.children.first()?;
    alts_match(vec![x], &unactivated_fused_matmuls(eg, x), step_code(step))
}

fn apply_matmul_activation(eg: &mut EG, m: &Match) -> Option<Id> {
    let s = step_from(&m.nums)?;
    let ops = unactivated_fused_matmuls(eg, *m.ids.first()?)
        .into_iter()
        .map(|(epi, children, _)| {
            (
                FusedOp::FusedMatMul(FusedMatMul::new(epi.then(s))),
                children,
            )
        })
        .collect();
    add_all(eg, ops)
}

fn gemm_to_fused(eg: &EG, class: Id, n: &ENode) -> Option<Match> {
    let Op::Linalg(LinalgOp::Gemm(g)) = op(eg, n)? else {
        return None;
    };
    if g.trans_a || g.alpha != 1.0 || !is_f32(eg, class) {
        return None;
    }
    let (a, b) = (*n.children.first()?, *n.children.get(1)?);
    let c = n.children.get(2).copied().filter(|&c| !is_absent(eg, c));
    if let Some(c) = c {
        (g.beta == 1.0 && matmul_bias(eg, class, c).is_some()).then_some(())?;
    }
    // Not with a transposed B: the rewrite would need a transposed copy of the weights (PyTorch's
    // Linear exports as gemm(transB=1); the three layers of peers' gen_mlp4 took 48 ms), and buys
    // nothing: codegen packs B^T directly, adds gemm's C in the GEMM tile, and runs a fused_matmul's
    // activation as a separate pass over the output, just like the activation node after a gemm.
    if g.trans_b {
        return None;
    }
    Some(Match {
        ids: vec![class, a, b].into_iter().chain(c).collect(),
        ..Match::default()
    })
}

fn apply_gemm_to_fused(eg: &mut EG, m: &Match) -> Option<Id> {
    let (class, a, b) = (m.ids[0], m.ids[1], m.ids[2]);
    let Some(&c) = m.ids.get(3) else {
        return Some(add_op(
            eg,
            FusedMatMul::new(Epilogue::default()),
            vec![a, b],
        ));
    };
    let bias = match matmul_bias(eg, class, c)? {
        None => c,
        Some(v) => add_const(eg, Constant::from_f32s(&[v.len() as u64], &v)),
    };
    Some(add_op(
        eg,
        FusedMatMul::new(Epilogue(vec![EpiStep::Bias])),
        vec![a, b, bias],
    ))
}

/// True if a residual step can be appended to `e`: no requantize (the last step) and no residual yet
/// (one skip connection per kernel keeps the e-graph from growing a chain of alternatives).
fn takes_residual(e: &Epilogue) -> bool {
    !e.steps()
        .iter()
        .any(|s| matches!(s, EpiStep::Requant { .. } | EpiStep::Residual))
}

/// The fused ops in class `id` a residual can be appended to: each op with the step appended, its
/// children and the original's op index.
fn residual_targets(eg: &EG, id: Id) -> Vec<Alt<FusedOp>> {
    eg[id]
        .nodes
        .iter()
        .filter_map(|n| {
            let Op::Fused(f) = op(eg, n)? else {
                return None;
            };
            let fused = match f {
                FusedOp::FusedConv(c) if takes_residual(&c.epilogue) => {
                    FusedOp::FusedConv(c.with_epilogue(c.epilogue.then(EpiStep::Residual)))
                }
                FusedOp::FusedMatMul(mm) if takes_residual(&mm.epilogue) => {
                    FusedOp::FusedMatMul(FusedMatMul::new(mm.epilogue.then(EpiStep::Residual)))
                }
                _ => return None,
            };
            Some((fused, n.children.clone(), super::util::op_index(n)?))
        })
        .collect()
}

/// `add(y, r)` where `y` is a fused conv or matmul result and `r` another f32 value of exactly `y`'s
/// static shape (not `y` itself: that would recompute the product).
fn residual_add(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    let Op::Elementwise(E::Add(_)) = op(eg, n)? else {
        return None;
    };
    let [p, q] = n.children[..] else { return None };
    if p == q {
        return None;
    }
    let (tp, tq) = (tensor(eg, p)?, tensor(eg, q)?);
    let shape = tp.shape.as_ref()?.as_known()?;
    if !is_f32(eg, p) || !is_f32(eg, q) || tq.shape.as_ref()?.as_known()? != shape {
        return None;
    }
    for (y, r) in [(p, q), (q, p)] {
        if let Some(m) = alts_match(vec![y, r], &residual_targets(eg, y), Vec::new()) {
            return Some(m);
        }
    }
    None
}

fn apply_residual_add(eg: &mut EG, m: &Match) -> Option<Id> {
    let (y, r) = (*m.ids.first()?, *m.ids.get(1)?);
    let ops = residual_targets(eg, y)
        .into_iter()
        .map(|(fused, mut children, _)| {
            children.push(r);
            (fused, children)
        })
        .collect();
    add_all(eg, ops)
}

/// `dequantize_linear(matmul_integer(a, b, za, zb), s)` with an 8-bit product, no dequantize zero
/// point and a constant f32 scale of one element or one per output column along the last axis: ids
/// `[a, b, za, zb, s]` (absent zero points as absent classes).
fn rescale_to_fused(eg: &EG, class: Id, n: &ENode) -> Option<Match> {
    let Op::Quant(QuantOp::DequantizeLinear(d)) = op(eg, n)? else {
        return None;
    };
    if d.block_size != 0 || d.output_dtype.is_some_and(|t| t != DType::F32) {
        return None;
    }
    (tensor(eg, class)?.dtype == DType::F32).then_some(())?;
    let (y, s) = (*n.children.first()?, *n.children.get(1)?);
    if n.children.get(2).is_some_and(|&z| !is_absent(eg, z)) {
        return None;
    }
    let yt = tensor(eg, y)?;
    let rank = i64::try_from(yt.rank()?).ok()?;
    let cols = yt.dims()?.last()?.known()?;
    let ns = const_len(eg, s, DType::F32)?;
    let per_col_axis = d.axis == -1 || d.axis == rank - 1;
    (ns == 1 || (ns == cols && per_col_axis && tensor(eg, s)?.rank() == Some(1))).then_some(())?;
    let children = find(eg, y, |m, o| match o {
        Op::Quant(QuantOp::MatMulInteger(_)) => Some(m.children.clone()),
        _ => None,
    })?;
    let [a, b] = children[..2] else { return None };
    (is_8bit(tensor(eg, a)?.dtype) && is_8bit(tensor(eg, b)?.dtype)).then_some(())?;
    let za = children.get(2).copied();
    let zb = children.get(3).copied();
    Some(Match {
        ids: vec![a, b, za.unwrap_or(a), zb.unwrap_or(a), s],
        nums: vec![
            if za.is_some() { 1.0 } else { 0.0 },
            if zb.is_some() { 1.0 } else { 0.0 },
        ],
        ..Match::default()
    })
}

fn apply_rescale_to_fused(eg: &mut EG, m: &Match) -> Option<Id> {
    let [a, b, za, zb, s] = m.ids[..] else {
        return None;
    };
    let za = if m.nums.first() == Some(&1.0) {
        za
    } else {
        absent(eg)
    };
    let zb = if m.nums.get(1) == Some(&1.0) {
        zb
    } else {
        absent(eg)
    };
    Some(add_op(
        eg,
        FusedMatMul::new(Epilogue(vec![EpiStep::Rescale])),
        vec![a, b, s, za, zb],
    ))
}
