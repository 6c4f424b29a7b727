//! The layout rule family (transpose/reshape cancellation and sinking): snapshots and differential checks.

mod egraph_support;

use carve::passes::rules::layout;
use egraph_support::{ops, rewrite};

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

#[test]
fn transposes_sink_below_binary_ops_and_cancel() {
    // Both operands transposed alike; the sum's transpose then cancels the outer one.
    let (g, snap) = rewrite(
        "graph @tb(%x: f32[2,3,4], %y: f32[2,3,4]) -> (f32[2,3,4]) {
  %0 = transpose(%x) {perm=[0, 2, 1]} : f32[2,4,3]
  %1 = transpose(%y) {perm=[0, 2, 1]} : f32[2,4,3]
  %2 = add(%0, %1) : f32[2,4,3]
  %3 = transpose(%2) {perm=[0, 2, 1]} : f32[2,3,4]
  return %3
}
",
        &layout::rules(),
    );
    assert_eq!(ops(&g), ["add"]);
    insta::assert_snapshot!(snap);
}

#[test]
fn transposes_sink_past_constants_which_are_transposed_back() {
    // A broadcast constant on the right (scaled by channel) and a scalar on the left.
    let (g, snap) = rewrite(
        "graph @tc(%x: f32[2,3,4]) -> (f32[2,3,4]) {
  %0 = transpose(%x) {perm=[2, 0, 1]} : f32[4,2,3]
  %1 = const f32[4,1,1] [0.5, -1.0, 2.0, 3.0]
  %2 = mul(%0, %1) : f32[4,2,3]
  %3 = const f32[] [1.5]
  %4 = sub(%3, %2) : f32[4,2,3]
  %5 = relu(%4) : f32[4,2,3]
  %6 = transpose(%5) {perm=[1, 2, 0]} : f32[2,3,4]
  return %6
}
",
        &layout::rules(),
    );
    assert!(
        ops(&g).iter().all(|&o| o != "transpose"),
        "{}",
        carve::ir::text::print(&g)
    );
    insta::assert_snapshot!(snap);
}

#[test]
fn transposes_of_differently_shaped_operands_do_not_sink() {
    // y broadcasts against x: moving the transpose would change which dims broadcast.
    let (g, _) = rewrite(
        "graph @tn(%x: f32[2,3,4], %y: f32[2,1,4]) -> (f32[2,4,3]) {
  %0 = transpose(%x) {perm=[0, 2, 1]} : f32[2,4,3]
  %1 = transpose(%y) {perm=[0, 2, 1]} : f32[2,4,1]
  %2 = add(%0, %1) : f32[2,4,3]
  return %2
}
",
        &layout::rules(),
    );
    assert_eq!(ops(&g), ["transpose", "transpose", "add"]);
}
