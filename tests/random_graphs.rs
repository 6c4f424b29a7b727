//! Differential random-graph testing (`carve::fuzz`): the graphs of seeds `0..1000` run through the
//! reference interpreter and the JIT (1 and 2 threads) and must agree (tolerances in the module doc of
//! `carve::fuzz`); every `tests/data/random_graphs/*.ir` (IR text with `// seed: N` and `// scale: S`
//! comment lines; inputs are regenerated from the seed and the input types) replays the same way.
//!
//! Known mismatches are listed in [`KNOWN_MISMATCHES`] with the reason; those seeds must still fail with
//! the listed message, so a fix makes this test fail until the entry is removed.
//!
//! The long run (writes failing graphs to `tests/data/random_graphs/`):
//! `cargo run --release --example fuzz_graphs -- --count 100000 --start 0`.

use std::collections::BTreeMap;
use std::time::Instant;

use carve::fuzz;

/// Seeds the CI run covers (pinned).
const SEEDS: std::ops::Range<u64> = 0..1000;

/// Seeds known to differ between the interpreter and the JIT: (seed, part of the error message,
/// reason). Each must still fail with that message.
const KNOWN_MISMATCHES: &[(u64, &str, &str)] = &[];

fn known(seed: u64) -> Option<&'static (u64, &'static str, &'static str)> {
    KNOWN_MISMATCHES.iter().find(|k| k.0 == seed)
}

/// Checks one case against the known list; returns a failure description, if any.
fn judge(case: &fuzz::Case, counts: &mut (usize, usize, usize)) -> Option<String> {
    let res = fuzz::check_catching(&case.graph, &case.inputs, case.scale);
    match (res, known(case.seed)) {
        (Ok(o), None) => {
            counts.0 += 1;
            counts.1 += usize::from(o.native);
            counts.2 += usize::from(o.fused > 0);
            None
        }
        (Err(e), Some(k)) if e.contains(k.1) => None,
        (Err(e), Some(k)) => Some(format!(
            "seed {}: known mismatch ({}) now fails differently: {e}",
            case.seed, k.2
        )),
        (Ok(_), Some(k)) => Some(format!(
            "seed {}: known mismatch ({}) now passes: remove it from KNOWN_MISMATCHES",
            case.seed, k.2
        )),
        (Err(e), None) => Some(format!("seed {}: {e}\n{}", case.seed, fuzz::to_text(case))),
    }
}

#[test]
fn random_graphs_agree_between_interpreter_and_jit() {
    let t0 = Instant::now();
    let mut ops = BTreeMap::new();
    let mut counts = (0, 0, 0);
    let mut failures = Vec::new();
    for seed in SEEDS {
        let case = fuzz::generate(seed);
        fuzz::op_counts(&case.graph, &mut ops);
        failures.extend(judge(&case, &mut counts));
    }
    println!(
        "{} graphs: {} passed, {} fully native, {} with fused chains, {} known mismatches, {:.1} s",
        SEEDS.end - SEEDS.start,
        counts.0,
        counts.1,
        counts.2,
        KNOWN_MISMATCHES.len(),
        t0.elapsed().as_secs_f64()
    );
    println!("ops covered: {ops:?}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // The generator reaches every family it claims to.
    for op in [
        "relu",
        "sigmoid",
        "tanh",
        "exp",
        "abs",
        "neg",
        "sqrt",
        "add",
        "sub",
        "mul",
        "div",
        "max",
        "min",
        "matmul",
        "reduce",
        "softmax",
        "transpose",
        "reshape",
        "unsqueeze",
        "concat",
        "slice",
        "greater",
        "less",
        "equal",
        "where",
        "cast",
        "quantize_linear",
        "dequantize_linear",
        "if",
        "loop",
    ] {
        assert!(ops.contains_key(op), "no graph used {op}: {ops:?}");
    }
    assert!(
        counts.1 * 2 > counts.0,
        "fewer than half the graphs were fully native"
    );
}

#[test]
fn regression_graphs_replay() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/random_graphs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "ir"));
    files.sort();
    let mut counts = (0, 0, 0);
    let mut failures = Vec::new();
    for f in &files {
        let src = std::fs::read_to_string(f).expect("reads");
        let case = fuzz::from_text(&src).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        failures.extend(judge(&case, &mut counts).map(|m| format!("{}: {m}", f.display())));
    }
    println!("{} regression graphs replayed", files.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn known_mismatches_are_exercised() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/random_graphs");
    for &(seed, _, why) in KNOWN_MISMATCHES {
        assert!(
            SEEDS.contains(&seed) || dir.join(format!("seed_{seed}.ir")).exists(),
            "known mismatch {seed} ({why}) is neither in the CI seeds nor a regression file"
        );
    }
}

#[test]
fn cases_are_deterministic_and_round_trip_through_ir_text() {
    for seed in [0, 1, 42, 999] {
        let a = fuzz::generate(seed);
        let b = fuzz::generate(seed);
        let text = fuzz::to_text(&a);
        assert_eq!(text, fuzz::to_text(&b), "seed {seed} is not deterministic");
        let back = fuzz::from_text(&text).expect("parses");
        assert!(!text.contains('#'), "an elided constant:\n{text}");
        assert_eq!(fuzz::to_text(&back), text);
        assert_eq!(back.inputs, a.inputs);
        assert_eq!((back.seed, back.scale), (a.seed, a.scale));
    }
}
