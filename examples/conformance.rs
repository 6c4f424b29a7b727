//! Development aid: runs the conformance harness (interpreter) over the cases of an ONNX-test-layout folder
//! whose names contain any of the given substrings (all cases when none), printing one line per case and
//! the totals. `cargo run --release --example conformance -- ../shared/onnx-node-tests test_add test_relu`

use std::path::PathBuf;

use carve::compare::NODE_SUITE;
use carve::conformance::{Outcome, counts, run_case};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(root) = args.next().map(PathBuf::from) else {
        eprintln!("usage: conformance DIR [SUBSTRING...]");
        std::process::exit(2);
    };
    let filters: Vec<String> = args.collect();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.retain(|p| p.join("model.onnx").is_file());
    dirs.retain(|p| {
        let n = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str()))
    });
    dirs.sort();
    let mut reports = Vec::new();
    for d in &dirs {
        let r = run_case(d, NODE_SUITE);
        match &r.outcome {
            Outcome::Pass { max_err } => println!("pass      {} (max err {max_err:.2e})", r.name),
            o => println!("{:<9} {}: {}", o.label(), r.name, o.detail()),
        }
        reports.push(r);
    }
    let c: Vec<String> = counts(&reports)
        .iter()
        .map(|(l, n)| format!("{l}: {n}"))
        .collect();
    println!("{} cases; {}", reports.len(), c.join(", "));
}
