//! `loop`, `scan` and `if` compiled natively (codegen's `lower::control`): small graphs in IR text run
//! through the JIT with zero interpreter-fallback nodes and compared with the reference interpreter —
//! carried state, scan outputs, outer-scope reads, trip counts 0 and 1, a condition that ends a loop
//! early, scan axes and directions, `if` with a constant and with a data condition — at 1 and 2 threads
//! (bit-identical). Control flow whose trip count depends on data keeps running correctly (not natively).

mod common;

use carve::compare::{Tolerance, compare};
use carve::compiler::Engine;
use carve_runtime::interp::{self, Value};
use carve_runtime::{Data, Tensor};

/// Native against interpreter: a few ulps.
const TOL: Tolerance = Tolerance {
    rtol: 1e-6,
    atol: 1e-6,
};

fn model_of(g: &carve::ir::Graph) -> carve::Model {
    carve::Model {
        warnings: Vec::new(),
        graph: g.clone(),
        ir_version: 8,
        opsets: Default::default(),
        producer: String::new(),
        metadata: Vec::new(),
    }
}

fn f32s(shape: &[usize], seed: u32) -> Value {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|i| ((i as u32 * 7 + seed * 13) % 17) as f32 * 0.25 - 2.0)
        .collect();
    Value::Tensor(Tensor::new(shape.to_vec(), Data::F32(v)).expect("tensor"))
}

fn bool_scalar(b: bool) -> Value {
    Value::Tensor(Tensor::new(Vec::new(), Data::Bool(vec![b])).expect("tensor"))
}

/// Runs `src` natively at 1 and 2 threads; asserts the results match the interpreter's (within [`TOL`])
/// and are bit-identical at both thread counts and returns the 1-thread instance's fallback count and whether it is native.
fn run_both(src: &str, inputs: &[Value]) -> (usize, bool) {
    let g = carve::ir::text::parse(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let want = interp::run(&g, inputs.to_vec()).expect("interpreter");
    let shapes: Vec<Vec<usize>> = inputs
        .iter()
        .map(|v| v.as_tensor().map(|t| t.shape.clone()).unwrap_or_default())
        .collect();
    let m = model_of(&g);
    let mut first = None;
    let mut results = Vec::new();
    for threads in [1, 2] {
        let compiled = carve::Compiler::new()
            .threads(threads)
            .compile(&m)
            .expect("compiles");
        let inst = compiled.instance(&shapes).expect("instance");
        let got = inst.run(inputs.to_vec()).expect("runs");
        // Native transcendental functions (tanh, exp) may differ from the interpreter in the last bit.
        assert_eq!(got.len(), want.len());
        for (k, (w, a)) in want.iter().zip(&got).enumerate() {
            if let Err(e) = compare(w, a, TOL) {
                panic!(
                    "{threads} thread(s), output {k}: {e}\nreport:\n{}",
                    inst.report
                );
            }
        }
        results.push(got);
        if first.is_none() {
            first = Some((
                inst.fallback_count(),
                matches!(inst.engine, Engine::Native(_)),
            ));
        }
    }
    assert_eq!(results[0], results[1], "1 vs 2 threads");
    first.expect("ran")
}

fn assert_native(src: &str, inputs: &[Value]) {
    let (fallbacks, native) = run_both(src, inputs);
    assert!(native, "expected native code");
    assert_eq!(fallbacks, 0, "expected zero fallback nodes");
}

/// A loop with `TRIP` iterations: a carried running sum with an outer-scope weight (captured) scaled by
/// the iteration number, and a scan output of each step's value.
fn loop_src(trip: i64) -> String {
    format!(
        "graph @l(%x: f32[2,3], %w: f32[3]) -> (f32[2,3], f32[{trip},2,3]) {{
  %0 = const i64[] [{trip}]
  %1 = const bool[] [true]
  %2, %3 = loop(%0, %1, %x) {{body=graph @body(%i: i64[], %c: bool[], %s: f32[2,3]) captures(%w) -> (bool[], f32[2,3], f32[2,3]) {{
    %4 = cast(%i) {{to=f32}} : f32[]
    %5 = mul(%w, %4) : f32[3]
    %6 = add(%s, %5) : f32[2,3]
    %7 = tanh(%6) : f32[2,3]
    return %c, %7, %6
  }}}} : f32[2,3], f32[{trip},2,3]
  return %2, %3
}}
"
    )
}

