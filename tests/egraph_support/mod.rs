//! Shared helpers of the e-graph tests: run one rule family on IR text, snapshot before/after, and
//! check that the rewritten graph computes the same outputs as the original on random inputs.
#![allow(dead_code)]

use carve::ir::{Graph, text};
use carve::optimize::InterpEval;
use carve::passes::egraph::{Options, optimize_with};
use carve::passes::rules::{Rule, Rules};
use carve_runtime::interp::{Value, run};
use carve_runtime::{Data, Tensor};

/// Relative tolerance of the differential checks (plus a tiny absolute floor for values near zero).
pub const RTOL: f32 = 1e-5;
const ATOL: f32 = 1e-6;

/// The non-constant ops of `g`, in schedule order.
pub fn ops(g: &Graph) -> Vec<&'static str> {
    g.nodes
        .iter()
        .map(|n| n.op.name())
        .filter(|&n| n != "const")
        .collect()
}

/// Parses `src`, optimizes it with `rules` only (a family's `rules()`), checks the result on random
/// inputs and returns the snapshot text: the input, the output and the rules that fired.
pub fn rewrite(src: &str, rules: &impl Family) -> (Graph, String) {
    rewrite_with(src, rules, &Options::default())
}

/// [`rewrite`] with optimizer `options` (e.g. another cost-model target).
pub fn rewrite_with(src: &str, rules: &impl Family, options: &Options) -> (Graph, String) {
    let rules = rules.rules();
    let g = text::parse(src).unwrap_or_else(|e| panic!("test graph does not parse: {e}"));
    carve::ir::verify::verify(&g).expect("test graph verifies");
    let (out, stats) =
        optimize_with(&g, options, Some(&InterpEval), &rules).expect("optimizer runs");
    assert!(
        stats.fallback.is_none(),
        "optimizer fell back: {:?}",
        stats.fallback
    );
    carve::ir::verify::verify(&out).expect("optimized graph verifies");
    same_outputs(&g, &out, 3);
    let applied: Vec<String> = stats
        .applied
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let snap = format!(
        "{}\n--- after ({}) ---\n{}",
        text::print(&g),
        applied.join(", "),
        text::print(&out)
    );
    (out, snap)
}

/// What a rule family's `rules()` returns: [`Rules`], or a plain list of Rust rules.
pub trait Family {
    /// The rules as one ordered list.
    fn rules(&self) -> Rules;
}

impl Family for Rules {
    fn rules(&self) -> Rules {
        self.clone()
    }
}

impl Family for Vec<Rule> {
    fn rules(&self) -> Rules {
        self.into()
    }
}

/// Deterministic pseudo-random f32 tensors for every input of `g` (which must have static shapes).
pub fn random_inputs(g: &Graph, seed: u64) -> Vec<Value> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    g.inputs
        .iter()
        .map(|&v| {
            let t = g.ty(v).as_tensor().expect("tensor input");
            let dims: Vec<usize> = t
                .shape
                .as_ref()
                .and_then(|s| s.as_known())
                .expect("static input shape")
                .into_iter()
                .map(|d| d as usize)
                .collect();
            let n: usize = dims.iter().product();
            let data: Vec<f32> = (0..n)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
                })
                .collect();
            Value::Tensor(Tensor::new(dims, Data::F32(data)).expect("tensor"))
        })
        .collect()
}

/// Asserts `a` and `b` give the same outputs (within [`RTOL`]) on `trials` random inputs.
pub fn same_outputs(a: &Graph, b: &Graph, trials: u64) {
    for seed in 0..trials {
        let ins = random_inputs(a, seed);
        let x = run(a, ins.clone()).expect("original runs");
        let y = run(b, ins).expect("optimized runs");
        assert_values_close(&x, &y, RTOL);
    }
}

/// Asserts two output lists agree elementwise within relative tolerance `rtol`.
pub fn assert_values_close(x: &[Value], y: &[Value], rtol: f32) {
    assert_eq!(x.len(), y.len(), "output count");
    for (k, (p, q)) in x.iter().zip(y).enumerate() {
        let (Value::Tensor(p), Value::Tensor(q)) = (p, q) else {
            assert_eq!(p, q, "output {k}");
            continue;
        };
        assert_eq!(p.shape, q.shape, "output {k} shape");
        match (&p.data, &q.data) {
            (Data::F32(u), Data::F32(v)) => {
                for (i, (a, b)) in u.iter().zip(v).enumerate() {
                    let tol = rtol * a.abs().max(b.abs()) + ATOL;
                    assert!(
                        (a - b).abs() <= tol || (a.is_nan() && b.is_nan()),
                        "output {k} element {i}: {a} vs {b}"
                    );
                }
            }
            _ => assert_eq!(p, q, "output {k}"),
        }
    }
}
