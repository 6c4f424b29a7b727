//! Native code (the JIT path, the product's main path) against the ONNX node suite and the real models.
//!
//! - The node suite through the JIT passes at least as many cases as the reference interpreter's ratchet
//!   (`tests/ratchet/node_suite_pass.txt`); cases where every node ran natively may not fall below
//!   `tests/ratchet/node_suite_native.txt`. Nodes without a native kernel run through the interpreter
//!   fallback and are counted separately.
//! - Every real model compiles with ZERO fallback nodes, runs natively and matches its reference outputs
//!   (rtol 1e-3, atol 1e-4), with 1 and 2 threads giving bit-identical outputs.
//! - The same holds with the e-graph optimizer disabled (`--no-egraph`).
//! - The same holds for ONNX Runtime's static (QDQ) and dynamic quantizations of the digits MLP
//!   (`../shared/quantized-models/`).
//!
//! A Markdown report of the node-suite run is written to `target/conformance-node-suite-native.md`.

mod common;

use std::path::Path;

use carve::compare::{NODE_SUITE, REAL_MODELS, compare};
use carve::conformance::{Engine, Outcome, counts, markdown, run_case_with};
use carve_runtime::interp::Value;

#[test]
fn node_suite_runs_through_native_code() {
    let root = common::shared_dir().join("onnx-node-tests");
    let dirs = common::model_dirs(&root);
    let reports: Vec<_> = dirs
        .iter()
        .map(|d| run_case_with(d, NODE_SUITE, Engine::Jit { threads: 1 }))
        .collect();
    let summary: Vec<String> = counts(&reports)
        .iter()
        .map(|(l, n)| format!("{l}: {n}"))
        .collect();
    let passed = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Pass { .. }))
        .count();
    let native = reports.iter().filter(|r| r.native_pass()).count();
    println!("node suite through native code: {}", summary.join(", "));
    println!(
        "native-only passes: {native}; passes with some fallback nodes: {}",
        passed - native
    );
    let report = markdown(
        "carve conformance: ONNX node suite (native code, JIT)",
        &reports,
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/conformance-node-suite-native.md");
    let _ = std::fs::write(&out, report);
    let failures: Vec<String> = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Mismatch(_) | Outcome::RunError(_)))
        .map(|r| format!("{}: {} {}", r.name, r.outcome.label(), r.outcome.detail()))
        .collect();
    let interp_floor = common::ratchet("node_suite_pass.txt");
    assert!(
        passed >= interp_floor,
        "native code passes {passed} node-suite cases, fewer than the interpreter's {interp_floor}:\n{}",
        failures.join("\n")
    );
    let native_floor = common::ratchet("node_suite_native.txt");
    assert!(
        native >= native_floor,
        "only {native} cases pass with every node native; the ratchet requires {native_floor}"
    );
}

fn check_model(dir: &Path, egraph: bool) -> Result<String, String> {
    let m = carve::load(dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let g = &m.graph;
    let set = dir.join("test_data_set_0");
    let mut inputs = Vec::new();
    for (k, &v) in g.inputs.iter().enumerate() {
        inputs.push(
            carve::data::read_pb(&set.join(format!("input_{k}.pb")), g.ty(v))
                .map_err(|e| e.to_string())?,
        );
    }
    let shapes: Vec<Vec<usize>> = inputs
        .iter()
        .map(|v| v.as_tensor().map(|t| t.shape.clone()).unwrap_or_default())
        .collect();
    let mut outs = Vec::new();
    for threads in [1, 2] {
        let c = carve::Compiler::new()
            .threads(threads)
            .egraph(egraph)
            .compile(&m)
            .map_err(|e| e.to_string())?;
        let inst = c.instance(&shapes).map_err(|e| e.to_string())?;
        match &inst.engine {
            carve::compiler::Engine::Interpreter { reason, .. } => {
                return Err(format!("not compiled natively: {reason}"));
            }
            carve::compiler::Engine::Segmented(s) => {
                return Err(format!(
                    "split into segments at node '{}' ({}): {}",
                    s.node, s.op, s.reason
                ));
            }
            carve::compiler::Engine::Native(_) => {}
        }
        if !inst.report.fallbacks.is_empty() {
            return Err(format!(
                "{} fallback nodes, e.g. {:?}",
                inst.report.fallbacks.len(),
                inst.report.fallbacks.iter().take(5).collect::<Vec<_>>()
            ));
        }
        outs.push(inst.run(inputs.clone()).map_err(|e| e.to_string())?);
    }
    if outs[0] != outs[1] {
        return Err("1-thread and 2-thread outputs differ".into());
    }
    let mut worst = 0.0f64;
    for (k, (&v, got)) in g.outputs.iter().zip(&outs[0]).enumerate() {
        let expected: Value = carve::data::read_pb(&set.join(format!("output_{k}.pb")), g.ty(v))
            .map_err(|e| e.to_string())?;
        worst = worst
            .max(compare(&expected, got, REAL_MODELS).map_err(|e| format!("output {k}: {e}"))?);
    }
    Ok(format!("max abs error {worst:.3e}"))
}

fn check_all(egraph: bool) {
    let mut failures = Vec::new();
    for d in common::real_models() {
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match check_model(&d, egraph) {
            Ok(s) => println!("{name}: native, {s}"),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn real_models_run_natively_and_match() {
    check_all(true);
}

#[test]
fn real_models_run_natively_without_the_egraph() {
    check_all(false);
}

/// ONNX Runtime's two quantizations of the digits MLP run with zero fallback and match ONNX Runtime:
/// static QDQ (per-channel int8 weights, uint8 activations: QuantizeLinear/DequantizeLinear kernels,
/// the weights' dequantization folded at compile time) and dynamic (DynamicQuantizeLinear and
/// MatMulInteger kernels with i32 accumulation).
#[test]
fn the_quantized_models_run_natively_and_match_onnx_runtime() {
    for name in ["sk_digits_mlp_qdq", "sk_digits_mlp_dyn"] {
        let dir = common::shared_dir().join("quantized-models").join(name);
        for egraph in [true, false] {
            match check_model(&dir, egraph) {
                Ok(s) => println!("{name} (egraph {egraph}): native, {s}"),
                Err(e) => panic!("{name} (egraph {egraph}): {e}"),
            }
        }
    }
}
