//! Algebraic identities: `x + 0`, `x − 0`, `x · 1`, `x / 1`, `−(−x)`, `identity(x)` and casts to the
//! type a value already has all equal `x` — when the result has exactly `x`'s type (an identity that
//! broadcasts `x` to a larger shape is not one). All but the cast are egg patterns; the units are
//! conditions on the matched constant (`(add ?x ?c) => ?x if ?c is all zeros and x + c has x's type`).

use carve_ir::Op;
use carve_ir::ops::elementwise::ElementwiseOp as E;
use egg::{Id, Subst};

use super::pattern::var;
use super::util::{const_fits, op, same_type, splat, tensor};
use super::{Match, Rule, Rules};
use crate::egraph::analysis::EG;
use crate::egraph::lang::ENode;
use crate::rewrite;

/// The rules of this family.
pub fn rules() -> Rules {
    Rules::default()
        .pattern(rewrite!("add-zero"; "(add ?x ?c)" => "?x" if zero_keeps_x))
        .pattern(rewrite!("add-zero"; "(add ?c ?x)" => "?x" if zero_keeps_x))
        .pattern(rewrite!("sub-zero"; "(sub ?x ?c)" => "?x" if zero_keeps_x))
        .pattern(rewrite!("mul-one"; "(mul ?x ?c)" => "?x" if one_keeps_x))
        .pattern(rewrite!("mul-one"; "(mul ?c ?x)" => "?x" if one_keeps_x))
        .pattern(rewrite!("div-one"; "(div ?x ?c)" => "?x" if one_keeps_x))
        .pattern(rewrite!("neg-neg"; "(neg (neg ?x))" => "?x"))
        .pattern(rewrite!("identity"; "(identity ?x)" => "?x"))
        // The condition is on the op's attribute (`to`), which a pattern cannot name.
        .rust(Rule {
            name: "cast-noop",
            search: cast_noop,
            apply: to_operand,
        })
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

/// `?c` is the constant `unit` in every element and `x ∘ c` has exactly `?x`'s type (the unit does not
/// broadcast `x` to a larger shape).
fn unit_keeps_x(eg: &EG, class: Id, s: &Subst, unit: f64) -> bool {
    let (Some(x), Some(c)) = (var(s, "?x"), var(s, "?c")) else {
        return false;
    };
    splat(eg, c) == Some(unit) && (same_type(eg, class, x) || const_fits(eg, c, x))
}

fn zero_keeps_x(eg: &EG, class: Id, s: &Subst) -> bool {
    unit_keeps_x(eg, class, s, 0.0)
}

fn one_keeps_x(eg: &EG, class: Id, s: &Subst) -> bool {
    unit_keeps_x(eg, class, s, 1.0)
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
