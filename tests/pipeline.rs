//! The one pipeline: `carve ir --after egraph` prints the graph that `carve compile` compiles (same target
//! parameters), and every stage reports itself in `--stats-json`.

mod common;

use std::path::Path;
use std::process::Command;

use carve::pipeline::{Pipeline, PipelineReport, Stage};

const TRIPLE: &str = "x86_64-unknown-linux-gnu";
const CPU: &str = "+avx,+avx2,+fma";

fn carve(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_carve"))
        .args(args)
        .output()
        .expect("the carve binary runs");
    assert!(
        out.status.success(),
        "carve {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("the stats file was written");
    serde_json::from_str(&text).expect("the stats file is JSON")
}

fn stage<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["stages"]
        .as_array()
        .expect("a list of stages")
        .iter()
        .find(|s| s["stage"] == name)
        .unwrap_or_else(|| panic!("no '{name}' stage in {report}"))
}

/// (model folder, `--input-shape` binding)
const CASES: &[(&str, &str)] = &[
    ("sk_digits_mlp", "X=1,64"),
    ("ppocr_mobile_v2_cls", "x=1,3,48,192"),
];

#[test]
fn ir_after_egraph_is_the_graph_compile_optimizes() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    for (name, shape) in CASES {
        let model = common::shared_dir()
            .join("models")
            .join(name)
            .join("model.onnx");
        let model_s = model.to_str().expect("utf-8 path");
        let ir_json = tmp.path().join(format!("{name}-ir.json"));
        let cc_json = tmp.path().join(format!("{name}-compile.json"));
        let obj = tmp.path().join(format!("{name}.o"));
        let printed = carve(&[
            "ir",
            model_s,
            "--after",
            "egraph",
            "--target",
            TRIPLE,
            "--cpu",
            CPU,
            "--input-shape",
            shape,
            "--stats-json",
            ir_json.to_str().expect("utf-8 path"),
        ]);
        carve(&[
            "compile",
            model_s,
            "--target",
            TRIPLE,
            "--cpu",
            CPU,
            "--input-shape",
            shape,
            "-o",
            obj.to_str().expect("utf-8 path"),
            "--stats-json",
            cc_json.to_str().expect("utf-8 path"),
        ]);

        // The library's pipeline for the same target prints the same IR as the CLI.
        let target = carve::build::resolve_target(Some(TRIPLE), Some(CPU)).expect("a target");
        let pipeline = Pipeline::new(target);
        let mut report = PipelineReport::default();
        let mut m = pipeline.import(&model, &mut report).expect("imports");
        let shapes: Vec<carve::shapes::InputShape> = vec![shape.parse().expect("a shape")];
        carve::shapes::bind_input_shapes(&mut m.graph, &shapes).expect("binds");
        let g = pipeline
            .optimize(&m.graph, Stage::Egraph, &mut report)
            .expect("optimizes");
        assert_eq!(
            String::from_utf8_lossy(&printed.stdout),
            carve::ir::text::print(&g),
            "{name}: `carve ir --after egraph` differs from the library pipeline"
        );

        // `carve compile` ran the same e-graph on the same graph: same ops after it.
        let (ir_r, cc_r) = (json(&ir_json), json(&cc_json));
        for key in ["nodes_before", "nodes_after", "ops_after", "outcome"] {
            assert_eq!(
                stage(&ir_r, "egraph")[key],
                stage(&cc_r, "egraph")[key],
                "{name}: e-graph stage '{key}' differs between `carve ir` and `carve compile`"
            );
        }
        assert_eq!(stage(&cc_r, "egraph")["outcome"], "ran", "{name}");

        // Every stage of a compile reports itself, in pipeline order.
        let names: Vec<&str> = cc_r["stages"]
            .as_array()
            .expect("stages")
            .iter()
            .map(|s| s["stage"].as_str().expect("a stage name"))
            .collect();
        assert_eq!(
            names,
            ["import", "canonicalize", "egraph", "schedule", "emit"],
            "{name}"
        );
        assert!(
            stage(&cc_r, "emit")["nodes_after"]
                .as_u64()
                .is_some_and(|n| n > 0),
            "{name}: emit reports the nodes it compiled"
        );
    }
}

