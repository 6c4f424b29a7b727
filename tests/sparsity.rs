//! `carve compress --sparsity`: the digits MLP at 50% unstructured sparsity (SparseGPT and magnitude
//! both measured on its training data, the better kept). Every layer of the written model has half of
//! each output channel's weights at zero (±1 per row), the accuracy recomputed from the written file
//! equals the report's and is within a point of float, two runs write identical model and report
//! bytes, and bad arguments are refused with a clear message before anything is written.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use carve::passes::quantize::{const_f32s, find_layers};
use carve::passes::sparsify::{RowMatrix, zeros_per_row};

fn digits() -> PathBuf {
    common::shared_dir().join("models/sk_digits_mlp")
}

fn npz() -> String {
    digits().join("digits.npz").display().to_string()
}

/// Runs `carve compress` on the digits model with `args` added, writing into `dir`.
fn carve(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all: Vec<String> = vec![
        "compress".into(),
        digits().join("model.onnx").display().to_string(),
        "--eval".into(),
        npz(),
        "--labels".into(),
        "y".into(),
        "--metric".into(),
        "accuracy".into(),
        "--timing-runs".into(),
        "0".into(),
        "--threads".into(),
        "1".into(),
        "-o".into(),
        dir.join("sparse.onnx").display().to_string(),
        "--report".into(),
        dir.join("report").display().to_string(),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    Command::new(env!("CARGO_BIN_EXE_carve"))
        .args(&all)
        .output()
        .expect("carve runs")
}

/// A successful sparsity run: the model bytes, report.json (parsed and raw) and report.md.
fn sparsify(dir: &Path, extra: &[&str]) -> (Vec<u8>, serde_json::Value, String, String) {
    let run = carve(dir, extra);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let raw = std::fs::read_to_string(dir.join("report/report.json")).unwrap();
    let md = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&raw).unwrap();
    (
        std::fs::read(dir.join("sparse.onnx")).unwrap(),
        json,
        raw,
        md,
    )
}

/// Accuracy of `model` on the digits test set (argmax of `probabilities` against `y`).
fn accuracy(model: &carve::Model) -> f64 {
    let eval = carve::compress::data::load(&npz().parse().unwrap(), &model.graph, Some("y"), None)
        .unwrap();
    let compiled = carve::Compiler::new().threads(1).compile(model).unwrap();
    let labels = eval.labels.clone().unwrap();
    let mut right = 0;
    for (s, &y) in eval.samples.iter().zip(&labels) {
        let inputs = s
            .iter()
            .map(|(n, t)| (n.clone(), carve::Value::from(t.clone())))
            .collect();
        let out = compiled.run(inputs).unwrap();
        let probs = out.iter().find(|(n, _)| n == "probabilities").unwrap();
        let carve::Data::F32(pr) = &probs.1.as_tensor().unwrap().data else {
            panic!("probabilities are f32")
        };
        let best = (0..pr.len())
            .max_by(|&i, &j| pr[i].total_cmp(&pr[j]))
            .unwrap();
        right += usize::from(best as i64 == y);
    }
    right as f64 / labels.len() as f64
}

