//! Layout rules: transpose∘transpose composes (and cancels to nothing when the composition is the
//! identity), identity transposes vanish, chains of views (`reshape`, `flatten`, `squeeze`,
//! `unsqueeze`) collapse into one `reshape` to the final static shape (or nothing when it is the input's
//! shape), and transposes sink below one-input elementwise ops and below two-input ones (whose other
//! operand is the same transpose of a same-shaped value, or a constant, transposed back) so that
//! transposes separated by activations and arithmetic meet and cancel. Elementwise is the op's own
//! property ([`Op::is_elementwise`]).

use carve_ir::ops::movement::{MovementOp as M, Reshape, Transpose};
use carve_ir::{Constant, Op};
use egg::Id;

use super::algebra::to_operand;
use super::util::{add_const, add_op, dims, find, op, op_index, same_type, static_dims, tensor};
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
        Rule {
            name: "sink-transpose-binary",
            search: sink_transpose_binary,
            apply: apply_sink_binary,
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
    op(eg, n)?
        .is_view()
        .then(|| n.children.first().copied())
        .flatten()
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

/// `unary(transpose_p(x))` for a one-input elementwise op: the transpose moves below it.
fn sink_transpose(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    let o = op(eg, n)?;
    if !o.is_elementwise() || n.children.len() != 1 {
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

/// `bin(transpose_p(x), transpose_p(y))` with `x`, `y` of one static shape, or `bin(transpose_p(x), c)`
/// (either side) with `c` a constant of the output's rank or a single element: the transpose moves
/// below the binary op (`c` is transposed by `p⁻¹`, which folds), so it can meet and cancel another.
/// Match: `ids = [x, y or c]`, `ops = [bin]`, `nums = [kind (0: two transposes, 1: constant), side of
/// the transpose (0: left), p...]`.
fn sink_transpose_binary(eg: &EG, class: Id, n: &ENode) -> Option<Match> {
    let o = op(eg, n)?;
    if !o.is_elementwise() || n.children.len() != 2 {
        return None;
    }
    let bin = op_index(n)?;
    let rank = static_dims(eg, class)?.len();
    let transposed = |id: Id| {
        find(eg, id, |m, _| {
            let (t, x, r) = transpose_of(eg, m)?;
            Some((perm(t, r)?, x))
        })
    };
    let (a, b) = (n.children[0], n.children[1]);
    if let (Some((pa, x)), Some((pb, y))) = (transposed(a), transposed(b)) {
        let (sx, sy) = (static_dims(eg, x)?, static_dims(eg, y)?);
        if pa == pb && sx == sy {
            return Some(Match {
                ids: vec![x, y],
                ops: vec![bin],
                nums: [0.0, 0.0]
                    .into_iter()
                    .chain(pa.iter().map(|&i| i as f64))
                    .collect(),
                ..Match::default()
            });
        }
    }
    for (side, (t, other)) in [(a, b), (b, a)].into_iter().enumerate() {
        let Some((p, x)) = transposed(t) else {
            continue;
        };
        let Some(c) = super::util::konst(eg, other) else {
            continue;
        };
        let cd = dims(c)?;
        if p.len() != rank || !(cd.len() == rank || cd.iter().product::<u64>() == 1) {
            continue;
        }
        return Some(Match {
            ids: vec![x, other],
            ops: vec![bin],
            nums: [1.0, side as f64]
                .into_iter()
                .chain(p.iter().map(|&i| i as f64))
                .collect(),
            ..Match::default()
        });
    }
    None
}

fn apply_sink_binary(eg: &mut EG, m: &Match) -> Option<Id> {
    let (&kind, &side) = (m.nums.first()?, m.nums.get(1)?);
    let p: Vec<usize> = m.nums.get(2..)?.iter().map(|&x| x as usize).collect();
    let bop = eg.analysis.ops.get(*m.ops.first()?).op.clone();
    let (x, other) = (*m.ids.first()?, *m.ids.get(1)?);
    let other = if kind == 1.0 && super::util::konst(eg, other).and_then(dims)?.len() == p.len() {
        // c' = transpose_{p⁻¹}(c), so that transpose_p(c') = c.
        let mut inv = vec![0i64; p.len()];
        for (i, &pi) in p.iter().enumerate() {
            *inv.get_mut(pi)? = i as i64;
        }
        add_op(eg, Transpose { perm: Some(inv) }, vec![other])
    } else {
        other
    };
    let operands = if side == 0.0 {
        vec![x, other]
    } else {
        vec![other, x]
    };
    let inner = add_op(eg, bop, operands);
    let perm = p.iter().map(|&i| i as i64).collect();
    Some(add_op(eg, Transpose { perm: Some(perm) }, vec![inner]))
}

fn apply_sink(eg: &mut EG, m: &Match) -> Option<Id> {
    let x = *m.ids.first()?;
    let (u, t) = (*m.ops.first()?, *m.ops.get(1)?);
    let uop = eg.analysis.ops.get(u).op.clone();
    let top = eg.analysis.ops.get(t).op.clone();
    let inner = add_op(eg, uop, vec![x]);
    Some(add_op(eg, top, vec![inner]))
}
