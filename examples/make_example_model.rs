//! Writes the bundled example model `examples/models/tiny_cnn.onnx` and its example input
//! `tiny_cnn_input.npy` (see `support/tiny_cnn.rs`).
//!
//! Run: `cargo run --example make_example_model`

#[path = "support/tiny_cnn.rs"]
mod tiny_cnn;

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models");
    let files = [
        ("tiny_cnn.onnx", tiny_cnn::tiny_cnn_bytes()),
        ("tiny_cnn_input.npy", tiny_cnn::tiny_cnn_input_npy()),
    ];
    for (name, bytes) in files {
        let path = dir.join(name);
        carve::output::write_atomic(&path, &bytes)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
