//! Pattern recognition of decomposed exports: the ReduceMean/Sub/Pow/Add/Sqrt/Div layer norm becomes
//! `layer_norm` (a following constant `· gamma` and `+ beta` join its scale and bias), the Erf-based
//! GELU `x · 0.5 · (1 + erf(x / √2))` (any association of the product) becomes `gelu`, the tanh
//! approximation `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))` (x³ as `pow(x, 3)` or a product)
//! becomes `gelu{approximate=tanh}`, and
//! `x · relu6(x + 3) / 6` (as `clip`) or `x · hard_sigmoid(x){alpha=1/6}` becomes `hard_swish`.

use carve_ir::ops::elementwise::{ElementwiseOp as E, Gelu, GeluApprox, HardSwish};
use carve_ir::ops::norm::{LayerNorm, NormOp};
use carve_ir::ops::reduce::{ReduceKind, ReduceOp};
use carve_ir::{Constant, DType, Op};
use egg::Id;

use super::util::{add_const, add_op, dims, f32s, find, is_absent, konst, op, splat, tensor};
use super::{Match, Rule};
use crate::egraph::analysis::EG;
use crate::egraph::lang::ENode;

/// The rules of this family.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "gelu-erf",
            search: gelu,
            apply: apply_gelu,
        },
        Rule {
            name: "gelu-tanh",
            search: gelu_tanh,
            apply: apply_gelu_tanh,
        },
        Rule {
            name: "hard-swish",
            search: hard_swish,
            apply: apply_hard_swish,
        },
        Rule {
            name: "layer-norm",
            search: layer_norm,
            apply: apply_layer_norm,
        },
        Rule {
            name: "layer-norm-scale",
            search: ln_scale,
            apply: apply_ln_affine,
        },
        Rule {
            name: "layer-norm-bias",
            search: ln_bias,
            apply: apply_ln_affine,
        },
    ]
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

fn eq(eg: &EG, a: Id, b: Id) -> bool {
    eg.find(a) == eg.find(b)
}

/// The operands of a binary elementwise op of kind `want` in class `id`.
fn binary(eg: &EG, id: Id, want: fn(&E) -> bool) -> Option<(Id, Id)> {
    find(eg, id, |m, o| match o {
        Op::Elementwise(e) if want(e) && m.children.len() == 2 => {
            Some((m.children[0], m.children[1]))
        }
        _ => None,
    })
}

fn unary(eg: &EG, id: Id, want: fn(&E) -> bool) -> Option<Id> {
    find(eg, id, |m, o| match o {
        Op::Elementwise(e) if want(e) && m.children.len() == 1 => Some(m.children[0]),
        _ => None,
    })
}

/// Splits a product tree into its constant factor and its other factors (to `depth` levels).
fn factors(eg: &EG, id: Id, depth: u32, k: &mut f64, out: &mut Vec<Id>) {
    if let Some(v) = splat(eg, id) {
        *k *= v;
        return;
    }
    if depth > 0 {
        if let Some((a, b)) = binary(eg, id, |e| matches!(e, E::Mul(_))) {
            factors(eg, a, depth - 1, k, out);
            factors(eg, b, depth - 1, k, out);
            return;
        }
        if let Some((a, b)) = binary(eg, id, |e| matches!(e, E::Div(_)))
            && let Some(v) = splat(eg, b).filter(|&v| v != 0.0)
        {
            *k /= v;
            factors(eg, a, depth - 1, k, out);
            return;
        }
    }
    out.push(id);
}

/// The argument `y` when class `e` is `1 + f(y)` (either order) with `f` a unary op `want` accepts.
fn one_plus(eg: &EG, e: Id, want: fn(&E) -> bool) -> Option<Id> {
    let (a, b) = binary(eg, e, |o| matches!(o, E::Add(_)))?;
    let arg = if splat(eg, b) == Some(1.0) {
        a
    } else if splat(eg, a) == Some(1.0) {
        b
    } else {
        return None;
    };
    unary(eg, arg, want)
}

/// The single non-constant factor of class `y` when its constant factor is `k`.
fn scaled_by(eg: &EG, y: Id, k: f64) -> Option<Id> {
    let mut got = 1.0;
    let mut rest = Vec::new();
    factors(eg, y, 1, &mut got, &mut rest);
    (rest.len() == 1 && close(got, k)).then(|| rest[0])
}

