//! The layout rule family (transpose/reshape cancellation and sinking): snapshots and differential checks.

mod egraph_support;

use carve::passes::rules::layout;
use egraph_support::rewrite;

#[test]
fn inverse_transposes_around_an_activation_cancel() {
    let (g, snap) = rewrite(
        "graph @tt(%x: f32[2,3,4]) -> (f32[2,3,4]) {
  %0 = transpose(%x) {perm=[0, 2, 1]} : f32[2,4,3]
  %1 = relu(%0) : f32[2,4,3]
  %2 = transpose(%1) {perm=[0, 2, 1]} : f32[2,3,4]
  return %2
}
",
        &layout::rules(),
    );
    assert_eq!(g.nodes.len(), 1);
    insta::assert_snapshot!(snap);
}

#[test]
fn two_transposes_compose_into_one() {
    let (g, snap) = rewrite(
        "graph @tc(%x: f32[2,3,4]) -> (f32[4,2,3]) {
  %0 = transpose(%x) {perm=[1, 0, 2]} : f32[3,2,4]
  %1 = transpose(%0) {perm=[2, 1, 0]} : f32[4,2,3]
  return %1
}
",
        &layout::rules(),
    );
    assert_eq!(g.nodes.len(), 1);
    insta::assert_snapshot!(snap);
}

#[test]
fn view_chains_collapse_and_round_trips_vanish() {
    let (g, snap) = rewrite(
        "graph @views(%x: f32[2,3,4]) -> (f32[6,4], f32[2,3,4]) {
  %0 = const i64[2] [6, 4]
  %1 = reshape(%x, %0) : f32[6,4]
  %2 = const i64[1] [0]
  %3 = unsqueeze(%1, %2) : f32[1,6,4]
  %4 = flatten(%3) {axis=2} : f32[6,4]
  %5 = const i64[3] [2, 3, 4]
  %6 = reshape(%4, %5) : f32[2,3,4]
  %7 = sigmoid(%6) : f32[2,3,4]
  return %4, %7
}
",
        &layout::rules(),
    );
    assert!(g.nodes.len() <= 4, "{}", carve::ir::text::print(&g));
    insta::assert_snapshot!(snap);
}