#[test]
fn loop_with_carried_state_scan_output_and_outer_read_runs_natively() {
    assert_native(&loop_src(4), &[f32s(&[2, 3], 1), f32s(&[3], 2)]);
}

#[test]
fn loop_with_trip_count_one_runs_natively() {
    assert_native(&loop_src(1), &[f32s(&[2, 3], 3), f32s(&[3], 4)]);
}

#[test]
fn loop_with_trip_count_zero_runs_natively() {
    assert_native(&loop_src(0), &[f32s(&[2, 3], 5), f32s(&[3], 6)]);
}

/// The body's condition `i < 2` (computed from the iteration number) ends a 10-trip loop after 3
/// iterations: known at compile time, so it is native too.
#[test]
fn loop_ended_early_by_a_constant_condition_runs_natively() {
    let src = "graph @l(%x: f32[4]) -> (f32[4], f32[?,4]) {
  %0 = const i64[] [10]
  %1 = const bool[] [true]
  %2, %3 = loop(%0, %1, %x) {body=graph @body(%i: i64[], %c: bool[], %s: f32[4]) -> (bool[], f32[4], f32[4]) {
    %4 = const i64[] [2]
    %5 = less(%i, %4) : bool[]
    %6 = mul(%s, %s) : f32[4]
    %7 = sub(%6, %s) : f32[4]
    return %5, %7, %s
  }} : f32[4], f32[?,4]
  return %2, %3
}
";
    assert_native(src, &[f32s(&[4], 7)]);
}

/// A trip count read from an input's value depends on data: the loop stays in the interpreter and
/// still computes the right results.
#[test]
fn loop_with_a_data_dependent_trip_count_still_runs() {
    let src = "graph @l(%n: i64[], %x: f32[4]) -> (f32[4]) {
  %0 = const bool[] [true]
  %1 = loop(%n, %0, %x) {body=graph @body(%i: i64[], %c: bool[], %s: f32[4]) -> (bool[], f32[4]) {
    %2 = add(%s, %s) : f32[4]
    return %c, %2
  }} : f32[4]
  return %1
}
";
    let n = Value::Tensor(Tensor::new(Vec::new(), Data::I64(vec![3])).expect("tensor"));
    let (fallbacks, _) = run_both(src, &[n, f32s(&[4], 8)]);
    assert!(fallbacks > 0, "a data-dependent trip count is not compiled");
}

/// Scan over axis 1 of `xs` in reverse, with a carried sum, an outer-scope bias, and two scan outputs
/// (one stacked on axis 1, one on the last axis in reverse).
#[test]
fn scan_with_axes_directions_state_and_outer_read_runs_natively() {
    let src = "graph @s(%s0: f32[2], %xs: f32[2,5], %b: f32[2]) -> (f32[2], f32[2,5], f32[2,5]) {
  %0, %1, %2 = scan(%s0, %xs) {body=graph @body(%s: f32[2], %x: f32[2]) captures(%b) -> (f32[2], f32[2], f32[2]) {
    %3 = add(%s, %x) : f32[2]
    %4 = mul(%3, %b) : f32[2]
    %5 = sub(%x, %s) : f32[2]
    return %3, %4, %5
  }, num_scan_inputs=1, scan_input_axes=[1], scan_input_directions=[1], scan_output_axes=[1, -1], scan_output_directions=[0, 1]} : f32[2], f32[2,5], f32[2,5]
  return %0, %1, %2
}
";
    assert_native(src, &[f32s(&[2], 1), f32s(&[2, 5], 2), f32s(&[2], 3)]);
}

/// A sliding window as in the WeSpeaker fbank front end: the state holds the previous chunk, each
/// output frame is the previous and the current chunk joined and cut.
#[test]
fn scan_sliding_window_runs_natively() {
    let src = "graph @s(%s0: f32[1,4], %xs: f32[1,6,4]) -> (f32[1,4], f32[1,6,6]) {
  %0, %1 = scan(%s0, %xs) {body=graph @body(%prev: f32[1,4], %cur: f32[1,4]) -> (f32[1,4], f32[1,6]) {
    %2 = concat(%prev, %cur) {axis=1} : f32[1,8]
    %3 = const i64[1] [1]
    %4 = const i64[1] [7]
    %5 = const i64[1] [1]
    %6 = slice(%2, %3, %4, %5) : f32[1,6]
    return %cur, %6
  }, num_scan_inputs=1, scan_input_axes=[1], scan_output_axes=[1]} : f32[1,4], f32[1,6,6]
  return %0, %1
}
";
    assert_native(src, &[f32s(&[1, 4], 4), f32s(&[1, 6, 4], 5)]);
}

