//! The QDQ → integer rule family: a matmul of a dequantized activation and a dequantized constant
//! weight becomes `matmul_integer` with one rescale where the target has 8-bit dot-product kernels,
//! and stays float where it has not (the cost model's choice). Snapshots and differential checks.

mod egraph_support;

use carve::passes::cost::TargetParams;
use carve::passes::egraph::Options;
use carve::passes::rules::{fusion, quant};
use egraph_support::{ops, rewrite_with};

fn options(int8_dot: bool) -> Options {
    Options {
        target: TargetParams {
            int8_dot,
            ..TargetParams::host_default()
        },
        ..Options::default()
    }
}

/// An `m × k × n` QDQ matmul: per-column weight scales (axis 1), a u8 activation with a zero point.
fn per_column(m: usize, k: usize, n: usize) -> String {
    let w: Vec<String> = (0..k * n)
        .map(|i| ((i * 37 + 11) % 255) as i32 - 127)
        .map(|v| v.to_string())
        .collect();
    let s: Vec<String> = (0..n)
        .map(|j| format!("{}", 0.001 * (j % 7 + 1) as f64))
        .collect();
    format!(
        "graph @qdq(%x: f32[{m},{k}]) -> (f32[{m},{n}]) {{
  %0 = const f32[] [0.05]
  %1 = const u8[] [128]
  %2 = quantize_linear(%x, %0, %1) : u8[{m},{k}]
  %3 = dequantize_linear(%2, %0, %1) : f32[{m},{k}]
  %4 = const i8[{k},{n}] [{}]
  %5 = const f32[{n}] [{}]
  %6 = dequantize_linear(%4, %5) : f32[{k},{n}]
  %7 = matmul(%3, %6) : f32[{m},{n}]
  return %7
}}
",
        w.join(", "),
        s.join(", ")
    )
}

#[test]
fn a_qdq_matmul_becomes_an_integer_matmul_with_one_rescale() {
    // M = 16, K = 32, N = 4.
    let (g, snap) = rewrite_with(&per_column(16, 32, 4), &quant::rules(), &options(true));
    assert_eq!(
        ops(&g),
        ["quantize_linear", "matmul_integer", "dequantize_linear"],
        "{snap}"
    );
    insta::assert_snapshot!(snap);
}

#[test]
fn without_int8_dot_kernels_the_float_form_is_kept() {
    // Enough multiply-accumulates that the product, not its operands' bytes, sets the cost: the
    // integer product (a multiply and an add per lane) loses to the float one (FMA). A small product
    // is bound by its operands' bytes, where the 8-bit form wins on any target.
    let (g, _) = rewrite_with(&per_column(64, 96, 48), &quant::rules(), &options(false));
    assert!(ops(&g).contains(&"matmul"), "{:?}", ops(&g));
    assert!(!ops(&g).contains(&"matmul_integer"), "{:?}", ops(&g));
}

#[test]
fn per_tensor_scales_zero_points_and_batched_activations() {
    let w: Vec<String> = (0..40 * 6)
        .map(|i: i32| ((i * 53 + 7) % 256).to_string())
        .collect();
    let src = format!(
        "graph @qdq3(%x: f32[2,8,40]) -> (f32[2,8,6]) {{
  %0 = const f32[] [0.02]
  %1 = const i8[] [-3]
  %2 = quantize_linear(%x, %0, %1) : i8[2,8,40]
  %3 = dequantize_linear(%2, %0, %1) : f32[2,8,40]
  %4 = const u8[40,6] [{}]
  %5 = const f32[] [0.003]
  %6 = const u8[] [100]
  %7 = dequantize_linear(%4, %5, %6) : f32[40,6]
  %8 = matmul(%3, %7) : f32[2,8,6]
  return %8
}}
",
        w.join(", ")
    );
    let (g, snap) = rewrite_with(&src, &quant::rules(), &options(true));
    assert!(ops(&g).contains(&"matmul_integer"), "{snap}");
    insta::assert_snapshot!(snap);
}

#[test]
fn blocked_or_non_constant_weights_are_left_alone() {
    // A run-time weight: no rewrite.
    let src = "graph @dyn(%x: f32[2,4], %w: i8[4,3]) -> (f32[2,3]) {
  %0 = const f32[] [0.05]
  %1 = const u8[] [128]
  %2 = quantize_linear(%x, %0, %1) : u8[2,4]
  %3 = dequantize_linear(%2, %0, %1) : f32[2,4]
  %4 = const f32[] [0.01]
  %5 = dequantize_linear(%w, %4) : f32[4,3]
  %6 = matmul(%3, %5) : f32[2,3]
  return %6
}
";
    let (g, _) = rewrite_with(src, &quant::rules(), &options(true));
    assert!(!ops(&g).contains(&"matmul_integer"), "{:?}", ops(&g));
}