#[test]
fn digits_at_half_sparsity_is_exact_per_row_accurate_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let calib = format!("{}:X=Xtr", npz());
    let args = ["--sparsity", "0.5", "--calib", &calib, "--max-drop", "0.01"];
    let (bytes, json, raw, md) = sparsify(dir.path(), &args);
    let sp = &json["sparsity"];
    assert_eq!(sp["ratio"].as_f64(), Some(0.5));

    // Both methods were measured with every layer sparse; the kept one scored at least as well.
    let cands = sp["candidates"].as_array().unwrap();
    let score_of = |m: &str| {
        cands
            .iter()
            .find(|c| c["method"] == m)
            .and_then(|c| c["score"].as_f64())
            .unwrap_or_else(|| panic!("no {m} candidate in {sp}"))
    };
    let kept = sp["method"].as_str().unwrap();
    assert!(score_of(kept) >= score_of("magnitude").max(score_of("sparsegpt")));

    // Every layer is sparse in the written model: half of each output channel's weights are zero
    // (±1 per row), as many as the report says.
    let model = carve::load(dir.path().join("sparse.onnx")).unwrap();
    let float = carve::load(digits().join("model.onnx")).unwrap();
    let layers = find_layers(&model.graph);
    let reported = sp["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{layers:?}");
    assert_eq!(reported.len(), layers.len());
    assert_eq!(sp["layers_sparse"].as_u64(), Some(3), "{sp}");
    let mut nonzero = 0u64;
    for l in &layers {
        let w = const_f32s(&model.graph, &l.weight).unwrap();
        let m = RowMatrix::new(&w, &l.weight_dims, l.weight_axis).unwrap();
        let want = zeros_per_row(0.5, m.cols) as i64;
        for r in 0..m.rows {
            let z = m.row(r).iter().filter(|&&v| v == 0.0).count() as i64;
            assert!(
                (z - want).abs() <= 1,
                "{} row {r}: {z} zeros, want {want}",
                l.node
            );
        }
        let zeros = w.iter().filter(|&&v| v == 0.0).count() as u64;
        nonzero += w.len() as u64 - zeros;
        let rep = reported
            .iter()
            .find(|r| r["node"] == l.node.as_str())
            .unwrap();
        assert_eq!(rep["zeros"].as_u64(), Some(zeros), "{rep}");
        assert!(
            (rep["sparsity"].as_f64().unwrap() - 0.5).abs() < 0.01,
            "{rep}"
        );
        // The written weight is not the float one.
        let fw = const_f32s(&float.graph, &l.weight).unwrap();
        assert_ne!(fw, w, "{} unchanged", l.node);
    }
    assert_eq!(sp["nonzero_weights"]["sparse"].as_u64(), Some(nonzero));

    // The accuracy of the written file is the report's, within a point of float.
    let acc = accuracy(&model);
    let reported_acc = json["score"]["sparse"].as_f64().unwrap();
    assert!(
        (acc - reported_acc).abs() < 1e-12,
        "{acc} vs {reported_acc}"
    );
    let float_acc = json["score"]["float"].as_f64().unwrap();
    assert!((accuracy(&float) - float_acc).abs() < 1e-12);
    assert!(float_acc - acc <= 0.01, "float {float_acc}, sparse {acc}");
    assert!(md.contains("nonzero weights"), "{md}");

    // Same model, data and options: the same bytes.
    let dir2 = tempfile::tempdir().unwrap();
    let (again, _, raw2, md2) = sparsify(dir2.path(), &args);
    assert!(again == bytes, "two runs wrote different models");
    assert_eq!(raw, raw2);
    assert_eq!(md, md2);
}

#[test]
fn magnitude_without_calibration_data_needs_no_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let (_, json, _, _) = sparsify(
        dir.path(),
        &[
            "--sparsity",
            "0.25",
            "--sparsity-method",
            "magnitude",
            "--max-drop",
            "1",
        ],
    );
    let sp = &json["sparsity"];
    assert_eq!(sp["method"], "magnitude");
    assert!(sp["candidates"].as_array().unwrap().is_empty());
    for l in sp["layers"].as_array().unwrap() {
        assert_eq!(l["sparse"], true, "{l}");
        assert!((l["sparsity"].as_f64().unwrap() - 0.25).abs() < 0.01, "{l}");
        assert!(l["layer_output_error"].is_null(), "{l}");
    }
}

#[test]
fn bad_sparsity_arguments_are_refused_and_write_nothing() {
    let calib = format!("{}:X=Xtr", npz());
    let cases: [(&[&str], &[&str]); 6] = [
        (&["--sparsity", "1.0"], &["--sparsity", "[0, 1)"]),
        (&["--sparsity=-0.1"], &["--sparsity", "[0, 1)"]),
        (
            &["--sparsity", "0.5", "--prune", "0.3"],
            &["--sparsity", "--prune"],
        ),
        (
            &["--sparsity", "0.5", "--weights", "int8"],
            &["--sparsity", "--weights"],
        ),
        (
            &["--sparsity", "0.5", "--sparsity-method", "sparsegpt"],
            &["sparsegpt", "--calib"],
        ),
        (
            &[
                "--sparsity",
                "0.5",
                "--sparsity-method",
                "l1",
                "--calib",
                &calib,
            ],
            &["magnitude or sparsegpt"],
        ),
    ];
    for (args, words) in cases {
        let dir = tempfile::tempdir().unwrap();
        let run = carve(dir.path(), args);
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?} ran");
        for w in words {
            assert!(err.contains(w), "{args:?}: unclear error (no '{w}'): {err}");
        }
        assert!(
            !dir.path().join("sparse.onnx").exists(),
            "{args:?} wrote a model"
        );
    }
}