/// `if` on a constant condition becomes its taken branch.
#[test]
fn if_with_a_constant_condition_runs_natively() {
    let src = "graph @i(%x: f32[3]) -> (f32[3]) {
  %0 = const bool[] [false]
  %1 = if(%0) {else_branch=graph @e() captures(%x) -> (f32[3]) {
    %2 = neg(%x) : f32[3]
    return %2
  }, then_branch=graph @t() captures(%x) -> (f32[3]) {
    %2 = exp(%x) : f32[3]
    return %2
  }} : f32[3]
  return %1
}
";
    assert_native(src, &[f32s(&[3], 6)]);
}

/// `if` on a data condition with branches of one static shape: both computed, the result selected.
#[test]
fn if_with_a_data_condition_and_equal_shapes_runs_natively() {
    let src = "graph @i(%c: bool[], %x: f32[2,3]) -> (f32[2,3]) {
  %0 = if(%c) {else_branch=graph @e() captures(%x) -> (f32[2,3]) {
    %1 = neg(%x) : f32[2,3]
    return %1
  }, then_branch=graph @t() captures(%x) -> (f32[2,3]) {
    %1 = mul(%x, %x) : f32[2,3]
    return %1
  }} : f32[2,3]
  return %0
}
";
    for c in [true, false] {
        assert_native(src, &[bool_scalar(c), f32s(&[2, 3], 7)]);
    }
}

/// Branches whose shapes differ are not selected between: the `if` is not compiled and the results are
/// still right.
#[test]
fn if_whose_branches_differ_in_shape_still_runs() {
    let src = "graph @i(%c: bool[], %x: f32[2,3]) -> (f32[?,3]) {
  %0 = if(%c) {else_branch=graph @e() captures(%x) -> (f32[2,3]) {
    %1 = neg(%x) : f32[2,3]
    return %1
  }, then_branch=graph @t() captures(%x) -> (f32[4,3]) {
    %1 = concat(%x, %x) {axis=0} : f32[4,3]
    return %1
  }} : f32[?,3]
  return %0
}
";
    for c in [true, false] {
        let (fallbacks, _) = run_both(src, &[bool_scalar(c), f32s(&[2, 3], 8)]);
        assert!(fallbacks > 0);
    }
}

/// A loop nested in a scan body: both expand.
#[test]
fn nested_loop_in_scan_runs_natively() {
    let src = "graph @n(%s0: f32[3], %xs: f32[4,3]) -> (f32[3], f32[4,3]) {
  %0, %1 = scan(%s0, %xs) {body=graph @body(%s: f32[3], %x: f32[3]) -> (f32[3], f32[3]) {
    %2 = const i64[] [2]
    %3 = const bool[] [true]
    %4 = loop(%2, %3, %s) {body=graph @inner(%i: i64[], %c: bool[], %t: f32[3]) captures(%x) -> (bool[], f32[3]) {
      %5 = add(%t, %x) : f32[3]
      return %c, %5
    }} : f32[3]
    return %4, %4
  }, num_scan_inputs=1} : f32[3], f32[4,3]
  return %0, %1
}
";
    assert_native(src, &[f32s(&[3], 9), f32s(&[4, 3], 10)]);
}

