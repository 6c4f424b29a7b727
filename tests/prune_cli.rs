//! `carve compress --prune`: the digits MLP pruned at 0.3 with bias compensation from its training
//! data. The written model is a smaller standard ONNX model with fewer hidden units, the report
//! states params/FLOPs before and after and accuracy before and after the repair (recomputed here
//! from the written file), and two runs write identical bytes.

mod common;

use std::process::Command;

fn digits() -> std::path::PathBuf {
    common::shared_dir().join("models/sk_digits_mlp")
}

fn prune(dir: &std::path::Path, extra: &[&str]) -> (Vec<u8>, serde_json::Value) {
    let npz = digits().join("digits.npz").display().to_string();
    let out = dir.join("pruned.onnx");
    let report = dir.join("report");
    let mut args: Vec<String> = vec![
        "compress".into(),
        digits().join("model.onnx").display().to_string(),
        "--prune".into(),
        "0.3".into(),
        "--eval".into(),
        npz.clone(),
        "--labels".into(),
        "y".into(),
        "--metric".into(),
        "accuracy".into(),
        "--max-drop".into(),
        "0.02".into(),
        "--timing-runs".into(),
        "0".into(),
        "--threads".into(),
        "1".into(),
        "-o".into(),
        out.display().to_string(),
        "--report".into(),
        report.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = Command::new(env!("CARGO_BIN_EXE_carve"))
        .args(&args)
        .output()
        .expect("carve runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap())
            .unwrap();
    assert!(report.join("report.md").is_file());
    (std::fs::read(&out).unwrap(), json)
}

#[test]
fn digits_pruned_at_0_3_is_smaller_reports_the_repair_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let npz = digits().join("digits.npz").display().to_string();
    let calib = format!("{npz}:X=Xtr");
    let (bytes, json) = prune(dir.path(), &["--calib", &calib]);
    let float_bytes = std::fs::metadata(digits().join("model.onnx"))
        .unwrap()
        .len();
    assert!(
        (bytes.len() as u64) < float_bytes * 85 / 100,
        "{} vs {float_bytes}",
        bytes.len()
    );
    let p = &json["pruning"];
    let (pf, pp) = (
        p["params"]["float"].as_u64().unwrap(),
        p["params"]["pruned"].as_u64().unwrap(),
    );
    assert!(pp < pf * 80 / 100, "{pp} of {pf} params left");
    assert!(p["flops"]["pruned"].as_f64().unwrap() < p["flops"]["float"].as_f64().unwrap());
    assert!(
        p["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["removed"].as_u64() > Some(0))
    );
    assert!(!p["compensated"].as_array().unwrap().is_empty(), "{p}");

    // The written model imports, has fewer hidden units, and scores what the report says.
    let path = dir.path().join("pruned.onnx");
    let model = carve::load(&path).unwrap();
    let eval =
        carve::compress::data::load(&npz.parse().unwrap(), &model.graph, Some("y"), None).unwrap();
    let compiled = carve::Compiler::new().threads(1).compile(&model).unwrap();
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
    let acc = right as f64 / labels.len() as f64;
    assert!((acc - json["score"]["pruned"].as_f64().unwrap()).abs() < 1e-12);
    assert!(acc > 0.9, "accuracy after pruning 30% and repair: {acc}");

    // Same model, data and options: the same bytes.
    let dir2 = tempfile::tempdir().unwrap();
    let (again, _) = prune(dir2.path(), &["--calib", &calib]);
    assert!(again == bytes, "two runs wrote different models");
}

#[test]
fn prune_with_an_explicit_weights_format_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pruned.onnx");
    for fmt in ["int8", "int4"] {
        let run = Command::new(env!("CARGO_BIN_EXE_carve"))
            .args([
                "compress",
                &digits().join("model.onnx").display().to_string(),
                "--prune",
                "0.3",
                "--weights",
                fmt,
                "--eval",
                &digits().join("digits.npz").display().to_string(),
                "-o",
                &out.display().to_string(),
                "--report",
                &dir.path().join("r").display().to_string(),
            ])
            .output()
            .expect("carve runs");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "--prune with --weights {fmt} ran");
        assert!(
            err.contains("--prune") && err.contains("--weights"),
            "unclear error: {err}"
        );
        assert!(!out.exists(), "a model was written");
    }
}
