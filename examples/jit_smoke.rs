//! Dev smoke test: compile a model with the JIT and compare against the interpreter on its test data.
use std::path::Path;
fn main() {
    let dir = std::env::args().nth(1).expect("model dir");
    let dir = Path::new(&dir);
    let m = carve::load(dir.join("model.onnx")).unwrap();
    let t0 = std::time::Instant::now();
    let c = carve::Compiler::new().threads(1).compile(&m).unwrap();
    println!("compile {:?}", t0.elapsed());
    let g = &m.graph;
    let mut ins = Vec::new();
    for (k, &v) in g.inputs.iter().enumerate() {
        let p = dir.join("test_data_set_0").join(format!("input_{k}.pb"));
        ins.push(carve::data::read_pb(&p, g.ty(v)).unwrap());
    }
    let shapes: Vec<Vec<usize>> = ins
        .iter()
        .map(|v| v.as_tensor().unwrap().shape.clone())
        .collect();
    let inst = c.instance(&shapes).unwrap();
    print!("{}", inst.report);
    let t0 = std::time::Instant::now();
    let out = c.run_ordered(ins.clone()).unwrap();
    println!("run {:?}", t0.elapsed());
    for (k, (&v, o)) in g.outputs.iter().zip(&out).enumerate() {
        let p = dir.join("test_data_set_0").join(format!("output_{k}.pb"));
        let e = carve::data::read_pb(&p, g.ty(v)).unwrap();
        let r = carve::compare::compare(
            &e,
            o,
            carve::compare::Tolerance {
                rtol: 1e-3,
                atol: 1e-4,
            },
        );
        println!("output {k}: {:?}", r);
    }
}
