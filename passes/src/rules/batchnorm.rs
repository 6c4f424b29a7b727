//! Batch-norm folding: an inference-mode `batch_norm` whose parameters are constant, applied to a
//! convolution with constant weights (plain `conv` or `fused_conv` without activation), becomes the
//! convolution with rescaled weights and a new bias:
//! `k = scale / √(var + ε)`, `w'[m] = w[m] · k[m]`, `b' = (b − mean) · k + bias` (computed in f64).

use carve_ir::ops::conv::ConvOp;
use carve_ir::ops::fused::{ActKind, FusedOp};
use carve_ir::ops::norm::NormOp;
use carve_ir::{Constant, Op};
use egg::Id;

use super::util::{
    add_const, add_op, dims, f32s, find, is_absent, is_f32, konst, op, op_index, scale_rows_f32,
};
use super::{Match, Rule};
use crate::egraph::analysis::EG;
use crate::egraph::lang::ENode;

/// The rules of this family.
pub fn rules() -> Vec<Rule> {
    vec![Rule {
        name: "fold-batchnorm-into-conv",
        search: bn_conv,
        apply: apply_bn_conv,
    }]
}

fn bn_conv(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
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
    let eps = f64::from(bn.epsilon);
    find(eg, n.children[0], |m, o| {
        let conv_like = matches!(o, Op::Conv(ConvOp::Conv(_)))
            || matches!(o, Op::Fused(FusedOp::FusedConv(f)) if f.act == ActKind::None);
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
    let [s, b, mean, var] = params else {
        return None;
    };
    let get = |id: Id| -> Option<Vec<f64>> {
        Some(f32s(konst(eg, id)?)?.into_iter().map(f64::from).collect())
    };
    let (s, b, mean, var) = (get(*s)?, get(*b)?, get(*mean)?, get(*var)?);
    let w = konst(eg, wid)?;
    let wd = dims(w)?;
    let mch = *wd.first()? as usize;
    if [s.len(), b.len(), mean.len(), var.len()]
        .iter()
        .any(|&l| l != mch)
        || mch == 0
    {
        return None;
    }
    let cb = match bias {
        Some(id) => get(id)?,
        None => vec![0.0; mch],
    };
    if cb.len() != mch {
        return None;
    }
    let k: Vec<f64> = (0..mch).map(|i| s[i] / (var[i] + eps).sqrt()).collect();
    let nw = scale_rows_f32(w, &k)?;
    let nb: Vec<f32> = (0..mch)
        .map(|i| ((cb[i] - mean[i]) * k[i] + b[i]) as f32)
        .collect();
    let conv = eg.analysis.ops.get(*m.ops.first()?).op.clone();
    let wc = add_const(eg, nw);
    let bc = add_const(eg, Constant::from_f32s(&[mch as u64], &nb));
    Some(add_op(eg, conv, vec![x, wc, bc]))
}
