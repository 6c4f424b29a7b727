//! Quantized ONNX forms as the ordinary ops over quantized types (`carve_ir::ops::quant::typing`):
//! - ONNX node-suite cases of QLinearConv, QLinearMatMul, ConvInteger and MatMulInteger, with every
//!   input frozen into an initializer (so scales and zero points are constants), import as `conv` /
//!   `matmul` (+ `quantize_linear`) over quantized types and give exactly the reference outputs; with
//!   run-time scales (the suite as shipped, or f16 scales) they keep their own ops;
//! - the two forms of one quantized conv / matmul, written as IR text, agree bit for bit in the
//!   interpreter on many inputs, and the JIT runs the typed form to the same bits: the matmul natively
//!   (the integer product and requantization kernels), the conv with a named fallback (no integer
//!   conv kernel yet);
//! - QGemm whose `a` comes from a QuantizeLinear imports its product as the ordinary matmul.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use carve::Compiler;
use carve::data::read_pb;
use carve::frontend::proto::TensorProto;
use carve::frontend::tensor::TensorLoader;
use carve::frontend::{Model, decode_file, import_model};
use carve::ir::{Graph, text};
use carve::runtime::interp::{Value, run};
use carve::runtime::{Data, Tensor};
use prost::Message;

/// The ops of `g` other than constants, by name, in node order.
fn ops(g: &Graph) -> Vec<&'static str> {
    g.nodes
        .iter()
        .map(|n| n.op.name())
        .filter(|&n| n != "const")
        .collect()
}

/// Imports node-suite case `case` with every input except those named in `keep` moved into the
/// initializers (values from `test_data_set_0`); returns the graph, the kept inputs' values and the
/// expected outputs.
fn frozen(case: &str, keep: &[&str]) -> (Graph, Vec<Value>, Vec<Value>) {
    let dir = common::shared_dir().join("onnx-node-tests").join(case);
    let set = dir.join("test_data_set_0");
    let mut model = decode_file(dir.join("model.onnx")).expect("decodes");
    let graph = model.graph.as_mut().expect("has a graph");
    let mut kept = Vec::new();
    for (i, input) in std::mem::take(&mut graph.input).into_iter().enumerate() {
        let bytes = std::fs::read(set.join(format!("input_{i}.pb"))).expect("input data");
        if keep.contains(&input.name.as_str()) {
            kept.push((i, input.clone()));
            graph.input.push(input);
        } else {
            let mut t = TensorProto::decode(bytes.as_slice()).expect("tensor proto");
            t.name = input.name.clone();
            graph.initializer.push(t);
        }
    }
    let m = import_model(&model, &TensorLoader::in_memory()).expect("imports");
    let g = m.graph;
    carve::ir::verify::verify(&g).expect("verifies");
    let inputs = kept
        .iter()
        .zip(&g.inputs)
        .map(|((i, _), &v)| read_pb(&set.join(format!("input_{i}.pb")), g.ty(v)).expect("input"))
        .collect();
    let expected = g
        .outputs
        .iter()
        .enumerate()
        .map(|(k, &v)| read_pb(&set.join(format!("output_{k}.pb")), g.ty(v)).expect("output"))
        .collect();
    (g, inputs, expected)
}

fn tensors(v: &[Value]) -> Vec<&Tensor> {
    v.iter().map(|v| v.as_tensor().expect("a tensor")).collect()
}

#[test]
fn frozen_qlinear_and_integer_cases_import_as_conv_and_matmul_over_quantized_types() {
    let cases: &[(&str, &str)] = &[
        ("test_qlinearconv", "conv"),
        ("test_convinteger_with_padding", "conv"),
        ("test_convinteger_without_padding", "conv"),
        ("test_matmulinteger", "matmul"),
        ("test_qlinearmatmul_2D_int8_float32", "matmul"),
        ("test_qlinearmatmul_2D_uint8_float32", "matmul"),
        ("test_qlinearmatmul_3D_int8_float32", "matmul"),
        ("test_qlinearmatmul_3D_uint8_float32", "matmul"),
    ];
    let old = [
        "qlinear_conv",
        "conv_integer",
        "qlinear_matmul",
        "matmul_integer",
    ];
    for &(case, op) in cases {
        let (g, inputs, expected) = frozen(case, &[]);
        let names = ops(&g);
        assert!(names.contains(&op), "{case}: no {op} in {names:?}");
        assert!(
            !names.iter().any(|n| old.contains(n)),
            "{case}: kept an ONNX-form op: {names:?}"
        );
        let printed = text::print(&g);
        assert!(
            printed.contains(" q("),
            "{case}: no quantized type:\n{printed}"
        );
        let got = run(&g, inputs).expect("runs");
        assert_eq!(tensors(&got), tensors(&expected), "{case}");
    }
}

