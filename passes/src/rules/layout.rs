//! Layout rules: transpose∘transpose composes (and cancels to nothing when the composition is the
//! identity), identity transposes vanish, chains of views (`reshape`, `flatten`, `squeeze`,
//! `unsqueeze`) collapse into one `reshape` to the final static shape (or nothing when it is the input's
//! shape), and transposes sink below unary elementwise ops so that transposes separated by activations
//! meet and cancel.

use carve_ir::ops::elementwise::ElementwiseOp as E;
use carve_ir::ops::movement::{MovementOp as M, Reshape, Transpose};
use carve_ir::{Constant, Op};
use egg::Id;

use super::algebra::to_operand;
use super::util::{add_const, add_op, find, op, op_index, same_type, static_dims, tensor};
use super::{Match, Rule};
use crate::egraph::analysis::EG;
use crate::egraph::lang::ENode;

/// The rules of this family.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "transpose-transpose",
            search: transpose_transpose,
            apply: apply_transpose,
        },
        Rule {
            name: "transpose-identity",
            search: transpose_identity,
            apply: to_operand,
        },
        Rule {
            name: "view-chain",
            search: view_chain,
            apply: apply_reshape,
        },
        Rule {
            name: "view-noop",
            search: view_noop,
            apply: to_operand,
        },
        Rule {
            name: "sink-transpose",
            search: sink_transpose,
            apply: apply_sink,
        },
    ]
}

/// The permutation of a transpose over a value of rank `rank`.
fn perm(t: &Transpose, rank: usize) -> Option<Vec<usize>> {
    let p: Vec<usize> = match &t.perm {
        Some(p) => p
            .iter()
            .map(|&x| usize::try_from(x).ok())
            .collect::<Option<_>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    for &x in &p {
        if x >= rank || std::mem::replace(&mut seen[x], true) {
            return None;
        }
    }
    (p.len() == rank).then_some(p)
}

fn transpose_of<'e>(eg: &'e EG, n: &ENode) -> Option<(&'e Transpose, Id, usize)> {
    let Op::Movement(M::Transpose(t)) = op(eg, n)? else {
        return None;
    };
    let x = *n.children.first()?;
    let rank = tensor(eg, x)?.rank()?;
    Some((t, x, rank))
}

fn transpose_transpose(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    let (outer, inner_id, rank) = transpose_of(eg, n)?;
    let p2 = perm(outer, rank)?;
    find(eg, inner_id, |m, _| {
        let (inner, x, r) = transpose_of(eg, m)?;
        let p1 = perm(inner, r)?;
        // out[i] = mid[p2[i]] = x[p1[p2[i]]].
        let composed: Vec<f64> = p2.iter().map(|&i| p1[i] as f64).collect();
        Some(Match {
            ids: vec![x],
            nums: composed,
            ..Match::default()
        })
    })
}

fn apply_transpose(eg: &mut EG, m: &Match) -> Option<Id> {
    let x = *m.ids.first()?;
    if m.nums.iter().enumerate().all(|(i, &p)| p as usize == i) {
        return Some(x);
    }
    let perm = m.nums.iter().map(|&p| p as i64).collect();
    Some(add_op(eg, Transpose { perm: Some(perm) }, vec![x]))
}

fn transpose_identity(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    let (t, x, rank) = transpose_of(eg, n)?;
    let p = perm(t, rank)?;
    p.iter().enumerate().all(|(i, &v)| i == v).then_some(())?;
    Some(Match {
        ids: vec![x],
        ..Match::default()
    })
}

/// The data operand of a view op.
fn view_input(eg: &EG, n: &ENode) -> Option<Id> {
    match op(eg, n)? {
        Op::Movement(M::Reshape(_) | M::Flatten(_) | M::Squeeze(_) | M::Unsqueeze(_)) => {
            n.children.first().copied()
        }
        _ => None,
    }
}

fn view_chain(eg: &EG, class: Id, n: &ENode) -> Option<Match> {
    let inner = view_input(eg, n)?;
    let out = static_dims(eg, class)?;
    find(eg, inner, |m, _| {
        let x = view_input(eg, m)?;
        Some(Match {
            ids: vec![x],
            nums: out.iter().map(|&d| d as f64).collect(),
            ..Match::default()
        })
    })
}

fn apply_reshape(eg: &mut EG, m: &Match) -> Option<Id> {
    let x = *m.ids.first()?;
    let d: Vec<i64> = m.nums.iter().map(|&v| v as i64).collect();
    let shape = add_const(eg, Constant::from_i64s(&[d.len() as u64], &d));
    Some(add_op(eg, Reshape { allowzero: true }, vec![x, shape]))
}

fn view_noop(eg: &EG, class: Id, n: &ENode) -> Option<Match> {
    let x = view_input(eg, n)?;
    static_dims(eg, class)?;
    same_type(eg, class, x).then_some(Match {
        ids: vec![x],
        ..Match::default()
    })
}

/// One-input elementwise ops a transpose commutes with.
fn is_pointwise_unary(o: &Op) -> bool {
    matches!(
        o,
        Op::Elementwise(
            E::Relu(_)
                | E::Neg(_)
                | E::Abs(_)
                | E::Sigmoid(_)
                | E::Tanh(_)
                | E::Exp(_)
                | E::Erf(_)
                | E::Sqrt(_)
                | E::LeakyRelu(_)
                | E::HardSigmoid(_)
                | E::HardSwish(_)
                | E::Gelu(_)
                | E::Elu(_)
                | E::Softplus(_)
        )
    )
}

fn sink_transpose(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    let o = op(eg, n)?;
    if !is_pointwise_unary(o) || n.children.len() != 1 {
        return None;
    }
    let unary = op_index(n)?;
    find(eg, n.children[0], |m, _| {
        let (_, x, _) = transpose_of(eg, m)?;
        Some(Match {
            ids: vec![x],
            ops: vec![unary, op_index(m)?],
            ..Match::default()
        })
    })
}

fn apply_sink(eg: &mut EG, m: &Match) -> Option<Id> {
    let x = *m.ids.first()?;
    let (u, t) = (*m.ops.first()?, *m.ops.get(1)?);
    let uop = eg.analysis.ops.get(u).op.clone();
    let top = eg.analysis.ops.get(t).op.clone();
    let inner = add_op(eg, uop, vec![x]);
    Some(add_op(eg, top, vec![inner]))
}