/// The two real models whose front ends are a `loop` (localwake) and a `scan` with a `dft`
/// (WeSpeaker fbank) compile ahead of time with no interpreter (AOT cannot fall back); the object,
/// linked with the C example, gives the JIT's bytes on the host.
#[test]
fn real_control_flow_models_compile_ahead_of_time() {
    use std::process::Command;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("tempdir");
    for (name, shapes) in [
        ("localwake_speech_embedding", vec!["samples:0=2,24000"]),
        (
            "onnxasr_wespeaker_fbank",
            vec!["waveforms=2,16000", "waveforms_lens=2"],
        ),
    ] {
        let dir = common::shared_dir().join("models").join(name);
        let model = dir.join("model.onnx");
        let out = tmp.path().join(name);
        std::fs::create_dir_all(&out).expect("dir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_carve"));
        cmd.arg("compile")
            .arg(&model)
            .args(["--cpu=native", "--name", "model", "-o"])
            .arg(out.join("model.o"))
            .arg("--header")
            .arg(out.join("model.h"));
        for s in &shapes {
            cmd.args(["--input-shape", s]);
        }
        let res = cmd.output().expect("runs carve");
        assert!(
            res.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        let exe = out.join("demo");
        let cc = Command::new("gcc")
            .args(["-O2", "-std=c11", "-I"])
            .arg(&out)
            .arg("-DMODEL_HEADER=\"model.h\"")
            .arg(root.join("examples/c/main.c"))
            .arg(out.join("model.o"))
            .args(["-lpthread", "-o"])
            .arg(&exe)
            .output()
            .expect("gcc runs");
        assert!(
            cc.status.success(),
            "{}",
            String::from_utf8_lossy(&cc.stderr)
        );
        let m = carve::load(&model).expect("loads");
        let g = &m.graph;
        let mut inputs = Vec::new();
        let mut args = Vec::new();
        for (k, &v) in g.inputs.iter().enumerate() {
            let x =
                carve::data::read_pb(&dir.join(format!("test_data_set_0/input_{k}.pb")), g.ty(v))
                    .expect("input");
            let p = out.join(format!("input_{k}.bin"));
            let t = x.as_tensor().expect("tensor");
            std::fs::write(&p, t.data.to_le_bytes().expect("bytes")).expect("write");
            args.push(p);
            inputs.push(x);
        }
        let outs = out.join("outs");
        std::fs::create_dir_all(&outs).expect("dir");
        let run = Command::new(&exe)
            .args(["-t", "2", "-o"])
            .arg(&outs)
            .args(&args)
            .output()
            .expect("demo runs");
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let jit = carve::Compiler::new()
            .threads(1)
            .compile(&m)
            .expect("JIT")
            .run_ordered(inputs)
            .expect("JIT run");
        assert_eq!(jit.len(), g.outputs.len());
        for (k, v) in jit.iter().enumerate() {
            let t = v.as_tensor().expect("tensor");
            let aot = std::fs::read(outs.join(format!("output_{k}.bin"))).expect("output");
            assert_eq!(
                aot,
                t.data.to_le_bytes().expect("bytes"),
                "{name} output {k}"
            );
        }
    }
}

/// `dft` along the signal axis as a matmul with constant twiddles: one-sided with zero padding, full
/// complex, and an inverse with truncation; the results match the interpreter's FFT.
#[test]
fn dft_runs_natively_as_a_matmul() {
    let tol = Tolerance {
        rtol: 1e-4,
        atol: 1e-4,
    };
    for (src, shape) in [
        (
            "graph @d(%x: f32[2,3,10,1]) -> (f32[2,3,9,2]) {
  %0 = const i64[] [16]
  %1 = const i64[] [-2]
  %2 = dft(%x, %0, %1) {onesided=true} : f32[2,3,9,2]
  return %2
}
",
            vec![2, 3, 10, 1],
        ),
        (
            "graph @d(%x: f32[3,8,2]) -> (f32[3,8,2]) {
  %0 = dft(%x) : f32[3,8,2]
  return %0
}
",
            vec![3, 8, 2],
        ),
        (
            "graph @d(%x: f32[4,12,2]) -> (f32[4,6,2]) {
  %0 = const i64[] [6]
  %1 = const i64[] [1]
  %2 = dft(%x, %0, %1) {inverse=true} : f32[4,6,2]
  return %2
}
",
            vec![4, 12, 2],
        ),
    ] {
        let g = carve::ir::text::parse(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
        let x = f32s(&shape, 3);
        let want = interp::run(&g, vec![x.clone()]).expect("interpreter");
        let compiled = carve::Compiler::new()
            .threads(1)
            .compile(&model_of(&g))
            .expect("compiles");
        let inst = compiled
            .instance(std::slice::from_ref(&shape))
            .expect("instance");
        assert_eq!(inst.fallback_count(), 0, "{}", inst.report);
        let got = inst.run(vec![x]).expect("runs");
        if let Err(e) = compare(&want[0], &got[0], tol) {
            panic!("{e}\n{src}");
        }
    }
}
