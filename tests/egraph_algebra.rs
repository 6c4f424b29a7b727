//! The algebraic-identity rule family: snapshots of before/after IR and differential checks.

mod egraph_support;

use carve::passes::rules::algebra;
use egraph_support::rewrite;

#[test]
fn additive_and_multiplicative_units_disappear() {
    let (g, snap) = rewrite(
        "graph @units(%x: f32[2,3]) -> (f32[2,3]) {
  %0 = const f32[] [0]
  %1 = const f32[3] [1, 1, 1]
  %2 = add(%x, %0) : f32[2,3]
  %3 = mul(%1, %2) : f32[2,3]
  %4 = div(%3, %1) : f32[2,3]
  %5 = sub(%4, %0) : f32[2,3]
  %6 = relu(%5) : f32[2,3]
  return %6
}
",
        &algebra::rules(),
    );
    assert_eq!(g.nodes.len(), 1);
    insta::assert_snapshot!(snap);
}

#[test]
fn a_unit_that_broadcasts_is_kept() {
    let (g, snap) = rewrite(
        "graph @bcast(%x: f32[3]) -> (f32[2,3]) {
  %0 = const f32[2,3] [0, 0, 0, 0, 0, 0]
  %1 = add(%x, %0) : f32[2,3]
  return %1
}
",
        &algebra::rules(),
    );
    assert_eq!(g.nodes.len(), 2);
    insta::assert_snapshot!(snap);
}

#[test]
fn double_negation_identity_and_noop_cast_disappear() {
    let (g, snap) = rewrite(
        "graph @noops(%x: f32[4]) -> (f32[4]) {
  %0 = neg(%x) : f32[4]
  %1 = neg(%0) : f32[4]
  %2 = identity(%1) : f32[4]
  %3 = cast(%2) {to=f32} : f32[4]
  %4 = tanh(%3) : f32[4]
  return %4
}
",
        &algebra::rules(),
    );
    assert_eq!(g.nodes.len(), 1);
    insta::assert_snapshot!(snap);
}