#[test]
fn run_time_scales_keep_the_onnx_form_op() {
    // As shipped, every parameter is a graph input.
    let (g, ..) = frozen(
        "test_qlinearconv",
        &[
            "x",
            "x_scale",
            "x_zero_point",
            "w",
            "w_scale",
            "w_zero_point",
            "y_scale",
            "y_zero_point",
        ],
    );
    assert_eq!(ops(&g), ["qlinear_conv"]);
    // Constant parameters but an activation without a quantized type: nothing can carry x's
    // parameters, so the ONNX form stays (and still gives the reference output).
    let (g, inputs, expected) = frozen("test_qlinearmatmul_2D_uint8_float32", &["a"]);
    assert_eq!(ops(&g), ["qlinear_matmul"]);
    assert_eq!(tensors(&run(&g, inputs).unwrap()), tensors(&expected));
    // f16 scales: the reference forms the multiplier in f16, which a type's f32 scale cannot state.
    let (g, ..) = frozen("test_qlinearmatmul_2D_uint8_float16", &[]);
    assert_eq!(ops(&g), ["qlinear_matmul"]);
}

/// Deterministic pseudo-random bytes.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u8
        })
        .collect()
}

fn list<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

/// A QLinearConv written both ways: the ONNX-form op with constant parameters, and `conv` over
/// quantized types + `quantize_linear`. Per-channel weight scales and zero points, a bias, stride and
/// padding.
fn conv_pair(seed: u64) -> (String, String) {
    let w = bytes(3 * 2 * 3 * 3, seed)
        .iter()
        .map(|&b| b as i8)
        .collect::<Vec<_>>();
    let sw = [0.013f32, 0.0071, 0.021];
    let zw = [0i8, 3, -2];
    let bias = [-700i32, 12, 4000];
    let (sx, zx, sy, zy) = (0.037f32, 121u8, 0.09f32, 7u8);
    let onnx = format!(
        "graph @c(%x: u8[1,2,6,5]) -> (u8[1,3,3,3] q(scale=[{sy:?}], zp=[{zy}])) {{
  %sx = const f32[] [{sx:?}]
  %zx = const u8[] [{zx}]
  %w = const i8[3,2,3,3] [{w}]
  %sw = const f32[3] [{sw}]
  %zw = const i8[3] [{zw}]
  %sy = const f32[] [{sy:?}]
  %zy = const u8[] [{zy}]
  %b = const i32[3] [{b}]
  %y = qlinear_conv(%x, %sx, %zx, %w, %sw, %zw, %sy, %zy, %b) {{pads=[1,1,1,1], strides=[2,2]}} : u8[1,3,3,3] q(scale=[{sy:?}], zp=[{zy}])
  return %y
}}",
        w = list(&w),
        sw = list(&sw.map(|s| format!("{s:?}"))),
        zw = list(&zw),
        b = list(&bias),
    );
    let q = |s: &[f32], z: &[i64]| {
        format!(
            "q({}scale=[{}], zp=[{}])",
            if s.len() > 1 { "axis=0, " } else { "" },
            list(&s.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>()),
            list(z)
        )
    };
    let typed = format!(
        "graph @c(%x: u8[1,2,6,5] {qx}) -> (u8[1,3,3,3] q(scale=[{sy:?}], zp=[{zy}])) {{
  %w = const i8[3,2,3,3] {qw} [{w}]
  %b = const i32[3] [{b}]
  %sy = const f32[] [{sy:?}]
  %zy = const u8[] [{zy}]
  %acc = conv(%x, %w, %b) {{pads=[1,1,1,1], strides=[2,2]}} : i32[1,3,3,3] {qacc}
  %y = quantize_linear(%acc, %sy, %zy) : u8[1,3,3,3] q(scale=[{sy:?}], zp=[{zy}])
  return %y
}}",
        qx = q(&[sx], &[i64::from(zx)]),
        qw = q(&sw, &zw.map(i64::from)),
        qacc = q(&sw.map(|s| sx * s), &[0, 0, 0]).replace("axis=0", "axis=1"),
        w = list(&w),
        b = list(&bias),
    );
    (onnx, typed)
}