#[test]
fn no_egraph_is_a_reported_skip_not_a_silent_one() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let model = common::shared_dir()
        .join("models")
        .join("sk_digits_mlp")
        .join("model.onnx");
    let out = tmp.path().join("m.o");
    let stats = tmp.path().join("s.json");
    let printed = carve(&[
        "compile",
        model.to_str().expect("utf-8 path"),
        "--input-shape",
        "X=1,64",
        "--no-egraph",
        "-o",
        out.to_str().expect("utf-8 path"),
        "--stats",
        "--stats-json",
        stats.to_str().expect("utf-8 path"),
    ]);
    let r = json(&stats);
    assert_eq!(stage(&r, "egraph")["outcome"], "skipped");
    assert!(
        stage(&r, "egraph")["skip_reason"]
            .as_str()
            .is_some_and(|s| s.contains("no-egraph") || s.contains("disabled")),
        "the skip names its reason: {r}"
    );
    let stderr = String::from_utf8_lossy(&printed.stderr);
    assert!(
        stderr.contains("egraph") && stderr.to_lowercase().contains("skipped: turned off"),
        "--stats prints the skip: {stderr}"
    );
}

/// A graph with a data-dependent shape (NonZero) in the middle.
/// A model holding graph `g` (as if imported).
fn model_of(g: &carve::ir::Graph) -> carve::Model {
    carve::Model {
        warnings: Vec::new(),
        graph: g.clone(),
        ir_version: 8,
        opsets: Default::default(),
        producer: String::new(),
        metadata: Vec::new(),
    }
}

const SEGMENTED: &str = "graph @seg(%x: f32[2,6]) -> (f32[2,6], f32[?,2], f32[]) {
  %0 = relu(%x) : f32[2,6]
  %1 = non_zero(%0) : i64[2,?]
  %2 = cast(%1) {to=f32} : f32[2,?]
  %3 = transpose(%2) {perm=[1, 0]} : f32[?,2]
  %4 = mul(%3, %3) : f32[?,2]
  %5 = reduce(%0) {kind=sum, keepdims=false} : f32[]
  return %0, %4, %5
}
";

/// Native code no longer gives up on a whole graph for one data-dependent shape: it splits into a
/// native head, the boundary node (interpreter) and a tail compiled per shape it is first seen with;
/// results equal the interpreter's for inputs that give the tail different shapes.
#[test]
fn a_data_dependent_shape_splits_the_graph_into_native_segments() {
    use carve::compiler::Engine;
    use carve_runtime::interp::{self, Value};
    use carve_runtime::{Data, Tensor};
    let g = carve::ir::text::parse(SEGMENTED).unwrap_or_else(|e| panic!("{e}"));
    let m = model_of(&g);
    let compiled = carve::Compiler::new()
        .threads(2)
        .compile(&m)
        .expect("compiles");
    let inst = compiled.instance(&[vec![2, 6]]).expect("instance");
    let Engine::Segmented(s) = &inst.engine else {
        panic!("expected segments, got {}", inst.fallback_count());
    };
    assert_eq!(
        (s.node.as_str(), s.op.as_str()),
        ("%1", "non_zero"),
        "{}",
        s.describe()
    );
    assert_eq!(
        s.reason,
        "its result %1 is i64[2,?] (not a static tensor after binding the inputs)"
    );
    let head = s.head_report().expect("a native head");
    assert!(head.fallbacks.is_empty(), "{head}");
    // Three inputs with 5, 0 and 12 positive elements: three tail shapes, each compiled once.
    let inputs: Vec<Vec<f32>> = vec![
        vec![
            1.0, -1.0, 2.0, 0.0, 3.0, -2.0, 0.5, 0.0, -1.0, 4.0, 0.0, -3.0,
        ],
        vec![-1.0; 12],
        (1..=12).map(|i| i as f32).collect(),
    ];
    for (round, v) in inputs.iter().chain(inputs.iter()).enumerate() {
        let x = Value::Tensor(Tensor::new(vec![2, 6], Data::F32(v.clone())).expect("tensor"));
        let want = interp::run(&g, vec![x.clone()]).expect("interpreter");
        let got = inst.run(vec![x]).expect("segments run");
        assert_eq!(got, want, "round {round}");
    }
    let d = s.describe();
    assert_eq!(d.matches("shapes [").count(), 3, "{d}");
    assert!(d.contains("native, 0 fallback, compiled in"), "{d}");
}

