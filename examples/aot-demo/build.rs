//! Compiles the bundled example model ahead of time and links it into this crate (see README,
//! "Ahead-of-time compilation").

fn main() {
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/tiny_cnn.onnx");
    let built = carve::build::compile_model(model)
        .name("tiny_cnn")
        .input_shape("image=1,3,16,16")
        .build()
        .unwrap_or_else(|e| panic!("carve could not compile {model}: {e}"));
    println!(
        "cargo:rustc-env=TINY_CNN_TARGET={}",
        built.target.to_string().replace('\n', " ")
    );
}
