//! Pattern recognition (layer norm, Erf and tanh GELU, hard swish from decomposed exports): snapshots and
//! differential checks.

mod egraph_support;

use carve::passes::rules::patterns;
use egraph_support::{ops, rewrite};

#[test]
fn decomposed_layer_norm_with_gamma_and_beta_becomes_one_op() {
    let (g, snap) = rewrite(
        "graph @ln(%x: f32[2,3,4]) -> (f32[2,3,4]) {
  %0 = const i64[1] [-1]
  %1 = reduce(%x, %0) {kind=mean} : f32[2,3,1]
  %2 = sub(%x, %1) : f32[2,3,4]
  %3 = const f32[] [2.0]
  %4 = pow(%2, %3) : f32[2,3,4]
  %5 = reduce(%4, %0) {kind=mean} : f32[2,3,1]
  %6 = const f32[] [1e-5]
  %7 = add(%5, %6) : f32[2,3,1]
  %8 = sqrt(%7) : f32[2,3,1]
  %9 = div(%2, %8) : f32[2,3,4]
  %10 = const f32[4] [1.5, 0.5, -1.0, 2.0]
  %11 = mul(%9, %10) : f32[2,3,4]
  %12 = const f32[4] [0.1, 0.2, 0.3, -0.4]
  %13 = add(%11, %12) : f32[2,3,4]
  return %13
}
",
        &patterns::rules(),
    );
    assert_eq!(ops(&g), ["layer_norm"]);
    insta::assert_snapshot!(snap);
}

#[test]
fn erf_gelu_as_exported_by_pytorch_becomes_gelu() {
    let (g, snap) = rewrite(
        "graph @gelu(%x: f32[2,5]) -> (f32[2,5]) {
  %0 = const f32[] [1.4142135]
  %1 = div(%x, %0) : f32[2,5]
  %2 = erf(%1) : f32[2,5]
  %3 = const f32[] [1.0]
  %4 = add(%2, %3) : f32[2,5]
  %5 = mul(%x, %4) : f32[2,5]
  %6 = const f32[] [0.5]
  %7 = mul(%5, %6) : f32[2,5]
  return %7
}
",
        &patterns::rules(),
    );
    assert_eq!(ops(&g), ["gelu"]);
    insta::assert_snapshot!(snap);
}

#[test]
fn relu6_hard_swish_becomes_hard_swish() {
    let (g, snap) = rewrite(
        "graph @hswish(%x: f32[1,2,2,2]) -> (f32[1,2,2,2]) {
  %0 = const f32[] [3.0]
  %1 = add(%x, %0) : f32[1,2,2,2]
  %2 = const f32[] [0.0]
  %3 = const f32[] [6.0]
  %4 = clip(%1, %2, %3) : f32[1,2,2,2]
  %5 = mul(%x, %4) : f32[1,2,2,2]
  %6 = div(%5, %3) : f32[1,2,2,2]
  return %6
}
",
        &patterns::rules(),
    );
    assert_eq!(ops(&g), ["hard_swish"]);
    insta::assert_snapshot!(snap);
}

/// The TF / `torch.nn.GELU(approximate="tanh")` export: x³ as pow, constants on the right, with the
/// cubic coefficient `k` (0.044715 for GELU).
fn tanh_gelu_with_pow(k: &str) -> String {
    format!(
        "graph @gelut(%x: f32[2,8]) -> (f32[2,8]) {{
  %0 = const f32[] [3.0]
  %1 = pow(%x, %0) : f32[2,8]
  %2 = const f32[] [{k}]
  %3 = mul(%1, %2) : f32[2,8]
  %4 = add(%x, %3) : f32[2,8]
  %5 = const f32[] [0.7978846]
  %6 = mul(%4, %5) : f32[2,8]
  %7 = tanh(%6) : f32[2,8]
  %8 = const f32[] [1.0]
  %9 = add(%7, %8) : f32[2,8]
  %10 = mul(%x, %9) : f32[2,8]
  %11 = const f32[] [0.5]
  %12 = mul(%10, %11) : f32[2,8]
  return %12
}}
"
    )
}

#[test]
fn tanh_gelu_with_pow_becomes_approximate_gelu() {
    let (g, snap) = rewrite(&tanh_gelu_with_pow("0.044715"), &patterns::rules());
    assert_eq!(ops(&g), ["gelu"]);
    insta::assert_snapshot!(snap);
}

#[test]
fn tanh_gelu_with_a_product_cube_becomes_approximate_gelu() {
    // GPT-2 style: 0.5·x first, x·x·x as products, constants on the left.
    let (g, snap) = rewrite(
        "graph @gelut2(%x: f32[3,4]) -> (f32[3,4]) {
  %0 = const f32[] [0.5]
  %1 = mul(%0, %x) : f32[3,4]
  %2 = mul(%x, %x) : f32[3,4]
  %3 = mul(%2, %x) : f32[3,4]
  %4 = const f32[] [0.044715]
  %5 = mul(%4, %3) : f32[3,4]
  %6 = add(%5, %x) : f32[3,4]
  %7 = const f32[] [0.7978845608]
  %8 = mul(%7, %6) : f32[3,4]
  %9 = tanh(%8) : f32[3,4]
  %10 = const f32[] [1.0]
  %11 = add(%10, %9) : f32[3,4]
  %12 = mul(%1, %11) : f32[3,4]
  return %12
}
",
        &patterns::rules(),
    );
    assert_eq!(ops(&g), ["gelu"]);
    insta::assert_snapshot!(snap);
}

#[test]
fn tanh_gelu_with_a_wrong_constant_is_left_alone() {
    // 0.04 is not GELU's 0.044715: no rewrite.
    let (g, _) = rewrite(&tanh_gelu_with_pow("0.04"), &patterns::rules());
    assert!(!ops(&g).contains(&"gelu"));
}
