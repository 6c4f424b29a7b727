//! Dev tool: time the phases of native compilation for one model.
use std::time::Instant;
fn main() {
    let p = std::env::args().nth(1).unwrap();
    let m = carve::load(&p).unwrap();
    let mut g = m.graph.clone();
    let t = Instant::now();
    for &v in &g.inputs.clone() {
        if let carve::ir::Type::Tensor(t) = &mut g.values[v.index()].ty {
            let d: Vec<u64> = t
                .shape
                .as_ref()
                .unwrap()
                .dims()
                .iter()
                .map(|d| d.known().unwrap_or(1))
                .collect();
            let d: Vec<u64> = d.iter().map(|&x| if x == 1 { 1 } else { x }).collect();
            t.shape = Some(carve::ir::Shape::known(&d));
        }
    }
    g.reinfer().unwrap();
    println!("reinfer {:?}", t.elapsed());
    let t = Instant::now();
    let mut pg = g.clone();
    let n = carve::codegen::prepare::fold_constants(&mut pg).unwrap();
    println!("fold {:?} ({n})", t.elapsed());
    let t = Instant::now();
    let pg = carve::codegen::prepare::prepare(&pg).unwrap();
    println!("prepare {:?}", t.elapsed());
    let t = Instant::now();
    let tg = carve::codegen::Target::host().unwrap();
    let (_e, r) = carve::codegen::jit::compile_jit(pg, &tg, 1, n).unwrap();
    println!("jit {:?} kernels {}", t.elapsed(), r.kernels);
}