/// True when class `c` is `pow(x, n)`.
fn is_pow(eg: &EG, c: Id, x: Id, n: f64) -> bool {
    binary(eg, c, |o| matches!(o, E::Pow(_)))
        .is_some_and(|(b, e)| eq(eg, b, x) && splat(eg, e) == Some(n))
}

/// True when class `e` is `1 + erf(x/√2)` for class `x`.
fn is_one_plus_erf(eg: &EG, e: Id, x: Id) -> bool {
    one_plus(eg, e, |o| matches!(o, E::Erf(_)))
        .and_then(|y| scaled_by(eg, y, std::f64::consts::FRAC_1_SQRT_2))
        .is_some_and(|z| eq(eg, z, x))
}

/// True when class `e` is `1 + tanh(√(2/π) · (x + 0.044715 · x³))` for class `x`.
fn is_one_plus_tanh(eg: &EG, e: Id, x: Id) -> bool {
    let Some(inner) = one_plus(eg, e, |o| matches!(o, E::Tanh(_)))
        .and_then(|y| scaled_by(eg, y, (2.0 / std::f64::consts::PI).sqrt()))
    else {
        return false;
    };
    let Some((p, q)) = binary(eg, inner, |o| matches!(o, E::Add(_))) else {
        return false;
    };
    [(p, q), (q, p)].into_iter().any(|(u, t)| {
        if !eq(eg, u, x) {
            return false;
        }
        // t = 0.044715 · x³ in any association: x³ as pow(x, 3), x·x·x or x·pow(x, 2).
        let mut k = 1.0;
        let mut rest = Vec::new();
        factors(eg, t, 3, &mut k, &mut rest);
        let cube = match rest[..] {
            [c] => is_pow(eg, c, x, 3.0),
            [a, b, c] => [a, b, c].iter().all(|&r| eq(eg, r, x)),
            [a, b] => {
                (eq(eg, a, x) && is_pow(eg, b, x, 2.0)) || (eq(eg, b, x) && is_pow(eg, a, x, 2.0))
            }
            _ => false,
        };
        cube && close(k, 0.044715)
    })
}

/// `0.5 · x · g` (any association of the product) where `gate(g, x)` holds: the shape of both GELU
/// forms. Matches `x`.
fn half_x_times(eg: &EG, class: Id, n: &ENode, gate: fn(&EG, Id, Id) -> bool) -> Option<Match> {
    let o = op(eg, n)?;
    if !matches!(o, Op::Elementwise(E::Mul(_) | E::Div(_))) {
        return None;
    }
    let mut k = 1.0;
    let mut rest = Vec::new();
    factors(eg, class, 3, &mut k, &mut rest);
    if rest.len() != 2 || !close(k, 0.5) {
        return None;
    }
    [(rest[0], rest[1]), (rest[1], rest[0])]
        .into_iter()
        .find(|&(x, g)| gate(eg, g, x) && tensor(eg, x) == tensor(eg, class))
        .map(|(x, _)| Match {
            ids: vec![x],
            ..Match::default()
        })
}

fn gelu(eg: &EG, class: Id, n: &ENode) -> Option<Match> {
    half_x_times(eg, class, n, is_one_plus_erf)
}

fn gelu_tanh(eg: &EG, class: Id, n: &ENode) -> Option<Match> {
    half_x_times(eg, class, n, is_one_plus_tanh)
}

fn apply_gelu_tanh(eg: &mut EG, m: &Match) -> Option<Id> {
    let g = Gelu {
        approximate: GeluApprox::Tanh,
    };
    Some(add_op(eg, g, vec![*m.ids.first()?]))
}

fn apply_gelu(eg: &mut EG, m: &Match) -> Option<Id> {
    Some(add_op(eg, Gelu::default(), vec![*m.ids.first()?]))
}

