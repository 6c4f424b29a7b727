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

#[test]
fn batchnorm_after_gemm_folds_into_its_weights_and_bias() {
    // trans_b: B's rows are the output columns.
    let (g, snap) = rewrite(
        "graph @bn_gemm(%x: f32[2,3]) -> (f32[2,2]) {
  %0 = const f32[2,3] [0.5, -1.0, 2.0, 0.25, -0.75, 1.5]
  %1 = const f32[2] [0.1, -0.2]
  %2 = gemm(%x, %0, %1) {trans_b=true} : f32[2,2]
  %3 = const f32[2] [1.5, 0.5]
  %4 = const f32[2] [0.25, -1.0]
  %5 = const f32[2] [0.3, -0.1]
  %6 = const f32[2] [0.9, 1.2]
  %7 = batch_norm(%2, %3, %4, %5, %6) : f32[2,2]
  return %7
}
",
        &batchnorm::rules(),
    );
    assert!(g.nodes.iter().all(|n| n.op.name() != "batch_norm"));
    insta::assert_snapshot!(snap);
}

#[test]
fn batchnorm_after_matmul_and_row_biased_gemm_fold() {
    // A 2-D matmul becomes a gemm with a bias; a gemm with a [1, N] C keeps B's columns as channels.
    let (g, snap) = rewrite(
        "graph @bn_mm(%x: f32[3,2]) -> (f32[3,3], f32[3,3]) {
  %0 = const f32[2,3] [1.0, 2.0, -1.0, 0.5, 0.25, -0.5]
  %1 = matmul(%x, %0) : f32[3,3]
  %2 = const f32[3] [2.0, 0.5, -1.0]
  %3 = const f32[3] [0.0, 1.0, 0.5]
  %4 = const f32[3] [0.5, -0.5, 0.25]
  %5 = const f32[3] [1.0, 3.0, 0.5]
  %6 = batch_norm(%1, %2, %3, %4, %5) {epsilon=0.001} : f32[3,3]
  %7 = const f32[1,3] [0.5, 0.0, -0.25]
  %8 = gemm(%x, %0, %7) : f32[3,3]
  %9 = batch_norm(%8, %2, %3, %4, %5) : f32[3,3]
  return %6, %9
}
",
        &batchnorm::rules(),
    );
    assert!(g.nodes.iter().all(|n| n.op.name() != "batch_norm"));
    assert!(g.nodes.iter().all(|n| n.op.name() != "matmul"));
    insta::assert_snapshot!(snap);
}

#[test]
fn batchnorm_after_a_scaled_gemm_is_left_alone() {
    // alpha ≠ 1 is not folded (the rule keeps to the plain product).
    let (g, _) = rewrite(
        "graph @keep(%x: f32[2,3]) -> (f32[2,2]) {
  %0 = const f32[3,2] [0.5, -1.0, 2.0, 0.25, -0.75, 1.5]
  %1 = gemm(%x, %0) {alpha=2.0} : f32[2,2]
  %2 = const f32[2] [1.5, 0.5]
  %3 = const f32[2] [0.25, -1.0]
  %4 = const f32[2] [0.3, -0.1]
  %5 = const f32[2] [0.9, 1.2]
  %6 = batch_norm(%1, %2, %3, %4, %5) : f32[2,2]
  return %6
}
",
        &batchnorm::rules(),
    );
    assert!(g.nodes.iter().any(|n| n.op.name() == "batch_norm"));
}
