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
