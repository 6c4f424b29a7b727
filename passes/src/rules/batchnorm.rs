//! Batch-norm folding: an inference-mode `batch_norm` whose parameters are constant, applied to a
//! convolution with constant weights (plain `conv` or `fused_conv` without activation), becomes the
//! convolution with rescaled weights and a new bias:
//! `k = scale / √(var + ε)`, `w'[m] = w[m] · k[m]`, `b' = (b − mean) · k + bias` (computed in f64).
//! The same holds for a 2-D `gemm` (no transposed A, `alpha = 1`, C absent or a constant `[N]`/`[1, N]`
//! with `beta = 1`) or a 2-D `matmul`, both with constant B: batch-norm's channel axis 1 is the
//! product's column axis, so B's columns (rows when `trans_b`) scale by `k` and the result is a `gemm`
//! with the new C.

use carve_ir::ops::conv::ConvOp;
use carve_ir::ops::fused::{EpiStep, Epilogue, FusedOp};
use carve_ir::ops::linalg::{Gemm, LinalgOp};
use carve_ir::ops::norm::NormOp;
use carve_ir::{Constant, Op};
use egg::Id;

use super::util::{
    add_const, add_op, dims, f32s, find, is_absent, is_f32, konst, op, op_index, scale_cols_f32,
    scale_rows_f32, static_dims,
};
use super::{Match, Rule};
use crate::egraph::analysis::EG;
use crate::egraph::lang::ENode;

/// The rules of this family.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "fold-batchnorm-into-conv",
            search: bn_conv,
            apply: apply_bn_conv,
        },
        Rule {
            name: "fold-batchnorm-into-gemm",
            search: bn_gemm,
            apply: apply_bn_gemm,
        },
    ]
}

/// The constant per-channel parameters of an inference batch-norm node and its ε, if it is one.
fn bn_params(eg: &EG, n: &ENode) -> Option<f64> {
    let Op::Norm(NormOp::BatchNorm(bn)) = op(eg, n)? else {
        return None;
    };
    if bn.training_mode || n.children.len() != 5 {
        return None;
    }
    for &p in &n.children[1..] {
        let c = konst(eg, p)?;
        (dims(c)?.len() == 1 && is_f32(c)).then_some(())?;
    }
    Some(f64::from(bn.epsilon))
}

/// `k = scale / √(var + ε)` and the batch-norm shift `(b − mean) · k + bias` for the product's constant
/// bias `b` (zeros when `None`), for `ch` channels; `None` when a parameter is not an f32 constant of
/// length `ch`.
fn bn_affine(
    eg: &EG,
    params: &[Id],
    eps: f64,
    b: Option<Id>,
    ch: usize,
) -> Option<(Vec<f64>, Vec<f32>)> {
    let get = |id: Id| -> Option<Vec<f64>> {
        Some(f32s(konst(eg, id)?)?.into_iter().map(f64::from).collect())
    };
    let [s, bias, mean, var] = params else {
        return None;
    };
    let (s, bias, mean, var) = (get(*s)?, get(*bias)?, get(*mean)?, get(*var)?);
    let b = match b {
        Some(id) => get(id)?,
        None => vec![0.0; ch],
    };
    if ch == 0
        || [s.len(), bias.len(), mean.len(), var.len(), b.len()]
            .iter()
            .any(|&l| l != ch)
    {
        return None;
    }
    let k: Vec<f64> = (0..ch).map(|i| s[i] / (var[i] + eps).sqrt()).collect();
    let shift = (0..ch)
        .map(|i| ((b[i] - mean[i]) * k[i] + bias[i]) as f32)
        .collect();
    Some((k, shift))
}