/// A QLinearMatMul both ways: `a` per tensor, `b` per column.
fn matmul_pair(seed: u64) -> (String, String) {
    let b = bytes(4 * 3, seed);
    let sb = [0.011f32, 0.052, 0.0033];
    let zb = [128u8, 100, 140];
    let (sa, za, sy, zy) = (0.0213f32, 9u8, 0.07f32, 250u8);
    let onnx = format!(
        "graph @m(%a: u8[2,5,4]) -> (u8[2,5,3] q(scale=[{sy:?}], zp=[{zy}])) {{
  %sa = const f32[] [{sa:?}]
  %za = const u8[] [{za}]
  %b = const u8[4,3] [{b}]
  %sb = const f32[3] [{sb}]
  %zb = const u8[3] [{zb}]
  %sy = const f32[] [{sy:?}]
  %zy = const u8[] [{zy}]
  %y = qlinear_matmul(%a, %sa, %za, %b, %sb, %zb, %sy, %zy) : u8[2,5,3] q(scale=[{sy:?}], zp=[{zy}])
  return %y
}}",
        b = list(&b),
        sb = list(&sb.map(|s| format!("{s:?}"))),
        zb = list(&zb),
    );
    let typed = format!(
        "graph @m(%a: u8[2,5,4] q(scale=[{sa:?}], zp=[{za}])) -> (u8[2,5,3] q(scale=[{sy:?}], zp=[{zy}])) {{
  %b = const u8[4,3] q(axis=1, scale=[{sb}], zp=[{zb}]) [{b}]
  %sy = const f32[] [{sy:?}]
  %zy = const u8[] [{zy}]
  %acc = matmul(%a, %b) : i32[2,5,3] q(axis=2, scale=[{sacc}], zp=[0,0,0])
  %y = quantize_linear(%acc, %sy, %zy) : u8[2,5,3] q(scale=[{sy:?}], zp=[{zy}])
  return %y
}}",
        b = list(&b),
        sb = list(&sb.map(|s| format!("{s:?}"))),
        zb = list(&zb),
        sacc = list(&sb.map(|s| format!("{:?}", sa * s))),
    );
    (onnx, typed)
}

fn u8_input(g: &Graph, seed: u64) -> Value {
    let t = g.ty(g.inputs[0]).as_tensor().expect("tensor input");
    let dims: Vec<usize> = t
        .dims()
        .expect("known rank")
        .iter()
        .map(|d| d.known().expect("known dim") as usize)
        .collect();
    let n = dims.iter().product();
    Value::Tensor(Tensor::new(dims, Data::U8(bytes(n, seed))).expect("tensor"))
}

fn model(g: Graph) -> Model {
    Model {
        warnings: Vec::new(),
        graph: g,
        ir_version: 8,
        opsets: BTreeMap::new(),
        producer: String::new(),
        metadata: Vec::new(),
    }
}

#[test]
fn both_forms_of_a_quantized_conv_and_matmul_agree_bit_for_bit() {
    for seed in 0..16 {
        for (onnx, typed) in [conv_pair(seed), matmul_pair(seed)] {
            let a = text::parse(&onnx).unwrap_or_else(|e| panic!("{e}\n{onnx}"));
            let b = text::parse(&typed).unwrap_or_else(|e| panic!("{e}\n{typed}"));
            carve::ir::verify::verify(&b).expect("typed form verifies");
            let x = u8_input(&a, seed + 100);
            let ya = run(&a, vec![x.clone()]).expect("onnx form runs");
            let yb = run(&b, vec![x]).expect("typed form runs");
            assert_eq!(tensors(&ya), tensors(&yb), "seed {seed}:\n{typed}");
        }
    }
}

