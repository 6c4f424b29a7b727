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
