//! Writes the bundled example model `examples/models/tiny_cnn.onnx` (see `support/tiny_cnn.rs`).
//!
//! Run: `cargo run --example make_example_model`

#[path = "support/tiny_cnn.rs"]
mod tiny_cnn;

fn main() -> std::io::Result<()> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/models/tiny_cnn.onnx");
    carve::output::write_atomic(&path, &tiny_cnn::tiny_cnn_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}