fn hard_swish(eg: &EG, class: Id, n: &ENode) -> Option<Match> {
    let o = op(eg, n)?;
    if !matches!(o, Op::Elementwise(E::Mul(_) | E::Div(_))) {
        return None;
    }
    let mut k = 1.0;
    let mut rest = Vec::new();
    factors(eg, class, 3, &mut k, &mut rest);
    if rest.len() != 2 {
        return None;
    }
    for (x, g) in [(rest[0], rest[1]), (rest[1], rest[0])] {
        // x · clip(x + 3, 0, 6) · k with k = 1/6.
        let clip = find(eg, g, |m, o| match o {
            Op::Elementwise(E::Clip(_)) if m.children.len() == 3 => Some(m.children.clone()),
            _ => None,
        });
        if let Some(c) = clip {
            let bounds = splat(eg, c[1]) == Some(0.0) && splat(eg, c[2]) == Some(6.0);
            let shifted = binary(eg, c[0], |o| matches!(o, E::Add(_))).is_some_and(|(p, q)| {
                (eq(eg, p, x) && splat(eg, q) == Some(3.0))
                    || (eq(eg, q, x) && splat(eg, p) == Some(3.0))
            });
            if bounds && shifted && close(k, 1.0 / 6.0) && tensor(eg, x) == tensor(eg, class) {
                return Some(Match {
                    ids: vec![x],
                    ..Match::default()
                });
            }
        }
        // x · hard_sigmoid(x){alpha=1/6, beta=0.5}.
        let hs = find(eg, g, |m, o| match o {
            Op::Elementwise(E::HardSigmoid(h))
                if close(f64::from(h.alpha), 1.0 / 6.0) && close(f64::from(h.beta), 0.5) =>
            {
                m.children.first().copied()
            }
            _ => None,
        });
        if hs.is_some_and(|y| eq(eg, y, x)) && close(k, 1.0) && tensor(eg, x) == tensor(eg, class) {
            return Some(Match {
                ids: vec![x],
                ..Match::default()
            });
        }
    }
    None
}

fn apply_hard_swish(eg: &mut EG, m: &Match) -> Option<Id> {
    Some(add_op(eg, HardSwish {}, vec![*m.ids.first()?]))
}

/// `reduce{kind=mean, keepdims}(x, axes)` in class `id`: `x` and the first axis of a trailing block.
fn mean_over_tail(eg: &EG, id: Id) -> Option<(Id, usize)> {
    find(eg, id, |m, o| {
        let Op::Reduce(ReduceOp::Reduce(r)) = o else {
            return None;
        };
        if r.kind != ReduceKind::Mean || !r.keepdims || m.children.len() != 2 {
            return None;
        }
        let x = m.children[0];
        let rank = tensor(eg, x)?.rank()? as i64;
        let mut axes: Vec<i64> = konst(eg, m.children[1])?
            .to_i64s()?
            .into_iter()
            .map(|a| if a < 0 { a + rank } else { a })
            .collect();
        axes.sort_unstable();
        let first = *axes.first()?;
        let tail = axes.iter().enumerate().all(|(i, &a)| a == first + i as i64)
            && *axes.last()? == rank - 1;
        tail.then_some((x, first as usize))
    })
}

fn layer_norm(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    let Op::Elementwise(E::Div(_)) = op(eg, n)? else {
        return None;
    };
    let (d, s) = (n.children[0], n.children[1]);
    let (x, mu) = binary(eg, d, |o| matches!(o, E::Sub(_)))?;
    let (x2, axis) = mean_over_tail(eg, mu)?;
    if !eq(eg, x, x2) {
        return None;
    }
    let a = unary(eg, s, |o| matches!(o, E::Sqrt(_)))?;
    let (p, q) = binary(eg, a, |o| matches!(o, E::Add(_)))?;
    let (v, eps) = match (splat(eg, p), splat(eg, q)) {
        (_, Some(e)) => (p, e),
        (Some(e), _) => (q, e),
        _ => return None,
    };
    let (sq, axis2) = mean_over_tail(eg, v)?;
    if axis2 != axis {
        return None;
    }
    let squares = binary(eg, sq, |o| matches!(o, E::Pow(_)))
        .is_some_and(|(b, e)| eq(eg, b, d) && splat(eg, e) == Some(2.0))
        || binary(eg, sq, |o| matches!(o, E::Mul(_)))
            .is_some_and(|(b, c)| eq(eg, b, d) && eq(eg, c, d));
    let t = tensor(eg, x)?;
    if !squares || t.dtype != DType::F32 {
        return None;
    }
    let tail: Vec<u64> = t
        .dims()?
        .get(axis..)?
        .iter()
        .map(|d| d.known())
        .collect::<Option<_>>()?;
    Some(Match {
        ids: vec![x],
        nums: std::iter::once(eps)
            .chain(std::iter::once(axis as f64))
            .chain(tail.iter().map(|&d| d as f64))
            .collect(),
        ..Match::default()
    })
}

