//! Golden snapshots of the kernel schedule (`carve_codegen::Schedule` text) after the standard
//! optimizer pipeline, for the real models that compile natively and for small graphs stated as IR
//! text. The target is fixed (baseline x86_64) so the snapshots do not depend on the machine; each
//! schedule is built twice and must print identically.

mod common;

use std::path::Path;

use carve::codegen::Target;
use carve::ir::{Graph, Shape, Type};
use carve::pipeline::{Pipeline, PipelineReport, Stage};

fn target() -> Target {
    Target::parse("x86_64-unknown-linux-gnu", None).expect("baseline x86_64 target")
}

/// Optimizes `g` with the pipeline every compile path uses, prepares it and prints its schedule
/// (twice, compared).
fn schedule_text(g: &Graph) -> String {
    let pipeline = Pipeline::new(target());
    let text = |g: &Graph| {
        let mut report = PipelineReport::default();
        let og = pipeline
            .optimize(g, Stage::Egraph, &mut report)
            .expect("optimizes");
        pipeline.schedule_text(&og, &mut report).expect("schedule")
    };
    let a = text(g);
    assert_eq!(a, text(g), "the schedule text differs between two builds");
    a
}

/// The model in `../shared/models/<name>` with its inputs bound to the shapes of
/// `test_data_set_0`.
fn model(name: &str) -> Graph {
    let dir = common::shared_dir().join("models").join(name);
    let m = carve::load(dir.join("model.onnx")).expect("model loads");
    let mut g = m.graph.clone();
    let set = dir.join("test_data_set_0");
    for (k, v) in g.inputs.clone().into_iter().enumerate() {
        let x = carve::data::read_pb(&set.join(format!("input_{k}.pb")), g.ty(v))
            .expect("test input reads");
        let dims: Vec<u64> = x
            .as_tensor()
            .map(|t| t.shape.iter().map(|&d| d as u64).collect())
            .unwrap_or_default();
        if let Type::Tensor(t) = &mut g.values[v.index()].ty {
            t.shape = Some(Shape::known(&dims));
        }
    }
    g.reinfer().expect("shapes bind");
    g
}

fn ir(src: &str) -> Graph {
    carve::ir::text::parse(src).unwrap_or_else(|e| panic!("test graph does not parse: {e}"))
}

fn have(name: &str) -> bool {
    Path::new(&common::shared_dir().join("models").join(name)).exists()
}

macro_rules! model_snapshot {
    ($test:ident, $name:literal) => {
        #[test]
        fn $test() {
            assert!(have($name), "model {} is missing", $name);
            insta::assert_snapshot!(schedule_text(&model($name)));
        }
    };
}

model_snapshot!(magika_standard_v3_3, "magika_standard_v3_3");
model_snapshot!(ppocr_mobile_v2_cls, "ppocr_mobile_v2_cls");
model_snapshot!(ppocrv4_det, "ppocrv4_det");
model_snapshot!(silero_vad_openvino_16k, "silero_vad_openvino_16k");
model_snapshot!(minilm_l6_v2, "minilm_l6_v2");
model_snapshot!(sk_digits_mlp, "sk_digits_mlp");

#[test]
fn conv_then_relu_is_one_gemm_kernel_with_a_relu_epilogue() {
    let g = ir("graph @conv_relu(%x: f32[1,3,8,8]) -> (f32[1,4,8,8]) {
  %0 = const f32[4,3,3,3] [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, 0, 0, 0]
  %1 = const f32[4] [0.5, -0.5, 1, 0]
  %2 = conv(%x, %0, %1) {pads=[1, 1, 1, 1]} : f32[1,4,8,8]
  %3 = relu(%2) : f32[1,4,8,8]
  return %3
}
");
    insta::assert_snapshot!(schedule_text(&g));
}

#[test]
fn matmul_plus_bias_is_one_gemm_kernel_with_a_bias_epilogue() {
    let g = ir("graph @matmul_bias(%x: f32[4,8]) -> (f32[4,3]) {
  %0 = const f32[8,3] [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 2, 2, 2, 0, 0, 0, -1, -1, -1]
  %1 = const f32[3] [0.25, 0.5, 0.75]
  %2 = matmul(%x, %0) : f32[4,3]
  %3 = add(%2, %1) : f32[4,3]
  return %3
}
");
    insta::assert_snapshot!(schedule_text(&g));
}

#[test]
fn an_elementwise_chain_fuses_into_one_kernel() {
    let g = ir("graph @chain(%x: f32[2,64], %y: f32[2,64]) -> (f32[2,64]) {
  %0 = add(%x, %y) : f32[2,64]
  %1 = mul(%0, %x) : f32[2,64]
  %2 = sigmoid(%1) : f32[2,64]
  %3 = sub(%2, %y) : f32[2,64]
  return %3
}
");
    let text = schedule_text(&g);
    assert!(text.contains("chain ["), "no fused chain in:\n{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn a_reshape_between_kernels_is_a_view() {
    let g = ir("graph @view(%x: f32[2,3,4]) -> (f32[6,4]) {
  %0 = exp(%x) : f32[2,3,4]
  %1 = const i64[2] [6, 4]
  %2 = reshape(%0, %1) : f32[6,4]
  %3 = relu(%2) : f32[6,4]
  return %3
}
");
    let text = schedule_text(&g);
    assert!(text.contains(": view"), "no view step in:\n{text}");
    insta::assert_snapshot!(text);
}