/// A gemm with a transposed weight [N, K] (scales per row, axis 0) and a bias C: the weight is
/// transposed at rewrite time and C becomes an `add` after the rescale. M = 16, K = 32, N = 4.
#[test]
fn a_qdq_gemm_with_transposed_weight_and_bias_becomes_integer() {
    let w: Vec<String> = (0..4 * 32)
        .map(|i: i32| (i * 29 + 5) % 255 - 127)
        .map(|v| v.to_string())
        .collect();
    let src = format!(
        "graph @qgemm(%x: f32[16,32]) -> (f32[16,4]) {{
  %0 = const f32[] [0.05]
  %1 = const u8[] [128]
  %2 = quantize_linear(%x, %0, %1) : u8[16,32]
  %3 = dequantize_linear(%2, %0, %1) : f32[16,32]
  %4 = const i8[4,32] [{}]
  %5 = const f32[4] [0.01, 0.02, 0.005, 0.001]
  %6 = dequantize_linear(%4, %5) {{axis=0}} : f32[4,32]
  %7 = const f32[4] [0.5, -0.25, 1.0, 0.0]
  %8 = gemm(%3, %6, %7) {{trans_b=true}} : f32[16,4]
  return %8
}}
",
        w.join(", ")
    );
    let (g, snap) = rewrite_with(&src, &quant::rules(), &options(true));
    assert_eq!(
        ops(&g),
        [
            "quantize_linear",
            "matmul_integer",
            "dequantize_linear",
            "add"
        ],
        "{snap}"
    );
    insta::assert_snapshot!(snap);
}

/// The QDQ matmul of [`per_column`] followed by a bias add and `gelu` (a transformer's FFN input
/// layer): the quant and fusion families together.
fn with_bias_and_gelu(m: usize, k: usize, n: usize) -> String {
    let b: Vec<String> = (0..n)
        .map(|j| format!("{}", 0.125 * (j as f64) - 0.25))
        .collect();
    per_column(m, k, n).replace(
        "  return %7\n",
        &format!(
            "  %8 = const f32[{n}] [{}]
  %9 = add(%7, %8) : f32[{m},{n}]
  %10 = gelu(%9) : f32[{m},{n}]
  return %10
",
            b.join(", ")
        ),
    )
}

fn quant_and_fusion() -> Vec<carve::passes::rules::Rule> {
    let mut r = quant::rules();
    r.extend(fusion::rules());
    r
}

#[test]
fn a_qdq_matmul_with_bias_and_gelu_fuses_into_one_integer_fused_matmul() {
    // M = 16, K = 32, N = 4: one integer product whose epilogue rescales per column, adds the bias
    // and applies GELU before the f32 store.
    let src = with_bias_and_gelu(16, 32, 4);
    let (g, snap) = rewrite_with(&src, &quant_and_fusion(), &options(true));
    assert_eq!(ops(&g), ["quantize_linear", "fused_matmul"], "{snap}");
    assert!(
        snap.contains(r#"{epilogue=["rescale", "bias", "gelu_erf"]}"#),
        "{snap}"
    );
    insta::assert_snapshot!(snap);
}

#[test]
fn a_residual_after_the_integer_layer_joins_its_epilogue() {
    // gelu(rescale(q) + bias) + x: the residual stream of a transformer block.
    let src = with_bias_and_gelu(16, 32, 32).replace(
        "  return %10\n",
        "  %11 = add(%10, %x) : f32[16,32]\n  return %11\n",
    );
    let (g, snap) = rewrite_with(&src, &quant_and_fusion(), &options(true));
    assert_eq!(ops(&g), ["quantize_linear", "fused_matmul"], "{snap}");
    assert!(
        snap.contains(r#"{epilogue=["rescale", "bias", "gelu_erf", "residual"]}"#),
        "{snap}"
    );
}

#[test]
fn without_int8_dot_kernels_the_layer_fuses_in_float() {
    let (g, snap) = rewrite_with(
        &with_bias_and_gelu(64, 96, 48),
        &quant_and_fusion(),
        &options(false),
    );
    assert!(!ops(&g).contains(&"matmul_integer"), "{snap}");
    assert!(!snap.contains(r#""rescale""#), "{snap}");
}