/// A model with a data-dependent shape in the middle: `y = transpose(non_zero(relu(x)))`, `x: f32[2,6]`.
fn non_zero_model() -> Vec<u8> {
    use carve::frontend::proto::tensor_shape_proto::{Dimension, dimension};
    use carve::frontend::proto::{
        GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
        ValueInfoProto, type_proto,
    };
    use prost::Message;
    let info = |name: &str, elem_type: i32, dims: &[i64]| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(if d < 0 {
                                dimension::Value::DimParam("n".into())
                            } else {
                                dimension::Value::DimValue(d)
                            }),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let node = |op: &str, name: &str, input: &str, output: &str| NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: vec![input.into()],
        output: vec![output.into()],
        ..Default::default()
    };
    let graph = GraphProto {
        name: "nz".into(),
        node: vec![
            node("Relu", "relu", "x", "r"),
            node("NonZero", "nz", "r", "idx"),
            node("Transpose", "tr", "idx", "y"),
        ],
        input: vec![info("x", 1, &[2, 6])],
        output: vec![info("y", 7, &[-1, 2])],
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

/// `carve inspect --target host` shows the segments and why the boundary exists (a NonZero whose
/// output shape is only known when it has run).
#[test]
fn inspect_shows_the_segments_and_their_boundary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("nz.onnx");
    std::fs::write(&model, non_zero_model()).expect("model written");
    let model = model.to_string_lossy();
    let out = carve(&["inspect", &model, "--target", "host"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "boundary: node 'nz' (non_zero) runs in the interpreter: its result 'idx' is i64[2,?]",
        "(not a static tensor after binding the inputs)",
        "segment 2: 1 nodes, compiled when their input shapes are first seen (cached per shape binding, at most 8)",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

/// Reduction axes given as a graph input: the generic instance has the reduction as a fallback node
/// that needs input `axes` at compile time, so the model specializes on its value — one native
/// instance per distinct value, equal to the interpreter, a repeated value reusing its instance; a
/// keepdims=false reduction (whose output shape depends on the axes: a segment boundary) too.
#[test]
fn inputs_a_node_needs_as_constants_are_specialized_by_value() {
    use carve_runtime::interp::{self, Value};
    use carve_runtime::{Data, Tensor};
    let src = "graph @axes(%x: f32[3,4,5], %axes: i64[1]) -> (f32[?,?,?], f32[?,?]) {
  %0 = reduce(%x, %axes) {kind=sum, keepdims=true} : f32[?,?,?]
  %1 = reduce(%x, %axes) {kind=max, keepdims=false} : f32[?,?]
  return %0, %1
}
";
    let g = carve::ir::text::parse(src).unwrap_or_else(|e| panic!("{e}"));
    let m = model_of(&g);
    let compiled = carve::Compiler::new()
        .threads(2)
        .compile(&m)
        .expect("compiles");
    let generic = compiled
        .instance(&[vec![3, 4, 5], vec![1]])
        .expect("instance");
    assert!(generic.fallback_count() > 0);
    assert_eq!(generic.by_value, vec![1]);
    let x: Vec<f32> = (0..60).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
    let x = Value::Tensor(Tensor::new(vec![3, 4, 5], Data::F32(x)).expect("tensor"));
    let mut seen = Vec::new();
    for axis in [0i64, 2, -2, 0, 2] {
        let a = Value::Tensor(Tensor::new(vec![1], Data::I64(vec![axis])).expect("tensor"));
        let ins = vec![x.clone(), a];
        let inst = compiled.instance_for(&ins).expect("specialized");
        assert_eq!(inst.fallback_count(), 0, "axis {axis}: {}", inst.report);
        let want = interp::run(&g, ins.clone()).expect("interpreter");
        assert_eq!(inst.run(ins.clone()).expect("runs"), want, "axis {axis}");
        assert_eq!(
            compiled.run_ordered(ins).expect("runs"),
            want,
            "axis {axis}"
        );
        let ptr = std::sync::Arc::as_ptr(&inst) as usize;
        if !seen.contains(&(axis, ptr)) {
            seen.push((axis, ptr));
        }
    }
    // Three distinct values, three instances; a repeated value reused its instance.
    assert_eq!(seen.len(), 3, "{seen:?}");
}

/// `attention` and the losses are decomposed in the canonicalize stage (which reports how many, and
/// why one was kept), and the decomposed graph runs natively with zero fallback and matches the
/// interpreter's kernels on the original graph — including a query row that the bool mask and the
/// causal mask together hide completely (its output is 0) and an ignored target.
#[test]
fn attention_and_losses_decompose_into_native_ops_and_are_reported() {
    use carve_runtime::interp::{self, Value};
    use carve_runtime::{Data, Tensor};
    let src = "graph @attn(%q: f32[1,4,3,8], %k: f32[1,2,5,8], %v: f32[1,2,5,8], %m: bool[3,5], %x: f32[3,5], %t: i64[3]) -> (f32[1,4,3,8], f32[1,4,3,5], f32[]) {
  %0, %1, %2, %3 = attention(%q, %k, %v, %m) {is_causal=true, qk_output=probs, softcap=2.0} : f32[1,4,3,8], f32[1,2,5,8], f32[1,2,5,8], f32[1,4,3,5]
  %4 = softmax_cross_entropy_loss(%x, %t) {ignore_index=2} : f32[]
  return %0, %3, %4
}
";
    let g = carve::ir::text::parse(src).unwrap_or_else(|e| panic!("{e}"));
    let target = carve::codegen::Target::host().expect("host target");
    let mut report = PipelineReport::default();
    let out = Pipeline::new(target)
        .optimize(&g, Stage::Canonicalize, &mut report)
        .expect("optimizes");
    assert!(
        out.nodes.iter().all(|n| !matches!(
            n.op.name(),
            "attention" | "softmax_cross_entropy_loss" | "nll_loss"
        )),
        "{}",
        carve::ir::text::print(&out)
    );
    let details = &report
        .stage(Stage::Canonicalize)
        .expect("canonicalize ran")
        .details;
    for want in [
        "1 attention decomposed into matmul/softmax, 0 kept",
        "1 losses decomposed into log_softmax/gather/reduce, 0 kept",
    ] {
        assert!(details.iter().any(|d| d == want), "{want}: {details:?}");
    }

    let f = |dims: Vec<usize>, seed: usize| {
        let n: usize = dims.iter().product();
        let v = (0..n)
            .map(|i| ((i * 7 + seed) as f32 * 0.37).sin())
            .collect();
        Value::Tensor(Tensor::new(dims, Data::F32(v)).expect("tensor"))
    };
    // Row 0 may only see key 0 (causal), which the mask hides: the whole row is masked.
    let mask: Vec<bool> = (0..15).map(|i| i != 0 && i % 4 != 3).collect();
    let ins = vec![
        f(vec![1, 4, 3, 8], 1),
        f(vec![1, 2, 5, 8], 2),
        f(vec![1, 2, 5, 8], 3),
        Value::Tensor(Tensor::new(vec![3, 5], Data::Bool(mask)).expect("tensor")),
        f(vec![3, 5], 4),
        Value::Tensor(Tensor::new(vec![3], Data::I64(vec![4, 2, 0])).expect("tensor")),
    ];
    let want = interp::run(&g, ins.clone()).expect("interpreter");
    let compiled = carve::Compiler::new()
        .threads(1)
        .compile(&model_of(&g))
        .expect("compiles");
    let inst = compiled.instance_for(&ins).expect("instance");
    assert_eq!(inst.fallback_count(), 0, "{}", inst.report);
    let got = inst.run(ins).expect("runs");
    for (k, (w, o)) in want.iter().zip(&got).enumerate() {
        let (Some(w), Some(o)) = (w.as_tensor(), o.as_tensor()) else {
            panic!("output {k} is not a tensor");
        };
        let (Data::F32(w), Data::F32(o)) = (&w.data, &o.data) else {
            panic!("output {k} is not f32");
        };
        assert_eq!(w.len(), o.len());
        for (a, b) in w.iter().zip(o) {
            assert!(
                (a - b).abs() <= 1e-5 + 1e-4 * a.abs(),
                "output {k}: {a} vs {b}"
            );
        }
    }
    // The masked row: probabilities and output 0.
    let Some(Data::F32(y)) = got[0].as_tensor().map(|t| &t.data) else {
        panic!("Y is f32");
    };
    assert!(y[..8].iter().all(|&x| x == 0.0), "{:?}", &y[..8]);
}

/// A form the decomposition cannot handle stays `attention`, and the report says why.
#[test]
fn a_kept_attention_is_reported_with_its_reason() {
    let src =
        "graph @attn(%q: f16[1,1,2,4], %k: f16[1,1,3,4], %v: f16[1,1,3,4]) -> (f16[1,1,2,4]) {
  %0 = attention(%q, %k, %v) : f16[1,1,2,4]
  return %0
}
";
    let g = carve::ir::text::parse(src).unwrap_or_else(|e| panic!("{e}"));
    let target = carve::codegen::Target::host().expect("host target");
    let mut report = PipelineReport::default();
    let out = Pipeline::new(target)
        .optimize(&g, Stage::Canonicalize, &mut report)
        .expect("optimizes");
    assert!(out.nodes.iter().any(|n| n.op.name() == "attention"));
    let details = &report
        .stage(Stage::Canonicalize)
        .expect("canonicalize ran")
        .details;
    let want = "0 attention decomposed into matmul/softmax, 1 kept (f16 inputs (native matmul and softmax are f32 only): 1)";
    assert!(details.iter().any(|d| d == want), "{details:?}");
}
