//! The bundled example model is exactly what `cargo run --example make_example_model` generates, and it
//! imports and verifies.

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
