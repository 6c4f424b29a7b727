//! The bundled example model and input are exactly what `cargo run --example make_example_model`
//! generates, and the model imports, verifies and runs on the input.

#[path = "../examples/support/tiny_cnn.rs"]
mod tiny_cnn;

#[test]
fn bundled_example_model_is_reproducible_from_its_generator() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models/tiny_cnn.onnx");
    let committed = std::fs::read(&path).expect("examples/models/tiny_cnn.onnx is committed");
    assert!(
        committed == tiny_cnn::tiny_cnn_bytes(),
        "regenerate it with `cargo run --example make_example_model`"
    );
    let input =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models/tiny_cnn_input.npy");
    let committed = std::fs::read(&input).expect("examples/models/tiny_cnn_input.npy is committed");
    assert!(
        committed == tiny_cnn::tiny_cnn_input_npy(),
        "regenerate it with `cargo run --example make_example_model`"
    );
}

#[test]
fn bundled_example_model_imports_and_verifies() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models/tiny_cnn.onnx");
    let m = carve::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        m.graph
            .nodes
            .iter()
            .filter(|n| !matches!(n.op, carve::ir::Op::Constant(_)))
            .count(),
        9
    );
}

#[test]
fn bundled_example_model_runs_on_its_example_input() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models");
    let m = carve::load(dir.join("tiny_cnn.onnx")).unwrap_or_else(|e| panic!("{e}"));
    let x = carve::npy::read_npy(&dir.join("tiny_cnn_input.npy")).unwrap_or_else(|e| panic!("{e}"));
    let inputs = carve::inputs::order_and_check(
        &m.graph,
        vec![("image".into(), carve_runtime::interp::Value::Tensor(x))],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = carve_runtime::interp::run(&m.graph, inputs).unwrap_or_else(|e| panic!("{e}"));
    let carve_runtime::interp::Value::Tensor(p) = &out[0] else {
        panic!("not a tensor")
    };
    assert_eq!(p.shape, vec![1, 4]);
    let carve_runtime::Data::F32(v) = &p.data else {
        panic!("not f32")
    };
    assert!(
        (v.iter().sum::<f32>() - 1.0).abs() < 1e-5,
        "softmax output sums to 1: {v:?}"
    );
}

/// `carve bench` on the example model: the report names load and compile apart, and `--tsv` prints the
/// eight documented columns (model, compile ms, median, p10, p90, arena bytes, fallback nodes, load ms).
#[test]
fn bench_reports_load_compile_and_latency() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models");
    let input = format!("image={}", dir.join("tiny_cnn_input.npy").display());
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_carve"))
            .arg("bench")
            .arg(dir.join("tiny_cnn.onnx"))
            .args([
                "--runs",
                "3",
                "--warmup",
                "1",
                "--threads",
                "1",
                "-i",
                &input,
            ])
            .args(extra)
            .output()
            .expect("runs carve");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let text = run(&[]);
    for key in [
        "load:",
        "compile:",
        "latency:  median",
        "engine:   native",
        "0 fallback",
    ] {
        assert!(text.contains(key), "no {key:?} in:\n{text}");
    }
    let tsv = run(&["--tsv"]);
    let cols: Vec<&str> = tsv.trim_end().split('\t').collect();
    assert_eq!(cols.len(), 8, "{tsv}");
    for (i, c) in cols.iter().enumerate().skip(1) {
        let v: f64 = c
            .parse()
            .unwrap_or_else(|_| panic!("column {i} is not a number: {tsv}"));
        assert!(v >= 0.0, "{tsv}");
    }
    assert_eq!(cols[6], "0", "fallback nodes: {tsv}");
}
