//! The batch-norm folding rule family: snapshots and differential checks.

mod egraph_support;

use carve::passes::rules::batchnorm;
use egraph_support::rewrite;

#[test]
fn batchnorm_after_conv_folds_into_its_weights_and_bias() {
    let (g, snap) = rewrite(
        "graph @bn(%x: f32[1,2,4,4]) -> (f32[1,3,4,4]) {
  %0 = const f32[3,2,1,1] [0.5, -1.0, 2.0, 0.25, -0.75, 1.5]
  %1 = const f32[3] [0.1, -0.2, 0.3]
  %2 = conv(%x, %0, %1) : f32[1,3,4,4]
  %3 = const f32[3] [1.5, 0.5, -2.0]
  %4 = const f32[3] [0.25, 0.0, -1.0]
  %5 = const f32[3] [0.3, -0.1, 0.2]
  %6 = const f32[3] [0.9, 1.2, 0.4]
  %7 = batch_norm(%2, %3, %4, %5, %6) : f32[1,3,4,4]
  return %7
}
",
        &batchnorm::rules(),
    );
    assert_eq!(g.nodes.len(), 3, "{}", carve::ir::text::print(&g));
    insta::assert_snapshot!(snap);
}

#[test]
fn batchnorm_after_a_biasless_conv_gets_a_bias() {
    let (g, snap) = rewrite(
        "graph @bn0(%x: f32[1,1,3,3]) -> (f32[1,2,3,3]) {
  %0 = const f32[2,1,2,2] [1.0, 2.0, -1.0, 0.5, 0.25, -0.5, 1.0, 1.0]
  %1 = conv(%x, %0) {pads=[0, 0, 1, 1]} : f32[1,2,3,3]
  %2 = const f32[2] [2.0, 0.5]
  %3 = const f32[2] [0.0, 1.0]
  %4 = const f32[2] [0.5, -0.5]
  %5 = const f32[2] [1.0, 3.0]
  %6 = batch_norm(%1, %2, %3, %4, %5) {epsilon=0.001} : f32[1,2,3,3]
  return %6
}
",
        &batchnorm::rules(),
    );
    assert!(g.nodes.iter().all(|n| n.op.name() != "batch_norm"));
    insta::assert_snapshot!(snap);
}
