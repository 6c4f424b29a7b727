fn main() {
    for p in std::env::args().skip(1) {
        match carve_frontend::load(&p) {
            Ok(m) => println!("{p}: ok {} nodes", m.graph.nodes.len()),
            Err(e) => println!("{p}: {e}"),
        }
    }
}
