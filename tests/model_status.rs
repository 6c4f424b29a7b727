//! Every model folder of `shared/models` against its expected status in `tests/models_expected.txt`.
//!
//! The folder grows: models are added that carve cannot yet import, run in its interpreter, or run
//! natively. Rather than let a walk over the folder fail on them (or skip them), each model has an
//! explicit status, and this test measures the status each one reaches and compares:
//!
//! - lower than listed: a regression, the test fails;
//! - higher than listed: the test fails until the line is raised, so the file always says where each
//!   model stands and only moves forward;
//! - a folder missing from the file, or a line for a missing folder: the test fails.
//!
//! Outputs are compared with the tolerances of `shared/models/MANIFEST.md` (rtol 1e-3 / atol 1e-4,
//! integers exact, and the per-model exceptions listed there, implemented in [`compare_model`]).

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use carve::compare::{REAL_MODELS, Tolerance, compare};
use carve_runtime::interp::Value;
use carve_runtime::interp::util::to_f64;

/// How far a model gets, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Status {
    Refused,
    Imports,
    Interp,
    Partial,
    Native,
}

impl Status {
    fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "refused" => Status::Refused,
            "imports" => Status::Imports,
            "interp" => Status::Interp,
            "partial" => Status::Partial,
            "native" => Status::Native,
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Refused => "refused",
            Status::Imports => "imports",
            Status::Interp => "interp",
            Status::Partial => "partial",
            Status::Native => "native",
        })
    }
}

fn expected_statuses() -> BTreeMap<String, Status> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models_expected.txt");
    let text = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("cannot read '{}': {e}", p.display()));
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(name), Some(status)) = (words.next(), words.next()) else {
            panic!("{}:{}: expected 'NAME STATUS'", p.display(), i + 1);
        };
        let status = Status::parse(status).unwrap_or_else(|| {
            panic!(
                "{}:{}: unknown status '{status}' (refused, imports, interp, partial, native)",
                p.display(),
                i + 1
            )
        });
        assert!(
            out.insert(name.to_string(), status).is_none(),
            "{}:{}: '{name}' is listed twice",
            p.display(),
            i + 1
        );
    }
    out
}

/// Compares a model's outputs with its references under the MANIFEST's rules; the maximum absolute error.
fn compare_model(
    model: &str,
    names: &[String],
    expected: &[Value],
    got: &[Value],
) -> Result<f64, String> {
    if expected.len() != got.len() {
        return Err(format!(
            "{} outputs, expected {}",
            got.len(),
            expected.len()
        ));
    }
    let mut worst = 0.0f64;
    for ((name, e), a) in names.iter().zip(expected).zip(got) {
        let err = match (model, name.as_str()) {
            ("isbnx_yolo26n", _) => compare_detections(e, a),
            ("voicefilter_lite_int8", "hN" | "cN") => compare(e, a, atol(5e-3)),
            ("voicefilter_lite_int8", "mask" | "f_adapt") => compare(e, a, atol(1e-3)),
            ("pyfrspell_derive_int8", _) => compare(e, a, atol(0.05)),
            _ => compare(e, a, REAL_MODELS),
        }
        .map_err(|m| format!("output '{name}': {m}"))?;
        worst = worst.max(err);
    }
    Ok(worst)
}

fn atol(atol: f64) -> Tolerance {
    Tolerance {
        rtol: REAL_MODELS.rtol,
        atol,
    }
}

/// isbnx's `[1, 300, 6]` top-300 list (box x1, y1, x2, y2, score, class): rows whose reference score is at
/// least 0.01 match in every column (rtol 1e-3, atol 1e-2), and the score column of every row matches
/// within atol 1e-4; the order of the nearly tied low-score rows depends on float rounding (MANIFEST).
fn compare_detections(e: &Value, a: &Value) -> Result<f64, String> {
    let (Value::Tensor(e), Value::Tensor(a)) = (e, a) else {
        return Err("expected tensors".into());
    };
    if e.shape != a.shape || e.shape.last() != Some(&6) {
        return Err(format!(
            "shape {:?}, expected {:?} (rows of 6)",
            a.shape, e.shape
        ));
    }
    let ev = to_f64(e).map_err(|m| m.to_string())?;
    let av = to_f64(a).map_err(|m| m.to_string())?;
    let mut worst = 0.0f64;
    for (r, (er, ar)) in ev.chunks(6).zip(av.chunks(6)).enumerate() {
        let row_tol = if er[4] >= 0.01 { 1e-2 } else { f64::INFINITY };
        for (c, (&x, &y)) in er.iter().zip(ar).enumerate() {
            let tol = if c == 4 { 1e-4 } else { row_tol };
            let d = (x - y).abs();
            if d > tol + REAL_MODELS.rtol * x.abs() || x.is_nan() != y.is_nan() {
                return Err(format!("row {r} column {c}: {y} vs expected {x}"));
            }
            if tol.is_finite() {
                worst = worst.max(d);
            }
        }
    }
    Ok(worst)
}