fn apply_layer_norm(eg: &mut EG, m: &Match) -> Option<Id> {
    let x = *m.ids.first()?;
    let eps = *m.nums.first()? as f32;
    let axis = *m.nums.get(1)? as i64;
    let tail: Vec<u64> = m.nums.get(2..)?.iter().map(|&d| d as u64).collect();
    let count: u64 = tail.iter().product();
    let ones = add_const(eg, Constant::from_f32s(&tail, &vec![1.0; count as usize]));
    let ln = LayerNorm {
        axis,
        epsilon: eps,
        stash_type: DType::F32,
    };
    Some(add_op(eg, ln, vec![x, ones]))
}

/// A single-output `layer_norm` in class `id`: its op index and children.
fn plain_ln(eg: &EG, id: Id) -> Option<(u32, Vec<Id>)> {
    find(eg, id, |m, o| match o {
        Op::Norm(NormOp::LayerNorm(_)) => Some((super::util::op_index(m)?, m.children.clone())),
        _ => None,
    })
}

/// `ln ∘ c` for a constant `c` of exactly the scale's shape: match with the scale/bias to combine.
fn ln_affine(eg: &EG, n: &ENode, is_mul: bool) -> Option<Match> {
    let o = op(eg, n)?;
    let want = if is_mul {
        matches!(o, Op::Elementwise(E::Mul(_)))
    } else {
        matches!(o, Op::Elementwise(E::Add(_)))
    };
    if !want || n.children.len() != 2 {
        return None;
    }
    let (p, q) = (n.children[0], n.children[1]);
    for (l, c) in [(p, q), (q, p)] {
        let Some(k) = konst(eg, c) else { continue };
        let Some((lop, ch)) = plain_ln(eg, l) else {
            continue;
        };
        let scale = konst(eg, *ch.get(1)?)?;
        if dims(k)? != dims(scale)? || f32s(k).is_none() || f32s(scale).is_none() {
            continue;
        }
        let bias = ch.get(2).copied().filter(|&b| !is_absent(eg, b));
        if let Some(b) = bias {
            let bk = konst(eg, b)?;
            if dims(bk)? != dims(scale)? || f32s(bk).is_none() {
                continue;
            }
        }
        let mut ids = vec![ch[0], ch[1], c];
        ids.extend(bias);
        return Some(Match {
            ids,
            ops: vec![lop],
            nums: vec![if is_mul { 1.0 } else { 0.0 }],
            ..Match::default()
        });
    }
    None
}

fn ln_scale(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    ln_affine(eg, n, true)
}

fn ln_bias(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    ln_affine(eg, n, false)
}

fn apply_ln_affine(eg: &mut EG, m: &Match) -> Option<Id> {
    let (x, s, c) = (m.ids[0], m.ids[1], m.ids[2]);
    let d = dims(konst(eg, s)?)?;
    let sv = f32s(konst(eg, s)?)?;
    let cv = f32s(konst(eg, c)?)?;
    let bv = match m.ids.get(3) {
        Some(&b) => f32s(konst(eg, b)?)?,
        None => vec![0.0; sv.len()],
    };
    let (ns, nb): (Vec<f32>, Vec<f32>) = if m.nums[0] == 1.0 {
        (
            sv.iter().zip(&cv).map(|(a, b)| a * b).collect(),
            bv.iter().zip(&cv).map(|(a, b)| a * b).collect(),
        )
    } else {
        (sv, bv.iter().zip(&cv).map(|(a, b)| a + b).collect())
    };
    let lop = eg.analysis.ops.get(*m.ops.first()?).op.clone();
    let sc = add_const(eg, Constant::from_f32s(&d, &ns));
    let bc = add_const(eg, Constant::from_f32s(&d, &nb));
    Some(add_op(eg, lop, vec![x, sc, bc]))
}
