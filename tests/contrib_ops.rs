//! ONNX Runtime's `com.microsoft` contrib ops (FastGelu, BiasGelu, BiasAdd, SkipLayerNormalization,
//! SkipSimplifiedLayerNormalization, SimplifiedLayerNormalization, FusedMatMul, FusedGemm, FusedConv,
//! Gelu, QuickGelu, MatMulIntegerToFloat, DynamicQuantizeMatMul, QLinearSigmoid, QLinearLeakyRelu,
//! QLinearConcat, QLinearGlobalAveragePool, QLinearAveragePool, QLinearAdd, QLinearMul, QGemm,
//! MatMulNBits — also checked through the interpreter in `matmul_nbits.rs`)
//! against ONNX Runtime's own outputs: each folder of `tests/data/contrib` (written by the committed
//! `make_contrib_cases.py`) holds one op with small inputs and ORT's results. Every case must import,
//! run natively with no interpreter fallback, and match (rtol 1e-3, atol 1e-5; integer outputs
//! exactly).

use std::path::Path;

use carve::compare::NODE_SUITE;
use carve::conformance::{Engine, Outcome, run_case_with};

#[test]
fn contrib_ops_match_onnx_runtime_natively() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/contrib");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("tests/data/contrib is committed")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 25,
        "expected the generated cases, found {}",
        dirs.len()
    );
    let mut failures = Vec::new();
    for d in &dirs {
        let r = run_case_with(d, NODE_SUITE, Engine::Jit { threads: 1 });
        let ok = matches!(r.outcome, Outcome::Pass { .. }) && r.native_pass();
        if !ok {
            failures.push(format!(
                "{}: {} {} (native: {})",
                r.name,
                r.outcome.label(),
                r.outcome.detail(),
                r.native_pass()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
