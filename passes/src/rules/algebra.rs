//! Algebraic identities: `x + 0`, `x − 0`, `x · 1`, `x / 1`, `−(−x)`, `identity(x)` and casts to the
//! type a value already has all equal `x` — when the result has exactly `x`'s type (an identity that
//! broadcasts `x` to a larger shape is not one).

use carve_ir::Op;
use carve_ir::ops::elementwise::ElementwiseOp as E;
use carve_ir::ops::movement::MovementOp as M;
use egg::Id;

use super::util::{const_fits, op, same_type, splat, tensor};
use super::{Match, Rule};
use crate::egraph::analysis::EG;
use crate::egraph::lang::ENode;

/// The rules of this family.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "add-zero",
            search: add_zero,
            apply: to_operand,
        },
        Rule {
            name: "sub-zero",
            search: sub_zero,
            apply: to_operand,
        },
        Rule {
            name: "mul-one",
            search: mul_one,
            apply: to_operand,
        },
        Rule {
            name: "div-one",
            search: div_one,
            apply: to_operand,
        },
        Rule {
            name: "neg-neg",
            search: neg_neg,
            apply: to_operand,
        },
        Rule {
            name: "identity",
            search: identity,
            apply: to_operand,
        },
        Rule {
            name: "cast-noop",
            search: cast_noop,
            apply: to_operand,
        },
    ]
}

/// The rewrite is the matched operand itself.
pub fn to_operand(_: &mut EG, m: &Match) -> Option<Id> {
    m.ids.first().copied()
}

fn operand(id: Id) -> Option<Match> {
    Some(Match {
        ids: vec![id],
        ..Match::default()
    })
}

/// `x` of a binary op whose other operand is the constant `unit`, if the result has `x`'s type.
fn binary_unit(eg: &EG, class: Id, n: &ENode, unit: f64, commutes: bool) -> Option<Match> {
    let [a, b] = n.children[..] else { return None };
    let keeps = |x: Id, c: Id| same_type(eg, class, x) || const_fits(eg, c, x);
    if splat(eg, b) == Some(unit) && keeps(a, b) {
        return operand(a);
    }
    if commutes && splat(eg, a) == Some(unit) && keeps(b, a) {
        return operand(b);
    }
    None
}

fn add_zero(eg: &EG, class: Id, n: &ENode) -> Option<Match> {
    matches!(op(eg, n)?, Op::Elementwise(E::Add(_))).then_some(())?;
    binary_unit(eg, class, n, 0.0, true)
}

fn sub_zero(eg: &EG, class: Id, n: &ENode) -> Option<Match> {
    matches!(op(eg, n)?, Op::Elementwise(E::Sub(_))).then_some(())?;
    binary_unit(eg, class, n, 0.0, false)
}

fn mul_one(eg: &EG, class: Id, n: &ENode) -> Option<Match> {
    matches!(op(eg, n)?, Op::Elementwise(E::Mul(_))).then_some(())?;
    binary_unit(eg, class, n, 1.0, true)
}

fn div_one(eg: &EG, class: Id, n: &ENode) -> Option<Match> {
    matches!(op(eg, n)?, Op::Elementwise(E::Div(_))).then_some(())?;
    binary_unit(eg, class, n, 1.0, false)
}

fn neg_neg(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    matches!(op(eg, n)?, Op::Elementwise(E::Neg(_))).then_some(())?;
    let inner = *n.children.first()?;
    super::util::find(eg, inner, |m, o| match o {
        Op::Elementwise(E::Neg(_)) => m.children.first().copied(),
        _ => None,
    })
    .and_then(operand)
}

fn identity(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    matches!(op(eg, n)?, Op::Movement(M::Identity(_))).then_some(())?;
    operand(*n.children.first()?)
}

fn cast_noop(eg: &EG, _: Id, n: &ENode) -> Option<Match> {
    let Op::Elementwise(E::Cast(c)) = op(eg, n)? else {
        return None;
    };
    let x = *n.children.first()?;
    let t = tensor(eg, x)?;
    (t.dtype == c.to && t.quant.is_none()).then_some(())?;
    operand(x)
}
