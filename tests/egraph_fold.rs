//! Constant folding (canonicalization and inside the e-graph): shape computations on static shapes
//! fold to constants, constant subexpressions fold through the interpreter, dead code disappears;
//! two-operand `einsum` decomposes into transposes and a `matmul` (the canonicalize stage's first step).
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

/// A one-node graph `einsum(a, b)` over static f32 shapes (output shape inferred by the IR).
fn einsum_graph(eq: &str, a: &[u64], b: &[u64]) -> carve::ir::Graph {
    use carve::ir::ops::linalg::Einsum;
    use carve::ir::{DType, Graph, TensorType, Type};
    let mut g = Graph::new("einsum");
    let x = g.add_input("a", Type::Tensor(TensorType::known(DType::F32, a)));
    let y = g.add_input("b", Type::Tensor(TensorType::known(DType::F32, b)));
    let op = Einsum {
        equation: eq.to_string(),
    };
    g.outputs = g
        .add_node("e", op.into(), vec![Some(x), Some(y)], vec!["out".into()])
        .unwrap_or_else(|e| panic!("{eq}: {e}"));
    g
}

#[test]
fn two_operand_einsum_decomposes_into_ops_with_native_kernels() {
    use carve::passes::decompose::decompose_einsum;
    for (eq, a, b) in [
        ("btgi,gih->btgh", &[1u64, 5, 4, 3][..], &[4u64, 3, 6][..]),
        ("ij,jk->ik", &[2, 3], &[3, 4]),
        ("bij,bjk->bik", &[2, 3, 4], &[2, 4, 5]),
        // Batch label of size 1 on one side: broadcast, as matmul's batch dims.
        ("bij,bjk->bik", &[1, 3, 4], &[3, 4, 5]),
        ("ij,kj->ik", &[2, 3], &[4, 3]),
        ("bhqd,bhkd->bhqk", &[2, 3, 4, 5], &[2, 3, 6, 5]),
        ("i,i->", &[7], &[7]),
        ("i,j->ij", &[3], &[4]),
        ("bn,anm->bam", &[2, 3], &[4, 3, 5]),
        ("ij,jk->ki", &[2, 3], &[3, 4]),
        ("abc,cd->dba", &[2, 3, 4], &[4, 5]),
        // Labels private to one operand are summed out first.
        ("ijx,jk->ik", &[2, 3, 5], &[3, 4]),
        ("i,j->", &[3], &[4]),
    ] {
        let g = einsum_graph(eq, a, b);
        let mut d = g.clone();
        let stats = decompose_einsum(&mut d).unwrap_or_else(|e| panic!("{eq}: {e}"));
        carve::ir::verify::verify(&d).unwrap_or_else(|e| panic!("{eq}: {e}"));
        assert_eq!(stats.decomposed, 1, "{eq}");
        assert!(
            d.nodes.iter().all(|n| n.op.name() != "einsum"),
            "{eq}:\n{}",
            text::print(&d)
        );
        assert_eq!(g.ty(g.outputs[0]), d.ty(d.outputs[0]), "{eq}");
        same_outputs(&g, &d, 3);
    }
}

#[test]
fn unsupported_einsum_is_kept_and_still_runs() {
    use carve::passes::decompose::decompose_einsum;
    use carve_runtime::interp::{Value, run};
    use carve_runtime::{Data, Tensor};
    // A diagonal (repeated label) and an ellipsis: left to the interpreter's einsum.
    for (eq, a, b) in [
        ("ii,i->i", &[3u64, 3][..], &[3u64][..]),
        ("...ij,jk->...ik", &[2, 2, 3], &[3, 4]),
    ] {
        let g = einsum_graph(eq, a, b);
        let mut d = g.clone();
        let stats = decompose_einsum(&mut d).expect("runs");
        assert_eq!((stats.decomposed, stats.kept), (0, 1), "{eq}");
        assert_eq!(d, g, "{eq}");
        same_outputs(&g, &d, 1);
    }
    // And the kept diagonal computes diag(a)·b.
    let g = einsum_graph("ii,i->i", &[2, 2], &[2]);
    let t = |dims: Vec<usize>, v: Vec<f32>| {
        Value::Tensor(Tensor::new(dims, Data::F32(v)).expect("tensor"))
    };
    let out = run(
        &g,
        vec![
            t(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]),
            t(vec![2], vec![10.0, 100.0]),
        ],
    )
    .expect("runs");
    assert_eq!(out, vec![t(vec![2], vec![10.0, 400.0])]);
}

#[test]
fn the_canonicalize_stage_decomposes_einsum_and_reports_it() {
    use carve::pipeline::{Pipeline, PipelineReport, Stage};
    let g = einsum_graph("btgi,gih->btgh", &[1, 5, 4, 3], &[4, 3, 6]);
    let target = carve::codegen::Target::host().expect("host target");
    let mut report = PipelineReport::default();
    let out = Pipeline::new(target)
        .optimize(&g, Stage::Canonicalize, &mut report)
        .expect("optimizes");
    let ops: Vec<&str> = out
        .nodes
        .iter()
        .map(|n| n.op.name())
        .filter(|&n| n != "const")
        .collect();
    assert_eq!(ops, ["transpose", "unsqueeze", "matmul", "transpose"]);
    same_outputs(&g, &out, 2);
    let canon = report.stage(Stage::Canonicalize).expect("canonicalize ran");
    assert!(
        canon
            .details
            .iter()
            .any(|d| d == "1 einsum decomposed into transpose/matmul, 0 kept"),
        "{:?}",
        canon.details
    );
}
