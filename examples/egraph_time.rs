//! Dev tool: time the e-graph stage on real models, with input shapes bound from each model's
//! `test_data_set_0` (as `tests/schedule_snapshots.rs` binds them).
//!
//! `cargo run --release --example egraph_time -- REPS MODEL_DIR...` prints, per model, one line:
//! the model name, the e-graph phase's time of every repetition (ms, `egraph::Stats::time`: import
//! into the e-graph to verified graph) and a hash of the printed IR after the e-graph (to check that
//! two builds produce the same graph).
use std::hash::{Hash, Hasher};
use std::path::Path;

use carve::ir::{Shape, Type};
use carve::optimize::InterpEval;
use carve::passes::egraph;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let reps: usize = args
        .first()
        .ok_or("usage: egraph_time REPS MODEL_DIR...")?
        .parse()?;
    for dir in &args[1..] {
        let dir = Path::new(dir);
        let m = carve::load(dir.join("model.onnx"))?;
        let mut g = m.graph.clone();
        let set = dir.join("test_data_set_0");
        for (k, v) in g.inputs.clone().into_iter().enumerate() {
            let x = carve::data::read_pb(&set.join(format!("input_{k}.pb")), g.ty(v))?;
            let dims: Vec<u64> = x
                .as_tensor()
                .map(|t| t.shape.iter().map(|&d| d as u64).collect())
                .unwrap_or_default();
            if let Type::Tensor(t) = &mut g.values[v.index()].ty {
                t.shape = Some(Shape::known(&dims));
            }
        }
        g.reinfer()?;
        let g = carve::optimize::canonicalize_only(&g)?;
        let opts = egraph::Options::default();
        let mut times = Vec::with_capacity(reps);
        let mut hash = 0;
        for _ in 0..reps {
            let (out, s) = egraph::optimize(&g, &opts, Some(&InterpEval))?;
            times.push(format!("{:.2}", s.time.as_secs_f64() * 1e3));
            let mut h = std::collections::hash_map::DefaultHasher::new();
            carve::ir::text::print(&out).hash(&mut h);
            hash = h.finish();
        }
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        println!("{name} {hash:016x} {}", times.join(" "));
    }
    Ok(())
}
