//! Development aid: imports each model given on the command line and prints `ok` or the error.
//! `cargo run --example smoke -- ../shared/onnx-node-tests/test_relu/model.onnx`

fn main() {
    for p in std::env::args().skip(1) {
        match carve::load(&p) {
            Ok(m) => println!("{p}: ok ({} nodes)", m.graph.nodes.len()),
            Err(e) => println!("{p}: {e}"),
        }
    }
}
