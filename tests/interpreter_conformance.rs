//! The reference interpreter against the ONNX node suite and the real models.
//!
//! - The node suite's pass count may not fall below `tests/ratchet/node_suite_pass.txt` (raise it as kernels
//!   improve), and every case listed in `tests/conformance_expected.txt` must end exactly as stated there.
//! - Every real model (and the pre-quantized ones) matches its reference outputs (rtol 1e-3, atol 1e-4).
//! - `sk_digits_mlp` reaches ONNX Runtime's test accuracy (0.9796) on the held-out digits.
//! - When `CARVE_HELDOUT_MODELS` names a folder of cases in the same layout, every case in it matches too
//!   (the real-model tolerance); without it that test only says it had nothing to check.
//!
//! A Markdown report of the node-suite run is written to `target/conformance-node-suite.md`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use carve::compare::{NODE_SUITE, REAL_MODELS};
use carve::conformance::{Outcome, counts, markdown, run_case};
use carve_runtime::Data;
use carve_runtime::interp::Value;

fn expected_statuses() -> BTreeMap<String, String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance_expected.txt");
    let text = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("cannot read '{}': {e}", p.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (case, status) = l
                .split_once(char::is_whitespace)
                .unwrap_or_else(|| panic!("bad line '{l}'"));
            (case.to_string(), status.trim().to_string())
        })
        .collect()
}

#[test]
fn node_suite_runs_through_the_interpreter() {
    let root = common::shared_dir().join("onnx-node-tests");
    let dirs = common::model_dirs(&root);
    let reports: Vec<_> = dirs.iter().map(|d| run_case(d, NODE_SUITE)).collect();
    let summary: Vec<String> = counts(&reports)
        .iter()
        .map(|(l, n)| format!("{l}: {n}"))
        .collect();
    println!("node suite through the interpreter: {}", summary.join(", "));
    let report = markdown(
        "carve conformance: ONNX node suite (reference interpreter)",
        &reports,
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/conformance-node-suite.md");
    let _ = std::fs::write(&out, report);
    println!("report: {}", out.display());

    let by_name: BTreeMap<&str, &Outcome> = reports
        .iter()
        .map(|r| (r.name.as_str(), &r.outcome))
        .collect();
    let mut wrong = Vec::new();
    for (case, status) in expected_statuses() {
        match by_name.get(case.as_str()) {
            None => wrong.push(format!(
                "{case}: listed in conformance_expected.txt but not in the suite"
            )),
            Some(o) if o.label().replace(' ', "_") != status => wrong.push(format!(
                "{case}: expected {status}, got {} ({})",
                o.label(),
                o.detail()
            )),
            Some(_) => {}
        }
    }
    let passed = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Pass { .. }))
        .count();
    let floor = common::ratchet("node_suite_pass.txt");
    assert!(
        wrong.is_empty(),
        "cases not ending as expected:\n{}",
        wrong.join("\n")
    );
    assert!(
        passed >= floor,
        "only {passed} node-suite cases pass; the ratchet requires {floor}"
    );
}

#[test]
fn real_models_match_their_reference_outputs() {
    let shared = common::shared_dir();
    let mut dirs = common::real_models();
    dirs.extend(common::model_dirs(&shared.join("quantized-models")));
    let mut failures = Vec::new();
    for d in &dirs {
        let r = run_case(d, REAL_MODELS);
        println!("{}: {} {}", r.name, r.outcome.label(), r.outcome.detail());
        if !matches!(r.outcome, Outcome::Pass { .. }) {
            failures.push(format!(
                "{}: {} {}",
                r.name,
                r.outcome.label(),
                r.outcome.detail()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn digits_mlp_reaches_the_reference_test_accuracy() {
    let dir = common::shared_dir().join("models/sk_digits_mlp");
    let data = carve::npy::read_npz(&dir.join("digits.npz")).unwrap_or_else(|e| panic!("{e}"));
    let get = |n: &str| {
        data.iter()
            .find(|(k, _)| k == n)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("no '{n}'"))
    };
    let (x, y) = (get("X"), get("y"));
    let m = carve::load(dir.join("model.onnx")).unwrap_or_else(|e| panic!("{e}"));
    let inputs =
        carve::inputs::order_and_check(&m.graph, vec![("X".into(), Value::Tensor(x))]).unwrap();
    let out = carve_runtime::interp::run(&m.graph, inputs).unwrap_or_else(|e| panic!("{e}"));
    let (Value::Tensor(labels), Data::I64(truth)) = (&out[0], &y.data) else {
        panic!("unexpected output kinds")
    };
    let Data::I64(pred) = &labels.data else {
        panic!("labels are {}", labels.dtype())
    };
    assert_eq!(pred.len(), truth.len());
    let correct = pred.iter().zip(truth).filter(|(p, t)| p == t).count();
    let accuracy = correct as f64 / truth.len() as f64;
    println!(
        "sk_digits_mlp test accuracy: {accuracy:.4} ({correct}/{})",
        truth.len()
    );
    assert!(
        accuracy >= 0.9796 - 1e-9,
        "accuracy {accuracy:.4} is below ONNX Runtime's 0.9796"
    );
}

#[test]
fn held_out_models_match_when_a_folder_is_given() {
    let Some(dir) = std::env::var_os("CARVE_HELDOUT_MODELS") else {
        println!("CARVE_HELDOUT_MODELS is not set: no held-out models to check");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let dirs = common::model_dirs(&dir);
    assert!(
        !dirs.is_empty(),
        "CARVE_HELDOUT_MODELS='{}' holds no case folders with a model.onnx",
        dir.display()
    );
    let failures: Vec<String> = dirs
        .iter()
        .map(|d| run_case(d, REAL_MODELS))
        .filter(|r| !matches!(r.outcome, Outcome::Pass { .. }))
        .map(|r| format!("{}: {} {}", r.name, r.outcome.label(), r.outcome.detail()))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
