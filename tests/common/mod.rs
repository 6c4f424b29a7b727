//! Shared helpers for the integration tests: locating the test data folder (`../shared`) and walking it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The shared test-data folder: `$CARVE_SHARED` if set, else `../shared` next to the repository.
/// Panics with instructions when it is absent, so a missing data folder is never mistaken for a pass.
pub fn shared_dir() -> PathBuf {
    let dir = match std::env::var_os("CARVE_SHARED") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("shared"),
    };
    assert!(
        dir.join("onnx-node-tests").is_dir() && dir.join("models").is_dir(),
        "test data not found at '{}': these tests need the shared data folder (with onnx-node-tests/ and models/) \
         next to the repository, or its path in the CARVE_SHARED environment variable",
        dir.display()
    );
    dir
}

/// Sorted subdirectories of `dir` that contain a `model.onnx`.
pub fn model_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list '{}': {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    v.sort();
    v
}

/// The six original real models of `shared/models`, which keep every strict check (zero fallback, 1 vs 2
/// threads bit-identical, AOT on every target, IR snapshots). Models added to the folder later are
/// checked against their expected status in `tests/models_expected.txt` (tests/model_status.rs) until
/// they meet the same bar and are moved here.
pub const STRICT_MODELS: &[&str] = &[
    "magika_standard_v3_3",
    "minilm_l6_v2",
    "ppocr_mobile_v2_cls",
    "ppocrv4_det",
    "silero_vad_openvino_16k",
    "sk_digits_mlp",
];

/// The folders of [`STRICT_MODELS`], sorted; panics when one is missing (a renamed or deleted model
/// must not silently drop out of the strict checks).
pub fn real_models() -> Vec<PathBuf> {
    let root = shared_dir().join("models");
    STRICT_MODELS
        .iter()
        .map(|name| {
            let dir = root.join(name);
            assert!(
                dir.join("model.onnx").is_file(),
                "the strict real model '{name}' is missing from '{}'",
                root.display()
            );
            dir
        })
        .collect()
}

/// Every model folder of `shared/models` (the strict six and the later ones), sorted.
pub fn all_models() -> Vec<PathBuf> {
    model_dirs(&shared_dir().join("models"))
}

/// A number stored in a ratchet file under `tests/ratchet/`.
pub fn ratchet(name: &str) -> usize {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ratchet")
        .join(name);
    let text = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("cannot read ratchet '{}': {e}", p.display()));
    text.lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("ratchet '{}' holds no number", p.display()))
}

/// Imports, verifies and round-trips `model.onnx` in `dir` through the text format.
pub fn import_roundtrip(dir: &Path) -> Result<carve::Model, carve::ImportError> {
    let m = carve::load(dir.join("model.onnx"))?;
    let text = carve::ir::text::print(&m.graph);
    let parsed = carve::ir::text::parse(&text).map_err(|e| carve::ImportError::Graph {
        graph: m.graph.name.clone(),
        msg: format!("the printed IR does not parse back: {e}"),
    })?;
    let again = carve::ir::text::print(&parsed);
    if again != text {
        return Err(carve::ImportError::Graph {
            graph: m.graph.name.clone(),
            msg: "the printed IR does not round-trip byte for byte".into(),
        });
    }
    carve::ir::verify::verify(&parsed).map_err(|e| carve::ImportError::Graph {
        graph: m.graph.name.clone(),
        msg: format!("the parsed IR does not verify: {e}"),
    })?;
    Ok(m)
}