#[test]
fn typed_form_prints_its_quantization_and_round_trips() {
    let (_, typed) = conv_pair(1);
    let g = text::parse(&typed).unwrap();
    let printed = text::print(&g);
    let want = [
        "  %4 = conv(%x, %0, %1) {pads=[1, 1, 1, 1], strides=[2, 2]} : i32[1,3,3,3] q(axis=1, scale=[0.00048100002,0.0002627,0.000777], zp=[0,0,0])",
        "  %5 = quantize_linear(%4, %2, %3) : u8[1,3,3,3] q(scale=[0.09], zp=[7])",
    ];
    for line in want {
        assert!(printed.lines().any(|l| l == line), "{line}\n{printed}");
    }
    assert_eq!(text::print(&text::parse(&printed).unwrap()), printed);
}

/// Compiles `g` for the host and runs it on `x`: the outputs and the fallback reasons.
fn run_jit(g: Graph, x: Value) -> (Vec<Value>, Vec<String>) {
    let compiled = Compiler::new().compile(&model(g)).expect("compiles");
    let shape = x.as_tensor().unwrap().shape.clone();
    let inst = compiled.instance(&[shape]).expect("instance");
    let reasons = inst
        .report
        .fallbacks
        .iter()
        .map(|f| f.reason.clone())
        .collect();
    (inst.run(vec![x]).expect("runs"), reasons)
}

#[test]
fn the_jit_runs_the_typed_matmul_natively_bit_for_bit() {
    for seed in 0..8 {
        let (_, typed) = matmul_pair(seed);
        let g = text::parse(&typed).unwrap();
        let x = u8_input(&g, seed + 7);
        let want = run(&g, vec![x.clone()]).unwrap();
        let (got, reasons) = run_jit(g, x);
        assert!(reasons.is_empty(), "seed {seed}: {reasons:?}");
        assert_eq!(tensors(&got), tensors(&want), "seed {seed}");
    }
}

#[test]
fn the_jit_runs_the_typed_conv_with_a_named_fallback() {
    // No integer conv kernel yet: the conv over quantized operands runs in the interpreter.
    let (_, typed) = conv_pair(3);
    let g = text::parse(&typed).unwrap();
    let x = u8_input(&g, 7);
    let want = run(&g, vec![x.clone()]).unwrap();
    let (got, reasons) = run_jit(g, x);
    assert!(
        reasons.iter().any(|r| r.contains("quantized operands")),
        "{reasons:?}"
    );
    assert_eq!(tensors(&got), tensors(&want));
}

#[test]
fn qgemm_after_a_quantize_imports_as_matmul_over_quantized_types() {
    // ORT's QOperator form: QuantizeLinear gives `a` its type, the weights are constants, so the
    // product is the ordinary matmul (tests/contrib_ops.rs runs the same case natively against ONNX
    // Runtime's output).
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/contrib/qgemm_typed_per_column/model.onnx");
    let m = carve::frontend::load(&path).expect("loads");
    let names = ops(&m.graph);
    assert!(names.contains(&"matmul"), "{names:?}");
    assert!(!names.contains(&"matmul_integer"), "{names:?}");
    let printed = text::print(&m.graph);
    assert!(printed.contains("q(axis=1,"), "{printed}");
}

#[test]
fn dynamically_quantized_model_keeps_matmul_integer() {
    // The dynamically quantized models compute their activation zero points at run time
    // (DynamicQuantizeLinear), so MatMulInteger keeps its ONNX-form op there.
    let dir = common::shared_dir().join("quantized-models/sk_digits_mlp_dyn");
    let m = carve::frontend::load(Path::new(&dir).join("model.onnx")).expect("loads");
    assert!(ops(&m.graph).contains(&"matmul_integer"));
}
