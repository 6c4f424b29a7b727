//! The fusion rule family (bias and activation into fused_conv / fused_matmul, matmul+add, gemm):
//! snapshots and differential checks.

mod egraph_support;

use carve::passes::rules::fusion;
use egraph_support::{ops, rewrite};

#[test]
fn conv_bias_add_and_relu_fuse_into_one_kernel() {
    let (g, snap) = rewrite(
        "graph @cbr(%x: f32[1,2,3,3]) -> (f32[1,2,3,3]) {
  %0 = const f32[2,2,1,1] [0.5, -1.0, 2.0, 0.25]
  %1 = conv(%x, %0) : f32[1,2,3,3]
  %2 = const f32[1,2,1,1] [0.1, -0.3]
  %3 = add(%1, %2) : f32[1,2,3,3]
  %4 = relu(%3) : f32[1,2,3,3]
  return %4
}
",
        &fusion::rules(),
    );
    assert_eq!(ops(&g), ["fused_conv"]);
    insta::assert_snapshot!(snap);
}

#[test]
fn conv_then_clip_fuses_with_its_bounds() {
    let (g, snap) = rewrite(
        "graph @relu6(%x: f32[1,1,3,3]) -> (f32[1,2,3,3]) {
  %0 = const f32[2,1,1,1] [3.0, -2.0]
  %1 = const f32[2] [1.0, 0.5]
  %2 = conv(%x, %0, %1) : f32[1,2,3,3]
  %3 = const f32[] [0.0]
  %4 = const f32[] [6.0]
  %5 = clip(%2, %3, %4) : f32[1,2,3,3]
  return %5
}
",
        &fusion::rules(),
    );
    assert_eq!(ops(&g), ["fused_conv"]);
    insta::assert_snapshot!(snap);
}

#[test]
fn matmul_add_and_activation_become_one_fused_matmul() {
    let (g, snap) = rewrite(
        "graph @mlp(%x: f32[2,3,4]) -> (f32[2,3,2]) {
  %0 = const f32[4,2] [0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 1.0, -0.5]
  %1 = matmul(%x, %0) : f32[2,3,2]
  %2 = const f32[2] [0.1, -0.2]
  %3 = add(%2, %1) : f32[2,3,2]
  %4 = gelu(%3) : f32[2,3,2]
  return %4
}
",
        &fusion::rules(),
    );
    assert_eq!(ops(&g), ["fused_matmul"]);
    insta::assert_snapshot!(snap);
}

#[test]
fn a_shared_conv_result_is_not_recomputed_for_fusion() {
    // The conv feeds both the relu and the output: fusing the relu would compute the conv twice.
    let (g, snap) = rewrite(
        "graph @shared(%x: f32[1,2,3,3]) -> (f32[1,2,3,3], f32[1,2,3,3]) {
  %0 = const f32[2,2,1,1] [0.5, -1.0, 2.0, 0.25]
  %1 = conv(%x, %0) : f32[1,2,3,3]
  %2 = relu(%1) : f32[1,2,3,3]
  return %1, %2
}
",
        &fusion::rules(),
    );
    assert_eq!(ops(&g).iter().filter(|o| o.contains("conv")).count(), 1);
    insta::assert_snapshot!(snap);
}

/// A gemm with transposed B keeps its gemm: `fused_matmul` would need B transposed at compile time
/// and gives the same kernels (B^T packed directly, C added in the tile, the activation its own pass).
#[test]
fn gemm_with_transposed_b_stays_a_gemm() {
    let (g, snap) = rewrite(
        "graph @gemm(%x: f32[3,4]) -> (f32[3,2]) {
  %0 = const f32[2,4] [0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 1.0, -0.5]
  %1 = const f32[2] [0.1, -0.2]
  %2 = gemm(%x, %0, %1) {trans_b=true} : f32[3,2]
  %3 = relu(%2) : f32[3,2]
  return %3
}
",
        &fusion::rules(),
    );
    assert_eq!(ops(&g), ["gemm", "relu"]);
    insta::assert_snapshot!(snap);
}

/// ResNet's skip connection: `relu(conv(x) + bias + x)` is one `fused_conv` whose epilogue is
/// `[bias, residual, relu]`; the residual is the next input after the bias.
#[test]
fn a_residual_add_joins_the_epilogue_before_the_activation() {
    let (g, snap) = rewrite(
        "graph @skip(%x: f32[1,2,3,3]) -> (f32[1,2,3,3]) {
  %0 = const f32[2,2,1,1] [0.5, -1.0, 2.0, 0.25]
  %1 = const f32[2] [0.1, -0.3]
  %2 = conv(%x, %0, %1) : f32[1,2,3,3]
  %3 = add(%x, %2) : f32[1,2,3,3]
  %4 = relu(%3) : f32[1,2,3,3]
  return %4
}
",
        &fusion::rules(),
    );
    assert_eq!(ops(&g), ["fused_conv"]);
    insta::assert_snapshot!(snap);
}

/// A transformer's residual stream: `matmul(x, w) + b + r` is one `fused_matmul` `[bias, residual]`;
/// an operand that only broadcasts to the product's shape is not a residual (it stays an `add`).
#[test]
fn a_residual_of_the_products_shape_fuses_into_matmul_a_broadcast_one_does_not() {
    let (g, snap) = rewrite(
        "graph @stream(%x: f32[3,4], %r: f32[3,2], %s: f32[1,2]) -> (f32[3,2], f32[3,2]) {
  %0 = const f32[4,2] [0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 1.0, -0.5]
  %1 = matmul(%x, %0) : f32[3,2]
  %2 = const f32[2] [0.1, -0.2]
  %3 = add(%1, %2) : f32[3,2]
  %4 = add(%3, %r) : f32[3,2]
  %5 = const f32[4,2] [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
  %6 = matmul(%x, %5) : f32[3,2]
  %7 = add(%6, %s) : f32[3,2]
  return %4, %7
}
",
        &fusion::rules(),
    );
    let ops = ops(&g);
    assert_eq!(ops.iter().filter(|o| **o == "add").count(), 1, "{ops:?}");
    insta::assert_snapshot!(snap);
}
