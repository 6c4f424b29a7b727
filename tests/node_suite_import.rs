//! Walks all 1,884 cases of the ONNX node suite: each model must import, verify and round-trip through the
//! text format, or fail with the "unsupported operator" error. Prints the counts and fails if the number
//! that import drops below the ratchet in `tests/ratchet/node_suite_import.txt` (raise it as coverage grows).

mod common;

use std::collections::BTreeMap;

use carve::ImportError;

#[test]
fn node_suite_imports_verify_and_round_trip() {
    let dirs = common::model_dirs(&common::shared_dir().join("onnx-node-tests"));
    assert_eq!(dirs.len(), 1884, "the node suite should hold 1,884 cases");
    let mut ok = 0usize;
    let mut unsupported: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut other: Vec<(String, String)> = Vec::new();
    for d in &dirs {
        let case = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match common::import_roundtrip(d) {
            Ok(_) => ok += 1,
            Err(ImportError::Unsupported(list)) => {
                for u in list {
                    unsupported
                        .entry(format!("{}::{} (opset {})", u.domain, u.op_type, u.opset))
                        .or_default()
                        .push(case.clone());
                }
            }
            Err(e) => other.push((case, e.to_string())),
        }
    }
    println!(
        "node suite: {ok} of {} import, verify and round-trip",
        dirs.len()
    );
    println!("unsupported operators ({}):", unsupported.len());
    for (op, cases) in &unsupported {
        println!("  {op}: {} case(s), e.g. {}", cases.len(), cases[0]);
    }
    for (case, e) in &other {
        println!("FAILED {case}: {e}");
    }
    let floor = common::ratchet("node_suite_import.txt");
    assert!(
        other.is_empty(),
        "{} case(s) failed with an error other than 'unsupported' (listed above)",
        other.len()
    );
    assert!(
        ok >= floor,
        "only {ok} cases import; the ratchet requires at least {floor}"
    );
}