fn bn_gemm(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    let eps = bn_params(eg, n)?;
    find(eg, n.children[0], |m, o| {
        let (trans_b, has_c) = match o {
            Op::Linalg(LinalgOp::Gemm(g)) => {
                let c = m.children.get(2).copied().filter(|&c| !is_absent(eg, c));
                if g.trans_a || g.alpha != 1.0 || (c.is_some() && g.beta != 1.0) {
                    return None;
                }
                (g.trans_b, c.is_some())
            }
            Op::Linalg(LinalgOp::MatMul(_)) => (false, false),
            _ => return None,
        };
        // Both operands 2-D, B a constant f32 matrix, C (if any) a constant f32 row.
        (static_dims(eg, m.children[0])?.len() == 2).then_some(())?;
        let w = konst(eg, *m.children.get(1)?)?;
        (is_f32(w) && dims(w)?.len() == 2).then_some(())?;
        let mut ids = vec![m.children[0], m.children[1]];
        if has_c {
            let c = konst(eg, m.children[2])?;
            let cd = dims(c)?;
            (is_f32(c) && (cd.len() == 1 || (cd.len() == 2 && cd[0] == 1))).then_some(())?;
            ids.push(m.children[2]);
        }
        ids.extend_from_slice(&n.children[1..]);
        Some(Match {
            ids,
            nums: vec![eps, if trans_b { 1.0 } else { 0.0 }],
            ..Match::default()
        })
    })
}

fn apply_bn_gemm(eg: &mut EG, m: &Match) -> Option<Id> {
    let (eps, trans_b) = (*m.nums.first()?, *m.nums.get(1)? == 1.0);
    let (x, wid) = (m.ids[0], m.ids[1]);
    let (c, params) = if m.ids.len() == 7 {
        (Some(m.ids[2]), &m.ids[3..])
    } else {
        (None, &m.ids[2..])
    };
    let w = konst(eg, wid)?;
    let wd = dims(w)?;
    let n = *wd.get(if trans_b { 0 } else { 1 })? as usize;
    let (k, shift) = bn_affine(eg, params, eps, c, n)?;
    let nw = if trans_b {
        scale_rows_f32(w, &k)?
    } else {
        scale_cols_f32(w, &k)?
    };
    let wc = add_const(eg, nw);
    let cc = add_const(eg, Constant::from_f32s(&[n as u64], &shift));
    let gemm = Gemm {
        trans_b,
        ..Gemm::default()
    };
    Some(add_op(eg, gemm, vec![x, wc, cc]))
}

fn bn_conv(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    let eps = bn_params(eg, n)?;
    find(eg, n.children[0], |m, o| {
        let conv_like = matches!(o, Op::Conv(ConvOp::Conv(_)))
            || matches!(o, Op::Fused(FusedOp::FusedConv(f)) if f.epilogue.steps().iter().all(|s| *s == EpiStep::Bias));
        if !conv_like || m.children.len() < 2 {
            return None;
        }
        let w = konst(eg, m.children[1])?;
        is_f32(w).then_some(())?;
        let bias = m.children.get(2).copied();
        if let Some(b) = bias.filter(|&b| !is_absent(eg, b)) {
            is_f32(konst(eg, b)?).then_some(())?;
        }
        let mut ids = vec![m.children[0], m.children[1]];
        ids.extend(bias);
        ids.extend_from_slice(&n.children[1..]);
        Some(Match {
            ids,
            ops: vec![op_index(m)?],
            nums: vec![eps],
            ..Match::default()
        })
    })
}

fn apply_bn_conv(eg: &mut EG, m: &Match) -> Option<Id> {
    let eps = *m.nums.first()?;
    let (x, wid) = (m.ids[0], m.ids[1]);
    let (bias, params) = if m.ids.len() == 7 {
        (Some(m.ids[2]).filter(|&b| !is_absent(eg, b)), &m.ids[3..])
    } else {
        (None, &m.ids[2..])
    };
    let w = konst(eg, wid)?;
    let mch = *dims(w)?.first()? as usize;
    let (k, nb) = bn_affine(eg, params, eps, bias, mch)?;
    let nw = scale_rows_f32(w, &k)?;
    let conv = match eg.analysis.ops.get(*m.ops.first()?).op.clone() {
        Op::Fused(FusedOp::FusedConv(f)) => f.with_epilogue(Epilogue(vec![EpiStep::Bias])).into(),
        o => o,
    };
    let wc = add_const(eg, nw);
    let bc = add_const(eg, Constant::from_f32s(&[mch as u64], &nb));
    Some(add_op(eg, conv, vec![x, wc, bc]))
}