/// The status `dir`'s model reaches, with a line saying how (or where it stopped).
fn measure(dir: &Path) -> (Status, String) {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let m = match common::import_roundtrip(dir) {
        Ok(m) => m,
        Err(e) => return (Status::Refused, format!("import: {e}")),
    };
    let g = &m.graph;
    let set = dir.join("test_data_set_0");
    let mut inputs = Vec::new();
    for (k, &v) in g.inputs.iter().enumerate() {
        match carve::data::read_pb(&set.join(format!("input_{k}.pb")), g.ty(v)) {
            Ok(x) => inputs.push(x),
            Err(e) => return (Status::Imports, format!("reading input {k}: {e}")),
        }
    }
    let mut expected = Vec::new();
    for (k, &v) in g.outputs.iter().enumerate() {
        match carve::data::read_pb(&set.join(format!("output_{k}.pb")), g.ty(v)) {
            Ok(x) => expected.push(x),
            Err(e) => return (Status::Imports, format!("reading output {k}: {e}")),
        }
    }
    let names: Vec<String> = g.outputs.iter().map(|&v| g.value(v).name.clone()).collect();
    let interp = carve_runtime::interp::run(g, inputs.clone())
        .map_err(|e| e.to_string())
        .and_then(|out| compare_model(&name, &names, &expected, &out));
    let interp_err = match interp {
        Ok(err) => err,
        Err(e) => return (Status::Imports, format!("interpreter: {e}")),
    };
    let shapes: Vec<Vec<usize>> = inputs
        .iter()
        .map(|v| v.as_tensor().map(|t| t.shape.clone()).unwrap_or_default())
        .collect();
    let inst = match carve::Compiler::new()
        .threads(1)
        .compile(&m)
        .and_then(|c| c.instance(&shapes))
    {
        Ok(i) => i,
        Err(e) => {
            return (
                Status::Interp,
                format!("interpreter max error {interp_err:.2e}; JIT compile: {e}"),
            );
        }
    };
    if let carve::compiler::Engine::Interpreter { reason, .. } = &inst.engine {
        return (
            Status::Interp,
            format!("interpreter max error {interp_err:.2e}; not native: {reason}"),
        );
    }
    let native = inst
        .run(inputs)
        .map_err(|e| e.to_string())
        .and_then(|out| compare_model(&name, &names, &expected, &out));
    match native {
        Err(e) => (
            Status::Interp,
            format!("interpreter max error {interp_err:.2e}; JIT: {e}"),
        ),
        Ok(err) if let carve::compiler::Engine::Segmented(s) = &inst.engine => (
            Status::Partial,
            format!(
                "max error {err:.2e}; native segments around node '{}' ({}), run by the interpreter: {}",
                s.node, s.op, s.reason
            ),
        ),
        Ok(err) if inst.report.fallbacks.is_empty() => {
            (Status::Native, format!("native, max error {err:.2e}"))
        }
        Ok(err) => {
            let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
            for f in &inst.report.fallbacks {
                *ops.entry(f.op.as_str()).or_default() += 1;
            }
            let ops: Vec<String> = ops.iter().map(|(op, n)| format!("{n} {op}")).collect();
            (
                Status::Partial,
                format!(
                    "max error {err:.2e}; {} fallback nodes ({})",
                    inst.report.fallbacks.len(),
                    ops.join(", ")
                ),
            )
        }
    }
}

#[test]
fn every_model_folder_reaches_its_expected_status() {
    let expected = expected_statuses();
    for name in common::STRICT_MODELS {
        assert_eq!(
            expected.get(*name),
            Some(&Status::Native),
            "the strict model '{name}' must be listed as native in tests/models_expected.txt"
        );
    }
    let dirs = common::all_models();
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (got, how) = measure(dir);
        println!("{name:<30} {got:<8} {how}");
        match expected.get(&name) {
            None => problems.push(format!(
                "{name}: not listed in tests/models_expected.txt (it reaches '{got}': add '{name} {got}')"
            )),
            Some(&want) if got < want => problems.push(format!(
                "{name}: regressed to '{got}', expected '{want}' ({how})"
            )),
            Some(&want) if got > want => problems.push(format!(
                "{name}: now reaches '{got}' (listed as '{want}'): raise its line in tests/models_expected.txt"
            )),
            Some(_) => {}
        }
        seen.push(name);
    }
    for name in expected.keys() {
        if !seen.contains(name) {
            problems.push(format!(
                "{name}: listed in tests/models_expected.txt but no such folder in shared/models"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
