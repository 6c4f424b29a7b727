//! Constant folding (canonicalization and inside the e-graph): shape computations on static shapes
//! fold to constants, constant subexpressions fold through the interpreter, dead code disappears.
//! Snapshots and differential checks.

mod egraph_support;

use carve::ir::text;
use carve::optimize::canonicalize_only;
use egraph_support::{rewrite, same_outputs};

#[test]
fn shape_arithmetic_on_static_shapes_folds_to_a_constant_reshape() {
    let src = "graph @shapes(%x: f32[2,3,4]) -> (f32[6,4]) {
  %0 = shape(%x) : i64[3]
  %1 = const i64[] [0]
  %2 = gather(%0, %1) : i64[]
  %3 = const i64[] [1]
  %4 = gather(%0, %3) : i64[]
  %5 = mul(%2, %4) : i64[]
  %6 = const i64[1] [0]
  %7 = unsqueeze(%5, %6) : i64[1]
  %8 = const i64[1] [-1]
  %9 = concat(%7, %8) : i64[2]
  %10 = reshape(%x, %9) : f32[6,4]
  %11 = const f32[] [7.0]
  %12 = exp(%11) : f32[]
  %13 = relu(%x) : f32[2,3,4]
  return %10
}
";
    let g = text::parse(src).expect("parses");
    let out = canonicalize_only(&g).expect("canonicalizes");
    same_outputs(&g, &out, 2);
    let names: Vec<&str> = out.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(names, ["const", "reshape"]);
    insta::assert_snapshot!(format!(
        "{}\n--- after canonicalize ---\n{}",
        text::print(&g),
        text::print(&out)
    ));
}

#[test]
fn constants_created_by_rewrites_fold_inside_the_egraph() {
    // Sinking the transpose below the add transposes the constant operand back; the analysis folds
    // that transpose into a new constant, and the two transposes of x cancel.
    let (g, snap) = rewrite(
        "graph @fold(%x: f32[2,3]) -> (f32[2,3]) {
  %0 = transpose(%x) {perm=[1, 0]} : f32[3,2]
  %1 = const f32[3,2] [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
  %2 = add(%0, %1) : f32[3,2]
  %3 = transpose(%2) {perm=[1, 0]} : f32[2,3]
  return %3
}
",
        &carve::passes::rules::layout::rules(),
    );
    assert!(g.nodes.iter().all(|n| n.op.name() != "transpose"));
    assert_eq!(g.nodes.iter().filter(|n| n.op.name() == "const").count(), 1);
    insta::assert_snapshot!(snap);
}

#[test]
fn gemm_with_transposed_weights_and_no_activation_is_left_alone() {
    // Nothing to fuse: rewriting would only copy the weights transposed.
    let (g, snap) = rewrite(
        "graph @keep(%x: f32[1,3]) -> (f32[1,2]) {
  %0 = const f32[2,3] [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
  %1 = gemm(%x, %0) {trans_b=true} : f32[1,2]
  return %1
}
",
        &carve::passes::rules::fusion::rules(),
    );
    assert!(g.nodes.iter().any(|n| n.op.name() == "gemm"));
    insta::assert_snapshot!(snap);
}
